/**
 * Failures counted instead of recorded one by one (issue 21): the core's
 * `deferrableFailures` and `recordFailures` give the snapshot recording each failure would
 * have given, and a `Breaker` that defers failures reads, serializes, trips and changes
 * exactly as if it had not.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Breaker, type BreakerListener, type BreakerOptions } from "../mod.ts";
import {
  createPolicy,
  INITIAL_SNAPSHOT,
  isQuiet,
  open,
  type Policy,
  recordFailure,
  recordSuccess,
  sharePolicy,
  type Snapshot,
} from "../src/core/mod.ts";
import { deferrableFailures, recordFailures } from "../src/core/transitions.ts";
import { replayable } from "./fast_check_runs.ts";
import { deferred, manualClock } from "./manual_clock.ts";
import { describe, it } from "./timer_leaks.ts";

const silent = () => {};

/** Policies a failure may be deferred under, and some it may not (a window rule). */
const policyArb: fc.Arbitrary<Policy> = fc.oneof(
  fc.integer({ min: 1, max: 12 }).map((failureThreshold) =>
    createPolicy({ failureThreshold }, "test", silent)
  ),
  fc.constant(createPolicy({ failureThreshold: Infinity }, "test", silent)),
  fc.constant(
    createPolicy({ failureRate: 0.5, minimumCalls: 100, window: { calls: 200 } }, "test", silent),
  ),
);

/** One outcome of a history: failed or not, the time that passed before it. */
const outcome = fc.record({ failed: fc.boolean(), elapsed: fc.constantFrom(0, 1, 50) });

/** The snapshot after a history of outcomes recorded from `start`, and the time after it. */
function replay(
  policy: Policy,
  history: readonly { failed: boolean; elapsed: number }[],
  start: number,
): { snapshot: Snapshot; now: number } {
  let snapshot = INITIAL_SNAPSHOT;
  let now = start;
  for (const [i, { failed, elapsed }] of history.entries()) {
    now += elapsed;
    snapshot = failed
      ? recordFailure(policy, snapshot, snapshot.generation, new Error(`h${i}`), 0, now)
      : recordSuccess(policy, snapshot, snapshot.generation, 0, now);
  }
  return { snapshot, now };
}

