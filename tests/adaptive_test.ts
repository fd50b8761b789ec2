/**
 * Adaptive tripping: the rate rules over count and time windows, slow calls, shouldTrip,
 * recoveryTimeout functions and exponentialBackoff, the recovery ramp, Retry-After, and
 * configure() with windows. Every time comes from a manual clock.
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Breaker,
  BreakerOpenError,
  type BreakerOptions,
  exponentialBackoff,
  type RecoveryContext,
  type RecoveryTimeout,
  type SnapshotJSON,
  type WindowStats,
} from "../mod.ts";
import {
  admit,
  createPolicy,
  INITIAL_SNAPSHOT,
  isRejection,
  rampShare,
  recordCall,
  type Snapshot,
  type WindowPolicy,
  type WindowState,
  windowStats,
} from "../src/core/mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { deferred, flush, type ManualClock, manualClock } from "./manual_clock.ts";
import { captureConsole } from "./console_capture.ts";
import { recordEvents } from "./event_recorder.ts";

// ------------------------------------------------------------------------------- helpers

type Outcome = "S" | "F";
type Result = "ok" | "failed" | "rejected";

const FAILED = 1;
const SLOW = 2;

/** The stats a window with these counts must report. */
function statsOf(calls: number, failures: number, slowCalls: number): WindowStats {
  return {
    calls,
    failures,
    slowCalls,
    failureRate: calls === 0 ? 0 : failures / calls,
    slowCallRate: calls === 0 ? 0 : slowCalls / calls,
  };
}

const EMPTY = statsOf(0, 0, 0);

/** Stats of a list of outcome codes (bit 1 failed, bit 2 slow), as a plain model. */
function statsOfCodes(codes: readonly number[]): WindowStats {
  let failures = 0;
  let slowCalls = 0;
  for (const code of codes) {
    if ((code & FAILED) !== 0) failures++;
    if ((code & SLOW) !== 0) slowCalls++;
  }
  return statsOf(codes.length, failures, slowCalls);
}

/** One call through execute() that takes `ms` on the clock, then fails or succeeds. */
async function call(
  breaker: Breaker,
  clock: ManualClock,
  outcome: Outcome,
  ms = 0,
  error: unknown = new Error("down"),
): Promise<Result> {
  try {
    await breaker.execute(() => {
      clock.advance(ms);
      return outcome === "F" ? Promise.reject(error) : Promise.resolve("value");
    });
    return "ok";
  } catch (thrown) {
    return thrown instanceof BreakerOpenError ? "rejected" : "failed";
  }
}

/** Runs a pattern like "FFSS" and returns the state read after each call. */
async function run(breaker: Breaker, clock: ManualClock, pattern: string): Promise<string[]> {
  const states: string[] = [];
  for (const outcome of pattern) {
    await call(breaker, clock, outcome as Outcome);
    states.push(breaker.state);
  }
  return states;
}

/** One call through executeSync() that takes `ms` on the clock. */
function callSync(breaker: Breaker, clock: ManualClock, failed: boolean, ms: number): Result {
  try {
    breaker.executeSync(() => {
      clock.advance(ms);
      if (failed) throw new Error("down");
      return "value";
    });
    return "ok";
  } catch (thrown) {
    return thrown instanceof BreakerOpenError ? "rejected" : "failed";
  }
}

/** A Response, optionally with a Retry-After header. */
function reply(status: number, retryAfter?: string): Response {
  const headers: Record<string, string> = retryAfter === undefined
    ? {}
    : { "retry-after": retryAfter };
  return new Response(null, { status, headers });
}

// ----------------------------------------------------------------- count-window model

interface CountCase {
  readonly size: number;
  readonly minimumCalls: number;
  readonly failureRate: number | undefined;
  readonly slowCallRate: number;
  /** Outcome codes: bit 1 failed, bit 2 slow. */
  readonly codes: readonly number[];
}

/**
 * Drives a breaker with a count window through `codes` and compares, after every call, its
 * stats, the stats shouldTrip received and the trip decision with a plain array model. A
 * trip empties the window; the test closes the circuit by hand and the model starts over.
 */
function checkCountWindow(c: CountCase): void {
  const clock = manualClock(0);
  let judged: WindowStats | undefined;
  const breaker = new Breaker({
    clock,
    window: { calls: c.size },
    minimumCalls: c.minimumCalls,
    ...(c.failureRate === undefined ? {} : { failureRate: c.failureRate }),
    slowCallRate: c.slowCallRate,
    slowCallDuration: 10,
    shouldTrip: (stats) => {
      judged = stats;
      return false;
    },
  });
  let model: number[] = [];
  c.codes.forEach((code, i) => {
    judged = undefined;
    const failed = (code & FAILED) !== 0;
    // 10 ms is exactly slowCallDuration (not slow); 11 ms is slow.
    const result = callSync(breaker, clock, failed, (code & SLOW) !== 0 ? 11 : 10);
    model.push(code);
    if (model.length > c.size) model.shift();
    const expected = statsOfCodes(model);
    const trips = expected.calls >= c.minimumCalls &&
      ((c.failureRate !== undefined && expected.failureRate >= c.failureRate) ||
        expected.slowCallRate >= c.slowCallRate);
    const where = `call #${i} (code ${code}), window ${c.size}, minimumCalls ${c.minimumCalls}`;
    assert.equal(result, failed ? "failed" : "ok", where);
    if (trips) {
      assert.equal(breaker.state, "open", where);
      assert.deepEqual(breaker.stats, EMPTY, where);
      breaker.close();
      model = [];
    } else {
      assert.equal(breaker.state, "closed", where);
      assert.deepEqual(breaker.stats, expected, where);
      assert.deepEqual(judged, expected, where);
    }
  });
}

/** Outcome codes, mostly fast successes so that large windows fill up before a trip. */
const outcomeCode: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.constant(0), weight: 6 },
  { arbitrary: fc.constant(FAILED), weight: 2 },
  { arbitrary: fc.constant(SLOW), weight: 1 },
  { arbitrary: fc.constant(FAILED | SLOW), weight: 1 },
);

const WINDOW_SIZES = [1, 14, 15, 16, 31, 100] as const;

// ------------------------------------------------------------------------------ tests

