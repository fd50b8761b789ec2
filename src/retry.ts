/**
 * `retry()`: calls a function again after a failure, with exponential backoff and jitter, a
 * per-attempt `AbortSignal`, a total time budget, and an eye on the circuit: a
 * `BreakerOpenError` waits exactly until the circuit lets a trial through, when that fits the
 * budget, and ends the retrying at once when it does not; a 429 or 503's `Retry-After` is
 * honoured. Put it around the breaker (never inside): each attempt is one call the breaker
 * counts.
 *
 * @module
 */

import { exponentialBackoff } from "./backoff.ts";
import { isFailedResponse } from "./core/classify.ts";
import { fail, optionalFunction, optionsObject } from "./core/validate.ts";
import type { ErrorMatcher } from "./core/options.ts";
import { compileMatchers } from "./core/policy.ts";
import { retryAfterHint } from "./core/retry_after.ts";
import { BreakerOpenError, TimeoutError } from "./errors.ts";

/**
 * Options of {@linkcode retry}.
 *
 * @example
 * ```ts
 * import type { RetryOptions } from "@circuit/breaker";
 * const options: RetryOptions = { attempts: 5, budget: 10_000, attemptTimeout: 2_000 };
 * ```
 */
export interface RetryOptions {
  /**
   * The most attempts, the first one included (an integer >= 1).
   * @default {3}
   */
  readonly attempts?: number;
  /**
   * Ms the whole retrying may take, waits included: a wait that would end past it is not
   * started, and the last error is thrown (or the last failed response returned) at once.
   * @default {Infinity}
   */
  readonly budget?: number;
  /** Ms one attempt may take; past it its signal aborts and it fails with `TimeoutError`. */
  readonly attemptTimeout?: number;
  /**
   * The wait before retry `n` (from 1): `min(maxDelay, initialDelay * factor ** (n - 1))`,
   * drawn uniformly from [0, that] with `jitter: "full"`.
   * @default {{ initialDelay: 100, maxDelay: 10_000, factor: 2, jitter: "full" }}
   */
  readonly backoff?: {
    readonly initialDelay?: number;
    readonly maxDelay?: number;
    readonly factor?: number;
    readonly jitter?: "full" | "none";
  };
  /** Errors worth retrying (error classes or predicates, as the breaker's matchers). @default {every error} */
  readonly retryOn?: ErrorMatcher | readonly ErrorMatcher[];
  /** Errors never retried: thrown at once. Judged before `retryOn`. @default {none} */
  readonly noRetry?: ErrorMatcher | readonly ErrorMatcher[];
  /**
   * A returned value worth retrying (after the last attempt it is returned as it is). A
   * retried `Response`'s body is cancelled.
   * @default {a Response with status >= 500 or 429}
   */
  readonly retryOnResult?: (result: unknown) => boolean;
  /** The caller's signal: when it aborts, the attempt's signal aborts and `retry()` rejects with its reason. */
  readonly signal?: AbortSignal;
  /** Called before each wait, for logs and metrics. */
  readonly onRetry?: (event: RetryEvent) => void;
}

/**
 * What `onRetry` hears before each wait.
 *
 * @example
 * ```ts
 * import { retry, type RetryEvent } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const lines: string[] = [];
 * const onRetry = ({ attempt, delayMs }: RetryEvent) =>
 *   lines.push(`attempt ${attempt} failed; retrying in ${delayMs} ms`);
 * let calls = 0;
 * const flaky = () => ++calls < 2 ? Promise.reject(new Error("flaky")) : Promise.resolve("ok");
 * await retry(flaky, { backoff: { initialDelay: 1, jitter: "none" }, onRetry });
 * assert.deepEqual(lines, ["attempt 1 failed; retrying in 1 ms"]);
 * ```
 */
export interface RetryEvent {
  /** The attempt that failed, from 1. */
  readonly attempt: number;
  /** Its error, or the value `retryOnResult` marked. */
  readonly failure: unknown;
  /** Ms until the next attempt. */
  readonly delayMs: number;
}

