/**
 * Guards for streams: async iterables, sync iterables and `ReadableStream`s. A guarded stream
 * is one call to the dependency: admitted at its first read, a success when the source
 * completes or the consumer stops early, a failure when the source throws, stalls, or yields
 * an item that reports an error in-band.
 *
 * @module
 */

import type { Breaker } from "./breaker.ts";
import { type CallHooks, callHooks, type Permit } from "./call_protocol.ts";
import { markGuarded } from "./guarded_function.ts";
import { describeValue, quoteName } from "./core/describe_value.ts";
import { delay, optionalFunction, optionsObject } from "./core/validate.ts";
import { streamDurationMs } from "./core/stream_duration.ts";
import { type BreakerOpenError, type BulkheadFullError, TimeoutError } from "./errors.ts";

/**
 * Options of one guarded stream; the timeouts and `isFailureItem` override the breaker's.
 *
 * @example
 * ```ts
 * import { Breaker, type StreamOptions } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const options: StreamOptions<string> = {
 *   firstItemTimeout: 5_000,
 *   idleTimeout: 1_000,
 *   isFailureItem: (item) => item.startsWith("error:"),
 * };
 * const llm = new Breaker({ failureThreshold: 1 });
 * async function* replies() {
 *   yield "error: overloaded";
 * }
 * await Array.fromAsync(llm.stream(replies, options));
 * assert.equal(llm.state, "open");
 * ```
 */
export interface StreamOptions<T = unknown> {
  /** The caller's signal: when it aborts, a pending read rejects with its reason (neutral). */
  readonly signal?: AbortSignal | undefined;
  /** Ms to wait for the first item (only time spent waiting on the source counts). */
  readonly firstItemTimeout?: number | undefined;
  /** Ms to wait for each later item, and for the end. */
  readonly idleTimeout?: number | undefined;
  /** Marks an item reporting an in-band error: the stream counts as a failure. */
  readonly isFailureItem?: ((item: T) => boolean) | undefined;
}

/**
 * What `Breaker.stream()` guards: an async iterable, or a function returning one, given a
 * signal that aborts when the guarded stream ends early. `TReturn` and `TNext` are its
 * iterator's return and `next()` argument types (a generator's).
 *
 * @example
 * ```ts
 * import { Breaker, type StreamSource } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * async function* tokens(signal: AbortSignal) {
 *   for (const token of ["Hello", "world"]) if (!signal.aborted) yield token;
 * }
 * const source: StreamSource<string> = (signal) => tokens(signal);
 * assert.deepEqual(await Array.fromAsync(new Breaker().stream(source)), ["Hello", "world"]);
 * ```
 */
export type StreamSource<T, TReturn = unknown, TNext = unknown> =
  | AsyncIterable<T, TReturn, TNext>
  | ((signal: AbortSignal) => AsyncIterable<T, TReturn, TNext>);

/**
 * The stream `Breaker.stream(source)` returns: the items, return value and `next()` argument
 * types of the source's iterator.
 *
 * @example
 * ```ts
 * import type { GuardedStream } from "@circuit/breaker";
 * type Replies = GuardedStream<AsyncGenerator<string, number, string>>;
 * // AsyncIterableIterator<string, number, string>
 * ```
 */
export type GuardedStream<S> = S extends StreamSource<infer T, infer TReturn, infer TNext>
  ? AsyncIterableIterator<T, TReturn, TNext>
  : never;

/**
 * The item type of a stream source.
 *
 * @example
 * ```ts
 * import type { StreamItem } from "@circuit/breaker";
 * type Chunk = StreamItem<ReadableStream<Uint8Array>>; // Uint8Array
 * ```
 */
export type StreamItem<S> = S extends StreamSource<infer T> ? T : never;

const IDLE = 0;
const RUNNING = 1;
const FALLBACK = 2;
const DONE = 3;
type Phase = typeof IDLE | typeof RUNNING | typeof FALLBACK | typeof DONE;

/** The answer of a finished stream: `undefined` whatever its return type, as a generator's. */
const DONE_RESULT: IteratorReturnResult<never> = Object.freeze({
  done: true,
  value: undefined as never,
});

/** How the source is obtained when the stream is admitted. */
export type Opener<T, TReturn = unknown, TNext = unknown> = (
  signal: AbortSignal | undefined,
) => AsyncIterable<T, TReturn, TNext> | Iterable<T, TReturn, TNext>;

interface Resolved<T> {
  readonly signal: AbortSignal | undefined;
  readonly firstItemTimeout: number | undefined;
  readonly idleTimeout: number | undefined;
  readonly isFailureItem: ((item: T) => boolean) | undefined;
}

