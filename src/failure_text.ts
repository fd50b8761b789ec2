/**
 * A recorded failure as a short text for operators (`"TypeError: fetch failed"`,
 * `"HTTP 503 Service Unavailable"`), made without ever letting the failure break the reader:
 * a `message` getter that throws, a revoked Proxy or any other odd value gives a placeholder.
 *
 * @module
 */

import { describeValue } from "./core/describe_value.ts";

/** The longest text kept, in UTF-16 code units. */
const MAX_FAILURE_TEXT = 500;

/** The text for a failure whose reading threw. */
const UNREADABLE = "(a failure that could not be read)";

/**
 * A failure as text, or `null` for none. Reads only `Error`'s own fields (`name`, `message`)
 * and a `Response`'s status, never calls `toString()`, and never throws.
 */
export function describeFailure(failure: unknown): string | null {
  if (failure === undefined) return null;
  let text: string;
  try {
    text = failureText(failure);
  } catch {
    return UNREADABLE;
  }
  return text.length > MAX_FAILURE_TEXT ? `${text.slice(0, MAX_FAILURE_TEXT - 1)}…` : text;
}

function failureText(failure: unknown): string {
  if (failure instanceof Error) {
    const name: unknown = failure.name;
    const message: unknown = failure.message;
    const label = typeof name === "string" && name !== "" ? name : "Error";
    return typeof message === "string" && message !== "" ? `${label}: ${message}` : label;
  }
  if (failure instanceof Response) return `HTTP ${failure.status} ${failure.statusText}`.trimEnd();
  if (typeof failure === "string") return failure;
  if (
    typeof failure === "number" || typeof failure === "boolean" || typeof failure === "bigint"
  ) {
    return String(failure);
  }
  return describeValue(failure);
}
