/**
 * Counters, call durations and a short history of state changes for the breakers of a
 * registry, kept in memory for {@linkcode statusHandler}: the Prometheus text gets counters of
 * calls by outcome, of transitions, and a duration histogram; the JSON and the page get when
 * each breaker opened and last failed, and its last transitions with their cause.
 *
 * Recording is opt-in because it listens to every call: each call of a recorded breaker reads
 * the clock and runs a listener (the same cost as any listener, or as `@circuit/breaker/otel`).
 * The members of a `BreakerGroup` are counted together under the group's name, so that the
 * series stay bounded whatever the number of keys.
 *
 * @example
 * ```ts
 * import { Breaker, BreakerMetrics, statusHandler } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * using metrics = new BreakerMetrics(); // the default registry
 * const status = statusHandler(undefined, { metrics });
 * await new Breaker({ name: "db" }).execute(() => Promise.resolve("row"));
 * const response = await status(new Request("http://localhost/status?format=prometheus"));
 * assert.match(await response.text(), /circuit_breaker_calls_total\{.*"db".*\} 1/);
 * ```
 *
 * @module
 */

import type { Breaker } from "./breaker.ts";
import { callHooks } from "./call_protocol.ts";
import { fail, optionsObject } from "./core/validate.ts";
import type { BreakerState } from "./core/snapshot.ts";
import type { WindowStats } from "./core/window.ts";
import type { BreakerListener, StateChangeEvent } from "./events.ts";
import { describeFailure } from "./failure_text.ts";
import { formatRate } from "./duration_text.ts";
import { operatorActing } from "./operator_holds.ts";
import { BreakerRegistry, defaultRegistry, groupOf } from "./registry.ts";

/** Bucket bounds of the duration histogram, in seconds: 5 ms to 60 s (as in the OTel export). */
export const DURATION_BOUNDS: readonly number[] = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
  30,
  60,
];

/**
 * One state change of a breaker, with its cause.
 *
 * @example
 * ```ts
 * import type { Transition } from "@circuit/breaker";
 * const trip: Transition = {
 *   at: 1_700_000_000_000,
 *   from: "closed",
 *   to: "open",
 *   cause: "5 consecutive failures; last: Error: ECONNREFUSED",
 * };
 * ```
 */
export interface Transition {
  /** When it happened: epoch ms by the breaker's clock. */
  readonly at: number;
  /** The state before. */
  readonly from: BreakerState;
  /** The state after. */
  readonly to: BreakerState;
  /** Why, in words. */
  readonly cause: string;
}

/**
 * What {@linkcode BreakerMetrics} remembers of one breaker.
 *
 * @example
 * ```ts
 * import { BreakerMetrics, BreakerRegistry } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const registry = new BreakerRegistry();
 * using metrics = new BreakerMetrics(registry);
 * const db = registry.breaker("db");
 * db.open();
 * assert.equal(metrics.historyOf(db).transitions.length, 1);
 * ```
 */
export interface BreakerHistory {
  /** The last transitions, oldest first (at most the `history` option). */
  readonly transitions: readonly Transition[];
  /** When the circuit last left `closed` (epoch ms), or `undefined`. */
  readonly openedAt: number | undefined;
  /** When the last failure was recorded (epoch ms), or `undefined`. */
  readonly lastFailureAt: number | undefined;
}

/**
 * Counts of one breaker (or of the members of one group, added up) since recording started.
 *
 * @example
 * ```ts
 * import { BreakerMetrics, BreakerRegistry } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const registry = new BreakerRegistry();
 * using metrics = new BreakerMetrics(registry);
 * const db = registry.breaker("db");
 * await db.execute(async () => "row");
 * assert.equal(metrics.tallyOf(db)?.calls.success, 1);
 * ```
 */
export interface CallTally {
  /** Calls by outcome: `success`, `failure` (ran and counted so), `rejected` (turned away). */
  readonly calls: { readonly success: number; readonly failure: number; readonly rejected: number };
  /** Durations of the calls that ran, by outcome. */
  readonly durations: { readonly success: DurationHistogram; readonly failure: DurationHistogram };
  /** Transitions by `from` and `to`, keyed `"from>to"`. */
  readonly transitions: ReadonlyMap<string, number>;
}

/**
 * Call durations in the buckets of {@linkcode DURATION_BOUNDS}.
 *
 * @example
 * ```ts
 * import type { DurationHistogram } from "@circuit/breaker";
 * const empty: DurationHistogram = { counts: new Array(17).fill(0), sum: 0, count: 0 };
 * ```
 */
export interface DurationHistogram {
  /** Calls per bucket, not cumulative; the last bucket is above the largest bound. */
  readonly counts: readonly number[];
  /** The sum of the durations, in seconds. */
  readonly sum: number;
  /** How many durations. */
  readonly count: number;
}

/**
 * Options of {@linkcode BreakerMetrics}.
 *
 * @example
 * ```ts
 * import type { BreakerMetricsOptions } from "@circuit/breaker";
 * const options: BreakerMetricsOptions = { history: 20 };
 * ```
 */
