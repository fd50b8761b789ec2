// Streams: circuit() on generator functions, Breaker.stream() and Breaker.readable(), on fake
// time. The contract is DESIGN.md's "Streams" section.
import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import {
  Breaker,
  type BreakerListener,
  breakerOf,
  BreakerOpenError,
  circuit,
  TimeoutError,
} from "../mod.ts";
import { callHooks } from "../src/call_protocol.ts";
import { guardSyncStream } from "../src/stream.ts";
import { describe, it } from "./timer_leaks.ts";
import { deferred, flush } from "./manual_clock.ts";
import { recordEvents } from "./event_recorder.ts";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;
function expectType<T extends true>(_proof?: T): void {}

type Timers = ReturnType<typeof FakeTimers.install>;

const DONE = { done: true, value: undefined };

let installed: Timers | undefined;

/** Runs `body` on fake `setTimeout`/`clearTimeout`/`Date` starting at 0. */
async function withFakeTime(body: (timers: Timers) => Promise<void> | void): Promise<void> {
  // A test the runner gave up on (Bun fails a test at an unhandled rejection and moves on)
  // may still hold the fake clock: take it back rather than fail every later test.
  installed?.uninstall();
  const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 0 });
  installed = timers;
  try {
    await body(timers);
  } finally {
    if (installed === timers) {
      installed = undefined;
      timers.uninstall();
    }
  }
}

/** Marks a promise the test awaits later as handled, so an early rejection fails only there. */
function handled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => {});
  return promise;
}

/** Waits `ms` of (fake) time. */
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function trip(breaker: Breaker, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    await breaker.execute(() => Promise.reject(new Error("down"))).catch(() => {});
  }
}

/** Lets promise reactions run until `condition` holds (a bounded number of turns). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (condition()) return;
    await Promise.resolve();
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface Tracked<T> {
  readonly settled: boolean;
  readonly rejected: boolean;
  readonly value: T | undefined;
  readonly error: unknown;
}

/** Observes a promise's outcome without awaiting it (and without an unhandled rejection). */
function track<T>(promise: Promise<T>): Tracked<T> {
  const state = { settled: false, rejected: false, value: undefined as T | undefined } as {
    settled: boolean;
    rejected: boolean;
    value: T | undefined;
    error: unknown;
  };
  promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error) => {
      state.settled = true;
      state.rejected = true;
      state.error = error;
    },
  );
  return state;
}

/** Reads a whole stream into an array. */
async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** An async source the test answers by hand, counting pulls and recording return() calls. */
interface Controlled<T> {
  readonly source: AsyncIterableIterator<T>;
  /** How many times `next()` was called. */
  readonly pulls: number;
  /** The arguments of each `return()` call. */
  readonly returns: unknown[];
  /** The errors given to `throw()` (a source made `withThrow`; answered like a pull). */
  readonly thrown: unknown[];
  /** Answers the pending pull with an item (waits for the pull to arrive). */
  push(value: T): Promise<void>;
  /** Answers the pending pull with the end of the stream. */
  end(): Promise<void>;
  /** Rejects the pending pull. */
  fail(error: unknown): Promise<void>;
}

function controlled<T>(
  options: { returnHangs?: boolean; withThrow?: boolean } = {},
): Controlled<T> {
  let waiting: ReturnType<typeof deferred<IteratorResult<T>>> | undefined;
  let pulls = 0;
  const returns: unknown[] = [];
  const thrown: unknown[] = [];
  const wait = () => {
    if (waiting !== undefined) throw new Error("the guard pulled before the last pull settled");
    waiting = deferred<IteratorResult<T>>();
    return waiting.promise;
  };
  const answer = async (result: IteratorResult<T> | { error: unknown }) => {
    await until(() => waiting !== undefined, "the source to be pulled");
    const current = waiting as NonNullable<typeof waiting>;
    waiting = undefined;
    if ("error" in result) current.reject(result.error);
    else current.resolve(result);
  };
  const source: AsyncIterableIterator<T> = {
    [Symbol.asyncIterator]() {
      return this;
    },
    next() {
      pulls++;
      return wait();
    },
    return(value?: unknown) {
      returns.push(value);
      if (options.returnHangs) return new Promise<IteratorResult<T>>(() => {});
      return Promise.resolve({ done: true, value: undefined });
    },
    ...(options.withThrow
      ? {
        throw(error?: unknown) {
          thrown.push(error);
          return wait();
        },
      }
      : {}),
  };
  return {
    source,
    get pulls() {
      return pulls;
    },
    returns,
    thrown,
    push: (value) => answer({ done: false, value }),
    end: () => answer({ done: true, value: undefined }),
    fail: (error) => answer({ error }),
  };
}

/** A `ReadableStream` source (highWaterMark 0) the test answers by hand. */
interface ControlledReadable<T> {
  readonly stream: ReadableStream<T>;
  readonly pulls: number;
  readonly cancels: unknown[];
  push(chunk: T): Promise<void>;
  end(): Promise<void>;
  fail(error: unknown): Promise<void>;
}

function controlledReadable<T>(): ControlledReadable<T> {
  let pulls = 0;
  const cancels: unknown[] = [];
  let waiting:
    | { controller: ReadableStreamDefaultController<T>; done: () => void }
    | undefined;
  const stream = new ReadableStream<T>({
    pull(controller) {
      pulls++;
      return new Promise<void>((resolve) => {
        waiting = { controller, done: resolve };
      });
    },
    cancel(reason) {
      cancels.push(reason);
      waiting?.done();
      waiting = undefined;
    },
  }, { highWaterMark: 0 });
  const answer = async (act: (controller: ReadableStreamDefaultController<T>) => void) => {
    await until(() => waiting !== undefined, "the readable source to be pulled");
    const current = waiting as NonNullable<typeof waiting>;
    waiting = undefined;
    act(current.controller);
    current.done();
  };
  return {
    stream,
    get pulls() {
      return pulls;
    },
    cancels,
    push: (chunk) => answer((controller) => controller.enqueue(chunk)),
    end: () => answer((controller) => controller.close()),
    fail: (error) => answer((controller) => controller.error(error)),
  };
}

/**
 * Calls `iterator.next()`, turning an endless microtask loop into a failure. A guard that
 * answers `next()` by re-chaining on its own settled read forever would starve the event loop
 * and hang the whole runner; here `then()` on one promise more than 1000 times in a row throws
 * instead, which rejects the call and ends the loop.
 */
async function nextWithoutSpinning<T>(
  iterator: AsyncIterator<T>,
): Promise<IteratorResult<T>> {
  const proto = Promise.prototype as unknown as { then: (...args: unknown[]) => unknown };
  const original = proto.then;
  const calls = new Map<unknown, number>();
  proto.then = function (this: unknown, ...args: unknown[]) {
    const count = (calls.get(this) ?? 0) + 1;
    calls.set(this, count);
    if (count > 1_000) {
      throw new Error("next() chained on the same promise 1000 times: an endless microtask loop");
    }
    return original.apply(this, args);
  };
  try {
    return await iterator.next();
  } finally {
    proto.then = original;
  }
}

