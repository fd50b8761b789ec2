/**
 * `circuitFetch()`: a `fetch` that is safe by default. Every request goes through a breaker
 * per origin (a {@linkcode BreakerGroup}), with a timeout that aborts it, failed responses
 * (5xx, 429) counted as failures, `Retry-After` honoured and the caller's signal followed.
 *
 * @module
 */

import { BreakerGroup, type BreakerGroupOptions } from "./breaker_group.ts";
import { describeValue } from "./core/describe_value.ts";
import { fail, optionsObject } from "./core/validate.ts";
import { BreakerOpenError } from "./errors.ts";
import { serviceUnavailable } from "./http_response.ts";

/**
 * Options of {@linkcode circuitFetch}: the options of the breaker made for each origin (see
 * {@linkcode BreakerGroupOptions}), and how requests are sent and keyed.
 *
 * @example
 * ```ts
 * import type { CircuitFetchOptions } from "@circuit/breaker";
 * const options: CircuitFetchOptions = { timeout: 2_000, failureThreshold: 3 };
 * ```
 */
export interface CircuitFetchOptions extends Omit<BreakerGroupOptions, "name"> {
  /**
   * The group's name: each origin's breaker is named `${name}:${key}` in errors, events, the
   * registry and the status page.
   * @default {"fetch"}
   */
  readonly name?: string;
  /**
   * Ms a request may take to answer (its headers); past it the request is aborted and fails
   * with `TimeoutError`, a failure.
   * @default {10_000}
   */
  readonly timeout?: number;
  /**
   * The key of a request's breaker.
   * @default {the request URL's origin, e.g. "https://api.example.com"}
   */
  readonly key?: (request: Request) => string;
  /**
   * While a request's circuit turns calls away: `false` rejects with `BreakerOpenError`;
   * `true` answers a synthetic `503` with `Retry-After` instead (see `serviceUnavailable`),
   * for code that already handles failed responses.
   * @default {false}
   */
  readonly respondWhenOpen?: boolean;
  /**
   * The `fetch` that sends the requests.
   * @default {globalThis.fetch}
   */
  readonly fetch?: typeof fetch;
}

/**
 * A function with `fetch`'s signature: {@linkcode circuitFetch}'s result, with the group of
 * breakers it uses.
 *
 * @example
 * ```ts
 * import { circuitFetch } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const guardedFetch = circuitFetch();
 * assert.equal(guardedFetch.breakers.name, "fetch");
 * ```
 */
export interface CircuitFetch {
  /**
   * Sends a request through its key's breaker, as `fetch` does.
   *
   * @throws {BreakerOpenError} While the key's circuit turns calls away (unless
   * `respondWhenOpen`).
   * @throws {TimeoutError} When the response's headers do not arrive within `timeout`.
   */
  (input: string | URL | Request, init?: RequestInit): Promise<Response>;
  /** The breakers, one per key. */
  readonly breakers: BreakerGroup;
}

/**
 * Returns a `fetch` that guards every request with a breaker per origin: 5 consecutive
 * failures open that origin's circuit for 30 s (as any breaker's defaults), a request that
 * does not answer within 10 s is aborted and fails, a 5xx or 429 response counts as a failure
 * (and is still returned), a 429 or 503's `Retry-After` sets how long the circuit stays open,
 * and the caller's `signal` aborts the request (counting neither way). While a circuit is
 * open, its requests reject at once with {@linkcode BreakerOpenError} without being sent (or,
 * with `respondWhenOpen`, get a 503). The breakers join the registry, so the status page and
 * metrics see every origin.
 *
 * The outcome is taken when the response's headers arrive: the body is the caller's to read.
 * To count a streamed body's stalls and errors, guard it with `breaker.readable()` or serve it
 * through {@linkcode circuitHandler}.
 *
 * @throws {TypeError} When an option has the wrong type, or is unknown; the message names it and
 * the value received.
 * @throws {RangeError} When an option is out of range; the message names it and the value received.
 *
 * @example
 * ```ts
 * import { BreakerOpenError, circuitFetch } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * // A stand-in for an API that is down (by default, the global fetch sends the requests).
 * const fetch = () => Promise.resolve(new Response("down", { status: 503 }));
 * const guardedFetch = circuitFetch({ timeout: 5_000, failureThreshold: 2, fetch });
 * const url = "https://api.example.com/users/42";
 * assert.equal((await guardedFetch(url)).status, 503); // a failure, still returned
 * assert.equal((await guardedFetch(url)).status, 503);
 * await assert.rejects(guardedFetch(url), BreakerOpenError); // fails fast, not sent
 * ```
 */
export function circuitFetch(options: CircuitFetchOptions = {}): CircuitFetch {
  const context = "Cannot create circuitFetch";
  optionsObject(context, options);
  const {
    name = "fetch",
    timeout = 10_000,
    key,
    respondWhenOpen = false,
    fetch: send = globalThis.fetch,
    ...breakerOptions
  } = options;
  if (key !== undefined && typeof key !== "function") {
    fail(context, "key", "a function", key, true);
  }
  if (typeof respondWhenOpen !== "boolean") {
    fail(context, "respondWhenOpen", "a boolean", respondWhenOpen, true);
  }
  if (typeof send !== "function") {
    fail(context, "fetch", "a function", send, true);
  }
  const breakers = new BreakerGroup({ name, timeout, ...breakerOptions });
  const guardedFetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    let request: Request;
    try {
      request = new Request(input, init);
    } catch (error) {
      return Promise.reject(error); // a bad URL or init: fetch's own TypeError
    }
    let breakerKey: string;
    try {
      breakerKey = key === undefined ? new URL(request.url).origin : key(request);
    } catch (error) {
      return Promise.reject(error);
    }
    if (typeof breakerKey !== "string") {
      return Promise.reject(
        new TypeError(
          `circuitFetch: "key" must return a string, returned ${describeValue(breakerKey)}`,
        ),
      );
    }
    const called = breakers.get(breakerKey).execute(
      (signal) => send(request, { signal }),
      { signal: request.signal },
    );
    if (!respondWhenOpen) return called;
    return called.catch((error) => {
      if (error instanceof BreakerOpenError) return serviceUnavailable(error);
      throw error;
    });
  };
  Object.defineProperty(guardedFetch, "breakers", { value: breakers, enumerable: true });
  return guardedFetch as CircuitFetch;
}
