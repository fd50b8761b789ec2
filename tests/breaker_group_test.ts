import assert from "node:assert/strict";
import process from "node:process";
import fc from "fast-check";
import {
  Breaker,
  type BreakerListener,
  BreakerRegistry,
  defaultRegistry,
  memoryStore,
  type StateStore,
} from "../mod.ts";
import { BreakerGroup, type EvictionEvent } from "../src/breaker_group.ts";
import { captureConsole } from "./console_capture.ts";
import { recordEvents } from "./event_recorder.ts";
import { collectUntil } from "./gc.ts";
import { manualClock } from "./manual_clock.ts";
import { describe, it } from "./timer_leaks.ts";

const down = new Error("down");
const fail = (): never => {
  throw down;
};
const succeed = () => "ok";

/** Runs a failing call through the breaker; the error is expected. */
function failOnce(breaker: Breaker): void {
  assert.throws(() => breaker.executeSync(fail));
}

/** Keys in the group's order, least recently used first. */
function keysOf(group: BreakerGroup): string[] {
  return [...group].map(([key]) => key);
}

/** A group with a private registry, a manual clock, and the evictions it reported. */
function recordingGroup(maxKeys: number, options: { failureThreshold?: number } = {}) {
  const clock = manualClock();
  const registry = new BreakerRegistry();
  const evictions: EvictionEvent[] = [];
  const group = new BreakerGroup({
    name: "g",
    maxKeys,
    clock,
    registry,
    onEvict: (event) => evictions.push(event),
    ...options,
  });
  return { group, clock, registry, evictions };
}

/** Lets the store's promises and notifications run (the memory store answers at once). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** A memory store that counts its open subscriptions. */
function countingStore(): { store: StateStore; subscriptions: () => number } {
  const inner = memoryStore();
  let open = 0;
  const store: StateStore = {
    read: (name) => inner.read(name),
    compareAndSet: (name, expected, value) => inner.compareAndSet(name, expected, value),
    subscribe(name, onChange, onError) {
      const subscription = inner.subscribe!(name, onChange, onError);
      open++;
      return {
        [Symbol.asyncDispose]() {
          open--;
          return subscription[Symbol.asyncDispose]();
        },
      };
    },
  };
  return { store, subscriptions: () => open };
}