describe("circuit() with generator functions", () => {
  it("circuit(async function*) returns a guarded async generator function with the same this, parameters and yield type", async () => {
    const tokens = circuit(
      async function* (this: { prefix: string }, text: string, times: number) {
        for (let i = 0; i < times; i++) yield `${this.prefix}${text}${i}`;
      },
    );
    expectType<Equal<Parameters<typeof tokens>, [text: string, times: number]>>(true);
    expectType<Equal<ThisParameterType<typeof tokens>, { prefix: string }>>(true);
    // the generator's own type: it takes any value in next(), and so does the guarded one
    expectType<Equal<ReturnType<typeof tokens>, AsyncGenerator<string, void, unknown>>>(true);
    const api = { prefix: ">", tokens };
    assert.deepEqual(await collect(api.tokens("a", 3)), [">a0", ">a1", ">a2"]);
    assert.equal(tokens.length, 2);
    assert.ok(breakerOf(tokens) instanceof Breaker);
  });

  it("circuit(async function*) admits at the first next(), never at the call", async () => {
    const log: string[] = [];
    const listener: BreakerListener = { beforeCall: () => log.push("admitted") };
    const numbers = circuit(async function* (n: number) {
      log.push(`body ${n}`);
      yield n;
    }, { failureThreshold: 1, listeners: [listener] });
    const first = numbers(1);
    await flush();
    assert.deepEqual(log, []);
    assert.deepEqual(await first.next(), { done: false, value: 1 });
    assert.deepEqual(log, ["admitted", "body 1"]);
    assert.deepEqual(await first.next(), DONE);

    breakerOf(numbers)?.open();
    const refused = numbers(2); // no error at the call
    const error = await refused.next().catch((e) => e);
    assert.ok(error instanceof BreakerOpenError);
    assert.equal(error.state, "open");
    assert.deepEqual(log, ["admitted", "body 1"]); // the generator never ran
    assert.deepEqual(await refused.next(), DONE);
  });

  it("circuit(async function*) serves the fallback with the wrapper's arguments and this; its items pass unguarded", async () => {
    await withFakeTime(async (timers) => {
      const seen: unknown[] = [];
      const chat = circuit(
        async function* (this: { user: string }, prompt: string) {
          yield `${this.user}: live ${prompt}`;
        },
        {
          failureThreshold: 1,
          firstItemTimeout: 10,
          isFailureItem: (item) => item.startsWith("error"),
          fallback: async function* (this: { user: string }, prompt: string) {
            seen.push(this, prompt);
            await sleep(1_000); // far past firstItemTimeout: the fallback is not timed
            yield "error: busy"; // not judged by isFailureItem
            yield `${this.user}: cached ${prompt}`;
          },
        },
      );
      const breaker = breakerOf(chat) as Breaker;
      breaker.open();
      const before = breaker.snapshot;
      const api = { user: "ann", chat };
      const reading = handled(collect(api.chat("hi")));
      await timers.tickAsync(1_000);
      assert.deepEqual(await reading, ["error: busy", "ann: cached hi"]);
      assert.deepEqual(seen, [api, "hi"]);
      assert.equal(breaker.snapshot, before); // nothing was counted
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("circuit(async function*) types isFailureItem by the yield type and counts a failing item once", async () => {
    interface Chunk {
      readonly text?: string;
      readonly error?: string;
    }
    const chunks: Chunk[] = [{ text: "a" }, { error: "overloaded" }, { error: "again" }, {
      text: "b",
    }];
    async function* streamChunks(_prompt: string) {
      yield* chunks;
    }
    const chat = circuit(streamChunks, {
      failureThreshold: 2,
      isFailureItem: (chunk) => chunk.error !== undefined,
    });
    const isPositive = (n: number) => n > 0;
    // @ts-expect-error: the items are Chunks, not numbers
    circuit(streamChunks, { isFailureItem: isPositive });
    const breaker = breakerOf(chat) as Breaker;
    const stream = chat("hi");
    assert.deepEqual(await stream.next(), { done: false, value: chunks[0] });
    assert.equal(breaker.failureCount, 0);
    assert.deepEqual(await stream.next(), { done: false, value: chunks[1] }); // still passed on
    assert.equal(breaker.failureCount, 1); // counted at the item, before the stream ends
    assert.deepEqual(await collect(stream), [chunks[2], chunks[3]]);
    assert.equal(breaker.failureCount, 1); // once per stream; the end is no success
    assert.equal(breaker.state, "closed");
    await collect(chat("again"));
    assert.equal(breaker.state, "open");
  });

  it("circuit(function*) guards a sync generator with the same this, parameters and yield type", () => {
    const log: string[] = [];
    const range = circuit(function* (this: { base: number }, count: number) {
      log.push("body");
      try {
        for (let i = 0; i < count; i++) yield this.base + i;
      } finally {
        log.push("finally");
      }
    }, { failureThreshold: 2 });
    expectType<Equal<Parameters<typeof range>, [count: number]>>(true);
    expectType<Equal<ThisParameterType<typeof range>, { base: number }>>(true);
    expectType<Equal<ReturnType<typeof range>, Generator<number, void, unknown>>>(true);
    const target = { base: 10, range };
    assert.deepEqual([...target.range(3)], [10, 11, 12]);
    assert.deepEqual(log, ["body", "finally"]);
    assert.equal(range.length, 1);
  });

  it("circuit(function*) admits at the first next(): a break is a success, a throw a failure, then BreakerOpenError", () => {
    const log: string[] = [];
    const items = circuit(function* (fail: boolean) {
      log.push("body");
      try {
        yield 1;
        if (fail) throw new RangeError("bad row");
        yield 2;
      } finally {
        log.push("finally");
      }
    }, { failureThreshold: 2 });
    const breaker = breakerOf(items) as Breaker;
    const first = items(false);
    assert.deepEqual(log, []); // not admitted, not run
    for (const item of first) {
      assert.equal(item, 1);
      break; // the consumer stops early: a success, the source is ended
    }
    assert.deepEqual(log, ["body", "finally"]);

    assert.throws(() => [...items(true)], RangeError);
    assert.equal(breaker.failureCount, 1);
    const again = items(false);
    again.next();
    again.return();
    assert.equal(breaker.failureCount, 0); // the early stop counted as a success
    assert.throws(() => [...items(true)], RangeError);
    assert.throws(() => [...items(true)], RangeError);
    assert.equal(breaker.state, "open");

    log.length = 0;
    const refused = items(false); // no error at the call
    assert.throws(() => refused.next(), BreakerOpenError);
    assert.deepEqual(log, []); // the generator never ran
  });

  it("circuit(function*) serves an iterable fallback with the wrapper's arguments and this", () => {
    const seen: unknown[] = [];
    const rows = circuit(function* (this: { table: string }, limit: number) {
      yield `${this.table} live ${limit}`;
    }, {
      failureThreshold: 1,
      isFailureItem: (row) => row.startsWith("error"),
      fallback: function (this: { table: string }, limit: number) {
        seen.push(this, limit);
        return [`error: ${this.table}`, `cached ${limit}`];
      },
    });
    const breaker = breakerOf(rows) as Breaker;
    breaker.open();
    const before = breaker.snapshot;
    const db = { table: "users", rows };
    assert.deepEqual([...db.rows(5)], ["error: users", "cached 5"]);
    assert.deepEqual(seen, [db, 5]);
    assert.equal(breaker.snapshot, before);
  });

  it("circuit(function*) counts an isFailureItem item once and passes it on; sync streams start no timer", async () => {
    await withFakeTime(async (timers) => {
      const rows = circuit(function* () {
        yield "ok";
        yield "error: one";
        yield "error: two";
      }, {
        failureThreshold: 2,
        firstItemTimeout: 1,
        idleTimeout: 1,
        isFailureItem: (row) => row.startsWith("error"),
      });
      const breaker = breakerOf(rows) as Breaker;
      const stream = rows();
      assert.equal(stream.next().value, "ok");
      await timers.tickAsync(100); // the consumer's time; sync streams have no stall timeouts
      assert.equal(timers.countTimers(), 0);
      assert.equal(stream.next().value, "error: one");
      assert.equal(breaker.failureCount, 1);
      assert.deepEqual([...stream], ["error: two"]);
      assert.equal(breaker.failureCount, 1);
      assert.equal(breaker.state, "closed");
    });
  });
});

describe("Breaker.stream() admission", () => {
  it("Breaker.stream() rejects the first read with BreakerOpenError while open", async () => {
    await withFakeTime(async () => {
      const breaker = new Breaker({ name: "llm", failureThreshold: 1, recoveryTimeout: 1_200 });
      await trip(breaker, 1);
      let calls = 0;
      const guarded = breaker.stream((_signal) => {
        calls++;
        return controlled<string>().source;
      });
      const error = await guarded.next().catch((e) => e);
      assert.ok(error instanceof BreakerOpenError);
      assert.equal(error.breaker, "llm");
      assert.equal(error.state, "open");
      assert.equal(error.retryAfterMs, 1_200);
      assert.equal(calls, 0); // a source function is never called
      assert.deepEqual(await guarded.next(), DONE);
      assert.equal(calls, 0);
    });
  });

  it("Breaker.stream() admits at the first read, and returns a handed-over source it refuses", async () => {
    const recorded = recordEvents(["beforeCall"]);
    const breaker = new Breaker({ listeners: [recorded.listener] });
    const src = controlled<number>();
    const guarded = breaker.stream(src.source);
    await flush();
    assert.deepEqual(recorded.lines(), []);
    assert.equal(src.pulls, 0);
    const read = handled(guarded.next());
    assert.deepEqual(recorded.lines(), ["beforeCall"]);
    await src.push(1);
    assert.deepEqual(await read, { done: false, value: 1 });

    breaker.open();
    const handed = controlled<number>();
    const refused = breaker.stream(handed.source);
    assert.equal(handed.returns.length, 0); // nothing happens before the first read
    await assert.rejects(refused.next(), BreakerOpenError);
    assert.equal(handed.returns.length, 1);
    assert.equal(handed.pulls, 0);

    async function* numbers() {
      yield 1;
      yield 2;
    }
    const generator = numbers();
    await assert.rejects(breaker.stream(generator).next(), BreakerOpenError);
    assert.deepEqual(await generator.next(), DONE); // it was returned
    await guarded.return?.();
  });

  it("Breaker.stream() calls a function source at the first read with an AbortSignal", async () => {
    const breaker = new Breaker();
    let calls = 0;
    let given: unknown;
    const guarded = breaker.stream((signal) => {
      calls++;
      given = signal;
      return (async function* () {
        yield "a";
        yield "b";
      })();
    });
    await flush();
    assert.equal(calls, 0);
    assert.deepEqual(await collect(guarded), ["a", "b"]);
    assert.equal(calls, 1);
    assert.ok(given instanceof AbortSignal);
    assert.equal((given as AbortSignal).aborted, false); // normal completion aborts nothing
  });

  it("Breaker.stream() serves the fallback stream while open; its items pass through unguarded", async () => {
    await withFakeTime(async (timers) => {
      const seen: unknown[] = [];
      const breaker = new Breaker({
        failureThreshold: 1,
        firstItemTimeout: 10,
        idleTimeout: 10,
        isFailureItem: (item) => item === "bad",
        fallback: async function* (this: unknown, ...args: never[]) {
          seen.push(this, args.length);
          await sleep(500); // longer than the timeouts: not timed
          yield "bad"; // not judged
          await sleep(500);
          yield "cached";
          throw new Error("fallback broke"); // not counted either
        },
      });
      breaker.open();
      const before = breaker.snapshot;
      const handed = controlled<string>();
      const guarded = breaker.stream(handed.source);
      const items: string[] = [];
      const reading = handled((async () => {
        for await (const item of guarded) items.push(item);
      })());
      const outcome = track(reading);
      await timers.tickAsync(1_000);
      assert.deepEqual(items, ["bad", "cached"]);
      assert.ok(outcome.rejected);
      assert.match(String(outcome.error), /fallback broke/);
      assert.deepEqual(seen, [undefined, 0]);
      assert.equal(handed.returns.length, 1); // the refused source was returned
      assert.equal(handed.pulls, 0);
      assert.equal(breaker.snapshot, before);
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.stream() rejects at the first read with the reason when the caller's signal is already aborted", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    await trip(breaker, 1);
    const reason = new Error("client left");
    let calls = 0;
    const fromFunction = breaker.stream((_signal) => {
      calls++;
      return controlled<number>().source;
    }, { signal: AbortSignal.abort(reason) });
    await assert.rejects(fromFunction.next(), (e) => e === reason);
    assert.equal(calls, 0);
    const handed = controlled<number>();
    await assert.rejects(
      breaker.stream(handed.source, { signal: AbortSignal.abort(reason) }).next(),
      (e) => e === reason,
    );
    assert.equal(handed.returns.length, 1);
    assert.equal(breaker.failureCount, 1); // neutral
  });
});

describe("Breaker.stream() outcomes", () => {
  it("Breaker.stream() counts a completed stream as a success", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    await trip(breaker, 1);
    const src = controlled<number>();
    const guarded = breaker.stream(src.source);
    const first = handled(guarded.next());
    await src.push(1);
    assert.deepEqual(await first, { done: false, value: 1 });
    assert.equal(breaker.failureCount, 1); // not before the end
    const last = handled(guarded.next());
    await src.end();
    assert.deepEqual(await last, DONE);
    assert.equal(breaker.failureCount, 0);
    assert.deepEqual(src.returns, []); // normal completion does not return the source
  });

  it("Breaker.stream() reads a source whose next() answers with a Promise subclass through Promise.resolve()", async () => {
    // A subclass whose constructor needs an argument that then() does not pass: chained as is,
    // its then() would throw inside next(); adopted, the throw is the read's rejection.
    class Tagged<T> extends Promise<T> {
      readonly tag: string;
      constructor(
        executor: (resolve: (value: T) => void, reject: (error: unknown) => void) => void,
        tag: { id: string },
      ) {
        super(executor);
        this.tag = tag.id;
      }
    }
    let reads = 0;
    let returned = 0;
    const source: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({
        next: () => {
          reads++;
          if (reads === 1) return Promise.resolve({ done: false, value: 1 });
          return new Tagged<IteratorResult<number>>(
            (resolve) => resolve({ done: false, value: reads }),
            { id: "x" },
          );
        },
        return: () => {
          returned++;
          return Promise.resolve({ done: true, value: undefined });
        },
      }),
    };
    const breaker = new Breaker({ failureThreshold: 1 });
    const guarded = breaker.stream(source);
    assert.deepEqual(await guarded.next(), { done: false, value: 1 });
    const second = guarded.next();
    assert.equal(Object.getPrototypeOf(second), Promise.prototype);
    await assert.rejects(second, TypeError);
    assert.equal(breaker.state, "open");
    assert.equal(returned, 1, "the source was ended");
  });

  it("Breaker.stream() reads a source whose next() answers with thenables, not promises", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    let i = 0;
    const thenables: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({
        next: () =>
          ({
            then: (resolve: (result: IteratorResult<number>) => void) =>
              resolve(i < 3 ? { done: false, value: i++ } : { done: true, value: undefined }),
          }) as unknown as Promise<IteratorResult<number>>,
      }),
    };
    assert.deepEqual(await collect(breaker.stream(thenables)), [0, 1, 2]);
    assert.equal(breaker.state, "closed");
    const error = new Error("thenable failed");
    const failing: AsyncIterable<number> = {
      [Symbol.asyncIterator]: () => ({
        next: () =>
          ({
            then: (_: unknown, reject: (error: unknown) => void) => reject(error),
          }) as unknown as Promise<IteratorResult<number>>,
      }),
    };
    await assert.rejects(collect(breaker.stream(failing)), (e) => e === error);
    assert.equal(breaker.state, "open");
  });

  it("Breaker.stream() counts a consumer's break or return() as a success, ends the source and aborts its signal", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    await trip(breaker, 1);
    let signal: AbortSignal | undefined;
    let finalized = false;
    const guarded = breaker.stream((given) => {
      signal = given;
      return (async function* () {
        try {
          yield 1;
          yield 2;
        } finally {
          finalized = true;
        }
      })();
    });
    for await (const item of guarded) {
      assert.equal(item, 1);
      break;
    }
    assert.equal(finalized, true);
    assert.equal(signal?.aborted, true);
    assert.equal(breaker.failureCount, 0);

    await trip(breaker, 1);
    const src = controlled<number>();
    const explicit = breaker.stream(src.source);
    const read = handled(explicit.next());
    await src.push(1);
    await read;
    assert.deepEqual(await explicit.return?.(), DONE);
    assert.equal(src.returns.length, 1);
    assert.equal(breaker.failureCount, 0);
    assert.deepEqual(await explicit.next(), DONE);
    assert.equal(src.pulls, 1);
  });

  it("Breaker.stream() counts a throwing source as a failure, rethrows its error and ends it", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    const error = new Error("upstream reset");
    const src = controlled<number>();
    const guarded = breaker.stream(src.source);
    const first = handled(guarded.next());
    await src.push(1);
    await first;
    const second = handled(guarded.next());
    await src.fail(error);
    await assert.rejects(second, (e) => e === error);
    assert.equal(breaker.state, "open");
    assert.equal(breaker.lastFailure, error);
    assert.equal(src.returns.length, 1);
    assert.deepEqual(await guarded.next(), DONE);
  });

  it("Breaker.stream() judges a source's error by the matchers: exclude is a success, ignore neither", async () => {
    const breaker = new Breaker({ failureThreshold: 2, exclude: TypeError, ignore: RangeError });
    const failWith = async (error: Error) => {
      const guarded = breaker.stream(async function* () {
        yield 1;
        throw error;
      }());
      await assert.rejects(collect(guarded), (e) => e === error);
    };
    await trip(breaker, 1);
    await failWith(new TypeError("excluded"));
    assert.equal(breaker.failureCount, 0); // a success
    await trip(breaker, 1);
    await failWith(new RangeError("ignored"));
    assert.equal(breaker.failureCount, 1); // neither
    assert.equal(breaker.state, "closed");
    await failWith(new Error("counted"));
    assert.equal(breaker.state, "open");
  });

  it("Breaker.stream() counts a stream with an isFailureItem item as one failure and still passes the item", async () => {
    const breaker = new Breaker({
      failureThreshold: 2,
      isFailureItem: (item) => (item as { error?: string }).error !== undefined,
    });
    const items = [{ text: "a" }, { error: "rate limited" }, { error: "again" }, { text: "b" }];
    const guarded = breaker.stream(async function* () {
      yield* items;
    }());
    assert.deepEqual(await guarded.next(), { done: false, value: items[0] });
    assert.deepEqual(await guarded.next(), { done: false, value: items[1] });
    assert.equal(breaker.failureCount, 1);
    assert.deepEqual(await collect(guarded), [items[2], items[3]]);
    assert.equal(breaker.failureCount, 1);

    // The per-stream option overrides the breaker's.
    const strings = breaker.stream(
      async function* () {
        yield "fine";
        yield "ERR";
      }(),
      { isFailureItem: (item) => item === "ERR" },
    );
    assert.deepEqual(await collect(strings), ["fine", "ERR"]);
    assert.equal(breaker.state, "open");
  });

  it("Breaker.stream() keeps a half-open trial's permit until the stream settles", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 100 });
      await trip(breaker, 1);
      await timers.tickAsync(100);
      assert.equal(breaker.state, "half-open");
      const trial = controlled<number>();
      const first = breaker.stream(trial.source);
      const read = handled(first.next());
      await trial.push(1);
      await read;
      await timers.tickAsync(10_000); // long after its first item, the trial still runs
      const second = await breaker.stream(controlled<number>().source).next().catch((e) => e);
      assert.ok(second instanceof BreakerOpenError);
      assert.equal(second.state, "half-open");
      const end = handled(first.next());
      await trial.end();
      assert.deepEqual(await end, DONE);
      assert.equal(breaker.state, "closed");
      const third = breaker.stream(async function* () {
        yield "admitted";
      }());
      assert.deepEqual(await collect(third), ["admitted"]);
    });
  });

  it("Breaker.stream() returns a half-open trial's permit when the caller aborts it", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 100 });
      await trip(breaker, 1);
      await timers.tickAsync(100);
      const controller = new AbortController();
      const trial = breaker.stream(controlled<number>().source, { signal: controller.signal });
      const read = track(trial.next());
      await assert.rejects(breaker.stream(controlled<number>().source).next(), BreakerOpenError);
      controller.abort(new Error("caller left"));
      await flush();
      assert.ok(read.rejected);
      assert.equal(breaker.state, "half-open");
      assert.deepEqual(
        await collect(breaker.stream(async function* () {
          yield 1;
        }())),
        [1],
      );
      assert.equal(breaker.state, "closed");
    });
  });

  it("Breaker.stream() lets a stream admitted before a state change run on and ignores its late outcome", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 1, idleTimeout: 100 });
      // A late success must not close a circuit it did not test.
      const src = controlled<number>();
      const old = breaker.stream(src.source);
      const first = handled(old.next());
      await src.push(1);
      await first;
      breaker.open();
      const second = handled(old.next());
      await src.push(2);
      assert.deepEqual(await second, { done: false, value: 2 }); // it runs on
      breaker.halfOpen();
      const end = handled(old.next());
      await src.end();
      assert.deepEqual(await end, DONE);
      assert.equal(breaker.state, "half-open");

      // A late failure (an error, a failing stall) must not open a circuit it did not test.
      breaker.close();
      const failing = controlled<number>();
      const older = breaker.stream(failing.source);
      const stalling = controlled<number>();
      const oldest = breaker.stream(stalling.source);
      const reads = [handled(older.next()), handled(oldest.next())];
      await failing.push(1);
      await stalling.push(1);
      await Promise.all(reads);
      breaker.open();
      breaker.close();
      const failed = handled(older.next());
      await failing.fail(new Error("late"));
      await assert.rejects(failed, /late/);
      const stalled = track(oldest.next());
      await timers.tickAsync(100);
      assert.ok(stalled.error instanceof TimeoutError);
      assert.equal(breaker.state, "closed");
      assert.equal(breaker.failureCount, 0);
    });
  });

  it("Breaker.stream() counts the time to the first item as the stream's duration for slow calls", async () => {
    await withFakeTime(async (timers) => {
      const recorded = recordEvents(["success"]);
      const durations = () => recorded.eventsOf("success").map(({ durationMs }) => durationMs);
      const breaker = new Breaker({
        slowCallRate: 0.5,
        slowCallDuration: 100,
        minimumCalls: 1,
        listeners: [recorded.listener],
      });
      const delayed = (firstAfter: number) =>
        async function* () {
          await sleep(firstAfter);
          yield "first";
          for (let i = 0; i < 4; i++) {
            await sleep(500); // a long stream: 2 s in all
            yield "more";
          }
        };
      const fast = handled(collect(breaker.stream(delayed(10))));
      await timers.tickAsync(5_000);
      assert.equal((await fast).length, 5);
      assert.deepEqual(durations(), [10]);
      assert.equal(breaker.stats.slowCalls, 0);
      assert.equal(breaker.state, "closed");

      // The same stream with a slow first item is a slow call.
      const slow = handled(collect(breaker.stream(delayed(150))));
      await timers.tickAsync(5_000);
      await slow;
      assert.deepEqual(durations(), [10, 150]);
      assert.equal(breaker.state, "open");
    });
  });

  it("Breaker.stream() counts a sync stream's time to its first item as its duration too", async () => {
    await withFakeTime((timers) => {
      const recorded = recordEvents(["success"]);
      const rows = circuit(function* () {
        timers.tick(10);
        yield 1;
        timers.tick(1_000);
        yield 2;
      }, {
        slowCallRate: 1,
        slowCallDuration: 100,
        minimumCalls: 1,
        listeners: [recorded.listener],
      });
      assert.deepEqual([...rows()], [1, 2]);
      assert.deepEqual(recorded.eventsOf("success").map(({ durationMs }) => durationMs), [10]);
      assert.equal(breakerOf(rows)?.state, "closed");
    });
  });
});

