import assert from "node:assert/strict";
import { Breaker, breakerOf, BreakerOpenError, circuit } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { manualClock } from "./manual_clock.ts";

describe("circuit()", () => {
  it("circuit(fn) returns an async wrapper named after fn, with a breaker of that name", async () => {
    function loadUser(id: string) {
      return Promise.resolve({ id });
    }
    const guarded = circuit(loadUser);
    assert.equal(guarded.name, "loadUser");
    assert.equal(guarded.length, 1);
    assert.deepEqual(await guarded("7"), { id: "7" });
    assert.equal(breakerOf(guarded)?.name, "loadUser");
  });

  it("wrappers carry fn's name and length as ordinary function properties", () => {
    const breaker = new Breaker({ registry: false });
    const described = (fn: unknown, key: string) => Object.getOwnPropertyDescriptor(fn, key);
    const fns: [(...args: never[]) => unknown, unknown, number][] = [
      [function query(_sql: string, _args: unknown[]) {}, "query", 2],
      [() => 1, "", 0],
      [(_a: number) => 1, "", 1],
    ];
    // A function whose `name` is not a string (as a class with a static name() method has).
    const odd = () => 1;
    const notAString = () => "a method";
    Object.defineProperty(odd, "name", { value: notAString, configurable: true });
    fns.push([odd, notAString, 0]);
    for (const [fn, name, length] of fns) {
      for (const wrapper of [breaker.wrap(fn), breaker.wrapSync(fn)]) {
        assert.equal(wrapper.name, name);
        assert.equal(wrapper.length, length);
        for (const [key, value] of [["name", name], ["length", length]] as const) {
          assert.deepEqual(described(wrapper, key), {
            value,
            writable: false,
            enumerable: false,
            configurable: true,
          });
        }
      }
    }
  });

  it("circuit(fn) opens after 5 consecutive failures by default", async () => {
    let calls = 0;
    const flaky = circuit(() => {
      calls++;
      return Promise.reject(new Error("down"));
    });
    for (let i = 0; i < 5; i++) await assert.rejects(flaky(), /down/);
    await assert.rejects(flaky(), BreakerOpenError);
    assert.equal(calls, 5);
  });

  it("circuit(fn, options) applies the options; options.name wins over the function's name", async () => {
    const guarded = circuit(function fetchThing() {
      return Promise.reject(new Error("x"));
    }, { name: "things", failureThreshold: 1 });
    await guarded().catch(() => {});
    const error = await guarded().catch((e) => e);
    assert.ok(error instanceof BreakerOpenError);
    assert.equal(error.breaker, "things");
  });

  it("circuit(fn) keeps this", async () => {
    class Repo {
      prefix = "user:";
      find = circuit(function (this: Repo, id: string) {
        return Promise.resolve(this.prefix + id);
      });
    }
    assert.equal(await new Repo().find("1"), "user:1");
  });

  it("circuit(fn) turns a plain function's result into a promise and a throw into a rejection", async () => {
    const error = new Error("sync throw");
    const guarded = circuit((x: number) => {
      if (x < 0) throw error;
      return x * 2;
    });
    assert.equal(await guarded(2), 4);
    await assert.rejects(guarded(-1), (e) => e === error);
  });

  it("circuit(fn) serves the fallback with the call's arguments while open", async () => {
    const guarded = circuit((id: string): Promise<string> => Promise.reject(new Error(id)), {
      failureThreshold: 1,
      fallback: (id) => `cached ${id}`,
    });
    await guarded("a").catch(() => {});
    assert.equal(await guarded("b"), "cached b");
  });

  it("circuit(fn, { breaker }) shares an existing breaker between functions", async () => {
    const shared = new Breaker({ name: "shared", failureThreshold: 2 });
    const a = circuit(() => Promise.reject(new Error("a")), { breaker: shared });
    const b = circuit(() => Promise.resolve("b"), { breaker: shared });
    await a().catch(() => {});
    await a().catch(() => {});
    await assert.rejects(b(), BreakerOpenError);
    assert.equal(breakerOf(a), shared);
    assert.equal(breakerOf(b), shared);
  });

  it("circuit(fn, { breaker: instance, ...other }) is an error", () => {
    assert.throws(() => circuit(() => Promise.resolve(1), { breaker: new Breaker(), timeout: 5 }), {
      name: "TypeError",
      message:
        'Cannot create breaker: "breaker" is an existing Breaker, so "timeout" cannot be given; configure that breaker instead',
    });
  });

  it("circuit(fn, { breaker: Subclass }) instantiates the subclass with its defaults", async () => {
    class Strict extends Breaker {
      static override defaults = { failureThreshold: 1 };
    }
    const guarded = circuit(function load() {
      return Promise.reject(new Error("x"));
    }, { breaker: Strict });
    const breaker = breakerOf(guarded);
    assert.ok(breaker instanceof Strict);
    assert.equal(breaker?.name, "load");
    await guarded().catch(() => {});
    assert.equal(breaker?.state, "open");
    assert.throws(() => circuit(() => 1, { breaker: Date as never }), {
      name: "TypeError",
      message:
        'Cannot create breaker: "breaker" must be a Breaker or a Breaker subclass, received function Date',
    });
  });

  it("circuit(guarded, { breaker: same }) returns the guarded function: no outcome counted twice", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    const once = breaker.wrap(() => Promise.reject(new Error("x")));
    assert.equal(circuit(once, { breaker }), once);
    assert.equal(breaker.wrap(once), once);
    await once().catch(() => {});
    assert.equal(breaker.failureCount, 1);
    const sync = breaker.wrapSync(() => 1);
    assert.equal(breaker.wrapSync(sync), sync);
    // An async wrapper over a sync-guarded function guards the original, once.
    const asyncOfSync = breaker.wrap(breaker.wrapSync((): number => {
      throw new Error("y");
    }));
    await asyncOfSync().catch(() => {});
    assert.equal(breaker.failureCount, 2);
  });

  it("circuit.sync(fn) guards a synchronous function without promises", () => {
    const parse = circuit.sync((text: string) => JSON.parse(text), { failureThreshold: 1 });
    assert.deepEqual(parse("[1]"), [1]);
    assert.throws(() => parse("{"), SyntaxError);
    assert.throws(() => parse("[1]"), BreakerOpenError);
  });

  it("Breaker.wrapSync() keeps this and every argument on every path, the fallback's too", () => {
    for (const bulkhead of [{}, { maxConcurrent: 1 }]) {
      const seen: unknown[][] = [];
      const breaker = new Breaker({
        failureThreshold: 2,
        registry: false,
        fallback: function (this: unknown, ...args: unknown[]) {
          seen.push(["fallback", this, ...args]);
          return -1;
        },
        ...bulkhead,
      });
      const failure = new Error("down");
      const guarded = breaker.wrapSync(function (this: unknown, ...args: unknown[]) {
        seen.push([this, ...args]);
        if (args[0] === "fail") throw failure;
        return args.length;
      });
      const self = { guarded };
      // The first call finds the circuit quiet (closed, nothing counted); the next takes the
      // quiet path.
      assert.equal(self.guarded("a", 2, 3), 3);
      assert.equal(self.guarded("a", 2, 3), 3);
      assert.throws(() => self.guarded("fail", 1), (error) => error === failure);
      assert.equal(self.guarded("b", 2), 2); // closed, a failure counted
      assert.throws(() => self.guarded("fail"), (error) => error === failure);
      assert.throws(() => self.guarded("fail", 1, 2), (error) => error === failure);
      assert.equal(breaker.state, "open");
      assert.equal(self.guarded("c", 2, 3, 4), -1);
      assert.deepEqual(seen, [
        [self, "a", 2, 3],
        [self, "a", 2, 3],
        [self, "fail", 1],
        [self, "b", 2],
        [self, "fail"],
        [self, "fail", 1, 2],
        ["fallback", self, "c", 2, 3, 4],
      ]);
    }
  });

  it("Breaker.wrap() keeps this and every argument on every path, the fallback's too", async () => {
    for (const bulkhead of [{}, { maxConcurrent: 1 }]) {
      const seen: unknown[][] = [];
      const breaker = new Breaker({
        failureThreshold: 2,
        registry: false,
        fallback: function (this: unknown, ...args: unknown[]) {
          seen.push(["fallback", this, ...args]);
          return -1;
        },
        ...bulkhead,
      });
      const failure = new Error("down");
      const guarded = breaker.wrap(function (this: unknown, ...args: unknown[]) {
        seen.push([this, ...args]);
        if (args[0] === "throw") throw failure; // thrown, not a rejected promise
        return args[0] === "fail" ? Promise.reject(failure) : Promise.resolve(args.length);
      });
      const self = { guarded };
      // The first call finds the circuit quiet (closed, nothing counted); the next takes the
      // quiet path.
      assert.equal(await self.guarded("a", 2, 3), 3);
      assert.equal(await self.guarded("a", 2, 3), 3);
      await assert.rejects(self.guarded("throw", 1), (error) => error === failure);
      assert.equal(await self.guarded("b", 2), 2); // closed, a failure counted
      await assert.rejects(self.guarded("fail"), (error) => error === failure);
      await assert.rejects(self.guarded("fail", 1, 2), (error) => error === failure);
      assert.equal(breaker.state, "open");
      assert.equal(await self.guarded("c", 2, 3, 4), -1);
      assert.deepEqual(seen, [
        [self, "a", 2, 3],
        [self, "a", 2, 3],
        [self, "throw", 1],
        [self, "b", 2],
        [self, "fail"],
        [self, "fail", 1, 2],
        ["fallback", self, "c", 2, 3, 4],
      ]);
    }
  });

  it("circuit.with(defaults) makes a circuit() with other defaults", async () => {
    const strict = circuit.with({ failureThreshold: 1 });
    const guarded = strict(() => Promise.reject(new Error("x")));
    await guarded().catch(() => {});
    assert.equal(breakerOf(guarded)?.state, "open");
    const lenient = strict(() => Promise.reject(new Error("x")), { failureThreshold: 3 });
    await lenient().catch(() => {});
    assert.equal(breakerOf(lenient)?.state, "closed");
    const layered = strict.with({ recoveryTimeout: 5 });
    const clock = manualClock(0);
    const g = layered(() => Promise.reject(new Error("x")), { clock });
    await g().catch(() => {});
    assert.equal(breakerOf(g)?.openUntil, 5);
  });

  it("circuit() guards generator functions as streams, keeping their kind", async () => {
    const asyncItems = circuit(async function* items(n: number) {
      for (let i = 0; i < n; i++) yield i;
    });
    assert.equal(asyncItems.name, "items");
    const seen: number[] = [];
    for await (const item of asyncItems(3)) seen.push(item);
    assert.deepEqual(seen, [0, 1, 2]);
    const syncItems = circuit(function* letters() {
      yield "a";
      yield "b";
    });
    assert.deepEqual([...syncItems()], ["a", "b"]);
    assert.deepEqual(syncItems().map((letter) => letter.toUpperCase()).toArray(), ["A", "B"]);
  });
});

// The tests written with decorator syntax are in decorator_test.ts: Node.js cannot parse it.
describe("circuit() as a method decorator", () => {
  it("circuit(options) rejects a bad option when called, and non-method targets", () => {
    assert.throws(() => circuit({ failureThreshold: 0 }), { name: "RangeError" });
    const decorator = circuit({}) as unknown as (v: unknown, c: unknown) => unknown;
    assert.throws(() => decorator(undefined, { kind: "field", name: "x" }), {
      name: "TypeError",
      message: "circuit() decorates methods only, received a field",
    });
  });
});