describe("Breaker failureRate over a count window", () => {
  it("Breaker reads no clock for a success that cannot trip a count window's failure rate", async () => {
    let reads = 0;
    const now = 1_000;
    const breaker = new Breaker({
      clock: () => (reads++, now),
      failureRate: 0.5,
      minimumCalls: 4,
      window: { calls: 4 },
    });
    const before = reads;
    for (let i = 0; i < 10; i++) await breaker.execute(() => Promise.resolve(i));
    assert.equal(reads, before, "ten successes in a count window, no clock read");
    assert.deepEqual(breaker.stats, statsOf(4, 0, 0));
  });

  it("Breaker opens from the time of the success that brings the failure rate to its threshold", async () => {
    let now = 1_000;
    const breaker = new Breaker({
      clock: () => now,
      failureRate: 0.5,
      minimumCalls: 4,
      recoveryTimeout: 10_000,
      window: { calls: 10 },
    });
    for (const fails of [true, true, false]) {
      await breaker.execute(() => fails ? Promise.reject(new Error("down")) : Promise.resolve(1))
        .catch(() => {});
    }
    assert.equal(breaker.state, "closed", "3 calls: below minimumCalls");
    now = 5_000;
    await breaker.execute(() => Promise.resolve(1)); // 2 of 4: the success trips the rule
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 15_000, "open from the success's time, not from 0");
  });

  it("Breaker failureRate trips at exactly failures / calls >= rate once minimumCalls is reached", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 4,
      window: { calls: 4 },
    });
    assert.deepEqual(await run(breaker, clock, "SFS"), ["closed", "closed", "closed"]);
    assert.deepEqual(breaker.stats, statsOf(3, 1, 0));
    const error = new Error("second failure");
    await assert.rejects(breaker.execute(() => Promise.reject(error)), (e) => e === error);
    assert.equal(breaker.state, "open", "2 / 4 >= 0.5 opens the circuit");
    await assert.rejects(breaker.execute(() => Promise.resolve(1)), BreakerOpenError);
  });

  it("Breaker failureRate compares with >=: 2 of 4 trips 0.5 but not 0.51", async () => {
    const clock = manualClock(0);
    const atHalf = new Breaker({ clock, failureRate: 0.5, minimumCalls: 4, window: { calls: 4 } });
    const above = new Breaker({ clock, failureRate: 0.51, minimumCalls: 4, window: { calls: 4 } });
    assert.deepEqual(await run(atHalf, clock, "FSFS"), ["closed", "closed", "closed", "open"]);
    assert.deepEqual(await run(above, clock, "FSFS"), ["closed", "closed", "closed", "closed"]);
    assert.deepEqual(above.stats, statsOf(4, 2, 0));
  });

  it("Breaker failureRate judges only the last N calls: F F S S S S then F F does not trip, one more F does", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.75,
      minimumCalls: 4,
      window: { calls: 4 },
    });
    await run(breaker, clock, "FFSS");
    assert.deepEqual(breaker.stats, statsOf(4, 2, 0));
    await run(breaker, clock, "SS");
    assert.deepEqual(breaker.stats, statsOf(4, 0, 0), "the two failures fell out");
    assert.deepEqual(await run(breaker, clock, "FF"), ["closed", "closed"]);
    assert.deepEqual(breaker.stats, statsOf(4, 2, 0), "window S S F F: 0.5 < 0.75");
    assert.deepEqual(await run(breaker, clock, "F"), ["open"], "window S F F F: 0.75");
  });

  it("Breaker failureRate trips on recent failures that a count over all calls would dilute", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 4,
      window: { calls: 4 },
    });
    assert.deepEqual(await run(breaker, clock, "SSSSSSF"), Array(7).fill("closed"));
    assert.deepEqual(breaker.stats, statsOf(4, 1, 0));
    assert.deepEqual(await run(breaker, clock, "F"), ["open"], "2 of the last 4, though 2 of 8");
  });

  it("Breaker minimumCalls gates the rate rules: a window of only failures below it does not trip", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 6,
      window: { calls: 10 },
    });
    assert.deepEqual(await run(breaker, clock, "FFFFF"), Array(5).fill("closed"));
    assert.deepEqual(breaker.stats, statsOf(5, 5, 0));
    assert.deepEqual(await run(breaker, clock, "F"), ["open"]);
  });

  it("Breaker minimumCalls defaults to window.calls when it is below 20", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, failureRate: 1, window: { calls: 4 } });
    assert.deepEqual(await run(breaker, clock, "FFFF"), ["closed", "closed", "closed", "open"]);
  });

  it("Breaker minimumCalls defaults to 20 for a count window above 20 calls", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, failureRate: 1, window: { calls: 30 } });
    const states = await run(breaker, clock, "F".repeat(20));
    assert.deepEqual(states.slice(0, 19), Array(19).fill("closed"));
    assert.equal(states[19], "open");
  });

  it("Breaker minimumCalls defaults to 20 for the default time window", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, failureRate: 1 });
    const states = await run(breaker, clock, "F".repeat(20));
    assert.deepEqual(states.slice(0, 19), Array(19).fill("closed"));
    assert.equal(states[19], "open");
  });

  it("Breaker failureRate is judged after a success too: the call reaching minimumCalls can trip it", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, failureRate: 0.75, window: { calls: 4 } });
    await run(breaker, clock, "FFF");
    assert.equal(breaker.state, "closed");
    assert.equal(await breaker.execute(() => Promise.resolve("answer")), "answer");
    assert.equal(breaker.state, "open", "3 / 4 >= 0.75 after the success");
  });

  for (const size of WINDOW_SIZES) {
    it(`Breaker count window { calls: ${size} } matches an array model across chunk boundaries`, () => {
      const codes: number[] = [];
      for (let i = 0; i < 3 * size + 17; i++) {
        codes.push((i % 3 === 0 ? FAILED : 0) | (i % 7 === 0 ? SLOW : 0));
      }
      checkCountWindow({ size, minimumCalls: size, failureRate: 1, slowCallRate: 1, codes });
    });
  }

  it("Breaker count window matches an array model for N = 1, 14, 15, 16, 31, 100 (stats and trips)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...WINDOW_SIZES).chain((size) =>
          fc.record({
            size: fc.constant(size),
            minimumCalls: fc.integer({ min: 1, max: size }),
            failureRate: fc.option(fc.double({ min: 0.3, max: 1, noNaN: true }), {
              nil: undefined,
            }),
            slowCallRate: fc.double({ min: 0.3, max: 1, noNaN: true }),
            codes: fc.array(outcomeCode, { maxLength: 3 * size + 20 }),
          })
        ),
        (c) => checkCountWindow(c),
      ),
      { numRuns: 200 },
    );
  });

  it("core recordCall count window keeps the exact last N outcomes (long runs, N = 1, 14, 15, 16, 31, 100)", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...WINDOW_SIZES).chain((size) =>
          fc.tuple(fc.constant(size), fc.array(outcomeCode, { maxLength: 6 * size + 40 }))
        ),
        ([size, codes]) => {
          const policy: WindowPolicy = { kind: "calls", calls: size };
          let window: WindowState | undefined;
          const model: number[] = [];
          for (const code of codes) {
            const before = window;
            window = recordCall(policy, window, 0, (code & FAILED) !== 0, (code & SLOW) !== 0);
            assert.notEqual(window, before, "a new immutable window");
            model.push(code);
            if (model.length > size) model.shift();
            assert.deepEqual(windowStats(policy, window, 0), statsOfCodes(model));
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("Breaker failureRate over a time window", () => {
  it("Breaker time window forgets failures after idle time: 4 failures, 10 minutes of silence, 1 failure does not trip", async () => {
    const clock = manualClock(0);
    const options: BreakerOptions = {
      clock,
      failureRate: 0.5,
      minimumCalls: 5,
      window: { duration: 5_000, buckets: 10 },
    };
    const breaker = new Breaker(options);
    const control = new Breaker(options);
    for (const at of [0, 100, 200, 300]) {
      clock.now = at;
      await call(breaker, clock, "F");
      await call(control, clock, "F");
    }
    assert.deepEqual(breaker.stats, statsOf(4, 4, 0));
    clock.now = 400;
    await call(control, clock, "F");
    assert.equal(control.state, "open", "without the silence the fifth failure trips");

    clock.now = 300 + 10 * 60_000;
    assert.deepEqual(breaker.stats, EMPTY, "the old buckets expired while idle");
    await call(breaker, clock, "F");
    assert.equal(breaker.state, "closed");
    assert.deepEqual(breaker.stats, statsOf(1, 1, 0));
    assert.deepEqual(await run(breaker, clock, "FFF"), ["closed", "closed", "closed"]);
    assert.deepEqual(await run(breaker, clock, "F"), ["open"], "five fresh failures trip");
  });

  it("Breaker time window trips on traffic spaced wider than a bucket", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 5,
      window: { duration: 10_000, buckets: 10 },
    });
    for (const [i, at] of [0, 2_000, 4_000, 6_000].entries()) {
      clock.now = at;
      await call(breaker, clock, "F");
      assert.equal(breaker.state, "closed");
      assert.deepEqual(breaker.stats, statsOf(i + 1, i + 1, 0), `after the failure at ${at}`);
    }
    clock.now = 8_000;
    assert.equal(await call(breaker, clock, "F"), "failed");
    assert.equal(breaker.state, "open", "5 failures within 10 s");
  });

  it("Breaker time window covers at least duration and at most one bucket more", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      window: { duration: 10_000, buckets: 10 },
      shouldTrip: () => false,
    });
    clock.now = 500;
    await call(breaker, clock, "F");
    const callsAt = (now: number) => {
      clock.now = now;
      return breaker.stats.calls;
    };
    assert.equal(callsAt(500), 1);
    assert.equal(callsAt(5_000), 1);
    assert.equal(callsAt(10_500), 1, "a call exactly `duration` old is in the window");
    assert.equal(callsAt(11_501), 0, "a call more than duration + one bucket old is not");
    assert.equal(callsAt(60_000), 0);
  });

  it("Breaker time window judges a call without outcomes older than duration + one bucket", async () => {
    const clock = manualClock(0);
    const seen: WindowStats[] = [];
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 2,
      window: { duration: 10_000, buckets: 10 },
      shouldTrip: (stats) => {
        seen.push(stats);
        return false;
      },
    });
    await call(breaker, clock, "F");
    clock.now = 11_500; // the failure is 11_500 ms old: out of a 10 s window of 1 s buckets
    await call(breaker, clock, "S");
    assert.equal(breaker.state, "closed", "the failure no longer counts");
    assert.deepEqual(seen, [statsOf(1, 1, 0), statsOf(1, 0, 0)]);
    clock.now = 19_000; // the failure at 0 would be out, the success at 11_500 is in
    await call(breaker, clock, "F");
    assert.equal(breaker.state, "open", "S F within 10 s: 0.5");
  });

  it("Breaker time window with buckets that do not divide evenly still covers [duration, duration + bucket]", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      window: { duration: 1_000, buckets: 3 },
      shouldTrip: () => false,
    });
    clock.now = 100;
    await call(breaker, clock, "F");
    clock.now = 1_100;
    assert.equal(breaker.stats.calls, 1, "exactly 1000 ms old");
    clock.now = 1_100 + 1_000 / 3 + 1;
    assert.equal(breaker.stats.calls, 0, "older than 1000 + 333.3 ms");
  });

  it("Breaker.stats read at a later time leaves out expired buckets, without changing the snapshot", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      window: { duration: 10_000, buckets: 10 },
      slowCallRate: 1,
      slowCallDuration: 100,
    });
    // Calls end at 0 (F), 3_200 (S, slow), 6_200 (F, slow) and 9_000 (S).
    clock.now = 0;
    await call(breaker, clock, "F");
    clock.now = 3_000;
    await call(breaker, clock, "S", 200);
    clock.now = 6_000;
    await call(breaker, clock, "F", 200);
    clock.now = 9_000;
    await call(breaker, clock, "S");
    assert.deepEqual(breaker.stats, statsOf(4, 2, 2));
    const snapshot = breaker.snapshot;
    clock.now = 14_500; // 3_200 is 11_300 old (out), 6_200 is 8_300 old (in)
    assert.deepEqual(breaker.stats, statsOf(2, 1, 1));
    clock.now = 19_000; // 6_200 is 12_800 old (out), 9_000 is 10_000 old (in)
    assert.deepEqual(breaker.stats, statsOf(1, 0, 0));
    clock.now = 20_001;
    assert.deepEqual(breaker.stats, EMPTY);
    assert.equal(breaker.snapshot, snapshot, "reading stats changes nothing");
    assert.equal(breaker.state, "closed");
  });

  it("Breaker time window stats stay within [duration, duration + bucket] of history (random traffic)", () => {
    fc.assert(
      fc.property(
        fc.record({
          buckets: fc.integer({ min: 1, max: 10 }),
          bucketMs: fc.integer({ min: 1, max: 1_000 }),
          steps: fc.array(
            fc.record({
              gap: fc.oneof(
                fc.integer({ min: 0, max: 1_500 }),
                fc.integer({ min: 0, max: 25_000 }),
              ),
              code: outcomeCode,
            }),
            { maxLength: 60 },
          ),
          readGap: fc.integer({ min: 0, max: 25_000 }),
        }),
        ({ buckets, bucketMs, steps, readGap }) => {
          const duration = buckets * bucketMs;
          const clock = manualClock(0);
          let judged: WindowStats | undefined;
          const breaker = new Breaker({
            clock,
            window: { duration, buckets },
            slowCallDuration: 5,
            shouldTrip: (stats) => {
              judged = stats;
              return false;
            },
          });
          const log: { at: number; code: number }[] = [];
          const check = (now: number, judgedStats?: WindowStats) => {
            const saved = clock.now;
            clock.now = now;
            const stats = judgedStats ?? breaker.stats;
            clock.now = saved;
            const ages = log.map((entry) => now - entry.at);
            const lower = ages.filter((age) => age <= duration).length;
            const upper = ages.filter((age) => age <= duration + bucketMs).length;
            const where = `at ${now}, ${log.length} calls, last at ${log.at(-1)?.at}`;
            assert.ok(lower <= stats.calls && stats.calls <= upper, `${stats.calls} ${where}`);
            const counted = log.slice(log.length - stats.calls).map((entry) => entry.code);
            assert.deepEqual(stats, statsOfCodes(counted), where);
          };
          for (const { gap, code } of steps) {
            clock.advance(gap);
            callSync(breaker, clock, (code & FAILED) !== 0, (code & SLOW) !== 0 ? 6 : 0);
            log.push({ at: clock.now, code });
            assert.ok(judged !== undefined);
            check(clock.now, judged); // what the rules judged when the call was recorded
            check(clock.now);
            check(clock.now + readGap);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("Breaker stateChange of a trip", () => {
  it("Breaker stateChange of a failureRate trip carries the window's counts that tripped it", async () => {
    const clock = manualClock(0);
    const seen: { to: string; stats: WindowStats | undefined; live: WindowStats }[] = [];
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 4,
      window: { duration: 10_000, buckets: 10 },
      listeners: [{
        stateChange: ({ breaker, to, stats }) => seen.push({ to, stats, live: breaker.stats }),
      }],
    });
    await run(breaker, clock, "SFSF");
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.to, "open");
    assert.deepEqual(seen[0]?.stats, {
      calls: 4,
      failures: 2,
      slowCalls: 0,
      failureRate: 0.5,
      slowCallRate: 0,
    });
    assert.equal(seen[0]?.live.calls, 0, "the window is cleared on opening");
  });

  it("Breaker stateChange of a slow success's trip counts that success", async () => {
    const clock = manualClock(0);
    const recorded = recordEvents(["stateChange"]);
    const breaker = new Breaker({
      clock,
      slowCallRate: 1,
      slowCallDuration: 100,
      minimumCalls: 2,
      window: { calls: 5 },
      listeners: [recorded.listener],
    });
    for (let i = 0; i < 2; i++) {
      await breaker.execute(() => {
        clock.advance(150);
        return Promise.resolve("slow");
      });
    }
    assert.equal(breaker.state, "open");
    assert.deepEqual(recorded.eventsOf("stateChange").map(({ stats }) => stats), [{
      calls: 2,
      failures: 0,
      slowCalls: 2,
      failureRate: 0,
      slowCallRate: 1,
    }]);
  });

  it("Breaker stateChange carries no stats without a window, nor for other changes", async () => {
    const recorded = recordEvents(["stateChange"]);
    const breaker = new Breaker({ failureThreshold: 1, listeners: [recorded.listener] });
    await breaker.execute(() => Promise.reject(new Error("down"))).catch(() => {});
    breaker.close();
    assert.equal(recorded.events.length, 2);
    for (const event of recorded.events) assert.equal("stats" in event, false);
  });
});

describe("Breaker combined rules", () => {
  it("Breaker failureThreshold with failureRate: the consecutive rule opens when it is reached first", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureThreshold: 3,
      failureRate: 0.5,
      minimumCalls: 10,
      window: { calls: 10 },
    });
    assert.deepEqual(await run(breaker, clock, "FFF"), ["closed", "closed", "open"]);
  });

  it("Breaker failureThreshold with failureRate: the rate rule opens when it is reached first", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureThreshold: 3,
      failureRate: 0.5,
      minimumCalls: 10,
      window: { calls: 10 },
    });
    const states = await run(breaker, clock, "FSFSFSFSFS");
    assert.deepEqual(states.slice(0, 9), Array(9).fill("closed"));
    assert.equal(states[9], "open", "5 / 10 failures, never 2 in a row");
  });

  it("Breaker failureThreshold defaults to Infinity when failureRate is set", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 50,
      window: { calls: 50 },
    });
    const states = await run(breaker, clock, "F".repeat(50));
    assert.deepEqual(states.slice(0, 49), Array(49).fill("closed"));
    assert.equal(states[49], "open");
  });

  it("Breaker failureThreshold defaults to Infinity when slowCallRate is set", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, slowCallRate: 1, slowCallDuration: 1_000 });
    await run(breaker, clock, "F".repeat(30));
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 30);
  });

  it("Breaker failureThreshold defaults to Infinity when shouldTrip is set", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, shouldTrip: () => false });
    await run(breaker, clock, "F".repeat(100));
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 100);
  });

  it("Breaker failureThreshold keeps its default 5 when only slowCallDuration is set", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, slowCallDuration: 1_000 });
    assert.deepEqual(await run(breaker, clock, "FFFFF"), [
      "closed",
      "closed",
      "closed",
      "closed",
      "open",
    ]);
  });

  it("Breaker shouldTrip and failureRate together: shouldTrip opens below minimumCalls", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 10,
      window: { calls: 10 },
      shouldTrip: (stats) => stats.failures >= 2,
    });
    assert.deepEqual(await run(breaker, clock, "SFSF"), ["closed", "closed", "closed", "open"]);
  });
});