export interface BreakerMetricsOptions {
  /**
   * Transitions remembered per breaker (an integer >= 0).
   * @default 10
   */
  readonly history?: number;
}

class MutableHistogram implements DurationHistogram {
  counts: number[] = new Array(DURATION_BOUNDS.length + 1).fill(0);
  sum = 0;
  count = 0;

  add(seconds: number): void {
    let bucket = 0;
    while (bucket < DURATION_BOUNDS.length && seconds > DURATION_BOUNDS[bucket]!) bucket++;
    this.counts[bucket]!++;
    this.sum += seconds;
    this.count++;
  }
}

class MutableTally implements CallTally {
  calls = { success: 0, failure: 0, rejected: 0 };
  durations = { success: new MutableHistogram(), failure: new MutableHistogram() };
  transitions = new Map<string, number>();
}

class MutableHistory implements BreakerHistory {
  transitions: Transition[] = [];
  openedAt: number | undefined = undefined;
  lastFailureAt: number | undefined = undefined;
}

const NO_HISTORY: BreakerHistory = /* @__PURE__ */ Object.freeze({
  transitions: /* @__PURE__ */ Object.freeze([]) as readonly Transition[],
  openedAt: undefined,
  lastFailureAt: undefined,
});

/**
 * Records the calls, rejections and state changes of the breakers of a registry (by default
 * {@linkcode defaultRegistry}), now and later, until disposed. Pass it to
 * {@linkcode statusHandler} as `metrics`. See the module documentation for its cost.
 *
 * @example
 * ```ts
 * import { BreakerMetrics, BreakerRegistry, statusHandler } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const registry = new BreakerRegistry();
 * using metrics = new BreakerMetrics(registry, { history: 20 });
 * const status = statusHandler(registry, { metrics });
 * registry.breaker("db").open();
 * const response = await status(new Request("http://localhost/status?format=json"));
 * assert.equal((await response.json()).breakers[0].history[0].to, "open");
 * ```
 */
export class BreakerMetrics implements Disposable {
  readonly #registry: BreakerRegistry;
  readonly #historyLength: number;
  readonly #tallies = new WeakMap<Breaker, MutableTally>();
  readonly #groupTallies = new Map<string, MutableTally>();
  readonly #histories = new WeakMap<Breaker, MutableHistory>();
  readonly #subscription: Disposable;

  /**
   * Starts recording the breakers of `registry`. Throws a `TypeError` or `RangeError` naming
   * a bad argument.
   *
   * @throws {TypeError} When `registry` is not a `BreakerRegistry`, or an option is unknown or has
   * the wrong type.
   * @throws {RangeError} When `history` is out of range.
   *
   * @example
   * ```ts
   * import { BreakerMetrics, BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * using _metrics = new BreakerMetrics();
   * assert.throws(() => new BreakerMetrics(new BreakerRegistry(), { history: -1 }), RangeError);
   * ```
   */
  constructor(registry: BreakerRegistry = defaultRegistry, options: BreakerMetricsOptions = {}) {
    const context = "Cannot create breaker metrics";
    if (!(registry instanceof BreakerRegistry)) {
      fail(context, "registry", "a BreakerRegistry", registry, true);
    }
    optionsObject(context, options);
    for (const key of Object.keys(options)) {
      if (key !== "history") {
        throw new TypeError(`${context}: unknown option ${JSON.stringify(key)}`);
      }
    }
    const { history = 10 } = options;
    if (typeof history !== "number" || !Number.isSafeInteger(history) || history < 0) {
      fail(context, "history", "an integer >= 0", history);
    }
    this.#registry = registry;
    this.#historyLength = history;
    this.#subscription = registry.addListener(this.#listener());
  }

  /**
   * The registry recorded.
   *
   * @example
   * ```ts
   * import { BreakerMetrics, defaultRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * using metrics = new BreakerMetrics();
   * assert.equal(metrics.registry, defaultRegistry);
   * ```
   */
  get registry(): BreakerRegistry {
    return this.#registry;
  }

