/**
 * A reference model of the breaker's documented behaviour, for the model-based tests
 * (model_test.ts, stress_test.ts). Written from DESIGN.md and the README ("How it behaves",
 * "Adaptive tripping"), not from src/core: plain mutable fields and one `if` per rule, so that
 * it can be checked by reading.
 *
 * Covered: the consecutive rule, the open period (with a `Retry-After` hint), half-open trials
 * (`halfOpenMaxCalls`, `successThreshold`), manual `open`/`close`/`halfOpen`/`isolate`,
 * generations (late outcomes are ignored), neutral outcomes, `configure()`, restoring from
 * `toJSON()`, and a count window (`window: { calls }`) or a time window
 * (`window: { duration, buckets }`, the default) judged by `failureRate`, `slowCallRate` and
 * `minimumCalls`. Not covered: `shouldTrip`, `recoveryTimeout` functions, the recovery ramp,
 * shared stores, a clock that goes back.
 *
 * The time window keeps every recorded call with its time and counts, when read, the calls whose
 * bucket is one of the last `buckets` buckets before the current one, or the current one. A
 * bucket is `duration / buckets` ms, counted from time 0 (`floor(time / bucketMs)`), the
 * granularity `src/core/window.ts` documents; the README's bounds (the window covers at least
 * `duration` ms and at most one bucket more) follow from it and are asserted on every read.
 */

/** The states a circuit records (isolation is an overlay on top of them). */
export type ModelRecordedState = "closed" | "open" | "half-open";
/** The state as `breaker.state` reads it. */
export type ModelState = ModelRecordedState | "isolated";
/** How a settled call counts. */
export type Verdict = "success" | "failure" | "neutral";

/** The options the model follows (the subset of `BreakerOptions` it covers). */
export interface ModelOptions {
  readonly failureThreshold?: number;
  readonly successThreshold?: number;
  readonly halfOpenMaxCalls?: number;
  readonly recoveryTimeout?: number;
  readonly timeout?: number;
  readonly failureRate?: number;
  readonly slowCallRate?: number;
  readonly slowCallDuration?: number;
  readonly minimumCalls?: number;
  readonly window?: ModelWindowOptions;
  readonly maxRetryAfter?: number;
}

/** `window`: the last `calls` calls, or the last `duration` ms in `buckets` (default 10). */
export type ModelWindowOptions =
  | { readonly calls: number }
  | { readonly duration: number; readonly buckets?: number };

/** The window in force, with the defaults applied. */
type WindowShape =
  | { readonly kind: "calls"; readonly calls: number }
  | {
    readonly kind: "time";
    readonly duration: number;
    readonly buckets: number;
    readonly bucketMs: number;
  };

/** README: the default window is the last minute in 10 buckets. */
const DEFAULT_WINDOW = { duration: 60_000, buckets: 10 } as const;

function windowShape(window: ModelWindowOptions | undefined): WindowShape {
  if (window !== undefined && "calls" in window) return { kind: "calls", calls: window.calls };
  const duration = window?.duration ?? DEFAULT_WINDOW.duration;
  const buckets = window?.buckets ?? DEFAULT_WINDOW.buckets;
  return { kind: "time", duration, buckets, bucketMs: duration / buckets };
}

/** Whether two windows keep the same history, so `configure()` keeps the counts. */
function sameWindowShape(a: WindowShape, b: WindowShape): boolean {
  if (a.kind === "calls") return b.kind === "calls" && a.calls === b.calls;
  return b.kind === "time" && a.duration === b.duration && a.buckets === b.buckets;
}

/** An admitted call: what its outcome is recorded against. */
export interface Ticket {
  /** Which breaker admitted it: restoring from `toJSON()` starts a new one. */
  readonly instance: number;
  /** The period of the circuit it was admitted in; any state change starts a new one. */
  readonly epoch: number;
  /** When it was admitted. */
  readonly start: number;
  /** Whether it is a half-open trial. */
  readonly trial: boolean;
}

/** An admission decision. */
export type Admission =
  | { readonly admitted: true; readonly ticket: Ticket }
  | {
    readonly admitted: false;
    readonly state: ModelState;
    readonly retryAfterMs: number;
  };

/** An `isolate()` hold. */
export interface Hold {
  readonly instance: number;
  released: boolean;
}

interface WindowEntry {
  /** When the outcome was recorded (what a time window's buckets go by). */
  readonly time: number;
  readonly failed: boolean;
  readonly slow: boolean;
}

const MAX_TIMER_DELAY = 2_147_483_647;

