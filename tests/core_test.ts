import assert from "node:assert/strict";
import fc from "fast-check";
import {
  admit,
  classifyError,
  close,
  createPolicy,
  emptyTally,
  halfOpen,
  includesWrite,
  INITIAL_SNAPSHOT,
  isForgettable,
  isolate,
  isRejection,
  markWrite,
  needsClock,
  open,
  type Policy,
  readWriteMarks,
  recordedState,
  recordFailure,
  recordNeutral,
  recordSuccess,
  release,
  retryAfterAt,
  retryAfterHint,
  type Snapshot,
  snapshotFromJSON,
  snapshotToJSON,
  stateAt,
  streamDurationMs,
  successNeedsClock,
  tallyOutcome,
  WRITE_MARK_TTL_MS,
} from "../src/core/mod.ts";
import { fromArray, peek, push, shift, toArray } from "../src/core/fifo.ts";
import { createPolicySharingRules } from "../src/core/policy.ts";
import { describe, it } from "./timer_leaks.ts";

const silent = () => {};

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** Applies the transition, after freezing its input, so any mutation throws. */
function step(snapshot: Snapshot, transition: (s: Snapshot) => Snapshot): Snapshot {
  return transition(deepFreeze(snapshot));
}

describe("core policy", () => {
  it("createPolicy() fills the defaults of DESIGN.md", () => {
    const policy = createPolicy({});
    assert.equal(policy.name, "breaker");
    assert.equal(policy.failureThreshold, 5);
    assert.equal(policy.recoveryTimeout, 30_000);
    assert.equal(policy.halfOpenMaxCalls, 1);
    assert.equal(policy.successThreshold, 1);
    assert.equal(policy.rules, undefined, "no rule judges a window");
    assert.equal(policy.errors, undefined, "no matcher is kept");
    assert.equal(policy.streams, undefined, "no stream option is kept");
    assert.equal(policy.timed, false);
    assert.equal(policy.maxRetryAfter, 3_600_000);
    assert.ok(Object.isFrozen(policy));
  });

  it("createPolicy() turns failureThreshold off when a window rule is set", () => {
    for (const options of [{ failureRate: 0.5 }, { shouldTrip: () => false }]) {
      const policy = createPolicy(options);
      assert.equal(policy.failureThreshold, Infinity);
      assert.deepEqual(policy.rules?.window, {
        kind: "time",
        duration: 60_000,
        buckets: 10,
        bucketMs: 6_000,
      });
      assert.equal(policy.rules?.minimumCalls, 20);
    }
    const both = createPolicy({ failureRate: 0.5, failureThreshold: 3, window: { calls: 10 } });
    assert.equal(both.failureThreshold, 3);
    assert.equal(both.rules?.minimumCalls, 10, "minimumCalls defaults to at most window.calls");
    assert.equal(both.timed, false, "a count window without the slow rule needs no clock");
    assert.equal(createPolicy({ failureRate: 0.5 }).timed, true, "a time window needs the clock");
    assert.equal(
      createPolicy({ failureRate: 0.5, window: { calls: 5 }, slowCallRate: 1, slowCallDuration: 5 })
        .timed,
      true,
    );
  });

  it("createPolicySharingRules() shares the rules it is given when the options give equal ones", () => {
    const first = createPolicy({ failureRate: 0.5, window: { duration: 10_000, buckets: 5 } });
    const rules = first.rules;
    assert.ok(rules !== undefined && Object.isFrozen(rules));
    const again = createPolicySharingRules(
      { name: "other", failureRate: 0.5, window: { duration: 10_000, buckets: 5 } },
      "",
      undefined,
      rules,
    );
    assert.equal(again.rules, rules, "equal rules: the same object");
    assert.equal(again.name, "other");
    const rate = createPolicySharingRules(
      { failureRate: 0.4, window: { duration: 10_000, buckets: 5 } },
      "",
      undefined,
      rules,
    );
    assert.notEqual(rate.rules, rules);
    assert.equal(rate.rules?.failureRate, 0.4);
    assert.equal(rate.rules?.window, rules.window, "the window alone is shared");
    const window = createPolicySharingRules(
      { failureRate: 0.5, window: { duration: 10_000, buckets: 10 } },
      "",
      undefined,
      rules,
    );
    assert.notEqual(window.rules, rules);
    assert.deepEqual(window.rules?.window, {
      kind: "time",
      duration: 10_000,
      buckets: 10,
      bucketMs: 1_000,
    });
    const trip = () => false;
    assert.notEqual(
      createPolicySharingRules(
        { failureRate: 0.5, window: { duration: 10_000, buckets: 5 }, shouldTrip: trip },
        "",
        undefined,
        rules,
      ).rules,
      rules,
    );
  });

  it("classifyError() judges ignore, then exclude, then isFailure", () => {
    const policy = createPolicy({
      ignore: (e) => e === "ignored",
      exclude: RangeError,
      isFailure: [TypeError, RangeError],
    });
    assert.equal(classifyError(policy, "ignored"), "neutral");
    assert.equal(classifyError(policy, new RangeError()), "success");
    assert.equal(classifyError(policy, new TypeError()), "failure");
    assert.equal(classifyError(policy, new Error()), "success");
    assert.equal(classifyError(createPolicy({}), undefined), "failure");
  });
});

