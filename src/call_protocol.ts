/**
 * The call protocol: how a call in more than one step (a stream, a permit, a guarded
 * handler's response body) is admitted by a breaker and reports its outcome, through the same
 * paths as a call of `execute()`. Internal: not part of the public API.
 *
 * @module
 */

import type { Breaker } from "./breaker.ts";
import type { Policy } from "./core/policy.ts";
import type { BreakerOpenError, BulkheadFullError } from "./errors.ts";
import type { AnyFunction } from "./guarded_function.ts";

/** A call admitted by the breaker: what its outcome is recorded against. */
export interface Permit {
  readonly generation: number;
  readonly start: number;
  readonly timed: boolean;
  /** Whether it holds a place in the bulkhead, to give back with its outcome. */
  readonly held?: boolean;
}

/**
 * The permit of a call the breaker lets through without guarding it: every call while its
 * `mode` is `"off"`, and a call it would have turned away under `"observe"`. Its outcome is
 * recorded and announced nowhere.
 */
export const UNGUARDED: Permit = Object.freeze({ generation: -1, start: 0, timed: false });

/** What a call in steps needs of a breaker: admission and outcomes. */
export interface CallHooks {
  readonly breaker: Breaker;
  readonly policy: Policy;
  readonly fallback: AnyFunction | undefined;
  /** Admits a call (announcing changes and `beforeCall`), or refuses it with its error. */
  begin(): Permit | BreakerOpenError | BulkheadFullError;
  /** Records a success; `durationMs` overrides the measured duration (for streams). */
  succeed(permit: Permit, durationMs?: number): void;
  /** Records a failure, whatever the matchers say (timeouts, failing items and results). */
  fail(permit: Permit, failure: unknown, durationMs?: number): void;
  /** Records an error by the matchers. */
  settleError(permit: Permit, error: unknown, durationMs?: number): void;
  /** Records an outcome that counts neither way. */
  neutral(permit: Permit): void;
  /** Reads the breaker's clock. */
  now(): number;
}

let hooksOf: ((breaker: Breaker) => CallHooks) | undefined;

/** The call hooks of a breaker. */
export function callHooks(breaker: Breaker): CallHooks {
  return (hooksOf as (breaker: Breaker) => CallHooks)(breaker);
}

/**
 * Called once, by the `Breaker` class as it is defined (only it can reach its private
 * state): from then on `callHooks()` answers. This way the modules built on the protocol need
 * not load the breaker's module, nor it theirs in a cycle.
 */
export function provideCallHooks(provider: (breaker: Breaker) => CallHooks): void {
  hooksOf = provider;
}