describe("core deferred failures", () => {
  it("failures deferrableFailures() allows, recorded by recordFailures() with the last one, give the snapshot of recording each, and none trips", () => {
    fc.assert(
      fc.property(
        policyArb,
        fc.array(outcome, { maxLength: 30 }),
        fc.integer({ min: 1, max: 40 }),
        (policy, history, wanted) => {
          const { snapshot, now } = replay(policy, history, 5_000);
          const limit = deferrableFailures(policy, snapshot);
          const count = Math.min(limit, wanted);
          if (count === 0) return;
          const generation = snapshot.generation;
          let oneByOne = snapshot;
          let last: unknown;
          for (let i = 0; i < count; i++) {
            last = new Error(`deferred ${i}`);
            oneByOne = recordFailure(policy, oneByOne, generation, last, 0, now + i);
            assert.equal(oneByOne.state, "closed", "a deferred failure never trips");
            assert.equal(oneByOne.generation, generation);
          }
          assert.deepEqual(recordFailures(policy, snapshot, generation, count, last, 0), oneByOne);
        },
      ),
      replayable(500),
    );
  });

  it("recordFailures() gives the snapshot of as many recordFailure() with that failure, whatever the snapshot", () => {
    fc.assert(
      fc.property(
        policyArb,
        fc.array(outcome, { maxLength: 30 }),
        fc.integer({ min: 0, max: 15 }),
        fc.integer({ min: -1, max: 1 }),
        (policy, history, count, generationShift) => {
          const { snapshot, now } = replay(policy, history, 5_000);
          const generation = snapshot.generation + generationShift;
          const failure = new Error("each");
          let oneByOne = snapshot;
          for (let i = 0; i < count; i++) {
            oneByOne = recordFailure(policy, oneByOne, generation, failure, 0, now);
          }
          assert.deepEqual(
            recordFailures(policy, snapshot, generation, count, failure, now),
            oneByOne,
          );
        },
      ),
      replayable(300),
    );
  });

  it("deferrableFailures() is exact: the failure after them reaches the threshold", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 12 }),
        fc.array(outcome, { maxLength: 30 }),
        (failureThreshold, history) => {
          const policy = createPolicy({ failureThreshold }, "test", silent);
          const { snapshot, now } = replay(policy, history, 5_000);
          const limit = deferrableFailures(policy, snapshot);
          if (limit === 0) return;
          const next = recordFailures(policy, snapshot, snapshot.generation, limit, "x", now);
          assert.equal(next.state, "closed");
          assert.equal(
            recordFailure(policy, next, snapshot.generation, "y", 0, now).state,
            "open",
          );
        },
      ),
      replayable(200),
    );
  });

  it("deferrableFailures() is 0 where a failure changes more than the count and the last failure", () => {
    const policy = createPolicy({ failureThreshold: 5 }, "test", silent);
    assert.equal(deferrableFailures(policy, INITIAL_SNAPSHOT), 0, "no failure counted yet");
    assert.equal(isQuiet(policy, INITIAL_SNAPSHOT), true);
    const failed = recordFailure(policy, INITIAL_SNAPSHOT, 0, new Error("x"), 0, 0);
    assert.equal(deferrableFailures(policy, failed), 3);
    const fourth = recordFailures(policy, failed, 0, 3, new Error("x"), 0);
    assert.equal(deferrableFailures(policy, fourth), 0, "the next failure trips");
    const lower = createPolicy({ failureThreshold: 2 }, "test", silent);
    assert.equal(deferrableFailures(lower, fourth), 0, "a threshold lowered below the count");
    const opened = open(policy, failed, 0);
    assert.equal(deferrableFailures(policy, opened), 0, "open");
    assert.equal(deferrableFailures(policy, { ...failed, state: "half-open" }), 0, "half-open");
    const recovering = { ...failed, state: "recovering", rampStart: 0, rampUntil: 10 } as const;
    assert.equal(deferrableFailures(policy, recovering), 0, "a recovery ramp");
    assert.equal(deferrableFailures(policy, { ...failed, isolated: 1 }), 0, "isolated");
    assert.equal(deferrableFailures(sharePolicy(policy, "a"), failed), 0, "shared");
    const windowed = createPolicy({ failureRate: 0.5, window: { calls: 10 } }, "test", silent);
    const windowFailed = recordFailure(windowed, INITIAL_SNAPSHOT, 0, new Error("x"), 0, 0);
    assert.equal(deferrableFailures(windowed, windowFailed), 0, "a failure counts in the window");
  });
});

/** A breaker on a manual clock, with the options given. */
function breakerWith(options: BreakerOptions) {
  const clock = manualClock(1_000_000);
  return { clock, breaker: new Breaker({ clock, ...options }) };
}

const ok = () => 1;
/** A function that throws the error it is given, and that error. */
function thrower(label: string): { fn: () => never; error: Error } {
  const error = new Error(label);
  return {
    fn: () => {
      throw error;
    },
    error,
  };
}