describe("core transitions", () => {
  const policy = createPolicy({ failureThreshold: 2, recoveryTimeout: 100 }, "test", silent);

  it("admit() and recordSuccess() return the same snapshot while closed: no allocation", () => {
    const closed = deepFreeze({ ...INITIAL_SNAPSHOT });
    assert.equal(admit(policy, closed, 0), closed);
    assert.equal(recordSuccess(policy, closed, 0, 0, 0), closed);
    assert.equal(recordNeutral(policy, closed, 0), closed);
    assert.equal(close(policy, closed, 0), closed);
    assert.equal(needsClock(policy, closed), false);
  });

  it("transitions never change their input snapshot", () => {
    let s = step(INITIAL_SNAPSHOT, (x) => recordFailure(policy, x, 0, new Error("a"), 0, 0));
    s = step(s, (x) => recordFailure(policy, x, x.generation, new Error("b"), 0, 0));
    assert.equal(s.state, "open");
    const verdict = admit(policy, deepFreeze(s), 100);
    assert.ok(!isRejection(verdict));
    s = step(verdict, (x) => recordSuccess(policy, x, x.generation, 0, 100));
    assert.equal(s.state, "closed");
    s = step(s, (x) => open(policy, x, 200));
    s = step(s, (x) => halfOpen(policy, x, 200));
    s = step(s, (x) => isolate(policy, x, 250));
    s = step(s, (x) => release(policy, x, 300));
    assert.equal(s.state, "closed");
  });

  it("admit() rejects while open with the time left, and turns half-open at now == openUntil", () => {
    const opened = open(policy, INITIAL_SNAPSHOT, 1_000);
    const early = admit(policy, opened, 1_099);
    assert.ok(isRejection(early));
    assert.equal(early.rejectedIn, "open");
    assert.equal(early.retryAfterMs, 1);
    assert.equal(early.snapshot, opened);
    assert.equal(stateAt(opened, 1_099), "open");
    assert.equal(stateAt(opened, 1_100), "half-open");
    assert.equal(recordedState(opened), "open");
    const trial = admit(policy, opened, 1_100);
    assert.ok(!isRejection(trial));
    assert.equal(trial.state, "half-open");
    assert.equal(trial.trials, 1);
    assert.equal(trial.generation, opened.generation + 1);
  });

  it("recordSuccess()/recordFailure() ignore an outcome from another generation", () => {
    const s = recordFailure(policy, INITIAL_SNAPSHOT, 0, new Error("a"), 0, 0);
    assert.equal(recordFailure(policy, s, 7, new Error("late"), 0, 0), s);
    assert.equal(recordSuccess(policy, s, 7, 0, 0), s);
    const trial = admit(policy, open(policy, s, 0), 100) as Snapshot;
    assert.equal(recordNeutral(policy, trial, trial.generation - 1), trial);
    assert.equal(recordNeutral(policy, trial, trial.generation).trials, 0);
  });

  it("isolate() overlays every state and release() of the last hold closes", () => {
    const held = isolate(policy, isolate(policy, open(policy, INITIAL_SNAPSHOT, 0), 0), 0);
    assert.equal(stateAt(held, 1e12), "isolated");
    assert.equal(retryAfterAt(held, 0), Infinity);
    const verdict = admit(policy, held, 1e12);
    assert.ok(isRejection(verdict) && verdict.retryAfterMs === Infinity);
    const once = release(policy, held, 5);
    assert.equal(stateAt(once, 5), "isolated");
    const closed = release(policy, once, 5);
    assert.equal(stateAt(closed, 5), "closed");
    assert.equal(closed.failureCount, 0);
  });
});

