/**
 * The transitions: pure functions `(policy, snapshot, event, now) -> snapshot` that decide
 * everything a breaker does. A transition that changes nothing returns the snapshot it was
 * given, so the common case (a success while closed) allocates nothing.
 *
 * @module
 */

import { quoteName } from "./describe_value.ts";
import type { Policy, WindowRules } from "./policy.ts";
import { retryAfterHint } from "./retry_after.ts";
import { type BreakerState, type Snapshot, stateAt } from "./snapshot.ts";
import type { Tally } from "./tally.ts";
import {
  mergeWindows,
  recordCall,
  recordCalls,
  sameWindow,
  statsOf,
  type WindowState,
  type WindowStats,
  windowStats,
} from "./window.ts";

/**
 * A call turned away: the state it met and how long until a call may be admitted. The
 * snapshot to keep comes along, since turning a call away can change it (the ramp's counter).
 *
 * @example
 * ```ts
 * import { admit, createPolicy, INITIAL_SNAPSHOT, isRejection } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const open = { ...INITIAL_SNAPSHOT, state: "open", openUntil: 1000 } as const;
 * const verdict = admit(createPolicy({}), open, 400);
 * assert.ok(isRejection(verdict));
 * assert.equal(verdict.retryAfterMs, 600);
 * ```
 */
export interface Rejection {
  /** The state that turned the call away. */
  readonly rejectedIn: BreakerState;
  /** Milliseconds until a call may be admitted (`Infinity` while isolated). */
  readonly retryAfterMs: number;
  /** The snapshot to keep. */
  readonly snapshot: Snapshot;
}

const DEFAULT_PERIOD = 30_000;

/** Whether an admission verdict turned the call away. */
export function isRejection(verdict: Snapshot | Rejection): verdict is Rejection {
  return (verdict as Partial<Rejection>).rejectedIn !== undefined;
}

/**
 * Whether a call's start needs the time: to decide its admission (a closed, unisolated
 * circuit admits without it) or to measure its duration (slow calls are counted). Recording
 * its outcome may need the time too: see `successNeedsClock` and `failureNeedsClock`.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, needsClock } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(needsClock(createPolicy({}), INITIAL_SNAPSHOT), false);
 * ```
 */
export function needsClock(policy: Policy, snapshot: Snapshot): boolean {
  return policy.durations || snapshot.state !== "closed" || snapshot.isolated !== 0;
}

/**
 * Whether a call may run without an admission decision and without its start time: the
 * circuit is closed and unisolated, and nothing is armed or measured at a call's start (no
 * `timeout`, no durations, no shared lease). Admission would keep the snapshot unchanged, so
 * a shell may run the call at once and record only its outcome.
 *
 * @example
 * ```ts
 * import { skipsAdmission } from "./transitions.ts";
 * import { createPolicy } from "./policy.ts";
 * import { INITIAL_SNAPSHOT } from "./snapshot.ts";
 * skipsAdmission(createPolicy({}), INITIAL_SNAPSHOT); // true
 * skipsAdmission(createPolicy({ timeout: 1_000 }), INITIAL_SNAPSHOT); // false
 * ```
 */
export function skipsAdmission(policy: Policy, snapshot: Snapshot): boolean {
  return snapshot.state === "closed" && snapshot.isolated === 0 &&
    policy.timeout === undefined && !policy.durations && policy.lease === undefined;
}

/**
 * Whether recording a success in this snapshot needs the time: when it may change the state
 * (a trial, a ramp), feeds a time window, is shared, or may trip a rule (which opens the
 * circuit from now). A success in a count window that cannot bring the failure rate to its
 * threshold needs none.
 *
 * @example
 * ```ts
 * import { successNeedsClock } from "./transitions.ts";
 * import { createPolicy } from "./policy.ts";
 * import { INITIAL_SNAPSHOT } from "./snapshot.ts";
 * successNeedsClock(createPolicy({ failureRate: 0.5, window: { calls: 100 } }), INITIAL_SNAPSHOT); // false
 * successNeedsClock(createPolicy({ failureRate: 0.5 }), INITIAL_SNAPSHOT); // true (a time window)
 * ```
 */
export function successNeedsClock(policy: Policy, snapshot: Snapshot): boolean {
  if (snapshot.state !== "closed" || policy.lease !== undefined) return true;
  const rules = policy.rules;
  if (rules === undefined) return false;
  if (rules.window.kind === "time" || rules.shouldTrip !== undefined) return true;
  if (rules.slowCallRate !== undefined || rules.failureRate === undefined) return true;
  return firstTrippingSuccess(rules, snapshot.window) === 1;
}

/**
 * Which of the next successes (none slow) recorded onto `window` is the first that may trip a
 * rate rule (1 for the next one), `Infinity` when none may. A success adds a call and no
 * failure (a count window may push an old outcome out), so the rates after each are at most
 * the window's failures and slow calls over the calls it then counts: highest at the first
 * success that brings the calls to `minimumCalls`, lower after it. An upper bound for a count
 * window; exact for a time window while the successes land in its current bucket (nothing
 * expires), and not otherwise.
 */
