/**
 * Successes counted instead of recorded one by one (issue 21): the core's
 * `deferrableSuccesses`, `isDeferrableSuccess`, `defersSuccess`, `recordSuccesses` and
 * `recordCalls` give the snapshot recording each success would have given, and a `Breaker`
 * that defers successes reads, serializes, judges and changes exactly as if it had not.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import { Breaker, type BreakerListener, type BreakerOptions, type WindowStats } from "../mod.ts";
import {
  createPolicy,
  INITIAL_SNAPSHOT,
  type Policy,
  recordCall,
  recordFailure,
  recordSuccess,
  type Snapshot,
  type WindowPolicy,
  type WindowState,
} from "../src/core/mod.ts";
import {
  deferrableSuccesses,
  defersSuccess,
  isDeferrableSuccess,
  recordSuccesses,
} from "../src/core/transitions.ts";
import { recordCalls, windowToJSON } from "../src/core/window.ts";
import { replayable } from "./fast_check_runs.ts";
import { deferred, manualClock } from "./manual_clock.ts";
import { describe, it } from "./timer_leaks.ts";

const silent = () => {};

/**
 * A count window as the outcomes it holds, in order (`windowToJSON`), with its counts: two
 * windows holding the same outcomes are the same window, however their chunks are laid out
 * (a run of `limit` outcomes or more is built from empty).
 */
function outcomesOf(window: WindowState | undefined): unknown {
  if (window?.kind !== "calls") return window;
  const { calls, failures, slowCalls } = window;
  return { ...windowToJSON(window), calls, failures, slowCalls };
}

/** A snapshot with its count window as its outcomes (see `outcomesOf`). */
function withOutcomes(snapshot: Snapshot): unknown {
  return { ...snapshot, window: outcomesOf(snapshot.window) };
}

/** Window rules of every kind the options allow (a rate rule, or both, or `shouldTrip`). */
const windowOptions = fc.record({
  window: fc.oneof(
    fc.integer({ min: 1, max: 20 }).map((calls) => ({ calls })),
    fc.record({
      duration: fc.integer({ min: 10, max: 1_000 }),
      buckets: fc.integer({ min: 1, max: 10 }),
    }),
  ),
  minimumCalls: fc.integer({ min: 1, max: 12 }),
  failureRate: fc.option(fc.double({ min: 0.05, max: 1, noNaN: true }), { nil: undefined }),
  slowCallRate: fc.option(fc.double({ min: 0.05, max: 1, noNaN: true }), { nil: undefined }),
  shouldTrip: fc.constantFrom(undefined, (stats: WindowStats) => stats.failures >= 3),
});

/** The policy of generated window options (a failure rate of 0.5 when no rule was drawn). */
function policyOf(options: typeof windowOptions extends fc.Arbitrary<infer T> ? T : never): Policy {
  const { window, minimumCalls, failureRate, slowCallRate, shouldTrip } = options;
  return createPolicy(
    {
      window,
      minimumCalls: "calls" in window ? Math.min(minimumCalls, window.calls) : minimumCalls,
      ...(failureRate === undefined && slowCallRate === undefined && shouldTrip === undefined
        ? { failureRate: 0.5 }
        : {}),
      ...(failureRate === undefined ? {} : { failureRate }),
      ...(slowCallRate === undefined ? {} : { slowCallRate, slowCallDuration: 10 }),
      ...(shouldTrip === undefined ? {} : { shouldTrip }),
    },
    "test",
    silent,
  );
}

/** One outcome of a history: failed or not, its duration, the time that passed before it. */
const outcome = fc.record({
  failed: fc.boolean(),
  durationMs: fc.constantFrom(0, 5, 50),
  elapsed: fc.constantFrom(0, 0, 0, 1, 7, 60, 400),
});

