/**
 * A same-run reference for issue 21, point 3: the least time-window breaker that counts in
 * place, the shape Deno std's `unstable_circuit_breaker` and resilience4j's
 * `SlidingTimeWindowMetrics` use (std cannot be installed here: JSR is unreachable). A ring of
 * bucket counters (calls and failures per bucket, the bucket chosen by the clock, stale buckets
 * cleared as the clock passes them) and running totals; a failure trips it at `failureRate`
 * once `minimumCalls` calls are in the window. No consecutive count, no snapshot, no events:
 * what is left is the least a failure-rate time window must do per call.
 *
 * @module
 */

/** How the reference is configured (the same knobs as ours for the bench's time window). */
export interface RingWindowOptions {
  /** Trips when failures / calls in the window reach this (0 < rate <= 1). */
  readonly failureRate: number;
  /** The window's length in ms. */
  readonly duration: number;
  /** Buckets the window is cut into. */
  readonly buckets: number;
  /** Calls the window must hold before it can trip. */
  readonly minimumCalls: number;
  /** Ms an open circuit waits before one trial call. */
  readonly recoveryTimeout: number;
  /** Ms since the epoch; `Date.now` unless given (tests). */
  readonly clock?: (() => number) | undefined;
}

/** Thrown by the reference when it refuses a call. */
export class RingOpenError extends Error {
  static {
    this.prototype.name = "RingOpenError";
  }
}

const CLOSED = 0;
const OPEN = 1;
const HALF_OPEN = 2;

/** The reference breaker: `execute(fn)` and `executeSync(fn)`, closed/open/half-open. */
export class RingWindowBreaker {
  readonly #rate: number;
  readonly #bucketMs: number;
  readonly #buckets: number;
  readonly #minimumCalls: number;
  readonly #recoveryTimeout: number;
  readonly #clock: () => number;
  readonly #calls: Float64Array;
  readonly #failures: Float64Array;
  #totalCalls = 0;
  #totalFailures = 0;
  /** The clock's bucket number (ms / bucketMs) of the bucket last counted in. */
  #current = 0;
  #state = CLOSED;
  #openedAt = 0;
  #trialRunning = false;

  constructor(options: RingWindowOptions) {
    this.#rate = options.failureRate;
    this.#buckets = options.buckets;
    this.#bucketMs = options.duration / options.buckets;
    this.#minimumCalls = options.minimumCalls;
    this.#recoveryTimeout = options.recoveryTimeout;
    this.#clock = options.clock ?? Date.now;
    this.#calls = new Float64Array(options.buckets);
    this.#failures = new Float64Array(options.buckets);
    this.#current = Math.floor(this.#clock() / this.#bucketMs);
  }

  /** "closed", "open" or "half-open". */
  get state(): string {
    return this.#state === CLOSED ? "closed" : this.#state === OPEN ? "open" : "half-open";
  }

  /** Calls and failures in the window, as of the last call counted. */
  get counts(): { calls: number; failures: number } {
    return { calls: this.#totalCalls, failures: this.#totalFailures };
  }

  execute<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#state !== CLOSED && !this.#admit()) {
      return Promise.reject(new RingOpenError("circuit open"));
    }
    return fn().then(this.#onSuccess, this.#onFailure) as Promise<T>;
  }

  executeSync<T>(fn: () => T): T {
    if (this.#state !== CLOSED && !this.#admit()) throw new RingOpenError("circuit open");
    let value: T;
    try {
      value = fn();
    } catch (error) {
      this.#failed();
      throw error;
    }
    this.#succeeded();
    return value;
  }

  #onSuccess = (value: unknown): unknown => {
    this.#succeeded();
    return value;
  };

  #onFailure = (error: unknown): never => {
    this.#failed();
    throw error;
  };

  #succeeded(): void {
    if (this.#state === HALF_OPEN) this.#close();
    else this.#count(0);
  }

  #failed(): void {
    if (this.#state === HALF_OPEN) return this.#open();
    this.#count(1);
    const calls = this.#totalCalls;
    if (calls >= this.#minimumCalls && this.#totalFailures >= this.#rate * calls) this.#open();
  }

  /** Counts one call in the clock's bucket, clearing the buckets the clock has passed. */
  #count(failed: number): void {
    const index = Math.floor(this.#clock() / this.#bucketMs);
    if (index > this.#current) this.#advance(index);
    // A clock set back counts in the current bucket rather than in one already passed.
    const slot = this.#current % this.#buckets;
    const calls = this.#calls;
    calls[slot] = (calls[slot] as number) + 1;
    this.#totalCalls++;
    if (failed !== 0) {
      const failures = this.#failures;
      failures[slot] = (failures[slot] as number) + 1;
      this.#totalFailures++;
    }
  }

  /** Clears the buckets between the current one and `index` (at most the whole ring). */
  #advance(index: number): void {
    const passed = Math.min(index - this.#current, this.#buckets);
    const calls = this.#calls;
    const failures = this.#failures;
    for (let k = 1; k <= passed; k++) {
      const slot = (this.#current + k) % this.#buckets;
      this.#totalCalls -= calls[slot] as number;
      this.#totalFailures -= failures[slot] as number;
      calls[slot] = 0;
      failures[slot] = 0;
    }
    this.#current = index;
  }

  /** Whether a call may go while not closed: one trial once the recovery timeout is over. */
  #admit(): boolean {
    if (this.#state === OPEN && this.#clock() - this.#openedAt >= this.#recoveryTimeout) {
      this.#state = HALF_OPEN;
      this.#trialRunning = false;
    }
    if (this.#state !== HALF_OPEN || this.#trialRunning) return false;
    this.#trialRunning = true;
    return true;
  }

  #open(): void {
    this.#state = OPEN;
    this.#openedAt = this.#clock();
  }

  #close(): void {
    this.#state = CLOSED;
    this.#calls.fill(0);
    this.#failures.fill(0);
    this.#totalCalls = 0;
    this.#totalFailures = 0;
    this.#current = Math.floor(this.#clock() / this.#bucketMs);
  }
}