function firstTrippingSuccess(rules: WindowRules, window: WindowState | undefined): number {
  const limit = rules.window.kind === "calls" ? rules.window.calls : Infinity;
  const calls = window?.calls ?? 0;
  const first = Math.max(1, rules.minimumCalls - calls);
  const judged = Math.min(calls + first, limit);
  if (judged < rules.minimumCalls) return Infinity;
  const trips =
    (rules.failureRate !== undefined && (window?.failures ?? 0) / judged >= rules.failureRate) ||
    (rules.slowCallRate !== undefined && (window?.slowCalls ?? 0) / judged >= rules.slowCallRate);
  return trips ? first : Infinity;
}

/**
 * How many successes in a row may be left unrecorded on this snapshot for now, and recorded
 * later in one step (`recordSuccesses`), each being one `isDeferrableSuccess` accepts:
 * recording them would change only the window's counts, and no rule can trip on any of them.
 * 0 unless closed, unisolated, not shared, with no failure counted, a window already started
 * and no `shouldTrip` (it judges every success); `Infinity` when no rate rule can be reached
 * by successes alone. A shell may then keep a count instead of making a new window and
 * snapshot per success, as long as it records them before anything reads or changes the
 * snapshot (see `defersSuccess`).
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordFailure, recordSuccess } from "@circuit/breaker/core";
 * import { deferrableSuccesses } from "./transitions.ts";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ failureRate: 0.5, minimumCalls: 4, window: { calls: 10 } });
 * let snapshot = recordSuccess(policy, INITIAL_SNAPSHOT, 0, 0, 0);
 * assert.equal(deferrableSuccesses(policy, snapshot), Infinity);
 * snapshot = recordFailure(policy, snapshot, 0, new Error("down"), 0, 0);
 * assert.equal(deferrableSuccesses(policy, snapshot), 0); // a failure is counted
 * snapshot = recordSuccess(policy, snapshot, 0, 0, 0); // 1 failure in 3 calls
 * assert.equal(deferrableSuccesses(policy, snapshot), Infinity); // 1 in 4 cannot trip
 * ```
 */
export function deferrableSuccesses(policy: Policy, snapshot: Snapshot): number {
  const rules = policy.rules;
  const window = snapshot.window;
  if (
    rules === undefined || window === undefined || snapshot.state !== "closed" ||
    snapshot.failureCount !== 0 || snapshot.isolated !== 0 || policy.lease !== undefined ||
    rules.shouldTrip !== undefined || window.kind !== rules.window.kind
  ) {
    return 0;
  }
  return firstTrippingSuccess(rules, window) - 1;
}

/**
 * Whether a success taking `durationMs` and settled at `now` is one that may be deferred onto
 * this snapshot (see `deferrableSuccesses`): not slow, and in a time window, in its current
 * bucket (a later one would expire buckets).
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordSuccess } from "@circuit/breaker/core";
 * import { isDeferrableSuccess } from "./transitions.ts";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ failureRate: 0.5, window: { duration: 1000, buckets: 10 } });
 * const snapshot = recordSuccess(policy, INITIAL_SNAPSHOT, 0, 0, 150); // bucket 1
 * assert.equal(isDeferrableSuccess(policy, snapshot, 0, 199), true);
 * assert.equal(isDeferrableSuccess(policy, snapshot, 0, 200), false);
 * ```
 */
export function isDeferrableSuccess(
  policy: Policy,
  snapshot: Snapshot,
  durationMs: number,
  now: number,
): boolean {
  const rules = policy.rules;
  if (rules === undefined || isSlow(rules, durationMs)) return false;
  const limits = rules.window;
  const window = snapshot.window;
  return limits.kind === "calls" ||
    (window?.kind === "time" && Math.floor(now / limits.bucketMs) <= window.headIndex);
}

/**
 * Whether a success of the snapshot's generation, taking `durationMs` and settled at `now`,
 * may be left unrecorded for now, after `deferred` others left so: `deferrableSuccesses` and
 * `isDeferrableSuccess` together. Recording them later with `recordSuccesses` gives the same
 * snapshot as recording each as it came.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordSuccess } from "@circuit/breaker/core";
 * import { defersSuccess } from "./transitions.ts";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ failureRate: 0.5, window: { calls: 100 } });
 * const started = recordSuccess(policy, INITIAL_SNAPSHOT, 0, 0, 0);
 * assert.equal(defersSuccess(policy, started, 0, 0, 0), true);
 * assert.equal(defersSuccess(policy, INITIAL_SNAPSHOT, 0, 0, 0), false); // no window yet
 * ```
 */
export function defersSuccess(
  policy: Policy,
  snapshot: Snapshot,
  deferred: number,
  durationMs: number,
  now: number,
): boolean {
  return deferred < deferrableSuccesses(policy, snapshot) &&
    isDeferrableSuccess(policy, snapshot, durationMs, now);
}