describe("Breaker.stream() stalls", () => {
  it("Breaker.stream() rejects a stalled first read with TimeoutError at firstItemTimeout, as a failure", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({
        name: "llm",
        failureThreshold: 1,
        firstItemTimeout: 100,
        exclude: TimeoutError, // a stall is a failure whatever the matchers say
      });
      let signal: AbortSignal | undefined;
      const src = controlled<string>({ returnHangs: true });
      const guarded = breaker.stream((given) => {
        signal = given;
        return src.source;
      });
      await timers.tickAsync(500); // time before the first read is nobody's wait
      const read = track(guarded.next());
      await timers.tickAsync(99);
      assert.equal(read.settled, false);
      assert.equal(signal?.aborted, false);
      await timers.tickAsync(1);
      assert.ok(read.error instanceof TimeoutError, `got ${String(read.error)}`);
      assert.equal(read.error.name, "TimeoutError");
      assert.equal(breaker.state, "open");
      assert.equal(src.returns.length, 1); // called, though its return() never settles
      assert.equal(signal?.aborted, true);
      assert.equal(timers.countTimers(), 0);
      assert.deepEqual(await guarded.next(), DONE);
    });
  });

  it("Breaker.stream() rejects a stall between items with TimeoutError at idleTimeout", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 1, idleTimeout: 50 });
      const src = controlled<number>();
      const guarded = breaker.stream(src.source);
      const first = handled(guarded.next());
      await timers.tickAsync(1_000); // no firstItemTimeout: the first wait is unbounded
      await src.push(1);
      assert.deepEqual(await first, { done: false, value: 1 });
      const second = handled(guarded.next());
      await timers.tickAsync(49);
      await src.push(2);
      assert.deepEqual(await second, { done: false, value: 2 });
      const third = track(guarded.next());
      await timers.tickAsync(49);
      assert.equal(third.settled, false);
      await timers.tickAsync(1);
      assert.ok(third.error instanceof TimeoutError);
      assert.equal(breaker.state, "open");
      assert.equal(src.returns.length, 1);
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.stream() times a later item by idleTimeout even when firstItemTimeout is longer", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({
        failureThreshold: 1,
        firstItemTimeout: 1_000,
        idleTimeout: 100,
      });
      const src = controlled<number>();
      const guarded = breaker.stream(src.source);
      const first = handled(guarded.next());
      await timers.tickAsync(10);
      await src.push(1);
      await first;
      const second = track(guarded.next()); // pulled at 10 ms: its deadline is 110 ms
      await timers.tickAsync(99);
      assert.equal(second.settled, false);
      await timers.tickAsync(1);
      assert.ok(
        second.error instanceof TimeoutError,
        `the read pulled at 10 ms with idleTimeout 100 is still pending at ${Date.now()} ms`,
      );
      assert.equal(breaker.state, "open");
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.stream() leaves later reads unbounded when only firstItemTimeout is set", async () => {
    for (const withSignal of [false, true]) {
      await withFakeTime(async (timers) => {
        const label = withSignal ? "with a caller's signal" : "without a signal";
        const breaker = new Breaker({ failureThreshold: 1, firstItemTimeout: 100 });
        const src = controlled<number>();
        const controller = new AbortController();
        const guarded = breaker.stream(
          src.source,
          withSignal ? { signal: controller.signal } : {},
        );
        const first = handled(guarded.next());
        await timers.tickAsync(10);
        await src.push(1);
        await first;
        const second = track(guarded.next());
        await timers.tickAsync(1_000);
        assert.equal(
          second.settled,
          false,
          `${label}: the second read settled (${String(second.error)}) though idleTimeout is unset`,
        );
        await src.push(2);
        await flush();
        assert.deepEqual(second.value, { done: false, value: 2 }, label);
        assert.equal(breaker.state, "closed", label);
        await guarded.return?.();
        assert.equal(timers.countTimers(), 0, label);
      });
    }
  });

  it("Breaker.stream() never counts the consumer's time against the stall timeouts", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 1, firstItemTimeout: 100, idleTimeout: 100 });
      const guarded = breaker.stream(async function* () {
        for (let i = 0; i < 3; i++) {
          await sleep(90); // each wait on the source is under 100 ms; 360 ms in all
          yield i;
        }
        await sleep(90);
      }());
      const seen: number[] = [];
      const reading = handled((async () => {
        for await (const item of guarded) {
          seen.push(item);
          await sleep(500); // a slow consumer
        }
      })());
      await timers.tickAsync(5_000);
      await reading;
      assert.deepEqual(seen, [0, 1, 2]);
      assert.equal(breaker.state, "closed");
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.stream() takes per-stream timeouts over the breaker's", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ firstItemTimeout: 10_000, idleTimeout: 10_000 });
      const first = track(
        breaker.stream(controlled<number>().source, { firstItemTimeout: 30 }).next(),
      );
      await timers.tickAsync(30);
      assert.ok(first.error instanceof TimeoutError);

      const src = controlled<number>();
      const guarded = breaker.stream(src.source, { firstItemTimeout: 20, idleTimeout: 20 });
      const read = handled(guarded.next());
      await timers.tickAsync(10);
      await src.push(1);
      await read;
      const later = track(guarded.next());
      await timers.tickAsync(19);
      assert.equal(later.settled, false);
      await timers.tickAsync(1);
      assert.ok(later.error instanceof TimeoutError);
      assert.equal(timers.countTimers(), 0);

      // Not overridden: the breaker's idleTimeout (10 s) applies.
      const other = controlled<number>();
      const kept = breaker.stream(other.source, { firstItemTimeout: 20 });
      const firstRead = handled(kept.next());
      await timers.tickAsync(10);
      await other.push(1);
      await firstRead;
      const slow = track(kept.next());
      await timers.tickAsync(9_999);
      assert.equal(slow.settled, false);
      await timers.tickAsync(1);
      assert.ok(slow.error instanceof TimeoutError);
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.stream() rejects a pending read with the caller's abort reason, neutrally", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 2, idleTimeout: 1_000 });
      await trip(breaker, 1);
      const controller = new AbortController();
      let signal: AbortSignal | undefined;
      const src = controlled<number>();
      const guarded = breaker.stream((given) => {
        signal = given;
        return src.source;
      }, { signal: controller.signal });
      const first = handled(guarded.next());
      await src.push(1);
      await first;
      const second = track(guarded.next());
      await timers.tickAsync(10);
      assert.equal(second.settled, false);
      const reason = new Error("client went away");
      controller.abort(reason);
      await flush();
      assert.equal(second.error, reason);
      assert.equal(breaker.failureCount, 1); // neither a failure nor a success
      assert.equal(src.returns.length, 1);
      assert.equal(signal?.aborted, true);
      assert.equal(timers.countTimers(), 0);
      assert.deepEqual(await guarded.next(), DONE);
    });
  });
});

