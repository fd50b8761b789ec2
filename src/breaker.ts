/**
 * The `Breaker` class: the thin stateful shell over the pure core. It holds the current
 * snapshot, reads the clock, runs the call, feeds the outcome to the core's transitions,
 * stores the next snapshot and notifies listeners. It decides nothing itself.
 *
 * Around it: its options (`breaker_options.ts`), listeners (`listeners.ts`), the mark on the
 * functions it guards (`guarded_function.ts`) and the protocol that streams and permits are
 * built on (`call_protocol.ts`).
 *
 * @module
 */

import { Bulkhead } from "./bulkhead.ts";
import {
  BREAKER_OPTIONS,
  type BreakerOptions,
  type ConfigurableOptions,
  copyOptions,
  type ExecuteOptions,
  FIXED_OPTIONS,
  parseOptions,
  SYSTEM_CLOCK,
} from "./breaker_options.ts";
import { callHooks, type Permit, provideCallHooks, UNGUARDED } from "./call_protocol.ts";
import { classifyError, isFailedResponse, isFailedResult, isThenable } from "./core/classify.ts";
import { describeValue, quoteName } from "./core/describe_value.ts";
import { type Policy, sharePolicy } from "./core/policy.ts";
import { snapshotFromJSON, type SnapshotJSON, snapshotToJSON } from "./core/serialize.ts";
import {
  type BreakerState,
  INITIAL_SNAPSHOT,
  recordedState,
  retryAfterAt,
  type Snapshot,
  stateAt,
} from "./core/snapshot.ts";
import {
  admit,
  clockSetBack,
  close,
  deferrableFailures,
  deferrableSuccesses,
  failureNeedsClock,
  halfOpen,
  isDeferrableSuccess,
  isolate,
  isQuiet,
  isRejection,
  needsClock,
  open,
  reconfigure,
  recordFailure,
  recordFailures,
  recordNeutral,
  recordSuccess,
  recordSuccesses,
  type Rejection,
  release,
  skipsAdmission,
  successNeedsClock,
  tripStats,
} from "./core/transitions.ts";
import { checkOptionNames, optionsObject } from "./core/validate.ts";
import { type WindowStats, windowStats } from "./core/window.ts";
import {
  BreakerOpenError,
  type BreakerOpenErrorOptions,
  BulkheadFullError,
  TimeoutError,
} from "./errors.ts";
import type { BreakerListener, ListenerHook, StoreErrorEvent } from "./events.ts";
import {
  type AnyFunction,
  checkFunction,
  functionName,
  GUARD,
  type Marked,
  markGuarded,
} from "./guarded_function.ts";
import { checkListeners, emit, NO_LISTENERS } from "./listeners.ts";
import { type BreakerPermit, issuePermit } from "./permit.ts";
import { checkRegistry, defaultRegistry } from "./registry.ts";
import { SharedCircuit } from "./shared_circuit.ts";
import {
  GuardedAsyncStream,
  type GuardedStream,
  guardReadable,
  type Opener,
  streamGuardOf,
  type StreamItem,
  type StreamOptions,
  type StreamSource,
} from "./stream.ts";

/** The handlers a call's promise settles through: one pair per generation (see `#settlers`). */
type Settle = {
  readonly generation: number;
  readonly onValue: (value: unknown) => unknown;
  readonly onError: (error: unknown) => never;
  /** Records a failure without passing it on (see `#settleThrough`). */
  readonly onFailure: (error: unknown) => void;
};

/**
 * Successes counted but not yet recorded: `count` of them (at most `limit`, see the core's
 * `deferrableSuccesses`) onto the snapshot `on`, the first settled `at`; `untimed` when one
 * needs no clock (the core's `successNeedsClock`: a count window), so that a call admitted
 * untimed may be deferred without reading it. Or failures instead (`count` and `limit` are
 * then 0): `failures` of them, at most `failureLimit` (the core's `deferrableFailures`), the
 * last of them `failure`. Mutable, and the breaker's alone: the snapshots it hands out never
 * change. One per breaker, reused.
 */
interface Deferral {
  on: Snapshot | undefined;
  /**
   * `on`, once a call on it has found the deferring lane open (`#callGeneral`); cleared
   * whenever `on` changes or what `#defersAtOnce` reads does (`#refreshFastPath`), so that
   * `execute()` can take the lane on one comparison.
   */
  lane: Snapshot | undefined;
  /** The handlers of the calls `execute()` runs on the lane (`#laneSettlers`). */
  laneSettle: LaneSettle | undefined;
  count: number;
  limit: number;
  at: number;
  untimed: boolean;
  /**
   * The latest settle time known to fall in the window's current bucket (`Infinity` for a
   * count window): an earlier one does too, since the bucket's number, `floor(t / bucketMs)`,
   * never decreases as `t` grows. It spares most deferred successes the division: a time
   * window's success went from 1.09x to 1.03x the ring reference on Deno, 1.17x to 1.08x on Bun.
   */
  inBucketUpTo: number;
  failures: number;
  failureLimit: number;
  failure: unknown;
}

/** The handler pair of calls run on the deferring lane (see `#laneSettlers`). */
interface LaneSettle {
  readonly onValue: (value: unknown) => unknown;
  readonly onError: (error: unknown) => never;
}

/** What `#settle` holds after a breaker's first call: no generation's handlers yet. */
const FIRST_CALL_MADE: Settle = {
  generation: -1,
  onValue: (value) => value,
  onError: (error) => {
    throw error;
  },
  onFailure: () => {},
};

/**
 * The guard mark's key as a constant of this module: read through the imported binding, the
 * check in `executeSync()` made it 1.45 ns against 1.13 ns on Deno (same runs).
 */
const GUARD_KEY: typeof GUARD = GUARD;

/** The signal given to functions that nothing can abort. */
const NEVER_ABORTED: AbortSignal = new AbortController().signal;
const NO_ARGS: readonly never[] = [];
/** What `#turnAwaySync` returns when there is no fallback to serve. */
const NO_FALLBACK: unique symbol = Symbol("no fallback");

/**
 * Guards calls to one dependency: after enough failures the circuit opens and calls fail fast
 * with {@linkcode BreakerOpenError} without touching the dependency, until the recovery period
 * lets trial calls through; their success closes it again.
 *
 * @example One breaker guarding many calls
 * ```ts
 * import { Breaker } from "@circuit/breaker";
 *
 * import assert from "node:assert/strict";
 *
 * const db = new Breaker({ name: "db", failureThreshold: 5, recoveryTimeout: 60_000 });
 * const rows = await db.execute((_signal) => Promise.resolve(["row"]), {
 *   signal: AbortSignal.timeout(5_000),
 * });
 * const parsed = db.executeSync(() => JSON.parse('{"ok":true}'));
 * assert.deepEqual(rows, ["row"]);
 * assert.deepEqual(parsed, { ok: true });
 * ```
 */
export class Breaker {
  /**
   * Defaults a subclass gives its instances, under the options passed to the constructor.
   *
   * @example
   * ```ts
   * import { Breaker, type BreakerOptions } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   *
   * class DbBreaker extends Breaker {
   *   static override defaults: BreakerOptions = { failureThreshold: 1, recoveryTimeout: 10_000 };
   * }
   * const orders = new DbBreaker({ name: "orders" });
   * await orders.execute(() => Promise.reject(new Error("down"))).catch(() => {});
   * assert.equal(orders.state, "open"); // one failure: the subclass's threshold
   * ```
   */
  static defaults: BreakerOptions = {};

  static {
    provideCallHooks((breaker) => ({
      breaker,
      get policy() {
        return breaker.#policy;
      },
      get fallback() {
        return breaker.#fallback;
      },
      begin: () => breaker.#begin(),
      // A permit of no generation (see `UNGUARDED`) records and announces nothing.
      // A permit that holds a bulkhead place gives it back with its outcome.
      succeed: (permit, durationMs) => {
        if (permit === UNGUARDED) return;
        if (permit.held) breaker.#leaveBulkhead();
        breaker.#settleSuccess(permit.generation, permit.start, permit.timed, durationMs);
      },
      fail: (permit, failure, durationMs) => {
        if (permit === UNGUARDED) return;
        if (permit.held) breaker.#leaveBulkhead();
        breaker.#settleFailure(failure, permit.generation, permit.start, permit.timed, durationMs);
      },
      settleError: (permit, error, durationMs) => {
        if (permit === UNGUARDED) return;
        if (permit.held) breaker.#leaveBulkhead();
        breaker.#settleError(error, permit.generation, permit.start, permit.timed, durationMs);
      },
      neutral: (permit) => {
        if (permit === UNGUARDED) return;
        if (permit.held) breaker.#leaveBulkhead();
        breaker.#settleNeutral(permit.generation);
      },
      now: () => breaker.#now(),
    }));
  }

  #options: BreakerOptions;
  #policy: Policy;
  /**
   * The snapshot, but for the successes deferred onto it (see `#current`): admission, and
   * whatever reads only what they cannot change (state, generation, failure count), read this.
   */
  #snapshot: Snapshot;
  /** Successes not yet recorded onto the snapshot, made at the first (see `#recordSuccessAt`). */
  #deferral: Deferral | undefined;
  #clock: () => number;
  #fallback: AnyFunction | undefined;
  /** How a wrapper keys calls that share one in flight (the `coalesce` option). */
  #coalesce: ((this: unknown, ...args: unknown[]) => string) | undefined;
  #listeners: readonly BreakerListener[];
  #settle: Settle | undefined;
  /** The snapshot in which a call needs no admission, clock or recording (see `isQuiet`). */
  #quiet: Snapshot | undefined;
  /** The bulkhead's places, made at the first call that needs them (`maxConcurrent`). */
  #bulkhead: Bulkhead | undefined;
  /** The link to the store, when the circuit is shared. */
  #shared: SharedCircuit | undefined;
  /** The last time the clock read well. */
  #lastNow = 0;