/**
 * Records `count` successes (none slow) admitted in `generation` and settled at `now`: the
 * same snapshot as `count` calls of `recordSuccess` with `durationMs` 0, made in one step
 * when `defersSuccess` accepts them (otherwise one by one).
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordSuccess } from "@circuit/breaker/core";
 * import { recordSuccesses } from "./transitions.ts";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ failureRate: 0.5, window: { calls: 100 } });
 * const started = recordSuccess(policy, INITIAL_SNAPSHOT, 0, 0, 0);
 * assert.equal(recordSuccesses(policy, started, 0, 41, 0).window?.calls, 42);
 * ```
 */
export function recordSuccesses(
  policy: Policy,
  snapshot: Snapshot,
  generation: number,
  count: number,
  now: number,
): Snapshot {
  const rules = policy.rules;
  if (
    rules !== undefined && count > 1 && generation === snapshot.generation &&
    defersSuccess(policy, snapshot, count - 1, 0, now)
  ) {
    const window = recordCalls(rules.window, snapshot.window, now, false, false, count);
    return withCounts(snapshot, 0, window, snapshot.lastFailure);
  }
  let next = snapshot;
  for (let i = 0; i < count; i++) next = recordSuccess(policy, next, generation, 0, now);
  return next;
}

/**
 * How many failures in a row may be left unrecorded on this snapshot for now, and recorded
 * later in one step (`recordFailures`): recording them would change only the failure count and
 * the last failure, needs no clock (see `failureNeedsClock`), and none of them would reach
 * `failureThreshold`. 0 unless closed, unisolated, not shared, with no window rule (a failure
 * counts in the window) and a failure already counted: the first failure of a run is recorded,
 * so a snapshot with failures left unrecorded is never one whose successes a shell may leave
 * unrecorded (`isQuiet`). A shell may then keep a count and the last failure instead of making
 * a new snapshot per failure, as long as it records them before anything reads or changes the
 * snapshot, and records a success only after them (it resets the count).
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordFailure } from "@circuit/breaker/core";
 * import { deferrableFailures } from "./transitions.ts";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ failureThreshold: 5 });
 * assert.equal(deferrableFailures(policy, INITIAL_SNAPSHOT), 0); // no failure counted yet
 * const failed = recordFailure(policy, INITIAL_SNAPSHOT, 0, new Error("down"), 0, 0);
 * assert.equal(deferrableFailures(policy, failed), 3); // the 2nd, 3rd and 4th; the 5th trips
 * ```
 */
export function deferrableFailures(policy: Policy, snapshot: Snapshot): number {
  const failureCount = snapshot.failureCount;
  if (
    failureCount === 0 || policy.rules !== undefined || snapshot.state !== "closed" ||
    snapshot.isolated !== 0 || policy.lease !== undefined
  ) {
    return 0;
  }
  return Math.max(0, policy.failureThreshold - failureCount - 1);
}

/**
 * Records `count` failures admitted in `generation`, the last of them `failure`: the same
 * snapshot as `count` calls of `recordFailure` (`durationMs` 0, at `now`) whose last failure
 * is `failure`, made in one step when `deferrableFailures` allows as many (otherwise one by
 * one, each with `failure`).
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordFailure } from "@circuit/breaker/core";
 * import { recordFailures } from "./transitions.ts";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ failureThreshold: Infinity });
 * const failed = recordFailure(policy, INITIAL_SNAPSHOT, 0, new Error("first"), 0, 0);
 * const last = new Error("last");
 * const next = recordFailures(policy, failed, 0, 41, last, 0);
 * assert.equal(next.failureCount, 42);
 * assert.equal(next.lastFailure, last);
 * ```
 */
export function recordFailures(
  policy: Policy,
  snapshot: Snapshot,
  generation: number,
  count: number,
  failure: unknown,
  now: number,
): Snapshot {
  if (
    count > 0 && generation === snapshot.generation && count <= deferrableFailures(policy, snapshot)
  ) {
    return withCounts(snapshot, snapshot.failureCount + count, snapshot.window, failure);
  }
  let next = snapshot;
  for (let i = 0; i < count; i++) next = recordFailure(policy, next, generation, failure, 0, now);
  return next;
}

/**
 * Whether, in this snapshot, a call is admitted without the clock and its success changes
 * nothing: closed with no failure counted, no window, no timeout, no failure results, and
 * not shared (a shared circuit tallies every outcome). A shell
 * may skip admission and recording while its snapshot is this one (and no listener needs events).
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, isQuiet } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(isQuiet(createPolicy({}), INITIAL_SNAPSHOT), true);
 * assert.equal(isQuiet(createPolicy({ failureRate: 0.5 }), INITIAL_SNAPSHOT), false);
 * ```
 */
export function isQuiet(policy: Policy, snapshot: Snapshot): boolean {
  return !policy.timed && policy.rules === undefined && policy.timeout === undefined &&
    policy.isFailureResult === undefined && policy.lease === undefined && policy.mode !== "off" &&
    policy.maxConcurrent === undefined &&
    snapshot.state === "closed" &&
    snapshot.isolated === 0 && snapshot.failureCount === 0;
}