  /**
   * The counts of `breaker`, or of its group when it is a group's member; `undefined` before
   * anything was recorded.
   *
   * @example
   * ```ts
   * import { BreakerMetrics, BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const registry = new BreakerRegistry();
   * using metrics = new BreakerMetrics(registry);
   * assert.equal(metrics.tallyOf(registry.breaker("db")), undefined); // nothing recorded yet
   * ```
   */
  tallyOf(breaker: Breaker): CallTally | undefined {
    const group = groupOf(this.#registry, breaker);
    return group === undefined ? this.#tallies.get(breaker) : this.#groupTallies.get(group);
  }

  /**
   * The counts of the members of the group named `group`, added up.
   *
   * @example
   * ```ts
   * import { BreakerGroup, BreakerMetrics, BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const registry = new BreakerRegistry();
   * using metrics = new BreakerMetrics(registry);
   * const hosts = new BreakerGroup({ name: "hosts", registry });
   * await hosts.get("a.example").execute(async () => "ok");
   * assert.equal(metrics.groupTallyOf("hosts")?.calls.success, 1);
   * ```
   */
  groupTallyOf(group: string): CallTally | undefined {
    return this.#groupTallies.get(group);
  }

  /**
   * The last transitions of `breaker`, when it opened and when it last failed.
   *
   * @example
   * ```ts
   * import { BreakerMetrics, BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const registry = new BreakerRegistry();
   * using metrics = new BreakerMetrics(registry);
   * const db = registry.breaker("db");
   * db.open();
   * assert.equal(metrics.historyOf(db).transitions[0]?.to, "open");
   * ```
   */
  historyOf(breaker: Breaker): BreakerHistory {
    return this.#histories.get(breaker) ?? NO_HISTORY;
  }

  /**
   * Stops recording; what was recorded stays readable.
   *
   * @example
   * ```ts
   * import { BreakerMetrics, BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const registry = new BreakerRegistry();
   * const metrics = new BreakerMetrics(registry);
   * const db = registry.breaker("db");
   * await db.execute(() => Promise.resolve("row"));
   * metrics[Symbol.dispose]();
   * await db.execute(() => Promise.resolve("row")); // no longer counted
   * assert.equal(metrics.tallyOf(db)?.calls.success, 1);
   * ```
   */
  [Symbol.dispose](): void {
    this.#subscription[Symbol.dispose]();
  }

  #tally(breaker: Breaker): MutableTally {
    const group = groupOf(this.#registry, breaker);
    if (group !== undefined) {
      let tally = this.#groupTallies.get(group);
      if (tally === undefined) this.#groupTallies.set(group, tally = new MutableTally());
      return tally;
    }
    let tally = this.#tallies.get(breaker);
    if (tally === undefined) this.#tallies.set(breaker, tally = new MutableTally());
    return tally;
  }

  #history(breaker: Breaker): MutableHistory {
    let history = this.#histories.get(breaker);
    if (history === undefined) this.#histories.set(breaker, history = new MutableHistory());
    return history;
  }

  #listener(): BreakerListener {
    return {
      success: ({ breaker, durationMs }) => {
        const tally = this.#tally(breaker);
        tally.calls.success++;
        tally.durations.success.add(durationMs / 1_000);
      },
      failure: ({ breaker, durationMs }) => {
        const tally = this.#tally(breaker);
        tally.calls.failure++;
        tally.durations.failure.add(durationMs / 1_000);
        this.#history(breaker).lastFailureAt = timeOf(breaker);
      },
      rejected: ({ breaker }) => {
        this.#tally(breaker).calls.rejected++;
      },
      stateChange: (event) => {
        const { breaker, from, to } = event;
        const key = `${from}>${to}`;
        const transitions = this.#tally(breaker).transitions;
        transitions.set(key, (transitions.get(key) ?? 0) + 1);
        const history = this.#history(breaker);
        const at = timeOf(breaker);
        if (from === "closed") history.openedAt = at;
        else if (to === "closed") history.openedAt = undefined;
        if (this.#historyLength === 0) return;
        history.transitions.push({ at, from, to, cause: causeOf(event) });
        if (history.transitions.length > this.#historyLength) history.transitions.shift();
      },
    };
  }
}

/** Now by the breaker's own clock (a test's manual clock, too); `Date.now()` if it breaks. */
function timeOf(breaker: Breaker): number {
  try {
    return callHooks(breaker).now();
  } catch {
    return Date.now();
  }
}

/** Why a breaker changed state, from the event and the breaker as it is just after. */
function causeOf(event: StateChangeEvent): string {
  const { breaker, from, to } = event;
  const last = describeFailure(breaker.lastFailure);
  const lastText = last === null ? "" : `; last: ${last}`;
  switch (to) {
    case "isolated":
      return operatorActing(breaker) ? "isolated by an operator" : "isolate() called";
    case "open": {
      if (from === "half-open") return `a trial call failed${lastText}`;
      if (from === "isolated") return released(breaker);
      const stats = (event as { readonly stats?: WindowStats }).stats;
      if (stats !== undefined) return `${windowText(stats)}${lastText}`;
      const threshold = callHooks(breaker).policy.failureThreshold;
      if (breaker.failureCount >= threshold && breaker.lastFailure !== undefined) {
        return `${breaker.failureCount} consecutive failures${lastText}`;
      }
      return "open() called";
    }
    case "half-open":
      return from === "open" ? "the recovery period elapsed" : "halfOpen() called";
    case "recovering":
      return "trial calls succeeded; traffic ramps up";
    case "closed":
      if (from === "half-open") return "trial calls succeeded";
      if (from === "recovering") return "the recovery ramp ended";
      if (from === "isolated") return released(breaker);
      return "close() called";
  }
}

function released(breaker: Breaker): string {
  return operatorActing(breaker) ? "released by an operator" : "isolation released";
}

function windowText(stats: WindowStats): string {
  return `window: ${stats.failures} of ${stats.calls} calls failed (${
    formatRate(stats.failureRate)
  }), ${stats.slowCalls} slow (${formatRate(stats.slowCallRate)})`;
}
