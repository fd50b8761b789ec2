/**
 * Sliding windows of call outcomes for the rate rules, as immutable values with O(1) amortized
 * work per recorded call whatever the window's size.
 *
 * - A count window keeps the exact outcomes of the last `calls` calls, two bits each, packed 15
 *   to a number in a persistent queue.
 * - A time window keeps one bucket of counts per `duration / buckets` ms that saw calls, in a
 *   persistent queue; it covers at least `duration` ms and at most one bucket more. Buckets are
 *   expired by the time of the call being recorded, so idle time never leaves stale counts.
 *
 * @module
 */

import { describeValue } from "./describe_value.ts";
import { type Fifo, fromArray, peek, push, shift, toArray } from "./fifo.ts";

/** How outcomes are windowed: the last N calls, or the last T ms in buckets. */
export type WindowPolicy =
  | {
    /** The last `calls` calls. */
    readonly kind: "calls";
    /** How many calls are judged. */
    readonly calls: number;
  }
  | {
    /** The last `duration` ms. */
    readonly kind: "time";
    /** History kept, in ms. */
    readonly duration: number;
    /** Buckets the duration is split into. */
    readonly buckets: number;
    /** `duration / buckets`. */
    readonly bucketMs: number;
  };

/** Counts over a window, as given to `shouldTrip`. */
export interface WindowStats {
  /** Calls recorded in the window (successes and failures; neutral outcomes are not recorded). */
  readonly calls: number;
  /** Failed calls in the window. */
  readonly failures: number;
  /** Calls slower than `slowCallDuration`, whatever their outcome. */
  readonly slowCalls: number;
  /** `failures / calls`, 0 when there were no calls. */
  readonly failureRate: number;
  /** `slowCalls / calls`, 0 when there were no calls. */
  readonly slowCallRate: number;
}

/** The exact outcomes of the last `calls` calls. */
export interface CallWindow {
  /** A count window. */
  readonly kind: "calls";
  /** Calls in the window. */
  readonly calls: number;
  /** Failed calls in the window. */
  readonly failures: number;
  /** Slow calls in the window. */
  readonly slowCalls: number;
  /** Outcome codes of the newest, unfinished chunk. */
  readonly fill: number;
  /** How many codes `fill` holds (0 to 14). */
  readonly fillSize: number;
  /** Full chunks of 15 codes, oldest first. */
  readonly chunks: Fifo<number> | undefined;
  /** Codes already evicted from the oldest chunk (or from `fill` when there is none). */
  readonly drop: number;
}

/** One time bucket that saw calls. */
export interface Bucket {
  /** `floor(time / bucketMs)` of the bucket's calls. */
  readonly index: number;
  /** Calls in the bucket. */
  readonly calls: number;
  /** Failed calls in the bucket. */
  readonly failures: number;
  /** Slow calls in the bucket. */
  readonly slowCalls: number;
}

/** Counts of the last `duration` ms, by bucket. */
export interface TimeWindow {
  /** A time window. */
  readonly kind: "time";
  /** The bucket size the indexes are counted in. */
  readonly bucketMs: number;
  /** Calls in the window. */
  readonly calls: number;
  /** Failed calls in the window. */
  readonly failures: number;
  /** Slow calls in the window. */
  readonly slowCalls: number;
  /** The current bucket's index, `floor(now / bucketMs)` of the newest call. */
  readonly headIndex: number;
  /** Calls in the current bucket (kept in the window itself: one allocation per call). */
  readonly headCalls: number;
  /** Failed calls in the current bucket. */
  readonly headFailures: number;
  /** Slow calls in the current bucket. */
  readonly headSlowCalls: number;
  /** Older buckets that saw calls, oldest first. */
  readonly past: Fifo<Bucket> | undefined;
}

/** A window's state; `undefined` in a snapshot is the empty window. */
export type WindowState = CallWindow | TimeWindow;

/** The serialized form of a window, part of a snapshot's JSON. */
export type WindowJSON =
  | {
    /** A count window. */
    readonly kind: "calls";
    /** One digit per call, oldest first: 1 failed, 2 slow, 3 both, 0 neither. */
    readonly outcomes: string;
  }
  | {
    /** A time window. */
    readonly kind: "time";
    /** The bucket size the indexes are counted in. */
    readonly bucketMs: number;
    /** `[index, calls, failures, slowCalls]`, oldest first. */
    readonly buckets: ReadonlyArray<readonly [number, number, number, number]>;
  };

const CHUNK = 15; // codes per number: 30 bits, a small integer for the engine
const FAILED = 1;
const SLOW = 2;