/** Validates per-stream options over the breaker's. */
function resolveOptions<T>(hooks: CallHooks, options: StreamOptions<T> | undefined): Resolved<T> {
  const context = "Cannot guard stream";
  if (options !== undefined) optionsObject(context, options);
  const policy = hooks.policy;
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(
      `${context}: "signal" must be an AbortSignal, received ${describeValue(signal)}`,
    );
  }
  // The breaker's own were checked when it was made; a stream's are checked the same way.
  const streams = policy.streams;
  return {
    signal,
    firstItemTimeout: options?.firstItemTimeout === undefined
      ? streams?.firstItemTimeout
      : delay(context, "firstItemTimeout", options.firstItemTimeout),
    idleTimeout: options?.idleTimeout === undefined
      ? streams?.idleTimeout
      : delay(context, "idleTimeout", options.idleTimeout),
    isFailureItem: options?.isFailureItem === undefined
      ? streams?.isFailureItem
      : optionalFunction<(item: T) => boolean>(context, "isFailureItem", options.isFailureItem),
  };
}

let guardOfStream: (value: object) => Breaker | undefined;

/** `GuardedAsyncStream`'s pull for `readable()` (set by its static block). */
let pullInto: <T>(
  stream: GuardedAsyncStream<T>,
  controller: ReadableStreamDefaultController<T>,
) => Promise<void>;

/** The breaker guarding `value` when it is a stream a breaker guards (from `stream()` or `circuit()`). */
export function streamGuardOf(value: unknown): Breaker | undefined {
  return value !== null && typeof value === "object" ? guardOfStream(value) : undefined;
}

/**
 * One guarded async stream. It pulls the source only when the consumer pulls (no read-ahead)
 * and ends the source (`return()`) on every exit but normal completion. It is transparent
 * like `yield*`: `next(value)` passes the value to the source, `throw(error)` throws the
 * error into it, and the source's return value ends the stream.
 */