describe("Breaker slow calls", () => {
  it("Breaker counts a call slow only when its duration is > slowCallDuration (equal is not slow)", async () => {
    const clock = manualClock(0);
    const options: BreakerOptions = {
      clock,
      slowCallRate: 0.5,
      slowCallDuration: 100,
      minimumCalls: 2,
      window: { calls: 10 },
    };
    const equal = new Breaker(options);
    await call(equal, clock, "S", 100);
    await call(equal, clock, "S", 100);
    assert.equal(equal.state, "closed");
    assert.deepEqual(equal.stats, statsOf(2, 0, 0));

    const above = new Breaker(options);
    await call(above, clock, "S", 100);
    assert.deepEqual(above.stats, statsOf(1, 0, 0));
    assert.equal(await call(above, clock, "S", 101), "ok");
    assert.equal(above.state, "open", "1 slow of 2 >= 0.5");
  });

  it("Breaker opens on slow successes alone, and the tripping call still resolves", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      slowCallRate: 0.8,
      slowCallDuration: 2_000,
      minimumCalls: 5,
      window: { calls: 5 },
    });
    for (let i = 0; i < 4; i++) {
      assert.equal(await call(breaker, clock, "S", 2_500), "ok");
      assert.equal(breaker.state, "closed");
    }
    assert.deepEqual(breaker.stats, statsOf(4, 0, 4));
    const value = await breaker.execute(() => {
      clock.advance(2_001);
      return Promise.resolve("slow but fine");
    });
    assert.equal(value, "slow but fine");
    assert.equal(breaker.state, "open");
    assert.equal(breaker.failureCount, 0);
    await assert.rejects(breaker.execute(() => Promise.resolve(1)), BreakerOpenError);
  });

  it("Breaker counts a slow failure both as a failure and as a slow call", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      slowCallRate: 1,
      slowCallDuration: 50,
      window: { calls: 10 },
    });
    await call(breaker, clock, "F", 51);
    await call(breaker, clock, "F", 50);
    await call(breaker, clock, "S", 51);
    assert.deepEqual(breaker.stats, statsOf(3, 2, 2));
  });

  it("Breaker measures a call from its start to its settlement on the clock (deferred)", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      slowCallRate: 0.5,
      slowCallDuration: 1_000,
      minimumCalls: 2,
      window: { duration: 60_000, buckets: 10 },
    });
    const first = deferred<string>();
    const second = deferred<string>();
    const firstCall = breaker.execute(() => first.promise); // starts at 0
    clock.advance(600);
    const secondCall = breaker.execute(() => second.promise); // starts at 600
    clock.advance(500); // now 1_100
    second.resolve("b"); // 500 ms: not slow
    assert.equal(await secondCall, "b");
    assert.deepEqual(breaker.stats, statsOf(1, 0, 0));
    first.resolve("a"); // 1_100 ms: slow
    assert.equal(await firstCall, "a");
    await flush();
    assert.deepEqual(breaker.stats, EMPTY, "the window was cleared by the trip");
    assert.equal(breaker.state, "open", "1 slow of 2 >= 0.5");
  });

  it("Breaker trips slowCallRate over a time window", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      slowCallRate: 0.5,
      slowCallDuration: 100,
      minimumCalls: 4,
      window: { duration: 10_000, buckets: 10 },
    });
    await call(breaker, clock, "S", 10);
    await call(breaker, clock, "S", 150);
    await call(breaker, clock, "S", 10);
    assert.equal(breaker.state, "closed");
    assert.deepEqual(breaker.stats, statsOf(3, 0, 1));
    await call(breaker, clock, "F", 150);
    assert.equal(breaker.state, "open");
  });

  for (
    const [kind, window] of [
      ["time", { duration: 10_000, buckets: 10 }],
      ["count", { calls: 10 }],
    ] as const
  ) {
    it(`Breaker measures slow calls for shouldTrip and stats when slowCallDuration is set without slowCallRate (${kind} window)`, async () => {
      const clock = manualClock(0);
      const seen: number[] = [];
      const breaker = new Breaker({
        clock,
        window,
        slowCallDuration: 100,
        shouldTrip: (stats) => {
          seen.push(stats.slowCalls);
          return stats.slowCalls >= 2;
        },
      });
      assert.equal(await call(breaker, clock, "S", 150), "ok");
      assert.deepEqual(seen, [1], "shouldTrip saw one slow call");
      assert.deepEqual(breaker.stats, statsOf(1, 0, 1));
      assert.equal(breaker.state, "closed");
      await call(breaker, clock, "S", 150);
      assert.deepEqual(seen, [1, 2]);
      assert.equal(breaker.state, "open");
    });
  }
});

