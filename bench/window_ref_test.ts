import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RingOpenError, RingWindowBreaker } from "./window_ref.ts";

function ring(clock: { now: number }, minimumCalls = 4): RingWindowBreaker {
  return new RingWindowBreaker({
    failureRate: 0.5,
    duration: 10_000,
    buckets: 10,
    minimumCalls,
    recoveryTimeout: 5_000,
    clock: () => clock.now,
  });
}

const ok = (): number => 1;
const fail = (): never => {
  throw new Error("down");
};
const attempt = (breaker: RingWindowBreaker, fn: () => number): unknown => {
  try {
    return breaker.executeSync(fn);
  } catch (error) {
    return error;
  }
};

describe("RingWindowBreaker (bench reference)", () => {
  it("RingWindowBreaker trips at the failure rate once minimumCalls calls are in the window", () => {
    const clock = { now: 1_000_000 };
    const breaker = ring(clock);
    attempt(breaker, fail);
    attempt(breaker, fail);
    attempt(breaker, fail);
    assert.equal(breaker.state, "closed"); // 3 calls < minimumCalls
    attempt(breaker, ok);
    assert.equal(breaker.state, "closed"); // a success never trips
    attempt(breaker, fail);
    assert.equal(breaker.state, "open"); // 4 failures of 5
    assert.ok(attempt(breaker, ok) instanceof RingOpenError);
  });

  it("RingWindowBreaker forgets the calls of buckets the clock has passed", () => {
    const clock = { now: 1_000_000 };
    const breaker = ring(clock);
    attempt(breaker, fail);
    attempt(breaker, fail);
    attempt(breaker, fail);
    clock.now += 5_000; // half the window later: the failures are still in it
    attempt(breaker, ok);
    assert.deepEqual(breaker.counts, { calls: 4, failures: 3 });
    clock.now += 5_000; // the first bucket is now stale
    attempt(breaker, ok);
    assert.deepEqual(breaker.counts, { calls: 2, failures: 0 });
    clock.now += 60_000; // the whole window passed
    attempt(breaker, fail);
    assert.deepEqual(breaker.counts, { calls: 1, failures: 1 });
    assert.equal(breaker.state, "closed");
  });

  it("RingWindowBreaker lets one trial through after recoveryTimeout and closes on its success", () => {
    const clock = { now: 1_000_000 };
    const breaker = ring(clock, 1);
    attempt(breaker, fail);
    assert.equal(breaker.state, "open");
    clock.now += 5_000;
    assert.equal(attempt(breaker, ok), 1);
    assert.equal(breaker.state, "closed");
    assert.deepEqual(breaker.counts, { calls: 0, failures: 0 });
  });

  it("RingWindowBreaker.execute() rethrows the function's own error", async () => {
    const breaker = ring({ now: 0 }, 100);
    const error = new Error("mine");
    await assert.rejects(breaker.execute(() => Promise.reject(error)), (e) => e === error);
    assert.equal(await breaker.execute(() => Promise.resolve(2)), 2);
    assert.deepEqual(breaker.counts, { calls: 2, failures: 1 });
  });
});