  /**
   * Creates a breaker.
   *
   * @throws {TypeError} When an option has the wrong type or is unknown (the message names it
   * and the value received).
   * @throws {RangeError} When an option is out of range.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const breaker = new Breaker({ name: "payments", failureThreshold: 3 });
   * assert.equal(breaker.state, "closed");
   * assert.throws(() => new Breaker({ halfOpenMaxCalls: 0 }), {
   *   name: "RangeError",
   *   message: 'Cannot create breaker: "halfOpenMaxCalls" must be an integer >= 1, received 0',
   * });
   * ```
   */
  constructor(options: BreakerOptions = {}) {
    const context = "Cannot create breaker";
    const defaults = (new.target as typeof Breaker).defaults ?? {};
    const merged = copyOptions(defaults, optionsObject(context, options));
    checkOptionNames(merged, BREAKER_OPTIONS, context);
    const parsed = parseOptions(merged, context);
    this.#options = merged;
    this.#policy = parsed.policy;
    this.#clock = parsed.clock;
    // The system clock does not break, and reading it here would cost an idle breaker a boxed
    // number (24-64 B on V8); a stand-in for it (a test's `Date.now`) might.
    if (parsed.clock !== SYSTEM_CLOCK) this.#noteTime();
    this.#fallback = parsed.fallback;
    this.#coalesce = parsed.coalesce;
    this.#listeners = parsed.listeners;
    this.#snapshot = merged.state === undefined
      ? INITIAL_SNAPSHOT
      : snapshotFromJSON(this.#policy, merged.state, `${context} ${quoteName(this.#policy.name)}`);
    const { store, syncInterval } = parsed;
    const registry = checkRegistry(merged.registry, context);
    if (store !== undefined) {
      this.#policy = sharePolicy(this.#policy, `${this.#policy.name}:${crypto.randomUUID()}`);
      this.#shared = new SharedCircuit(store, this.#policy.name, {
        snapshot: () => this.#snapshot,
        adopt: (next) => this.#change(next),
        policy: () => this.#policy,
        now: () => this.#now(),
        storeError: (error, operation) => this.#storeError(error, operation),
      }, syncInterval);
    }
    this.#refreshFastPath();
    if (registry !== false && (registry !== undefined || merged.name !== undefined)) {
      (registry ?? defaultRegistry).add(this);
    }
  }

  /** The breaker's name, shown in errors, events and metrics. */
  get name(): string {
    return this.#policy.name;
  }

  /**
   * The state now: `"closed"`, `"open"`, `"half-open"` (also an open circuit whose period has
   * elapsed), `"recovering"` or `"isolated"`. Reading it has no side effects.
   */
  get state(): BreakerState {
    const now = this.#now(); // first: a clock set back changes the snapshot
    return stateAt(this.#snapshot, now);
  }

  /** Consecutive failures recorded; reset by a success while closed and by closing. */
  get failureCount(): number {
    return this.#current().failureCount;
  }

  /** While open: when trial calls may start, in epoch ms; otherwise `undefined`. */
  get openUntil(): number | undefined {
    const snapshot = this.#snapshot;
    return snapshot.isolated === 0 ? snapshot.openUntil : undefined;
  }

  /** Milliseconds until a call may be admitted: 0 unless open, `Infinity` while isolated. */
  get retryAfterMs(): number {
    const now = this.#now(); // first: a clock set back changes the snapshot
    return retryAfterAt(this.#snapshot, now);
  }

  /** The last failure recorded: an error, or a value `isFailureResult` marked. */
  get lastFailure(): unknown {
    return this.#current().lastFailure;
  }

  /** The current immutable snapshot (see `@circuit/breaker/core`). */
  get snapshot(): Snapshot {
    return this.#current();
  }

  /** Counts in the rate rules' window now (all zero when no rule uses a window). */
  get stats(): WindowStats {
    const policy = this.#policy;
    const window = policy.rules?.window;
    const now = window?.kind === "time" ? this.#now() : 0;
    return windowStats(window, this.#current().window, now);
  }

  /**
   * The state as JSON (versioned); pass it as the `state` option to restore it. Isolation and
   * in-flight trials are local and not included.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const breaker = new Breaker({ name: "db" });
   * breaker.open();
   * const restored = new Breaker({ name: "db", state: breaker.toJSON() });
   * assert.equal(restored.state, "open");
   * ```
   */
  toJSON(): SnapshotJSON {
    return snapshotToJSON(this.#current());
  }

  /**
   * With a `store`: writes the counts not yet merged (when the store answers) and closes the
   * subscription, leaving no handle open. The breaker goes on working on its local state.
   * Without a store there is nothing to release.
   *
   * @example
   * ```ts
   * import { Breaker, memoryStore } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * await using breaker = new Breaker({ name: "db", store: memoryStore() });
   * assert.equal(await breaker.execute(() => Promise.resolve("row")), "row");
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.#shared === undefined ? Promise.resolve() : this.#shared.close();
  }

  /**
   * Runs `fn` if the circuit admits it, and records its outcome. `fn` is called at once
   * (synchronously) with an `AbortSignal` that fires on `timeout` or when the caller's
   * signal aborts. While calls are turned away the promise rejects with
   * {@linkcode BreakerOpenError} (or resolves with the `fallback`'s result).
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const api = new Breaker({ name: "api", timeout: 2_000 });
   * const text = await api.execute((signal) => Promise.resolve(`aborted: ${signal.aborted}`));
   * assert.equal(text, "aborted: false");
   * ```
   */
  execute<T>(
    fn: (signal: AbortSignal) => T | PromiseLike<T>,
    options?: ExecuteOptions,
  ): Promise<Awaited<T>> {
    if (typeof fn !== "function") {
      return Promise.reject(
        new TypeError(`Cannot execute: "fn" must be a function, received ${describeValue(fn)}`),
      );
    }
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      return Promise.reject(
        new TypeError(
          `Cannot execute: "signal" must be an AbortSignal, received ${describeValue(signal)}`,
        ),
      );
    }
    if ((fn as Marked)[GUARD_KEY]?.breaker === this) {
      // Already guarded by this breaker: its own guard admits and counts, once.
      if (signal?.aborted) return Promise.reject(signal.reason);
      try {
        return Promise.resolve(fn(signal ?? NEVER_ABORTED));
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const before = this.#snapshot;
    const deferral = this.#deferral;
    if (deferral?.lane === before && signal === undefined) {
      // The deferring lane, here rather than through `#call` and `#callGeneral`: V8 then
      // inlines the whole call into the caller's loop, where `#call` and what it inlines
      // overran its budget (the time window's success about 4 % less on Deno, 1.03-1.07x ->
      // 1.01-1.05x the ring reference; Bun 3-10 % less; bench/RESULTS.md, issue 21).
      const settle = deferral.laneSettle as LaneSettle;
      return this.#runInLane(fn, settle, before.generation) as Promise<Awaited<T>>;
    }
    const called = this.#call(fn, undefined, undefined, signal);
    if (!turnedAway(called)) return called as Promise<Awaited<T>>;
    // Made here, in the method the caller called: see `openErrorOptions`.
    const error = new BreakerOpenError(openErrorOptions(this.#policy, called));
    return this.#turnAway(error, undefined, undefined) as Promise<Awaited<T>>;
  }

  /**
   * Runs a synchronous `fn` if the circuit admits it, without any promise. Throws
   * {@linkcode BreakerOpenError} (or returns the `fallback`'s result) while calls are turned
   * away. `timeout` does not apply: a synchronous call cannot be interrupted. Should `fn`
   * return a promise (or any thenable), that is no outcome yet: the result is a promise that
   * settles as it does, and the outcome is recorded when it settles, as `execute()` would.
   *
   * @throws {BreakerOpenError} While calls are turned away and there is no `fallback`.
   * @throws {TypeError} When `fn` is not a function.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const parser = new Breaker({ name: "parser" });
   * assert.deepEqual(parser.executeSync(() => JSON.parse("[1, 2]")), [1, 2]);
   * ```
   */
  executeSync<T>(fn: () => T): T {
    if (typeof fn !== "function") {
      throw new TypeError(`Cannot execute: "fn" must be a function, received ${describeValue(fn)}`);
    }
    // Already guarded by this breaker: its own guard admits and counts, once.
    if ((fn as Marked)[GUARD_KEY]?.breaker === this) return fn();
    const before = this.#snapshot;
    // Closed with nothing counted (quiet: a success changes nothing, so nothing to decide or
    // record), or outcomes being deferred onto the snapshot (the lane: the call runs at once, as
    // admission would keep it, see `#callGeneral`). One try block for both: with the lane's in
    // `#runSync`, the failure path was 1.27-1.30x the least sync guard on Bun and 1.08-1.09x on
    // Deno in the whole bench, with one 1.21-1.24x and 1.05x (bench/RESULTS.md, issue 21).
    const quiet = before === this.#quiet;
    if (quiet || (this.#deferral?.on === before && this.#defersAtOnce(this.#policy))) {
      let result: unknown;
      try {
        result = fn();
      } catch (error) {
        this.#settleError(error, before.generation, 0, false);
        throw error;
      }
      if (quiet) {
        // An object may be a promise (no outcome yet: it counts when it settles) or a failed
        // Response. One `typeof` keeps the rest off the path of plain values.
        if (typeof result !== "object" && typeof result !== "function") return result as T;
        return this.#settleQuietObject(result, before.generation) as T;
      }
      return this.#settleReturned(result, before.generation, 0, false) as T;
    }
    const result = this.#callSyncGeneral(before, fn, undefined, NO_ARGS);
    if (!(result instanceof NoValue)) return result as T;
    if (result.rejection === undefined) throw result.error;
    // Made here, in the method the caller called: see `openErrorOptions`.
    const error = new BreakerOpenError(openErrorOptions(this.#policy, result.rejection));
    const answer = this.#turnAwaySync(error, undefined, NO_ARGS);
    if (answer === NO_FALLBACK) throw error;
    return answer as T;
  }

  /**
   * Returns an async function that calls `fn` through this breaker, with the same `this`,
   * parameters and (awaited) return type. Wrapping a function this breaker already guards
   * returns it unchanged, so no outcome is counted twice.
   *
   * @throws {TypeError} When `fn` is not a function.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const db = new Breaker({ name: "db" });
   * const query = db.wrap(async (sql: string) => [sql]);
   * assert.deepEqual(await query("select 1"), ["select 1"]);
   * assert.equal(db.wrap(query), query); // already guarded by db
   * ```
   */
  wrap<This, Args extends unknown[], R>(
    fn: (this: This, ...args: Args) => R,
  ): (this: This, ...args: Args) => Promise<Awaited<R>> {
    const known = (fn as Marked)[GUARD_KEY];
    if (known?.breaker === this && !known.sync) {
      return fn as unknown as (this: This, ...args: Args) => Promise<Awaited<R>>;
    }
    const target = checkFunction(known?.breaker === this ? known.fn : fn, "wrap");
    const wrapper =
      (this.#coalesce === undefined
        ? Breaker.#wrapper(this, target)
        : Breaker.#coalescingWrapper(this, target, this.#coalesce)) as (
          this: This,
          ...args: Args
        ) => Promise<Awaited<R>>;
    return markGuarded(wrapper, target, this, false);
  }

  /**
   * Returns a synchronous function that calls `fn` through this breaker (see
   * {@linkcode Breaker.executeSync}), with the same `this`, parameters and return type.
   *
   * @throws {TypeError} When `fn` is not a function.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const parser = new Breaker({ name: "parser" });
   * const parse = parser.wrapSync((text: string) => JSON.parse(text));
   * assert.deepEqual(parse("[1]"), [1]);
   * ```
   */
  wrapSync<This, Args extends unknown[], R>(
    fn: (this: This, ...args: Args) => R,
  ): (this: This, ...args: Args) => R {
    const known = (fn as Marked)[GUARD_KEY];
    if (known?.breaker === this && known.sync) return fn;
    const target = checkFunction(known?.breaker === this ? known.fn : fn, "wrapSync");
    const wrapper = Breaker.#syncWrapper(this, target) as (this: This, ...args: Args) => R;
    return markGuarded(wrapper, target, this, true);
  }

  /**
   * Admits one call made in two steps, for code that cannot be wrapped in one function (a
   * streamed response, a callback API, middleware): report its outcome on the permit, once
   * (see {@linkcode BreakerPermit}); disposed without one, it counts neither way and gives back
   * its trial slot. Listeners hear of it as of any call (`beforeCall` now, `rejected` when
   * refused). The `fallback` does not apply: there is no call to answer for.
   *
   * @throws {BreakerOpenError} While calls are turned away.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   *
   * const api = new Breaker({ name: "api" });
   * using permit = api.acquire();
   * try {
   *   // ... the call, in as many steps as it takes
   *   permit.success();
   * } catch (error) {
   *   permit.failure(error);
   *   throw error;
   * }
   * assert.equal(api.state, "closed");
   * ```
   */
  acquire(): BreakerPermit {
    const admitted = this.#begin();
    if (admitted instanceof Error) throw admitted;
    return issuePermit(callHooks(this), admitted);
  }

  /**
   * Guards a stream: an async iterable, or a function that returns one given a signal (which
   * aborts when the guarded stream ends early). The stream is admitted at its first read;
   * it counts as a success when the source completes or the consumer stops early, and as a
   * failure when the source throws, stalls past `firstItemTimeout`/`idleTimeout` (rejecting
   * the read with `TimeoutError`), or yields an item `isFailureItem` marks. While calls are
   * turned away the first read rejects with {@linkcode BreakerOpenError}, or the `fallback`'s
   * iterable is served.
   *
   * @throws {TypeError} When `source` is neither an async iterable nor a function, or `options`
   * is given for a stream this breaker already guards.
   *
   * @example Guarding an LLM token stream
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   *
   * const llm = new Breaker({ name: "llm", firstItemTimeout: 10_000, idleTimeout: 2_000 });
   * async function* tokens(_signal: AbortSignal) {
   *   yield "Hello";
   *   yield " world";
   * }
   * let text = "";
   * for await (const token of llm.stream(tokens)) text += token;
   * assert.equal(text, "Hello world");
   * ```
   */
  stream<S extends StreamSource<unknown>>(
    source: S,
    options?: StreamOptions<StreamItem<S>>,
  ): GuardedStream<S> {
    const hooks = callHooks(this);
    if (streamGuardOf(source) === this) {
      // Already guarded by this breaker: its own guard admits and counts, once.
      if (options === undefined) return source as unknown as GuardedStream<S>;
      throw new TypeError(
        `Cannot guard stream: "source" is already guarded by circuit ${
          quoteName(this.#policy.name)
        }, whose guard decides; "options" cannot be given`,
      );
    }
    if (typeof source === "function") {
      return new GuardedAsyncStream(
        hooks,
        source as Opener<StreamItem<S>>,
        true,
        undefined,
        options,
        undefined,
        NO_ARGS,
      ) as unknown as GuardedStream<S>;
    }
    if (source === null || typeof source !== "object") {
      throw new TypeError(
        `Cannot guard stream: "source" must be an async iterable or a function returning one, received ${
          describeValue(source)
        }`,
      );
    }
    return new GuardedAsyncStream(
      hooks,
      () => source as AsyncIterable<StreamItem<S>>,
      false,
      source,
      options,
      undefined,
      NO_ARGS,
    ) as unknown as GuardedStream<S>;
  }

  /**
   * Guards a `ReadableStream` (a `Response.body`, say) and returns a `ReadableStream`, with
   * the rules of {@linkcode Breaker.stream}. The source is read only as the result is read;
   * cancelling the result cancels the source with the same reason.
   *
   * @example Proxying a streamed response
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   *
   * const upstream = new Breaker({ name: "upstream", idleTimeout: 5_000 });
   * const body = new Response("streamed").body!;
   * const proxied = new Response(upstream.readable(body));
   * assert.equal(await proxied.text(), "streamed");
   * ```
   */
  readable<T>(stream: ReadableStream<T>, options?: StreamOptions<T>): ReadableStream<T> {
    return guardReadable(callHooks(this), stream, options);
  }

  /**
   * Opens the circuit by hand for a normal recovery period from now.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const breaker = new Breaker();
   * breaker.open();
   * assert.equal(breaker.state, "open");
   * ```
   */
  open(): void {
    const now = this.#now();
    this.#change(open(this.#policy, this.#current(), now));
  }

  /**
   * Puts the circuit in half-open by hand: the next calls are trials.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const breaker = new Breaker();
   * breaker.halfOpen();
   * assert.equal(breaker.state, "half-open");
   * ```
   */
  halfOpen(): void {
    const now = this.#now();
    this.#change(halfOpen(this.#policy, this.#current(), now));
  }

  /**
   * Closes the circuit by hand: the failure count and openings reset; no recovery ramp.
   * While isolated, the circuit stays isolated until every hold is released.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const breaker = new Breaker();
   * breaker.open();
   * breaker.close();
   * assert.equal(breaker.state, "closed");
   * ```
   */
  close(): void {
    const now = this.#now();
    this.#change(close(this.#policy, this.#current(), now));
  }

  /**
   * Forces the circuit open until every hold this returns is disposed; releasing the last
   * one closes it. Calls are rejected with `retryAfterMs` `Infinity` meanwhile. Isolation is
   * local to this breaker and not part of `toJSON()`.
   *
   * @example Maintenance window
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const db = new Breaker({ name: "db" });
   * {
   *   using _hold = db.isolate();
   *   assert.equal(db.state, "isolated");
   * }
   * assert.equal(db.state, "closed");
   * ```
   */
  isolate(): Disposable {
    const now = this.#now();
    this.#change(isolate(this.#policy, this.#current(), now));
    let held = true;
    return {
      [Symbol.dispose]: () => {
        if (!held) return;
        const now = this.#now(); // a broken clock throws here, and the hold is still held
        held = false;
        const next = release(this.#policy, this.#snapshot, now);
        // A shared breaker rejoins the shared circuit rather than closing it for everyone.
        if (this.#shared !== undefined && next.isolated === 0) this.#shared.rejoin(next, now);
        else this.#change(next);
      },
    };
  }

  /**
   * Changes options of a running breaker; the others keep their values. `name`, `state` and
   * `listeners` cannot change (use `addListener()`). The state is kept; the window is kept
   * when it windows the same history.
   *
   * @throws {TypeError} When an option cannot be changed, is unknown or has the wrong type.
   * @throws {RangeError} When an option is out of range. Nothing changes then.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const breaker = new Breaker({ failureThreshold: 5 });
   * breaker.configure({ failureThreshold: 1 });
   * await breaker.execute(() => Promise.reject(new Error("down"))).catch(() => {});
   * assert.equal(breaker.state, "open");
   * ```
   */
  configure(options: ConfigurableOptions): void {
    const context = `Cannot configure breaker ${quoteName(this.#policy.name)}`;
    checkOptionNames(optionsObject(context, options), BREAKER_OPTIONS, context);
    for (const fixed of FIXED_OPTIONS) {
      if (fixed in options) {
        throw new TypeError(
          `${context}: "${fixed}" cannot be changed${
            fixed === "listeners" ? "; use addListener()" : ""
          }`,
        );
      }
    }
    const merged = copyOptions(this.#options, options);
    const parsed = parseOptions(merged, context);
    const { clock, fallback } = parsed;
    const lease = this.#policy.lease;
    const policy = lease === undefined ? parsed.policy : sharePolicy(parsed.policy, lease.holder);
    // Everything is valid: only now does the breaker change.
    this.#snapshot = reconfigure(this.#policy, policy, this.#current());
    this.#options = merged;
    this.#policy = policy;
    if (clock !== this.#clock) {
      this.#noteTime(); // the clock in use until now: the latest time to fall back to
      this.#clock = clock;
      this.#noteTime();
    }
    this.#fallback = fallback;
    this.#refreshFastPath();
  }

  /**
   * Adds a listener; dispose the returned value (or call `removeListener`) to remove it. It
   * hears the calls that begin after it is added.
   *
   * @throws {TypeError} When `listener` is not an object whose hooks are functions.
   *
   * @example
   * ```ts
   * import { Breaker } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const breaker = new Breaker({ name: "db" });
   * const states: string[] = [];
   * using _subscription = breaker.addListener({ stateChange: ({ to }) => void states.push(to) });
   * breaker.open();
   * assert.deepEqual(states, ["open"]);
   * ```
   */
  addListener(listener: BreakerListener): Disposable {
    checkListeners([listener], "Cannot add listener");
    this.#listeners = [...this.#listeners, listener];
    this.#refreshFastPath();
    return { [Symbol.dispose]: () => this.removeListener(listener) };
  }

  /**
   * Removes a listener added with `addListener()` or the `listeners` option (one occurrence).
   *
   * @example
   * ```ts
   * import { Breaker, type BreakerListener } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const breaker = new Breaker();
   * let opened = 0;
   * const listener: BreakerListener = { stateChange: () => void opened++ };
   * breaker.addListener(listener);
   * breaker.removeListener(listener);
   * breaker.open();
   * assert.equal(opened, 0);
   * ```
   */
  removeListener(listener: BreakerListener): void {
    const index = this.#listeners.indexOf(listener);
    if (index === -1) return;
    const remaining = this.#listeners.filter((_, i) => i !== index);
    this.#listeners = remaining.length === 0 ? NO_LISTENERS : remaining;
    this.#refreshFastPath();
  }

  // The wrappers call `#call` themselves, with no closure between: one frame less under every
  // BreakerOpenError's stack (see `openErrorOptions`). They are named after `target` where
  // they are defined (a computed key names a function): `markGuarded` then need not redefine
  // `name`, which costs V8 more than all the rest of wrapping a function.
  static #wrapper(breaker: Breaker, target: AnyFunction): AnyFunction {
    const name = functionName(target);
    return {
      [name]: function (this: unknown, ...args: unknown[]): Promise<unknown> {
        const before = breaker.#snapshot;
        if (before === breaker.#quiet) {
          // `#call`'s quiet path, written out, `args` only applied or spread: see `#syncWrapper`.
          let result: unknown;
          try {
            result = target.apply(this, args);
          } catch (error) {
            breaker.#settleError(error, before.generation, 0, false);
            return Promise.reject(error);
          }
          if (result instanceof Promise) {
            const settle = breaker.#settlersOf(before.generation);
            return result.then(settle.onValue, settle.onError);
          }
          return breaker.#settleQuietResult(result, before.generation);
        }
        const called = breaker.#callGeneralWith(before, target, this, ...args);
        if (!turnedAway(called)) return called;
        const error = new BreakerOpenError(openErrorOptions(breaker.#policy, called));
        return breaker.#turnAwayWith(error, this, ...args);
      },
    }[name] as AnyFunction;
  }

  /** A quiet async call's result that is no `Promise`: a thenable to observe, or a value. */
  #settleQuietResult(result: unknown, generation: number): Promise<unknown> {
    if (isThenable(result)) return this.#observe(result, generation, 0, false);
    if (isFailedResponse(result)) this.#settleFailure(result, generation, 0, false);
    return Promise.resolve(result);
  }

  /** `#callGeneral` for a wrapper, whose arguments are spread (see `#syncWrapper`). */
  #callGeneralWith(
    before: Snapshot,
    fn: AnyFunction,
    thisArg: unknown,
    ...args: unknown[]
  ): Promise<unknown> | Rejection {
    return this.#callGeneral(fn, thisArg, args, undefined, before);
  }

  /** `#turnAway` for a wrapper, whose arguments are spread (see `#syncWrapper`). */
  #turnAwayWith(error: BreakerOpenError, thisArg: unknown, ...args: unknown[]): Promise<unknown> {
    return this.#turnAway(error, thisArg, args);
  }

  /** A wrapper whose concurrent calls with one key share the first one's promise. */
  static #coalescingWrapper(
    breaker: Breaker,
    target: AnyFunction,
    keyOf: (this: unknown, ...args: unknown[]) => string,
  ): AnyFunction {
    const name = functionName(target);
    const inFlight = new Map<string, Promise<unknown>>();
    return {
      [name]: function (this: unknown, ...args: unknown[]): Promise<unknown> {
        let key: string;
        try {
          key = keyOf.apply(this, args);
        } catch (error) {
          return Promise.reject(error);
        }
        const pending = inFlight.get(key);
        if (pending !== undefined) return pending;
        const called = breaker.#call(target, this, args, undefined);
        const answer = turnedAway(called)
          ? breaker.#turnAway(
            new BreakerOpenError(openErrorOptions(breaker.#policy, called)),
            this,
            args,
          )
          : called;
        // The callers get this derived promise: a rejection nobody handles is still reported.
        const shared = answer.then(
          (value) => {
            inFlight.delete(key);
            return value;
          },
          (error) => {
            inFlight.delete(key);
            throw error;
          },
        );
        inFlight.set(key, shared);
        return shared;
      },
    }[name] as AnyFunction;
  }

  static #syncWrapper(breaker: Breaker, target: AnyFunction): AnyFunction {
    const name = functionName(target);
    return {
      [name]: function (this: unknown, ...args: unknown[]): unknown {
        const before = breaker.#snapshot;
        if (before === breaker.#quiet) {
          // `executeSync`'s quiet path, written out: V8 spares the rest array only when the
          // `apply` is in the function that has it, JavaScriptCore only when nothing but
          // `apply` and spreads use it (else 7-12 ns a call, against 0.5-1.2 ns; issue 21).
          let result: unknown;
          try {
            result = target.apply(this, args);
          } catch (error) {
            breaker.#settleError(error, before.generation, 0, false);
            throw error;
          }
          if (typeof result !== "object" && typeof result !== "function") return result;
          return breaker.#settleQuietObject(result, before.generation);
        }
        const result = breaker.#callSyncGeneralWith(before, target, this, ...args);
        if (!(result instanceof NoValue)) return result;
        if (result.rejection === undefined) throw result.error;
        const error = new BreakerOpenError(openErrorOptions(breaker.#policy, result.rejection));
        const answer = breaker.#turnAwaySyncWith(error, this, ...args);
        if (answer === NO_FALLBACK) throw error;
        return answer;
      },
    }[name] as AnyFunction;
  }

  /**
   * Runs an async call: admission, then the call, then its outcome. Never throws. A call turned
   * away returns its `Rejection` (snapshot kept): the caller makes the error.
   */
  #call(
    fn: AnyFunction,
    thisArg: unknown,
    args: readonly unknown[] | undefined,
    signal: AbortSignal | undefined,
  ): Promise<unknown> | Rejection {
    const before = this.#snapshot;
    if (before === this.#quiet && signal === undefined) {
      let result: unknown;
      try {
        result = args === undefined ? fn(NEVER_ABORTED) : fn.apply(thisArg, args as unknown[]);
      } catch (error) {
        this.#settleError(error, before.generation, 0, false);
        return Promise.reject(error);
      }
      if (result instanceof Promise) {
        const settle = this.#settlersOf(before.generation);
        return result.then(settle.onValue, settle.onError);
      }
      return this.#settleQuietResult(result, before.generation);
    }
    return this.#callGeneral(fn, thisArg, args, signal, before);
  }

  #callGeneral(
    fn: AnyFunction,
    thisArg: unknown,
    args: readonly unknown[] | undefined,
    signal: AbortSignal | undefined,
    before: Snapshot,
  ): Promise<unknown> | Rejection {
    const policy = this.#policy;
    const deferral = this.#deferral;
    if (deferral?.on === before && signal === undefined && this.#defersAtOnce(policy)) {
      // Successes (or failures) are being deferred onto the snapshot: the call runs at once,
      // as admission would keep it, and its outcome is counted (the time window's success:
      // 2-4 % less on Bun, issue 21). Not in `#call`: there it slowed Deno's quiet path
      // (1.22x -> 1.28x).
      if (deferral.lane !== before) {
        deferral.lane = before;
        deferral.laneSettle = this.#laneSettlers(deferral, before);
      }
      return this.#run(fn, thisArg, args, before.generation, 0, false);
    }
    if (policy.mode === "off") return runUnguarded(fn, thisArg, args, signal);
    if (policy.maxConcurrent !== undefined) {
      return this.#callBulkheaded(policy.maxConcurrent, fn, thisArg, args, signal);
    }
    return this.#admitAndRun(fn, thisArg, args, signal, before);
  }

  /**
   * Whether a call on a snapshot with deferred successes or failures (closed, unisolated, not
   * shared: see the core's `deferrableSuccesses` and `deferrableFailures`) may skip admission:
   * `#admitAndRun`'s quick way, with no bulkhead and not `"off"`.
   */
  #defersAtOnce(policy: Policy): boolean {
    return this.#listeners.length === 0 && policy.timeout === undefined && !policy.durations &&
      policy.mode !== "off" && policy.maxConcurrent === undefined;
  }

  /** An async call through the bulkhead: a place, a wait in its queue, or a refusal. */
  #callBulkheaded(
    maxConcurrent: number,
    fn: AnyFunction,
    thisArg: unknown,
    args: readonly unknown[] | undefined,
    signal: AbortSignal | undefined,
  ): Promise<unknown> | Rejection {
    const bulkhead = this.#bulkhead ??= new Bulkhead();
    if (bulkhead.tryEnter(maxConcurrent)) {
      return this.#holding(this.#admitAndRun(fn, thisArg, args, signal, this.#snapshot));
    }
    const waited = bulkhead.wait(this.#policy.maxQueued, signal);
    if (waited === undefined) return this.#turnAway(this.#bulkheadFull(), thisArg, args);
    return waited.then(() => {
      const called = this.#holding(this.#admitAndRun(fn, thisArg, args, signal, this.#snapshot));
      if (!turnedAway(called)) return called;
      return this.#turnAway(
        new BreakerOpenError(openErrorOptions(this.#policy, called)),
        thisArg,
        args,
      );
    });
  }

  /** The call's promise, giving its bulkhead place back when it settles (or at once, refused). */
  #holding(called: Promise<unknown> | Rejection): Promise<unknown> | Rejection {
    if (turnedAway(called)) {
      this.#leaveBulkhead();
      return called;
    }
    return called.then(
      (value) => {
        this.#leaveBulkhead();
        return value;
      },
      (error) => {
        this.#leaveBulkhead();
        throw error;
      },
    );
  }

  #leaveBulkhead(): void {
    this.#bulkhead?.leave(this.#policy.maxConcurrent ?? Infinity);
  }

  /** The error of a call the bulkhead has no place for. */
  #bulkheadFull(): BulkheadFullError {
    const policy = this.#policy;
    return new BulkheadFullError(
      policy.name,
      stateAt(this.#snapshot, this.#lastNow),
      policy.maxConcurrent ?? Infinity,
      policy.maxQueued,
    );
  }

  /** Admission, then the call, then its outcome (`#callGeneral` past the mode and bulkhead). */
  #admitAndRun(
    fn: AnyFunction,
    thisArg: unknown,
    args: readonly unknown[] | undefined,
    signal: AbortSignal | undefined,
    before: Snapshot,
  ): Promise<unknown> | Rejection {
    const policy = this.#policy;
    if (signal === undefined && this.#listeners.length === 0 && skipsAdmission(policy, before)) {
      // Nothing watches the call begin or needs its start: it runs at once and only its
      // outcome counts. (Not in `#call`: there it slowed the quiet path by about 5 % on Deno.)
      if (isQuiet(policy, before)) this.#quiet = before;
      return this.#run(fn, thisArg, args, before.generation, 0, false);
    }
    if (signal?.aborted) return Promise.reject(signal.reason);
    const timed = this.#listeners.length !== 0 || needsClock(policy, before);
    let start = 0;
    if (timed) {
      try {
        start = this.#now();
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const generation = this.#enter(policy, before, start);
    if (typeof generation !== "number") return generation;
    if (generation === UNGUARDED.generation) return runUnguarded(fn, thisArg, args, signal);
    if (policy.timeout !== undefined || signal !== undefined) {
      return this.#callGuarded(fn, thisArg, args, signal, generation, start, timed);
    }
    return this.#run(fn, thisArg, args, generation, start, timed);
  }

  /** `#run` for a call `execute()` runs on the deferring lane, with the lane's handlers. */
  #runInLane(fn: AnyFunction, settle: LaneSettle, generation: number): Promise<unknown> {
    let result: unknown;
    try {
      result = fn(NEVER_ABORTED);
    } catch (error) {
      this.#settleError(error, generation, 0, false);
      return Promise.reject(error);
    }
    if (result instanceof Promise) {
      // Failures being counted (the lane holds them too): no throw in a reaction, as in `#run`.
      // Without it the async failure path went from 1.2x to 1.6-2.2x the least guard.
      if (this.#snapshot.failureCount !== 0 && result.constructor === Promise) {
        return this.#settleThrough(result, generation, 0, false);
      }
      return result.then(settle.onValue, settle.onError);
    }
    if (isThenable(result)) return Promise.resolve(result).then(settle.onValue, settle.onError);
    this.#settleValue(result, generation, 0, false);
    return Promise.resolve(result);
  }

  /**
   * The handlers of calls run on the deferring lane on `lane`: a success there is counted in
   * place while the lane is still open on the same snapshot (no listener, no durations, its
   * generation, the limit not reached, the bucket's bound), otherwise recorded as
   * `#settleValue` would. Made once per lane, apart from the generation's pair: a function of
   * their own, whose optimized code knows only this case: the same checks inside the shared
   * `onValue` measured nothing, here 5-7 % less on Deno (the time window's success 1.06-1.12x
   * -> 0.95-0.99x the ring reference with both lane changes; bench/RESULTS.md, issue 21).
   */
  #laneSettlers(deferral: Deferral, lane: Snapshot): LaneSettle {
    // Calls on the lane read no start (nothing watches them begin); a time window reads the
    // end. The lane closes when the policy changes, so this holds for its whole life.
    const clocked = this.#policy.timed;
    const generation = lane.generation;
    return {
      onValue: (value) => {
        if (deferral.lane !== lane) {
          // Closed since the call (a listener, `configure()`...): the generation's handler.
          return this.#settlersOf(generation).onValue(value);
        }
        if (isFailedResult(this.#policy, value)) {
          this.#settleFailure(value, generation, 0, false);
          return value;
        }
        if (!clocked) {
          if (
            deferral.lane === lane && this.#snapshot === lane && deferral.untimed &&
            deferral.count < deferral.limit
          ) {
            deferral.count += 1;
          } else {
            this.#settleSuccess(generation, 0, false);
          }
          return value;
        }
        const end = this.#settledAt(0);
        if (
          deferral.lane === lane && this.#snapshot === lane && deferral.count < deferral.limit &&
          end <= deferral.inBucketUpTo
        ) {
          deferral.count += 1;
        } else {
          this.#settleSuccessAt(generation, false, 0, end);
        }
        return value;
      },
      onError: (error) => {
        this.#settleError(error, generation, 0, false);
        throw error;
      },
    };
  }

  /**
   * Runs an admitted call (no timeout, no caller's signal) and records its outcome. `timed`:
   * its `start` was read (for durations, a listener or the state), so its duration is known.
   * A call not timed has none: its outcome reaches no listener (one added while it ran hears
   * only the calls that begin after it), and a rule that needs the time reads it at the end.
   */
  #run(
    fn: AnyFunction,
    thisArg: unknown,
    args: readonly unknown[] | undefined,
    generation: number,
    start: number,
    timed: boolean,
  ): Promise<unknown> {
    let result: unknown;
    try {
      result = args === undefined ? fn(NEVER_ABORTED) : fn.apply(thisArg, args as unknown[]);
    } catch (error) {
      this.#settleError(error, generation, start, timed);
      return Promise.reject(error);
    }
    const promise = result instanceof Promise
      ? result
      : isThenable(result)
      ? Promise.resolve(result)
      : undefined;
    if (promise === undefined) {
      this.#settleValue(result, generation, start, timed);
      return Promise.resolve(result);
    }
    if (this.#snapshot.failureCount !== 0 && promise.constructor === Promise) {
      // Failures are being counted: this call is likely to fail too.
      return this.#settleThrough(promise, generation, start, timed);
    }
    if (!timed) {
      // One handler pair per generation: the common path allocates nothing per call.
      const settle = this.#settlersOf(generation);
      return promise.then(settle.onValue, settle.onError);
    }
    return this.#observe(promise, generation, start, true);
  }

  /** A promise settling as `promise` does, once its outcome is recorded. */
  #observe(
    promise: PromiseLike<unknown>,
    generation: number,
    start: number,
    timed: boolean,
  ): Promise<unknown> {
    const native = Promise.resolve(promise);
    if (this.#snapshot.failureCount !== 0) {
      return this.#settleThrough(native, generation, start, timed);
    }
    return native.then(
      (value) => this.#settleValue(value, generation, start, timed),
      (error) => {
        this.#settleError(error, generation, start, timed);
        throw error;
      },
    );
  }

  /**
   * The caller's promise when failures are being counted: one reaction records a failure and
   * passes nothing on, a second, registered after it, lets the error through without a
   * handler. A throw in a reaction costs about as much as the rest of a failing call (V8 makes
   * a message object for each throw, JavaScriptCore unwinds); a rejection passed on by a
   * missing handler costs neither. The same outcome, recorded first, in the same number of
   * ticks, as `then(onValue, onError)`, and a dropped rejection is still reported (the promise
   * returned rejects and nothing handles it). A success pays one more reaction, so only calls
   * made while failures are counted take it. Not `timed`: no start was read, so the
   * generation's handlers serve (no closure per call).
   */
  #settleThrough(
    promise: Promise<unknown>,
    generation: number,
    start: number,
    timed: boolean,
  ): Promise<unknown> {
    if (!timed) {
      const settle = this.#settlersOf(generation);
      promise.then(undefined, settle.onFailure);
      return promise.then(settle.onValue);
    }
    promise.then(undefined, (error) => this.#settleError(error, generation, start, timed));
    return promise.then((value) => this.#settleValue(value, generation, start, timed));
  }

  /** The async call with a timeout or a caller's signal: it can end before `fn` settles. */
  #callGuarded(
    fn: AnyFunction,
    thisArg: unknown,
    args: readonly unknown[] | undefined,
    signal: AbortSignal | undefined,
    generation: number,
    start: number,
    timed: boolean,
  ): Promise<unknown> {
    const timeoutMs = this.#policy.timeout;
    const controller = args === undefined && timeoutMs !== undefined
      ? new AbortController()
      : undefined;
    return new Promise((resolve, reject) => {
      let settled = false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        settled = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const onAbort = () => {
        if (settled) return;
        finish();
        const reason = (signal as AbortSignal).reason;
        controller?.abort(reason);
        this.#settleNeutral(generation);
        reject(reason);
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          if (settled) return;
          finish();
          const error = new TimeoutError(
            `Circuit ${quoteName(this.#policy.name)}: the call timed out after ${timeoutMs} ms`,
          );
          controller?.abort(error);
          this.#settleFailure(error, generation, start, timed);
          reject(error);
        }, timeoutMs);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      let result: unknown;
      try {
        result = args === undefined
          ? fn(controller?.signal ?? signal ?? NEVER_ABORTED)
          : fn.apply(thisArg, args as unknown[]);
      } catch (error) {
        if (settled) return; // the caller's signal aborted during the call
        finish();
        this.#settleError(error, generation, start, timed);
        reject(error);
        return;
      }
      Promise.resolve(result).then(
        (value) => {
          if (settled) return;
          finish();
          resolve(this.#settleValue(value, generation, start, timed));
        },
        (error) => {
          if (settled) return;
          finish();
          this.#settleError(error, generation, start, timed);
          reject(error);
        },
      );
    });
  }

  /** `#callSyncGeneral` for a wrapper, whose arguments are spread (see `#syncWrapper`). */
  #callSyncGeneralWith(
    before: Snapshot,
    fn: AnyFunction,
    thisArg: unknown,
    ...args: unknown[]
  ): unknown {
    return this.#callSyncGeneral(before, fn, thisArg, args);
  }

  /**
   * A synchronous call past the quiet path: admission as in `#callGeneral`. A call turned away
   * or whose `fn` threw returns a `NoValue` (snapshot kept): the caller makes the error, or
   * rethrows fn's.
   */
  #callSyncGeneral(
    before: Snapshot,
    fn: AnyFunction,
    thisArg: unknown,
    args: readonly unknown[],
  ): unknown {
    // The clock is read at the start only when durations, a listener or the state need it; a
    // timed rule reads it once, when the call settles.
    const policy = this.#policy;
    if (before.state === "open") {
      const rejection = this.#openRefusal(policy);
      if (rejection !== undefined) return new NoValue(rejection, undefined);
    }
    if (policy.mode === "off") return fn.apply(thisArg, args as unknown[]);
    if (policy.maxConcurrent === undefined) return this.#admitAndRunSync(fn, thisArg, args, before);
    // Through the bulkhead: a synchronous call cannot wait for a place.
    const bulkhead = this.#bulkhead ??= new Bulkhead();
    if (!bulkhead.tryEnter(policy.maxConcurrent)) {
      const error = this.#bulkheadFull();
      const answer = this.#turnAwaySync(error, thisArg, args);
      if (answer === NO_FALLBACK) throw error;
      return answer;
    }
    let result: unknown;
    try {
      result = this.#admitAndRunSync(fn, thisArg, args, this.#snapshot);
    } catch (error) {
      this.#leaveBulkhead();
      throw error;
    }
    if (result instanceof Promise) return this.#holding(result); // a thenable, observed
    this.#leaveBulkhead();
    return result;
  }

  /** A quiet synchronous call's object result: a promise to observe, or a failed Response. */
  #settleQuietObject(result: unknown, generation: number): unknown {
    if (isThenable(result)) return this.#observe(result, generation, 0, false);
    if (isFailedResponse(result)) this.#settleFailure(result, generation, 0, false);
    return result;
  }

  /** Admission, then the synchronous call, then its outcome. */
  #admitAndRunSync(
    fn: AnyFunction,
    thisArg: unknown,
    args: readonly unknown[],
    before: Snapshot,
  ): unknown {
    const policy = this.#policy;
    if (this.#listeners.length === 0 && skipsAdmission(policy, before)) {
      // As in `#admitAndRun`: nothing watches the call begin or needs its start.
      if (isQuiet(policy, before)) this.#quiet = before;
      return this.#runSync(fn, thisArg, args, before.generation, 0, false);
    }
    const timed = this.#listeners.length !== 0 || needsClock(policy, before);
    const start = timed ? this.#now() : 0;
    const generation = this.#enter(policy, before, start);
    if (typeof generation !== "number") return new NoValue(generation, undefined);
    if (generation === UNGUARDED.generation) return fn.apply(thisArg, args as unknown[]);
    return this.#runSync(fn, thisArg, args, generation, start, timed);
  }

  /** Runs an admitted synchronous call and records its outcome. */
  #runSync(
    fn: AnyFunction,
    thisArg: unknown,
    args: readonly unknown[],
    generation: number,
    start: number,
    timed: boolean,
  ): unknown {
    let result: unknown;
    try {
      // `apply` of an empty array costs JavaScriptCore 5x a plain call.
      result = args === NO_ARGS ? fn() : fn.apply(thisArg, args as unknown[]);
    } catch (error) {
      // Handed to the method the caller called, which throws it: a frame a throw leaves never
      // counts towards its optimization in V8 (only returns and loops do), so these methods
      // ran interpreted when every call failed, the failure path 4x dearer (issue 21).
      this.#settleError(error, generation, start, timed);
      return new NoValue(undefined, error);
    }
    return this.#settleReturned(result, generation, start, timed);
  }

  /** What a synchronous `fn` returned: a thenable to observe (no outcome yet), or a value. */
  #settleReturned(result: unknown, generation: number, start: number, timed: boolean): unknown {
    if (isThenable(result)) return this.#observe(result, generation, start, timed);
    return this.#settleValue(result, generation, start, timed);
  }

  /**
   * Decides admission. A shared circuit whose store does not answer takes the trial lease
   * locally and decides again, so no call is turned away because of the store.
   */
  #admit(policy: Policy, now: number): Snapshot | Rejection {
    // The snapshot as of now: reading the clock may have changed it (a clock set back).
    const verdict = admit(policy, this.#snapshot, now);
    const shared = this.#shared;
    if (shared === undefined || !isRejection(verdict) || !shared.leaseLocally(now)) return verdict;
    return admit(this.#policy, this.#snapshot, now);
  }

  /**
   * The refusal of a call on an open circuit, decided by `admit` at once, without the steps
   * that take no part in it then (`#admitAndRunSync`, `#enter`): enforced (`"observe"` runs the
   * call), no bulkhead (a full one refuses first) and not shared (the store may lend the trial
   * lease). `undefined` when the call may be admitted (the open period has elapsed) or one of
   * these takes part: the general path decides then. `executeSync(fn)` on an open circuit on
   * Bun: 1.12x -> 1.07x the least sync open guard in a same-process loop (six runs each; the
   * bench's runs, 0.97x-1.14x either way, are too noisy to tell). Asked from `executeSync`
   * itself it did as well on Bun but cost Deno 1.09x -> 1.15x; from here, 1.09x both (issue 21).
   */
  #openRefusal(policy: Policy): Rejection | undefined {
    if (policy.mode !== "enforce" || policy.maxConcurrent !== undefined) return undefined;
    if (this.#shared !== undefined) return undefined;
    const now = this.#now(); // first: a clock set back changes the snapshot
    const verdict = admit(policy, this.#snapshot, now);
    if (!isRejection(verdict)) return undefined;
    this.#keepRejected(verdict);
    return verdict;
  }

  /** Tells listeners of a call turned away, and serves the fallback or rejects with `error`. */
  #turnAway(
    error: BreakerOpenError | BulkheadFullError,
    thisArg: unknown,
    args: readonly unknown[] | undefined,
  ): Promise<unknown> {
    if (this.#listeners.length !== 0) this.#emit("rejected", { breaker: this, error });
    const fallback = this.#fallback;
    // Rejected without a throw and a catch, which would add to every rejection.
    if (fallback === undefined) return Promise.reject(error);
    try {
      return Promise.resolve(fallback.apply(thisArg, (args ?? NO_ARGS) as unknown[]));
    } catch (thrown) {
      return Promise.reject(thrown);
    }
  }

  /**
   * Tells listeners of a call turned away, and serves the fallback, or returns `NO_FALLBACK`:
   * the caller throws the error it made, as it throws fn's (see `#runSync`).
   */
  #turnAwaySync(
    error: BreakerOpenError | BulkheadFullError,
    thisArg: unknown,
    args: readonly unknown[],
  ): unknown {
    if (this.#listeners.length !== 0) this.#emit("rejected", { breaker: this, error });
    const fallback = this.#fallback;
    if (fallback === undefined) return NO_FALLBACK;
    return fallback.apply(thisArg, args as unknown[]);
  }

  /** `#turnAwaySync` for a wrapper, whose arguments are spread (see `#syncWrapper`). */
  #turnAwaySyncWith(error: BreakerOpenError, thisArg: unknown, ...args: unknown[]): unknown {
    return this.#turnAwaySync(error, thisArg, args);
  }

  /** Keeps the snapshot a rejection brings and tells the shared circuit. */
  #keepRejected(rejection: Rejection): void {
    if (rejection.snapshot !== this.#snapshot) this.#change(rejection.snapshot);
    this.#shared?.refused(this.#settledAt(0));
  }

  /** Under `"observe"`: tells listeners of the call it would have turned away. */
  #observeRejection(rejection: Rejection): void {
    if (this.#listeners.length === 0) return;
    const error = new BreakerOpenError(openErrorOptions(this.#policy, rejection));
    this.#emit("rejected", { breaker: this, error });
  }

  /** Admission for a stream: a permit, or the error of a refusal. */
  #begin(): Permit | BreakerOpenError | BulkheadFullError {
    const policy = this.#policy;
    if (policy.mode === "off") return UNGUARDED;
    if (policy.maxConcurrent === undefined) return this.#admitOne(policy);
    const bulkhead = this.#bulkhead ??= new Bulkhead();
    if (!bulkhead.tryEnter(policy.maxConcurrent)) {
      const error = this.#bulkheadFull();
      if (this.#listeners.length !== 0) this.#emit("rejected", { breaker: this, error });
      return error;
    }
    const admitted = this.#admitOne(policy);
    if (admitted instanceof Error || admitted === UNGUARDED) {
      this.#leaveBulkhead();
      return admitted;
    }
    return { ...admitted, held: true };
  }

  /** Admission of one stream or permit. */
  #admitOne(policy: Policy): Permit | BreakerOpenError {
    const before = this.#snapshot;
    const timed = policy.timed || this.#listeners.length !== 0 || needsClock(policy, before);
    const start = timed ? this.#now() : 0;
    const generation = this.#enter(policy, before, start);
    if (typeof generation !== "number") {
      const error = new BreakerOpenError(openErrorOptions(policy, generation));
      if (this.#listeners.length !== 0) this.#emit("rejected", { breaker: this, error });
      return error;
    }
    return generation === UNGUARDED.generation ? UNGUARDED : { generation, start, timed };
  }

  /**
   * Admission of a call whose start time (if needed) is `start`: the generation it runs in,
   * `UNGUARDED.generation` for a call let through unguarded under `"observe"`, or the
   * rejection of a call turned away (snapshot kept; the caller makes the error). Announces
   * changes and `beforeCall`.
   */
  #enter(policy: Policy, before: Snapshot, start: number): number | Rejection {
    const verdict = this.#admit(policy, start);
    let generation = before.generation;
    if (verdict !== before) {
      if (isRejection(verdict)) {
        this.#keepRejected(verdict);
        if (policy.mode !== "observe") return verdict;
        this.#observeRejection(verdict);
        return UNGUARDED.generation;
      }
      this.#change(verdict);
      generation = verdict.generation;
    }
    if (this.#listeners.length !== 0) this.#emit("beforeCall", { breaker: this });
    else if (isQuiet(policy, this.#snapshot)) this.#quiet = this.#snapshot;
    return generation;
  }

  /** The handler pair for calls of `generation` (see `#settlers`). */
  #settlersOf(generation: number): Settle {
    const settle = this.#settle;
    return settle !== undefined && settle.generation === generation
      ? settle
      : this.#settlers(generation);
  }

  /**
   * The handler pair for calls of `generation`, kept until the next one. A breaker's first
   * call gets a pair of its own and leaves `FIRST_CALL_MADE`: a breaker made per key and used
   * once then holds no handlers (about 200 B).
   */
  #settlers(generation: number): Settle {
    const made = this.#settlersFor(generation);
    this.#settle = this.#settle === undefined ? FIRST_CALL_MADE : made;
    return made;
  }

  /** Handlers for calls of `generation` whose start was not read (not timed). */
  #settlersFor(generation: number): Settle {
    return {
      generation,
      // A quiet success changes nothing, but a failed Response is no success.
      onValue: (value) =>
        this.#snapshot === this.#quiet && !isFailedResponse(value)
          ? value
          : this.#settleValue(value, generation, 0, false),
      onError: (error) => {
        this.#settleError(error, generation, 0, false);
        throw error;
      },
      onFailure: (error) => this.#settleError(error, generation, 0, false),
    };
  }

  /**
   * Records a returned value (a failure if `isFailureResult`, or by default a failed
   * `Response`, says so) and returns it.
   */
  #settleValue(value: unknown, generation: number, start: number, timed: boolean): unknown {
    if (isFailedResult(this.#policy, value)) {
      this.#settleFailure(value, generation, start, timed);
    } else {
      this.#settleSuccess(generation, start, timed);
    }
    return value;
  }

  #settleError(
    error: unknown,
    generation: number,
    start: number,
    timed: boolean,
    durationMs?: number,
  ): void {
    switch (classifyError(this.#policy, error)) {
      case "failure":
        return this.#settleFailure(error, generation, start, timed, durationMs);
      case "success":
        return this.#settleSuccess(generation, start, timed, durationMs);
      default:
        return this.#settleNeutral(generation);
    }
  }

  /**
   * Records a success: counted onto the snapshot's deferred ones when it may be (the common
   * case of a windowed rule, kept small: no allocation, and the clock read only when timed),
   * otherwise through `#recordSuccess`.
   */
  #settleSuccess(generation: number, start: number, timed: boolean, duration?: number): void {
    if (!timed && !this.#policy.timed) {
      if (!this.#deferOne(generation, 0, 0, false)) {
        this.#recordSuccess(generation, start, false, duration);
      }
      return;
    }
    // Timed, or a time window's: the end is read, the duration only known when timed.
    const end = this.#settledAt(start);
    this.#settleSuccessAt(generation, timed, duration ?? (timed ? end - start : 0), end);
  }

  /** `#settleSuccess` once the clock is read. */
  #settleSuccessAt(generation: number, timed: boolean, durationMs: number, end: number): void {
    if (!this.#deferOne(generation, durationMs, end, true)) {
      return this.#recordSuccessAt(generation, timed, durationMs, end);
    }
    if (timed && this.#listeners.length !== 0) {
      this.#emit("success", { breaker: this, durationMs });
    }
  }

  /**
   * Counts one more success deferred onto the snapshot, when it may be (see
   * `#recordSuccessAt`); one whose end was not read (not `clocked`), only where a success
   * needs no clock.
   */
  #deferOne(generation: number, durationMs: number, end: number, clocked: boolean): boolean {
    const held = this.#snapshot;
    const deferral = this.#deferral;
    if (
      deferral === undefined || deferral.on !== held || deferral.count >= deferral.limit ||
      generation !== held.generation || !(clocked || deferral.untimed)
    ) {
      return false;
    }
    if (end > deferral.inBucketUpTo || this.#policy.durations) {
      if (!isDeferrableSuccess(this.#policy, held, durationMs, end)) return false;
      if (end > deferral.inBucketUpTo) deferral.inBucketUpTo = end;
    }
    deferral.count += 1;
    return true;
  }

  /** A success not deferred onto the snapshot that has deferred ones: it reads the clock. */
  #recordSuccess(generation: number, start: number, timed: boolean, duration?: number): void {
    const snapshot = this.#snapshot;
    const deferral = this.#deferral;
    const clocked = timed || (deferral?.on === snapshot && deferral.count !== 0) ||
      successNeedsClock(this.#policy, snapshot);
    const end = clocked ? this.#settledAt(start) : 0;
    const durationMs = duration ?? (timed ? end - start : 0); // untimed: no start was read
    this.#recordSuccessAt(generation, timed, durationMs, end);
  }

  /**
   * Records a success, or starts deferring them onto the snapshot: while successes cannot
   * change anything but the window's counts (the core's `deferrableSuccesses`), the shell
   * counts them instead of making a new window and snapshot for each, and records them in
   * one step before anything reads or changes the snapshot (`#current`). A time window's
   * success went from 1.30x to 1.13x the ring reference on Deno, 1.55x to 1.19x on Bun; a
   * count window's from 1.01x to 0.64x cockatiel's on Deno (bench/RESULTS.md, issue 21).
   */
  #recordSuccessAt(generation: number, timed: boolean, durationMs: number, end: number): void {
    const policy = this.#policy;
    const held = this.#snapshot;
    const deferral = this.#deferral;
    if ((deferral === undefined || deferral.on !== held) && generation === held.generation) {
      const limit = deferrableSuccesses(policy, held);
      if (limit > 0 && isDeferrableSuccess(policy, held, durationMs, end)) {
        const untimed = !successNeedsClock(policy, held);
        const inBucketUpTo = held.window?.kind === "time" ? end : Infinity;
        this.#deferOnto(held, 1, limit, end, untimed, inBucketUpTo, 0, 0, undefined);
        if (this.#listeners.length !== 0 && timed) {
          this.#emit("success", { breaker: this, durationMs });
        }
        return;
      }
    }
    const before = this.#current();
    const next = recordSuccess(policy, before, generation, durationMs, end);
    if (next !== before) this.#snapshot = next;
    this.#shared?.recorded(before, generation, false, durationMs, end);
    if (this.#listeners.length !== 0 && timed) {
      this.#emit("success", { breaker: this, durationMs });
    }
    if (next !== before) this.#announceOutcome(before, next, false, durationMs, end);
  }

  /**
   * Records a failure, or counts it onto the snapshot's deferred ones: while failures can
   * change nothing but the failure count and the last failure (the core's
   * `deferrableFailures`: closed, no window rule, the threshold out of reach), the shell counts
   * them instead of making a new snapshot for each, and records them in one step before
   * anything reads or changes the snapshot (`#current`). A run of failures under
   * `failureThreshold: Infinity`: the sync failure path went from 1.20-1.34x to 1.03-1.13x the
   * least sync guard, the async one from 1.31-1.82x to 1.16-1.42x `observe` (both runtimes,
   * bench/RESULTS.md, issue 21).
   */
  #settleFailure(
    failure: unknown,
    generation: number,
    start: number,
    timed: boolean,
    duration?: number,
  ): void {
    const held = this.#snapshot;
    const deferral = this.#deferral;
    if (
      deferral !== undefined && deferral.on === held && deferral.failures < deferral.failureLimit &&
      generation === held.generation
    ) {
      deferral.failures += 1;
      deferral.failure = failure;
      if (this.#listeners.length !== 0 && timed) this.#emitFailure(failure, start, duration);
      return;
    }
    const before = this.#current();
    const policy = this.#policy;
    if (generation === before.generation) {
      const limit = deferrableFailures(policy, before);
      if (limit > 0) {
        this.#deferOnto(before, 0, 0, 0, false, Infinity, 1, limit, failure);
        if (this.#listeners.length !== 0 && timed) this.#emitFailure(failure, start, duration);
        return;
      }
    }
    const end = timed || failureNeedsClock(policy, before) ? this.#settledAt(start) : 0;
    const durationMs = timed ? duration ?? end - start : 0;
    const next = recordFailure(policy, before, generation, failure, durationMs, end);
    if (next !== before) this.#snapshot = next;
    this.#shared?.recorded(before, generation, true, durationMs, end);
    if (this.#listeners.length !== 0 && timed) {
      this.#emit("failure", { breaker: this, error: failure, durationMs });
    }
    if (next !== before) this.#announceOutcome(before, next, true, durationMs, end);
  }

  /**
   * Starts deferring outcomes onto `on`: `count` successes, at most `limit`, the first settled
   * `at`; or `failures`, at most `failureLimit`, the last being `failure` (see `Deferral`).
   * The breaker's one `Deferral` is reused; its lane closes.
   */
  #deferOnto(
    on: Snapshot,
    count: number,
    limit: number,
    at: number,
    untimed: boolean,
    inBucketUpTo: number,
    failures: number,
    failureLimit: number,
    failure: unknown,
  ): void {
    const deferral = this.#deferral ??= {
      on,
      lane: undefined,
      laneSettle: undefined,
      count,
      limit,
      at,
      untimed,
      inBucketUpTo,
      failures,
      failureLimit,
      failure,
    };
    deferral.on = on;
    deferral.lane = undefined;
    deferral.laneSettle = undefined;
    deferral.count = count;
    deferral.limit = limit;
    deferral.at = at;
    deferral.untimed = untimed;
    deferral.inBucketUpTo = inBucketUpTo;
    deferral.failures = failures;
    deferral.failureLimit = failureLimit;
    deferral.failure = failure;
  }

  /** Tells listeners of a failure counted onto the deferred ones (a timed call's). */
  #emitFailure(failure: unknown, start: number, duration: number | undefined): void {
    const durationMs = duration ?? this.#settledAt(start) - start;
    this.#emit("failure", { breaker: this, error: failure, durationMs });
  }

  /**
   * The snapshot with the deferred successes or failures recorded: what is read or changed by
   * anything they count in (the snapshot, stats, `failureCount` and `lastFailure` read,
   * `toJSON()`, an outcome not deferred, `open()`, `close()`, `halfOpen()`, `isolate()`,
   * `configure()`). Nothing else replaces a closed, unisolated snapshot that is not shared;
   * should one be replaced meanwhile, what was deferred onto it is dropped with it.
   */
  #current(): Snapshot {
    const deferral = this.#deferral;
    const snapshot = this.#snapshot;
    if (deferral === undefined || deferral.on === undefined) return snapshot;
    const { on, count, at, failures, failure } = deferral;
    deferral.on = undefined;
    deferral.lane = undefined;
    deferral.laneSettle = undefined;
    deferral.failure = undefined; // the user's error is held by the snapshot alone
    if (on !== snapshot) return snapshot;
    const next = failures === 0
      ? recordSuccesses(this.#policy, on, on.generation, count, at)
      : recordFailures(this.#policy, on, on.generation, failures, failure, this.#lastNow);
    this.#snapshot = next;
    return next;
  }

  #settleNeutral(generation: number): void {
    const before = this.#snapshot;
    const next = recordNeutral(this.#policy, before, generation);
    if (next !== before) this.#change(next);
  }

  /**
   * Recomputes what the fast paths rely on, after the policy or the listeners changed: the
   * quiet snapshot (see `isQuiet`; found again by a later call when the state changes), and no
   * deferring lane. Known at once, so a breaker's first call takes the quiet path too: were
   * the first call to take the general one, JavaScriptCore would compile that branch into
   * every caller of a `wrapSync` wrapper, the quiet call then 2.2-3.1 ns against 0.6-0.7 ns.
   */
  #refreshFastPath(): void {
    const snapshot = this.#snapshot;
    this.#quiet = this.#listeners.length === 0 && isQuiet(this.#policy, snapshot)
      ? snapshot
      : undefined;
    const deferral = this.#deferral;
    if (deferral !== undefined) {
      deferral.lane = undefined;
      deferral.laneSettle = undefined;
    }
  }

  /** Stores a snapshot and announces a change of state. */
  #change(next: Snapshot): void {
    const before = this.#snapshot;
    if (next === before) return;
    this.#snapshot = next;
    this.#announce(before, next);
  }

  #announce(before: Snapshot, after: Snapshot, stats?: WindowStats): void {
    this.#shared?.changed(before, after);
    if (this.#listeners.length === 0) return;
    const from = recordedState(before);
    const to = recordedState(after);
    if (from === to) return;
    this.#emit(
      "stateChange",
      stats === undefined ? { breaker: this, from, to } : { breaker: this, from, to, stats },
    );
  }

  /** Announces the change an outcome made; a trip tells the window's counts that tripped it. */
  #announceOutcome(
    before: Snapshot,
    after: Snapshot,
    failed: boolean,
    durationMs: number,
    now: number,
  ): void {
    const stats = this.#listeners.length === 0
      ? undefined
      : tripStats(this.#policy, before, after, failed, durationMs, now);
    this.#announce(before, after, stats);
  }

  #emit<H extends ListenerHook>(
    hook: H,
    event: Parameters<NonNullable<BreakerListener[H]>>[0],
  ): void {
    emit(this.#listeners, hook, event, this.#policy.name);
  }

  #storeError(error: unknown, operation: StoreErrorEvent["operation"]): void {
    if (this.#listeners.some((listener) => listener.storeError !== undefined)) {
      this.#emit("storeError", { breaker: this, error, operation });
    } else {
      console.error(
        `Circuit ${
          quoteName(this.#policy.name)
        }: the store failed (${operation}); going on under local state`,
        error,
      );
    }
  }

  /** Reads the clock for a time to fall back to, should it break before the breaker reads it. */
  #noteTime(): void {
    try {
      this.#now();
    } catch {
      // a clock that does not work yet: the first good reading will do
    }
  }

  /**
   * Reads the clock; a clock that returns anything but a finite number is an error. A time
   * earlier than the last one read means the clock was set back: an open period ends (see the
   * core's `clockSetBack`), unannounced until the next admission, like any elapsed period.
   */
  #now(): number {
    const now = this.#clock();
    if (typeof now === "number" && Number.isFinite(now)) {
      if (now < this.#lastNow) this.#snapshot = clockSetBack(this.#snapshot, now);
      this.#lastNow = now;
      return now;
    }
    throw new TypeError(
      `Circuit ${quoteName(this.#policy.name)}: "clock" must return epoch milliseconds, returned ${
        describeValue(now)
      }`,
    );
  }

  /**
   * The time a call settled. A broken clock here must not replace the call's own outcome, so
   * it is reported and the last time the clock read well is used (a call's start, when it was
   * read, or later).
   */
  #settledAt(start: number): number {
    try {
      return this.#now();
    } catch (error) {
      console.error(error);
      return Math.max(start, this.#lastNow);
    }
  }
}