describe("Breaker with deferred failures", () => {
  it("Breaker.failureCount, lastFailure, snapshot and toJSON() count every failure, the last one last", async () => {
    const { breaker, clock } = breakerWith({ failureThreshold: Infinity });
    for (let i = 0; i < 20; i++) assert.throws(() => breaker.executeSync(thrower(`s${i}`).fn));
    const last = new Error("async");
    for (let i = 0; i < 9; i++) {
      await assert.rejects(breaker.execute(() => Promise.reject(new Error(`a${i}`))));
    }
    await assert.rejects(breaker.execute(() => Promise.reject(last)));
    const early = breaker.snapshot;
    assert.equal(early.failureCount, 30);
    assert.equal(early.lastFailure, last);
    assert.equal(breaker.failureCount, 30);
    assert.equal(breaker.lastFailure, last);
    const later = thrower("later");
    assert.throws(() => breaker.executeSync(later.fn), later.error);
    assert.equal(early.failureCount, 30, "a snapshot handed out never changes");
    assert.equal(breaker.lastFailure, later.error);
    assert.equal(breaker.failureCount, 31);
    const restored = new Breaker({ clock, failureThreshold: 40, state: breaker.toJSON() });
    assert.equal(restored.failureCount, 31);
  });

  it("Breaker trips at the threshold after deferred failures, on the call that reaches it, rethrowing its error", async () => {
    const { breaker, clock } = breakerWith({ failureThreshold: 6, recoveryTimeout: 1_000 });
    for (let i = 0; i < 3; i++) assert.throws(() => breaker.executeSync(thrower("s").fn));
    for (let i = 0; i < 2; i++) {
      await assert.rejects(breaker.execute(() => Promise.reject(new Error("a"))));
    }
    assert.equal(breaker.state, "closed");
    clock.advance(10);
    const sixth = thrower("sixth");
    assert.throws(() => breaker.executeSync(sixth.fn), (error) => error === sixth.error);
    assert.equal(breaker.state, "open");
    assert.equal(breaker.failureCount, 6);
    assert.equal(breaker.lastFailure, sixth.error);
    assert.equal(breaker.openUntil, clock.now + 1_000);
  });

  it("Breaker resets the count at a success after deferred failures, and keeps the last failure", async () => {
    const { breaker } = breakerWith({ failureThreshold: 4 });
    const last = thrower("last");
    assert.throws(() => breaker.executeSync(thrower("first").fn));
    assert.throws(() => breaker.executeSync(thrower("second").fn));
    assert.throws(() => breaker.executeSync(last.fn));
    assert.equal(breaker.executeSync(ok), 1);
    assert.equal(breaker.failureCount, 0);
    assert.equal(breaker.lastFailure, last.error);
    // Three more, then a success through execute(): still closed, count reset again.
    for (let i = 0; i < 3; i++) assert.throws(() => breaker.executeSync(thrower("x").fn));
    assert.equal(await breaker.execute(() => Promise.resolve(2)), 2);
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 0);
    for (let i = 0; i < 3; i++) assert.throws(() => breaker.executeSync(thrower("y").fn));
    assert.equal(breaker.state, "closed");
    assert.throws(() => breaker.executeSync(thrower("z").fn));
    assert.equal(breaker.state, "open", "four in a row after the success");
  });

  it("Breaker resets the count at a success that settles after deferred failures, admitted before them", async () => {
    const { breaker } = breakerWith({ failureThreshold: 5 });
    assert.throws(() => breaker.executeSync(thrower("first").fn));
    const pending = deferred<number>();
    const call = breaker.execute(() => pending.promise);
    for (let i = 0; i < 3; i++) assert.throws(() => breaker.executeSync(thrower("x").fn));
    pending.resolve(1);
    assert.equal(await call, 1);
    assert.equal(breaker.failureCount, 0);
    for (let i = 0; i < 4; i++) assert.throws(() => breaker.executeSync(thrower("y").fn));
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.open() after deferred failures keeps their count and gives recoveryTimeout the last one", () => {
    const seen: unknown[] = [];
    const { breaker } = breakerWith({
      failureThreshold: Infinity,
      recoveryTimeout: ({ lastFailure }) => {
        seen.push(lastFailure);
        return 500;
      },
    });
    const last = thrower("last");
    for (let i = 0; i < 4; i++) assert.throws(() => breaker.executeSync(thrower(`${i}`).fn));
    assert.throws(() => breaker.executeSync(last.fn));
    breaker.open();
    assert.deepEqual(seen, [last.error]);
    assert.equal(breaker.failureCount, 5);
    assert.equal(breaker.lastFailure, last.error);
  });

  it("Breaker.halfOpen() and close() after deferred failures keep the count and the last failure as recorded ones", () => {
    const { breaker } = breakerWith({ failureThreshold: Infinity });
    const last = thrower("last");
    for (let i = 0; i < 3; i++) assert.throws(() => breaker.executeSync(thrower(`${i}`).fn));
    assert.throws(() => breaker.executeSync(last.fn));
    breaker.halfOpen();
    assert.equal(breaker.failureCount, 4);
    const trial = thrower("trial");
    assert.throws(() => breaker.executeSync(trial.fn), trial.error);
    assert.equal(breaker.state, "open");
    assert.equal(breaker.failureCount, 5, "a failed trial adds to the count");
    breaker.close();
    for (let i = 0; i < 3; i++) assert.throws(() => breaker.executeSync(thrower(`${i}`).fn));
    const closedLast = thrower("closed last");
    assert.throws(() => breaker.executeSync(closedLast.fn));
    breaker.close();
    assert.equal(breaker.failureCount, 0);
    assert.equal(breaker.lastFailure, closedLast.error, "close() keeps the last failure");
  });

  it("Breaker.isolate() and configure() keep the deferred failures", () => {
    const { breaker } = breakerWith({ failureThreshold: 10 });
    for (let i = 0; i < 4; i++) assert.throws(() => breaker.executeSync(thrower(`${i}`).fn));
    {
      using _hold = breaker.isolate();
      assert.equal(breaker.failureCount, 4);
    }
    // Releasing the last hold closes the circuit: the count starts again.
    assert.equal(breaker.failureCount, 0);
    for (let i = 0; i < 4; i++) assert.throws(() => breaker.executeSync(thrower(`${i}`).fn));
    breaker.configure({ failureThreshold: 5 });
    assert.equal(breaker.state, "closed");
    assert.throws(() => breaker.executeSync(thrower("fifth").fn));
    assert.equal(breaker.state, "open", "the fifth failure under the new threshold");
  });

  it("Breaker tells listeners of every failure, counted in failureCount", async () => {
    const seen: [number, unknown][] = [];
    const listener: BreakerListener = {
      failure: ({ breaker, error }) => seen.push([breaker.failureCount, error]),
    };
    const { breaker } = breakerWith({ failureThreshold: Infinity, listeners: [listener] });
    const errors = [thrower("a"), thrower("b"), thrower("c")];
    for (const { fn } of errors) assert.throws(() => breaker.executeSync(fn));
    const rejected = new Error("d");
    await assert.rejects(breaker.execute(() => Promise.reject(rejected)));
    assert.deepEqual(seen, [
      [1, errors[0]?.error],
      [2, errors[1]?.error],
      [3, errors[2]?.error],
      [4, rejected],
    ]);
  });

  it("Breaker.execute() tells a listener added while failures are deferred of the call", async () => {
    const { breaker } = breakerWith({ failureThreshold: Infinity });
    for (let i = 0; i < 3; i++) {
      await assert.rejects(breaker.execute(() => Promise.reject(new Error("a"))));
    }
    const seen: string[] = [];
    breaker.addListener({
      beforeCall: () => seen.push("beforeCall"),
      failure: ({ breaker }) => seen.push(`failure ${breaker.failureCount}`),
    });
    await assert.rejects(breaker.execute(() => Promise.reject(new Error("b"))));
    assert.deepEqual(seen, ["beforeCall", "failure 4"]);
  });

  it("Breaker ignores a failure of an older generation while failures are deferred", async () => {
    const { breaker } = breakerWith({ failureThreshold: Infinity });
    assert.throws(() => breaker.executeSync(thrower("first").fn));
    const pending = deferred<number>();
    const call = breaker.execute(() => pending.promise);
    assert.throws(() => breaker.executeSync(thrower("second").fn));
    breaker.open();
    breaker.close();
    assert.throws(() => breaker.executeSync(thrower("new generation").fn));
    pending.reject(new Error("late"));
    await assert.rejects(call, /late/);
    assert.equal(breaker.failureCount, 1);
    assert.equal((breaker.lastFailure as Error).message, "new generation");
  });
});