/**
 * Whether recording a failure in this snapshot needs the time: when it may open the circuit,
 * or feeds a window.
 *
 * @example
 * ```ts
 * import { createPolicy, failureNeedsClock, INITIAL_SNAPSHOT } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(failureNeedsClock(createPolicy({ failureThreshold: 3 }), INITIAL_SNAPSHOT), false);
 * assert.equal(failureNeedsClock(createPolicy({ failureThreshold: 1 }), INITIAL_SNAPSHOT), true);
 * ```
 */
export function failureNeedsClock(policy: Policy, snapshot: Snapshot): boolean {
  return snapshot.state !== "closed" || policy.rules !== undefined ||
    snapshot.failureCount + 1 >= policy.failureThreshold;
}

/**
 * Decides whether a call may run. Returns the snapshot to keep when it may (the same object
 * while closed), or a {@linkcode Rejection}. An elapsed open period turns half-open here, and
 * the call becomes its first trial.
 *
 * @example
 * ```ts
 * import { admit, createPolicy, INITIAL_SNAPSHOT } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(admit(createPolicy({}), INITIAL_SNAPSHOT, 0), INITIAL_SNAPSHOT);
 * ```
 */
export function admit(policy: Policy, snapshot: Snapshot, now: number): Snapshot | Rejection {
  if (snapshot.isolated !== 0) return reject(snapshot, "isolated", Infinity);
  switch (snapshot.state) {
    case "closed":
      return snapshot;
    case "open": {
      const openUntil = snapshot.openUntil as number;
      if (now < openUntil) return reject(snapshot, "open", openUntil - now);
      // A shared circuit's trials wait for the lease, taken through the store (`takeLease`).
      if (policy.lease !== undefined) return reject(snapshot, "half-open", 0);
      return { ...halfOpenFrom(policy, snapshot, now), trials: 1 };
    }
    case "half-open": {
      const lease = policy.lease;
      if (
        snapshot.trials < policy.halfOpenMaxCalls &&
        (lease === undefined || holdsLease(lease.holder, snapshot, now))
      ) {
        return { ...snapshot, trials: snapshot.trials + 1 };
      }
      return reject(snapshot, "half-open", 0);
    }
    case "recovering": {
      const ramp = policy.recoveryRamp;
      if (ramp === undefined || now >= (snapshot.rampUntil as number)) return endRamp(snapshot);
      const calls = snapshot.rampCalls;
      const next = { ...snapshot, rampCalls: calls + 1 };
      const share = rampShare(ramp.initialRate, snapshot, now);
      // Admit whenever the running total of `share` crosses an integer: over any k
      // consecutive calls about k * share are admitted, without randomness.
      return Math.ceil((calls + 1) * share) > Math.ceil(calls * share)
        ? next
        : reject(next, "recovering", 0);
    }
  }
}

/**
 * The share of calls the ramp admits at `now`: from `initialRate` at its start to 1 at its end.
 *
 * @example
 * ```ts
 * import { INITIAL_SNAPSHOT, rampShare } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const ramp = { ...INITIAL_SNAPSHOT, state: "recovering", rampStart: 0, rampUntil: 1000 } as const;
 * assert.equal(rampShare(0.1, ramp, 500), 0.55);
 * ```
 */
export function rampShare(initialRate: number, snapshot: Snapshot, now: number): number {
  const start = snapshot.rampStart as number;
  const length = (snapshot.rampUntil as number) - start;
  const elapsed = Math.min(Math.max(now - start, 0), length);
  return length <= 0 ? 1 : initialRate + (1 - initialRate) * (elapsed / length);
}

/**
 * Records a successful call admitted in `generation`. While closed it resets the consecutive
 * count and feeds the window (a slow success can trip the slow-call rule); while half-open it
 * counts a successful trial and closes the circuit after `successThreshold` of them.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordSuccess } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(recordSuccess(createPolicy({}), INITIAL_SNAPSHOT, 0, 0, 0), INITIAL_SNAPSHOT);
 * ```
 */
export function recordSuccess(
  policy: Policy,
  snapshot: Snapshot,
  generation: number,
  durationMs: number,
  now: number,
): Snapshot {
  if (generation !== snapshot.generation || snapshot.isolated !== 0) return snapshot;
  switch (snapshot.state) {
    case "closed":
    case "recovering": {
      const current = settled(snapshot, now);
      const rules = policy.rules;
      if (rules === undefined) {
        return current.failureCount === 0 ? current : { ...current, failureCount: 0 };
      }
      const slow = isSlow(rules, durationMs);
      const window = recordCall(rules.window, current.window, now, false, slow);
      const next = withCounts(current, 0, window, current.lastFailure);
      return rulesTrip(policy, rules, window) ? openFrom(policy, next, now, undefined) : next;
    }
    case "half-open": {
      const trialSuccesses = snapshot.trialSuccesses + 1;
      if (trialSuccesses >= policy.successThreshold) return closeFrom(policy, snapshot, now, true);
      return { ...snapshot, trials: Math.max(0, snapshot.trials - 1), trialSuccesses };
    }
    default:
      return snapshot; // no call runs in an open generation
  }
}