/**
 * Returns the window with one more call recorded at `now`.
 *
 * @example Recording into a count window
 * ```ts
 * import { recordCall } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = { kind: "calls", calls: 2 } as const;
 * let window = recordCall(policy, undefined, 0, true, false);
 * window = recordCall(policy, window, 0, false, false);
 * window = recordCall(policy, window, 0, false, false); // the failure falls out
 * assert.equal(window.failures, 0);
 * ```
 */
export function recordCall(
  policy: WindowPolicy,
  window: WindowState | undefined,
  now: number,
  failed: boolean,
  slow: boolean,
): WindowState {
  return recordCalls(policy, window, now, failed, slow, 1);
}

/**
 * Returns the window with `count` more calls of one outcome recorded at `now` (`count` >= 1):
 * the same window as `count` calls of `recordCall`, made in one step.
 *
 * @example Recording 30 successes at once
 * ```ts
 * import { recordCall } from "@circuit/breaker/core";
 * import { recordCalls } from "./window.ts";
 * import assert from "node:assert/strict";
 * const policy = { kind: "calls", calls: 20 } as const;
 * const window = recordCalls(policy, recordCall(policy, undefined, 0, true, false), 0, false, false, 30);
 * assert.equal(window.calls, 20);
 * assert.equal(window.failures, 0);
 * ```
 */
export function recordCalls(
  policy: WindowPolicy,
  window: WindowState | undefined,
  now: number,
  failed: boolean,
  slow: boolean,
  count: number,
): WindowState {
  return policy.kind === "calls"
    ? recordInCalls(policy.calls, window as CallWindow | undefined, failed, slow, count)
    : recordInTime(policy, window as TimeWindow | undefined, now, failed, slow, count);
}

function recordInCalls(
  limit: number,
  window: CallWindow | undefined,
  failed: boolean,
  slow: boolean,
  count: number,
): CallWindow {
  const code = (failed ? FAILED : 0) | (slow ? SLOW : 0);
  let calls = 0, failures = 0, slowCalls = 0;
  let fill = 0, fillSize = 0, chunks: Fifo<number> | undefined, drop = 0;
  // `limit` calls or more push every older outcome out: the window is `limit` of this one, built
  // from empty, so that recording a long run of deferred successes costs O(limit), not O(count).
  if (count >= limit) {
    window = undefined;
    count = limit;
  }
  if (window !== undefined) {
    calls = window.calls;
    failures = window.failures;
    slowCalls = window.slowCalls;
    fill = window.fill;
    fillSize = window.fillSize;
    chunks = window.chunks;
    drop = window.drop;
  }
  for (let i = 0; i < count; i++) {
    calls += 1;
    failures += code & FAILED;
    slowCalls += code >> 1;
    fill |= code << (2 * fillSize);
    fillSize += 1;
    if (fillSize === CHUNK) {
      chunks = push(chunks, fill);
      fill = 0;
      fillSize = 0;
    }
    if (calls > limit) {
      const oldest = chunks === undefined ? fill : peek(chunks);
      const evicted = (oldest >> (2 * drop)) & 3;
      drop += 1;
      if (chunks !== undefined && drop === CHUNK) {
        chunks = shift(chunks);
        drop = 0;
      }
      calls -= 1;
      failures -= evicted & FAILED;
      slowCalls -= evicted >> 1;
    }
  }
  return { kind: "calls", calls, failures, slowCalls, fill, fillSize, chunks, drop };
}

function recordInTime(
  policy: Extract<WindowPolicy, { kind: "time" }>,
  window: TimeWindow | undefined,
  now: number,
  failed: boolean,
  slow: boolean,
  count: number,
): TimeWindow {
  const failures = failed ? count : 0;
  const slowCalls = slow ? count : 0;
  const index = Math.floor(now / policy.bucketMs);
  if (window === undefined) {
    return {
      kind: "time",
      bucketMs: policy.bucketMs,
      calls: count,
      failures,
      slowCalls,
      headIndex: index,
      headCalls: count,
      headFailures: failures,
      headSlowCalls: slowCalls,
      past: undefined,
    };
  }
  let { past, calls, failures: totalFailures, slowCalls: totalSlow } = window;
  let { headIndex, headCalls, headFailures, headSlowCalls } = window;
  // A clock that went back counts the call in the current bucket.
  if (index > headIndex) {
    past = push(past, headOf(window));
    headIndex = index;
    headCalls = headFailures = headSlowCalls = 0;
    const oldest = index - policy.buckets;
    while (past !== undefined && peek(past).index < oldest) {
      const expired = peek(past);
      past = shift(past);
      calls -= expired.calls;
      totalFailures -= expired.failures;
      totalSlow -= expired.slowCalls;
    }
  }
  return {
    kind: "time",
    bucketMs: window.bucketMs,
    calls: calls + count,
    failures: totalFailures + failures,
    slowCalls: totalSlow + slowCalls,
    headIndex,
    headCalls: headCalls + count,
    headFailures: headFailures + failures,
    headSlowCalls: headSlowCalls + slowCalls,
    past,
  };
}

