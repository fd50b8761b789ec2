/**
 * Hostile input: `state` snapshots that are random JSON, shaped like snapshots, or real
 * `toJSON()` outputs with fields mutated (wrong types, NaN, negative, huge, missing, extra,
 * nested garbage, `__proto__`); clocks that return NaN or other non-times, throw, go backwards
 * or jump days ahead; options changed by the caller after construction.
 *
 * A restore either throws the documented error (a TypeError whose message starts with
 * `Cannot create breaker` and names the bad field) or gives a breaker in a legal state: its
 * readings are consistent, it round-trips through `toJSON()`, its calls work, its generations
 * keep late outcomes out, and it recovers once its period is over.
 *
 * Replaying a failure: FC_SEED=S FC_PATH=P, as printed (see fast_check_runs.ts), with
 * `--filter "<describe name>"` (Deno) or `-t "<test name>"` (Bun).
 */

import assert from "node:assert/strict";
import fc from "fast-check";
import {
  Breaker,
  type BreakerListener,
  BreakerOpenError,
  type BreakerOptions,
  type ErrorMatcher,
} from "../mod.ts";
import { replayable } from "./fast_check_runs.ts";
import { deferred, flush, type ManualClock, manualClock } from "./manual_clock.ts";
import { captureConsole } from "./console_capture.ts";
import { recordEvents } from "./event_recorder.ts";
import { describe, it } from "./timer_leaks.ts";

// ------------------------------------------------------------------------------- policies

/** The policies snapshots come from and are restored into: windows of both kinds, a ramp. */
const POLICIES: readonly BreakerOptions[] = [
  {},
  { failureThreshold: 2, successThreshold: 2, halfOpenMaxCalls: 2, recoveryTimeout: 100 },
  { failureRate: 0.5, minimumCalls: 2, window: { calls: 4 }, recoveryTimeout: 100 },
  {
    failureRate: 0.5,
    minimumCalls: 2,
    window: { duration: 1_000, buckets: 4 },
    recoveryTimeout: 50,
  },
  {
    failureRate: 0.5,
    minimumCalls: 2,
    window: { calls: 20 },
    recoveryTimeout: 10,
    recoveryRamp: { duration: 1_000, initialRate: 0.25 },
  },
  {
    slowCallRate: 0.5,
    slowCallDuration: 10,
    minimumCalls: 1,
    window: { duration: 100, buckets: 10 },
  },
];
const policyArb = fc.nat(POLICIES.length - 1);

/** The documented restore error: a TypeError starting with the context and naming the field. */
const RESTORE_ERROR = /^Cannot create breaker "breaker": "state(\.[\w.[\]]+)?" must be /;

/** Restores `state` into a breaker with policy `policyIndex`; checks the breaker or the error. */
async function restoreOrReject(policyIndex: number, state: unknown): Promise<void> {
  const clock = manualClock(1_000_000);
  const options = { ...POLICIES[policyIndex], clock };
  let breaker: Breaker;
  try {
    breaker = new Breaker({ ...options, state: state as never });
  } catch (error) {
    assert.ok(error instanceof TypeError, `not a TypeError: ${String(error)}`);
    assert.match(error.message, RESTORE_ERROR);
    return;
  }
  await assertLegal(breaker, clock, options, state);
}