export class GuardedAsyncStream<T, TReturn = void, TNext = undefined>
  implements AsyncGenerator<T, TReturn, TNext> {
  #hooks: CallHooks;
  #open: Opener<T, TReturn, TNext>;
  /** Whether the opener takes a signal (then it aborts when the stream ends early). */
  #wantsSignal: boolean;
  /** The source handed over before admission, to end if the stream is refused. */
  #handedOver: unknown;
  #thisArg: unknown;
  #args: readonly unknown[];
  #options: Resolved<T>;
  #phase: Phase = IDLE;
  #iterator: AsyncIterator<T, TReturn, TNext> | Iterator<T, TReturn, TNext> | undefined;
  #permit: Permit | undefined;
  #controller: AbortController | undefined;
  /** Whether the stream's outcome is recorded (once per stream). */
  #recorded = false;
  #received = false;
  #firstItemAt: number | undefined;
  #pending: Promise<unknown> | undefined;
  /** `readable()`'s handler of a plain read: the item to its stream's controller. */
  #enqueue: ((result: IteratorResult<T, TReturn>) => void) | undefined;
  #settlers: [(result: IteratorResult<T, TReturn>) => void, (error: unknown) => void] | undefined;
  /** The current read's stall limit, if it has one. */
  #limit: number | undefined;
  #pullStart = 0;
  /** One timer per stream, re-armed only when a read's deadline comes before it fires. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerDue = 0;
  #abortReason: { reason: unknown } | undefined;
  /** No signal, stall timeouts or `isFailureItem`: after the first item a read needs one reaction. */
  #plain: boolean;
  /** Plain, running and past the first item: `next()` takes the short way. */
  #fast = false;

  constructor(
    hooks: CallHooks,
    open: Opener<T, TReturn, TNext>,
    wantsSignal: boolean,
    handedOver: unknown,
    options: StreamOptions<T> | undefined,
    thisArg: unknown,
    args: readonly unknown[],
  ) {
    this.#hooks = hooks;
    this.#open = open;
    this.#wantsSignal = wantsSignal;
    this.#handedOver = handedOver;
    const resolved = resolveOptions(hooks, options);
    this.#options = resolved;
    this.#plain = resolved.signal === undefined && resolved.firstItemTimeout === undefined &&
      resolved.idleTimeout === undefined && resolved.isFailureItem === undefined;
    this.#thisArg = thisArg;
    this.#args = args;
  }

  static {
    guardOfStream = (value) => #hooks in value ? value.#hooks.breaker : undefined;
    pullInto = (stream, controller) => stream.#pullInto(controller);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(value?: TNext): Promise<IteratorResult<T, TReturn>> {
    if (this.#fast && this.#pending === undefined) return this.#readPlain(value, this.#onPlainItem);
    const pending = this.#pending;
    if (pending !== undefined && this.#phase === RUNNING) {
      // Asked again before the last read settled: reads are served one at a time, in order.
      const again = () => this.next(value);
      return pending.then(again, again);
    }
    switch (this.#phase) {
      case RUNNING:
        return this.#pull(value);
      case FALLBACK: {
        const iterator = this.#iterator as AsyncIterator<T, TReturn, TNext>;
        return Promise.resolve(value === undefined ? iterator.next() : iterator.next(value));
      }
      case DONE: {
        const aborted = this.#abortReason;
        if (aborted === undefined) return Promise.resolve(DONE_RESULT);
        this.#abortReason = undefined;
        return Promise.reject(aborted.reason);
      }
      default:
        return this.#start(value);
    }
  }

  /**
   * A read on the plain path (running, past the first item, nothing pending): the source's
   * answer goes to `onItem` in the read's own reaction.
   */
  #readPlain<R>(
    value: TNext | undefined,
    onItem: (result: IteratorResult<T, TReturn>) => R,
  ): Promise<R> {
    let read: Promise<IteratorResult<T, TReturn>> | IteratorResult<T, TReturn>;
    try {
      const iterator = this.#iterator as AsyncIterator<T, TReturn, TNext>;
      // `for await` passes no value: its read stays a call without arguments.
      read = value === undefined ? iterator.next() : iterator.next(value);
    } catch (error) {
      return Promise.reject(this.#onError(error));
    }
    // A native promise is chained as is: Promise.resolve() costs a few percent of an item.
    // (A subclass goes through it, as a foreign then() must not run inside next().)
    const native = read instanceof Promise && read.constructor === Promise;
    const pending = (native ? read : Promise.resolve(read)).then(onItem, this.#onErrorThrow);
    this.#pending = pending;
    return pending;
  }

  /**
   * `readable()`'s pull: on the plain path the item goes to the controller in the read's own
   * reaction, one reaction per chunk instead of two (the read's, then the pull's).
   */
  #pullInto(controller: ReadableStreamDefaultController<T>): Promise<void> {
    if (this.#fast && this.#pending === undefined) {
      const enqueue = this.#enqueue ??= (result) =>
        enqueueResult(controller, this.#onPlainItem(result));
      return this.#readPlain(undefined, enqueue);
    }
    return this.next().then((result) => enqueueResult(controller, result));
  }

  return(value?: unknown): Promise<IteratorResult<T, TReturn>> {
    const phase = this.#phase;
    this.#phase = DONE;
    this.#abortReason = undefined;
    if (phase === IDLE) {
      endSource(this.#handedOver, value, this.#hooks);
      return Promise.resolve(DONE_RESULT);
    }
    if (phase === FALLBACK) {
      const iterator = this.#iterator as AsyncIterator<T, TReturn, TNext>;
      return Promise.resolve(iterator.return?.()).then(() => DONE_RESULT);
    }
    if (phase === DONE) return Promise.resolve(DONE_RESULT);
    // The consumer stopped early: a success.
    const pulling = this.#pending !== undefined;
    const settlers = this.#settlers;
    this.#settlers = undefined;
    this.#pending = undefined;
    settlers?.[0](DONE_RESULT);
    this.#finish();
    this.#record("success");
    this.#controller?.abort();
    const ended = endSource(this.#iterator, value, pulling ? this.#hooks : undefined);
    // A source blocked in a read would never answer return(): don't wait for it then.
    return pulling ? Promise.resolve(DONE_RESULT) : ended.then(() => DONE_RESULT);
  }

  /**
   * Throws `error` into the source, as a generator's `throw()` does: a source that catches it
   * goes on (its answer is read like an item, under the stall timeouts), an error that escapes
   * is the stream's error (judged by the matchers). Behind a pending read, it waits for that
   * read, like a generator's queue. Before the first read the stream ends at once, never
   * admitted (a handed-over source is ended); after the end the error is rejected as is.
   */
  throw(error?: unknown): Promise<IteratorResult<T, TReturn>> {
    const pending = this.#pending;
    if (pending !== undefined && this.#phase === RUNNING) {
      const again = () => this.throw(error);
      return pending.then(again, again);
    }
    switch (this.#phase) {
      case RUNNING: {
        const iterator = this.#iterator as AsyncIterator<T, TReturn, TNext>;
        if (typeof iterator.throw !== "function") return this.#cannotThrow(error);
        let read: Promise<IteratorResult<T, TReturn>> | IteratorResult<T, TReturn>;
        try {
          read = iterator.throw(error);
        } catch (thrown) {
          return Promise.reject(this.#onError(thrown));
        }
        return this.#wait(read);
      }
      case FALLBACK: {
        const iterator = this.#iterator as AsyncIterator<T, TReturn, TNext>;
        if (typeof iterator.throw !== "function") return this.#cannotThrow(error);
        try {
          return Promise.resolve(iterator.throw(error));
        } catch (thrown) {
          return Promise.reject(thrown);
        }
      }
      case DONE:
        this.#abortReason = undefined;
        return Promise.reject(error);
      default:
        // A generator not started yet ends at once without running: nothing ran, nothing counts.
        this.#phase = DONE;
        endSource(this.#handedOver, error, this.#hooks);
        return Promise.reject(error);
    }
  }

  /** `yield*`'s rule for an iterator without `throw()`: end it, then throw a `TypeError`. */
  #cannotThrow(error: unknown): Promise<never> {
    const name = this.#hooks.policy.name;
    return this.return().then(() => Promise.reject(cannotThrowError(name, error)));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.return().then(() => {});
  }

  /** The first read: admission, then the source (or the fallback). */
  #start(value: TNext | undefined): Promise<IteratorResult<T, TReturn>> {
    const { signal } = this.#options;
    if (signal?.aborted) {
      this.#phase = DONE;
      endSource(this.#handedOver, signal.reason, this.#hooks);
      return Promise.reject(signal.reason);
    }
    const permit = this.#hooks.begin();
    if (permit instanceof Error) return this.#refused(permit, value);
    this.#permit = permit;
    this.#phase = RUNNING;
    let iterable: AsyncIterable<T, TReturn, TNext> | Iterable<T, TReturn, TNext>;
    try {
      if (this.#wantsSignal) this.#controller = new AbortController();
      iterable = this.#open(this.#controller?.signal);
      this.#iterator = iteratorOf<T, TReturn, TNext>(iterable);
    } catch (error) {
      this.#finish();
      this.#record("error", error);
      return Promise.reject(error);
    }
    signal?.addEventListener("abort", this.#onAbort, { once: true });
    return this.#pull(value);
  }

  /** Refused at the first read: end the handed-over source, serve the fallback or reject. */
  #refused(
    error: BreakerOpenError | BulkheadFullError,
    value: TNext | undefined,
  ): Promise<IteratorResult<T, TReturn>> {
    endSource(this.#handedOver, error, this.#hooks);
    const fallback = this.#hooks.fallback;
    if (fallback === undefined) {
      this.#phase = DONE;
      return Promise.reject(error);
    }
    let iterator: AsyncIterator<T, TReturn, TNext> | Iterator<T, TReturn, TNext>;
    try {
      iterator = iteratorOf(fallback.apply(this.#thisArg, this.#args as unknown[]));
    } catch (thrown) {
      this.#phase = DONE;
      return Promise.reject(thrown);
    }
    this.#iterator = iterator;
    this.#phase = FALLBACK;
    // The first value, which a generator ignores, is passed on too: the stream is the fallback's.
    return Promise.resolve(
      value === undefined ? iterator.next() : iterator.next(value),
    );
  }

  /** Reads the source, passing on the consumer's value if there is one. */
  #pull(value: TNext | undefined): Promise<IteratorResult<T, TReturn>> {
    let read: Promise<IteratorResult<T, TReturn>> | IteratorResult<T, TReturn>;
    try {
      const iterator = this.#iterator as AsyncIterator<T, TReturn, TNext>;
      read = value === undefined ? iterator.next() : iterator.next(value);
    } catch (error) {
      return Promise.reject(this.#onError(error));
    }
    return this.#wait(read);
  }

  /** Waits for the source's answer to a read or a `throw()`, within the stall limit. */
  #wait(
    read: Promise<IteratorResult<T, TReturn>> | IteratorResult<T, TReturn>,
  ): Promise<IteratorResult<T, TReturn>> {
    const { signal } = this.#options;
    const limit = this.#received ? this.#options.idleTimeout : this.#options.firstItemTimeout;
    if (limit === undefined && signal === undefined) {
      const pending = Promise.resolve(read).then(this.#onItem, this.#onErrorThrow);
      this.#pending = pending;
      return pending;
    }
    // A deadline or the caller's signal can end this read before the source answers.
    const pending = new Promise<IteratorResult<T, TReturn>>((resolve, reject) => {
      this.#settlers = [resolve, reject];
    });
    this.#pending = pending;
    this.#limit = limit;
    if (limit !== undefined) {
      const now = this.#hooks.now();
      this.#pullStart = now;
      if (this.#timer === undefined || this.#timerDue > now + limit) this.#arm(now, limit);
    } else if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    Promise.resolve(read).then(
      (result) => {
        const settlers = this.#settlers;
        if (this.#pending !== pending || settlers === undefined) return;
        this.#settlers = undefined;
        try {
          settlers[0](this.#onItem(result));
        } catch (error) {
          settlers[1](error);
        }
      },
      (error) => {
        const settlers = this.#settlers;
        if (this.#pending !== pending || settlers === undefined) return;
        this.#settlers = undefined;
        settlers[1](this.#onError(error));
      },
    );
    return pending;
  }

  #onPlainItem = (result: IteratorResult<T, TReturn>): IteratorResult<T, TReturn> => {
    if (result.done || this.#phase !== RUNNING) return this.#onItem(result);
    this.#pending = undefined;
    return result;
  };

  #onItem = (result: IteratorResult<T, TReturn>): IteratorResult<T, TReturn> => {
    this.#pending = undefined;
    if (this.#phase !== RUNNING) return DONE_RESULT;
    if (result.done) {
      this.#finish();
      this.#record("success");
      return result; // with the source's return value
    }
    if (!this.#received) {
      this.#received = true;
      this.#fast = this.#plain;
      if (this.#permit?.timed) this.#firstItemAt = this.#hooks.now();
    }
    const isFailureItem = this.#options.isFailureItem;
    if (
      isFailureItem !== undefined && !this.#recorded &&
      itemFails(this.#hooks, isFailureItem, result.value)
    ) {
      this.#record("failure", result.value);
    }
    return result;
  };

  #onError(error: unknown): unknown {
    this.#pending = undefined;
    if (this.#phase !== RUNNING) return error;
    this.#finish();
    this.#record("error", error);
    // A source that failed may fail again while being ended (an errored stream's cancel()
    // rejects): that is the same failure, already delivered, so nothing is reported.
    endSource(this.#iterator, error).catch(() => {});
    return error;
  }

  #onErrorThrow = (error: unknown): never => {
    throw this.#onError(error);
  };

  #arm(now: number, delay: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerDue = now + delay;
    this.#timer = setTimeout(this.#onTimer, delay);
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    const limit = this.#limit;
    if (this.#phase !== RUNNING || this.#settlers === undefined || limit === undefined) return;
    const now = this.#hooks.now();
    const waited = now - this.#pullStart;
    if (waited < limit) {
      this.#arm(now, limit - waited);
      return;
    }
    const [, reject] = this.#settlers;
    this.#settlers = undefined;
    this.#pending = undefined;
    const error = new TimeoutError(
      `Circuit ${quoteName(this.#hooks.policy.name)}: the stream waited ${limit} ms for its ${
        this.#received ? "next item" : "first item"
      }`,
    );
    this.#finish();
    this.#record("failure", error);
    this.#controller?.abort(error);
    endSource(this.#iterator, error, this.#hooks);
    reject(error);
  };

  #onAbort = (): void => {
    if (this.#phase !== RUNNING) return;
    const reason = (this.#options.signal as AbortSignal).reason;
    const settlers = this.#settlers;
    this.#settlers = undefined;
    this.#pending = undefined;
    this.#finish();
    this.#record("neutral");
    this.#controller?.abort(reason);
    endSource(this.#iterator, reason, this.#hooks);
    if (settlers !== undefined) settlers[1](reason);
    else this.#abortReason = { reason };
  };

  /** Records the stream's outcome, once. */
  #record(kind: Outcome, value?: unknown): void {
    if (this.#recorded) return;
    this.#recorded = true;
    recordOutcome(this.#hooks, this.#permit as Permit, this.#firstItemAt, kind, value);
  }

  /** The stream is over: no more timers or listeners. */
  #finish(): void {
    this.#phase = DONE;
    this.#fast = false;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#options.signal?.removeEventListener("abort", this.#onAbort);
  }
}

/**
 * The base of the sync stream guard: the global `Iterator` where the runtime has one, so that
 * a guarded stream has the iterator helpers (`map`, `filter`, ...) like the generator it
 * stands for.
 */
const IteratorBase = (typeof Iterator === "function" ? Iterator : Object) as unknown as new () =>
object;

/**
 * One guarded synchronous stream: admitted at its first `next()`, a success when the source
 * completes or the consumer stops, a failure when the source throws or an item fails. Sync
 * streams have no stall timeouts. A class rather than a generator: a generator wrapping a
 * generator costs several times the bare iteration per item.
 */
class GuardedSyncStream<T, TReturn, TNext> extends IteratorBase {
  #hooks: CallHooks;
  #open: () => Iterable<T, TReturn, TNext>;
  #thisArg: unknown;
  #args: readonly unknown[];
  #phase: Phase = IDLE;
  #iterator: Iterator<T, TReturn, TNext> | undefined;
  #permit: Permit | undefined;
  #recorded = false;
  #firstItemAt: number | undefined;
  /** The source while the stream runs untimed and without isFailureItem: no per-item checks. */
  #plainSource: Iterator<T, TReturn, TNext> | undefined;
  #isFailureItem: ((item: T) => boolean) | undefined;

  constructor(
    hooks: CallHooks,
    open: () => Iterable<T, TReturn, TNext>,
    thisArg: unknown,
    args: readonly unknown[],
  ) {
    super();
    this.#hooks = hooks;
    this.#open = open;
    this.#thisArg = thisArg;
    this.#args = args;
  }

  [Symbol.iterator](): this {
    return this;
  }

  next(value?: TNext): IteratorResult<T, TReturn> {
    // Shaped so that JavaScriptCore inlines it, and the source generator's resumption under it,
    // into the consumer's loop, and then never allocates the source's results: on Bun the loop
    // costs about what the least sync guard's does instead of 2-3x (bench/stream_bisect.ts).
    // Each of these broke that alone, in every process measured:
    // - an answer from another method on a path every stream takes: the first read starts the
    //   stream (a call returning nothing) and reads here; #nextChecked answers only off the
    //   plain path, which a plain stream never takes;
    // - the result handed to a call that is not inlined (#completed takes none);
    // - the recording inlined into next(): #record is over JavaScriptCore's inlining limit (170
    //   bytecode units), so it stays out of line; split into small methods, it was inlined
    //   whole into next(), which was then too big to be inlined into the loop.
    if (this.#phase === IDLE) this.#start();
    const source = this.#plainSource;
    let result: IteratorResult<T, TReturn>;
    if (source === undefined || value !== undefined) {
      result = this.#nextChecked(value);
    } else {
      try {
        result = source.next();
      } catch (error) {
        throw this.#failed(source, error);
      }
      if (result.done) this.#completed();
    }
    return result;
  }

  /**
   * `next()` after the end, for a fallback, with per-item checks, or with a value for the
   * source (the first value goes on too, though a generator ignores it).
   */
  #nextChecked(value: TNext | undefined): IteratorResult<T, TReturn> {
    if (this.#phase !== RUNNING) {
      if (this.#phase === FALLBACK) {
        const fallback = this.#iterator as Iterator<T, TReturn, TNext>;
        return value === undefined ? fallback.next() : fallback.next(value);
      }
      return DONE_RESULT;
    }
    const iterator = this.#iterator as Iterator<T, TReturn, TNext>;
    let result: IteratorResult<T, TReturn>;
    try {
      result = value === undefined ? iterator.next() : iterator.next(value);
    } catch (error) {
      throw this.#failed(iterator, error);
    }
    return this.#answer(result);
  }

  /** The source's answer to a read or a `throw()`: its end, or an item to check. */
  #answer(result: IteratorResult<T, TReturn>): IteratorResult<T, TReturn> {
    if (result.done) {
      this.#completed();
      return result;
    }
    if (this.#firstItemAt === undefined && this.#permit?.timed) {
      this.#firstItemAt = this.#hooks.now();
    }
    const isFailureItem = this.#isFailureItem;
    if (
      isFailureItem !== undefined && !this.#recorded &&
      itemFails(this.#hooks, isFailureItem, result.value)
    ) {
      this.#record("failure", result.value);
    }
    return result;
  }

  /** The source threw: the stream is a failure, the source is ended, the error goes on. */
  #failed(iterator: Iterator<T, TReturn, TNext>, error: unknown): unknown {
    this.#phase = DONE;
    this.#plainSource = undefined;
    this.#record("error", error);
    try {
      iterator.return?.();
    } catch {
      // the source's own error is already on its way to the consumer: it must not be replaced
    }
    return error;
  }

  /** The source completed: a success (its return value ends the stream). */
  #completed(): void {
    this.#phase = DONE;
    this.#plainSource = undefined;
    this.#record("success");
  }

  return(value?: unknown): IteratorResult<T, TReturn> {
    const phase = this.#phase;
    this.#phase = DONE;
    this.#plainSource = undefined;
    if (phase === RUNNING) this.#record("success"); // the consumer stopped early
    if (phase === RUNNING || phase === FALLBACK) this.#iterator?.return?.(value as TReturn);
    return DONE_RESULT;
  }

  /**
   * Throws `error` into the source, as a generator's `throw()` does: a source that catches it
   * goes on, an error that escapes is the stream's error (judged by the matchers). Before the
   * first read the stream ends at once, never admitted; after the end the error is thrown as is.
   */
  throw(error?: unknown): IteratorResult<T, TReturn> {
    const phase = this.#phase;
    if (phase === RUNNING || phase === FALLBACK) {
      const iterator = this.#iterator as Iterator<T, TReturn, TNext>;
      if (typeof iterator.throw !== "function") {
        // `yield*`'s rule: end the source (an error of its return() goes instead), then a TypeError.
        this.return();
        throw cannotThrowError(this.#hooks.policy.name, error);
      }
      if (phase === FALLBACK) return iterator.throw(error);
      let result: IteratorResult<T, TReturn>;
      try {
        result = iterator.throw(error);
      } catch (thrown) {
        throw this.#failed(iterator, thrown);
      }
      return this.#answer(result);
    }
    // Not started (it ends without running: nothing counts, as nothing ran) or already ended.
    this.#phase = DONE;
    throw error;
  }

  [Symbol.dispose](): void {
    this.return();
  }

  #start(): void {
    const hooks = this.#hooks;
    const permit = hooks.begin();
    if (permit instanceof Error) {
      this.#phase = DONE;
      const fallback = hooks.fallback;
      if (fallback === undefined) throw permit;
      const iterable = fallback.apply(this.#thisArg, this.#args as unknown[]) as Iterable<
        T,
        TReturn,
        TNext
      >;
      if (typeof iterable?.[Symbol.iterator] !== "function") {
        throw new TypeError(
          `Circuit ${
            quoteName(hooks.policy.name)
          }: the fallback of a sync stream must return an iterable, received ${
            describeValue(iterable)
          }`,
        );
      }
      this.#iterator = iterable[Symbol.iterator]();
      this.#phase = FALLBACK;
      return;
    }
    this.#permit = permit;
    try {
      this.#iterator = this.#open()[Symbol.iterator]();
    } catch (error) {
      this.#phase = DONE;
      this.#record("error", error);
      throw error;
    }
    this.#isFailureItem = hooks.policy.streams?.isFailureItem as ((item: T) => boolean) | undefined;
    if (!permit.timed && this.#isFailureItem === undefined) this.#plainSource = this.#iterator;
    this.#phase = RUNNING;
  }

  /** Records the stream's outcome, once. recordOutcome's body, not a call of it: see next(). */
  #record(kind: Outcome, value?: unknown): void {
    if (this.#recorded) return;
    this.#recorded = true;
    const hooks = this.#hooks;
    const permit = this.#permit as Permit;
    const durationMs = streamDurationMs(permit.start, this.#firstItemAt);
    if (kind === "success") hooks.succeed(permit, durationMs);
    else if (kind === "failure") hooks.fail(permit, value, durationMs);
    else if (kind === "error") hooks.settleError(permit, value, durationMs);
    else hooks.neutral(permit);
  }
}

/**
 * Guards a synchronous stream; the result behaves as the generator it stands for.
 */
export function guardSyncStream<T, TReturn = void, TNext = undefined>(
  hooks: CallHooks,
  open: () => Iterable<T, TReturn, TNext>,
  thisArg: unknown,
  args: readonly unknown[],
): Generator<T, TReturn, TNext> {
  return new GuardedSyncStream(hooks, open, thisArg, args) as unknown as Generator<
    T,
    TReturn,
    TNext
  >;
}

type Outcome = "success" | "failure" | "error" | "neutral";

/** Records a stream's outcome: an error by the matchers, a failure whatever they say. */
function recordOutcome(
  hooks: CallHooks,
  permit: Permit,
  firstItemAt: number | undefined,
  kind: Outcome,
  value: unknown,
): void {
  const durationMs = streamDurationMs(permit.start, firstItemAt);
  if (kind === "success") hooks.succeed(permit, durationMs);
  else if (kind === "failure") hooks.fail(permit, value, durationMs);
  else if (kind === "error") hooks.settleError(permit, value, durationMs);
  else hooks.neutral(permit);
}

function itemFails<T>(hooks: CallHooks, isFailureItem: (item: T) => boolean, item: T): boolean {
  try {
    return Boolean(isFailureItem(item));
  } catch (error) {
    hooks.policy.report(
      `Circuit ${quoteName(hooks.policy.name)}: "isFailureItem" threw; the item counts as fine`,
      error,
    );
    return false;
  }
}

/**
 * The error of `throw()` into a stream whose iterator has none: `yield*` ends such an iterator
 * and throws a `TypeError` (the protocol was violated), not the error; it is the cause here.
 */
function cannotThrowError(name: string, error: unknown): TypeError {
  return new TypeError(
    `Circuit ${
      quoteName(name)
    }: the stream's source has no throw() method, so it was ended with return() instead (as yield* does)`,
    { cause: error },
  );
}

/** The iterator of an async or sync iterable (a `ReadableStream` read through its reader). */
function iteratorOf<T, TReturn = unknown, TNext = unknown>(
  iterable: unknown,
): AsyncIterator<T, TReturn, TNext> | Iterator<T, TReturn, TNext> {
  if (iterable !== null && typeof iterable === "object") {
    const source = iterable as Partial<
      AsyncIterable<T, TReturn, TNext> & Iterable<T, TReturn, TNext>
    >;
    const asyncIterator = source[Symbol.asyncIterator];
    if (typeof asyncIterator === "function") return asyncIterator.call(source);
    const syncIterator = source[Symbol.iterator];
    if (typeof syncIterator === "function") return syncIterator.call(source);
    if (iterable instanceof ReadableStream) return readerIterator(iterable as ReadableStream<T>);
  }
  throw new TypeError(
    `A stream source must be an async iterable or an iterable, received ${describeValue(iterable)}`,
  );
}

/**
 * Ends a source on an early exit: `return()` for an iterator, `cancel()` for a stream, with
 * the reason. Without `hooks` the returned promise carries the source's own cleanup error;
 * with them it is reported instead (nobody waits for it).
 */
function endSource(source: unknown, reason: unknown, hooks?: CallHooks): Promise<unknown> {
  if (source === null || typeof source !== "object") return Promise.resolve();
  const target = source as {
    return?: (value?: unknown) => unknown;
    cancel?: (r?: unknown) => unknown;
  };
  let ended: unknown;
  try {
    if (typeof target.return === "function") ended = target.return(reason);
    else if (typeof target.cancel === "function") ended = target.cancel(reason);
  } catch (error) {
    ended = Promise.reject(error);
  }
  const promise = Promise.resolve(ended);
  if (hooks === undefined) return promise;
  return promise.catch((error) =>
    hooks.policy.report(
      `Circuit ${quoteName(hooks.policy.name)}: the stream's source failed while being ended`,
      error,
    )
  );
}

/** Reads a `ReadableStream` as an async iterator whose `return(reason)` cancels it. */
export function readerIterator<T>(stream: ReadableStream<T>): AsyncIterator<T> & {
  cancel(reason?: unknown): Promise<void>;
} {
  let reader: ReadableStreamDefaultReader<T> | undefined;
  const cancel = (reason?: unknown) =>
    reader === undefined ? stream.cancel(reason) : reader.cancel(reason);
  return {
    next: () => (reader ??= stream.getReader()).read() as Promise<IteratorResult<T>>,
    return: (reason?: unknown) => cancel(reason).then(() => DONE_RESULT as IteratorResult<T>),
    cancel,
  };
}

/**
 * Guards a `ReadableStream`: the returned stream pulls the source only when read
 * (`highWaterMark` 0), and cancelling it cancels the source with the same reason.
 *
 * @throws {TypeError} When `source` is not a `ReadableStream`, or an option has the wrong type.
 * @throws {RangeError} When a timeout option is out of range.
 */
export function guardReadable<T>(
  hooks: CallHooks,
  source: ReadableStream<T>,
  options: StreamOptions<T> | undefined,
  admitted?: Permit,
): ReadableStream<T> {
  if (!(source instanceof ReadableStream)) {
    throw new TypeError(
      `Cannot guard stream: "stream" must be a ReadableStream, received ${describeValue(source)}`,
    );
  }
  // With a call already admitted (`admitted`), the first read takes it instead of asking for
  // admission, and a stream cancelled before it is a success: the dependency answered.
  let begun = admitted === undefined;
  const guardHooks: CallHooks = begun ? hooks : {
    ...hooks,
    begin: () => {
      begun = true;
      return admitted as Permit;
    },
  };
  const handedOver = readerIterator(source);
  const guarded = new GuardedAsyncStream<T>(
    guardHooks,
    () => ({ [Symbol.asyncIterator]: () => handedOver }),
    false,
    handedOver,
    options,
    undefined,
    [],
  );
  return new ReadableStream<T>({
    pull: (controller) => pullInto(guarded, controller),
    cancel: (reason) => {
      if (!begun) {
        begun = true;
        hooks.succeed(admitted as Permit);
      }
      return guarded.return(reason).then(() => {});
    },
  }, { highWaterMark: 0 });
}

/** A read's answer, to a `ReadableStream`'s controller. */
function enqueueResult<T>(
  controller: ReadableStreamDefaultController<T>,
  result: IteratorResult<T, unknown>,
): void {
  if (result.done) controller.close();
  else controller.enqueue(result.value);
}

// deno-lint-ignore no-explicit-any
type AnyFunction = (this: any, ...args: any[]) => any;

/**
 * Guards an async generator function: each call returns a guarded stream over the generator
 * it would have returned, called with the same `this` and arguments at the first read.
 */
export function guardAsyncGeneratorFunction(breaker: Breaker, fn: AnyFunction): AnyFunction {
  const hooks = callHooks(breaker);
  const wrapper = function (this: unknown, ...args: unknown[]) {
    return new GuardedAsyncStream(
      hooks,
      () => fn.apply(this, args),
      false,
      undefined,
      undefined,
      this,
      args,
    );
  };
  return markGuarded(wrapper, fn, breaker, false);
}

/** Guards a generator function: each call returns a guarded sync stream. */
export function guardGeneratorFunction(breaker: Breaker, fn: AnyFunction): AnyFunction {
  const hooks = callHooks(breaker);
  const wrapper = function (this: unknown, ...args: unknown[]) {
    return guardSyncStream(hooks, () => fn.apply(this, args), this, args);
  };
  return markGuarded(wrapper, fn, breaker, true);
}