/**
 * Records a failed call admitted in `generation` (`failure` is the error, or the value that
 * `isFailureResult` marked). Opens the circuit when a rule trips; a failed trial reopens it.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordFailure } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const next = recordFailure(createPolicy({ failureThreshold: 1 }), INITIAL_SNAPSHOT, 0, new Error("down"), 0, 5);
 * assert.equal(next.state, "open");
 * assert.equal(next.openUntil, 30005);
 * ```
 */
export function recordFailure(
  policy: Policy,
  snapshot: Snapshot,
  generation: number,
  failure: unknown,
  durationMs: number,
  now: number,
): Snapshot {
  if (generation !== snapshot.generation || snapshot.isolated !== 0) return snapshot;
  switch (snapshot.state) {
    case "closed":
    case "recovering": {
      const current = settled(snapshot, now);
      const failureCount = current.failureCount + 1;
      const rules = policy.rules;
      const window = rules === undefined
        ? current.window
        : recordCall(rules.window, current.window, now, true, isSlow(rules, durationMs));
      const next = withCounts(current, failureCount, window, failure);
      const trips = failureCount >= policy.failureThreshold ||
        (rules !== undefined && rulesTrip(policy, rules, window as WindowState));
      return trips ? openFrom(policy, next, now, failure) : next;
    }
    case "half-open":
      return openFrom(
        policy,
        { ...snapshot, failureCount: snapshot.failureCount + 1, lastFailure: failure },
        now,
        failure,
      );
    default:
      return snapshot;
  }
}

/**
 * The snapshot once the clock is seen to read `now`, earlier than it read before (set back by
 * an NTP step, a VM restored): an open period ends at once, so the next call is a trial. How
 * much of the period had passed before the step cannot be known, and an open period must never
 * last longer than its length: ending it early costs one trial call, which reopens the circuit
 * if the dependency still fails. Nothing else depends on the clock going forward.
 *
 * @example
 * ```ts
 * import {
 *   clockSetBack,
 *   createPolicy,
 *   INITIAL_SNAPSHOT,
 *   open,
 *   stateAt,
 * } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const opened = open(createPolicy({ recoveryTimeout: 30_000 }), INITIAL_SNAPSHOT, 3_600_000);
 * assert.equal(stateAt(clockSetBack(opened, 1_000), 1_000), "half-open");
 * ```
 */
export function clockSetBack(snapshot: Snapshot, now: number): Snapshot {
  return snapshot.state === "open" && now < (snapshot.openUntil as number)
    ? { ...snapshot, openUntil: now }
    : snapshot;
}

/**
 * The window's counts that tripped the circuit, when recording one outcome (`failed` or not,
 * taking `durationMs`) at `now` took `before` to `after` by opening it from closed or
 * recovering: opening clears the window, so the outcome is replayed onto the window it met.
 * `undefined` for any other change, and when no rule judges a window.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordFailure, tripStats } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ failureRate: 0.5, minimumCalls: 1, window: { calls: 10 } });
 * const after = recordFailure(policy, INITIAL_SNAPSHOT, 0, new Error("down"), 0, 5);
 * assert.equal(tripStats(policy, INITIAL_SNAPSHOT, after, true, 0, 5)?.failures, 1);
 * ```
 */
export function tripStats(
  policy: Policy,
  before: Snapshot,
  after: Snapshot,
  failed: boolean,
  durationMs: number,
  now: number,
): WindowStats | undefined {
  const rules = policy.rules;
  if (
    rules === undefined || after.state !== "open" ||
    (before.state !== "closed" && before.state !== "recovering")
  ) {
    return undefined;
  }
  const window = recordCall(
    rules.window,
    settled(before, now).window,
    now,
    failed,
    isSlow(rules, durationMs),
  );
  return windowStats(rules.window, window, now);
}

/**
 * Records a call that counts neither way (an ignored error, the caller's abort): a trial
 * returns its permit, nothing else changes.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, recordNeutral } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const trial = { ...INITIAL_SNAPSHOT, state: "half-open", trials: 1 } as const;
 * assert.equal(recordNeutral(createPolicy({}), trial, 0).trials, 0);
 * ```
 */
export function recordNeutral(_policy: Policy, snapshot: Snapshot, generation: number): Snapshot {
  if (generation !== snapshot.generation || snapshot.state !== "half-open") return snapshot;
  return snapshot.trials === 0 ? snapshot : { ...snapshot, trials: snapshot.trials - 1 };
}

/**
 * Records the outcomes another breaker sharing the circuit tallied since its last sync (or
 * this breaker's own, onto a newer stored snapshot), as if they came after the snapshot's:
 * the consecutive count adds up unless the tally saw a success, the windows merge, and the
 * circuit opens when a rule trips. A tally of another generation changes nothing.
 *
 * @example
 * ```ts
 * import { createPolicy, emptyTally, INITIAL_SNAPSHOT, recordTally } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const tally = { ...emptyTally(0), outcomes: 3, failures: 3 };
 * const stored = { ...INITIAL_SNAPSHOT, failureCount: 2 };
 * assert.equal(recordTally(createPolicy({ failureThreshold: 5 }), stored, tally, 0).state, "open");
 * ```
 */