describe("Breaker.stream() resources", () => {
  it("Breaker.stream() pulls the source once per consumer pull, never ahead", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ idleTimeout: 100, firstItemTimeout: 100 });
      let pulls = 0;
      const source: AsyncIterableIterator<number> = {
        [Symbol.asyncIterator]() {
          return this;
        },
        next: () => Promise.resolve({ done: false, value: ++pulls }),
      };
      const guarded = breaker.stream(source);
      await timers.tickAsync(1_000);
      assert.equal(pulls, 0);
      assert.deepEqual(await guarded.next(), { done: false, value: 1 });
      await timers.tickAsync(1_000); // a slow consumer
      assert.equal(pulls, 1);
      await guarded.next();
      await guarded.next();
      assert.equal(pulls, 3);
      const both = await Promise.all([guarded.next(), guarded.next()]);
      assert.deepEqual(both.map((result) => result.value), [4, 5]);
      await timers.tickAsync(1_000);
      assert.equal(pulls, 5);
      await guarded.return?.();
      assert.equal(pulls, 5);
      assert.equal(breaker.state, "closed");
    });
  });

  it("Breaker.stream() ends the source and aborts a function source's signal on every early exit", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 100, idleTimeout: 50 });
      const start = async (options: { signal?: AbortSignal } = {}) => {
        const src = controlled<number>();
        const state: { signal?: AbortSignal } = {};
        const guarded = breaker.stream((signal) => {
          state.signal = signal;
          return src.source;
        }, options);
        const first = handled(guarded.next());
        await src.push(1);
        await first;
        return { src, state, guarded };
      };

      const completed = await start();
      const end = handled(completed.guarded.next());
      await completed.src.end();
      await end;
      assert.deepEqual(completed.src.returns, [], "completion");
      assert.equal(completed.state.signal?.aborted, false, "completion");

      const stopped = await start();
      await stopped.guarded.return?.();
      assert.equal(stopped.src.returns.length, 1, "consumer stop");
      assert.equal(stopped.state.signal?.aborted, true, "consumer stop");

      const timedOut = await start();
      const stalled = track(timedOut.guarded.next());
      await timers.tickAsync(50);
      assert.ok(stalled.error instanceof TimeoutError);
      assert.equal(timedOut.src.returns.length, 1, "timeout");
      assert.equal(timedOut.state.signal?.aborted, true, "timeout");

      const controller = new AbortController();
      const aborted = await start({ signal: controller.signal });
      const pending = track(aborted.guarded.next());
      controller.abort(new Error("caller"));
      await flush();
      assert.ok(pending.rejected);
      assert.equal(aborted.src.returns.length, 1, "caller abort");
      assert.equal(aborted.state.signal?.aborted, true, "caller abort");

      const failed = await start();
      const failing = track(failed.guarded.next());
      await failed.src.fail(new Error("source"));
      await flush();
      assert.ok(failing.rejected);
      assert.equal(failed.src.returns.length, 1, "source error");

      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.stream() leaves no timer pending after any exit", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({
        failureThreshold: 100,
        firstItemTimeout: 1_000,
        idleTimeout: 1_000,
        isFailureItem: (item) => item === 0,
      });
      const exits: Record<
        string,
        (guarded: AsyncIterator<number>, src: Controlled<number>) => Promise<void>
      > = {
        "completion": async (guarded, src) => {
          const end = handled(guarded.next());
          await src.end();
          await end;
        },
        "failing item, then completion": async (guarded, src) => {
          const item = handled(guarded.next());
          await src.push(0);
          await item;
          const end = handled(guarded.next());
          await src.end();
          await end;
        },
        "return()": async (guarded) => {
          await guarded.return?.();
        },
        "return() during a read": async (guarded) => {
          const pending = handled(guarded.next());
          await flush();
          await guarded.return?.();
          await pending;
        },
        "source error": async (guarded, src) => {
          const read = guarded.next().catch(() => {});
          await src.fail(new Error("x"));
          await read;
        },
        "timeout": async (guarded) => {
          const read = guarded.next().catch(() => {});
          await timers.tickAsync(1_000);
          await read;
        },
      };
      for (const [exit, run] of Object.entries(exits)) {
        const src = controlled<number>();
        const guarded = breaker.stream(src.source);
        const first = handled(guarded.next());
        await src.push(1);
        await first;
        await run(guarded, src);
        assert.equal(timers.countTimers(), 0, exit);
      }
      const controller = new AbortController();
      const aborted = breaker.stream(controlled<number>().source, { signal: controller.signal });
      const read = aborted.next().catch(() => {});
      controller.abort();
      await read;
      assert.equal(timers.countTimers(), 0, "caller abort");
      breaker.open();
      await breaker.stream(controlled<number>().source).next().catch(() => {});
      assert.equal(timers.countTimers(), 0, "rejection");
    });
  });

  it("Breaker.stream() answers next() after return() with done when return() cut a read short", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ firstItemTimeout: 1_000 });
      const src = controlled<number>();
      const guarded = breaker.stream(src.source);
      const pending = track(guarded.next());
      await flush();
      assert.deepEqual(await guarded.return?.(), DONE);
      assert.equal(src.returns.length, 1);
      assert.deepEqual(await nextWithoutSpinning(guarded), DONE);
      await flush();
      assert.equal(pending.rejected, false);
      assert.equal(timers.countTimers(), 0);
    });
  });
});

