import assert from "node:assert/strict";
import { Breaker, circuit } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";

const down = new Error("down");

describe("Breaker sync path given a function that returns a promise", () => {
  it("Breaker.executeSync() records a returned promise's rejection when it settles", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    for (let i = 0; i < 2; i++) {
      const result = breaker.executeSync(() => Promise.reject(down));
      assert.ok(result instanceof Promise);
      await assert.rejects(result, (error) => error === down);
    }
    assert.equal(breaker.state, "open");
  });

  it("Breaker.executeSync() records a returned promise's value when it settles", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    await breaker.execute(() => Promise.reject(down)).catch(() => {});
    assert.equal(breaker.failureCount, 1);
    const result = breaker.executeSync(() => Promise.resolve("ok"));
    assert.equal(breaker.failureCount, 1, "nothing is recorded before the promise settles");
    assert.equal(await result, "ok");
    assert.equal(breaker.failureCount, 0);
  });

  it("Breaker.executeSync() judges a returned Response when its promise settles", async () => {
    const breaker = new Breaker({ failureThreshold: 1, isFailureResult: (r) => r === "bad" });
    assert.equal(await breaker.executeSync(() => Promise.resolve("bad")), "bad");
    assert.equal(breaker.state, "open");
  });

  it("circuit.sync() records a returned thenable's outcome, half-open trials too", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    const thenable = (fail: boolean): PromiseLike<string> => ({
      then(resolve, reject) {
        queueMicrotask(() => fail ? reject?.(down) : resolve?.("ok"));
        return undefined as never;
      },
    });
    let failing = true;
    const load = circuit.sync(() => thenable(failing), { breaker });
    await assert.rejects(Promise.resolve(load()), (error) => error === down);
    assert.equal(breaker.state, "open");
    breaker.halfOpen();
    failing = false;
    const trial = load();
    assert.equal(breaker.state, "half-open", "the trial is in flight");
    assert.equal(await trial, "ok");
    assert.equal(breaker.state, "closed");
  });
});
