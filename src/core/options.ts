/**
 * The options that decide a breaker's behaviour: what counts as a failure, when the circuit
 * opens, how long it stays open and how it recovers.
 *
 * @module
 */

import type { WindowStats } from "./window.ts";

/**
 * An error class (it matches instances of subclasses too).
 *
 * @example
 * ```ts
 * import type { ErrorClass } from "@circuit/breaker/core";
 * const matcher: ErrorClass = TypeError;
 * ```
 */
export type ErrorClass = abstract new (...args: never[]) => unknown;

/**
 * Decides whether an error belongs to a group: an error class, or a predicate.
 *
 * @example
 * ```ts
 * import type { ErrorMatcher } from "@circuit/breaker/core";
 * const matchers: ErrorMatcher[] = [TypeError, (error) => (error as { status?: number }).status === 503];
 * ```
 */
export type ErrorMatcher = ErrorClass | ((error: unknown) => boolean);

/**
 * What a `recoveryTimeout` function is told when the circuit opens.
 *
 * @example
 * ```ts
 * import type { RecoveryContext } from "@circuit/breaker/core";
 * const context: RecoveryContext = { openings: 1, lastFailure: new Error("down") };
 * ```
 */
export interface RecoveryContext {
  /** Openings since the circuit last recovered, from 1 (manual openings count too). */
  readonly openings: number;
  /** The failure that opened the circuit (or the last one, for a manual opening). */
  readonly lastFailure: unknown;
}

/**
 * A recovery period computed per opening, in ms.
 *
 * @example
 * ```ts
 * import type { RecoveryTimeout } from "@circuit/breaker/core";
 * const linear: RecoveryTimeout = ({ openings }) => openings * 10_000;
 * ```
 */
export type RecoveryTimeout = (context: RecoveryContext) => number;

/**
 * The window the rate rules judge: the last `calls` calls, or the last `duration` ms split in
 * `buckets`.
 *
 * @example
 * ```ts
 * import type { WindowOptions } from "@circuit/breaker/core";
 * const lastMinute: WindowOptions = { duration: 60_000, buckets: 10 };
 * const lastHundred: WindowOptions = { calls: 100 };
 * ```
 */
export type WindowOptions =
  | {
    /** History kept, in ms. */
    readonly duration: number;
    /**
     * Buckets the duration is split into; the window covers at most one bucket more than
     * `duration`. An integer >= 1 and <= `duration`.
     * @default {10}
     */
    readonly buckets?: number;
  }
  | {
    /** The number of most recent calls judged. An integer >= 1. */
    readonly calls: number;
  };

/**
 * A gradual return to full traffic after the half-open trials succeed.
 *
 * @example
 * ```ts
 * import type { RecoveryRampOptions } from "@circuit/breaker/core";
 * const ramp: RecoveryRampOptions = { duration: 10_000, initialRate: 0.1 };
 * ```
 */
export interface RecoveryRampOptions {
  /** How long the ramp lasts, in ms (> 0). */
  readonly duration: number;
  /**
   * The share of calls admitted when the ramp starts, in (0, 1]; it grows linearly to 1.
   * @default {0.1}
   */
  readonly initialRate?: number;
}

/**
 * The options that decide how a breaker judges calls. All are optional and validated when the
 * policy is created.
 *
 * @example
 * ```ts
 * import type { PolicyOptions } from "@circuit/breaker/core";
 * const options: PolicyOptions = { failureThreshold: 3, recoveryTimeout: 10_000 };
 * ```
 */
