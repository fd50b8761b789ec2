import assert from "node:assert/strict";
import { Breaker, circuit } from "../mod.ts";
import { isFailedResult } from "../src/core/classify.ts";
import { createPolicy } from "../src/core/policy.ts";
import { describe, it } from "./timer_leaks.ts";
import { manualClock } from "./manual_clock.ts";

const reply = (status: number, headers: Record<string, string> = {}) =>
  new Response(null, { status, headers });

describe("Breaker judges a returned Response by default", () => {
  it("Breaker.execute() counts four 503 answers in a row as failures and returns each", async () => {
    const breaker = new Breaker({ failureThreshold: 4 });
    for (let i = 0; i < 4; i++) {
      const response = reply(503);
      assert.equal(await breaker.execute(() => Promise.resolve(response)), response);
      assert.equal(breaker.failureCount, Math.min(i + 1, 4));
    }
    assert.equal(breaker.state, "open");
  });

  it("Breaker counts 5xx and 429 as failures, other statuses as successes", async () => {
    for (
      const [status, failed] of [
        [500, true],
        [502, true],
        [599, true],
        [429, true],
        [200, false],
        [204, false],
        [301, false],
        [404, false],
        [499, false],
      ] as const
    ) {
      const breaker = new Breaker({ failureThreshold: 1 });
      await breaker.execute(() => Promise.resolve(reply(status)));
      assert.equal(breaker.state, failed ? "open" : "closed", `status ${status}`);
    }
  });

  it("Breaker judges a Response returned without a promise, and on the sync path", async () => {
    const asynchronous = new Breaker({ failureThreshold: 1 });
    await asynchronous.execute(() => reply(500));
    assert.equal(asynchronous.state, "open");
    const synchronous = new Breaker({ failureThreshold: 1 });
    assert.equal(synchronous.executeSync(() => reply(502)).status, 502);
    assert.equal(synchronous.state, "open");
  });

  it("circuit() wrappers count failed responses after successes (the quiet path)", async () => {
    let status = 200;
    const get = circuit(() => Promise.resolve(reply(status)), { failureThreshold: 2 });
    for (let i = 0; i < 3; i++) await get();
    status = 503;
    await get();
    await get();
    await assert.rejects(get(), { name: "BreakerOpenError" });
  });

  it("Breaker honours a 503's Retry-After with no option set", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 1_000, clock });
    await breaker.execute(() => Promise.resolve(reply(503, { "retry-after": "120" })));
    assert.equal(breaker.retryAfterMs, 120_000);
  });

  it("Breaker's isFailureResult replaces the default", async () => {
    const breaker = new Breaker({ failureThreshold: 1, isFailureResult: () => false });
    await breaker.execute(() => Promise.resolve(reply(503)));
    assert.equal(breaker.state, "closed");
    const strict = new Breaker({
      failureThreshold: 1,
      isFailureResult: (r) => (r as Response).status >= 400,
    });
    await strict.execute(() => Promise.resolve(reply(404)));
    assert.equal(strict.state, "open");
  });

  it("isFailedResult() of the core marks failed responses when no isFailureResult is set", () => {
    const policy = createPolicy({});
    assert.equal(isFailedResult(policy, reply(500)), true);
    assert.equal(isFailedResult(policy, reply(429)), true);
    assert.equal(isFailedResult(policy, reply(200)), false);
    assert.equal(isFailedResult(policy, { status: 500 }), false, "only a Response");
  });
});
