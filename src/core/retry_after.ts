/**
 * Reads a server's instruction to wait from a failure: a `Response` with status 429 or 503 and
 * a `Retry-After` header (seconds or an HTTP date), or an error with a numeric `retryAfterMs`.
 *
 * @module
 */

/**
 * The wait a failure asks for, in ms, or `undefined` when it asks for none. A date is
 * measured from `now`.
 *
 * @example
 * ```ts
 * import { retryAfterHint } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const response = new Response(null, { status: 503, headers: { "retry-after": "120" } });
 * assert.equal(retryAfterHint(response, Date.now()), 120000);
 * assert.equal(retryAfterHint(Object.assign(new Error("busy"), { retryAfterMs: 500 }), 0), 500);
 * ```
 */
export function retryAfterHint(failure: unknown, now: number): number | undefined {
  if (failure === null || typeof failure !== "object") return undefined;
  const { retryAfterMs, status, headers } = failure as {
    retryAfterMs?: unknown;
    status?: unknown;
    headers?: { get?: unknown };
  };
  if (typeof retryAfterMs === "number") {
    return Number.isFinite(retryAfterMs) && retryAfterMs >= 0 ? retryAfterMs : undefined;
  }
  if ((status !== 429 && status !== 503) || typeof headers?.get !== "function") return undefined;
  let header: unknown;
  try {
    header = (headers.get as (name: string) => unknown).call(headers, "retry-after");
  } catch {
    return undefined; // a headers object that throws carries no usable instruction
  }
  if (typeof header !== "string") return undefined;
  const value = header.trim();
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // An HTTP date starts with the weekday (IMF-fixdate, RFC 850 and asctime forms alike);
  // anything else is not an instruction, however leniently `Date.parse` would read it.
  if (!HTTP_DATE.test(value)) return undefined;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - now) : undefined;
}

const HTTP_DATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /;