describe("Breaker.readable()", () => {
  it("Breaker.readable() returns a ReadableStream of the source's chunks, a success when it completes", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    await trip(breaker, 1);
    const up = controlledReadable<string>();
    const out = breaker.readable(up.stream);
    assert.ok(out instanceof ReadableStream);
    await flush();
    assert.equal(up.pulls, 0); // admitted, and pulled, only at the first read
    const reader = out.getReader();
    const first = handled(reader.read());
    await up.push("a");
    assert.deepEqual(await first, { done: false, value: "a" });
    assert.equal(breaker.failureCount, 1);
    const last = handled(reader.read());
    await up.end();
    assert.deepEqual(await last, DONE);
    assert.equal(breaker.failureCount, 0);
    assert.deepEqual(up.cancels, []);
  });

  it("Breaker.readable() rejects the first read with BreakerOpenError while open and cancels the source", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    breaker.open();
    const up = controlledReadable<string>();
    const out = breaker.readable(up.stream); // no error before the first read
    await flush();
    assert.deepEqual(up.cancels, []);
    const error = await out.getReader().read().catch((e) => e);
    assert.ok(error instanceof BreakerOpenError);
    await until(() => up.cancels.length === 1, "the source to be cancelled");
    assert.equal(up.pulls, 0);
  });

  it("Breaker.readable() serves the fallback's ReadableStream while open and cancels the source", async () => {
    const breaker = new Breaker({
      failureThreshold: 1,
      isFailureItem: (chunk) => chunk === "error",
      fallback: () =>
        new ReadableStream<string>({
          start(controller) {
            controller.enqueue("error"); // not judged
            controller.enqueue("cached");
            controller.close();
          },
        }),
    });
    breaker.open();
    const before = breaker.snapshot;
    const up = controlledReadable<string>();
    assert.deepEqual(await collect(breaker.readable(up.stream)), ["error", "cached"]);
    assert.equal(up.cancels.length, 1);
    assert.equal(breaker.snapshot, before);
  });

  it("Breaker.readable() errors the stream with TimeoutError on a stall, a failure, and cancels the source", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 1 });
      const up = controlledReadable<string>();
      const reader = breaker.readable(up.stream, { firstItemTimeout: 50, idleTimeout: 100 })
        .getReader();
      const first = handled(reader.read());
      await timers.tickAsync(40);
      await up.push("a");
      assert.deepEqual(await first, { done: false, value: "a" });
      await timers.tickAsync(1_000); // the consumer's time
      const second = track(reader.read());
      await timers.tickAsync(99);
      assert.equal(second.settled, false);
      await timers.tickAsync(1);
      assert.ok(second.error instanceof TimeoutError);
      assert.equal(breaker.state, "open");
      await until(() => up.cancels.length === 1, "the source to be cancelled");
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.readable() counts cancel() as a success and forwards the reason to the source", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    await trip(breaker, 1);
    const up = controlledReadable<string>();
    const reader = breaker.readable(up.stream).getReader();
    const first = handled(reader.read());
    await up.push("a");
    await first;
    await reader.cancel("client closed");
    await until(() => up.cancels.length === 1, "the source to be cancelled");
    assert.deepEqual(up.cancels, ["client closed"]);
    assert.equal(breaker.failureCount, 0);

    // Cancelled while a read waits on the source.
    await trip(breaker, 1);
    const waiting = controlledReadable<string>();
    const reader2 = breaker.readable(waiting.stream, { idleTimeout: 1_000 }).getReader();
    const pending = handled(reader2.read());
    await until(() => waiting.pulls === 1, "the source to be pulled");
    await reader2.cancel("gone");
    assert.deepEqual(await pending, DONE);
    await until(() => waiting.cancels.length === 1, "the source to be cancelled");
    assert.deepEqual(waiting.cancels, ["gone"]);
    assert.equal(breaker.failureCount, 0);
  });

  it("Breaker.readable() past its first chunk: a source error is a failure, a cancel during a read a success", async () => {
    const breaker = new Breaker({ failureThreshold: 5 });
    const down = new Error("upstream reset");
    const failing = controlledReadable<string>();
    const reader = breaker.readable(failing.stream).getReader();
    for (const chunk of ["a", "b"]) {
      const read = handled(reader.read());
      await failing.push(chunk);
      assert.deepEqual(await read, { done: false, value: chunk });
    }
    const broken = handled(reader.read());
    await failing.fail(down);
    assert.equal(await broken.catch((e) => e), down);
    assert.equal(breaker.failureCount, 1);

    const waiting = controlledReadable<string>();
    const reader2 = breaker.readable(waiting.stream).getReader();
    for (const chunk of ["a", "b"]) {
      const read = handled(reader2.read());
      await waiting.push(chunk);
      assert.deepEqual(await read, { done: false, value: chunk });
    }
    const pending = handled(reader2.read());
    await until(() => waiting.pulls === 3, "the source to be pulled");
    await reader2.cancel("gone");
    assert.deepEqual(await pending, DONE);
    await until(() => waiting.cancels.length === 1, "the source to be cancelled");
    assert.deepEqual(waiting.cancels, ["gone"]);
    assert.equal(breaker.failureCount, 0);
  });

  it("Breaker.readable() pulls the source once per read, never ahead of a slow consumer", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ firstItemTimeout: 100, idleTimeout: 100 });
      let pulls = 0;
      const up = new ReadableStream<number>({
        pull(controller) {
          controller.enqueue(++pulls);
        },
      }, { highWaterMark: 0 });
      const reader = breaker.readable(up).getReader();
      await timers.tickAsync(1_000);
      assert.equal(pulls, 0);
      assert.deepEqual(await reader.read(), { done: false, value: 1 });
      await timers.tickAsync(1_000);
      assert.equal(pulls, 1);
      assert.deepEqual(await reader.read(), { done: false, value: 2 });
      assert.deepEqual(await reader.read(), { done: false, value: 3 });
      await timers.tickAsync(1_000);
      assert.equal(pulls, 3);
      await reader.cancel();
      assert.equal(breaker.state, "closed");
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.readable() errors a pending read with the caller's abort reason, neutrally", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    await trip(breaker, 1);
    const controller = new AbortController();
    const up = controlledReadable<string>();
    const reader = breaker.readable(up.stream, { signal: controller.signal }).getReader();
    const pending = track(reader.read());
    await until(() => up.pulls === 1, "the source to be pulled");
    const reason = new Error("client went away");
    controller.abort(reason);
    await until(() => pending.settled, "the read to settle");
    assert.equal(pending.error, reason);
    await until(() => up.cancels.length === 1, "the source to be cancelled");
    assert.equal(breaker.failureCount, 1);
  });

  it("Breaker.readable() counts a source error as a failure and a per-stream isFailureItem chunk too", async () => {
    const breaker = new Breaker({ failureThreshold: 3 });
    const error = new Error("upstream reset");
    const up = controlledReadable<string>();
    const reader = breaker.readable(up.stream).getReader();
    const read = handled(reader.read());
    await up.fail(error);
    await assert.rejects(read, (e) => e === error);
    assert.equal(breaker.failureCount, 1);

    const marked = breaker.readable(
      new ReadableStream<string>({
        start(controller) {
          controller.enqueue("data: ok");
          controller.enqueue("event: error");
          controller.enqueue("data: after");
          controller.close();
        },
      }),
      { isFailureItem: (chunk) => chunk.startsWith("event: error") },
    );
    assert.deepEqual(await collect(marked), ["data: ok", "event: error", "data: after"]);
    assert.equal(breaker.failureCount, 2);
  });
});