describe("Breaker window: neutral outcomes and clearing", () => {
  class Ignored extends Error {}

  it("Breaker leaves the window unchanged for an ignored error", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      ignore: Ignored,
      failureRate: 0.5,
      minimumCalls: 2,
      window: { calls: 2 },
    });
    await call(breaker, clock, "F");
    const snapshot = breaker.snapshot;
    const ignored = new Ignored("not the dependency's fault");
    await assert.rejects(breaker.execute(() => Promise.reject(ignored)), (e) => e === ignored);
    assert.equal(breaker.snapshot, snapshot, "nothing changed");
    assert.equal(breaker.state, "closed", "counted either way it would have tripped");
    assert.deepEqual(breaker.stats, statsOf(1, 1, 0));
    await call(breaker, clock, "S");
    assert.equal(breaker.state, "open", "window F S: 0.5");
  });

  it("Breaker leaves the window unchanged for a caller's abort", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 2,
      window: { calls: 2 },
    });
    await call(breaker, clock, "F");
    const snapshot = breaker.snapshot;
    const controller = new AbortController();
    const pending = deferred<string>();
    const aborted = breaker.execute(() => pending.promise, { signal: controller.signal });
    const reason = new Error("client went away");
    controller.abort(reason);
    await assert.rejects(aborted, (e) => e === reason);
    pending.reject(new Error("late failure"));
    await flush();
    assert.equal(breaker.snapshot, snapshot);
    assert.equal(breaker.state, "closed");
    assert.deepEqual(breaker.stats, statsOf(1, 1, 0));
  });

  it("Breaker clears the window when the circuit opens and again when it closes", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 4,
      window: { calls: 10 },
      recoveryTimeout: 1_000,
    });
    assert.deepEqual(await run(breaker, clock, "SSFF"), ["closed", "closed", "closed", "open"]);
    assert.deepEqual(breaker.stats, EMPTY);
    assert.equal(breaker.snapshot.window, undefined);
    clock.now = 1_000;
    assert.equal(await call(breaker, clock, "S"), "ok");
    assert.equal(breaker.state, "closed");
    assert.deepEqual(breaker.stats, EMPTY, "the trial is not in the window");
    await run(breaker, clock, "FFF");
    assert.equal(breaker.state, "closed", "3 calls < minimumCalls: the old history is gone");
    assert.deepEqual(breaker.stats, statsOf(3, 3, 0));
  });

  it("Breaker clears the window on manual open() and close()", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, failureRate: 0.9, window: { calls: 10 } });
    await run(breaker, clock, "SFS");
    assert.deepEqual(breaker.stats, statsOf(3, 1, 0));
    breaker.open();
    assert.deepEqual(breaker.stats, EMPTY);
    breaker.close();
    assert.deepEqual(breaker.stats, EMPTY);
    await run(breaker, clock, "F");
    assert.deepEqual(breaker.stats, statsOf(1, 1, 0));
  });

  it("Breaker clears the window when close() ends a ramp and when the last isolation hold is released", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.9,
      window: { calls: 10 },
      recoveryTimeout: 1_000,
      recoveryRamp: { duration: 10_000, initialRate: 1 },
    });
    breaker.open();
    clock.now = 1_000;
    await call(breaker, clock, "S");
    assert.equal(breaker.state, "recovering");
    await run(breaker, clock, "FS");
    assert.deepEqual(breaker.stats, statsOf(2, 1, 0), "admitted ramp calls feed the window");
    breaker.close();
    assert.equal(breaker.state, "closed");
    assert.deepEqual(breaker.stats, EMPTY);

    await run(breaker, clock, "FSF");
    assert.deepEqual(breaker.stats, statsOf(3, 2, 0));
    const hold = breaker.isolate();
    hold[Symbol.dispose]();
    assert.equal(breaker.state, "closed");
    assert.deepEqual(breaker.stats, EMPTY);
  });

  it("Breaker judges half-open trials by successThreshold alone: slow successful trials close it", async () => {
    const clock = manualClock(0);
    let judged = 0;
    const breaker = new Breaker({
      clock,
      slowCallRate: 0.5,
      slowCallDuration: 10,
      minimumCalls: 1,
      window: { calls: 10 },
      successThreshold: 3,
      recoveryTimeout: 1_000,
      shouldTrip: () => {
        judged++;
        return false;
      },
    });
    await call(breaker, clock, "S", 11);
    assert.equal(breaker.state, "open", "one slow success trips 1 / 1");
    assert.equal(breaker.openUntil, 1_011, "the period starts when the slow call ended");
    judged = 0;
    clock.now = 1_011;
    for (let i = 0; i < 2; i++) {
      assert.equal(await call(breaker, clock, "S", 50), "ok");
      assert.equal(breaker.state, "half-open", `after slow trial ${i + 1}`);
      assert.deepEqual(breaker.stats, EMPTY);
    }
    await call(breaker, clock, "S", 50);
    assert.equal(breaker.state, "closed");
    assert.equal(judged, 0, "no rule judged the trials");
  });

  it("Breaker judges half-open trials by successThreshold alone: one failed trial reopens", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.9,
      minimumCalls: 5,
      window: { calls: 5 },
      recoveryTimeout: 1_000,
    });
    await run(breaker, clock, "FFFFF");
    assert.equal(breaker.state, "open");
    clock.now = 1_000;
    assert.equal(await call(breaker, clock, "F"), "failed");
    assert.equal(breaker.state, "open", "reopened although 1 call < minimumCalls");
    assert.equal(breaker.openUntil, 2_000);
  });
});