/** Whether options are valid, by the documented ranges (only for the values the tests use). */
export function validModelOptions(options: ModelOptions): boolean {
  const integerAtLeast1 = (n: number | undefined) =>
    n === undefined || (Number.isInteger(n) && n >= 1);
  const rate = (n: number | undefined) => n === undefined || (n > 0 && n <= 1);
  const finiteAtLeast0 = (n: number | undefined) =>
    n === undefined || (Number.isFinite(n) && n >= 0);
  if (!integerAtLeast1(options.failureThreshold) && options.failureThreshold !== Infinity) {
    return false;
  }
  if (!integerAtLeast1(options.successThreshold)) return false;
  if (!integerAtLeast1(options.halfOpenMaxCalls)) return false;
  if (!finiteAtLeast0(options.recoveryTimeout)) return false;
  if (!finiteAtLeast0(options.slowCallDuration)) return false;
  if (!finiteAtLeast0(options.maxRetryAfter)) return false;
  if (
    options.timeout !== undefined && !(options.timeout > 0 && options.timeout <= MAX_TIMER_DELAY)
  ) {
    return false;
  }
  if (!rate(options.failureRate) || !rate(options.slowCallRate)) return false;
  if (options.slowCallRate !== undefined && options.slowCallDuration === undefined) return false;
  if (!integerAtLeast1(options.minimumCalls)) return false;
  const window = options.window;
  if (window !== undefined && "calls" in window) {
    if (!integerAtLeast1(window.calls)) return false;
    if (options.minimumCalls !== undefined && options.minimumCalls > window.calls) {
      return false;
    }
  } else if (window !== undefined) {
    // README: buckets an integer >= 1 and <= duration (so duration >= 1 too).
    const buckets = window.buckets ?? DEFAULT_WINDOW.buckets;
    if (!Number.isFinite(window.duration) || !integerAtLeast1(buckets)) return false;
    if (buckets > window.duration) return false;
  }
  return true;
}

/** The breaker as the documentation describes it. */
export class ReferenceBreaker {
  options: ModelOptions;
  mode: ModelRecordedState = "closed";
  epoch = 0;
  failureCount = 0;
  openUntilTime: number | undefined = undefined;
  /** Half-open trials admitted and not yet settled. */
  trials = 0;
  trialSuccesses = 0;
  holds = 0;
  window: WindowEntry[] = [];
  lastFailure: unknown = undefined;
  instance = 0;
  /** Every change of the state events announce (`stateChange` from, to), in order. */
  readonly stateChanges: [ModelState, ModelState][] = [];

  constructor(options: ModelOptions) {
    if (!validModelOptions(options)) throw new Error("the model was given invalid options");
    this.options = options;
  }

  /** An independent copy (for probing what a restored breaker would do). */
  clone(): ReferenceBreaker {
    const copy = new ReferenceBreaker(this.options);
    copy.mode = this.mode;
    copy.epoch = this.epoch;
    copy.failureCount = this.failureCount;
    copy.openUntilTime = this.openUntilTime;
    copy.trials = this.trials;
    copy.trialSuccesses = this.trialSuccesses;
    copy.holds = this.holds;
    copy.window = [...this.window];
    copy.lastFailure = this.lastFailure;
    copy.instance = this.instance;
    return copy;
  }

  // ------------------------------------------------------------------ the options in force

  /** Whether a rate rule judges the window. */
  get judgesWindow(): boolean {
    return this.options.failureRate !== undefined || this.options.slowCallRate !== undefined;
  }

  get failureThreshold(): number {
    return this.options.failureThreshold ?? (this.judgesWindow ? Infinity : 5);
  }

  get successThreshold(): number {
    return this.options.successThreshold ?? 1;
  }

  get halfOpenMaxCalls(): number {
    return this.options.halfOpenMaxCalls ?? 1;
  }

  get recoveryTimeout(): number {
    return this.options.recoveryTimeout ?? 30_000;
  }

  /** The call timeout in force, if any. */
  get timeout(): number | undefined {
    return this.options.timeout;
  }

  get windowShape(): WindowShape {
    return windowShape(this.options.window);
  }

  /** A time window's bucket size (to move the clock by buckets), else `undefined`. */
  get bucketMs(): number | undefined {
    const shape = this.windowShape;
    return shape.kind === "time" ? shape.bucketMs : undefined;
  }

  get minimumCalls(): number {
    const shape = this.windowShape;
    return this.options.minimumCalls ?? (shape.kind === "calls" ? Math.min(20, shape.calls) : 20);
  }