export function recordTally(
  policy: Policy,
  snapshot: Snapshot,
  tally: Tally,
  now: number,
): Snapshot {
  if (
    tally.outcomes === 0 || tally.generation !== snapshot.generation || snapshot.isolated !== 0 ||
    (snapshot.state !== "closed" && snapshot.state !== "recovering")
  ) {
    return snapshot;
  }
  const current = settled(snapshot, now);
  const failureCount = tally.reset ? tally.failures : current.failureCount + tally.failures;
  const rules = policy.rules;
  const window = rules === undefined
    ? current.window
    : mergeWindows(rules.window, current.window, tally.window, now);
  const next = withCounts(current, failureCount, window, current.lastFailure);
  const trips = (tally.failures !== 0 && failureCount >= policy.failureThreshold) ||
    (rules !== undefined && window !== undefined && rulesTrip(policy, rules, window));
  return trips ? openFrom(policy, next, now, undefined) : next;
}

/**
 * The local snapshot of a breaker sharing its circuit, once it learns the stored one: the
 * stored state with this breaker's unsynced `tally` recorded onto it, keeping what is local
 * (isolation, trials in flight in the same generation, the last failure).
 *
 * @example
 * ```ts
 * import { createPolicy, emptyTally, follow, INITIAL_SNAPSHOT } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const stored = { ...INITIAL_SNAPSHOT, state: "open", generation: 1, openUntil: 5000 } as const;
 * assert.equal(follow(createPolicy({}), INITIAL_SNAPSHOT, stored, emptyTally(0), 0).state, "open");
 * ```
 */
export function follow(
  policy: Policy,
  local: Snapshot,
  stored: Snapshot,
  tally: Tally,
  now: number,
): Snapshot {
  const next = recordTally(policy, stored, tally, now);
  return {
    ...next,
    trials: next.generation === local.generation ? local.trials : 0,
    isolated: local.isolated,
    lastFailure: local.lastFailure,
  };
}

/**
 * The local snapshot of a breaker sharing its circuit once it reads `stored` (the store held
 * `previous` when it last looked). A local transition not yet written (`transitionPending`)
 * that was made on what the store still holds stands, and is to be written over it; otherwise
 * the breaker follows the store. Whatever it returns, a generation other than `stored`'s is a
 * transition to write.
 *
 * @example
 * ```ts
 * import {
 *   createPolicy,
 *   emptyTally,
 *   INITIAL_SNAPSHOT,
 *   open,
 *   reconcile,
 * } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({});
 * const opened = open(policy, INITIAL_SNAPSHOT, 0);
 * const counted = { ...INITIAL_SNAPSHOT, failureCount: 1 };
 * const next = reconcile(policy, opened, INITIAL_SNAPSHOT, counted, emptyTally(0), true, 0);
 * assert.equal(next, opened);
 * ```
 */
export function reconcile(
  policy: Policy,
  local: Snapshot,
  previous: Snapshot | undefined,
  stored: Snapshot,
  tally: Tally,
  transitionPending: boolean,
  now: number,
): Snapshot {
  if (transitionPending && (previous === undefined || stored.generation === previous.generation)) {
    return local;
  }
  return follow(policy, local, stored, tally, now);
}

/**
 * Opens the circuit by hand, for a normal recovery period from `now`.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, open } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(open(createPolicy({ recoveryTimeout: 100 }), INITIAL_SNAPSHOT, 0).openUntil, 100);
 * ```
 */
export function open(policy: Policy, snapshot: Snapshot, now: number): Snapshot {
  return openFrom(policy, settled(snapshot, now), now, undefined);
}

/**
 * Puts the circuit in half-open by hand: the next calls are trials.
 *
 * @example
 * ```ts
 * import { createPolicy, halfOpen, INITIAL_SNAPSHOT } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(halfOpen(createPolicy({}), INITIAL_SNAPSHOT, 0).state, "half-open");
 * ```
 */
export function halfOpen(policy: Policy, snapshot: Snapshot, now: number): Snapshot {
  const current = settled(snapshot, now);
  const lease = policy.lease;
  if (
    current.state === "half-open" && (lease === undefined || holdsLease(lease.holder, current, now))
  ) {
    return current;
  }
  return halfOpenFrom(policy, current, now);
}

/**
 * Whether a breaker sharing its circuit should take the trial lease now: the open period
 * has elapsed, or the half-open circuit's lease is missing or expired. Taking it is a write to
 * the store (see `takeLease`); until it succeeds, calls are turned away.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, sharePolicy, wantsLease } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const open = { ...INITIAL_SNAPSHOT, state: "open", openUntil: 1000 } as const;
 * assert.equal(wantsLease(sharePolicy(createPolicy({}), "a"), open, 1000), true);
 * ```
 */
export function wantsLease(policy: Policy, snapshot: Snapshot, now: number): boolean {
  if (policy.lease === undefined || snapshot.isolated !== 0) return false;
  if (snapshot.state === "open") return now >= (snapshot.openUntil as number);
  return snapshot.state === "half-open" &&
    (snapshot.lease === undefined || now >= snapshot.lease.until);
}