describe("core retry-after", () => {
  it("retryAfterHint() reads 429/503 Retry-After in seconds or as a date, and retryAfterMs", () => {
    const now = Date.UTC(2026, 0, 1);
    const at = (status: number, value: string) =>
      retryAfterHint(new Response(null, { status, headers: { "retry-after": value } }), now);
    assert.equal(at(429, "120"), 120_000);
    assert.equal(at(503, " 5 "), 5_000);
    assert.equal(at(503, new Date(now + 90_000).toUTCString()), 90_000);
    assert.equal(at(503, new Date(now - 90_000).toUTCString()), 0);
    assert.equal(at(500, "120"), undefined, "only 429 and 503 carry the instruction");
    assert.equal(at(503, "soon"), undefined);
    assert.equal(at(503, "-5"), undefined);
    assert.equal(retryAfterHint({ retryAfterMs: 250 }, now), 250);
    assert.equal(retryAfterHint({ retryAfterMs: NaN }, now), undefined);
    assert.equal(retryAfterHint("503", now), undefined);
    assert.equal(
      retryAfterHint({
        status: 503,
        headers: {
          get() {
            throw new Error("x");
          },
        },
      }, now),
      undefined,
    );
  });
});

describe("core streams", () => {
  it("streamDurationMs() is the wait from admission to the first item, none without one", () => {
    assert.equal(streamDurationMs(1_000, 1_250), 250);
    assert.equal(streamDurationMs(1_000, 1_000), 0);
    assert.equal(streamDurationMs(1_000, undefined), undefined);
  });
});

describe("core fifo", () => {
  it("push/shift/peek behave as an array queue", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer(), fc.constant("shift"))), (ops) => {
        let queue = fromArray<number>([]);
        const model: number[] = [];
        for (const op of ops) {
          if (op === "shift") {
            if (queue === undefined) continue;
            assert.equal(peek(queue), model[0]);
            queue = shift(queue);
            model.shift();
          } else {
            queue = push(queue, op);
            model.push(op);
          }
          assert.deepEqual(toArray(queue), model);
          assert.equal(queue?.size ?? 0, model.length);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("shift() leaves the queue it was given intact", () => {
    const queue = fromArray([1, 2, 3])!;
    const rest = shift(queue)!;
    assert.deepEqual(toArray(queue), [1, 2, 3]);
    assert.deepEqual(toArray(push(rest, 4)), [2, 3, 4]);
    assert.deepEqual(toArray(push(rest, 5)), [2, 3, 5]);
  });
});

describe("core serialization", () => {
  const windowed = createPolicy({ failureRate: 0.5, window: { calls: 40 }, minimumCalls: 40 });
  const timedPolicy = createPolicy({ failureRate: 0.5, window: { duration: 1_000, buckets: 4 } });

  function roundTrip(p: Policy, s: Snapshot): Snapshot {
    return snapshotFromJSON(p, JSON.parse(JSON.stringify(snapshotToJSON(s))));
  }

  it("snapshotToJSON()/snapshotFromJSON() round-trip every state with its window", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(3_000)), { maxLength: 120 }), (calls) => {
        for (const p of [windowed, timedPolicy]) {
          let s: Snapshot = INITIAL_SNAPSHOT;
          let now = 0;
          for (const [failed, gap] of calls) {
            now += gap;
            s = failed
              ? recordFailure(p, s, s.generation, "x", 0, now)
              : recordSuccess(p, s, s.generation, 0, now);
            if (s.state !== "closed") s = close(p, s, now);
          }
          const restored = roundTrip(p, s);
          assert.deepEqual(snapshotToJSON(restored), snapshotToJSON(s));
          assert.equal(restored.window?.calls, s.window?.calls);
          assert.equal(restored.window?.failures, s.window?.failures);
        }
      }),
      { numRuns: 100 },
    );
    for (
      const s of [
        open(windowed, INITIAL_SNAPSHOT, 5),
        halfOpen(windowed, INITIAL_SNAPSHOT, 5),
        {
          ...INITIAL_SNAPSHOT,
          state: "recovering",
          rampStart: 1,
          rampUntil: 10,
          rampCalls: 3,
        } as const,
      ]
    ) {
      assert.deepEqual(snapshotToJSON(roundTrip(windowed, s)), snapshotToJSON(s));
    }
  });

  it("snapshotFromJSON() drops a window that does not fit the policy", () => {
    let s: Snapshot = INITIAL_SNAPSHOT;
    s = recordFailure(windowed, s, 0, "x", 0, 0);
    const json = JSON.parse(JSON.stringify(snapshotToJSON(s)));
    assert.equal(snapshotFromJSON(timedPolicy, json).window, undefined);
    assert.equal(snapshotFromJSON(createPolicy({}), json).window, undefined);
    const smaller = createPolicy({ failureRate: 0.5, window: { calls: 1 } });
    s = recordSuccess(windowed, s, 0, 0, 0);
    const kept = snapshotFromJSON(smaller, JSON.parse(JSON.stringify(snapshotToJSON(s))));
    assert.equal(kept.window?.calls, 1, "a smaller count window keeps the newest outcomes");
    assert.equal(kept.window?.failures, 0);
  });

  it("snapshotFromJSON() rejects malformed windows with the path of the bad field", () => {
    const base = snapshotToJSON(INITIAL_SNAPSHOT);
    const bad: [unknown, RegExp][] = [
      [{ kind: "time", bucketMs: 250, buckets: [[1, 1, 2, 0]] }, /"state.window.buckets\[0\]"/],
      [
        { kind: "time", bucketMs: 250, buckets: [[2, 1, 0, 0], [1, 1, 0, 0]] },
        /above the previous/,
      ],
      [{ kind: "time", bucketMs: -1, buckets: [[1, 1, 0, 0]] }, /"state.window.bucketMs"/],
      [{ kind: "ring" }, /"state.window.kind"/],
    ];
    for (const [window, message] of bad) {
      assert.throws(() => snapshotFromJSON(timedPolicy, { ...base, window }), {
        name: "TypeError",
        message,
      });
    }
  });
});

