/**
 * Tallies: the outcomes a breaker sharing its circuit recorded since it last synced with the
 * store, kept apart so they can be merged into the stored snapshot (see `recordTally` in
 * `transitions.ts`) however many other breakers wrote meanwhile.
 *
 * @module
 */

import type { Policy } from "./policy.ts";
import type { Snapshot } from "./snapshot.ts";
import { mergeWindows, recordCall, type WindowState } from "./window.ts";

/**
 * Outcomes recorded since the last sync, in one generation of the circuit.
 *
 * @example
 * ```ts
 * import { emptyTally } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(emptyTally(3).outcomes, 0);
 * ```
 */
export interface Tally {
  /** The generation the outcomes were recorded in; they count only in that one. */
  readonly generation: number;
  /**
   * Outcomes tallied (successes and failures), but for successes that merge like the one
   * before them (see `tallyOutcome`): 0 exactly when there is nothing to merge.
   */
  readonly outcomes: number;
  /** Whether a success was among them: the consecutive count restarts from `failures`. */
  readonly reset: boolean;
  /** Failures since the last success among them (all of them when there was none). */
  readonly failures: number;
  /** The outcomes, windowed like the policy's window; `undefined` without rate rules. */
  readonly window: WindowState | undefined;
}

/**
 * A tally with no outcomes, for `generation`.
 *
 * @example
 * ```ts
 * import { emptyTally } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(emptyTally(0).reset, false);
 * ```
 */
export function emptyTally(generation: number): Tally {
  return { generation, outcomes: 0, reset: false, failures: 0, window: undefined };
}

/**
 * Adds an outcome to the tally: only a call admitted in the tally's generation and recorded
 * while `before` (the local snapshot it was recorded in) was closed or recovering counts;
 * trials and late outcomes change state instead, and are written as transitions.
 *
 * @example
 * ```ts
 * import { createPolicy, emptyTally, INITIAL_SNAPSHOT, tallyOutcome } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({});
 * assert.equal(tallyOutcome(policy, emptyTally(0), INITIAL_SNAPSHOT, 0, true, 0, 0).failures, 1);
 * ```
 */
export function tallyOutcome(
  policy: Policy,
  tally: Tally,
  before: Snapshot,
  generation: number,
  failed: boolean,
  durationMs: number,
  now: number,
): Tally {
  if (
    generation !== tally.generation || generation !== before.generation ||
    before.isolated !== 0 || (before.state !== "closed" && before.state !== "recovering")
  ) {
    return tally;
  }
  const rules = policy.rules;
  // Another success after a success, with nothing windowed, merges the same: no new tally.
  if (!failed && rules === undefined && tally.reset && tally.failures === 0) return tally;
  return {
    generation,
    outcomes: tally.outcomes + 1,
    reset: tally.reset || !failed,
    failures: failed ? tally.failures + 1 : 0,
    window: rules === undefined ? undefined : recordCall(
      rules.window,
      tally.window,
      now,
      failed,
      rules.slowCallDuration !== undefined && durationMs > rules.slowCallDuration,
    ),
  };
}

/**
 * One tally of the outcomes of `earlier` and then those of `later` (a write that failed, and
 * what came after it). A tally of another generation than `later`'s is dropped.
 *
 * @example
 * ```ts
 * import { createPolicy, emptyTally, joinTallies } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const failed = { ...emptyTally(0), outcomes: 2, failures: 2 };
 * assert.equal(joinTallies(createPolicy({}), failed, failed, 0).failures, 4);
 * ```
 */
export function joinTallies(policy: Policy, earlier: Tally, later: Tally, now: number): Tally {
  if (earlier.generation !== later.generation || earlier.outcomes === 0) return later;
  if (later.outcomes === 0) return earlier;
  const rules = policy.rules;
  return {
    generation: later.generation,
    outcomes: earlier.outcomes + later.outcomes,
    reset: earlier.reset || later.reset,
    failures: later.reset ? later.failures : earlier.failures + later.failures,
    window: rules === undefined
      ? undefined
      : mergeWindows(rules.window, earlier.window, later.window, now),
  };
}

/**
 * Whether recording the tally onto `snapshot` would change nothing, so it need not be
 * written: no outcomes, or only successes on a closed circuit with no failure counted and no
 * window (the common case of a healthy dependency, which then costs no store writes).
 *
 * @example
 * ```ts
 * import {
 *   changesNothing,
 *   createPolicy,
 *   emptyTally,
 *   INITIAL_SNAPSHOT,
 * } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const successes = { ...emptyTally(0), outcomes: 10, reset: true };
 * assert.equal(changesNothing(createPolicy({}), INITIAL_SNAPSHOT, successes), true);
 * ```
 */
export function changesNothing(policy: Policy, snapshot: Snapshot, tally: Tally): boolean {
  return tally.outcomes === 0 ||
    (policy.rules === undefined && tally.failures === 0 && snapshot.failureCount === 0 &&
      snapshot.state === "closed" && tally.generation === snapshot.generation);
}