/** Everything a restored breaker must satisfy. */
async function assertLegal(
  breaker: Breaker,
  clock: ManualClock,
  options: BreakerOptions,
  source: unknown,
  restored = true,
): Promise<void> {
  const what = () => `restored from ${describeJSON(source)}`;
  const snapshot = breaker.snapshot;
  // Readings are consistent with each other.
  assert.ok(["closed", "open", "half-open", "recovering"].includes(breaker.state), what());
  assert.ok(Number.isSafeInteger(breaker.failureCount) && breaker.failureCount >= 0, what());
  assert.equal(snapshot.isolated, 0, what());
  assert.equal(snapshot.trials, 0, what());
  if (restored) assert.equal(snapshot.lastFailure, undefined, what());
  const retryAfterMs = breaker.retryAfterMs;
  assert.ok(
    Number.isFinite(retryAfterMs) && retryAfterMs >= 0,
    `retryAfterMs ${retryAfterMs}, ${what()}`,
  );
  if (snapshot.state === "open") {
    assert.ok(Number.isFinite(breaker.openUntil), what());
    assert.equal(retryAfterMs, Math.max(0, (breaker.openUntil as number) - clock.now), what());
  } else {
    assert.equal(breaker.openUntil, undefined, what());
    assert.equal(retryAfterMs, 0, what());
  }
  if (snapshot.state === "recovering") {
    assert.ok((snapshot.rampUntil as number) >= (snapshot.rampStart as number), what());
  }
  const stats = breaker.stats;
  for (const count of [stats.calls, stats.failures, stats.slowCalls]) {
    assert.ok(Number.isSafeInteger(count) && count >= 0, what());
  }
  assert.ok(stats.failures <= stats.calls && stats.slowCalls <= stats.calls, what());
  // It round-trips: its JSON holds only what JSON can carry, and restores to the same JSON.
  const json = breaker.toJSON();
  assertPlainJSON(json, "toJSON()");
  const text = JSON.stringify(json);
  const again = new Breaker({ ...options, state: JSON.parse(text) });
  assert.deepEqual(again.toJSON(), JSON.parse(text), what());
  assert.equal(again.state, breaker.state, what());

  // Generations keep counting: a trial from an earlier half-open period never counts.
  const probe = new Breaker({ ...options, state: JSON.parse(text) });
  probe.open();
  probe.halfOpen();
  const late = deferred<string>();
  const trial = probe.execute(() => late.promise);
  probe.open();
  probe.halfOpen();
  late.resolve("late");
  await trial;
  assert.equal(probe.state, "half-open", `a late trial counted, ${what()}`);
  assert.equal(probe.snapshot.trialSuccesses, 0, what());

  // Its calls work, and once its period is over it admits calls and closes again.
  let admitted = 0;
  for (let attempt = 0; attempt < 40 && (admitted < 3 || breaker.state !== "closed"); attempt++) {
    clock.now += breaker.retryAfterMs;
    const { rampUntil } = breaker.snapshot;
    if (attempt >= 20 && rampUntil !== undefined) clock.now = Math.max(clock.now, rampUntil);
    try {
      assert.equal(await breaker.execute(() => Promise.resolve("ok")), "ok");
      admitted++;
    } catch (error) {
      assert.ok(error instanceof BreakerOpenError, `${String(error)}, ${what()}`);
      assert.ok(error.retryAfterMs >= 0 && error.retryAfterMs !== Infinity, what());
    }
  }
  assert.equal(breaker.state, "closed", `not recovered, ${what()}`);
  assert.ok(admitted >= 3, what());
}

/** Finite numbers, strings, booleans, null, arrays and plain objects only. */
function assertPlainJSON(value: unknown, path: string): void {
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    assert.ok(Number.isFinite(value), `${path} is ${value}`);
    return;
  }
  assert.ok(typeof value === "object", `${path} is ${typeof value}`);
  if (Array.isArray(value)) {
    value.forEach((item, i) => assertPlainJSON(item, `${path}[${i}]`));
    return;
  }
  assert.equal(Object.getPrototypeOf(value), Object.prototype, `${path} is not a plain object`);
  for (const [key, item] of Object.entries(value)) assertPlainJSON(item, `${path}.${key}`);
}

function describeJSON(value: unknown): string {
  try {
    const text = JSON.stringify(
      value,
      (_key, v) =>
        typeof v === "number" && !Number.isFinite(v)
          ? String(v)
          : v === undefined
          ? "<undefined>"
          : typeof v === "bigint"
          ? `${v}n`
          : v,
    );
    return text === undefined ? String(value) : text.slice(0, 400);
  } catch {
    return String(value);
  }
}

// ------------------------------------------------------------------------------- snapshots

/** Numbers at the edges: not finite, negative, fractional, beyond safe integers. */
const edgeNumberArb = fc.constantFrom(
  Number.NaN,
  Infinity,
  -Infinity,
  -0,
  -1,
  0.5,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 2,
  2 ** 48,
  2 ** 48 + 1,
);

/** Values a field should never hold (shared constants are cloned before use). */
const hostileValueArb: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: edgeNumberArb, weight: 4 },
  {
    arbitrary: fc.constantFrom(
      "",
      "1",
      "open",
      "closed",
      "half-open",
      null,
      true,
      false,
      undefined,
      [],
      {},
      [[], {}],
      { kind: "calls", outcomes: "0123" },
      { kind: "time", bucketMs: 250, buckets: [[4_000, 2, 1, 0]] },
      { holder: "someone", until: 2e6 },
    ),
    weight: 3,
  },
  // Arrays with holes (a state object need not come from JSON.parse).
  { arbitrary: fc.sparseArray(fc.nat(5), { maxLength: 5 }), weight: 1 },
  { arbitrary: fc.integer(), weight: 1 },
  { arbitrary: fc.double(), weight: 1 },
  { arbitrary: fc.string({ maxLength: 8 }), weight: 1 },
  { arbitrary: fc.jsonValue({ maxDepth: 2 }), weight: 1 },
).map((value) => structuredClone(value));

