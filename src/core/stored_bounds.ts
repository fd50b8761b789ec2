/**
 * Bounds on the times a breaker reads from a shared store: a stored value comes from outside
 * (another program, a damaged or forged entry), so a time further ahead than this breaker's
 * own policy could have written is read as the furthest it could have written.
 *
 * @module
 */

import type { Policy } from "./policy.ts";
import type { Snapshot } from "./snapshot.ts";

/**
 * How far another process's clock may run ahead of this one's before a stored time is taken
 * for one no breaker with this policy could have written.
 */
export const CLOCK_SKEW_MS = 60_000;

/**
 * The longest open period assumed for a `recoveryTimeout` given as a function (its results
 * cannot be known in advance), unless `maxRetryAfter` is longer.
 */
export const MAX_DYNAMIC_PERIOD_MS = 24 * 60 * 60_000;

/**
 * A stored snapshot with its times bounded, and what was changed (empty when nothing was).
 *
 * @example
 * ```ts
 * import { type BoundedSnapshot, INITIAL_SNAPSHOT } from "@circuit/breaker/core";
 * const bounded: BoundedSnapshot = { snapshot: INITIAL_SNAPSHOT, corrections: [] };
 * ```
 */
export interface BoundedSnapshot {
  /** The snapshot, with every time bounded. */
  readonly snapshot: Snapshot;
  /** One line per time that was too far ahead, saying what it was and what it became. */
  readonly corrections: readonly string[];
}

/**
 * The longest open period `policy` can start: its `recoveryTimeout` (a function's results
 * are assumed to stay under a day) or a server's `Retry-After` up to `maxRetryAfter`.
 *
 * @example
 * ```ts
 * import { createPolicy, longestOpenPeriod } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ recoveryTimeout: 5_000 });
 * assert.equal(longestOpenPeriod(policy), 3_600_000); // the default maxRetryAfter
 * ```
 */
export function longestOpenPeriod(policy: Policy): number {
  const timeout = policy.recoveryTimeout;
  const period = typeof timeout === "number" ? timeout : MAX_DYNAMIC_PERIOD_MS;
  return Math.max(period, policy.maxRetryAfter);
}

/**
 * Bounds the times of a snapshot read from a store at `now`: `openUntil` to
 * {@linkcode longestOpenPeriod}, a trial lease to the lease length, a recovery ramp to its
 * duration; each from `now`, once it is further ahead than that plus {@linkcode CLOCK_SKEW_MS}.
 *
 * @example
 * ```ts
 * import { boundStoredTimes, createPolicy, INITIAL_SNAPSHOT } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const forged = { ...INITIAL_SNAPSHOT, state: "open", generation: 1, openUntil: 8.64e15 } as const;
 * const policy = createPolicy({ recoveryTimeout: 1_000, maxRetryAfter: 2_000 });
 * assert.equal(boundStoredTimes(policy, forged, 0).snapshot.openUntil, 2000);
 * ```
 */
export function boundStoredTimes(policy: Policy, snapshot: Snapshot, now: number): BoundedSnapshot {
  const corrections: string[] = [];
  const bound = (field: string, time: number, longest: number): number => {
    if (time - now <= longest + CLOCK_SKEW_MS) return time;
    corrections.push(
      `"${field}" ${time} is ${
        time - now
      } ms ahead, more than this breaker can set (${longest} ms); read as ${longest} ms from now`,
    );
    return now + longest;
  };
  let bounded = snapshot;
  if (snapshot.openUntil !== undefined) {
    const openUntil = bound("openUntil", snapshot.openUntil, longestOpenPeriod(policy));
    if (openUntil !== snapshot.openUntil) bounded = { ...bounded, openUntil };
  }
  const lease = snapshot.lease;
  if (lease !== undefined) {
    const until = bound("lease.until", lease.until, policy.lease?.duration ?? 0);
    if (until !== lease.until) bounded = { ...bounded, lease: { holder: lease.holder, until } };
  }
  if (snapshot.rampUntil !== undefined) {
    const rampUntil = bound("rampUntil", snapshot.rampUntil, policy.recoveryRamp?.duration ?? 0);
    if (rampUntil !== snapshot.rampUntil) {
      const rampStart = Math.min(snapshot.rampStart ?? rampUntil, rampUntil);
      bounded = { ...bounded, rampStart, rampUntil };
    }
  }
  return { snapshot: bounded, corrections };
}
