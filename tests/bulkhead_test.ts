import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import { Breaker, BreakerOpenError, BulkheadFullError, circuit, TimeoutError } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { deferred, flush } from "./manual_clock.ts";
import { recordEvents } from "./event_recorder.ts";

describe("Breaker maxConcurrent (bulkhead)", () => {
  it("Breaker.execute() beyond maxConcurrent rejects with BulkheadFullError at once, counting nothing", async () => {
    const recorded = recordEvents(["rejected"]);
    const breaker = new Breaker({
      name: "db",
      maxConcurrent: 2,
      failureThreshold: 1,
      listeners: [recorded.listener],
    });
    const running = [deferred<string>(), deferred<string>()];
    const calls = running.map((call) => breaker.execute(() => call.promise));
    let ran = false;
    await assert.rejects(
      breaker.execute(() => (ran = true, Promise.resolve("third"))),
      (error) => {
        assert.ok(error instanceof BulkheadFullError);
        assert.equal(error.message, 'Circuit "db" is full: 2 calls in flight');
        assert.equal(error.retryAfterMs, 0);
        return true;
      },
    );
    assert.equal(ran, false);
    assert.equal(recorded.events.length, 1);
    assert.equal(breaker.state, "closed");
    running[0]!.reject(new Error("down"));
    await assert.rejects(calls[0]!);
    assert.equal(breaker.state, "open", "the place came back with the failure");
    running[1]!.resolve("late");
    await calls[1];
  });

  it("Breaker queues maxQueued calls first come first served and runs them as places free up", async () => {
    const breaker = new Breaker({ maxConcurrent: 1, maxQueued: 2 });
    const first = deferred<string>();
    const order: string[] = [];
    const a = breaker.execute(() => (order.push("a"), first.promise));
    const b = breaker.execute(() => (order.push("b"), Promise.resolve("b")));
    const c = breaker.execute(() => (order.push("c"), Promise.resolve("c")));
    await assert.rejects(breaker.execute(() => Promise.resolve("d")), BulkheadFullError);
    assert.deepEqual(order, ["a"]);
    first.resolve("a");
    assert.deepEqual(await Promise.all([a, b, c]), ["a", "b", "c"]);
    assert.deepEqual(order, ["a", "b", "c"]);
    // every place is back: two more calls fit at once
    const more = deferred<string>();
    const d = breaker.execute(() => more.promise);
    const e = breaker.execute(() => Promise.resolve("e"));
    more.resolve("d");
    assert.deepEqual(await Promise.all([d, e]), ["d", "e"]);
  });

  it("Breaker gives up a queued call's place when its signal aborts", async () => {
    const breaker = new Breaker({ maxConcurrent: 1, maxQueued: 1 });
    const first = deferred<string>();
    const a = breaker.execute(() => first.promise);
    const caller = new AbortController();
    let ran = false;
    const queued = breaker.execute(() => (ran = true, Promise.resolve("b")), {
      signal: caller.signal,
    });
    const reason = new Error("gone");
    caller.abort(reason);
    await assert.rejects(queued, (error) => error === reason);
    const c = breaker.execute(() => Promise.resolve("c")); // the queue has room again
    first.resolve("a");
    assert.deepEqual(await Promise.all([a, c]), ["a", "c"]);
    assert.equal(ran, false);
  });

  it("Breaker gives a place back on every exit: timeout, caller abort, throw, fallback that throws", async () => {
    const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 0 });
    try {
      const breaker = new Breaker({
        maxConcurrent: 1,
        timeout: 100,
        fallback: () => {
          throw new Error("fallback failed");
        },
      });
      const timedOut = breaker.execute(() => new Promise(() => {})).catch((e) => e);
      await timers.tickAsync(100);
      assert.ok((await timedOut) instanceof TimeoutError);
      const caller = new AbortController();
      const aborted = breaker.execute(() => new Promise(() => {}), { signal: caller.signal })
        .catch((e) => e);
      caller.abort(new Error("bye"));
      await aborted;
      await assert.rejects(breaker.execute(() => {
        throw new Error("sync throw");
      }));
      // with the place taken, the fallback serves (and throws)
      const hold = deferred<string>();
      const held = breaker.execute(() => hold.promise);
      await assert.rejects(breaker.execute(() => Promise.resolve(1)), /fallback failed/);
      hold.resolve("ok");
      await held;
      assert.equal(await breaker.execute(() => Promise.resolve("free")), "free");
    } finally {
      timers.uninstall();
    }
  });

  it("Breaker.executeSync() and execute() on an open circuit with a full bulkhead reject with BulkheadFullError: the place is asked for first", async () => {
    const breaker = new Breaker({ maxConcurrent: 1, recoveryTimeout: 60_000 });
    const hold = deferred<string>();
    const held = breaker.execute(() => hold.promise);
    breaker.open();
    assert.throws(() => breaker.executeSync(() => 1), BulkheadFullError);
    await assert.rejects(breaker.execute(() => Promise.resolve(1)), BulkheadFullError);
    hold.resolve("x");
    await held;
    assert.throws(() => breaker.executeSync(() => 1), BreakerOpenError);
  });

  it("circuit() wrappers and executeSync() share the bulkhead; sync calls never wait", async () => {
    const breaker = new Breaker({ maxConcurrent: 1, maxQueued: 5 });
    const hold = deferred<string>();
    const load = circuit(() => hold.promise, { breaker });
    const held = load();
    assert.throws(() => breaker.executeSync(() => 1), BulkheadFullError);
    hold.resolve("x");
    await held;
    assert.equal(breaker.executeSync(() => 2), 2);
  });

  it("Breaker: a stream holds its place until it ends, a permit until its outcome", async () => {
    const breaker = new Breaker({ maxConcurrent: 1 });
    const stream = breaker.stream(async function* () {
      yield 1;
      yield 2;
    });
    assert.deepEqual(await stream.next(), { done: false, value: 1 });
    assert.throws(() => breaker.acquire(), BulkheadFullError);
    for await (const _ of stream) { /* the rest */ }
    const permit = breaker.acquire();
    await assert.rejects(breaker.execute(() => Promise.resolve(1)), BulkheadFullError);
    permit[Symbol.dispose]();
    assert.equal(await breaker.execute(() => Promise.resolve(1)), 1);
    await flush();
  });

  it("Breaker turned away by the circuit after waiting in the queue gets BreakerOpenError", async () => {
    const breaker = new Breaker({ maxConcurrent: 1, maxQueued: 1, failureThreshold: 1 });
    const first = deferred<string>();
    const a = breaker.execute(() => first.promise);
    const b = breaker.execute(() => Promise.resolve("b"));
    first.reject(new Error("down"));
    await assert.rejects(a);
    await assert.rejects(b, BreakerOpenError);
  });

  it("Breaker rejects bad bulkhead options naming them", () => {
    assert.throws(() => new Breaker({ maxConcurrent: 0 }), {
      name: "RangeError",
      message: `Cannot create breaker: "maxConcurrent" must be an integer >= 1, received 0`,
    });
    assert.throws(() => new Breaker({ maxConcurrent: 1, maxQueued: -1 }), {
      name: "RangeError",
      message: `Cannot create breaker: "maxQueued" must be an integer >= 0, received -1`,
    });
    assert.throws(() => new Breaker({ maxQueued: 3 }), {
      name: "TypeError",
      message:
        `Cannot create breaker: "maxQueued" must be set only with "maxConcurrent", received 3`,
    });
  });
});
