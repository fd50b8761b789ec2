import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import {
  Breaker,
  BreakerOpenError,
  memoryStore,
  type StateStore,
  type StoredState,
} from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { manualClock } from "./manual_clock.ts";
import { captureConsole } from "./console_capture.ts";
import { recordEvents } from "./event_recorder.ts";

/** Lets the store's promises and notifications run (the memory store answers at once). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

const fail = () => Promise.reject(new Error("down"));
const succeed = () => Promise.resolve("ok");

/** Runs `fn` through the breaker, returning what happened instead of throwing. */
async function attempt(breaker: Breaker, fn: () => Promise<unknown>): Promise<string> {
  try {
    await breaker.execute(fn);
    return "ran";
  } catch (error) {
    return error instanceof BreakerOpenError ? "rejected" : "failed";
  }
}

/** `attempt` through `executeSync`, with a synchronous `fn` that fails or succeeds as `fn` would. */
function attemptSync(breaker: Breaker, fn: typeof fail | typeof succeed): Promise<string> {
  try {
    breaker.executeSync(() => {
      if (fn === fail) throw new Error("down");
      return "ok";
    });
    return Promise.resolve("ran");
  } catch (error) {
    return Promise.resolve(error instanceof BreakerOpenError ? "rejected" : "failed");
  }
}

/** A store that counts operations and can be switched off (every call rejects) or stalled. */
function faultyStore(inner: StateStore = memoryStore()) {
  const state = { down: false, writes: 0, reads: 0 };
  const check = () => {
    if (state.down) throw new Error("store unreachable");
  };
  const store: StateStore = {
    read: async (name) => {
      state.reads++;
      check();
      return await inner.read(name);
    },
    compareAndSet: async (name, expected, value) => {
      check();
      state.writes++;
      return await inner.compareAndSet(name, expected, value);
    },
    subscribe: (name, onChange, onError) => inner.subscribe!(name, onChange, onError),
  };
  return { store, state };
}

function storedSnapshot(stored: StoredState | undefined): Record<string, unknown> {
  assert.ok(stored, "a snapshot is stored");
  return JSON.parse(stored.value);
}