/**
 * The trial lease taken by this breaker (`policy.lease.holder`): a new half-open generation
 * whose trials only this breaker runs until `now + policy.lease.duration`. Written to the store
 * by compare-and-set, so exactly one breaker gets each lease.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, sharePolicy, takeLease } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const open = { ...INITIAL_SNAPSHOT, state: "open", openUntil: 1000 } as const;
 * const policy = sharePolicy(createPolicy({}), "a");
 * assert.deepEqual(takeLease(policy, open, 1000).lease, { holder: "a", until: 31000 });
 * ```
 */
export function takeLease(policy: Policy, snapshot: Snapshot, now: number): Snapshot {
  return halfOpenFrom(policy, settled(snapshot, now), now);
}

function holdsLease(holder: string, snapshot: Snapshot, now: number): boolean {
  const lease = snapshot.lease;
  return lease !== undefined && lease.holder === holder && now < lease.until;
}

/**
 * Closes the circuit by hand: counts (the window's too) and openings reset, and no recovery
 * ramp starts.
 *
 * @example
 * ```ts
 * import { close, createPolicy, INITIAL_SNAPSHOT, open } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({});
 * assert.equal(close(policy, open(policy, INITIAL_SNAPSHOT, 0), 1).state, "closed");
 * ```
 */
export function close(policy: Policy, snapshot: Snapshot, now: number): Snapshot {
  const current = settled(snapshot, now);
  if (current.state === "closed") {
    return current.failureCount === 0 && current.openings === 0 && current.window === undefined
      ? current
      : { ...current, failureCount: 0, openings: 0, window: undefined };
  }
  return closeFrom(policy, current, now, false);
}

/**
 * Adds an isolation hold: the circuit rejects every call until the last hold is released.
 * Outcomes of calls already running are ignored.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, isolate } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(isolate(createPolicy({}), INITIAL_SNAPSHOT, 0).isolated, 1);
 * ```
 */
export function isolate(_policy: Policy, snapshot: Snapshot, now: number): Snapshot {
  if (snapshot.isolated !== 0) return { ...snapshot, isolated: snapshot.isolated + 1 };
  const current = settled(snapshot, now);
  return { ...current, isolated: 1, generation: current.generation + 1, trials: 0 };
}

/**
 * Releases an isolation hold; releasing the last one closes the circuit.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, isolate, release } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({});
 * assert.equal(release(policy, isolate(policy, INITIAL_SNAPSHOT, 0), 0).isolated, 0);
 * ```
 */
export function release(policy: Policy, snapshot: Snapshot, now: number): Snapshot {
  if (snapshot.isolated > 1) return { ...snapshot, isolated: snapshot.isolated - 1 };
  if (snapshot.isolated === 0) return snapshot;
  return closeFrom(policy, { ...snapshot, isolated: 0 }, now, false);
}

/**
 * Adapts a snapshot to a new policy (`configure()`): the window is kept only when the new
 * policy windows the same history, and a ramp ends when the new policy has none.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, reconfigure } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const next = createPolicy({ failureThreshold: 2 });
 * assert.equal(reconfigure(createPolicy({}), next, INITIAL_SNAPSHOT), INITIAL_SNAPSHOT);
 * ```
 */
export function reconfigure(before: Policy, after: Policy, snapshot: Snapshot): Snapshot {
  let next = snapshot;
  if (next.window !== undefined && !sameWindow(before.rules?.window, after.rules?.window)) {
    next = { ...next, window: undefined };
  }
  if (next.state === "recovering" && after.recoveryRamp === undefined) next = endRamp(next);
  return next;
}

function reject(snapshot: Snapshot, rejectedIn: BreakerState, retryAfterMs: number): Rejection {
  return { rejectedIn, retryAfterMs, snapshot };
}

function isSlow(rules: WindowRules, durationMs: number): boolean {
  return rules.slowCallDuration !== undefined && durationMs > rules.slowCallDuration;
}

/**
 * The snapshot with new counts, written out in full (in `INITIAL_SNAPSHOT`'s field order):
 * engines build this a few times faster than a spread, and it is made on every windowed call.
 */
function withCounts(
  snapshot: Snapshot,
  failureCount: number,
  window: WindowState | undefined,
  lastFailure: unknown,
): Snapshot {
  return {
    state: snapshot.state,
    generation: snapshot.generation,
    failureCount,
    openUntil: snapshot.openUntil,
    openings: snapshot.openings,
    trials: snapshot.trials,
    trialSuccesses: snapshot.trialSuccesses,
    rampStart: snapshot.rampStart,
    rampUntil: snapshot.rampUntil,
    rampCalls: snapshot.rampCalls,
    window,
    lease: snapshot.lease,
    isolated: snapshot.isolated,
    lastFailure,
  };
}

/** The snapshot with an elapsed ramp ended: what any transition at `now` starts from. */
function settled(snapshot: Snapshot, now: number): Snapshot {
  return snapshot.state === "recovering" && now >= (snapshot.rampUntil as number)
    ? endRamp(snapshot)
    : snapshot;
}

