import assert from "node:assert/strict";
import {
  Breaker,
  BreakerGroup,
  type BreakerListener,
  BreakerRegistry,
  circuit,
  defaultRegistry,
} from "../mod.ts";
import { collectUntil } from "./gc.ts";
import { manualClock } from "./manual_clock.ts";
import { describe, it } from "./timer_leaks.ts";
import { recordEvents } from "./event_recorder.ts";

let counter = 0;
/** A name no other test uses, since the default registry is shared by the whole suite. */
const uniqueName = (label: string) => `${label}-${++counter}-${crypto.randomUUID()}`;

describe("defaultRegistry", () => {
  it("lists a breaker given a name", () => {
    const name = uniqueName("db");
    const breaker = new Breaker({ name });
    assert.equal(defaultRegistry.get(name), breaker);
    assert.ok([...defaultRegistry].includes(breaker));
  });

  it("does not list a breaker without a name", () => {
    const before = [...defaultRegistry];
    const breaker = new Breaker();
    assert.ok(![...defaultRegistry].includes(breaker));
    assert.deepEqual([...defaultRegistry].filter((b) => !before.includes(b)), []);
  });

  it("does not list a breaker created with registry: false", () => {
    const name = uniqueName("private");
    new Breaker({ name, registry: false });
    assert.equal(defaultRegistry.get(name), undefined);
  });

  it("lists circuit()'s breaker under the function's name, not an anonymous one's", () => {
    const name = uniqueName("loadUser");
    const named = { [name]: () => Promise.resolve("user") }[name]!;
    const guarded = circuit(named);
    assert.equal(defaultRegistry.get(name)?.name, name);
    assert.equal(guarded.name, name);
    const before = defaultRegistry.size;
    circuit(() => Promise.resolve("anonymous"));
    assert.equal(defaultRegistry.size, before);
  });

  it("lets a breaker nobody references be collected, and forgets it", async () => {
    const name = uniqueName("garbage");
    let ref: WeakRef<Breaker> | undefined;
    (() => {
      ref = new WeakRef(new Breaker({ name }));
    })();
    const collected = await collectUntil(() => ref?.deref() === undefined);
    assert.ok(collected, "the registry kept a breaker alive");
    assert.equal(defaultRegistry.get(name), undefined);
    assert.ok(![...defaultRegistry].some((breaker) => breaker.name === name));
  });
});

