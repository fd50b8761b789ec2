/**
 * The checks every option goes through, in the core and in the shell alike: each returns the
 * value it accepts or throws a `TypeError` (wrong type) or `RangeError` (out of range) that
 * names the option by its path and shows the value received, e.g.
 * `Cannot create breaker: "failureThreshold" must be an integer >= 1, received 0`.
 *
 * They live at module level, not as closures: a breaker made per key (a million of them)
 * should not build functions each time it checks its options.
 *
 * @module
 */

import { describeValue } from "./describe_value.ts";

/** The longest delay a timer accepts, in ms (a 32-bit signed integer). */
export const MAX_TIMER_DELAY = 2_147_483_647;

/**
 * Throws the error of an option that is not what it must be: a `TypeError` when `type` is
 * set (the value's type is wrong), a `RangeError` otherwise.
 *
 * @throws {TypeError} When `type` is set.
 * @throws {RangeError} Otherwise.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { fail } from "./validate.ts";
 * assert.throws(() => fail("Cannot create breaker", "timeout", "a number > 0", -1), {
 *   name: "RangeError",
 *   message: 'Cannot create breaker: "timeout" must be a number > 0, received -1',
 * });
 * ```
 */
export function fail(
  context: string,
  path: string,
  expected: string,
  received: unknown,
  type = false,
): never {
  const message = `${context}: "${path}" must be ${expected}, received ${describeValue(received)}`;
  throw type ? new TypeError(message) : new RangeError(message);
}

/**
 * An options argument: an object (not `null`, not an array).
 *
 * @throws {TypeError} When it is anything else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { optionsObject } from "./validate.ts";
 * assert.deepEqual(optionsObject("Cannot retry", { attempts: 3 }), { attempts: 3 });
 * assert.throws(() => optionsObject("Cannot retry", 3), {
 *   message: 'Cannot retry: "options" must be an object, received 3',
 * });
 * ```
 */
export function optionsObject<T>(context: string, value: T, path = "options"): T & object {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? value
    : fail(context, path, "an object", value, true);
}

/**
 * A number of any value (`NaN` included: the range checks that follow reject it).
 *
 * @throws {TypeError} When it is not a number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { number } from "./validate.ts";
 * assert.equal(number("Cannot create breaker", "timeout", 5), 5);
 * ```
 */
export function number(context: string, path: string, value: unknown): number {
  return typeof value === "number" ? value : fail(context, path, "a number", value, true);
}

/**
 * An integer >= 1 (or `Infinity` when `allowInfinity`), `fallback` when `undefined`.
 *
 * @throws {TypeError} When it is not a number.
 * @throws {RangeError} When it is out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { integer } from "./validate.ts";
 * assert.equal(integer("Cannot create breaker", "halfOpenMaxCalls", undefined, 1), 1);
 * ```
 */
export function integer(
  context: string,
  path: string,
  value: unknown,
  fallback: number,
  allowInfinity = false,
): number {
  if (value === undefined) return fallback;
  const n = number(context, path, value);
  if (Number.isSafeInteger(n) && n >= 1) return n;
  if (allowInfinity && n === Infinity) return n;
  return fail(context, path, `an integer >= 1${allowInfinity ? " or Infinity" : ""}`, value);
}

/**
 * A finite number of milliseconds >= `min`.
 *
 * @throws {TypeError} When it is not a number.
 * @throws {RangeError} When it is not finite or below `min`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { duration } from "./validate.ts";
 * assert.equal(duration("Cannot create breaker", "recoveryTimeout", 1_000), 1_000);
 * ```
 */
export function duration(context: string, path: string, value: unknown, min = 0): number {
  const n = number(context, path, value);
  return Number.isFinite(n) && n >= min
    ? n
    : fail(context, path, `a finite number >= ${min}`, value);
}

/**
 * A rate in (0, 1], or `undefined`.
 *
 * @throws {TypeError} When it is not a number.
 * @throws {RangeError} When it is out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rate } from "./validate.ts";
 * assert.equal(rate("Cannot create breaker", "failureRate", 0.5), 0.5);
 * ```
 */
export function rate(context: string, path: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = number(context, path, value);
  return n > 0 && n <= 1 ? n : fail(context, path, "a number in (0, 1]", value);
}

/**
 * A function, or `undefined`.
 *
 * @throws {TypeError} When it is anything else.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { optionalFunction } from "./validate.ts";
 * assert.equal(optionalFunction("Cannot create breaker", "fallback", undefined), undefined);
 * ```
 */
export function optionalFunction<F>(context: string, path: string, value: unknown): F | undefined {
  return value === undefined || typeof value === "function"
    ? value as F | undefined
    : fail(context, path, "a function", value, true);
}

/**
 * A timer's delay in ms (> 0 and <= {@linkcode MAX_TIMER_DELAY}), or `undefined`.
 *
 * @throws {TypeError} When it is not a number.
 * @throws {RangeError} When it is out of range.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { delay } from "./validate.ts";
 * assert.equal(delay("Cannot create breaker", "timeout", 2_000), 2_000);
 * ```
 */
export function delay(context: string, path: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = number(context, path, value);
  return n > 0 && n <= MAX_TIMER_DELAY
    ? n
    : fail(context, path, `a number > 0 and <= ${MAX_TIMER_DELAY}`, value);
}

/**
 * Rejects option names not in `known`: a misspelt option must not pass silently.
 *
 * @throws {TypeError} Naming the first unknown option.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkOptionNames } from "./validate.ts";
 * assert.throws(() => checkOptionNames({ timout: 5 }, ["timeout"], "Cannot create breaker"), {
 *   message: 'Cannot create breaker: unknown option "timout"',
 * });
 * ```
 */
export function checkOptionNames(
  options: object,
  known: readonly string[],
  context: string,
): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(`${context}: unknown option ${JSON.stringify(key)}`);
    }
  }
}