describe("shared circuits", () => {
  it("Breaker with a store: a trip in one breaker is seen by the others", async () => {
    const store = memoryStore();
    const clock = manualClock();
    const breakers = [0, 1, 2, 3].map(() =>
      new Breaker({ name: "api", store, clock, failureThreshold: 2 })
    );
    await settle();
    await attempt(breakers[0]!, fail);
    await attempt(breakers[0]!, fail);
    assert.equal(breakers[0]!.state, "open");
    await settle();
    for (const breaker of breakers) assert.equal(breaker.state, "open");
    assert.equal(await attempt(breakers[3]!, succeed), "rejected");
    for (const breaker of breakers) await breaker[Symbol.asyncDispose]();
  });

  it("Breaker with a store: failures of all breakers add up to the threshold", async () => {
    const store = memoryStore();
    const clock = manualClock();
    const options = { name: "db", store, clock, failureThreshold: 4, syncInterval: 0 };
    const a = new Breaker(options);
    const b = new Breaker(options);
    await settle();
    await attempt(a, fail);
    await attempt(b, fail);
    await settle();
    await attempt(a, fail);
    await settle();
    assert.equal(b.state, "closed");
    assert.equal(b.failureCount, 3);
    await attempt(b, fail);
    await settle();
    assert.equal(a.state, "open");
    assert.equal(b.state, "open");
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
  });

  it("Breaker with a store: a success anywhere restarts the consecutive count", async () => {
    const store = memoryStore();
    const options = { name: "db", store, failureThreshold: 3, syncInterval: 0 };
    const a = new Breaker(options);
    const b = new Breaker(options);
    await settle();
    await attempt(a, fail);
    await attempt(a, fail);
    await settle();
    await attempt(b, succeed);
    await settle();
    assert.equal(a.failureCount, 0);
    await attempt(a, fail);
    await settle();
    assert.equal(a.state, "closed");
    assert.equal(b.failureCount, 1);
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
  });

  it("Breaker with a store merges rate-rule windows across breakers", async () => {
    const store = memoryStore();
    const options = {
      name: "rates",
      store,
      syncInterval: 0,
      failureRate: 0.5,
      minimumCalls: 4,
      window: { calls: 10 },
    };
    const a = new Breaker(options);
    const b = new Breaker(options);
    await settle();
    await attempt(a, fail);
    await attempt(a, succeed);
    await settle();
    await attempt(b, succeed);
    await settle();
    assert.deepEqual({ ...b.stats }, {
      calls: 3,
      failures: 1,
      slowCalls: 0,
      failureRate: 1 / 3,
      slowCallRate: 0,
    });
    await attempt(b, fail);
    await settle();
    assert.equal(a.state, "open");
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
  });

  it("Breaker with a store batches counts at most syncInterval ms apart", async () => {
    const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const { store, state } = faultyStore();
      const breaker = new Breaker({ name: "db", store, syncInterval: 1_000, failureThreshold: 10 });
      await timers.tickAsync(0);
      const initial = state.writes;
      for (let i = 0; i < 3; i++) await attempt(breaker, fail);
      // The first batch waits a random part of syncInterval (breakers started together do not
      // write in step); the next ones syncInterval.
      await timers.tickAsync(1_000);
      assert.equal(state.writes, initial + 1, "one write for the first batch");
      for (let i = 0; i < 3; i++) await attempt(breaker, fail);
      await timers.tickAsync(999);
      assert.equal(state.writes, initial + 1, "no write before syncInterval");
      await timers.tickAsync(1);
      assert.equal(state.writes, initial + 2, "one write for the batch");
      assert.equal(storedSnapshot(await store.read("db")).failureCount, 6);
      await timers.tickAsync(10_000);
      assert.equal(state.writes, initial + 2, "no write while idle");
      await breaker[Symbol.asyncDispose]();
    } finally {
      timers.uninstall();
    }
  });

  it("Breaker with a store writes nothing for successes of a healthy circuit", async () => {
    const { store, state } = faultyStore();
    const breaker = new Breaker({ name: "db", store, syncInterval: 0 });
    await settle();
    const initial = state.writes;
    for (let i = 0; i < 100; i++) await breaker.execute(succeed);
    await settle();
    assert.equal(state.writes, initial);
    await breaker[Symbol.asyncDispose]();
  });

  it("Breaker with a store runs exactly one trial per half-open period across breakers", async () => {
    const store = memoryStore();
    const clock = manualClock();
    const options = { name: "api", store, clock, failureThreshold: 1, recoveryTimeout: 1_000 };
    const breakers = [0, 1, 2, 3].map(() => new Breaker(options));
    await settle();
    await attempt(breakers[0]!, fail);
    await settle();
    clock.advance(1_000);
    let trials = 0;
    const pending: Array<() => void> = [];
    const trial = () =>
      new Promise<string>((resolve) => {
        trials++;
        pending.push(() => resolve("ok"));
      });
    // Every breaker is asked at once: the first calls are turned away while the lease is taken.
    const first = await Promise.all(
      breakers.map((b) => b.execute(trial).then(() => "ran", () => "rejected")),
    );
    assert.deepEqual(first, ["rejected", "rejected", "rejected", "rejected"]);
    await settle();
    const runs = breakers.map((b) => b.execute(trial).then(() => "ran", () => "rejected"));
    await settle();
    assert.equal(trials, 1, "exactly one trial runs");
    for (const resolve of pending) resolve();
    const outcomes = await Promise.all(runs);
    assert.equal(outcomes.filter((o) => o === "ran").length, 1);
    await settle();
    for (const breaker of breakers) assert.equal(breaker.state, "closed");
    for (const breaker of breakers) await breaker[Symbol.asyncDispose]();
  });

  it("Breaker with a store: a crashed trial holder's lease expires and another takes it", async () => {
    const store = memoryStore();
    const clock = manualClock();
    const options = {
      name: "api",
      store,
      clock,
      failureThreshold: 1,
      recoveryTimeout: 1_000,
      timeout: 5_000,
    };
    const holder = new Breaker(options);
    const other = new Breaker(options);
    await settle();
    await attempt(holder, fail);
    await settle();
    clock.advance(1_000);
    assert.equal(await attempt(holder, succeed), "rejected");
    await settle();
    assert.equal(holder.snapshot.lease?.holder.startsWith("api:"), true);
    // The holder "crashes": it never runs its trial. Others wait for the lease to expire.
    await holder[Symbol.asyncDispose]();
    assert.equal(await attempt(other, succeed), "rejected");
    await settle();
    assert.equal(await attempt(other, succeed), "rejected");
    clock.advance(5_000);
    assert.equal(await attempt(other, succeed), "rejected");
    await settle();
    assert.equal(await attempt(other, succeed), "ran");
    await settle();
    assert.equal(other.state, "closed");
    assert.equal(storedSnapshot(await store.read("api")).state, "closed");
    await other[Symbol.asyncDispose]();
  });

  it("Breaker with a store goes on under local state while the store is down, and merges after", async () => {
    const { store, state } = faultyStore();
    const recorded = recordEvents(["storeError"]);
    const options = {
      name: "db",
      store,
      failureThreshold: 10,
      syncInterval: 0,
      listeners: [recorded.listener],
    };
    const a = new Breaker(options);
    const b = new Breaker({ ...options, listeners: [] });
    await settle();
    state.down = true;
    for (let i = 0; i < 3; i++) assert.equal(await attempt(a, fail), "failed");
    await settle();
    const errors = recorded.eventsOf("storeError");
    assert.equal(errors.length, 1, "one report per outage");
    // With syncInterval 0 each round reads first: the read is what failed.
    assert.equal(errors[0]!.operation, "read");
    assert.equal((errors[0]!.error as Error).message, "store unreachable");
    assert.equal(a.failureCount, 3);
    state.down = false;
    // b's write is the first news of the store's return: a merges its 3 failures at once.
    await attempt(b, fail);
    await settle();
    assert.equal(storedSnapshot(await store.read("db")).failureCount, 4);
    assert.equal(a.failureCount, 4);
    assert.equal(b.failureCount, 4);
    await attempt(a, fail);
    await settle();
    assert.equal(b.failureCount, 5, "counts keep adding up once the store is back");
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
  });

  it("Breaker with a store merges a write whose answer was lost once, though another wrote over it", async () => {
    const inner = memoryStore();
    let loseNextAnswer = false;
    const store: StateStore = {
      read: (name) => inner.read(name),
      compareAndSet: async (name, expected, value) => {
        const stored = await inner.compareAndSet(name, expected, value);
        if (!loseNextAnswer) return stored;
        loseNextAnswer = false;
        throw new Error("connection reset"); // applied, but the writer never hears so
      },
      subscribe: (name, onChange, onError) => inner.subscribe!(name, onChange, onError),
    };
    const options = {
      name: "db",
      store,
      failureThreshold: 100,
      syncInterval: 0,
      listeners: [{ storeError: () => {} }],
    };
    const a = new Breaker(options);
    const b = new Breaker(options);
    await settle();
    loseNextAnswer = true;
    for (let i = 0; i < 3; i++) await attempt(a, fail);
    await settle();
    // b wrote over a's write before a read the store back: a must still know it was applied.
    await attempt(b, fail);
    await settle();
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
    assert.equal(storedSnapshot(await store.read("db")).failureCount, 4);
  });

  it("Breaker with a store does not take the announcement of its own write for news", async () => {
    // Redis publishes, and Deno KV's watch() fires, before the writer hears the answer: an
    // echo taken for another breaker's write made every answer start the next write at once.
    const inner = memoryStore();
    let writes = 0;
    const store: StateStore = {
      read: (name) => inner.read(name),
      compareAndSet: async (name, expected, value) => {
        writes++;
        const stored = await inner.compareAndSet(name, expected, value); // announced here
        await new Promise((resolve) => setTimeout(resolve, 2));
        return stored;
      },
      subscribe: (name, onChange, onError) => inner.subscribe!(name, onChange, onError),
    };
    const breaker = new Breaker({
      name: "db",
      store,
      failureThreshold: Infinity,
      syncInterval: 60_000,
    });
    for (let round = 0; round < 20; round++) {
      await attempt(breaker, fail);
      await new Promise((resolve) => setTimeout(resolve, 3));
    }
    const beforeDispose = writes;
    await breaker[Symbol.asyncDispose]();
    assert.equal(beforeDispose, 1, "only the first write (the initial state) before the sync");
    assert.equal(storedSnapshot(await store.read("db")).failureCount, 20);
  });

  it("Breaker[Symbol.asyncDispose]() flushes counts made while the store failed, once it answers", async () => {
    const { store, state } = faultyStore();
    const breaker = new Breaker({
      name: "db",
      store,
      failureThreshold: 10,
      syncInterval: 0,
      listeners: [{ storeError: () => {} }],
    });
    await settle();
    state.down = true;
    for (let i = 0; i < 3; i++) await attempt(breaker, fail);
    await settle();
    state.down = false; // back, but nothing has told the breaker yet
    await breaker[Symbol.asyncDispose]();
    assert.equal(storedSnapshot(await store.read("db")).failureCount, 3);
  });

  it("Breaker[Symbol.asyncDispose]() gives up on a store that does not answer", async () => {
    const clock = FakeTimers.withGlobal(globalThis).install({
      toFake: ["setTimeout", "clearTimeout"],
    });
    try {
      const { store, state } = faultyStore();
      let hang = false;
      const hanging: StateStore = {
        ...store,
        compareAndSet: (name, expected, value) =>
          hang ? new Promise(() => {}) : store.compareAndSet(name, expected, value),
      };
      const breaker = new Breaker({
        name: "db",
        store: hanging,
        failureThreshold: 10,
        syncInterval: 0,
        listeners: [{ storeError: () => {} }],
      });
      await clock.tickAsync(0);
      state.down = true;
      await attempt(breaker, fail);
      await clock.tickAsync(0);
      state.down = false;
      hang = true;
      let disposed = false;
      const disposal = breaker[Symbol.asyncDispose]().then(() => disposed = true);
      await clock.tickAsync(999);
      assert.equal(disposed, false);
      await clock.tickAsync(1);
      await disposal;
      assert.equal(disposed, true);
    } finally {
      clock.uninstall();
    }
  });

  for (
    const [method, call] of [
      ["execute", attempt],
      ["executeSync", attemptSync],
    ] as const
  ) {
    it(`Breaker.${method}() with a store takes the trial lease locally while the store is down`, async () => {
      const { store, state } = faultyStore();
      const clock = manualClock();
      const breaker = new Breaker({
        name: "db",
        store,
        clock,
        failureThreshold: 1,
        recoveryTimeout: 100,
        listeners: [{ storeError: () => {} }],
      });
      await settle();
      state.down = true;
      assert.equal(await call(breaker, fail), "failed");
      await settle();
      clock.advance(100);
      // One failure is not an outage yet (a busy store must not let two breakers run trials).
      assert.equal(await call(breaker, succeed), "rejected");
      await settle();
      clock.advance(900); // failing for max(syncInterval, 1000) ms: the store is down
      assert.equal(await call(breaker, succeed), "ran");
      assert.equal(breaker.state, "closed");
      state.down = false;
      await breaker[Symbol.asyncDispose]();
      assert.equal(storedSnapshot(await store.read("db")).state, "closed");
    });
  }

  it("Breaker with a store reports errors with console.error when no listener takes them", async () => {
    const { store, state } = faultyStore();
    state.down = true;
    using logged = captureConsole("error");
    const breaker = new Breaker({ name: "db", store });
    await settle();
    await breaker[Symbol.asyncDispose]();
    assert.equal(logged.calls.length, 1);
    assert.match(String(logged.calls[0]![0]), /Circuit "db": the store failed \(read\)/);
  });

  it("Breaker with a store: compare-and-set conflicts under contention lose no count", async () => {
    const store = memoryStore();
    const options = { name: "busy", store, failureThreshold: 1_000, syncInterval: 0 };
    const breakers = Array.from({ length: 8 }, () => new Breaker(options));
    await settle();
    await Promise.all(
      breakers.map(async (breaker) => {
        for (let i = 0; i < 25; i++) await attempt(breaker, fail);
      }),
    );
    for (const breaker of breakers) await breaker[Symbol.asyncDispose]();
    assert.equal(storedSnapshot(await store.read("busy")).failureCount, 200);
  });

  it("Breaker with a store: isolate() is local, and releasing it rejoins the shared circuit", async () => {
    const store = memoryStore();
    const clock = manualClock();
    const options = { name: "db", store, clock, failureThreshold: 1, recoveryTimeout: 60_000 };
    const a = new Breaker(options);
    const b = new Breaker(options);
    await settle();
    const hold = a.isolate();
    await settle();
    assert.equal(a.state, "isolated");
    assert.equal(b.state, "closed");
    await attempt(b, fail);
    await settle();
    assert.equal(a.state, "isolated");
    hold[Symbol.dispose]();
    assert.equal(a.state, "open", "rejoins the open shared circuit instead of closing it");
    await settle();
    assert.equal(b.state, "open");
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
  });

  it("Breaker[Symbol.asyncDispose]() of a breaker isolated before its change of state was written returns at once", async () => {
    const recorded = recordEvents(["storeError"]);
    const breaker = new Breaker({
      name: "db",
      store: memoryStore(),
      syncInterval: 0,
      listeners: [recorded.listener],
    });
    await settle();
    // open() starts a write, which first reads the store; isolate() comes before the write.
    breaker.open();
    using _hold = breaker.isolate();
    await settle();
    const started = performance.now();
    await breaker[Symbol.asyncDispose]();
    const took = performance.now() - started;
    assert.ok(took < 500, `dispose took ${Math.round(took)} ms`);
    assert.deepEqual(recorded.eventsOf("storeError").map(({ error }) => (error as Error).message), [
      'Circuit "db": closed without writing a change of state to the store (the breaker is isolated)',
    ]);
  });

  it("Breaker with a store: manual close() and halfOpen() are shared", async () => {
    const store = memoryStore();
    const clock = manualClock();
    const options = { name: "db", store, clock, failureThreshold: 1 };
    const a = new Breaker(options);
    const b = new Breaker(options);
    await settle();
    a.open();
    await settle();
    assert.equal(b.state, "open");
    b.halfOpen();
    await settle();
    assert.equal(a.state, "half-open");
    assert.equal(await attempt(a, succeed), "rejected", "b holds the lease");
    assert.equal(await attempt(b, succeed), "ran");
    await settle();
    assert.equal(a.state, "closed");
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
  });

  it("Breaker with a store overwrites an unreadable stored value and reports it", async () => {
    const store = memoryStore();
    await store.compareAndSet("db", undefined, "not json");
    const recorded = recordEvents(["storeError"]);
    const breaker = new Breaker({ name: "db", store, listeners: [recorded.listener] });
    await settle();
    assert.deepEqual(recorded.lines(), ["storeError read"]);
    assert.equal(storedSnapshot(await store.read("db")).state, "closed");
    await breaker[Symbol.asyncDispose]();
  });

  it("Breaker with a store starts from the stored state", async () => {
    const store = memoryStore();
    const clock = manualClock();
    const first = new Breaker({ name: "db", store, clock });
    first.open();
    await first[Symbol.asyncDispose]();
    const second = new Breaker({ name: "db", store, clock });
    assert.equal(second.state, "closed", "admission never waits for the store");
    await settle();
    assert.equal(second.state, "open");
    await second[Symbol.asyncDispose]();
  });

  it("Breaker with a store: a store without subscribe() is read when calls are turned away", async () => {
    const inner = memoryStore();
    const store: StateStore = {
      read: (name) => inner.read(name),
      compareAndSet: (name, expected, value) => inner.compareAndSet(name, expected, value),
    };
    const clock = manualClock();
    const options = { name: "db", store, clock, syncInterval: 0 };
    const b = new Breaker(options);
    await settle();
    b.open();
    await settle();
    // `a` starts from b's open state, so neither writes over the other: a write that conflicts is
    // retried after a random delay of a few ms, which may then read what `a` wrote next.
    const a = new Breaker(options);
    await settle();
    assert.equal(a.state, "open");
    a.close();
    await settle();
    assert.equal(b.state, "open");
    assert.equal(await attempt(b, succeed), "rejected");
    await settle();
    assert.equal(b.state, "closed");
    await a[Symbol.asyncDispose]();
    await b[Symbol.asyncDispose]();
  });

  it("Breaker rejects a bad store or syncInterval, naming it", () => {
    assert.throws(
      () => new Breaker({ store: 42 as unknown as StateStore }),
      {
        name: "TypeError",
        message:
          'Cannot create breaker: "store" must be a StateStore (an object with read() and compareAndSet()), received 42',
      },
    );
    assert.throws(() => new Breaker({ store: memoryStore(), syncInterval: -1 }), {
      name: "RangeError",
      message: 'Cannot create breaker: "syncInterval" must be a finite number >= 0, received -1',
    });
    const breaker = new Breaker();
    assert.throws(() => breaker.configure({ store: memoryStore() } as never), {
      name: "TypeError",
      message: 'Cannot configure breaker "breaker": "store" cannot be changed',
    });
  });

  it("Breaker[Symbol.asyncDispose]() without a store resolves at once", async () => {
    const breaker = new Breaker();
    await breaker[Symbol.asyncDispose]();
    assert.equal(await breaker.execute(succeed), "ok");
  });
});
