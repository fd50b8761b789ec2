import assert from "node:assert/strict";
import { Breaker, circuit } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { deferred } from "./manual_clock.ts";

describe("Breaker coalesce", () => {
  it("circuit() with coalesce: concurrent calls with the same arguments share one call and one outcome", async () => {
    const breaker = new Breaker({ failureThreshold: 2, coalesce: true });
    const pending = deferred<string>();
    let calls = 0;
    const load = circuit((id: string) => (calls++, pending.promise.then((v) => `${v} ${id}`)), {
      breaker,
    });
    const a = load("1");
    const b = load("1");
    const c = load("2");
    assert.equal(a, b, "the same promise");
    assert.notEqual(a, c);
    assert.equal(calls, 2);
    pending.resolve("user");
    assert.deepEqual(await Promise.all([a, b, c]), ["user 1", "user 1", "user 2"]);
    const d = load("1");
    assert.notEqual(d, a, "nothing is kept once it settles");
    await d;
    assert.equal(calls, 3);
  });

  it("circuit() with coalesce: every caller gets the same error, counted once", async () => {
    const down = new Error("down");
    const breaker = new Breaker({ failureThreshold: 2, coalesce: true });
    const pending = deferred<string>();
    const load = breaker.wrap((_id: string) => pending.promise);
    const calls = [load("1"), load("1"), load("1")];
    pending.reject(down);
    for (const call of calls) await assert.rejects(call, (e) => e === down);
    assert.equal(breaker.failureCount, 1);
  });

  it("Breaker coalesce takes a key function called with the wrapper's this", async () => {
    const breaker = new Breaker({
      coalesce: function (this: { tenant: string }, id: unknown) {
        return `${this.tenant}/${id}`;
      },
    });
    let calls = 0;
    const load = breaker.wrap(function (this: { tenant: string }, id: string) {
      calls++;
      return Promise.resolve(`${this.tenant}:${id}`);
    });
    const acme = { tenant: "acme", load };
    const globex = { tenant: "globex", load };
    const results = await Promise.all([acme.load("1"), acme.load("1"), globex.load("1")]);
    assert.deepEqual(results, ["acme:1", "acme:1", "globex:1"]);
    assert.equal(calls, 2);
  });

  it("Breaker rejects a coalesce that is neither a boolean nor a function, and configure() cannot change it", () => {
    assert.throws(() => new Breaker({ coalesce: "args" as never }), {
      name: "TypeError",
      message:
        `Cannot create breaker: "coalesce" must be a boolean or a function returning a key, received "args"`,
    });
    assert.throws(() => new Breaker().configure({ coalesce: true } as never), {
      name: "TypeError",
      message: `Cannot configure breaker "breaker": "coalesce" cannot be changed`,
    });
  });
});
