/**
 * Two async guards that see a call's outcome without chaining a promise that rethrows, the
 * references of issue 21's async failure path (`bench/run.ts`), and the constraint that tells
 * them apart: whether a caller who drops the promise returned is still told of an unhandled
 * rejection, as our rule F2 requires (`bench/failure_refs_test.ts` checks both).
 *
 * @module
 */

/** What the guards of this module have seen, summed over all calls. */
export const refOutcomes = { successes: 0, failures: 0 };

const countSuccess = (value: unknown): unknown => {
  refOutcomes.successes++;
  return value;
};
const countSuccessOnly = (_value: unknown): void => {
  refOutcomes.successes++;
};
const countFailure = (_error: unknown): void => {
  refOutcomes.failures++;
};

/**
 * Observes fn's promise with one reaction and returns that promise itself. The cheapest guard,
 * but not one with our constraints: its reaction marks fn's rejection handled, so a caller who
 * drops the promise is never told of the error.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * assert.equal(await observe(() => Promise.resolve(1)), 1);
 * ```
 */
export function observe<T>(fn: () => Promise<T>): Promise<T> {
  const promise = fn();
  promise.then(countSuccessOnly, countFailure);
  return promise;
}

/**
 * The least async guard with the constraints of `execute(fn)` on a failing call (issue 21,
 * point 2): it sees the outcome and returns a promise of its own that rejects with fn's error as
 * is, so that a caller who drops it is still told of the unhandled rejection. Two reactions and
 * no throw: one counts a failure, the other passes the value on, and a rejection passes through
 * it for want of a handler (a throw inside a reaction costs V8 a message object; the floor,
 * `fn().then(ok, fail)` rethrowing, pays it). Ours does the same while failures are counted.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * const error = new Error("down");
 * await assert.rejects(keepRejection(() => Promise.reject(error)), (e) => e === error);
 * ```
 */
export function keepRejection<T>(fn: () => Promise<T>): Promise<unknown> {
  const promise = fn();
  promise.then(undefined, countFailure);
  return promise.then(countSuccess);
}