/** The current bucket of a time window. */
function headOf(window: TimeWindow): Bucket {
  return {
    index: window.headIndex,
    calls: window.headCalls,
    failures: window.headFailures,
    slowCalls: window.headSlowCalls,
  };
}

/**
 * The window's counts as seen at `now`: a time window leaves out buckets that have expired
 * since its last recorded call.
 *
 * @example Reading a window's stats
 * ```ts
 * import { recordCall, windowStats } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = { kind: "time", duration: 1000, buckets: 10, bucketMs: 100 } as const;
 * const window = recordCall(policy, undefined, 0, true, false);
 * assert.equal(windowStats(policy, window, 50).failureRate, 1);
 * assert.equal(windowStats(policy, window, 5000).calls, 0);
 * ```
 */
export function windowStats(
  policy: WindowPolicy | undefined,
  window: WindowState | undefined,
  now: number,
): WindowStats {
  if (policy === undefined || window === undefined) return statsOf(0, 0, 0);
  if (window.kind === "calls" || policy.kind === "calls") {
    return statsOf(window.calls, window.failures, window.slowCalls);
  }
  const oldest = Math.floor(now / policy.bucketMs) - policy.buckets;
  if (
    window.headIndex >= oldest && (window.past === undefined || peek(window.past).index >= oldest)
  ) {
    return statsOf(window.calls, window.failures, window.slowCalls);
  }
  let calls = 0, failures = 0, slowCalls = 0;
  for (const bucket of [...toArray(window.past), headOf(window)]) {
    if (bucket.index < oldest) continue;
    calls += bucket.calls;
    failures += bucket.failures;
    slowCalls += bucket.slowCalls;
  }
  return statsOf(calls, failures, slowCalls);
}

/** Stats from counts, with the rates computed. */
export function statsOf(calls: number, failures: number, slowCalls: number): WindowStats {
  return {
    calls,
    failures,
    slowCalls,
    failureRate: calls === 0 ? 0 : failures / calls,
    slowCallRate: calls === 0 ? 0 : slowCalls / calls,
  };
}

/**
 * One window holding the outcomes of `earlier` and then those of `later` (another breaker's
 * since it last synced): a count window keeps the newest `calls` of them, a time window adds
 * the counts bucket by bucket and drops the buckets that have left the window at `now`.
 *
 * @example
 * ```ts
 * import { mergeWindows, recordCall, type WindowPolicy } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy: WindowPolicy = { kind: "calls", calls: 3 };
 * const a = recordCall(policy, undefined, 0, true, false);
 * const b = recordCall(policy, recordCall(policy, undefined, 0, false, false), 0, true, false);
 * assert.equal(mergeWindows(policy, a, b, 0)?.failures, 2);
 * ```
 */
export function mergeWindows(
  policy: WindowPolicy,
  earlier: WindowState | undefined,
  later: WindowState | undefined,
  now: number,
): WindowState | undefined {
  if (later === undefined) return earlier;
  if (earlier === undefined) return later;
  const first = windowToJSON(earlier);
  const second = windowToJSON(later);
  if (policy.kind === "calls") {
    const outcomes = (first.kind === "calls" ? first.outcomes : "") +
      (second.kind === "calls" ? second.outcomes : "");
    return windowFromJSON(policy, { kind: "calls", outcomes }, "window");
  }
  const counts = new Map<number, [number, number, number, number]>();
  for (const form of [first, second]) {
    if (form.kind !== "time" || form.bucketMs !== policy.bucketMs) continue;
    for (const [index, calls, failures, slowCalls] of form.buckets) {
      const bucket = counts.get(index);
      if (bucket === undefined) counts.set(index, [index, calls, failures, slowCalls]);
      else {
        bucket[1] += calls;
        bucket[2] += failures;
        bucket[3] += slowCalls;
      }
    }
  }
  const oldest = Math.floor(now / policy.bucketMs) - policy.buckets;
  const buckets = [...counts.values()].filter(([index]) => index >= oldest)
    .sort((a, b) => a[0] - b[0]);
  return buckets.length === 0
    ? undefined
    : windowFromJSON(policy, { kind: "time", bucketMs: policy.bucketMs, buckets }, "window");
}