const CONTEXT = "Cannot retry";

/**
 * Calls `fn` until it succeeds, at most `attempts` times, waiting between attempts. `fn` gets
 * an `AbortSignal` for the attempt (it aborts on `attemptTimeout` and with the caller's
 * `signal`) and the attempt's number, from 1.
 *
 * The wait after a failure is the backoff's, or longer when the failure says so: a
 * `BreakerOpenError` waits its `retryAfterMs` (the backoff's when that is 0), and ends the
 * retrying at once when it is `Infinity` (isolated) or would pass the budget; a 429 or 503
 * `Response` (or an error with a numeric `retryAfterMs`) waits at least its `Retry-After`. The
 * error thrown at the end is the last attempt's own, unchanged.
 *
 * @throws {TypeError} When `fn` is not a function, or an option has the wrong type.
 * @throws {RangeError} When an option is out of range, e.g. `attempts` below 1.
 * @throws {unknown} The last attempt's own error, unchanged, when no attempt succeeded; the
 * caller's `signal`'s reason when it aborts.
 *
 * @example Around a breaker (retry outside, breaker inside)
 * ```ts
 * import { Breaker, retry } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const api = new Breaker({ name: "api" });
 * let calls = 0;
 * const answer = await retry(
 *   (signal) => api.execute(() => ++calls < 2 ? Promise.reject(new Error("flaky")) : Promise.resolve("ok"), { signal }),
 *   { attempts: 3, backoff: { initialDelay: 1, jitter: "none" } },
 * );
 * assert.equal(answer, "ok");
 * assert.equal(calls, 2);
 * ```
 */
export async function retry<T>(
  fn: (signal: AbortSignal, attempt: number) => T | PromiseLike<T>,
  options: RetryOptions = {},
): Promise<Awaited<T>> {
  if (typeof fn !== "function") {
    fail(CONTEXT, "fn", "a function", fn, true);
  }
  const plan = parseRetryOptions(options);
  const started = Date.now();
  for (let attempt = 1;; attempt++) {
    plan.signal?.throwIfAborted();
    let failure: unknown;
    let thrown = false;
    try {
      const value = await attemptOnce(fn, attempt, plan);
      if (attempt >= plan.attempts || !isRetriedResult(plan, value)) return value;
      failure = value;
    } catch (error) {
      if (plan.signal?.aborted && error === plan.signal.reason) throw error;
      if (attempt >= plan.attempts || !isRetriedError(plan, error)) throw error;
      failure = error;
      thrown = true;
    }
    const delayMs = waitAfter(plan, attempt, failure);
    const remaining = plan.budget - (Date.now() - started);
    if (delayMs === undefined || delayMs > remaining) {
      if (thrown) throw failure;
      return failure as Awaited<T>;
    }
    if (!thrown) await discard(failure);
    if (plan.onRetry !== undefined) {
      try {
        plan.onRetry({ attempt, failure, delayMs });
      } catch (error) {
        console.error(`retry(): an "onRetry" hook threw; ignored`, error);
      }
    }
    await sleep(delayMs, plan.signal);
  }
}

interface RetryPlan {
  readonly attempts: number;
  readonly budget: number;
  readonly attemptTimeout: number | undefined;
  readonly backoff: (attempt: number) => number;
  readonly retryOn: ((error: unknown) => boolean) | undefined;
  readonly noRetry: ((error: unknown) => boolean) | undefined;
  readonly retryOnResult: (result: unknown) => boolean;
  readonly signal: AbortSignal | undefined;
  readonly onRetry: ((event: RetryEvent) => void) | undefined;
}