describe("BreakerRegistry", () => {
  it("lists a breaker with its registry option there and not in the default registry", () => {
    const registry = new BreakerRegistry();
    const name = uniqueName("cache");
    const breaker = new Breaker({ name, registry });
    assert.equal(registry.get(name), breaker);
    assert.equal(defaultRegistry.get(name), undefined);
    const unnamed = new Breaker({ registry });
    assert.equal(registry.get("breaker"), unnamed);
  });

  it("breaker() creates on first use and returns the same breaker after", () => {
    const registry = new BreakerRegistry();
    const clock = manualClock();
    const db = registry.breaker("db", { failureThreshold: 1, clock });
    assert.equal(registry.breaker("db", { failureThreshold: 9 }), db);
    assert.equal(registry.get("db"), db);
    // The options of the first call made the breaker: one failure opens it.
    assert.throws(() =>
      db.executeSync(() => {
        throw new Error("down");
      })
    );
    assert.equal(db.state, "open");
  });

  it("breaker() keeps what it created alive until delete()", async () => {
    const registry = new BreakerRegistry();
    let ref: WeakRef<Breaker> | undefined;
    (() => {
      ref = new WeakRef(registry.breaker("kept"));
    })();
    const collected = await collectUntil(() => ref?.deref() === undefined, 5);
    assert.equal(collected, false);
    assert.equal(registry.get("kept"), ref?.deref());
    assert.equal(registry.delete("kept"), true);
    assert.equal(registry.get("kept"), undefined);
  });

  it("a breaker joining under a listed name is get()'s; both stay listed and the name is a duplicate", async () => {
    const registry = new BreakerRegistry();
    const first = new Breaker({ name: "db", registry });
    const second = new Breaker({ name: "db", registry });
    assert.equal(registry.get("db"), second);
    assert.deepEqual([...registry], [first, second]);
    assert.equal(await first.execute(() => Promise.resolve(1)), 1);
    first.open();
    const summary = registry.summary();
    assert.deepEqual(summary.open, ["db"]);
    assert.deepEqual(summary.closed, ["db"]);
    assert.deepEqual(summary.duplicates, ["db"]);
    assert.equal(summary.allClosed, false);
    // Deleting the older breaker leaves the newer one listed, and the collision is over.
    assert.equal(registry.delete(first), true);
    assert.equal(registry.get("db"), second);
    assert.deepEqual([...registry], [second]);
    assert.deepEqual(registry.summary().duplicates, []);
  });

  it("delete(breaker) of the newest gives the name back to the older one; delete(name) removes both", () => {
    const registry = new BreakerRegistry();
    const first = new Breaker({ name: "db", registry });
    const second = new Breaker({ name: "db", registry });
    assert.equal(registry.delete(second), true);
    assert.equal(registry.get("db"), first);
    registry.add(second);
    assert.equal(registry.delete("db"), true);
    assert.equal(registry.size, 0);
    assert.equal(registry.delete("db"), false);
  });

  it("add() of an older breaker of a name makes it the newest, with the registry's listeners once", () => {
    const registry = new BreakerRegistry();
    const recorded = recordEvents(["stateChange"]);
    using _subscription = registry.addListener(recorded.listener);
    const first = new Breaker({ name: "db", registry });
    const second = new Breaker({ name: "db", registry });
    registry.add(first);
    assert.equal(registry.get("db"), first);
    assert.deepEqual([...registry], [second, first]);
    first.open();
    second.open();
    assert.deepEqual(recorded.lines(), ["stateChange closed->open", "stateChange closed->open"]);
  });

  it("lets the breakers made per request under one name be collected, keeping the newest listed", async () => {
    const registry = new BreakerRegistry();
    let last: WeakRef<Breaker> | undefined;
    for (let i = 0; i < 1_000; i++) last = new WeakRef(new Breaker({ name: "db", registry }));
    const collected = await collectUntil(() => registry.size <= 1, 20);
    assert.ok(collected, `${registry.size} breakers still listed`);
    assert.equal(registry.get("db"), last?.deref());
  });

  it("summary() counts a group's members by state and names only those not closed", () => {
    const registry = new BreakerRegistry();
    const group = new BreakerGroup({ name: "hosts", registry, failureThreshold: 1 });
    for (let i = 0; i < 100; i++) group.get(`h${i}`);
    group.get("h7").open();
    const summary = registry.summary();
    assert.deepEqual(summary.closed, []);
    assert.deepEqual(summary.open, ["hosts:h7"]);
    assert.deepEqual(summary.groups, {
      hosts: { total: 100, closed: 99, open: 1, halfOpen: 0, recovering: 0, isolated: 0 },
    });
    assert.equal(summary.total, 100);
    assert.equal(summary.allClosed, false);
  });

  it("iterates in the order breakers joined; re-joining moves a name to the end", () => {
    const registry = new BreakerRegistry();
    const a = new Breaker({ name: "a", registry });
    const b = new Breaker({ name: "b", registry });
    const a2 = new Breaker({ name: "a", registry });
    assert.deepEqual([...registry].map((breaker) => breaker.name), ["b", "a", "a"]);
    assert.deepEqual([...registry], [b, a, a2]);
    assert.equal(registry.size, 3);
    assert.notEqual(a, a2);
  });

  it("add() lists an existing breaker; adding it twice lists it once", () => {
    const registry = new BreakerRegistry();
    const breaker = new Breaker({ name: uniqueName("x"), registry: false });
    registry.add(breaker);
    registry.add(breaker);
    assert.deepEqual([...registry], [breaker]);
  });

  it("summary() names the breakers by state, read from the clock", () => {
    const registry = new BreakerRegistry();
    const clock = manualClock();
    const options = { registry, clock, recoveryTimeout: 1_000 };
    new Breaker({ ...options, name: "closed" });
    const opened = new Breaker({ ...options, name: "opened" });
    const elapsed = new Breaker({ ...options, name: "elapsed" });
    const isolated = new Breaker({ ...options, name: "isolated" });
    elapsed.open();
    clock.advance(1_000);
    opened.open();
    using _hold = isolated.isolate();
    assert.deepEqual(registry.summary(), {
      total: 4,
      allClosed: false,
      closed: ["closed"],
      open: ["opened"],
      halfOpen: ["elapsed"],
      recovering: [],
      isolated: ["isolated"],
      duplicates: [],
      groups: {},
    });
  });

  it("summary() reports allClosed for an empty registry and for all-closed breakers", () => {
    const registry = new BreakerRegistry();
    assert.equal(registry.summary().allClosed, true);
    assert.equal(registry.summary().total, 0);
    registry.breaker("a");
    registry.breaker("b");
    assert.deepEqual(registry.summary().closed, ["a", "b"]);
    assert.equal(registry.summary().allClosed, true);
  });

  it("addListener() reaches listed breakers and later ones, and dispose removes it from all", () => {
    const registry = new BreakerRegistry();
    const recorded = recordEvents(["stateChange"]);
    const seen = () =>
      recorded.eventsOf("stateChange").map(({ breaker, to }) => `${breaker.name}:${to}`);
    const early = registry.breaker("early");
    const subscription = registry.addListener(recorded.listener);
    const late = registry.breaker("late");
    early.open();
    late.open();
    assert.deepEqual(seen(), ["early:open", "late:open"]);
    subscription[Symbol.dispose]();
    subscription[Symbol.dispose]();
    early.close();
    late.close();
    assert.deepEqual(seen(), ["early:open", "late:open"]);
  });

  it("a breaker leaving the registry loses the registry's listeners", () => {
    const registry = new BreakerRegistry();
    const recorded = recordEvents();
    using _subscription = registry.addListener(recorded.listener);
    const deleted = registry.breaker("deleted");
    registry.delete(deleted);
    deleted.open();
    assert.deepEqual(recorded.events, []);
  });

  it("rejects bad input, naming the argument and the value", () => {
    const registry = new BreakerRegistry();
    assert.throws(
      () => new Breaker({ name: "x", registry: {} as unknown as BreakerRegistry }),
      {
        name: "TypeError",
        message:
          'Cannot create breaker: "registry" must be a BreakerRegistry or false, received an object',
      },
    );
    assert.throws(() => registry.breaker(""), {
      name: "TypeError",
      message: 'Cannot get breaker: "name" must be a non-empty string, received ""',
    });
    assert.throws(() => registry.breaker("x", null as unknown as object), {
      name: "TypeError",
      message: 'Cannot create breaker: "options" must be an object, received null',
    });
    assert.throws(() => registry.add("db" as unknown as Breaker), {
      name: "TypeError",
      message: 'Cannot add to registry: "breaker" must be a Breaker, received "db"',
    });
    assert.throws(() => registry.addListener(undefined as unknown as BreakerListener), {
      name: "TypeError",
      message: 'Cannot add listener: "listener" must be an object with hooks, received undefined',
    });
    assert.throws(() => registry.breaker("y", { registry: false } as object), {
      name: "TypeError",
      message:
        'Cannot create breaker: "registry" is not an option of registry.breaker(), received false',
    });
    assert.throws(() => registry.breaker("y", { name: "z" } as object), {
      name: "TypeError",
      message: 'Cannot create breaker: "name" is not an option of registry.breaker(), received "z"',
    });
    assert.throws(() => registry.breaker("z").configure({ registry } as object), {
      message: /"registry"/,
    });
  });
});
