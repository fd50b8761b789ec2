/**
 * How long a stream took, for the slow-call rule.
 *
 * @module
 */

/**
 * A stream's duration for the slow-call rule: the wait from its admission to its first item.
 * Its length after that is the consumer's business (a slow reader, a long download), so it is
 * never counted; a stream that ended before its first item, or was not timed, has none.
 *
 * @example
 * ```ts
 * import { streamDurationMs } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(streamDurationMs(1_000, 1_250), 250);
 * assert.equal(streamDurationMs(1_000, undefined), undefined);
 * ```
 */
export function streamDurationMs(
  admittedAt: number,
  firstItemAt: number | undefined,
): number | undefined {
  return firstItemAt === undefined ? undefined : firstItemAt - admittedAt;
}
