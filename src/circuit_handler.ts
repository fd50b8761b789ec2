/**
 * `circuitHandler()`: a breaker around a fetch-style handler (`(request) => Response`), for
 * `Deno.serve`, `Bun.serve`, Hono routes and anything else that answers a `Request`. While the
 * circuit turns calls away it answers 503 with `Retry-After` without calling the handler; it
 * counts the handler's thrown errors, its failed responses (5xx, 429), and the response
 * body's errors and stalls; a streamed body holds its call until it ends.
 *
 * @module
 */

import { Breaker } from "./breaker.ts";
import { type BreakerOptions, checkBreakerAlone } from "./breaker_options.ts";
import { type CallHooks, callHooks, type Permit } from "./call_protocol.ts";
import { isFailedResult } from "./core/classify.ts";
import { quoteName } from "./core/describe_value.ts";
import { fail, optionsObject } from "./core/validate.ts";
import { TimeoutError } from "./errors.ts";
import { serviceUnavailable } from "./http_response.ts";
import { guardReadable } from "./stream.ts";

/**
 * Options of {@linkcode circuitHandler}: a breaker's options, or an existing `breaker` to use
 * (then nothing else).
 *
 * @example
 * ```ts
 * import type { CircuitHandlerOptions } from "@circuit/breaker";
 * const options: CircuitHandlerOptions = { name: "llm-proxy", idleTimeout: 5_000 };
 * ```
 */
export interface CircuitHandlerOptions extends BreakerOptions {
  /** An existing breaker to guard the handler with, instead of a new one. */
  readonly breaker?: Breaker;
}

/**
 * Guards a fetch-style handler with a breaker. Each request is one call:
 *
 * - while the circuit turns calls away, the handler is not called and the answer is a 503
 *   with `Retry-After` (see {@linkcode serviceUnavailable}), or the `fallback`'s, which gets
 *   the handler's arguments;
 * - an error the handler throws is judged by the matchers and thrown on, unchanged;
 * - a response that `isFailureResult` marks (by default a status >= 500 or 429) is a failure,
 *   and is returned as it is;
 * - any other response's body is guarded like a stream (`firstItemTimeout`, `idleTimeout`,
 *   `isFailureItem`): the call succeeds when the body ends or the client stops reading, and
 *   fails when it errors or stalls. A response without a body is a success at once.
 *
 * `timeout` bounds the wait for the handler's response (past it the request fails with
 * `TimeoutError`); the body is bounded by the stall timeouts.
 *
 * @throws {TypeError} When `handler` is not a function, or an option has the wrong type or is
 * unknown.
 * @throws {RangeError} When an option is out of range; the message names it and the value received.
 *
 * @example A streaming proxy that answers 503 while its upstream is down
 * ```ts
 * import { circuitHandler } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * // A stand-in for `(request) => fetch(upstream, { signal: request.signal })`, upstream down.
 * const upstream = (_request: Request) => Promise.reject(new TypeError("connection refused"));
 * const proxy = circuitHandler(upstream, {
 *   name: "llm",
 *   failureThreshold: 1,
 *   firstItemTimeout: 10_000,
 *   idleTimeout: 5_000,
 * }); // serve it with Deno.serve(proxy) or Bun.serve({ fetch: proxy })
 * await assert.rejects(proxy(new Request("http://localhost/tokens")), TypeError);
 * const response = await proxy(new Request("http://localhost/tokens"));
 * assert.equal(response.status, 503);
 * assert.ok(response.headers.has("retry-after"));
 * ```
 */
export function circuitHandler<A extends unknown[]>(
  handler: (...args: A) => Response | Promise<Response>,
  options?: CircuitHandlerOptions,
): (...args: A) => Promise<Response> {
  if (typeof handler !== "function") {
    fail("Cannot guard handler", "handler", "a function", handler, true);
  }
  const hooks = callHooks(breakerFor(handler, options));
  const guarded = function (this: unknown, ...args: A): Promise<Response> {
    const permit = hooks.begin();
    if (permit instanceof Error) {
      const fallback = hooks.fallback;
      if (fallback === undefined) return Promise.resolve(serviceUnavailable(permit));
      try {
        return Promise.resolve(fallback.apply(this, args));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    let answer: Response | Promise<Response>;
    try {
      answer = handler.apply(this, args);
    } catch (error) {
      hooks.settleError(permit, error);
      return Promise.reject(error);
    }
    const answered = within(hooks, permit, answer);
    return answered.then(
      (response) => settleResponse(hooks, permit, response),
      (error) => {
        if (!(error instanceof Expired)) hooks.settleError(permit, error);
        throw error instanceof Expired ? error.timeout : error;
      },
    );
  };
  // Deno.serve hands no Request to a handler that declares no parameter: keep the handler's.
  Object.defineProperty(guarded, "length", { value: handler.length });
  return guarded;
}

function breakerFor(
  handler: { name: string },
  options: CircuitHandlerOptions | undefined,
): Breaker {
  if (options === undefined) return new Breaker({ name: handler.name || "handler" });
  optionsObject("Cannot guard handler", options);
  const { breaker, ...breakerOptions } = options;
  if (breaker === undefined) {
    return new Breaker({ name: handler.name || "handler", ...breakerOptions });
  }
  if (!(breaker instanceof Breaker)) {
    fail("Cannot guard handler", "breaker", "a Breaker", breaker, true);
  }
  checkBreakerAlone(breakerOptions, "Cannot guard handler");
  return breaker;
}

/** The timeout's failure, told apart from the handler's own errors (already recorded). */
class Expired {
  readonly timeout: TimeoutError;
  constructor(timeout: TimeoutError) {
    this.timeout = timeout;
  }
}

/** The handler's answer, bounded by the breaker's `timeout` (recorded as a failure). */
function within(
  hooks: CallHooks,
  permit: Permit,
  answer: Response | Promise<Response>,
): Promise<Response> {
  const timeoutMs = hooks.policy.timeout;
  if (timeoutMs === undefined) return Promise.resolve(answer);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      const error = new TimeoutError(
        `Circuit ${
          quoteName(hooks.policy.name)
        }: the handler did not answer within ${timeoutMs} ms`,
      );
      hooks.fail(permit, error);
      reject(new Expired(error));
    }, timeoutMs);
    Promise.resolve(answer).then(
      (response) => {
        clearTimeout(timer);
        resolve(response);
      },
      (error) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/** Records a response's outcome, or hands the call to its body. */
function settleResponse(hooks: CallHooks, permit: Permit, response: Response): Response {
  if (isFailedResult(hooks.policy, response)) {
    hooks.fail(permit, response);
    return response;
  }
  if (!(response instanceof Response) || response.body === null) {
    hooks.succeed(permit);
    return response;
  }
  return new Response(guardReadable(hooks, response.body, undefined, permit), {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
}