/** Real snapshots: short histories of synchronous calls and manual control under a policy. */
const realSnapshotArb = fc.record({
  policy: policyArb,
  steps: fc.array(
    fc.constantFrom("success", "failure", "slow", "wait", "open", "halfOpen", "close"),
    { maxLength: 30 },
  ),
}).map(({ policy, steps }) => {
  const clock = manualClock(1_000_000);
  const breaker = new Breaker({ ...POLICIES[policy], clock });
  for (const step of steps) {
    try {
      if (step === "success") breaker.executeSync(() => "ok");
      else if (step === "failure") {
        breaker.executeSync(() => {
          throw new Error("down");
        });
      } else if (step === "slow") {
        breaker.executeSync(() => clock.advance(20));
      } else if (step === "wait") clock.advance(40);
      else breaker[step]();
    } catch {
      // the call's own error, or BreakerOpenError
    }
  }
  return { policy, json: JSON.parse(JSON.stringify(breaker.toJSON())) as Record<string, unknown> };
});

/** The policy a snapshot is restored into: mostly its own, sometimes another. */
const targetPolicyArb = (source: number) =>
  fc.oneof({ arbitrary: fc.constant(source), weight: 3 }, { arbitrary: policyArb, weight: 1 });

/** Every path to a field or element in a JSON value, as keys. */
function pathsOf(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== "object") return [];
  const paths: (string | number)[][] = [];
  // entries() also yields the holes a deleted element leaves.
  const entries = Array.isArray(value) ? [...value.entries()] : Object.entries(value);
  for (const [key, item] of entries) {
    paths.push([...prefix, key], ...pathsOf(item, [...prefix, key]));
  }
  return paths;
}

type Mutation = {
  readonly pick: number;
  readonly action: "set" | "delete" | "addKey";
  readonly key: string;
  readonly value: unknown;
};

const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  pick: fc.nat(),
  action: fc.constantFrom("set", "set", "delete", "addKey"),
  key: fc.constantFrom("__proto__", "constructor", "toJSON", "extra", "version", "length"),
  value: hostileValueArb,
});

/** A deep copy of a snapshot with the mutations applied, like a corrupted stored value. */
function mutate(source: Record<string, unknown>, mutations: readonly Mutation[]): unknown {
  const target = JSON.parse(JSON.stringify(source)) as Record<string, unknown>;
  for (const { pick, action, key, value } of mutations) {
    const paths = [[], ...pathsOf(target)];
    const path = paths[pick % paths.length] as (string | number)[];
    if (action === "addKey") {
      const container = path.reduce<unknown>(
        (node, k) => (node as Record<string, unknown>)?.[k],
        target,
      );
      if (
        container !== null && typeof container === "object" &&
        !(Array.isArray(container) && key === "length")
      ) {
        // An own data property, as JSON.parse makes one: `__proto__` too (an array's
        // length cannot be one).
        Reflect.defineProperty(container, key, {
          value,
          enumerable: true,
          configurable: true,
          writable: true,
        });
      }
      continue;
    }
    if (path.length === 0) continue;
    const parent = path.slice(0, -1).reduce<unknown>(
      (node, k) => (node as Record<string, unknown>)?.[k],
      target,
    ) as Record<string | number, unknown> | undefined;
    if (parent === null || typeof parent !== "object") continue;
    const last = path[path.length - 1] as string | number;
    if (action === "delete") delete parent[last];
    else parent[last] = value;
  }
  return target;
}

/** A time window's bucket: [index, calls, failures, slowCalls]. */
const bucketArb = fc.tuple(fc.integer({ min: 3_990, max: 4_010 }), fc.nat(5), fc.nat(5), fc.nat(5));

/** A plausible value mostly, a hostile one now and then. */
const mostly = (plausible: fc.Arbitrary<unknown>) =>
  fc.oneof({ arbitrary: plausible, weight: 7 }, { arbitrary: hostileValueArb, weight: 1 });