/** The snapshot after a history of outcomes recorded from `start`, and the time after it. */
function replay(
  policy: Policy,
  history: readonly { failed: boolean; durationMs: number; elapsed: number }[],
  start: number,
): { snapshot: Snapshot; now: number } {
  let snapshot = INITIAL_SNAPSHOT;
  let now = start;
  for (const { failed, durationMs, elapsed } of history) {
    now += elapsed;
    snapshot = failed
      ? recordFailure(policy, snapshot, snapshot.generation, new Error("x"), durationMs, now)
      : recordSuccess(policy, snapshot, snapshot.generation, durationMs, now);
  }
  return { snapshot, now };
}

describe("core deferred successes", () => {
  it("recordCalls() records any number of calls in a count window in steps bounded by its size", () => {
    // One step per call would not finish: 2^40 of them.
    const policy: WindowPolicy = { kind: "calls", calls: 5 };
    const window = recordCall(policy, undefined, 0, true, false);
    const full = recordCalls(policy, window, 0, false, false, 2 ** 40);
    assert.deepEqual(outcomesOf(full), {
      kind: "calls",
      outcomes: "00000",
      calls: 5,
      failures: 0,
      slowCalls: 0,
    });
  });

  it("recordCalls() gives the window of as many recordCall() in a row", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: 1, max: 40 }).map((calls): WindowPolicy => ({ kind: "calls", calls })),
          fc.integer({ min: 1, max: 6 }).map((buckets): WindowPolicy => ({
            kind: "time",
            duration: buckets * 100,
            buckets,
            bucketMs: 100,
          })),
        ),
        fc.array(fc.tuple(fc.boolean(), fc.boolean(), fc.integer({ min: 0, max: 150 })), {
          maxLength: 60,
        }),
        fc.boolean(),
        fc.boolean(),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: -50, max: 300 }),
        (policy, history, failed, slow, count, elapsed) => {
          let window: WindowState | undefined;
          let now = 10_000;
          for (const [f, s, dt] of history) {
            now += dt;
            window = recordCall(policy, window, now, f, s);
          }
          now += elapsed;
          let oneByOne = window;
          for (let i = 0; i < count; i++) {
            oneByOne = recordCall(policy, oneByOne, now, failed, slow);
          }
          assert.deepEqual(
            outcomesOf(recordCalls(policy, window, now, failed, slow, count)),
            outcomesOf(oneByOne),
          );
        },
      ),
      replayable(300),
    );
  });

  it("successes defersSuccess() accepts, recorded by recordSuccesses() at the first one's time, give the snapshot of recording each, and none trips", () => {
    fc.assert(
      fc.property(
        windowOptions,
        fc.array(outcome, { maxLength: 40 }),
        fc.array(
          fc.record({
            durationMs: fc.constantFrom(0, 3, 50),
            elapsed: fc.constantFrom(0, 0, 0, 1, 30, 250),
          }),
          { minLength: 1, maxLength: 40 },
        ),
        (options, history, successes) => {
          const policy = policyOf(options);
          const { snapshot, now: start } = replay(policy, history, 5_000);
          const generation = snapshot.generation;
          let oneByOne = snapshot;
          let deferred = 0;
          let now = start;
          let first = start;
          for (const { durationMs, elapsed } of successes) {
            now += elapsed;
            if (!defersSuccess(policy, snapshot, deferred, durationMs, now)) break;
            if (deferred === 0) first = now;
            oneByOne = recordSuccess(policy, oneByOne, generation, durationMs, now);
            deferred += 1;
            assert.equal(oneByOne.state, "closed", "a deferred success never trips");
            assert.equal(oneByOne.generation, generation);
          }
          if (deferred === 0) return;
          assert.deepEqual(
            withOutcomes(recordSuccesses(policy, snapshot, generation, deferred, first)),
            withOutcomes(oneByOne),
          );
        },
      ),
      replayable(500),
    );
  });

  it("recordSuccesses() gives the snapshot of as many recordSuccess() in a row, whatever the snapshot", () => {
    fc.assert(
      fc.property(
        windowOptions,
        fc.array(outcome, { maxLength: 40 }),
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: -1, max: 1 }),
        fc.constantFrom(0, 1, 700),
        (options, history, count, generationShift, elapsed) => {
          const policy = policyOf(options);
          const { snapshot, now } = replay(policy, history, 5_000);
          const generation = snapshot.generation + generationShift;
          let oneByOne = snapshot;
          for (let i = 0; i < count; i++) {
            oneByOne = recordSuccess(policy, oneByOne, generation, 0, now + elapsed);
          }
          assert.deepEqual(
            withOutcomes(recordSuccesses(policy, snapshot, generation, count, now + elapsed)),
            withOutcomes(oneByOne),
          );
        },
      ),
      replayable(300),
    );
  });

  it("deferrableSuccesses() of a time window is exact: the next success in the bucket trips", () => {
    fc.assert(
      fc.property(
        windowOptions.filter((options) => !("calls" in options.window)),
        fc.array(outcome, { maxLength: 40 }),
        (options, history) => {
          const policy = policyOf(options);
          const { snapshot, now } = replay(policy, history, 5_000);
          const limit = deferrableSuccesses(policy, snapshot);
          if (limit === 0 || limit === Infinity) return;
          let next = snapshot;
          for (let i = 0; i < limit; i++) {
            next = recordSuccess(policy, next, snapshot.generation, 0, now);
          }
          assert.equal(next.state, "closed");
          assert.equal(recordSuccess(policy, next, snapshot.generation, 0, now).state, "open");
        },
      ),
      replayable(300),
    );
  });

  it("deferrableSuccesses() is 0 where a success changes more than the window's counts", () => {
    const rate = createPolicy({ failureRate: 0.5, window: { calls: 10 } }, "test", silent);
    const started = recordSuccess(rate, INITIAL_SNAPSHOT, 0, 0, 0);
    assert.equal(deferrableSuccesses(rate, started), Infinity);
    assert.equal(deferrableSuccesses(rate, INITIAL_SNAPSHOT), 0, "no window yet");
    const failed = recordFailure(rate, started, 0, new Error("x"), 0, 0);
    assert.equal(deferrableSuccesses(rate, failed), 0, "a failure is counted");
    const recovering = { ...started, state: "recovering", rampStart: 0, rampUntil: 10 } as const;
    assert.equal(deferrableSuccesses(rate, recovering), 0, "a recovery ramp");
    assert.equal(deferrableSuccesses(rate, { ...started, isolated: 1 }), 0, "isolated");
    const judged = createPolicy(
      { failureRate: 0.5, window: { calls: 10 }, shouldTrip: () => false },
      "test",
      silent,
    );
    assert.equal(deferrableSuccesses(judged, started), 0, "shouldTrip judges every success");
    assert.equal(deferrableSuccesses(createPolicy({}), INITIAL_SNAPSHOT), 0, "no window rule");
  });

  it("isDeferrableSuccess() refuses a slow success and one past a time window's bucket", () => {
    const slowRule = createPolicy(
      { slowCallRate: 0.5, slowCallDuration: 10, window: { calls: 10 } },
      "test",
      silent,
    );
    const started = recordSuccess(slowRule, INITIAL_SNAPSHOT, 0, 0, 0);
    assert.equal(isDeferrableSuccess(slowRule, started, 10, 0), true);
    assert.equal(isDeferrableSuccess(slowRule, started, 11, 0), false);
    const timed = createPolicy(
      { failureRate: 0.5, window: { duration: 1_000, buckets: 10 } },
      "test",
      silent,
    );
    const inBucket = recordSuccess(timed, INITIAL_SNAPSHOT, 0, 0, 1_250);
    assert.equal(isDeferrableSuccess(timed, inBucket, 0, 1_299), true);
    assert.equal(isDeferrableSuccess(timed, inBucket, 0, 1_100), true, "a clock set back");
    assert.equal(isDeferrableSuccess(timed, inBucket, 0, 1_300), false);
  });
});