describe("core forgettable", () => {
  it("isForgettable() holds only for a closed circuit with nothing counted", () => {
    const policy = createPolicy({ failureThreshold: 3, recoveryTimeout: 100 });
    assert.equal(isForgettable(policy, INITIAL_SNAPSHOT, 0), true);
    const failed = recordFailure(
      policy,
      INITIAL_SNAPSHOT,
      INITIAL_SNAPSHOT.generation,
      new Error("down"),
      0,
      0,
    );
    assert.equal(isForgettable(policy, failed, 0), false);
    const opened = open(policy, INITIAL_SNAPSHOT, 0);
    assert.equal(isForgettable(policy, opened, 0), false);
    assert.equal(isForgettable(policy, isolate(policy, INITIAL_SNAPSHOT, 0), 0), false);
    const windowed = createPolicy({ failureRate: 0.5, window: { duration: 1_000, buckets: 10 } });
    const failedOnce = recordFailure(
      windowed,
      INITIAL_SNAPSHOT,
      INITIAL_SNAPSHOT.generation,
      new Error("down"),
      0,
      0,
    );
    // A success ends the consecutive count; the failure stays in the window until it expires.
    const counted = recordSuccess(windowed, failedOnce, failedOnce.generation, 0, 0);
    assert.equal(counted.failureCount, 0);
    assert.equal(isForgettable(windowed, counted, 500), false);
    assert.equal(isForgettable(windowed, counted, 5_000), true, "the failure left the window");
  });
});