/** Objects shaped like snapshots, each field either plausible or hostile. */
const shapedSnapshotArb = fc.constantFrom("closed", "open", "half-open", "recovering").chain((
  state,
) => {
  const time = fc.integer({ min: 0, max: 2_000_000 });
  return fc.record({
    version: mostly(fc.constant(1)),
    state: mostly(fc.constant(state)),
    generation: mostly(fc.nat(50)),
    failureCount: mostly(fc.nat(10)),
    openUntil: mostly(state === "open" ? time : fc.constant(null)),
    openings: mostly(fc.nat(5)),
    trialSuccesses: mostly(fc.nat(3)),
    rampStart: mostly(state === "recovering" ? time : fc.constant(null)),
    rampUntil: mostly(state === "recovering" ? time : fc.constant(null)),
    rampCalls: mostly(fc.nat(100)),
    window: mostly(fc.oneof(
      fc.constant(null),
      fc.record({ kind: fc.constant("calls"), outcomes: fc.stringMatching(/^[0-3]{0,30}$/) }),
      fc.record({
        kind: fc.constant("time"),
        bucketMs: fc.constantFrom(250, 10, 7),
        // Buckets in a list with holes now and then, each now and then hostile.
        buckets: fc.sparseArray(
          fc.oneof(
            { arbitrary: bucketArb, weight: 6 },
            { arbitrary: hostileValueArb, weight: 1 },
            // A bucket with one count missing (a hole, not undefined).
            {
              arbitrary: fc.tuple(bucketArb, fc.nat(3)).map(([bucket, missing]) => {
                const holed: unknown[] = [...bucket];
                delete holed[missing];
                return holed;
              }),
              weight: 1,
            },
          ),
          { minNumElements: 1, maxLength: 4, noTrailingHole: true },
        ),
      }),
    )),
    lease: mostly(
      state === "half-open"
        ? fc.oneof(fc.constant(null), fc.record({ holder: fc.string(), until: time }))
        : fc.constant(null),
    ),
  });
});

describe("Breaker restoring hostile state", () => {
  it("Breaker restores any JSON value as state into a legal breaker or throws the documented TypeError", async () => {
    await fc.assert(
      fc.asyncProperty(policyArb, fc.oneof(fc.jsonValue(), fc.anything()), restoreOrReject),
      replayable(1_000),
    );
  });

  it("Breaker restores snapshot-shaped objects with hostile fields into a legal breaker or throws the documented TypeError", async () => {
    await fc.assert(
      fc.asyncProperty(policyArb, shapedSnapshotArb, restoreOrReject),
      replayable(2_000),
    );
  });

  it("Breaker restores mutated toJSON() outputs into a legal breaker or throws the documented TypeError", async () => {
    await fc.assert(
      fc.asyncProperty(
        realSnapshotArb.chain((source) =>
          fc.tuple(
            fc.constant(source.json),
            targetPolicyArb(source.policy),
            fc.array(mutationArb, { minLength: 1, maxLength: 3 }),
          )
        ),
        ([source, policy, mutations]) => restoreOrReject(policy, mutate(source, mutations)),
      ),
      replayable(2_000),
    );
  });

  it("Breaker restores every real toJSON() output, of any policy, into a legal breaker", async () => {
    await fc.assert(
      fc.asyncProperty(
        realSnapshotArb.chain((source) =>
          fc.tuple(fc.constant(source.json), targetPolicyArb(source.policy))
        ),
        async ([source, policy]) => {
          const clock = manualClock(1_000_000);
          const options = { ...POLICIES[policy], clock };
          const breaker = new Breaker({ ...options, state: source as never });
          await assertLegal(breaker, clock, options, source);
        },
      ),
      replayable(1_000),
    );
  });

  it("Breaker restores a snapshot whose keys include __proto__ without changing its prototype or Object.prototype", () => {
    const source = JSON.stringify(new Breaker().toJSON());
    const hostile = JSON.parse(
      source.replace("{", '{"__proto__":{"state":"open","openUntil":9e15,"polluted":true},'),
    );
    const breaker = new Breaker({ state: hostile });
    assert.equal(breaker.state, "closed");
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(breaker.toJSON()), Object.prototype);
  });
});

// ------------------------------------------------------------------------------- clocks

/** Values a broken clock returns, and how the error names them. */
const BAD_TIMES: readonly (readonly [unknown, string])[] = [
  [Number.NaN, "NaN"],
  [Infinity, "Infinity"],
  [-Infinity, "-Infinity"],
  [undefined, "undefined"],
  [null, "null"],
  ["1700000000000", '"1700000000000"'],
  [1_700_000_000_000n, "1700000000000n"],
  [new Date(0), "a Date"],
];

/** Every entry point that reads the clock, on an open breaker with a time window. */
const CLOCK_READERS: readonly (readonly [string, (breaker: Breaker) => unknown])[] = [
  ["state", (breaker) => breaker.state],
  ["retryAfterMs", (breaker) => breaker.retryAfterMs],
  ["stats", (breaker) => breaker.stats],
  ["execute()", (breaker) => breaker.execute(() => Promise.resolve(1))],
  [
    "execute() with a signal",
    (breaker) =>
      breaker.execute(() => Promise.resolve(1), { signal: new AbortController().signal }),
  ],
  ["executeSync()", (breaker) => breaker.executeSync(() => 1)],
  ["wrap()", (breaker) => breaker.wrap(() => Promise.resolve(1))()],
  ["wrapSync()", (breaker) => breaker.wrapSync(() => 1)()],
  ["open()", (breaker) => breaker.open()],
  ["halfOpen()", (breaker) => breaker.halfOpen()],
  ["close()", (breaker) => breaker.close()],
  ["isolate()", (breaker) => breaker.isolate()],
];