describe("BreakerGroup", () => {
  it("creates a breaker per key on first get(), with the shared options, named group:key", () => {
    const { group } = recordingGroup(10, { failureThreshold: 2 });
    const a = group.get("a");
    assert.ok(a instanceof Breaker);
    assert.equal(a.name, "g:a");
    assert.equal(group.size, 1);
    failOnce(a);
    failOnce(a);
    assert.equal(a.state, "open");
    const b = group.get("b");
    assert.equal(b.state, "closed");
    failOnce(b);
    assert.equal(b.state, "closed"); // its own count, with the shared threshold
    assert.equal(group.size, 2);
    assert.equal(group.name, "g");
  });

  it("returns the same breaker for the same key", () => {
    const { group } = recordingGroup(10);
    const a = group.get("a");
    group.get("b");
    assert.equal(group.get("a"), a);
    assert.equal(group.peek("a"), a);
    assert.equal(group.size, 2);
  });

  it("evicts the least recently used key: get() refreshes recency, peek() does not", () => {
    const { group, evictions } = recordingGroup(3);
    group.get("a");
    group.get("b");
    group.get("c");
    assert.deepEqual(keysOf(group), ["a", "b", "c"]);
    group.get("a");
    assert.deepEqual(keysOf(group), ["b", "c", "a"]);
    assert.ok(group.peek("b") !== undefined);
    assert.equal(group.peek("zz"), undefined);
    assert.deepEqual(keysOf(group), ["b", "c", "a"]);
    group.get("d");
    assert.deepEqual(keysOf(group), ["c", "a", "d"]);
    assert.deepEqual(
      evictions.map(({ key, state, forced }) => ({ key, state, forced })),
      [{ key: "b", state: "closed", forced: false }],
    );
    assert.equal(evictions[0]?.group, group);
    assert.equal(group.peek("b"), undefined);
    group.get("e");
    group.get("f");
    assert.deepEqual(evictions.map(({ key }) => key), ["b", "c", "a"]);
  });

  it("never holds more than maxKeys breakers", () => {
    const { group, registry } = recordingGroup(5, { failureThreshold: 1 });
    for (let i = 0; i < 200; i++) {
      const breaker = group.get(`key-${i % 37}-${i % 11}`);
      if (i % 3 === 0) failOnce(breaker); // some open, some closed
      assert.ok(group.size <= 5, `size ${group.size} after ${i + 1} gets`);
      assert.equal([...group].length, group.size);
      assert.ok(registry.size <= 5);
    }
    assert.equal(group.size, 5);
  });

  it("evicts closed idle breakers first; open, half-open, recovering and isolated ones stay", () => {
    const { group, clock, evictions } = recordingGroup(5, { failureThreshold: 1 });
    const open = group.get("open");
    const halfOpen = group.get("half-open");
    const recovering = group.get("recovering");
    const isolated = group.get("isolated");
    const closed = group.get("closed");
    open.open();
    halfOpen.halfOpen();
    recovering.configure({ recoveryRamp: { duration: 60_000 } });
    recovering.halfOpen();
    recovering.executeSync(succeed);
    using _hold = isolated.isolate();
    assert.deepEqual(
      [open, halfOpen, recovering, isolated, closed].map((b) => b.state),
      ["open", "half-open", "recovering", "isolated", "closed"],
    );
    clock.advance(1);
    group.get("new-1"); // evicts "closed", the only idle one, though it is the newest
    assert.deepEqual(evictions.map(({ key, forced }) => [key, forced]), [["closed", false]]);
    group.get("new-2"); // evicts "new-1": still the only idle one
    assert.deepEqual(evictions.map(({ key }) => key), ["closed", "new-1"]);
    assert.deepEqual(keysOf(group), ["open", "half-open", "recovering", "isolated", "new-2"]);
  });

  it("a closed breaker with failures counted is not idle", () => {
    const { group, evictions } = recordingGroup(2, { failureThreshold: 3 });
    const counting = group.get("counting");
    failOnce(counting);
    group.get("clean");
    group.get("next");
    assert.deepEqual(evictions.map(({ key, forced }) => [key, forced]), [["clean", false]]);
    assert.equal(group.peek("counting"), counting);
  });

  it("a closed breaker with failures in its time window is idle once they leave the window", () => {
    const clock = manualClock();
    const evictions: string[] = [];
    const group = new BreakerGroup({
      name: "w",
      maxKeys: 2,
      clock,
      registry: false,
      failureRate: 0.5,
      window: { duration: 10_000, buckets: 10 },
      onEvict: ({ key, forced }) => evictions.push(`${key}:${forced}`),
    });
    const windowed = group.get("windowed");
    failOnce(windowed);
    windowed.executeSync(succeed);
    assert.equal(windowed.failureCount, 0);
    assert.equal(windowed.stats.failures, 1);
    group.get("b");
    group.get("c"); // "windowed" is the LRU but holds a failure: "b" goes
    assert.deepEqual(evictions, ["b:false"]);
    clock.advance(20_000);
    group.get("windowed"); // used again, and now its window is empty
    group.get("d");
    assert.deepEqual(evictions, ["b:false", "c:false"]);
    group.get("e");
    assert.deepEqual(evictions, ["b:false", "c:false", "windowed:false"]);
  });

  it("when no breaker is idle, evicts the least recently used one and reports it as forced", () => {
    const { group, evictions, registry } = recordingGroup(3);
    for (const key of ["a", "b", "c"]) group.get(key).open();
    group.get("b"); // b is now the most recently used
    const a = group.peek("a");
    const d = group.get("d");
    assert.equal(evictions.length, 1);
    const [event] = evictions;
    assert.equal(event?.key, "a");
    assert.equal(event?.breaker, a);
    assert.equal(event?.state, "open");
    assert.equal(event?.forced, true);
    assert.equal(event?.group, group);
    assert.deepEqual(keysOf(group), ["c", "b", "d"]);
    assert.equal(registry.get("g:a"), undefined);
    // The evicted breaker keeps working for whoever holds it; the key gets a fresh one.
    assert.equal(a?.state, "open");
    assert.equal(d.state, "closed");
    d.open();
    const fresh = group.get("a");
    assert.notEqual(fresh, a);
    assert.equal(fresh.state, "closed");
    assert.deepEqual(evictions.map(({ key, forced }) => [key, forced]), [
      ["a", true],
      ["c", true],
    ]);
  });

  it("reports forced evictions of breakers that are not closed with console.warn, at most once a minute, without onEvict", () => {
    const clock = manualClock();
    const group = new BreakerGroup({
      name: "hosts",
      maxKeys: 2,
      clock,
      registry: false,
      recoveryTimeout: 120_000,
    });
    {
      using warnings = captureConsole("warn");
      for (let i = 0; i < 5; i++) group.get(`k${i}`).open();
      clock.advance(60_000);
      group.get("k5").open();
      assert.equal(warnings.calls.length, 2);
      assert.equal(
        warnings.calls[0]?.[0],
        'Breaker group "hosts": evicted the open breaker of key "k0" to stay within maxKeys (2): no breaker was idle. Raise maxKeys, or pass onEvict to handle evictions.',
      );
      assert.match(
        String(warnings.calls[1]?.[0]),
        /evicted the open breaker of key "k3" .* \(3 such evictions since the last warning\)/,
      );
    }
    // A forced eviction of a closed breaker (with a failure counted) is not warned about.
    const closed = new BreakerGroup({ name: "c", maxKeys: 1, registry: false });
    using none = captureConsole("warn");
    failOnce(closed.get("a"));
    closed.get("b");
    assert.deepEqual(none.calls, []);
  });

  it("an onEvict that throws is reported with console.error and changes nothing", () => {
    const group = new BreakerGroup({
      name: "g",
      maxKeys: 1,
      registry: false,
      onEvict: () => {
        throw new Error("hook broke");
      },
    });
    group.get("a");
    using errors = captureConsole("error");
    const b = group.get("b");
    assert.equal(group.peek("b"), b);
    assert.equal(group.size, 1);
    assert.equal(errors.calls.length, 1);
    assert.equal(errors.calls[0]?.[0], 'Breaker group "g": "onEvict" threw; ignored');
  });

  it("keeps the scan cost per new key bounded when every breaker is open", () => {
    // Each examination of a member reads its snapshot once: count the reads per new key.
    const getter = Object.getOwnPropertyDescriptor(Breaker.prototype, "snapshot")!.get!;
    let reads = 0;
    Object.defineProperty(Breaker.prototype, "snapshot", {
      get(this: Breaker) {
        reads++;
        return getter.call(this);
      },
      configurable: true,
    });
    try {
      let forced = 0;
      const group = new BreakerGroup({
        name: "g",
        maxKeys: 1_000,
        registry: false,
        onEvict: (event) => {
          if (event.forced) forced++;
        },
      });
      for (let i = 0; i < 1_000; i++) group.get(`warm-${i}`).open();
      reads = 0;
      const keys = 10_000;
      for (let i = 0; i < keys; i++) group.get(`new-${i}`).open();
      assert.equal(forced, keys);
      // Examining every member at each eviction would read ~1,000 snapshots per new key.
      assert.ok(reads / keys < 5, `${reads / keys} snapshot reads per new key`);
    } finally {
      Object.defineProperty(Breaker.prototype, "snapshot", { get: getter, configurable: true });
    }
  });

  it("removes evicted, deleted and cleared breakers from the registry", () => {
    const { group, registry } = recordingGroup(2);
    const a = group.get("a");
    group.get("b");
    assert.equal(registry.get("g:a"), a);
    group.get("c");
    assert.equal(registry.get("g:a"), undefined); // at once, not when `a` is collected
    assert.deepEqual([...registry].map((b) => b.name), ["g:b", "g:c"]);
    assert.equal(group.delete("b"), true);
    assert.equal(registry.get("g:b"), undefined);
    group.clear();
    assert.equal(registry.size, 0);
  });

  it("members join the default registry unless the registry option says otherwise", () => {
    const name = `grp-${crypto.randomUUID()}`;
    const listed = new BreakerGroup({ name, maxKeys: 1 });
    const a = listed.get("a");
    assert.equal(defaultRegistry.get(`${name}:a`), a);
    listed.get("b");
    assert.equal(defaultRegistry.get(`${name}:a`), undefined);
    listed.clear();
    const unlisted = new BreakerGroup({ name: `${name}-private`, registry: false });
    unlisted.get("a");
    assert.equal(defaultRegistry.get(`${name}-private:a`), undefined);
  });

  it("delete() and clear() forget breakers, which keep working; get() creates fresh ones", async () => {
    const { group, evictions } = recordingGroup(3);
    const a = group.get("a");
    group.get("b");
    a.open();
    assert.equal(group.delete("a"), true);
    assert.equal(group.delete("a"), false);
    assert.equal(group.peek("a"), undefined);
    assert.equal(group.size, 1);
    assert.equal(a.state, "open");
    const fresh = group.get("a");
    assert.notEqual(fresh, a);
    assert.equal(fresh.state, "closed");
    group.clear();
    assert.equal(group.size, 0);
    assert.deepEqual(keysOf(group), []);
    assert.equal(await fresh.execute(() => Promise.resolve(1)), 1);
    for (const key of ["x", "y", "z", "w"]) group.get(key);
    assert.deepEqual(keysOf(group), ["y", "z", "w"]);
    assert.deepEqual(evictions.map(({ key }) => key), ["x"]); // delete and clear are not evictions
  });

  it("iterates over a snapshot: changing the group while iterating is safe", () => {
    const { group } = recordingGroup(3);
    for (const key of ["a", "b", "c"]) group.get(key);
    const seen: string[] = [];
    for (const [key] of group) {
      seen.push(key);
      group.delete(key);
      group.get(`${key}2`);
    }
    assert.deepEqual(seen, ["a", "b", "c"]);
    assert.deepEqual(keysOf(group), ["a2", "b2", "c2"]);
  });

  it("with a store: evicted and deleted members are disposed, and the key's circuit survives eviction", async () => {
    const { store, subscriptions } = countingStore();
    const clock = manualClock();
    const evictions: string[] = [];
    await using group = new BreakerGroup({
      name: "shared",
      maxKeys: 1,
      store,
      clock,
      failureThreshold: 2,
      syncInterval: 10,
      registry: false,
      onEvict: ({ key, forced, state }) => evictions.push(`${key}:${state}:${forced}`),
    });
    const a = group.get("a");
    await settle();
    failOnce(a); // counted, not yet merged into the store
    assert.equal(subscriptions(), 1);
    group.get("b"); // forced: "a" holds a failure
    assert.deepEqual(evictions, ["a:closed:true"]);
    await settle();
    assert.equal(subscriptions(), 1, "the evicted member's subscription is closed");
    const stored = await store.read("shared:a");
    assert.equal(JSON.parse(stored?.value ?? "{}").failureCount, 1, "its count was flushed");
    // The key's fresh breaker joins the same circuit: one more failure opens it.
    const again = group.get("a");
    await settle();
    assert.equal(again.failureCount, 1);
    failOnce(again);
    assert.equal(again.state, "open");
    assert.equal(group.delete("a"), true);
    await settle();
    assert.equal(subscriptions(), 0);
  });

  it("disposing the group disposes every member and awaits those evicted before", async () => {
    const { store, subscriptions } = countingStore();
    const group = new BreakerGroup({ name: "d", maxKeys: 3, store, registry: false });
    for (const key of ["a", "b", "c", "d", "e"]) group.get(key);
    await group[Symbol.asyncDispose]();
    assert.equal(subscriptions(), 0);
    assert.equal(group.size, 0);
    // Without a store, members are disposed too (a formality: there is nothing to release).
    const plain = new BreakerGroup({ name: "p", registry: false });
    const disposed: string[] = [];
    const member = plain.get("a");
    const dispose = member[Symbol.asyncDispose].bind(member);
    member[Symbol.asyncDispose] = () => {
      disposed.push(member.name);
      return dispose();
    };
    await plain[Symbol.asyncDispose]();
    assert.deepEqual(disposed, ["p:a"]);
  });

  it("keeps the bound and the LRU rule under any sequence of uses (property)", () => {
    const keys = ["a", "b", "c", "d", "e", "f"];
    const action = fc.constantFrom("ok", "fail", "open", "close", "isolate", "none");
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.array(fc.tuple(fc.constantFrom(...keys), action), { maxLength: 60 }),
        (maxKeys, uses) => {
          const idle = (b: Breaker) => b.state === "closed" && b.failureCount === 0;
          let order: string[] = []; // the model: least recently used first
          let current = "";
          let evicted = 0;
          const group = new BreakerGroup({
            name: "p",
            maxKeys,
            failureThreshold: 2,
            registry: false,
            onEvict: ({ key, breaker, forced, state }) => {
              evicted++;
              const others = order.filter((k) => k !== key && k !== current);
              if (forced) {
                assert.equal(key, order[0], "a forced eviction takes the least recently used");
                for (const k of others) assert.ok(!idle(group.peek(k)!), `${k} was idle`);
              } else {
                const firstIdle = order.find((k) =>
                  k !== current && idle(group.peek(k) ?? breaker)
                );
                assert.equal(key, firstIdle, "the least recently used idle breaker goes");
                assert.equal(state, "closed");
              }
              order = order.filter((k) => k !== key);
            },
          });
          for (const [key, act] of uses) {
            current = key;
            const breaker = group.get(key);
            order = [...order.filter((k) => k !== key), key];
            if (act === "ok" && breaker.state !== "open" && breaker.state !== "isolated") {
              breaker.executeSync(succeed);
            } else if (act === "fail" && breaker.state !== "open" && breaker.state !== "isolated") {
              failOnce(breaker);
            } else if (act === "open") breaker.open();
            else if (act === "close") breaker.close();
            else if (act === "isolate") breaker.isolate();
            assert.ok(group.size <= maxKeys);
            assert.deepEqual(keysOf(group), order);
          }
          assert.ok(evicted >= 0);
        },
      ),
    );
  });

  it("rejects bad input, naming the option and the value", () => {
    const cases: [unknown, string, string][] = [
      [undefined, "TypeError", '"options" must be an object, received undefined'],
      [{}, "TypeError", '"name" must be a non-empty string, received undefined'],
      [{ name: "" }, "TypeError", '"name" must be a non-empty string, received ""'],
      [{ name: "g", maxKeys: 0 }, "RangeError", '"maxKeys" must be an integer >= 1, received 0'],
      [
        { name: "g", maxKeys: 1.5 },
        "RangeError",
        '"maxKeys" must be an integer >= 1, received 1.5',
      ],
      [
        { name: "g", maxKeys: Infinity },
        "RangeError",
        '"maxKeys" must be an integer >= 1, received Infinity',
      ],
      [{ name: "g", maxKeys: "10" }, "TypeError", '"maxKeys" must be a number, received "10"'],
      [{ name: "g", onEvict: 1 }, "TypeError", '"onEvict" must be a function, received 1'],
      [
        { name: "g", state: {} },
        "TypeError",
        '"state" is not an option of a breaker group (each member starts closed), received an object',
      ],
      [{ name: "g", failureTreshold: 3 }, "TypeError", 'unknown option "failureTreshold"'],
      [
        { name: "g", failureThreshold: 0 },
        "RangeError",
        '"failureThreshold" must be an integer >= 1 or Infinity, received 0',
      ],
      [{ name: "g", clock: 5 }, "TypeError", '"clock" must be a function, received 5'],
      [
        { name: "g", listeners: [null] },
        "TypeError",
        '"listeners[0]" must be an object with hooks, received null',
      ],
      [
        { name: "g", store: {} },
        "TypeError",
        '"store" must be a StateStore (an object with read() and compareAndSet()), received an object',
      ],
      [
        { name: "g", syncInterval: -1 },
        "RangeError",
        '"syncInterval" must be a finite number >= 0, received -1',
      ],
      [
        { name: "g", registry: true },
        "TypeError",
        '"registry" must be a BreakerRegistry or false, received true',
      ],
    ];
    for (const [options, name, message] of cases) {
      assert.throws(
        () => new BreakerGroup(options as ConstructorParameters<typeof BreakerGroup>[0]),
        { name, message: `Cannot create breaker group: ${message}` },
      );
    }
    const group = new BreakerGroup({ name: "g", registry: false });
    assert.throws(() => group.get(""), {
      name: "TypeError",
      message: 'Cannot get breaker from group "g": "key" must be a non-empty string, received ""',
    });
    assert.throws(() => group.get(42 as unknown as string), {
      name: "TypeError",
      message: 'Cannot get breaker from group "g": "key" must be a non-empty string, received 42',
    });
    assert.equal(group.size, 0);
  });

  it("the caller cannot change the shared options after creating the group", () => {
    const listeners: BreakerListener[] = [{ stateChange: () => {} }];
    const options = { name: "g", registry: false as const, listeners, failureThreshold: 1 };
    const group = new BreakerGroup(options);
    const late = recordEvents();
    listeners.push(late.listener);
    failOnce(group.get("a"));
    assert.deepEqual(late.events, []);
  });

  it("keeps the heap flat while 200,000 distinct keys cycle through 1,000 places", async () => {
    const registry = new BreakerRegistry();
    const group = new BreakerGroup({ name: "mem", maxKeys: 1_000, registry });
    const heapAfter = async (from: number, to: number): Promise<number> => {
      for (let i = from; i < to; i++) {
        group.get(`key-${i}`).executeSync(succeed);
        // Each batch in its own task: a registry's WeakRef keeps its target alive until the
        // task that created it ends.
        if (i % 10_000 === 9_999) await new Promise((resolve) => setTimeout(resolve, 0));
      }
      await collectUntil(() => false, 3);
      return process.memoryUsage().heapUsed;
    };
    const at50k = await heapAfter(0, 50_000);
    const at200k = await heapAfter(50_000, 200_000);
    assert.equal(group.size, 1_000);
    assert.equal(registry.size, 1_000);
    // 150,000 leaked members would take over 50 MB; leave room for noise.
    const growth = at200k - at50k;
    assert.ok(growth < 4_000_000, `the heap grew by ${(growth / 1e6).toFixed(1)} MB`);
  });
});