/** Whether two window policies keep the same history (so a window can be kept across them). */
export function sameWindow(a: WindowPolicy | undefined, b: WindowPolicy | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.kind === "calls") return b.kind === "calls" && a.calls === b.calls;
  return b.kind === "time" && a.bucketMs === b.bucketMs && a.buckets === b.buckets;
}

/** The window's serialized form. */
export function windowToJSON(window: WindowState): WindowJSON {
  if (window.kind === "time") {
    return {
      kind: "time",
      bucketMs: window.bucketMs,
      buckets: [...toArray(window.past), headOf(window)].map((
        b,
      ) => [b.index, b.calls, b.failures, b.slowCalls] as const),
    };
  }
  let outcomes = "";
  const chunks = toArray(window.chunks);
  const codes: number[] = [];
  for (const chunk of chunks) {
    for (let i = 0; i < CHUNK; i++) codes.push((chunk >> (2 * i)) & 3);
  }
  for (let i = 0; i < window.fillSize; i++) codes.push((window.fill >> (2 * i)) & 3);
  for (const code of codes.slice(window.drop)) outcomes += code;
  return { kind: "calls", outcomes };
}

/**
 * Rebuilds a window from its serialized form for the given policy, or returns `undefined` when
 * the form does not fit the policy (another kind or bucket size: the history is dropped).
 * Throws a `TypeError` naming the path when the form is malformed.
 *
 * @throws {TypeError} When the form is malformed; the message names the path.
 */
export function windowFromJSON(
  policy: WindowPolicy | undefined,
  json: unknown,
  path: string,
): WindowState | undefined {
  if (json === null || json === undefined) return undefined;
  if (typeof json !== "object") throw malformed(path, "an object or null", json);
  const form = json as Record<string, unknown>;
  if (form.kind === "calls") {
    const outcomes = form.outcomes;
    if (typeof outcomes !== "string" || !/^[0-3]*$/.test(outcomes)) {
      throw malformed(`${path}.outcomes`, "a string of digits 0 to 3", outcomes);
    }
    if (policy?.kind !== "calls") return undefined;
    let window: WindowState | undefined;
    for (const digit of outcomes) {
      const code = Number(digit);
      window = recordCall(policy, window, 0, (code & FAILED) !== 0, (code & SLOW) !== 0);
    }
    return window;
  }
  if (form.kind === "time") {
    const { bucketMs, buckets } = form;
    if (typeof bucketMs !== "number" || !(bucketMs > 0) || !Number.isFinite(bucketMs)) {
      throw malformed(`${path}.bucketMs`, "a finite number > 0", bucketMs);
    }
    if (!Array.isArray(buckets) || buckets.length === 0) {
      throw malformed(`${path}.buckets`, "a non-empty array", buckets);
    }
    // Array.from visits holes too (map and every skip them).
    const parsed: Bucket[] = Array.from(
      buckets,
      (entry, i) => parseBucket(entry, `${path}.buckets[${i}]`),
    );
    for (let i = 1; i < parsed.length; i++) {
      if (parsed[i]!.index <= parsed[i - 1]!.index) {
        throw malformed(`${path}.buckets[${i}]`, "an index above the previous one", buckets[i]);
      }
    }
    if (policy?.kind !== "time" || policy.bucketMs !== bucketMs) return undefined;
    const head = parsed[parsed.length - 1]!;
    const past = fromArray(parsed.slice(0, -1));
    let calls = 0, failures = 0, slowCalls = 0;
    for (const bucket of parsed) {
      calls += bucket.calls;
      failures += bucket.failures;
      slowCalls += bucket.slowCalls;
    }
    return {
      kind: "time",
      bucketMs,
      calls,
      failures,
      slowCalls,
      headIndex: head.index,
      headCalls: head.calls,
      headFailures: head.failures,
      headSlowCalls: head.slowCalls,
      past,
    };
  }
  throw malformed(`${path}.kind`, '"calls" or "time"', form.kind);
}

function parseBucket(entry: unknown, path: string): Bucket {
  if (
    !Array.isArray(entry) || entry.length !== 4 ||
    !Array.from(entry).every((n) => Number.isSafeInteger(n) && n >= 0)
  ) {
    throw malformed(path, "[index, calls, failures, slowCalls] of integers >= 0", entry);
  }
  const [index, calls, failures, slowCalls] = entry as [number, number, number, number];
  if (failures > calls || slowCalls > calls || calls === 0) {
    throw malformed(path, "calls >= 1 with failures and slowCalls <= calls", entry);
  }
  return { index, calls, failures, slowCalls };
}

function malformed(path: string, expected: string, received: unknown): TypeError {
  return new TypeError(`"${path}" must be ${expected}, received ${describeValue(received)}`);
}