describe("Breaker with a broken clock", () => {
  for (const [reader, read] of CLOCK_READERS) {
    it(`Breaker ${reader} throws a TypeError naming "clock" and the value it returned, and changes nothing`, async () => {
      for (const [bad, shown] of BAD_TIMES) {
        let now: unknown = 1_000_000;
        const breaker = new Breaker({
          name: "db",
          registry: false,
          failureThreshold: 1,
          failureRate: 0.5,
          window: { duration: 1_000 },
          clock: () => now as number,
        });
        assert.throws(() =>
          breaker.executeSync(() => {
            throw new Error("down");
          })
        );
        const before = JSON.stringify(breaker.toJSON());
        now = bad;
        let thrown: unknown;
        try {
          await read(breaker);
        } catch (error) {
          thrown = error;
        }
        assert.ok(thrown instanceof TypeError, `${reader} with a clock returning ${shown}`);
        assert.equal(
          thrown.message,
          `Circuit "db": "clock" must return epoch milliseconds, returned ${shown}`,
        );
        now = 1_000_000;
        assert.equal(JSON.stringify(breaker.toJSON()), before, `${reader} changed the state`);
        assert.equal(breaker.state, "open");
        assert.equal(breaker.snapshot.isolated, 0);
      }
    });
  }

  it("Breaker reports a clock that breaks while a call runs and keeps the call's own outcome and the state's times", async () => {
    for (const [bad] of BAD_TIMES) {
      let now: unknown = 1_000_000;
      using reported = captureConsole("error");
      const breaker = new Breaker({
        failureThreshold: 2,
        halfOpenMaxCalls: 2,
        recoveryTimeout: 500,
        slowCallRate: 1,
        slowCallDuration: 1_000,
        window: { calls: 10 },
        minimumCalls: 10,
        clock: () => now as number,
      });
      const first = deferred<string>();
      const second = deferred<string>();
      const running = [
        breaker.execute(() => first.promise),
        breaker.execute(() => second.promise),
      ];
      now = bad;
      first.resolve("kept");
      assert.equal(await running[0], "kept");
      const error = new Error("down");
      second.reject(error);
      await assert.rejects(running[1] as Promise<unknown>, (thrown) => thrown === error);
      const errors = reported.calls.map(([error]) => error);
      assert.ok(errors.length >= 2 && errors.every((e) => e instanceof TypeError));
      now = 1_000_000;
      assert.equal(breaker.failureCount, 1);
      assert.equal(breaker.stats.calls, 2);
      assert.equal(breaker.stats.slowCalls, 0);
      assert.throws(() =>
        breaker.executeSync(() => {
          throw error;
        })
      );
      assert.equal(breaker.openUntil, 1_000_500);
    }
  });

  it("Breaker passes on the error of a clock that throws, and keeps its state", async () => {
    const clockError = new Error("no time");
    let broken = false;
    const breaker = new Breaker({
      failureThreshold: 1,
      clock: () => {
        if (broken) throw clockError;
        return 1_000_000;
      },
    });
    breaker.open();
    const before = JSON.stringify(breaker.toJSON());
    broken = true;
    assert.throws(() => breaker.state, (error) => error === clockError);
    await assert.rejects(
      breaker.execute(() => Promise.resolve(1)),
      (error) => error === clockError,
    );
    assert.throws(() => breaker.executeSync(() => 1), (error) => error === clockError);
    broken = false;
    assert.equal(JSON.stringify(breaker.toJSON()), before);
  });
});

/** Clock moves: small steps, jumps back (up to a day), jumps ahead (up to days). */
const clockMoveArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 6 },
  { arbitrary: fc.integer({ min: -86_400_000, max: -1 }), weight: 2 },
  { arbitrary: fc.integer({ min: -500, max: -1 }), weight: 2 },
  { arbitrary: fc.integer({ min: 86_400_000, max: 5 * 86_400_000 }), weight: 1 },
);

const clockStepArb = fc.oneof(
  clockMoveArb.map((ms) => ({ kind: "move" as const, ms })),
  fc.constantFrom(
    { kind: "success" as const },
    { kind: "failure" as const },
    { kind: "slowSuccess" as const },
    { kind: "start" as const },
    { kind: "settle" as const },
    { kind: "open" as const },
    { kind: "halfOpen" as const },
  ),
);

