/**
 * The places of a breaker's bulkhead (`maxConcurrent`, `maxQueued`): how many calls are in
 * flight, and the calls waiting for a place, first come first served. The limits are passed
 * in on each use, so that `configure()` applies at once.
 *
 * @module
 */

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (reason: unknown) => void;
  readonly signal: AbortSignal | undefined;
  readonly onAbort: () => void;
}

/** The places of one breaker's bulkhead. */
export class Bulkhead {
  #active = 0;
  #waiting: Waiter[] = [];

  /** Calls in flight. */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting for a place. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** Takes a place if one of `max` is free. */
  tryEnter(max: number): boolean {
    if (this.#active >= max) return false;
    this.#active++;
    return true;
  }

  /**
   * Waits for a place (the caller holds it once this resolves), or `undefined` when
   * `maxQueued` calls already wait. An abort of `signal` rejects with its reason and gives up
   * the place in the queue.
   */
  wait(maxQueued: number, signal: AbortSignal | undefined): Promise<void> | undefined {
    if (this.#waiting.length >= maxQueued) return undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const index = this.#waiting.indexOf(waiter);
          if (index !== -1) this.#waiting.splice(index, 1);
          reject(signal?.reason);
        },
      };
      this.#waiting.push(waiter);
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
    });
  }

  /** Gives a place back: to the first waiting call while fewer than `max` are in flight. */
  leave(max: number): void {
    const next = this.#active <= max ? this.#waiting.shift() : undefined;
    if (next === undefined) {
      this.#active--;
      return;
    }
    next.signal?.removeEventListener("abort", next.onAbort);
    next.resolve(); // the place goes to it: `active` stays
  }
}
