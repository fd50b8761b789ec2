/**
 * The pure core of `@circuit/breaker`: every decision a breaker makes, as pure functions of
 * `(policy, snapshot, event, now)` that return the next immutable snapshot. No clock, no
 * timers, no I/O: use it to run a breaker over your own storage or scheduler, or to test a
 * policy with a hand-made clock.
 *
 * ```ts
 * import { admit, createPolicy, INITIAL_SNAPSHOT, isRejection, recordFailure } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 *
 * const policy = createPolicy({ failureThreshold: 2, recoveryTimeout: 1_000 });
 * let snapshot = INITIAL_SNAPSHOT;
 * snapshot = recordFailure(policy, snapshot, snapshot.generation, new Error("down"), 0, 0);
 * snapshot = recordFailure(policy, snapshot, snapshot.generation, new Error("down"), 0, 0);
 * const verdict = admit(policy, snapshot, 500);
 * assert.ok(isRejection(verdict)); // open after 2 failures
 * assert.equal(verdict.retryAfterMs, 500);
 * ```
 *
 * @module
 */

export type { Cell, Fifo } from "./fifo.ts";
export {
  classifyError,
  isFailedItem,
  isFailedResponse,
  isFailedResult,
  type Verdict,
} from "./classify.ts";
export type {
  BreakerMode,
  ErrorClass,
  ErrorMatcher,
  PolicyOptions,
  RecoveryContext,
  RecoveryRampOptions,
  RecoveryTimeout,
  WindowOptions,
} from "./options.ts";
export {
  createPolicy,
  type ErrorMatchers,
  type LeaseRules,
  type Policy,
  POLICY_OPTIONS,
  type Reporter,
  sharePolicy,
  type StreamRules,
  type WindowRules,
} from "./policy.ts";
export { retryAfterHint } from "./retry_after.ts";
export { streamDurationMs } from "./stream_duration.ts";
export { snapshotFromJSON, type SnapshotJSON, snapshotToJSON } from "./serialize.ts";
export { decodeStored, encodeStored, storedGeneration, storedWriteMarks } from "./stored_text.ts";
export {
  type BreakerState,
  INITIAL_SNAPSHOT,
  type Lease,
  type RecordedState,
  recordedState,
  retryAfterAt,
  type Snapshot,
  stateAt,
} from "./snapshot.ts";
export {
  admit,
  clockSetBack,
  close,
  failureNeedsClock,
  follow,
  halfOpen,
  isForgettable,
  isolate,
  isQuiet,
  isRejection,
  needsClock,
  open,
  rampShare,
  reconcile,
  reconfigure,
  recordFailure,
  recordNeutral,
  recordSuccess,
  recordTally,
  type Rejection,
  release,
  skipsAdmission,
  successNeedsClock,
  takeLease,
  tripStats,
  wantsLease,
} from "./transitions.ts";
export {
  type BoundedSnapshot,
  boundStoredTimes,
  CLOCK_SKEW_MS,
  longestOpenPeriod,
  MAX_DYNAMIC_PERIOD_MS,
} from "./stored_bounds.ts";
export { changesNothing, emptyTally, joinTallies, type Tally, tallyOutcome } from "./tally.ts";
export {
  includesWrite,
  markWrite,
  MAX_WRITE_MARKS,
  MAX_WRITER_LENGTH,
  readWriteMarks,
  WRITE_MARK_TTL_MS,
  type WriteMarks,
} from "./write_marks.ts";
export {
  type Bucket,
  type CallWindow,
  mergeWindows,
  recordCall,
  type TimeWindow,
  type WindowJSON,
  type WindowPolicy,
  type WindowState,
  type WindowStats,
  windowStats,
} from "./window.ts";