describe("Breaker shouldTrip", () => {
  it("Breaker calls shouldTrip after each recorded success or failure with the window's stats", async () => {
    const clock = manualClock(0);
    class Ignored extends Error {}
    const seen: WindowStats[] = [];
    const breaker = new Breaker({
      clock,
      ignore: Ignored,
      slowCallDuration: 100,
      window: { duration: 10_000, buckets: 10 },
      shouldTrip: (stats) => {
        seen.push(stats);
        return false;
      },
    });
    await call(breaker, clock, "S", 10);
    await call(breaker, clock, "F", 150);
    await call(breaker, clock, "F", 0, new Ignored("neutral"));
    await call(breaker, clock, "S", 150);
    assert.deepEqual(seen, [statsOf(1, 0, 0), statsOf(2, 1, 1), statsOf(3, 1, 2)]);
    assert.equal(seen[2]?.failureRate, 1 / 3);
    assert.equal(seen[2]?.slowCallRate, 2 / 3);
  });

  it("Breaker opens when shouldTrip returns true, with the tripping call's own error", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      shouldTrip: (stats) => stats.failures >= 3 && stats.failureRate > 0.2,
    });
    assert.deepEqual(await run(breaker, clock, "FSFS"), Array(4).fill("closed"));
    const third = new Error("third");
    await assert.rejects(breaker.execute(() => Promise.reject(third)), (e) => e === third);
    assert.equal(breaker.state, "open");
    assert.deepEqual(breaker.stats, EMPTY);
  });

  it("Breaker shouldTrip is judged below minimumCalls and can trip on a success", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      minimumCalls: 20,
      shouldTrip: (stats) => stats.calls >= 3,
    });
    assert.deepEqual(await run(breaker, clock, "SSS"), ["closed", "closed", "open"]);
  });

  it("Breaker counts a throwing shouldTrip as false and reports it with console.error", async () => {
    const clock = manualClock(0);
    const broken = new Error("rule broke");
    const breaker = new Breaker({
      clock,
      name: "db",
      shouldTrip: () => {
        throw broken;
      },
    });
    using reported = captureConsole("error");
    assert.deepEqual(await run(breaker, clock, "FFS"), ["closed", "closed", "closed"]);
    assert.equal(reported.calls.length, 3, "one report per judged call");
    for (const report of reported.calls) {
      assert.match(String(report[0]), /shouldTrip/);
      assert.ok(report.includes(broken), "the thrown error is reported");
    }
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.stats.calls, 3);
  });

  it("Breaker does not call shouldTrip for neutral outcomes or while open", async () => {
    const clock = manualClock(0);
    let judged = 0;
    const breaker = new Breaker({
      clock,
      ignore: (error) => error === "ignored",
      recoveryTimeout: 1_000,
      shouldTrip: () => {
        judged++;
        return true;
      },
    });
    await call(breaker, clock, "F", 0, "ignored");
    assert.equal(judged, 0);
    await call(breaker, clock, "S");
    assert.equal(judged, 1);
    assert.equal(breaker.state, "open");
    assert.equal(await call(breaker, clock, "S"), "rejected");
    assert.equal(judged, 1);
  });
});

