/**
 * Exponential backoff of the open period, for the `recoveryTimeout` option.
 *
 * @module
 */

import { fail, optionsObject } from "./core/validate.ts";
import type { RecoveryTimeout } from "./core/options.ts";

/**
 * Options of {@linkcode exponentialBackoff}.
 *
 * @example
 * ```ts
 * import type { ExponentialBackoffOptions } from "@circuit/breaker";
 * const options: ExponentialBackoffOptions = { initialDelay: 1_000, maxDelay: 60_000 };
 * ```
 */
export interface ExponentialBackoffOptions {
  /** The open period after the first opening, in ms (finite >= 0). */
  readonly initialDelay: number;
  /** The longest open period, in ms (finite >= `initialDelay`). */
  readonly maxDelay: number;
  /**
   * How much each further opening multiplies the period (finite >= 1).
   * @default {2}
   */
  readonly factor?: number;
  /**
   * `"full"` draws the period uniformly from [0, period] (so that many processes do not
   * retry in step); `"none"` uses the period itself.
   * @default {"full"}
   */
  readonly jitter?: "full" | "none";
  /**
   * The source of randomness for the jitter: a function returning a number in [0, 1).
   * @default {Math.random}
   */
  readonly random?: () => number;
}

/**
 * A `recoveryTimeout` that grows with each opening since the circuit last recovered:
 * `min(maxDelay, initialDelay * factor ** (openings - 1))`, with full jitter by default.
 *
 * @throws {TypeError} When `options` is not an object, or an option has the wrong type.
 * @throws {RangeError} When `initialDelay` is negative, `maxDelay` is below it or `factor` below 1.
 *
 * @example Doubling from 1 s up to a minute
 * ```ts
 * import { Breaker, exponentialBackoff } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const recoveryTimeout = exponentialBackoff({
 *   initialDelay: 1_000,
 *   maxDelay: 60_000,
 *   jitter: "none", // no randomness, for the example
 * });
 * const lastFailure = new Error("down");
 * assert.equal(recoveryTimeout({ openings: 3, lastFailure }), 4_000);
 * assert.equal(recoveryTimeout({ openings: 10, lastFailure }), 60_000);
 * const breaker = new Breaker({ recoveryTimeout });
 * ```
 */
export function exponentialBackoff(options: ExponentialBackoffOptions): RecoveryTimeout {
  const context = "Cannot create backoff";
  optionsObject(context, options);
  const { initialDelay, maxDelay, factor = 2, jitter = "full", random = Math.random } = options;
  const check = (name: string, value: unknown, min: number, minText = String(min)) => {
    if (typeof value !== "number") {
      fail(context, name, "a number", value, true);
    }
    if (!Number.isFinite(value) || value < min) {
      fail(context, name, `a finite number >= ${minText}`, value);
    }
  };
  check("initialDelay", initialDelay, 0);
  check("maxDelay", maxDelay, initialDelay, `"initialDelay" (${initialDelay})`);
  check("factor", factor, 1);
  if (jitter !== "full" && jitter !== "none") {
    fail(context, "jitter", '"full" or "none"', jitter, true);
  }
  if (typeof random !== "function") {
    fail(context, "random", "a function", random, true);
  }
  return ({ openings }) => {
    const period = Math.min(maxDelay, initialDelay * factor ** Math.max(0, openings - 1));
    return jitter === "none" ? period : random() * period;
  };
}
