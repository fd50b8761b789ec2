/**
 * The errors a breaker raises: {@linkcode BreakerOpenError} when it turns a call away and
 * {@linkcode TimeoutError} when a call or a stream runs past its time.
 *
 * @module
 */

import { quoteName } from "./core/describe_value.ts";
import type { BreakerState } from "./core/snapshot.ts";

/**
 * What a {@linkcode BreakerOpenError} reports.
 *
 * @example
 * ```ts
 * import { BreakerOpenError, type BreakerOpenErrorOptions } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const options: BreakerOpenErrorOptions = { breaker: "db", state: "open", retryAfterMs: 1200 };
 * assert.equal(new BreakerOpenError(options).message, 'Circuit "db" is open: retry in 1200 ms');
 * ```
 */
export interface BreakerOpenErrorOptions {
  /** The breaker's name. */
  readonly breaker: string;
  /** The state that turned the call away. */
  readonly state: Exclude<BreakerState, "closed">;
  /** Milliseconds until a call may be admitted (`Infinity` while isolated). */
  readonly retryAfterMs: number;
  /** The last failure the breaker recorded, if any. */
  readonly cause?: unknown;
}

/**
 * The call was not run: the circuit is open, half-open with every trial in flight, recovering
 * (the call fell outside the admitted share), or isolated.
 *
 * @example Telling a rejection from the dependency's own error
 * ```ts
 * import { Breaker, BreakerOpenError } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const breaker = new Breaker({ name: "db" });
 * breaker.open();
 * try {
 *   await breaker.execute(() => Promise.resolve("rows"));
 *   assert.fail("an open circuit turns the call away");
 * } catch (error) {
 *   assert.ok(error instanceof BreakerOpenError); // not an error of the dependency
 *   assert.equal(error.breaker, "db");
 *   assert.equal(error.state, "open");
 *   assert.ok(error.retryAfterMs > 29_000); // the default recoveryTimeout is 30 s
 * }
 * ```
 */
export class BreakerOpenError extends Error {
  static {
    // On the prototype, not on each instance: a rejection must cost little more than an Error.
    this.prototype.name = "BreakerOpenError";
  }
  // Declared, and assigned in the constructor: class fields would be defined one by one first
  // (define semantics), a quarter of the error's cost on Bun.
  /** The breaker's name. */
  declare readonly breaker: string;
  /** The state that turned the call away. */
  declare readonly state: Exclude<BreakerState, "closed">;
  /** Milliseconds until a call may be admitted (`Infinity` while isolated). */
  declare readonly retryAfterMs: number;

  /** Creates the error; its message says the breaker, the state and when to retry. */
  constructor(options: BreakerOpenErrorOptions) {
    super(
      openMessage(options.breaker, options.state, options.retryAfterMs),
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.breaker = options.breaker;
    this.state = options.state;
    this.retryAfterMs = options.retryAfterMs;
  }
}

// The last message made, kept: the rejections of a burst (one breaker, one state, one
// millisecond) share it. On Bun an `Error` given a string just concatenated costs about 60 ns
// more than one given a string made earlier (bench/RESULTS.md, issue 21: the async open
// rejection), a sixth of a rejection.
let lastBreaker = "";
let lastState = "";
let lastRetryMs = Number.NaN;
let lastMessage = "";

function openMessage(breaker: string, state: BreakerState, retryAfterMs: number): string {
  const retryMs = Math.ceil(retryAfterMs);
  if (retryMs === lastRetryMs && breaker === lastBreaker && state === lastState) {
    return lastMessage;
  }
  lastBreaker = breaker;
  lastState = state;
  lastRetryMs = retryMs;
  return lastMessage = messageOf(breaker, state, retryMs);
}

function messageOf(breaker: string, state: BreakerState, retryMs: number): string {
  const circuit = `Circuit ${quoteName(breaker)}`;
  switch (state) {
    case "isolated":
      return `${circuit} is isolated`;
    case "half-open":
      return `${circuit} is half-open: every trial call is in flight`;
    case "recovering":
      return `${circuit} is recovering: the call fell outside the share admitted now`;
    default:
      return `${circuit} is open: retry in ${retryMs} ms`;
  }
}

/**
 * A call ran past the breaker's `timeout`, or a stream waited past `firstItemTimeout` or
 * `idleTimeout`. It always counts as a failure.
 *
 * @example
 * ```ts
 * import { Breaker, TimeoutError } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const breaker = new Breaker({ timeout: 10 });
 * const hang = (signal: AbortSignal) =>
 *   new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
 * await assert.rejects(breaker.execute(hang), TimeoutError);
 * ```
 */
export class TimeoutError extends Error {
  static {
    this.prototype.name = "TimeoutError";
  }

  /** Creates the error with a message. */
  constructor(message = "The call timed out", options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * The call was not run: the breaker's bulkhead (`maxConcurrent`) had no place for it and its
 * queue (`maxQueued`) was full. It counts neither way: the dependency was not asked. Like a
 * {@linkcode BreakerOpenError}, it goes to `rejected` listeners and the `fallback`.
 *
 * @example
 * ```ts
 * import { Breaker, BulkheadFullError } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const db = new Breaker({ name: "db", maxConcurrent: 1 });
 * const first = db.execute(() => new Promise((resolve) => setTimeout(resolve, 10)));
 * await assert.rejects(db.execute(() => Promise.resolve("second")), BulkheadFullError);
 * await first;
 * ```
 */
export class BulkheadFullError extends Error {
  static {
    this.prototype.name = "BulkheadFullError";
  }
  /** The breaker's name. */
  declare readonly breaker: string;
  /** The circuit's state when the call was turned away (usually `"closed"`). */
  declare readonly state: BreakerState;
  /** The calls in flight it allows. */
  declare readonly maxConcurrent: number;
  /** The calls it lets wait. */
  declare readonly maxQueued: number;
  /** Always 0: a place may free up at any moment. */
  declare readonly retryAfterMs: number;

  /** Creates the error; its message says the breaker and its limits. */
  constructor(breaker: string, state: BreakerState, maxConcurrent: number, maxQueued: number) {
    super(
      `Circuit ${quoteName(breaker)} is full: ${maxConcurrent} calls in flight${
        maxQueued === 0 ? "" : ` and ${maxQueued} waiting`
      }`,
    );
    this.breaker = breaker;
    this.state = state;
    this.maxConcurrent = maxConcurrent;
    this.maxQueued = maxQueued;
    this.retryAfterMs = 0;
  }
}