describe("Breaker recoveryTimeout as a function", () => {
  it("Breaker calls recoveryTimeout once per opening with openings counting from 1 and the failure", async () => {
    const clock = manualClock(0);
    const contexts: RecoveryContext[] = [];
    const breaker = new Breaker({
      clock,
      failureThreshold: 1,
      recoveryTimeout: (context) => {
        contexts.push(context);
        return context.openings * 1_000;
      },
    });
    const errors = [new Error("a"), new Error("b"), new Error("c")];
    await call(breaker, clock, "F", 0, errors[0]);
    assert.equal(breaker.openUntil, 1_000);
    for (let i = 0; i < 3; i++) await call(breaker, clock, "S"); // rejected
    assert.equal(breaker.retryAfterMs, 1_000);
    clock.now = 1_000;
    await call(breaker, clock, "F", 0, errors[1]);
    assert.equal(breaker.openUntil, 3_000);
    clock.now = 3_000;
    await call(breaker, clock, "F", 0, errors[2]);
    assert.equal(breaker.openUntil, 6_000);
    assert.deepEqual(contexts, [
      { openings: 1, lastFailure: errors[0] },
      { openings: 2, lastFailure: errors[1] },
      { openings: 3, lastFailure: errors[2] },
    ]);
  });

  it("Breaker counts manual open() as an opening and resets openings when the circuit closes", async () => {
    const clock = manualClock(0);
    const openings: number[] = [];
    const breaker = new Breaker({
      clock,
      failureThreshold: 1,
      recoveryTimeout: (context) => {
        openings.push(context.openings);
        return 1_000;
      },
    });
    await call(breaker, clock, "F"); // 1
    clock.now = 1_000;
    await call(breaker, clock, "F"); // failed trial: 2
    clock.now = 2_000;
    await call(breaker, clock, "S"); // trial succeeds: closed, openings reset
    assert.equal(breaker.state, "closed");
    breaker.open(); // 1
    breaker.halfOpen();
    breaker.open(); // 2
    breaker.close();
    await call(breaker, clock, "F"); // 1
    assert.deepEqual(openings, [1, 2, 1, 2, 1]);
  });

  it("exponentialBackoff with jitter none gives min(maxDelay, initialDelay * factor ** (openings - 1))", () => {
    const doubling = exponentialBackoff({ initialDelay: 1_000, maxDelay: 10_000, jitter: "none" });
    const tripling = exponentialBackoff({
      initialDelay: 100,
      maxDelay: 5_000,
      factor: 3,
      jitter: "none",
    });
    const periods = (timeout: RecoveryTimeout) =>
      [1, 2, 3, 4, 5, 6].map((openings) => timeout({ openings, lastFailure: undefined }));
    assert.deepEqual(periods(doubling), [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
    assert.deepEqual(periods(tripling), [100, 300, 900, 2_700, 5_000, 5_000]);
  });

  it("exponentialBackoff with full jitter (the default) draws random() * period", () => {
    const draws = [0.5, 0, 0.25, 0.75];
    let calls = 0;
    const backoff = exponentialBackoff({
      initialDelay: 1_000,
      maxDelay: 4_000,
      random: () => draws[calls++ % draws.length] as number,
    });
    const periods = [1, 2, 3, 4].map((openings) => backoff({ openings, lastFailure: undefined }));
    assert.deepEqual(periods, [500, 0, 1_000, 3_000]);
    assert.equal(calls, 4, "one draw per period");
  });

  it("Breaker grows the open period with exponentialBackoff and starts over after it recovers", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureThreshold: 1,
      recoveryTimeout: exponentialBackoff({
        initialDelay: 1_000,
        maxDelay: 5_000,
        jitter: "none",
      }),
    });
    await call(breaker, clock, "F");
    assert.equal(breaker.openUntil, 1_000);
    clock.now = 1_000;
    await call(breaker, clock, "F");
    assert.equal(breaker.openUntil, 3_000);
    clock.now = 3_000;
    await call(breaker, clock, "F");
    assert.equal(breaker.openUntil, 7_000);
    clock.now = 7_000;
    await call(breaker, clock, "F");
    assert.equal(breaker.openUntil, 12_000, "capped at maxDelay");
    clock.now = 12_000;
    await call(breaker, clock, "S");
    assert.equal(breaker.state, "closed");
    await call(breaker, clock, "F");
    assert.equal(breaker.openUntil, 13_000, "back to initialDelay");
  });

  it("Breaker uses exponentialBackoff's full jitter with an injected random", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureThreshold: 1,
      recoveryTimeout: exponentialBackoff({
        initialDelay: 1_000,
        maxDelay: 60_000,
        random: () => 0.5,
      }),
    });
    await call(breaker, clock, "F");
    assert.equal(breaker.openUntil, 500);
    clock.now = 500;
    await call(breaker, clock, "F");
    assert.equal(breaker.openUntil, 1_500, "half of 2_000");
  });

  const badResults: readonly (readonly [string, RecoveryTimeout])[] = [
    ["NaN", () => NaN],
    ["-1", () => -1],
    ["Infinity", () => Infinity],
    ['a string ("1000")', (() => "1000") as unknown as RecoveryTimeout],
    ["a throw", () => {
      throw new Error("no period");
    }],
  ];
  for (const [label, recoveryTimeout] of badResults) {
    it(`Breaker replaces a recoveryTimeout giving ${label} with 30_000 and reports it with console.error`, async () => {
      const clock = manualClock(5_000);
      const breaker = new Breaker({ clock, failureThreshold: 1, recoveryTimeout });
      {
        using reported = captureConsole("error");
        assert.equal(await call(breaker, clock, "F"), "failed");
        assert.equal(reported.calls.length, 1);
        assert.match(String(reported.calls[0]?.[0]), /recoveryTimeout/);
      }
      assert.equal(breaker.state, "open");
      assert.equal(breaker.openUntil, 35_000);
      assert.equal(breaker.retryAfterMs, 30_000);
      clock.now = 34_999;
      const rejection = await breaker.execute(() => Promise.resolve(1)).catch((e: unknown) => e);
      assert.ok(rejection instanceof BreakerOpenError);
      assert.equal(rejection.retryAfterMs, 1);
      clock.now = 35_000;
      assert.equal(breaker.state, "half-open");
      assert.equal(await call(breaker, clock, "S"), "ok");
      assert.equal(breaker.state, "closed");
      using again = captureConsole("error");
      breaker.open();
      assert.equal(again.calls.length, 1, "reported again at the next opening");
      assert.equal(breaker.openUntil, 65_000);
    });
  }
});