function parseRetryOptions(options: RetryOptions): RetryPlan {
  optionsObject(CONTEXT, options);
  const { attempts = 3, budget = Infinity, attemptTimeout, signal, onRetry } = options;
  if (!Number.isSafeInteger(attempts) || attempts < 1) {
    fail(CONTEXT, "attempts", "an integer >= 1", attempts);
  }
  if (typeof budget !== "number" || Number.isNaN(budget) || budget < 0) {
    fail(CONTEXT, "budget", "a number >= 0", budget);
  }
  if (
    attemptTimeout !== undefined &&
    (typeof attemptTimeout !== "number" || !(attemptTimeout > 0 && attemptTimeout <= 2 ** 31 - 1))
  ) {
    fail(CONTEXT, "attemptTimeout", "a number > 0 and <= 2147483647", attemptTimeout);
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    fail(CONTEXT, "signal", "an AbortSignal", signal, true);
  }
  optionalFunction(CONTEXT, "onRetry", onRetry);
  optionalFunction(CONTEXT, "retryOnResult", options.retryOnResult);
  const backoffOptions = options.backoff ?? {};
  optionsObject(CONTEXT, backoffOptions, "backoff");
  const delay = exponentialBackoff({
    initialDelay: backoffOptions.initialDelay ?? 100,
    maxDelay: backoffOptions.maxDelay ?? 10_000,
    ...(backoffOptions.factor === undefined ? {} : { factor: backoffOptions.factor }),
    ...(backoffOptions.jitter === undefined ? {} : { jitter: backoffOptions.jitter }),
  });
  return {
    attempts,
    budget,
    attemptTimeout,
    backoff: (attempt) => delay({ openings: attempt, lastFailure: undefined }),
    retryOn: compileMatchers(CONTEXT, "retryOn", options.retryOn),
    noRetry: compileMatchers(CONTEXT, "noRetry", options.noRetry),
    retryOnResult: options.retryOnResult ?? isFailedResponse,
    signal,
    onRetry,
  };
}

/** One attempt, with its own signal (the caller's, and the attempt's timeout). */
function attemptOnce<T>(
  fn: (signal: AbortSignal, attempt: number) => T | PromiseLike<T>,
  attempt: number,
  plan: RetryPlan,
): Promise<Awaited<T>> {
  const { attemptTimeout, signal } = plan;
  if (attemptTimeout === undefined) {
    return Promise.resolve(fn(signal ?? new AbortController().signal, attempt));
  }
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener("abort", onAbort, { once: true });
  return new Promise<Awaited<T>>((resolve, reject) => {
    const timer = setTimeout(() => {
      const error = new TimeoutError(
        `retry(): attempt ${attempt} timed out after ${attemptTimeout} ms`,
      );
      controller.abort(error);
      reject(error);
    }, attemptTimeout);
    const finish = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    let answer: T | PromiseLike<T>;
    try {
      answer = fn(controller.signal, attempt);
    } catch (error) {
      finish();
      reject(error);
      return;
    }
    Promise.resolve(answer).then(
      (value) => {
        finish();
        resolve(value);
      },
      (error) => {
        finish();
        reject(error);
      },
    );
  });
}

function isRetriedError(plan: RetryPlan, error: unknown): boolean {
  if (plan.noRetry?.(error)) return false;
  return plan.retryOn === undefined || plan.retryOn(error);
}

function isRetriedResult(plan: RetryPlan, value: unknown): boolean {
  try {
    return Boolean(plan.retryOnResult(value));
  } catch (error) {
    console.error(`retry(): "retryOnResult" threw; the result is returned`, error);
    return false;
  }
}

/** Ms to wait after `failure`, or `undefined` when nothing can come of waiting. */
function waitAfter(plan: RetryPlan, attempt: number, failure: unknown): number | undefined {
  const backoff = plan.backoff(attempt);
  if (failure instanceof BreakerOpenError) {
    const { retryAfterMs } = failure;
    if (!Number.isFinite(retryAfterMs)) return undefined; // isolated: no trial is coming
    return retryAfterMs > 0 ? retryAfterMs : backoff;
  }
  const hint = retryAfterHint(failure, Date.now());
  return hint === undefined ? backoff : Math.max(backoff, hint);
}

/** Releases a retried response's connection. */
async function discard(value: unknown): Promise<void> {
  if (value instanceof Response && value.body !== null && !value.bodyUsed) {
    await value.body.cancel().catch(() => {});
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