  get maxRetryAfter(): number {
    return this.options.maxRetryAfter ?? 3_600_000;
  }

  // ------------------------------------------------------------------ what can be read

  /** The state events announce: isolation first, else the recorded state. */
  recordedState(): ModelState {
    return this.holds > 0 ? "isolated" : this.mode;
  }

  /** `breaker.state` at `now`: an open circuit whose period has elapsed reads half-open. */
  stateAt(now: number): ModelState {
    if (this.holds > 0) return "isolated";
    if (this.mode === "open" && now >= (this.openUntilTime as number)) return "half-open";
    return this.mode;
  }

  /** `breaker.openUntil`. */
  get openUntil(): number | undefined {
    return this.holds === 0 && this.mode === "open" ? this.openUntilTime : undefined;
  }

  /** `breaker.retryAfterMs` at `now`. */
  retryAfterMs(now: number): number {
    if (this.holds > 0) return Infinity;
    if (this.mode === "open") return Math.max(0, (this.openUntilTime as number) - now);
    return 0;
  }

  /** `breaker.stats` counts at `now`. */
  windowCounts(now: number): { calls: number; failures: number; slowCalls: number } {
    const counted = this.window.filter((entry) => this.#inWindow(entry, now));
    return {
      calls: counted.length,
      failures: counted.filter((entry) => entry.failed).length,
      slowCalls: counted.filter((entry) => entry.slow).length,
    };
  }

  /** Whether a recorded call is still in the window at `now`. */
  #inWindow(entry: WindowEntry, now: number): boolean {
    const shape = this.windowShape;
    // A count window is trimmed to its last `calls` calls as they are recorded.
    if (shape.kind === "calls") return true;
    const bucketOf = (time: number) => Math.floor(time / shape.bucketMs);
    const counted = bucketOf(entry.time) >= bucketOf(now) - shape.buckets;
    const age = now - entry.time;
    if (age <= shape.duration && !counted) {
      throw new Error(
        `the bucket rule drops a call ${age} ms old from a ${shape.duration} ms window`,
      );
    }
    if (counted && age >= shape.duration + shape.bucketMs) {
      throw new Error(
        `the bucket rule keeps a call ${age} ms old in a ${shape.duration} ms window ` +
          `of ${shape.bucketMs} ms buckets`,
      );
    }
    return counted;
  }

  // ------------------------------------------------------------------ calls

  /** Decides whether a call may run at `now`. */
  admit(now: number): Admission {
    return this.#announcing(() => this.#admit(now));
  }