describe("Breaker with a clock that goes backwards or jumps ahead", () => {
  it("Breaker keeps retryAfterMs, durations and counts sane, and recovers, whatever the clock does", async () => {
    await fc.assert(
      fc.asyncProperty(
        policyArb,
        fc.array(clockStepArb, { maxLength: 40 }),
        async (policyIndex, steps) => {
          const clock = manualClock(10 * 86_400_000);
          const recorded = recordEvents(["success", "failure"]);
          const options = { ...POLICIES[policyIndex], clock };
          const breaker = new Breaker({ ...options, listeners: [recorded.listener] });
          const running: ReturnType<typeof deferred<string>>[] = [];
          for (const step of steps) {
            try {
              if (step.kind === "move") clock.advance(step.ms);
              else if (step.kind === "success") breaker.executeSync(() => "ok");
              else if (step.kind === "slowSuccess") breaker.executeSync(() => clock.advance(50));
              else if (step.kind === "failure") {
                breaker.executeSync(() => {
                  throw new Error("down");
                });
              } else if (step.kind === "start") {
                const call = deferred<string>();
                running.push(call);
                breaker.execute(() => call.promise).catch(() => {});
              } else if (step.kind === "settle") running.shift()?.resolve("late");
              else breaker[step.kind]();
            } catch (error) {
              if (!(error instanceof BreakerOpenError) && (error as Error).message !== "down") {
                throw error;
              }
            }
            await flush();
            const retryAfterMs = breaker.retryAfterMs;
            assert.ok(
              Number.isFinite(retryAfterMs) && retryAfterMs >= 0,
              `retryAfterMs ${retryAfterMs}`,
            );
            if (breaker.snapshot.state === "open") {
              assert.equal(retryAfterMs, Math.max(0, (breaker.openUntil as number) - clock.now));
            }
            const stats = breaker.stats;
            assert.ok(
              stats.failures <= stats.calls && stats.slowCalls <= stats.calls && stats.calls >= 0,
            );
          }
          for (const call of running) call.resolve("late");
          await flush();
          // A clock that went back may report a negative duration; it is never NaN.
          const durations = recorded.events.map((event) =>
            "durationMs" in event ? event.durationMs : NaN
          );
          assert.ok(durations.every((ms) => Number.isFinite(ms)), `durations ${durations}`);
          // It round-trips and, once the clock passes its times again, recovers.
          await assertLegal(breaker, clock, options, steps, false);
        },
      ),
      replayable(1_000),
    );
  });

  it("Breaker ends an open period when the clock is set back an hour: the next call is a trial", () => {
    const clock = manualClock(10_000_000);
    const recorded = recordEvents(["stateChange"]);
    const breaker = new Breaker({
      failureThreshold: 1,
      recoveryTimeout: 30_000,
      clock,
      listeners: [recorded.listener],
    });
    assert.throws(() =>
      breaker.executeSync(() => {
        throw new Error("down");
      })
    );
    clock.advance(1_000);
    assert.equal(breaker.retryAfterMs, 29_000);
    clock.now -= 3_600_000; // an hour back (an NTP step, a VM restored)
    assert.equal(breaker.state, "half-open");
    assert.equal(breaker.retryAfterMs, 0);
    assert.equal(breaker.executeSync(() => "trial"), "trial");
    assert.equal(breaker.state, "closed");
    assert.deepEqual(recorded.lines(), [
      "stateChange closed->open",
      "stateChange open->half-open",
      "stateChange half-open->closed",
    ]);
  });

  it("Breaker ends an open period when the clock goes back less than the time spent open", () => {
    const clock = manualClock(10_000_000);
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 30_000, clock });
    assert.throws(() =>
      breaker.executeSync(() => {
        throw new Error("down");
      })
    );
    clock.advance(20_000);
    assert.throws(() => breaker.executeSync(() => 1), BreakerOpenError);
    clock.now -= 5_000; // still after the opening, by the clock
    // Left alone, the period would end 35 s after the failure; it may not outlast its 30 s.
    assert.equal(breaker.executeSync(() => "trial"), "trial");
    assert.equal(breaker.state, "closed");
  });

  it("Breaker's failed trial after a clock step back reopens for a full period", () => {
    const clock = manualClock(10_000_000);
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 30_000, clock });
    const fail = () =>
      assert.throws(() =>
        breaker.executeSync(() => {
          throw new Error("down");
        })
      );
    fail();
    clock.now -= 60_000;
    fail(); // the trial
    assert.equal(breaker.state, "open");
    assert.equal(breaker.retryAfterMs, 30_000);
    clock.advance(29_999);
    assert.equal(breaker.state, "open");
  });

  it("Breaker after the clock jumps days ahead: an open circuit admits a trial, a time window and a ramp have expired", () => {
    const clock = manualClock(1_000_000);
    const windowed = new Breaker({
      failureRate: 0.5,
      minimumCalls: 4,
      window: { duration: 60_000 },
      recoveryRamp: { duration: 10_000 },
      recoveryTimeout: 5_000,
      clock,
    });
    for (let i = 0; i < 3; i++) {
      assert.throws(() =>
        windowed.executeSync(() => {
          throw new Error("down");
        })
      );
    }
    assert.equal(windowed.stats.calls, 3);
    clock.advance(3 * 86_400_000);
    assert.equal(windowed.stats.calls, 0);
    windowed.open();
    clock.advance(3 * 86_400_000);
    assert.equal(windowed.state, "half-open");
    windowed.executeSync(() => "trial");
    assert.equal(windowed.state, "recovering");
    clock.advance(3 * 86_400_000);
    assert.equal(windowed.state, "closed");
    assert.equal(windowed.executeSync(() => "ok"), "ok");
  });
});