/** The rate rules (once the window has `minimumCalls`) and `shouldTrip`. */
function rulesTrip(policy: Policy, rules: WindowRules, window: WindowState): boolean {
  const { calls, failures, slowCalls } = window;
  if (calls >= rules.minimumCalls) {
    if (rules.failureRate !== undefined && failures / calls >= rules.failureRate) return true;
    if (rules.slowCallRate !== undefined && slowCalls / calls >= rules.slowCallRate) return true;
  }
  if (rules.shouldTrip === undefined) return false;
  try {
    return Boolean(rules.shouldTrip(statsOf(calls, failures, slowCalls)));
  } catch (error) {
    policy.report(
      `Circuit ${quoteName(policy.name)}: "shouldTrip" threw; counting it as false`,
      error,
    );
    return false;
  }
}

function openFrom(policy: Policy, snapshot: Snapshot, now: number, failure: unknown): Snapshot {
  const openings = snapshot.openings + 1;
  let period = recoveryPeriod(policy, openings, failure ?? snapshot.lastFailure);
  if (failure !== undefined) {
    const hint = retryAfterHint(failure, now);
    if (hint !== undefined) period = Math.max(period, Math.min(hint, policy.maxRetryAfter));
  }
  return {
    ...snapshot,
    state: "open",
    generation: snapshot.generation + 1,
    openUntil: now + period,
    openings,
    trials: 0,
    trialSuccesses: 0,
    rampStart: undefined,
    rampUntil: undefined,
    rampCalls: 0,
    window: undefined,
    lease: undefined,
  };
}

function recoveryPeriod(policy: Policy, openings: number, lastFailure: unknown): number {
  const timeout = policy.recoveryTimeout;
  if (typeof timeout === "number") return timeout;
  let period: unknown;
  try {
    period = timeout({ openings, lastFailure });
  } catch (error) {
    policy.report(
      `Circuit ${quoteName(policy.name)}: "recoveryTimeout" threw; using ${DEFAULT_PERIOD} ms`,
      error,
    );
    return DEFAULT_PERIOD;
  }
  if (typeof period === "number" && Number.isFinite(period) && period >= 0) return period;
  policy.report(
    `Circuit ${quoteName(policy.name)}: "recoveryTimeout" returned ${
      typeof period === "string" ? JSON.stringify(period) : String(period)
    }, not a finite number >= 0; using ${DEFAULT_PERIOD} ms`,
  );
  return DEFAULT_PERIOD;
}

function halfOpenFrom(policy: Policy, snapshot: Snapshot, now: number): Snapshot {
  const lease = policy.lease;
  return {
    ...snapshot,
    state: "half-open",
    generation: snapshot.generation + 1,
    openUntil: undefined,
    trials: 0,
    trialSuccesses: 0,
    rampStart: undefined,
    rampUntil: undefined,
    rampCalls: 0,
    window: undefined,
    lease: lease === undefined ? undefined : { holder: lease.holder, until: now + lease.duration },
  };
}

function closeFrom(policy: Policy, snapshot: Snapshot, now: number, byTrials: boolean): Snapshot {
  const ramp = byTrials ? policy.recoveryRamp : undefined;
  return {
    ...snapshot,
    state: ramp === undefined ? "closed" : "recovering",
    generation: snapshot.generation + 1,
    failureCount: 0,
    openUntil: undefined,
    openings: ramp === undefined ? 0 : snapshot.openings,
    trials: 0,
    trialSuccesses: 0,
    rampStart: ramp === undefined ? undefined : now,
    rampUntil: ramp === undefined ? undefined : now + ramp.duration,
    rampCalls: 0,
    window: undefined,
    lease: undefined,
  };
}

/** The ramp is over: closed, and `openings` resets. Not a change of generation. */
function endRamp(snapshot: Snapshot): Snapshot {
  return {
    ...snapshot,
    state: "closed",
    openings: 0,
    rampStart: undefined,
    rampUntil: undefined,
    rampCalls: 0,
  };
}

/**
 * Whether a breaker in `snapshot` can be forgotten and made again from scratch without losing
 * anything: closed (a recovery ramp that has ended counts), not isolated, no consecutive
 * failure, and no failure or slow call in its window. A keyed group evicts such breakers first.
 *
 * @example
 * ```ts
 * import { createPolicy, INITIAL_SNAPSHOT, isForgettable } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(isForgettable(createPolicy({}), INITIAL_SNAPSHOT, 0), true);
 * const counting = { ...INITIAL_SNAPSHOT, failureCount: 2 };
 * assert.equal(isForgettable(createPolicy({}), counting, 0), false);
 * ```
 */
export function isForgettable(policy: Policy, snapshot: Snapshot, now: number): boolean {
  if (snapshot.failureCount !== 0 || stateAt(snapshot, now) !== "closed") return false;
  if (snapshot.window === undefined) return true;
  const stats = windowStats(policy.rules?.window, snapshot.window, now);
  return stats.failures === 0 && stats.slowCalls === 0;
}