export interface PolicyOptions {
  /**
   * Shown in errors, events and metrics.
   * @default {"breaker"}
   */
  readonly name?: string;
  /**
   * Consecutive failures that open the circuit: an integer >= 1, or `Infinity` for none.
   * @default {5, or Infinity when failureRate, slowCallRate or shouldTrip is set}
   */
  readonly failureThreshold?: number;
  /**
   * How long the circuit stays open before trial calls, in ms (finite >= 0), or a function of
   * the opening that returns it (see {@linkcode RecoveryTimeout}).
   * @default {30_000}
   */
  readonly recoveryTimeout?: number | RecoveryTimeout;
  /**
   * Trial calls admitted at once while half-open; the rest are rejected at once.
   * @default {1}
   */
  readonly halfOpenMaxCalls?: number;
  /**
   * Successful trial calls needed to close the circuit.
   * @default {1}
   */
  readonly successThreshold?: number;
  /**
   * Errors that count as failures; any other error counts as a success (the dependency
   * answered).
   * @default {every error}
   */
  readonly isFailure?: ErrorMatcher | readonly ErrorMatcher[];
  /** Errors that never count as failures: they count as successes. */
  readonly exclude?: ErrorMatcher | readonly ErrorMatcher[];
  /** Errors that count neither way. Judged first, then `exclude`, then `isFailure`. */
  readonly ignore?: ErrorMatcher | readonly ErrorMatcher[];
  /**
   * Marks a returned value as a failure. The value is still returned to the caller. Setting it
   * replaces the default.
   * @default {a Response with status >= 500 or 429}
   */
  readonly isFailureResult?: (result: unknown) => boolean;
  /**
   * Time allowed per call, in ms. Past it the call rejects with `TimeoutError` (always a
   * failure) and the `AbortSignal` given to the function fires.
   */
  readonly timeout?: number;
  /** Open when failures / calls in the window reaches this share, in (0, 1]. */
  readonly failureRate?: number;
  /** Open when slow calls / calls in the window reaches this share, in (0, 1]. */
  readonly slowCallRate?: number;
  /** A call slower than this many ms is slow; required with `slowCallRate`. */
  readonly slowCallDuration?: number;
  /**
   * Calls the window needs before the rate rules judge it; at most `window.calls`.
   * @default {20}
   */
  readonly minimumCalls?: number;
  /**
   * The window the rate rules and `shouldTrip` judge.
   * @default {{ duration: 60_000, buckets: 10 }}
   */
  readonly window?: WindowOptions;
  /**
   * A rule of your own, judged after every recorded success or failure: return `true` to
   * open the circuit. A throwing rule counts as `false` and is reported with `console.error`.
   */
  readonly shouldTrip?: (stats: WindowStats) => boolean;
  /** After a successful half-open trial, let traffic back in gradually. */
  readonly recoveryRamp?: RecoveryRampOptions;
  /**
   * The longest open period a server's `Retry-After` (or an error's `retryAfterMs`) can ask
   * for, in ms.
   * @default {3_600_000}
   */
  readonly maxRetryAfter?: number;
  /**
   * Streams: ms a guarded stream may wait for its first item; past it the consumer gets
   * `TimeoutError` (a failure). Only time spent waiting on the source counts.
   */
  readonly firstItemTimeout?: number;
  /** Streams: ms a guarded stream may wait for each later item (and for its end). */
  readonly idleTimeout?: number;
  /**
   * Streams: marks an item that reports an error in-band (an SSE `event: error`, a chunk with
   * an error field): the stream counts as a failure. The item is still passed on.
   */
  readonly isFailureItem?: (item: unknown) => boolean;
  /**
   * Whether the breaker turns calls away. `"enforce"`: it does. `"observe"`: it records,
   * changes state and announces as under `"enforce"` (a call it would turn away fires
   * `rejected`), but lets every call run; a call it would have turned away counts for
   * nothing. `"off"`: every call runs as if there were no breaker (no timeout either), and
   * nothing is recorded or announced. Switch with `configure()`, to roll out new thresholds
   * safely or per environment.
   * @default {"enforce"}
   */
  readonly mode?: BreakerMode;
  /**
   * A bulkhead: the most calls (streams and permits too) in flight at once (an integer >= 1).
   * A call beyond it waits in the queue (`maxQueued`) or is turned away at once with
   * `BulkheadFullError`, which counts neither way. A stream holds its place until it ends, a
   * permit until its outcome.
   */
  readonly maxConcurrent?: number;
  /**
   * With `maxConcurrent`: how many calls may wait for a place, first come first served (an
   * integer >= 0). A waiting call gives its place up when its `signal` aborts. Synchronous
   * calls, streams and permits never wait.
   * @default {0}
   */
  readonly maxQueued?: number;
}

/**
 * The breaker's modes (see `PolicyOptions.mode`).
 *
 * @example
 * ```ts
 * import type { BreakerMode } from "@circuit/breaker/core";
 * const mode: BreakerMode = "observe";
 * ```
 */
export type BreakerMode = "enforce" | "observe" | "off";
