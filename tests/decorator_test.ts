// The tests written with TC39 decorator syntax (`@circuit(...)`), kept apart because Node.js
// cannot run them: decorators are not erasable syntax, so its type stripping leaves them in, and
// V8 does not parse them yet. Deno and Bun run this file; scripts/test.mjs leaves it out of the
// Node.js run. Each test keeps the describe block and name it had in circuit_test.ts,
// registry_test.ts or types_test.ts.
import assert from "node:assert/strict";
import { breakerOf, BreakerOpenError, circuit, defaultRegistry } from "../mod.ts";
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
    assert.equal(error.breaker, "load");
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
