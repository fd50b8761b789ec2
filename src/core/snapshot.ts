/**
 * The snapshot: an immutable value holding everything a breaker knows. Transitions return a
 * new snapshot, or the same object when nothing changed.
 *
 * @module
 */

import type { WindowState } from "./window.ts";

/** The states a snapshot records. `"half-open"` is also read from an elapsed `"open"`. */
export type RecordedState = "closed" | "open" | "half-open" | "recovering";

/**
 * A breaker's state as read at a moment: an open circuit whose period has elapsed reads
 * `"half-open"`, an isolated one `"isolated"`.
 *
 * @example
 * ```ts
 * import type { BreakerState } from "@circuit/breaker/core";
 * const state: BreakerState = "half-open";
 * ```
 */
export type BreakerState = RecordedState | "isolated";

/**
 * Everything a breaker knows, as an immutable value.
 *
 * @example
 * ```ts
 * import { INITIAL_SNAPSHOT, type Snapshot } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const snapshot: Snapshot = INITIAL_SNAPSHOT;
 * assert.equal(snapshot.state, "closed");
 * ```
 */
export interface Snapshot {
  /** The state recorded; see `stateAt()` for the state at a moment. */
  readonly state: RecordedState;
  /**
   * Counts state changes. A call's outcome is recorded only if the generation it was admitted
   * in is still current.
   */
  readonly generation: number;
  /** Consecutive failures; a success while closed resets it, closing the circuit too. */
  readonly failureCount: number;
  /** While open: when trial calls may start (epoch ms). */
  readonly openUntil: number | undefined;
  /** Openings since the circuit last recovered. */
  readonly openings: number;
  /** While half-open: trial calls in flight. */
  readonly trials: number;
  /** While half-open: trial calls that succeeded. */
  readonly trialSuccesses: number;
  /** While recovering: when the ramp started (epoch ms). */
  readonly rampStart: number | undefined;
  /** While recovering: when the ramp ends (epoch ms). */
  readonly rampUntil: number | undefined;
  /** While recovering: admission decisions made so far, which spread admissions evenly. */
  readonly rampCalls: number;
  /** Outcomes the rate rules judge; `undefined` when empty. */
  readonly window: WindowState | undefined;
  /**
   * While half-open in a shared circuit: which breaker may run trial calls, and until when
   * (see `takeLease`). `undefined` otherwise.
   */
  readonly lease: Lease | undefined;
  /** Open `isolate()` holds; a local overlay, never serialized. */
  readonly isolated: number;
  /** The last failure recorded (an error, or a value `isFailureResult` marked); not serialized. */
  readonly lastFailure: unknown;
}

/**
 * The right to run trial calls in a shared half-open circuit: exactly one breaker holds it,
 * until it reports the trial's outcome or the lease expires.
 *
 * @example
 * ```ts
 * import type { Lease } from "@circuit/breaker/core";
 * const lease: Lease = { holder: "worker-1:8f3a", until: 1_700_000_030_000 };
 * ```
 */
export interface Lease {
  /** The holder's identity (each breaker sharing a circuit has its own). */
  readonly holder: string;
  /** When the lease expires (epoch ms): from then on another breaker may take it. */
  readonly until: number;
}

/** A closed circuit with no history. */
export const INITIAL_SNAPSHOT: Snapshot = Object.freeze({
  state: "closed",
  generation: 0,
  failureCount: 0,
  openUntil: undefined,
  openings: 0,
  trials: 0,
  trialSuccesses: 0,
  rampStart: undefined,
  rampUntil: undefined,
  rampCalls: 0,
  window: undefined,
  lease: undefined,
  isolated: 0,
  lastFailure: undefined,
});

/**
 * The state as read at `now`: isolation first, then an elapsed open period reads
 * `"half-open"` and an elapsed ramp `"closed"`. Reading never changes the snapshot.
 *
 * @example
 * ```ts
 * import { INITIAL_SNAPSHOT, stateAt } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const open = { ...INITIAL_SNAPSHOT, state: "open", openUntil: 1000 } as const;
 * assert.equal(stateAt(open, 999), "open");
 * assert.equal(stateAt(open, 1000), "half-open");
 * ```
 */
export function stateAt(snapshot: Snapshot, now: number): BreakerState {
  if (snapshot.isolated !== 0) return "isolated";
  switch (snapshot.state) {
    case "open":
      return now >= (snapshot.openUntil as number) ? "half-open" : "open";
    case "recovering":
      return now >= (snapshot.rampUntil as number) ? "closed" : "recovering";
    default:
      return snapshot.state;
  }
}

/**
 * The state last recorded (isolation first), without reading the clock: the state events
 * announce. An elapsed open period is still `"open"` here until a call is admitted.
 *
 * @example
 * ```ts
 * import { INITIAL_SNAPSHOT, recordedState } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(recordedState({ ...INITIAL_SNAPSHOT, isolated: 1 }), "isolated");
 * ```
 */
export function recordedState(snapshot: Snapshot): BreakerState {
  return snapshot.isolated !== 0 ? "isolated" : snapshot.state;
}

/**
 * Milliseconds until a call may be admitted: the rest of the open period, `Infinity` while
 * isolated, else 0.
 *
 * @example
 * ```ts
 * import { INITIAL_SNAPSHOT, retryAfterAt } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(retryAfterAt({ ...INITIAL_SNAPSHOT, state: "open", openUntil: 1000 }, 400), 600);
 * ```
 */
export function retryAfterAt(snapshot: Snapshot, now: number): number {
  if (snapshot.isolated !== 0) return Infinity;
  if (snapshot.state !== "open") return 0;
  return Math.max(0, (snapshot.openUntil as number) - now);
}