  #admit(now: number): Admission {
    if (this.holds > 0) return { admitted: false, state: "isolated", retryAfterMs: Infinity };
    if (this.mode === "closed") return this.#ticket(now, false);
    if (this.mode === "open") {
      const openUntil = this.openUntilTime as number;
      if (now < openUntil) return { admitted: false, state: "open", retryAfterMs: openUntil - now };
      this.#enterHalfOpen();
    }
    if (this.trials < this.halfOpenMaxCalls) {
      this.trials += 1;
      return this.#ticket(now, true);
    }
    return { admitted: false, state: "half-open", retryAfterMs: 0 };
  }

  #ticket(now: number, trial: boolean): Admission {
    return {
      admitted: true,
      ticket: { instance: this.instance, epoch: this.epoch, start: now, trial },
    };
  }

  /**
   * Records a call's outcome at `now`. `failure` is what becomes `lastFailure`; `retryAfterMs`
   * is the failure's hint for the open period.
   */
  record(
    ticket: Ticket,
    verdict: Verdict,
    now: number,
    failure?: unknown,
    retryAfterMs?: number,
  ): void {
    this.#announcing(() => this.#record(ticket, verdict, now, failure, retryAfterMs));
  }

  #record(
    ticket: Ticket,
    verdict: Verdict,
    now: number,
    failure: unknown,
    retryAfterMs: number | undefined,
  ): void {
    // A late outcome (another breaker, or a call admitted before the last state change).
    if (ticket.instance !== this.instance || ticket.epoch !== this.epoch) return;
    if (this.mode === "closed") {
      if (verdict === "neutral") return;
      const failed = verdict === "failure";
      const slow = this.options.slowCallDuration !== undefined &&
        now - ticket.start > this.options.slowCallDuration;
      if (failed) {
        this.failureCount += 1;
        this.lastFailure = failure;
      } else {
        this.failureCount = 0;
      }
      let trips = failed && this.failureCount >= this.failureThreshold;
      if (this.judgesWindow) {
        this.window.push({ time: now, failed, slow });
        const shape = this.windowShape;
        if (shape.kind === "calls" && this.window.length > shape.calls) this.window.shift();
        if (this.#windowTrips(now)) trips = true;
      }
      if (trips) this.#open(now, failed ? retryAfterMs : undefined);
      return;
    }
    if (this.mode === "half-open") {
      if (verdict === "neutral") {
        this.trials = Math.max(0, this.trials - 1);
      } else if (verdict === "success") {
        this.trialSuccesses += 1;
        if (this.trialSuccesses >= this.successThreshold) this.#close();
        else this.trials -= 1;
      } else {
        this.failureCount += 1;
        this.lastFailure = failure;
        this.#open(now, retryAfterMs);
      }
    }
  }

  #windowTrips(now: number): boolean {
    const { calls, failures, slowCalls } = this.windowCounts(now);
    if (calls < this.minimumCalls) return false;
    const { failureRate, slowCallRate } = this.options;
    if (failureRate !== undefined && failures / calls >= failureRate) return true;
    return slowCallRate !== undefined && slowCalls / calls >= slowCallRate;
  }

  // ------------------------------------------------------------------ manual control

  /** `breaker.open()`. */
  open(now: number): void {
    this.#announcing(() => this.#open(now, undefined));
  }

  /** `breaker.halfOpen()`: the next calls are trials; nothing changes when already half-open. */
  halfOpen(): void {
    this.#announcing(() => {
      if (this.mode !== "half-open") this.#enterHalfOpen();
    });
  }

  /** `breaker.close()`: counts reset; a closed circuit stays in its period. */
  close(): void {
    this.#announcing(() => {
      if (this.mode === "closed") {
        this.failureCount = 0;
        this.window = [];
      } else {
        this.#close();
      }
    });
  }

  /** `breaker.isolate()`. */
  isolate(): Hold {
    this.#announcing(() => {
      if (this.holds === 0) {
        this.epoch += 1; // calls already running belong to the old period
        this.trials = 0;
      }
      this.holds += 1;
    });
    return { instance: this.instance, released: false };
  }

  /** Disposing an `isolate()` hold; the last one closes the circuit. */
  release(hold: Hold): void {
    if (hold.released) return;
    hold.released = true;
    if (hold.instance !== this.instance) return;
    this.#announcing(() => {
      this.holds -= 1;
      if (this.holds === 0) this.#close();
    });
  }

  /**
   * `breaker.configure(partial)`: returns false (changing nothing) when the merged options are
   * invalid. The window is kept when it is judged before and after and keeps the same history
   * (the same number of calls, or the same duration and buckets).
   */
  configure(partial: ModelOptions): boolean {
    const merged = { ...this.options, ...partial };
    if (!validModelOptions(merged)) return false;
    const judgedBefore = this.judgesWindow;
    const shapeBefore = this.windowShape;
    this.options = merged;
    if (!judgedBefore || !this.judgesWindow || !sameWindowShape(shapeBefore, this.windowShape)) {
      this.window = [];
    }
    return true;
  }

  /**
   * A new breaker restored from this one's `toJSON()`: the same state and counts, but no
   * isolation, no trials in flight and no last failure (they are local and not saved).
   */
  restore(): void {
    this.instance += 1;
    this.holds = 0;
    this.trials = 0;
    this.lastFailure = undefined;
  }

  // ------------------------------------------------------------------ transitions

  #open(now: number, retryAfterMs: number | undefined): void {
    let period = this.recoveryTimeout;
    if (retryAfterMs !== undefined) {
      period = Math.max(period, Math.min(retryAfterMs, this.maxRetryAfter));
    }
    this.mode = "open";
    this.epoch += 1;
    this.openUntilTime = now + period;
    this.trials = 0;
    this.trialSuccesses = 0;
    this.window = [];
  }

  #enterHalfOpen(): void {
    this.mode = "half-open";
    this.epoch += 1;
    this.openUntilTime = undefined;
    this.trials = 0;
    this.trialSuccesses = 0;
    this.window = [];
  }

  #close(): void {
    this.mode = "closed";
    this.epoch += 1;
    this.openUntilTime = undefined;
    this.failureCount = 0;
    this.trials = 0;
    this.trialSuccesses = 0;
    this.window = [];
  }

  /** Runs a change and notes the state change events would announce. */
  #announcing<T>(change: () => T): T {
    const from = this.recordedState();
    const result = change();
    const to = this.recordedState();
    if (from !== to) this.stateChanges.push([from, to]);
    return result;
  }
}
