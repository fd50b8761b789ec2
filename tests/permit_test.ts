import assert from "node:assert/strict";
import { Breaker, BreakerOpenError, BreakerPermit } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { manualClock } from "./manual_clock.ts";
import { recordEvents } from "./event_recorder.ts";

const down = new Error("down");

describe("Breaker.acquire()", () => {
  it("Breaker.acquire() returns a permit whose failure() counts like a failed call", () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    const first = breaker.acquire();
    assert.ok(first instanceof BreakerPermit);
    first.failure(down);
    assert.equal(breaker.failureCount, 1);
    breaker.acquire().failure(down);
    assert.equal(breaker.state, "open");
  });

  it("Breaker.acquire() throws BreakerOpenError while open, and listeners hear of it", () => {
    const recorded = recordEvents();
    const clock = manualClock(0);
    const breaker = new Breaker({
      failureThreshold: 1,
      clock,
      recoveryTimeout: 1_000,
      listeners: [recorded.listener],
    });
    const permit = breaker.acquire();
    clock.advance(5);
    permit.failure(down);
    assert.throws(
      () => breaker.acquire(),
      (error) => error instanceof BreakerOpenError && error.retryAfterMs === 1_000,
    );
    assert.deepEqual(recorded.lines(), [
      "beforeCall",
      "failure",
      "stateChange closed->open",
      "rejected open",
    ]);
    const [failure] = recorded.eventsOf("failure");
    assert.equal(failure?.error, down);
    assert.equal(failure?.durationMs, 5);
  });

  it("BreakerPermit reports one outcome: later ones are ignored", () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    const permit = breaker.acquire();
    permit.success();
    assert.equal(permit.settled, true);
    permit.failure(down);
    permit[Symbol.dispose]();
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 0);
  });

  it("BreakerPermit.failure() judges the error by the matchers", () => {
    class NotFound extends Error {}
    class Cancelled extends Error {}
    const breaker = new Breaker({ failureThreshold: 1, exclude: NotFound, ignore: Cancelled });
    breaker.acquire().failure(new NotFound());
    breaker.acquire().failure(new Cancelled());
    assert.equal(breaker.state, "closed");
    breaker.halfOpen();
    breaker.acquire().failure(new Cancelled());
    assert.equal(breaker.state, "half-open", "neutral: the trial slot came back");
    breaker.acquire().failure(new NotFound());
    assert.equal(breaker.state, "closed", "excluded: the dependency answered");
  });

  it("BreakerPermit disposed without an outcome is neutral and gives back the trial slot", () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    breaker.halfOpen();
    {
      using _permit = breaker.acquire();
      assert.throws(() => breaker.acquire(), BreakerOpenError, "the only trial slot is taken");
    }
    const trial = breaker.acquire();
    trial.success();
    assert.equal(breaker.state, "closed");
  });

  it("BreakerPermit of an older generation counts nothing", () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    const stale = breaker.acquire();
    breaker.open();
    breaker.close();
    stale.failure(down);
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 0);
  });

  it("BreakerPermit's failure with a 503 Response honours its Retry-After", () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 1_000, clock });
    breaker.acquire().failure(
      new Response(null, { status: 503, headers: { "retry-after": "30" } }),
    );
    assert.equal(breaker.retryAfterMs, 30_000);
  });

  it("BreakerPermit cannot be constructed directly", () => {
    assert.throws(() => new BreakerPermit(), {
      name: "TypeError",
      message: "Cannot create BreakerPermit: use breaker.acquire()",
    });
  });
});