describe("guarded sync streams: cleanup", () => {
  it("a guarded sync stream answers done after its end, a return() or a throw without reading the source again", () => {
    // A source that keeps answering whatever happened: only the guard can stop the reads.
    const counting = (outcome: "end" | "throw" | "endless") => {
      const source = {
        reads: 0,
        [Symbol.iterator]: () => ({
          next: (): IteratorResult<number> => {
            source.reads++;
            if (source.reads === 2 && outcome === "end") return { done: true, value: undefined };
            if (source.reads === 2 && outcome === "throw") throw new RangeError("bad row");
            return { done: false, value: source.reads };
          },
          return: (): IteratorResult<number> => ({ done: true, value: undefined }),
        }),
      };
      return source;
    };
    const breaker = new Breaker({ failureThreshold: 5 });
    const hooks = callHooks(breaker);
    const done = { done: true, value: undefined };

    const ending = counting("end");
    const ended = guardSyncStream(hooks, () => ending, undefined, []);
    assert.deepEqual([...ended], [1]);
    assert.deepEqual(ended.next(), done);
    assert.equal(ending.reads, 2);

    const endless = counting("endless");
    const stopped = guardSyncStream(hooks, () => endless, undefined, []);
    stopped.next();
    assert.deepEqual(stopped.return(undefined), done);
    assert.deepEqual(stopped.next(), done);
    assert.equal(endless.reads, 1);

    const throwing = counting("throw");
    const failed = guardSyncStream(hooks, () => throwing, undefined, []);
    failed.next();
    assert.throws(() => failed.next(), RangeError);
    assert.deepEqual(failed.next(), done);
    assert.equal(throwing.reads, 2);
    assert.equal(breaker.failureCount, 1);
  });

  it("a guarded sync stream delivers the source's own error even when its return() throws", () => {
    const error = new Error("source failed");
    let returned = 0;
    const source: Iterable<number> = {
      [Symbol.iterator]: () => ({
        next: () => {
          throw error;
        },
        return: () => {
          returned++;
          throw new Error("cleanup failed");
        },
      }),
    };
    const breaker = new Breaker({ failureThreshold: 1 });
    const guarded = guardSyncStream(callHooks(breaker), () => source, undefined, []);
    assert.throws(() => guarded.next(), (e) => e === error);
    assert.equal(returned, 1, "the source was ended");
    assert.equal(breaker.state, "open");
  });
});

