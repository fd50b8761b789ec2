/**
 * Answers for HTTP servers while a circuit turns calls away: `retryAfterSeconds()` turns a
 * `retryAfterMs` into a `Retry-After` value, `serviceUnavailable()` makes the whole 503.
 *
 * @module
 */

import { fail } from "./core/validate.ts";
import type { BreakerOpenError, BulkheadFullError } from "./errors.ts";

/**
 * The `Retry-After` value, in whole seconds, for a wait of `retryAfterMs`: rounded up and at
 * least 1, since 0 (what a half-open or recovering circuit's rejection carries) invites an
 * instant retry; `undefined` for a wait with no end (an isolated circuit), which no header
 * can say.
 *
 * @throws {TypeError} When `retryAfterMs` is not a number (or is `NaN`).
 *
 * @example
 * ```ts
 * import { retryAfterSeconds } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * assert.equal(retryAfterSeconds(1_200), 2);
 * assert.equal(retryAfterSeconds(0), 1);
 * assert.equal(retryAfterSeconds(Infinity), undefined);
 * ```
 */
export function retryAfterSeconds(retryAfterMs: number): number | undefined {
  if (typeof retryAfterMs !== "number" || Number.isNaN(retryAfterMs)) {
    fail("Cannot compute Retry-After", "retryAfterMs", "a number", retryAfterMs, true);
  }
  if (retryAfterMs === Infinity) return undefined;
  return Math.max(1, Math.ceil(retryAfterMs / 1_000));
}

/**
 * A `503 Service Unavailable` response for a call the breaker turned away (its circuit or its
 * bulkhead), with a
 * `Retry-After` header in whole seconds (at least 1; none while isolated), `Cache-Control:
 * no-store`, and a short text body naming the circuit.
 *
 * @example In a `Deno.serve` handler
 * ```ts
 * import { Breaker, BreakerOpenError, serviceUnavailable } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const api = new Breaker({ name: "api" });
 * api.open();
 * async function handler(_request: Request): Promise<Response> {
 *   try {
 *     return await api.execute(() => Promise.resolve(new Response("live")));
 *   } catch (error) {
 *     if (error instanceof BreakerOpenError) return serviceUnavailable(error);
 *     throw error;
 *   }
 * }
 * const response = await handler(new Request("http://localhost/"));
 * assert.equal(response.status, 503);
 * assert.equal(response.headers.get("retry-after"), "30");
 * ```
 */
export function serviceUnavailable(error: BreakerOpenError | BulkheadFullError): Response {
  const headers = new Headers({
    "cache-control": "no-store",
    "content-type": "text/plain; charset=utf-8",
  });
  const seconds = retryAfterSeconds(error.retryAfterMs);
  if (seconds !== undefined) headers.set("retry-after", String(seconds));
  return new Response(`${error.message}\n`, { status: 503, headers });
}