/** Steps for a clock that fails now and then. */
const flakyStepArb = fc.oneof(
  fc.integer({ min: 0, max: 300 }).map((ms) => ({ kind: "move" as const, ms })),
  fc.constantFrom(...BAD_TIMES.map(([bad]) => bad)).map((bad) => ({ kind: "break" as const, bad })),
  fc.nat(5).map((pick) => ({ kind: "release" as const, pick })),
  fc.constantFrom(
    { kind: "fix" as const },
    { kind: "success" as const },
    { kind: "failure" as const },
    { kind: "start" as const },
    { kind: "settleSuccess" as const },
    { kind: "settleFailure" as const },
    { kind: "open" as const },
    { kind: "halfOpen" as const },
    { kind: "close" as const },
    { kind: "isolate" as const },
  ),
);

describe("Breaker with a clock that fails now and then", () => {
  it("Breaker keeps each call's outcome, every isolate() hold releasable and every open period whole while the clock fails now and then", async () => {
    await fc.assert(
      fc.asyncProperty(
        policyArb,
        fc.array(flakyStepArb, { maxLength: 50 }),
        async (policyIndex, steps) => {
          const start = 1_000_000;
          const time = manualClock(start);
          let bad: unknown;
          let broken = false;
          const clock = () => (broken ? bad : time.now) as number;
          using reported = captureConsole("error");
          const options = { ...POLICIES[policyIndex], clock };
          const breaker = new Breaker(options);
          const holds: Disposable[] = [];
          const running: { call: ReturnType<typeof deferred<string>>; done: Promise<unknown> }[] =
            [];
          const isClockError = (error: unknown) =>
            error instanceof TypeError &&
            /"clock" must return epoch milliseconds/.test(error.message);
          const down = new Error("down");
          for (const step of steps) {
            try {
              switch (step.kind) {
                case "move":
                  time.advance(step.ms);
                  break;
                case "break":
                  broken = true;
                  bad = step.bad;
                  break;
                case "fix":
                  broken = false;
                  break;
                case "success":
                  assert.equal(breaker.executeSync(() => "ok"), "ok");
                  break;
                case "failure":
                  breaker.executeSync(() => {
                    throw down;
                  });
                  break;
                case "start": {
                  const call = deferred<string>();
                  call.promise.catch(() => {}); // fn never runs (and awaits it) when turned away
                  const done = breaker.execute(() => call.promise).then(
                    (value) => assert.equal(value, "late"),
                    (error) =>
                      assert.ok(
                        error === down || error instanceof BreakerOpenError ||
                          isClockError(error),
                        String(error),
                      ),
                  );
                  running.push({ call, done });
                  break;
                }
                case "settleSuccess":
                case "settleFailure": {
                  const first = running.shift();
                  if (step.kind === "settleSuccess") first?.call.resolve("late");
                  else first?.call.reject(down);
                  await first?.done; // the call's own outcome, whatever the clock said
                  break;
                }
                case "isolate":
                  holds.push(breaker.isolate());
                  break;
                case "release":
                  holds[step.pick % Math.max(1, holds.length)]?.[Symbol.dispose]();
                  break;
                default:
                  breaker[step.kind]();
              }
            } catch (error) {
              const expected: boolean = error === down || error instanceof BreakerOpenError ||
                (broken && isClockError(error));
              assert.ok(expected, `${step.kind}: unexpected ${String(error)}`);
            }
            // An opening always lasts its period from a time the clock really gave.
            const openUntil: number | undefined = breaker.snapshot.openUntil;
            if (openUntil !== undefined) assert.ok(openUntil >= start, `openUntil ${openUntil}`);
          }
          broken = false;
          for (const { call } of running) call.resolve("late");
          await Promise.all(running.map(({ done }) => done));
          // Every hold, even one whose release failed on the broken clock, can be released.
          for (const hold of holds) hold[Symbol.dispose]();
          assert.equal(breaker.snapshot.isolated, 0, "still isolated after every release");
          const errors = reported.calls.map(([error]) => error);
          assert.ok(errors.every(isClockError), `reported ${errors.map(String)}`);
          await assertLegal(
            breaker,
            time,
            options,
            steps,
            false,
          );
        },
      ),
      replayable(1_000),
    );
  });
});

