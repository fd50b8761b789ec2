/**
 * Classifies a call's error or result as a failure, a success or neither, by the policy's
 * matchers: `ignore` first, then `exclude`, then `isFailure`.
 *
 * @module
 */

import { quoteName } from "./describe_value.ts";
import type { Policy } from "./policy.ts";

/** How an outcome counts. */
export type Verdict = "failure" | "success" | "neutral";

/**
 * How an error thrown by a call counts. A matcher that throws is reported and judged as if it
 * were not configured.
 *
 * @example
 * ```ts
 * import { classifyError, createPolicy } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ exclude: TypeError });
 * assert.equal(classifyError(policy, new TypeError("bad input")), "success");
 * assert.equal(classifyError(policy, new Error("down")), "failure");
 * ```
 */
export function classifyError(policy: Policy, error: unknown): Verdict {
  const errors = policy.errors;
  if (errors === undefined) return "failure";
  const { ignore, exclude, isFailure } = errors;
  if (ignore !== undefined && matches(policy, "ignore", ignore, error, false)) return "neutral";
  if (exclude !== undefined && matches(policy, "exclude", exclude, error, false)) return "success";
  if (isFailure === undefined) return "failure";
  return matches(policy, "isFailure", isFailure, error, true) ? "failure" : "success";
}

/**
 * Whether a returned value counts as a failure: by `isFailureResult` when it is set (a
 * throwing predicate is reported and the value counts as a success), else when it is a failed
 * `Response` (see {@linkcode isFailedResponse}).
 *
 * @example
 * ```ts
 * import { createPolicy, isFailedResult } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ isFailureResult: (r) => r === "error" });
 * assert.equal(isFailedResult(policy, "error"), true);
 * assert.equal(isFailedResult(createPolicy({}), new Response(null, { status: 503 })), true);
 * ```
 */
export function isFailedResult(policy: Policy, result: unknown): boolean {
  const isFailureResult = policy.isFailureResult;
  if (isFailureResult === undefined) return isFailedResponse(result);
  return marks(policy, "isFailureResult", isFailureResult, result);
}

/** `Response` where the runtime has one. */
const ResponseClass: typeof Response | undefined = typeof Response === "function"
  ? Response
  : undefined;

/**
 * Whether a value is a `Response` that reports the dependency's failure: a status of 500 or
 * more (it failed), or 429 (it is overloaded and asks for less). Other statuses, 4xx among
 * them, mean the dependency answered. The default `isFailureResult`.
 *
 * @example
 * ```ts
 * import { isFailedResponse } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(isFailedResponse(new Response(null, { status: 502 })), true);
 * assert.equal(isFailedResponse(new Response(null, { status: 404 })), false);
 * ```
 */
export function isFailedResponse(value: unknown): boolean {
  // `typeof` first: most results are not objects, and `instanceof` costs them more.
  if (typeof value !== "object" || value === null) return false;
  if (ResponseClass === undefined || !(value instanceof ResponseClass)) return false;
  const status = value.status;
  return status >= 500 || status === 429;
}

/**
 * Whether a stream item reports an in-band error (`isFailureItem`). A throwing predicate is
 * reported and the item counts as fine.
 *
 * @example
 * ```ts
 * import { createPolicy, isFailedItem } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ isFailureItem: (item) => (item as { error?: unknown }).error !== undefined });
 * assert.equal(isFailedItem(policy, { error: "overloaded" }), true);
 * ```
 */
export function isFailedItem(policy: Policy, item: unknown): boolean {
  return marks(policy, "isFailureItem", policy.streams?.isFailureItem, item);
}

function marks(
  policy: Policy,
  option: "isFailureResult" | "isFailureItem",
  predicate: ((value: unknown) => boolean) | undefined,
  value: unknown,
): boolean {
  if (predicate === undefined) return false;
  try {
    return Boolean(predicate(value));
  } catch (error) {
    policy.report(
      `Circuit ${quoteName(policy.name)}: "${option}" threw; the ${
        option === "isFailureItem" ? "item" : "result"
      } counts as a success`,
      error,
    );
    return false;
  }
}

function matches(
  policy: Policy,
  option: "ignore" | "exclude" | "isFailure",
  matcher: (error: unknown) => boolean,
  error: unknown,
  whenBroken: boolean,
): boolean {
  try {
    return Boolean(matcher(error));
  } catch (thrown) {
    policy.report(
      `Circuit ${
        quoteName(policy.name)
      }: the "${option}" matcher threw; judging as if it were not set`,
      thrown,
    );
    return whenBroken;
  }
}

/**
 * Whether a value is a promise-like object (has a `then` method): a result that is no
 * outcome yet.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isThenable } from "./classify.ts";
 * assert.equal(isThenable(Promise.resolve(1)), true);
 * assert.equal(isThenable({ then: 1 }), false);
 * ```
 */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === "object" || typeof value === "function") &&
    typeof (value as { then?: unknown }).then === "function";
}