describe("Breaker recoveryRamp", () => {
  const RAMP = { duration: 10_000, initialRate: 0.1 } as const;

  /** A breaker that opened at 0 and whose trial succeeded at 1_000: ramping until 11_000. */
  async function recovering(
    options: BreakerOptions = {},
  ): Promise<{ breaker: Breaker; clock: ManualClock }> {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureThreshold: 1,
      recoveryTimeout: 1_000,
      recoveryRamp: RAMP,
      ...options,
    });
    await call(breaker, clock, "F");
    clock.now = 1_000;
    assert.equal(await call(breaker, clock, "S"), "ok");
    assert.equal(breaker.state, "recovering");
    return { breaker, clock };
  }

  /** Runs `k` successful calls at the current time; returns which were admitted. */
  async function decisions(breaker: Breaker, k: number): Promise<boolean[]> {
    const admitted: boolean[] = [];
    for (let i = 0; i < k; i++) {
      let ran = false;
      try {
        await breaker.execute(() => {
          ran = true;
          return Promise.resolve();
        });
        admitted.push(true);
      } catch (error) {
        if (!(error instanceof BreakerOpenError)) throw error;
        assert.equal(ran, false, "a rejected call does not run");
        admitted.push(false);
      }
    }
    return admitted;
  }

  const count = (admitted: readonly boolean[]) => admitted.filter(Boolean).length;

  it('Breaker reads "recovering" for recoveryRamp.duration ms after the half-open trial succeeds', async () => {
    const { breaker, clock } = await recovering();
    assert.equal(breaker.snapshot.rampStart, 1_000);
    assert.equal(breaker.snapshot.rampUntil, 11_000);
    clock.now = 10_999;
    assert.equal(breaker.state, "recovering");
    assert.equal(breaker.retryAfterMs, 0);
    clock.now = 11_000;
    assert.equal(breaker.state, "closed");
  });

  it("Breaker admits k * initialRate of k calls at the start of the ramp (k = 100, 0.1 -> 10)", async () => {
    const { breaker } = await recovering();
    assert.equal(count(await decisions(breaker, 100)), 10);
  });

  it("Breaker admits about k * share of k calls half-way through the ramp (0.55 -> ~55)", async () => {
    const { breaker, clock } = await recovering();
    clock.now = 6_000;
    const admitted = count(await decisions(breaker, 100));
    assert.ok(admitted >= 54 && admitted <= 56, `admitted ${admitted}`);
  });

  it("Breaker spreads the ramp's admissions: any 20 consecutive calls at share 0.775 admit 15 or 16", async () => {
    const { breaker, clock } = await recovering();
    clock.now = 8_500; // elapsed 7_500 of 10_000: 0.1 + 0.9 * 0.75 = 0.775
    const admitted = await decisions(breaker, 200);
    for (let i = 0; i + 20 <= admitted.length; i++) {
      const n = count(admitted.slice(i, i + 20));
      assert.ok(n === 15 || n === 16, `calls ${i}..${i + 19} admitted ${n}`);
    }
  });

  it('Breaker rejects calls outside the share with BreakerOpenError "recovering", retryAfterMs 0, a rejected event', async () => {
    const recorded = recordEvents();
    const { breaker } = await recovering({ name: "api", listeners: [recorded.listener] });
    recorded.clear();
    assert.deepEqual(await decisions(breaker, 2), [true, false]);
    assert.deepEqual(recorded.lines(), ["beforeCall", "success", "rejected recovering"]);
    const rejected = recorded.eventsOf("rejected")[0]?.error;
    assert.ok(rejected instanceof BreakerOpenError);
    assert.equal(rejected.state, "recovering");
    assert.equal(rejected.retryAfterMs, 0);
    assert.equal(rejected.breaker, "api");
    assert.equal(breaker.state, "recovering");
  });

  it("Breaker serves the fallback for calls the ramp turns away", async () => {
    const { breaker } = await recovering({ fallback: () => "cached" });
    let ran = 0;
    const fn = () => {
      ran++;
      return Promise.resolve("fresh");
    };
    assert.equal(await breaker.execute(fn), "fresh");
    assert.equal(await breaker.execute(fn), "cached");
    assert.equal(ran, 1);
  });

  it('Breaker ends the ramp at rampUntil: state reads "closed", stateChange recovering->closed at the next call', async () => {
    const recorded = recordEvents();
    const { breaker, clock } = await recovering({ listeners: [recorded.listener] });
    await decisions(breaker, 5);
    const generation = breaker.snapshot.generation;
    recorded.clear();
    clock.now = 11_000;
    assert.equal(breaker.state, "closed");
    assert.deepEqual(recorded.lines(), [], "reading state has no side effects");
    await call(breaker, clock, "S");
    assert.deepEqual(recorded.lines(), ["stateChange recovering->closed", "beforeCall", "success"]);
    assert.equal(
      breaker.snapshot.generation,
      generation,
      "the end of the ramp is no new generation",
    );
    assert.equal(count(await decisions(breaker, 50)), 50);
  });

  it("Breaker still records a call admitted during the ramp that settles after it ended", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 2,
      window: { calls: 4 },
      recoveryTimeout: 1_000,
      recoveryRamp: RAMP,
    });
    breaker.open();
    clock.now = 1_000;
    await call(breaker, clock, "S");
    assert.equal(breaker.state, "recovering");
    const late = deferred<string>();
    const lateCall = breaker.execute(() => late.promise); // first decision: admitted
    clock.now = 11_000;
    await call(breaker, clock, "S"); // ends the ramp
    assert.deepEqual(breaker.stats, statsOf(1, 0, 0));
    const error = new Error("late");
    late.reject(error);
    await assert.rejects(lateCall, (e) => e === error);
    assert.equal(breaker.state, "open", "F S in the window: 0.5");
  });

  it("Breaker reopens when a rule trips during the ramp", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 2,
      window: { calls: 10 },
      recoveryTimeout: 1_000,
      recoveryRamp: { duration: 10_000, initialRate: 0.5 },
    });
    breaker.open();
    clock.now = 1_000;
    await call(breaker, clock, "S");
    assert.equal(breaker.state, "recovering");
    // elapsed 0, share 0.5: admit, reject, admit
    assert.equal(await call(breaker, clock, "F"), "failed");
    assert.equal(breaker.state, "recovering", "1 call < minimumCalls");
    assert.equal(await call(breaker, clock, "F"), "rejected");
    assert.equal(await call(breaker, clock, "F"), "failed");
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 2_000);
  });

  it("Breaker resets openings only when the ramp ends", async () => {
    const openings: number[] = [];
    const { breaker, clock } = await recovering({
      recoveryTimeout: (context) => {
        openings.push(context.openings);
        return 1_000;
      },
    });
    assert.deepEqual(openings, [1]);
    clock.now = 2_000;
    assert.equal(await call(breaker, clock, "F"), "failed"); // trips during the ramp
    assert.deepEqual(openings, [1, 2], "the trial's success did not reset openings");
    clock.now = 3_000;
    await call(breaker, clock, "S");
    assert.equal(breaker.state, "recovering");
    clock.now = 13_000;
    await call(breaker, clock, "S"); // the ramp is over
    assert.equal(breaker.state, "closed");
    await call(breaker, clock, "F");
    assert.deepEqual(openings, [1, 2, 1]);
  });

  it("Breaker counts openings from 1 when a call admitted during the ramp fails after it ended", async () => {
    const openings: number[] = [];
    const { breaker, clock } = await recovering({
      recoveryTimeout: (context) => {
        openings.push(context.openings);
        return 1_000;
      },
    });
    const late = deferred<string>();
    const lateCall = breaker.execute(() => late.promise); // admitted at 1_000
    clock.now = 11_000;
    const error = new Error("late");
    late.reject(error);
    await assert.rejects(lateCall, (e) => e === error);
    assert.equal(breaker.state, "open");
    assert.deepEqual(openings, [1, 1], "the ramp had ended: openings started over");
  });

  it("Breaker counts openings from 1 again for a manual open() once the ramp has elapsed", async () => {
    const openings: number[] = [];
    const { breaker, clock } = await recovering({
      recoveryTimeout: (context) => {
        openings.push(context.openings);
        return 1_000;
      },
    });
    clock.now = 11_000;
    assert.equal(breaker.state, "closed", "the ramp is over");
    breaker.open();
    assert.deepEqual(openings, [1, 1], "the circuit recovered when the ramp ended");
  });

  it("Breaker.close() starts no ramp", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureThreshold: 1,
      recoveryTimeout: 1_000,
      recoveryRamp: RAMP,
    });
    await call(breaker, clock, "F");
    breaker.close();
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.snapshot.rampUntil, undefined);
    assert.equal(count(await decisions(breaker, 20)), 20);
    await call(breaker, clock, "F");
    breaker.halfOpen();
    breaker.close();
    assert.equal(breaker.state, "closed");
    assert.equal(count(await decisions(breaker, 20)), 20);
  });

  it("Breaker keeps the ramp through toJSON() and the state option", async () => {
    const { breaker, clock } = await recovering();
    await decisions(breaker, 3);
    const saved: SnapshotJSON = JSON.parse(JSON.stringify(breaker));
    assert.equal(saved.state, "recovering");
    const restored = new Breaker({
      clock,
      failureThreshold: 1,
      recoveryTimeout: 1_000,
      recoveryRamp: RAMP,
      state: saved,
    });
    assert.equal(restored.state, "recovering");
    assert.equal(restored.snapshot.rampStart, 1_000);
    assert.equal(restored.snapshot.rampUntil, 11_000);
    assert.equal(restored.snapshot.rampCalls, breaker.snapshot.rampCalls);
    clock.now = 4_000;
    assert.deepEqual(await decisions(restored, 40), await decisions(breaker, 40));
    clock.now = 11_000;
    assert.equal(restored.state, "closed");
  });

  it("core rampShare is initialRate + (1 - initialRate) * elapsed / duration", () => {
    const snapshot: Snapshot = {
      ...INITIAL_SNAPSHOT,
      state: "recovering",
      rampStart: 1_000,
      rampUntil: 11_000,
    };
    assert.equal(rampShare(0.1, snapshot, 1_000), 0.1);
    assert.equal(rampShare(0.1, snapshot, 6_000), 0.1 + 0.9 * 0.5);
    assert.equal(rampShare(0.1, snapshot, 8_500), 0.1 + 0.9 * 0.75);
    assert.equal(rampShare(0.1, snapshot, 11_000), 1);
    assert.equal(rampShare(0.4, snapshot, 3_500), 0.4 + 0.6 * 0.25);
  });

  it("core admit spreads a ramp's admissions: any k consecutive decisions admit k * share +- 1", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 1, noNaN: true }),
        fc.integer({ min: 0, max: 10_000 }),
        fc.integer({ min: 0, max: 1_000 }),
        fc.integer({ min: 1, max: 200 }),
        (initialRate, elapsed, startCounter, k) => {
          const policy = createPolicy({ recoveryRamp: { duration: 10_000, initialRate } });
          let snapshot: Snapshot = {
            ...INITIAL_SNAPSHOT,
            state: "recovering",
            rampStart: 0,
            rampUntil: 10_000,
            rampCalls: startCounter,
          };
          const now = Math.min(elapsed, 9_999);
          const share = initialRate + (1 - initialRate) * now / 10_000;
          let admitted = 0;
          for (let i = 0; i < k; i++) {
            const verdict = admit(policy, snapshot, now);
            if (isRejection(verdict)) {
              assert.equal(verdict.rejectedIn, "recovering");
              assert.equal(verdict.retryAfterMs, 0);
              snapshot = verdict.snapshot;
            } else {
              admitted++;
              snapshot = verdict;
            }
          }
          assert.equal(snapshot.rampCalls, startCounter + k);
          assert.ok(Math.abs(admitted - k * share) <= 1, `${admitted} of ${k} at ${share}`);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe("Breaker Retry-After", () => {
  const isFailureResult = (result: unknown) => result instanceof Response && result.status >= 400;

  function httpBreaker(clock: ManualClock, options: BreakerOptions = {}): Breaker {
    return new Breaker({
      clock,
      failureThreshold: 1,
      recoveryTimeout: 30_000,
      isFailureResult,
      ...options,
    });
  }

  it("Breaker stays open for a 429 Response's Retry-After in seconds", async () => {
    const clock = manualClock(0);
    const breaker = httpBreaker(clock);
    const response = reply(429, "120");
    assert.equal(await breaker.execute(() => Promise.resolve(response)), response);
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 120_000);
    const rejection = await breaker.execute(() => Promise.resolve(reply(200))).catch((e) => e);
    assert.ok(rejection instanceof BreakerOpenError);
    assert.equal(rejection.retryAfterMs, 120_000);
    clock.now = 119_999;
    assert.equal(breaker.state, "open");
    clock.now = 120_000;
    assert.equal(breaker.state, "half-open");
  });

  it("Breaker stays open until a 503 Response's Retry-After HTTP date", async () => {
    const clock = manualClock(Date.UTC(2025, 0, 1, 12));
    const breaker = httpBreaker(clock);
    const start = clock.now;
    await breaker.execute(() => {
      clock.advance(1_000);
      return Promise.resolve(reply(503, new Date(clock.now + 90_000).toUTCString()));
    });
    assert.equal(breaker.openUntil, start + 1_000 + 90_000, "measured from the failure");
    assert.equal(breaker.retryAfterMs, 90_000);
  });

  it("Breaker reads the hint of an error's numeric retryAfterMs", async () => {
    const clock = manualClock(0);
    const breaker = httpBreaker(clock);
    const busy = Object.assign(new Error("busy"), { retryAfterMs: 45_000 });
    await assert.rejects(breaker.execute(() => Promise.reject(busy)), (e) => e === busy);
    assert.equal(breaker.openUntil, 45_000);
    const rejection = await breaker.execute(() => Promise.resolve(1)).catch((e) => e);
    assert.ok(rejection instanceof BreakerOpenError);
    assert.equal(rejection.retryAfterMs, 45_000);
    assert.equal(rejection.cause, busy);
  });

  it("Breaker applies the hint of a failed trial", async () => {
    const clock = manualClock(0);
    const breaker = httpBreaker(clock);
    await breaker.execute(() => Promise.resolve(reply(500)));
    assert.equal(breaker.openUntil, 30_000);
    clock.now = 30_000;
    await breaker.execute(() => Promise.resolve(reply(429, "100")));
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 130_000);
  });

  it("Breaker applies the hint when a rate rule opens the circuit", async () => {
    const clock = manualClock(0);
    const breaker = httpBreaker(clock, {
      failureThreshold: Infinity,
      failureRate: 0.5,
      minimumCalls: 2,
      window: { calls: 2 },
    });
    await breaker.execute(() => Promise.resolve(reply(200)));
    await breaker.execute(() => Promise.resolve(reply(503, "60")));
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 60_000);
  });

  it("Breaker takes the hint only from the failure that opens the circuit", async () => {
    const clock = manualClock(0);
    const breaker = httpBreaker(clock, { failureThreshold: 2 });
    await breaker.execute(() => Promise.resolve(reply(429, "120")));
    assert.equal(breaker.state, "closed");
    await breaker.execute(() => Promise.resolve(reply(500)));
    assert.equal(breaker.openUntil, 30_000);
  });

  it("Breaker does not shorten recoveryTimeout for a shorter hint", async () => {
    const clock = manualClock(0);
    const breaker = httpBreaker(clock);
    await breaker.execute(() => Promise.resolve(reply(429, "10")));
    assert.equal(breaker.openUntil, 30_000);
    assert.equal(breaker.retryAfterMs, 30_000);
  });

  it("Breaker keeps the longer of a recoveryTimeout function's period and the hint", async () => {
    const clock = manualClock(0);
    const breaker = httpBreaker(clock, { recoveryTimeout: () => 50_000 });
    await breaker.execute(() => Promise.resolve(reply(503, "20")));
    assert.equal(breaker.openUntil, 50_000);
    clock.now = 50_000;
    await breaker.execute(() => Promise.resolve(reply(503, "70")));
    assert.equal(breaker.openUntil, 120_000);
  });

  it("Breaker caps a hint at maxRetryAfter", async () => {
    const clock = manualClock(0);
    const capped = httpBreaker(clock, { maxRetryAfter: 60_000 });
    await capped.execute(() => Promise.resolve(reply(429, "120")));
    assert.equal(capped.openUntil, 60_000);
    const byDefault = httpBreaker(clock);
    await byDefault.execute(() => Promise.resolve(reply(429, "7200")));
    assert.equal(byDefault.openUntil, 3_600_000, "maxRetryAfter defaults to an hour");
    const error = httpBreaker(clock, { maxRetryAfter: 40_000 });
    await error.execute(() => Promise.reject(Object.assign(new Error("x"), { retryAfterMs: 1e9 })))
      .catch(() => {});
    assert.equal(error.openUntil, 40_000);
  });

  it("Breaker ignores Retry-After on a 500", async () => {
    const clock = manualClock(0);
    const breaker = httpBreaker(clock);
    await breaker.execute(() => Promise.resolve(reply(500, "120")));
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 30_000);
  });

  for (const header of ["soon", "120s", "", "Tue, 32 Jan 2024 00:00:00 GMT", "12 0"]) {
    it(`Breaker ignores a malformed Retry-After header ${JSON.stringify(header)}`, async () => {
      const clock = manualClock(0);
      const breaker = httpBreaker(clock);
      await breaker.execute(() => Promise.resolve(reply(429, header)));
      assert.equal(breaker.state, "open");
      assert.equal(breaker.openUntil, 30_000);
    });
  }

  for (const header of ["1.5", "-1"]) {
    it(`Breaker ignores a Retry-After of ${JSON.stringify(header)}: neither delay-seconds nor an HTTP date`, async () => {
      const clock = manualClock(0);
      const breaker = httpBreaker(clock);
      await breaker.execute(() => Promise.resolve(reply(503, header)));
      assert.equal(breaker.state, "open");
      assert.equal(breaker.openUntil, 30_000);
    });
  }
});