/**
 * What a call turned away is told. The error is made in the method the caller called, never
 * below it: Deno has V8 capture a stack trace of up to 10 frames, with source positions, for
 * every `Error`, so every library frame between the caller and the constructor adds to each
 * rejection (bench/RESULTS.md, F7).
 */
function openErrorOptions(policy: Policy, rejection: Rejection): BreakerOpenErrorOptions {
  return {
    breaker: policy.name,
    state: rejection.rejectedIn as BreakerOpenErrorOptions["state"],
    retryAfterMs: rejection.retryAfterMs,
    cause: rejection.snapshot.lastFailure,
  };
}

/** Runs a call the breaker does not guard (see `UNGUARDED`), as a promise. */
function runUnguarded(
  fn: AnyFunction,
  thisArg: unknown,
  args: readonly unknown[] | undefined,
  signal: AbortSignal | undefined,
): Promise<unknown> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  try {
    return Promise.resolve(
      args === undefined ? fn(signal ?? NEVER_ABORTED) : fn.apply(thisArg, args as unknown[]),
    );
  } catch (error) {
    return Promise.reject(error);
  }
}

/** Whether `#call` turned the call away: anything else it returns is the call's promise. */
function turnedAway(called: Promise<unknown> | Rejection): called is Rejection {
  return (called as Partial<Rejection>).rejectedIn !== undefined;
}

/**
 * What `#callSyncGeneral` returns for a call that gave no value, told apart from any value a
 * function can return: the rejection of a call turned away, or else the error `fn` threw.
 */
class NoValue {
  readonly rejection: Rejection | undefined;
  readonly error: unknown;
  constructor(rejection: Rejection | undefined, error: unknown) {
    this.rejection = rejection;
    this.error = error;
  }
}
