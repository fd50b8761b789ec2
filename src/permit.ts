/**
 * Two-step calls: `breaker.acquire()` admits a call and returns a {@linkcode BreakerPermit},
 * which records the call's outcome when the code that made the call reports it. For what
 * cannot be wrapped in one function: a streamed response, a callback API, middleware.
 *
 * @module
 */

import type { CallHooks, Permit } from "./call_protocol.ts";

let issuing = false;
let issue: (hooks: CallHooks, permit: Permit) => BreakerPermit;

/**
 * An admitted call, from `breaker.acquire()`: report its outcome once, with `success()` or
 * `failure(error)`; disposed without one (`using`), it counts neither way and gives back its
 * trial slot. Later reports are ignored, and so is the outcome of a permit admitted before the
 * circuit last changed state (an older generation). Listeners hear of it as of any call.
 *
 * @example
 * ```ts
 * import { Breaker } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const api = new Breaker({ name: "api", failureThreshold: 1 });
 * {
 *   using permit = api.acquire();
 *   permit.failure(new Error("connection reset"));
 * }
 * assert.equal(api.state, "open");
 * ```
 */
export class BreakerPermit implements Disposable {
  static {
    issue = (hooks, permit) => {
      issuing = true;
      try {
        const issued = new BreakerPermit();
        issued.#hooks = hooks;
        issued.#permit = permit;
        return issued;
      } finally {
        issuing = false;
      }
    };
  }

  #hooks: CallHooks | undefined;
  /** The admission, until an outcome is reported or the permit is disposed. */
  #permit: Permit | undefined;

  /**
   * Permits come from `breaker.acquire()` only.
   *
   * @throws {TypeError} Always, when called directly.
   */
  constructor() {
    if (!issuing) {
      throw new TypeError("Cannot create BreakerPermit: use breaker.acquire()");
    }
  }

  /** Whether an outcome was reported or the permit was disposed. */
  get settled(): boolean {
    return this.#permit === undefined;
  }

  /**
   * The call succeeded. Ignored after an outcome or disposal.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const api = new Breaker();
   * api.halfOpen();
   * api.acquire().success(); // the trial call succeeded
   * assert.equal(api.state, "closed");
   * ```
   */
  success(): void {
    const permit = this.#take();
    if (permit !== undefined) (this.#hooks as CallHooks).succeed(permit);
  }

  /**
   * The call failed with `error`, judged by the breaker's matchers like any error (an error
   * `exclude` names counts as a success, one `ignore` names as neither). A `Response` given
   * here counts as a failure, and its `Retry-After` is honoured. Ignored after an outcome or
   * disposal.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const api = new Breaker({ failureThreshold: 1 });
   * api.acquire().failure(new Error("down"));
   * assert.equal(api.state, "open");
   * ```
   */
  failure(error: unknown): void {
    const permit = this.#take();
    if (permit !== undefined) (this.#hooks as CallHooks).settleError(permit, error);
  }

  /**
   * Ends the permit without an outcome: the call counts neither way, and a half-open
   * circuit's trial slot is given back. Nothing after an outcome.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const api = new Breaker();
   * api.halfOpen();
   * api.acquire()[Symbol.dispose]();
   * assert.equal(api.state, "half-open");
   * ```
   */
  [Symbol.dispose](): void {
    const permit = this.#take();
    if (permit !== undefined) (this.#hooks as CallHooks).neutral(permit);
  }

  #take(): Permit | undefined {
    const permit = this.#permit;
    this.#permit = undefined;
    return permit;
  }
}

/** A permit for an admitted call (for `Breaker.acquire()`). */
export function issuePermit(hooks: CallHooks, permit: Permit): BreakerPermit {
  return issue(hooks, permit);
}
