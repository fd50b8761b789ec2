// The tests written with TC39 decorator syntax (`@circuit(...)`), kept apart because Node.js
// cannot run them: decorators are not erasable syntax, so its type stripping leaves them in, and
// V8 does not parse them yet. Deno and Bun run this file; scripts/test.mjs leaves it out of the
// Node.js run. Each test keeps the describe block and name it had in circuit_test.ts,
// registry_test.ts or types_test.ts.
import assert from "node:assert/strict";
import { breakerOf, BreakerOpenError, BreakerRegistry, circuit, defaultRegistry } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;
function expectType<T extends true>(_proof?: T): void {}

interface User {
  id: string;
}

/** A name no other test uses, since the default registry is shared by the whole suite. */
const uniqueName = (label: string) => `${label}-${crypto.randomUUID()}`;

describe("circuit() as a method decorator", () => {
  it("circuit(options) makes one breaker per decorated method, shared by all instances", async () => {
    class Api {
      id: string;
      constructor(id: string) {
        this.id = id;
      }
      @circuit({ failureThreshold: 2 })
      load(fail: boolean): Promise<string> {
        return fail ? Promise.reject(new Error(this.id)) : Promise.resolve(this.id);
      }
      @circuit()
      other(): Promise<string> {
        return Promise.resolve(`other ${this.id}`);
      }
    }
    const a = new Api("a"), b = new Api("b");
    assert.equal(await a.load(false), "a");
    assert.equal(await b.load(false), "b");
    await a.load(true).catch(() => {});
    await b.load(true).catch(() => {});
    // Failures on two instances opened the one breaker of `load`.
    const error = await a.load(false).catch((e) => e);
    assert.ok(error instanceof BreakerOpenError);
    assert.equal(error.breaker, "Api.load");
    assert.equal(await b.other(), "other b", "each method has its own breaker");
    assert.equal(breakerOf(Api.prototype.load), breakerOf(a.load));
    assert.notEqual(breakerOf(Api.prototype.load), breakerOf(Api.prototype.other));
  });

  it("circuit.sync(options) decorates a synchronous method", () => {
    class Parser {
      @circuit.sync({ failureThreshold: 1, fallback: () => null })
      parse(text: string): unknown {
        return JSON.parse(text);
      }
    }
    const parser = new Parser();
    assert.throws(() => parser.parse("{"), SyntaxError);
    assert.equal(parser.parse("[1]"), null);
  });
});

describe("circuit() as a method decorator: names", () => {
  it("names a decorated method's breaker Class.method, so two classes' methods of one name both get listed", async () => {
    const registry = new BreakerRegistry();
    const decorate = circuit.with({ registry, failureThreshold: 1 });
    class Users {
      @decorate()
      get(fail: boolean): Promise<string> {
        return fail ? Promise.reject(new Error("users down")) : Promise.resolve("user");
      }
    }
    class Orders {
      @decorate()
      get(): Promise<string> {
        return Promise.resolve("order");
      }
    }
    const users = new Users(), orders = new Orders();
    await users.get(true).catch(() => {});
    assert.equal(await orders.get(), "order");
    assert.equal(breakerOf(users.get)?.name, "Users.get");
    assert.equal(breakerOf(orders.get)?.name, "Orders.get");
    assert.equal(registry.get("Users.get")?.state, "open");
    assert.equal(registry.get("Orders.get")?.state, "closed");
    assert.equal(registry.summary().allClosed, false);
  });

  it("names a static method's breaker Class.method and a subclass's calls use the defining class's breaker", async () => {
    const registry = new BreakerRegistry();
    class Base {
      @circuit({ registry })
      static find(): Promise<string> {
        return Promise.resolve("found");
      }
      @circuit({ registry })
      load(): Promise<string> {
        return Promise.resolve("loaded");
      }
    }
    class Derived extends Base {}
    assert.equal(breakerOf(Base.find)?.name, "Base.find");
    assert.equal(await new Derived().load(), "loaded");
    assert.equal(breakerOf(new Base().load)?.name, "Base.load");
    assert.deepEqual([...registry].map((breaker) => breaker.name).sort(), [
      "Base.find",
      "Base.load",
    ]);
  });

  it("names a private method's breaker Class.#method", async () => {
    const registry = new BreakerRegistry();
    class Vault {
      @circuit({ registry })
      async #open(): Promise<string> {
        return await Promise.resolve("opened");
      }
      open(): Promise<string> {
        return this.#open();
      }
    }
    assert.equal(await new Vault().open(), "opened");
    assert.deepEqual([...registry].map((breaker) => breaker.name), ["Vault.#open"]);
  });

  it("a method called before any instance exists still gets its Class.method breaker", async () => {
    const registry = new BreakerRegistry();
    class Api {
      @circuit({ registry })
      ping(): Promise<string> {
        return Promise.resolve("pong");
      }
    }
    const instance = Object.create(Api.prototype) as Api;
    assert.equal(await instance.ping(), "pong");
    assert.equal(registry.get("Api.ping")?.name, "Api.ping");
  });
});

describe("defaultRegistry", () => {
  it("lists a decorated method's breaker under the method's name", () => {
    const name = uniqueName("load");
    class Api {
      @circuit({ name })
      load() {
        return Promise.resolve("ok");
      }
    }
    assert.equal(defaultRegistry.get(name)?.name, name);
    assert.equal(typeof new Api().load, "function");
  });
});

describe("types", () => {
  it("the method decorator accepts async methods only; circuit.sync decorates sync ones", () => {
    class Api {
      @circuit({ failureThreshold: 3 })
      load(id: string): Promise<User> {
        return Promise.resolve({ id });
      }
      @circuit.sync()
      parse(text: string): number {
        return Number(text);
      }
    }
    expectType<Equal<ReturnType<Api["load"]>, Promise<User>>>(true);
    assert.ok(new Api());
  });
});