/** A hand-made source recording the arguments of each call to its `next()`. */
function recordingSource(items: number, end: unknown) {
  const calls: unknown[][] = [];
  let read = 0;
  const next = (...args: unknown[]): IteratorResult<number> => {
    calls.push(args);
    read++;
    return read > items ? { done: true, value: end as undefined } : { done: false, value: read };
  };
  return { calls, next };
}

describe("guarded generators are transparent: next(value)", () => {
  it("circuit(async function*) passes next(value) to the generator and returns its return value", async () => {
    const echo = circuit(async function* (): AsyncGenerator<string, number, string> {
      let received = yield "ready";
      while (received !== "stop") received = yield `echo ${received}`;
      return received.length;
    }, { failureThreshold: 1 });
    const breaker = breakerOf(echo) as Breaker;
    const stream = echo();
    assert.deepEqual(await stream.next("ignored by a generator"), { done: false, value: "ready" });
    assert.deepEqual(await stream.next("a"), { done: false, value: "echo a" });
    assert.deepEqual(await stream.next("b"), { done: false, value: "echo b" });
    assert.deepEqual(await stream.next("stop"), { done: true, value: 4 });
    assert.deepEqual(await stream.next("late"), DONE);
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.stream() passes next(value) to the source, the first one too, and next() without an argument", async () => {
    for (const options of [{}, { signal: new AbortController().signal }]) {
      const source = recordingSource(3, "end");
      const guarded = breaker().stream({
        [Symbol.asyncIterator]: () => ({
          next: (...args: unknown[]) => Promise.resolve(source.next(...args)),
        }),
      }, options);
      assert.deepEqual(await guarded.next("first"), { done: false, value: 1 });
      assert.deepEqual(await guarded.next(), { done: false, value: 2 });
      // asked twice before the first read settled: each value reaches the source, in order
      const third = guarded.next("third");
      const fourth = guarded.next("fourth");
      assert.deepEqual(await third, { done: false, value: 3 });
      assert.deepEqual(await fourth, { done: true, value: "end" });
      assert.deepEqual(source.calls, [["first"], [], ["third"], ["fourth"]]);
    }
  });

  it("Breaker.stream() passes next(value) and throw() through to the fallback's generator", async () => {
    const fallback = async function* () {
      try {
        const received: unknown = yield "cached";
        yield `got ${received}`;
      } catch (error) {
        yield `fallback caught ${(error as Error).message}`;
      }
    };
    const open = new Breaker({ fallback });
    open.open();
    const before = open.snapshot;
    const sent = open.stream(controlled<string>().source);
    assert.deepEqual(await sent.next(), { done: false, value: "cached" });
    assert.deepEqual(await sent.next("x"), { done: false, value: "got x" });
    const thrown = open.stream(controlled<string>().source);
    assert.deepEqual(await thrown.next(), { done: false, value: "cached" });
    assert.deepEqual(await thrown.throw?.(new Error("skip")), {
      done: false,
      value: "fallback caught skip",
    });
    assert.equal(open.snapshot, before);
  });

  it("circuit(function*) passes next(value) to the generator and returns its return value", () => {
    const echo = circuit(function* (): Generator<string, number, string> {
      let received = yield "ready";
      while (received !== "stop") received = yield `echo ${received}`;
      return received.length;
    }, { failureThreshold: 1 });
    const stream = echo();
    assert.deepEqual(stream.next("ignored by a generator"), { done: false, value: "ready" });
    assert.deepEqual(stream.next("a"), { done: false, value: "echo a" });
    assert.deepEqual(stream.next("stop"), { done: true, value: 4 });
    assert.deepEqual(stream.next("late"), DONE);
    assert.equal(breakerOf(echo)?.state, "closed");
  });

  it("circuit(function*) passes next(value) and throw() through to the fallback; one without throw() gets a TypeError", () => {
    const rows = circuit(function* (_table: string): Generator<string, void, string> {
      yield "live";
    }, {
      fallback: function* (table: string): Generator<string, void, string> {
        try {
          const received = yield `cached ${table}`;
          yield `got ${received}`;
        } catch (error) {
          yield `fallback caught ${(error as Error).message}`;
        }
      },
    });
    const breaker = breakerOf(rows) as Breaker;
    breaker.open();
    const before = breaker.snapshot;
    const sent = rows("users");
    assert.deepEqual(sent.next(), { done: false, value: "cached users" });
    assert.deepEqual(sent.next("x"), { done: false, value: "got x" });
    const thrown = rows("users");
    thrown.next();
    assert.deepEqual(thrown.throw(new Error("skip")), {
      done: false,
      value: "fallback caught skip",
    });
    assert.equal(breaker.snapshot, before);

    const listed = circuit(function* () {
      yield 1;
    }, { fallback: () => [0, 0] });
    breakerOf(listed)?.open();
    const cached = listed();
    cached.next();
    const error = new Error("skip");
    assert.throws(() => cached.throw(error), (e) => e instanceof TypeError && e.cause === error);
    assert.deepEqual(cached.next(), DONE);
  });

  it("a guarded sync stream passes next(value) to the source, the first one too, and next() without an argument", () => {
    for (const options of [{}, { isFailureItem: (item: unknown) => item === -1 }]) {
      const source = recordingSource(2, "end");
      const hooks = callHooks(new Breaker(options));
      const guarded = guardSyncStream(hooks, () => ({ [Symbol.iterator]: () => source }), null, []);
      assert.deepEqual(guarded.next("first"), { done: false, value: 1 });
      assert.deepEqual(guarded.next(), { done: false, value: 2 });
      assert.deepEqual(guarded.next("third"), { done: true, value: "end" });
      assert.deepEqual(source.calls, [["first"], [], ["third"]]);
    }
  });
});

/** A breaker for tests that count nothing. */
function breaker(): Breaker {
  return new Breaker({ failureThreshold: 100 });
}