/** A breaker on a manual clock, with the options given. */
function breakerWith(options: BreakerOptions) {
  const clock = manualClock(1_000_000);
  return { clock, breaker: new Breaker({ clock, ...options }) };
}

const ok = () => 1;
const boom = () => {
  throw new Error("down");
};

describe("Breaker with deferred successes", () => {
  for (
    const window of [{ calls: 50 }, { duration: 60_000, buckets: 10 }] as const
  ) {
    const kind = "calls" in window ? "count window" : "time window";

    it(`Breaker.snapshot, stats and toJSON() count every success (${kind})`, async () => {
      const { breaker, clock } = breakerWith({ failureRate: 0.5, window });
      for (let i = 0; i < 30; i++) breaker.executeSync(ok);
      for (let i = 0; i < 10; i++) await breaker.execute(() => Promise.resolve(1));
      const early = breaker.snapshot;
      assert.equal(early.window?.calls, 40);
      assert.equal(breaker.stats.calls, 40);
      breaker.executeSync(ok);
      assert.equal(early.window?.calls, 40, "a snapshot handed out never changes");
      assert.equal(breaker.stats.calls, 41);
      const restored = new Breaker({ clock, failureRate: 0.5, window, state: breaker.toJSON() });
      assert.equal(restored.stats.calls, 41);
    });

    it(`Breaker judges a failure against every success before it (${kind})`, () => {
      const { breaker } = breakerWith({ failureRate: 0.5, minimumCalls: 10, window });
      for (let i = 0; i < 5; i++) breaker.executeSync(ok);
      for (let i = 0; i < 4; i++) assert.throws(() => breaker.executeSync(boom));
      assert.equal(breaker.state, "closed");
      assert.throws(() => breaker.executeSync(boom), /down/);
      assert.equal(breaker.state, "open", "5 failures in 10 calls");
    });

    it(`Breaker.isolate() keeps the successes counted before it (${kind})`, () => {
      const { breaker } = breakerWith({ failureRate: 0.5, window });
      for (let i = 0; i < 12; i++) breaker.executeSync(ok);
      using _hold = breaker.isolate();
      assert.equal(breaker.stats.calls, 12);
      assert.equal(breaker.snapshot.window?.calls, 12);
    });

    it(`Breaker.configure() keeps the successes counted before it, judged by the old rules (${kind})`, () => {
      const { breaker } = breakerWith({ failureRate: 0.5, minimumCalls: 10, window });
      assert.throws(() => breaker.executeSync(boom));
      for (let i = 0; i < 8; i++) breaker.executeSync(ok);
      // Under the new rules, 1 failure in 3 calls would have tripped: these 8 came before them.
      breaker.configure({ failureRate: 0.1, minimumCalls: 3 });
      assert.equal(breaker.state, "closed");
      assert.equal(breaker.stats.calls, 9);
      assert.equal(breaker.stats.failures, 1);
    });

    it(`Breaker trips on the success that brings the window to minimumCalls, from the clock's time (${kind})`, () => {
      const { breaker, clock } = breakerWith({
        failureRate: 0.25,
        minimumCalls: 4,
        recoveryTimeout: 1_000,
        window,
      });
      assert.throws(() => breaker.executeSync(boom));
      for (let i = 0; i < 2; i++) breaker.executeSync(ok);
      assert.equal(breaker.state, "closed", "1 failure in 3 calls: below minimumCalls");
      clock.advance(10);
      breaker.executeSync(ok);
      assert.equal(breaker.state, "open", "1 failure in 4 calls");
      assert.equal(breaker.openUntil, clock.now + 1_000);
    });

    it(`Breaker tells listeners of every success, the success counted in stats (${kind})`, () => {
      const seen: number[] = [];
      const listener: BreakerListener = {
        success: ({ breaker }) => seen.push(breaker.stats.calls),
      };
      const { breaker } = breakerWith({ failureRate: 0.5, window, listeners: [listener] });
      for (let i = 0; i < 5; i++) breaker.executeSync(ok);
      assert.deepEqual(seen, [1, 2, 3, 4, 5]);
    });

    it(`Breaker.open() and close() after deferred successes clear the window (${kind})`, () => {
      const { breaker } = breakerWith({ failureRate: 0.5, window });
      for (let i = 0; i < 8; i++) breaker.executeSync(ok);
      breaker.open();
      assert.equal(breaker.stats.calls, 0);
      breaker.close();
      for (let i = 0; i < 3; i++) breaker.executeSync(ok);
      breaker.close();
      assert.equal(breaker.stats.calls, 0);
      breaker.executeSync(ok);
      assert.equal(breaker.stats.calls, 1);
    });
  }

  it("Breaker counts a time window's successes in the bucket of their own time", () => {
    const { breaker, clock } = breakerWith({
      failureRate: 0.5,
      window: { duration: 1_000, buckets: 10 },
    });
    for (let i = 0; i < 5; i++) breaker.executeSync(ok);
    clock.advance(600);
    for (let i = 0; i < 3; i++) breaker.executeSync(ok);
    assert.equal(breaker.stats.calls, 8);
    clock.advance(500); // the first five's bucket has left the window
    assert.equal(breaker.stats.calls, 3);
  });

  it("Breaker counts a success in the next bucket there, after later ones in the bucket before", () => {
    const { breaker, clock } = breakerWith({
      failureRate: 0.5,
      window: { duration: 1_000, buckets: 10 },
    });
    breaker.executeSync(ok); // 1_000_000: the first of bucket 10_000
    for (let i = 0; i < 3; i++) {
      clock.advance(33); // up to 1_000_099, the same bucket
      breaker.executeSync(ok);
    }
    clock.advance(1); // 1_000_100: bucket 10_001
    breaker.executeSync(ok);
    breaker.executeSync(ok);
    assert.equal(breaker.stats.calls, 6);
    clock.advance(1_000); // 1_001_100: bucket 10_000 has left the window, 10_001 has not
    assert.equal(breaker.stats.calls, 2);
  });

  it("Breaker.execute() tells a listener added while successes are deferred of the call", async () => {
    const { breaker } = breakerWith({
      failureRate: 0.5,
      window: { duration: 60_000, buckets: 10 },
    });
    for (let i = 0; i < 3; i++) await breaker.execute(() => Promise.resolve(1));
    const seen: string[] = [];
    breaker.addListener({
      beforeCall: () => seen.push("beforeCall"),
      success: () => seen.push("success"),
    });
    assert.equal(await breaker.execute(() => Promise.resolve(2)), 2);
    assert.deepEqual(seen, ["beforeCall", "success"]);
    assert.equal(breaker.stats.calls, 4);
  });

  for (
    const window of [{ calls: 50 }, { duration: 60_000, buckets: 10 }] as const
  ) {
    const kind = "calls" in window ? "count window" : "time window";

    it(`Breaker.execute() after deferred successes follows the options and the signal given since (${kind})`, async () => {
      const { breaker, clock } = breakerWith({ failureRate: 0.5, window });
      const one = () => Promise.resolve(1);
      for (let i = 0; i < 3; i++) await breaker.execute(one);
      const reason = new Error("gone");
      let called = false;
      const aborted = breaker.execute(() => {
        called = true;
        return one();
      }, { signal: AbortSignal.abort(reason) });
      await assert.rejects(aborted, (error) => error === reason);
      assert.equal(called, false);
      breaker.configure({ slowCallRate: 0.5, slowCallDuration: 100 });
      const slow = deferred<number>();
      const settled = breaker.execute(() => slow.promise);
      clock.advance(150);
      slow.resolve(2);
      assert.equal(await settled, 2);
      await breaker.execute(one);
      assert.deepEqual([breaker.stats.calls, breaker.stats.slowCalls], [5, 1]);
      breaker.configure({ mode: "off" });
      await breaker.execute(one);
      breaker.configure({ mode: "enforce" });
      assert.equal(breaker.stats.calls, 5, "a call while off counts nowhere");
    });
  }

  it("Breaker.execute() counts every kind of outcome while successes are deferred, as elsewhere", async () => {
    const { breaker } = breakerWith({
      failureRate: 0.9,
      window: { duration: 60_000, buckets: 10 },
    });
    for (let i = 0; i < 3; i++) await breaker.execute(() => Promise.resolve(1));
    assert.equal(await breaker.execute(() => 7), 7);
    const thenable = { then: (resolve: (value: number) => void) => resolve(8) };
    assert.equal(await breaker.execute(() => thenable as unknown as PromiseLike<number>), 8);
    const error = new Error("down");
    await assert.rejects(
      breaker.execute(() => {
        throw error;
      }),
      (thrown) => thrown === error,
    );
    const failed = new Response(null, { status: 503 });
    assert.equal(await breaker.execute(() => Promise.resolve(failed)), failed);
    assert.deepEqual([breaker.stats.calls, breaker.stats.failures], [7, 2]);
  });

  it("Breaker.execute() asks isFailureResult once per result while successes are deferred", async () => {
    const seen: unknown[] = [];
    const { breaker } = breakerWith({
      failureRate: 0.5,
      window: { duration: 60_000, buckets: 10 },
      isFailureResult: (result) => {
        seen.push(result);
        return result === "bad";
      },
    });
    for (let i = 0; i < 4; i++) await breaker.execute(() => Promise.resolve(i));
    await breaker.execute(() => Promise.resolve("bad"));
    assert.deepEqual(seen, [0, 1, 2, 3, "bad"]);
    assert.deepEqual([breaker.stats.calls, breaker.stats.failures], [5, 1]);
  });

  it("Breaker.execute() ignores a success deferred onto a generation the circuit has left", async () => {
    const { breaker } = breakerWith({
      failureRate: 0.5,
      window: { duration: 60_000, buckets: 10 },
    });
    for (let i = 0; i < 3; i++) await breaker.execute(() => Promise.resolve(1));
    const late = deferred<number>();
    const call = breaker.execute(() => late.promise);
    breaker.open();
    breaker.close();
    late.resolve(3);
    assert.equal(await call, 3);
    assert.equal(breaker.stats.calls, 0, "the late success belongs to an older generation");
    await breaker.execute(() => Promise.resolve(2));
    assert.equal(breaker.stats.calls, 1);
  });

  it("Breaker counts a slow success as slow, between deferred ones", () => {
    const { breaker, clock } = breakerWith({
      slowCallRate: 0.5,
      slowCallDuration: 100,
      minimumCalls: 4,
      window: { calls: 10 },
    });
    for (let i = 0; i < 3; i++) breaker.executeSync(ok);
    breaker.executeSync(() => {
      clock.advance(150);
      return 1;
    });
    assert.deepEqual({ ...breaker.stats }, {
      calls: 4,
      failures: 0,
      slowCalls: 1,
      failureRate: 0,
      slowCallRate: 0.25,
    });
  });
});

describe("Breaker with deferred successes, calls admitted under other options", () => {
  it("Breaker counts a success admitted under a count window, settled under a time window, at its own time", async () => {
    const { breaker, clock } = breakerWith({ failureRate: 0.5, window: { calls: 50 } });
    const pending = deferred<number>();
    const call = breaker.execute(() => pending.promise);
    breaker.configure({ window: { duration: 1_000, buckets: 10 } });
    for (let i = 0; i < 3; i++) breaker.executeSync(ok);
    clock.advance(500);
    pending.resolve(1);
    await call;
    clock.advance(600); // the three's bucket has left the window; the late success's has not
    assert.equal(breaker.stats.calls, 1);
  });
});