describe("core tallies", () => {
  it("tallyOutcome() keeps the same tally for a success after a success, with nothing windowed", () => {
    const policy = createPolicy({});
    const once = tallyOutcome(policy, emptyTally(0), INITIAL_SNAPSHOT, 0, false, 0, 0);
    assert.deepEqual(once, {
      generation: 0,
      outcomes: 1,
      reset: true,
      failures: 0,
      window: undefined,
    });
    assert.equal(tallyOutcome(policy, once, INITIAL_SNAPSHOT, 0, false, 0, 0), once);
    const failed = tallyOutcome(policy, once, INITIAL_SNAPSHOT, 0, true, 0, 0);
    assert.equal(failed.failures, 1);
    assert.notEqual(tallyOutcome(policy, failed, INITIAL_SNAPSHOT, 0, false, 0, 0), failed);
    const windowed = createPolicy({ failureRate: 0.5, window: { calls: 10 } });
    const first = tallyOutcome(windowed, emptyTally(0), INITIAL_SNAPSHOT, 0, false, 0, 0);
    assert.notEqual(tallyOutcome(windowed, first, INITIAL_SNAPSHOT, 0, false, 0, 0), first);
  });
});

describe("core write marks", () => {
  it("markWrite() carries the stored marks forward, sets the writer's, and drops stale ones", () => {
    const now = 10 * WRITE_MARK_TTL_MS;
    const stored = { a: [3, now - 1_000] as const, stale: [9, now - WRITE_MARK_TTL_MS] as const };
    assert.deepEqual({ ...markWrite(stored, "b", 1, now) }, { a: [3, now - 1_000], b: [1, now] });
    assert.deepEqual({ ...markWrite(undefined, "a", 4, now) }, { a: [4, now] });
    assert.deepEqual({ ...markWrite({ a: [3, now] }, "a", 4, now) }, { a: [4, now] });
  });

  it("includesWrite() holds for the writer's write and earlier ones only", () => {
    const marks = { a: [3, 0] as const };
    assert.equal(includesWrite(marks, "a", 3), true);
    assert.equal(includesWrite(marks, "a", 2), true);
    assert.equal(includesWrite(marks, "a", 4), false);
    assert.equal(includesWrite(marks, "b", 1), false);
    assert.equal(includesWrite(undefined, "a", 1), false);
    assert.equal(includesWrite(marks, "toString", 1), false);
  });

  it("readWriteMarks() keeps well-formed marks of any parsed value and drops the rest", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const marks = readWriteMarks(value);
        for (const mark of Object.values(marks)) {
          assert.ok(Number.isSafeInteger(mark[0]) && Number.isFinite(mark[1]));
        }
      }),
    );
    const parsed = JSON.parse('{"writes":{"a":[3,0],"b":"x","__proto__":[1,2],"c":[1]}}');
    assert.deepEqual({ ...readWriteMarks(parsed) }, { a: [3, 0], ["__proto__"]: [1, 2] });
    assert.deepEqual({ ...readWriteMarks({ writes: [[1, 2]] }) }, {});
    assert.deepEqual({ ...readWriteMarks(null) }, {});
  });
});

describe("core successNeedsClock()", () => {
  it("successNeedsClock() is false only where recordSuccess() gives the same snapshot at any time", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 12 }),
        fc.double({ min: 0.05, max: 1, noNaN: true }),
        fc.array(fc.boolean(), { maxLength: 40 }),
        (calls, minimumCalls, failureRate, outcomes) => {
          const policy = createPolicy(
            { failureRate, minimumCalls: Math.min(minimumCalls, calls), window: { calls } },
            "test",
            () => {},
          );
          let snapshot = INITIAL_SNAPSHOT;
          for (const failed of outcomes) {
            if (snapshot.state !== "closed") break;
            if (!successNeedsClock(policy, snapshot)) {
              const early = recordSuccess(policy, snapshot, snapshot.generation, 0, 0);
              const late = recordSuccess(policy, snapshot, snapshot.generation, 0, 987_654);
              assert.deepEqual(early, late);
              assert.equal(early.state, "closed");
            }
            snapshot = failed
              ? recordFailure(policy, snapshot, snapshot.generation, new Error("x"), 0, 1)
              : recordSuccess(policy, snapshot, snapshot.generation, 0, 1);
          }
        },
      ),
    );
  });

  it("successNeedsClock() is true for a time window, a trial and a shared circuit", () => {
    assert.equal(successNeedsClock(createPolicy({ failureRate: 0.5 }), INITIAL_SNAPSHOT), true);
    const halfOpen = { ...INITIAL_SNAPSHOT, state: "half-open" as const };
    assert.equal(successNeedsClock(createPolicy({}), halfOpen), true);
    assert.equal(successNeedsClock(createPolicy({}), INITIAL_SNAPSHOT), false);
  });
});