describe("Breaker.configure() and the window", () => {
  it("Breaker.configure() keeps the window's counts when the window stays the same", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.9,
      minimumCalls: 4,
      window: { calls: 10 },
    });
    await run(breaker, clock, "FFF");
    breaker.configure({ failureRate: 0.5 });
    assert.deepEqual(breaker.stats, statsOf(3, 3, 0));
    breaker.configure({ window: { calls: 10 }, shouldTrip: () => false });
    assert.deepEqual(breaker.stats, statsOf(3, 3, 0));
    assert.deepEqual(
      await run(breaker, clock, "S"),
      ["open"],
      "3 / 4 >= 0.5 with the kept history",
    );
  });

  it("Breaker.configure() drops the window when window.calls changes", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      clock,
      failureRate: 0.5,
      minimumCalls: 4,
      window: { calls: 10 },
    });
    await run(breaker, clock, "FFF");
    breaker.configure({ window: { calls: 20 } });
    assert.deepEqual(breaker.stats, EMPTY);
    assert.deepEqual(await run(breaker, clock, "S"), ["closed"]);
    assert.deepEqual(breaker.stats, statsOf(1, 0, 0));
  });

  it("Breaker.configure() drops the window when its kind changes", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, failureRate: 0.9, window: { calls: 10 } });
    await run(breaker, clock, "FFS");
    breaker.configure({ window: { duration: 10_000, buckets: 10 } });
    assert.deepEqual(breaker.stats, EMPTY);
    await run(breaker, clock, "FS");
    assert.deepEqual(breaker.stats, statsOf(2, 1, 0));
    breaker.configure({ window: { calls: 10 } });
    assert.deepEqual(breaker.stats, EMPTY);
  });

  it("Breaker.configure() drops a time window when its buckets change and keeps it otherwise", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, failureRate: 0.9 }); // 60 s in 10 buckets
    await run(breaker, clock, "FFS");
    breaker.configure({ window: { duration: 60_000, buckets: 10 } });
    assert.deepEqual(breaker.stats, statsOf(3, 2, 0), "the default window spelled out");
    breaker.configure({ slowCallRate: 0.5, slowCallDuration: 100 });
    assert.deepEqual(breaker.stats, statsOf(3, 2, 0), "another rule, the same window");
    breaker.configure({ window: { duration: 60_000, buckets: 20 } });
    assert.deepEqual(breaker.stats, EMPTY);
    await run(breaker, clock, "F");
    breaker.configure({ window: { duration: 30_000, buckets: 20 } });
    assert.deepEqual(breaker.stats, EMPTY);
  });

  it("Breaker.configure() drops a time window whose duration changes with the same bucket size", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ clock, failureRate: 0.9, window: { duration: 60_000 } });
    await run(breaker, clock, "FF");
    breaker.configure({ window: { duration: 60_000 } });
    assert.deepEqual(breaker.stats, statsOf(2, 2, 0), "buckets defaults to 10 both times");
    breaker.configure({ window: { duration: 120_000, buckets: 20 } }); // 6 s buckets still
    assert.deepEqual(breaker.stats, EMPTY);
  });
});