describe("guarded generators are transparent: throw(error)", () => {
  it("circuit(async function*) throws into the generator: one that catches the error goes on, and its end is a success", async () => {
    const log: string[] = [];
    const resilient = circuit(async function* () {
      try {
        yield 1;
      } catch (error) {
        log.push(`caught ${(error as Error).message}`);
        yield 2;
      }
      yield 3;
    }, { failureThreshold: 1 });
    const breaker = breakerOf(resilient) as Breaker;
    const stream = resilient();
    assert.deepEqual(await stream.next(), { done: false, value: 1 });
    assert.deepEqual(await stream.throw(new Error("skip")), { done: false, value: 2 });
    assert.deepEqual(log, ["caught skip"]);
    assert.deepEqual(await collect(stream), [3]);
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 0);
  });

  it("circuit(async function*) judges an error escaping throw() by the matchers: a failure, exclude a success, ignore neutral", async () => {
    class Excluded extends Error {}
    class Ignored extends Error {}
    const log: string[] = [];
    const rows = circuit(async function* () {
      try {
        yield 1;
        yield 2;
      } finally {
        log.push("finally");
      }
    }, { failureThreshold: 2, exclude: Excluded, ignore: Ignored });
    const breaker = breakerOf(rows) as Breaker;
    const throwInto = async (error: Error) => {
      const stream = rows();
      await stream.next();
      await assert.rejects(stream.throw(error), (e) => e === error);
      assert.deepEqual(await stream.next(), DONE);
    };
    await throwInto(new Error("counted"));
    assert.equal(breaker.failureCount, 1);
    await throwInto(new Excluded("a success"));
    assert.equal(breaker.failureCount, 0);
    await throwInto(new Error("counted"));
    await throwInto(new Ignored("neither"));
    assert.equal(breaker.failureCount, 1);
    assert.equal(breaker.state, "closed");
    await throwInto(new Error("counted"));
    assert.equal(breaker.state, "open");
    assert.deepEqual(log, ["finally", "finally", "finally", "finally", "finally"]);
  });

  it("circuit(async function*) rejects throw() before the first next() with the error at once: not admitted, nothing runs or counts", async () => {
    const recorded = recordEvents(["beforeCall", "rejected"]);
    const log: string[] = [];
    const rows = circuit(async function* () {
      log.push("body");
      yield 1;
    }, { listeners: [recorded.listener] });
    const breaker = breakerOf(rows) as Breaker;
    const before = breaker.snapshot;
    const error = new Error("never started");
    const stream = rows();
    await assert.rejects(stream.throw(error), (e) => e === error);
    assert.deepEqual(await stream.next(), DONE);
    breaker.open();
    const opened = breaker.snapshot;
    await assert.rejects(rows().throw(error), (e) => e === error); // not a BreakerOpenError
    assert.deepEqual(log, []);
    assert.deepEqual(recorded.events, [], "neither admitted nor rejected");
    assert.equal(breaker.snapshot, opened);
    assert.notEqual(opened, before);

    const src = controlled<number>();
    const handed = breaker.stream(src.source);
    await assert.rejects(handed.throw?.(error) as Promise<unknown>, (e) => e === error);
    assert.deepEqual(src.returns, [error]); // a handed-over source is ended with the error
    assert.equal(src.pulls, 0);
  });

  it("circuit(async function*) rejects throw() after the end with the error, without touching the source", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    const src = controlled<number>({ withThrow: true });
    const guarded = breaker.stream(src.source);
    const end = handled(guarded.next());
    await src.end();
    assert.deepEqual(await end, DONE);
    const error = new Error("late");
    await assert.rejects(guarded.throw?.(error) as Promise<unknown>, (e) => e === error);
    assert.deepEqual(src.thrown, []);
    assert.deepEqual(src.returns, []);
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.stream() ends a source without throw() and rejects throw() with a TypeError, as yield* does; a success", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    const src = controlled<number>();
    const guarded = breaker.stream(src.source);
    const first = handled(guarded.next());
    await src.push(1);
    await first;
    const error = new Error("skip");
    const thrown = await (guarded.throw?.(error) as Promise<unknown>).catch((e) => e);
    assert.ok(thrown instanceof TypeError);
    assert.equal(thrown.cause, error);
    assert.match(thrown.message, /has no throw\(\) method/);
    assert.equal(src.returns.length, 1);
    assert.equal(breaker.state, "closed");
    assert.deepEqual(await guarded.next(), DONE);
  });

  it("Breaker.stream() queues throw() behind a pending read and times the source's answer to it by idleTimeout", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 1, idleTimeout: 100 });
      const src = controlled<number>({ withThrow: true });
      const guarded = breaker.stream(src.source);
      const first = handled(guarded.next());
      await src.push(1);
      await first;
      const read = track(guarded.next());
      const error = new Error("skip");
      const thrown = track(guarded.throw?.(error) as Promise<unknown>);
      await timers.tickAsync(60);
      assert.deepEqual(src.thrown, []); // not while the read waits
      await src.push(2);
      await flush();
      assert.deepEqual(read.value, { done: false, value: 2 });
      assert.deepEqual(src.thrown, [error]);
      await timers.tickAsync(99); // the source's answer gets a whole idleTimeout
      assert.equal(thrown.settled, false);
      await timers.tickAsync(1);
      assert.ok(thrown.error instanceof TimeoutError);
      assert.equal(breaker.state, "open");
      assert.equal(src.returns.length, 1);
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.stream() rejects a throw() queued behind a read that stalls with the error, without throwing it into the source", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 2, idleTimeout: 100 });
      const src = controlled<number>({ withThrow: true });
      const guarded = breaker.stream(src.source);
      const first = handled(guarded.next());
      await src.push(1);
      await first;
      const read = track(guarded.next());
      const error = new Error("skip");
      const thrown = track(guarded.throw?.(error) as Promise<unknown>);
      await timers.tickAsync(100);
      assert.ok(read.error instanceof TimeoutError);
      assert.equal(thrown.error, error);
      assert.deepEqual(src.thrown, []);
      assert.equal(breaker.failureCount, 1); // the stall, once
      assert.equal(src.returns.length, 1);
      assert.equal(timers.countTimers(), 0);
    });
  });

  it("Breaker.stream() rejects a throw() the source has not answered with the caller's abort reason, neutrally", async () => {
    const controller = new AbortController();
    const breaker = new Breaker({ failureThreshold: 1 });
    const src = controlled<number>({ withThrow: true });
    const guarded = breaker.stream(src.source, { signal: controller.signal });
    const first = handled(guarded.next());
    await src.push(1);
    await first;
    const thrown = track(guarded.throw?.(new Error("skip")) as Promise<unknown>);
    await until(() => src.thrown.length === 1, "the error to be thrown into the source");
    const reason = new Error("caller");
    controller.abort(reason);
    await flush();
    assert.equal(thrown.error, reason);
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 0);
    assert.equal(src.returns.length, 1);
  });

  it("circuit(async function*) lets a stream admitted before a state change take throw() and ignores its late outcome", async () => {
    const rows = circuit(async function* () {
      try {
        yield 1;
      } catch {
        yield 2;
      }
      yield 3;
    }, { failureThreshold: 1 });
    const breaker = breakerOf(rows) as Breaker;
    const stream = rows();
    await stream.next();
    breaker.open();
    const opened = breaker.snapshot;
    assert.deepEqual(await stream.throw(new Error("caught")), { done: false, value: 2 });
    const error = new Error("escapes");
    await assert.rejects(stream.throw(error), (e) => e === error);
    assert.equal(breaker.snapshot, opened);
  });

  it("circuit(function*) throws into the generator: caught, the stream goes on; escaping, it is judged by the matchers", () => {
    class Excluded extends Error {}
    class Ignored extends Error {}
    const rows = circuit(function* (catches: boolean) {
      try {
        yield 1;
      } catch (error) {
        if (!catches) throw error;
        yield 2;
      }
      yield 3;
    }, { failureThreshold: 2, exclude: Excluded, ignore: Ignored });
    const breaker = breakerOf(rows) as Breaker;
    const resilient = rows(true);
    resilient.next();
    assert.deepEqual(resilient.throw(new Error("skip")), { done: false, value: 2 });
    assert.deepEqual([...resilient], [3]);
    assert.equal(breaker.failureCount, 0);

    const throwInto = (error: Error) => {
      const stream = rows(false);
      stream.next();
      assert.throws(() => stream.throw(error), (e) => e === error);
      assert.deepEqual(stream.next(), DONE);
    };
    throwInto(new Error("counted"));
    assert.equal(breaker.failureCount, 1);
    throwInto(new Excluded("a success"));
    assert.equal(breaker.failureCount, 0);
    throwInto(new Error("counted"));
    throwInto(new Ignored("neither"));
    assert.equal(breaker.failureCount, 1);
    throwInto(new Error("counted"));
    assert.equal(breaker.state, "open");
  });

  it("circuit(function*) throws throw() before the first next() at once: not admitted, nothing runs or counts; after the end too", () => {
    const recorded = recordEvents(["beforeCall"]);
    const log: string[] = [];
    const rows = circuit(function* () {
      log.push("body");
      yield 1;
    }, { listeners: [recorded.listener] });
    const breaker = breakerOf(rows) as Breaker;
    const before = breaker.snapshot;
    const error = new Error("never started");
    const stream = rows();
    assert.throws(() => stream.throw(error), (e) => e === error);
    assert.deepEqual(stream.next(), DONE);
    assert.deepEqual(log, []);
    assert.deepEqual(recorded.events, [], "not admitted");
    assert.equal(breaker.snapshot, before);

    const ended = rows();
    assert.deepEqual([...ended], [1]);
    assert.throws(() => ended.throw(error), (e) => e === error);
  });

  it("a guarded sync stream ends a source without throw() and throws a TypeError, as yield* does; a success", () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    let returned = 0;
    const source: Iterable<number> = {
      [Symbol.iterator]: () => ({
        next: () => ({ done: false, value: 1 }),
        return: () => {
          returned++;
          return { done: true, value: undefined };
        },
      }),
    };
    const guarded = guardSyncStream(callHooks(breaker), () => source, undefined, []);
    guarded.next();
    const error = new Error("skip");
    assert.throws(
      () => guarded.throw(error),
      (e) =>
        e instanceof TypeError && e.cause === error && /has no throw\(\) method/.test(e.message),
    );
    assert.equal(returned, 1);
    assert.equal(breaker.state, "closed");
    assert.deepEqual(guarded.next(), DONE);
  });
});