// ------------------------------------------------------------------------------- options

describe("Breaker options changed by the caller after construction", () => {
  it("Breaker keeps its options when the caller mutates the objects and arrays it passed", () => {
    class Matched extends Error {}
    const heard = recordEvents(["stateChange"]);
    const listeners: BreakerListener[] = [heard.listener];
    const ignore: ErrorMatcher[] = [Matched];
    const window = { calls: 4 };
    const ramp = { duration: 1_000, initialRate: 0.5 };
    const clock = manualClock(1_000_000);
    const options = {
      failureThreshold: 2,
      failureRate: 1,
      minimumCalls: 4,
      window,
      recoveryRamp: ramp,
      recoveryTimeout: 100,
      ignore,
      listeners,
      clock,
    };
    const state = new Breaker({ failureThreshold: 2, clock }).toJSON();
    const breaker = new Breaker({ ...options, state });
    // Every nested object and array the caller passed, changed afterwards.
    options.failureThreshold = 1;
    window.calls = 1;
    ramp.duration = 1;
    ignore.length = 0;
    ignore.push(RangeError);
    const addedLater = recordEvents();
    listeners.push(addedLater.listener);
    listeners.length = 1;
    const replaced = recordEvents();
    listeners[0] = replaced.listener;
    (state as { failureCount: number }).failureCount = 1;
    // configure() merges into the options the breaker kept, not into the caller's objects.
    breaker.configure({ recoveryTimeout: 100 });
    assert.equal(breaker.failureCount, 0);
    assert.throws(() =>
      breaker.executeSync(() => {
        throw new Matched();
      })
    );
    assert.equal(breaker.failureCount, 0, "ignore still matches Matched");
    assert.throws(() =>
      breaker.executeSync(() => {
        throw new Error("down");
      })
    );
    assert.equal(breaker.state, "closed", "failureThreshold is still 2");
    assert.throws(() =>
      breaker.executeSync(() => {
        throw new Error("down");
      })
    );
    assert.equal(breaker.state, "open");
    clock.advance(100);
    breaker.executeSync(() => "trial");
    assert.equal(breaker.state, "recovering", "the ramp still lasts 1000 ms");
    clock.advance(999);
    assert.equal(breaker.state, "recovering");
    assert.deepEqual(heard.eventsOf("stateChange").map(({ to }) => to), [
      "open",
      "half-open",
      "recovering",
    ]);
    assert.deepEqual(addedLater.events, [], "a listener added later is not called");
    assert.deepEqual(replaced.events, [], "a listener put in place later is not called");
  });

  it("Breaker.configure() keeps its options when the caller mutates the object it passed", () => {
    const clock = manualClock(1_000_000);
    const breaker = new Breaker({ failureRate: 1, minimumCalls: 2, window: { calls: 2 }, clock });
    const change = { minimumCalls: 3, window: { calls: 3 } };
    breaker.configure(change);
    change.minimumCalls = 1;
    change.window.calls = 1;
    for (let i = 0; i < 2; i++) {
      assert.throws(() =>
        breaker.executeSync(() => {
          throw new Error("down");
        })
      );
    }
    assert.equal(breaker.state, "closed", "minimumCalls is still 3");
    assert.equal(breaker.stats.calls, 2, "the window still holds 3 calls");
  });

  it("Breaker subclasses keep their options when static defaults change after construction", () => {
    class DbBreaker extends Breaker {
      static override defaults: BreakerOptions = { failureThreshold: 2, window: { calls: 5 } };
    }
    const breaker = new DbBreaker();
    DbBreaker.defaults = { failureThreshold: 1 };
    (Breaker.defaults as { failureThreshold?: number }).failureThreshold = 1;
    try {
      assert.throws(() =>
        breaker.executeSync(() => {
          throw new Error("down");
        })
      );
      assert.equal(breaker.state, "closed");
    } finally {
      delete (Breaker.defaults as { failureThreshold?: number }).failureThreshold;
    }
  });
});
