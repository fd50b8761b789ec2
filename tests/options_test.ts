import assert from "node:assert/strict";
import { Breaker, type BreakerOptions, circuit, exponentialBackoff } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";

type Case = [options: Record<string, unknown>, type: "TypeError" | "RangeError", message: string];

const C = "Cannot create breaker: ";

const cases: Case[] = [
  [{ name: 5 }, "TypeError", `"name" must be a non-empty string, received 5`],
  [{ name: "" }, "TypeError", `"name" must be a non-empty string, received ""`],
  [
    { failureThreshold: 0 },
    "RangeError",
    `"failureThreshold" must be an integer >= 1 or Infinity, received 0`,
  ],
  [
    { failureThreshold: -1 },
    "RangeError",
    `"failureThreshold" must be an integer >= 1 or Infinity, received -1`,
  ],
  [
    { failureThreshold: 1.5 },
    "RangeError",
    `"failureThreshold" must be an integer >= 1 or Infinity, received 1.5`,
  ],
  [
    { failureThreshold: NaN },
    "RangeError",
    `"failureThreshold" must be an integer >= 1 or Infinity, received NaN`,
  ],
  [{ failureThreshold: "5" }, "TypeError", `"failureThreshold" must be a number, received "5"`],
  [
    { recoveryTimeout: -1 },
    "RangeError",
    `"recoveryTimeout" must be a finite number >= 0, received -1`,
  ],
  [
    { recoveryTimeout: Infinity },
    "RangeError",
    `"recoveryTimeout" must be a finite number >= 0, received Infinity`,
  ],
  [
    { recoveryTimeout: NaN },
    "RangeError",
    `"recoveryTimeout" must be a finite number >= 0, received NaN`,
  ],
  [
    { recoveryTimeout: "30s" },
    "TypeError",
    `"recoveryTimeout" must be a number or a function, received "30s"`,
  ],
  [{ halfOpenMaxCalls: 0 }, "RangeError", `"halfOpenMaxCalls" must be an integer >= 1, received 0`],
  [
    { halfOpenMaxCalls: Infinity },
    "RangeError",
    `"halfOpenMaxCalls" must be an integer >= 1, received Infinity`,
  ],
  [{ successThreshold: 0 }, "RangeError", `"successThreshold" must be an integer >= 1, received 0`],
  [{ successThreshold: null }, "TypeError", `"successThreshold" must be a number, received null`],
  [
    { isFailure: "TypeError" },
    "TypeError",
    `"isFailure" must be an error class, a predicate or an array of them, received "TypeError"`,
  ],
  [
    { isFailure: [TypeError, "RangeError"] },
    "TypeError",
    `"isFailure[1]" must be an error class, a predicate or an array of them, received "RangeError"`,
  ],
  [
    { exclude: 404 },
    "TypeError",
    `"exclude" must be an error class, a predicate or an array of them, received 404`,
  ],
  [
    { ignore: {} },
    "TypeError",
    `"ignore" must be an error class, a predicate or an array of them, received an object`,
  ],
  [{ isFailureResult: true }, "TypeError", `"isFailureResult" must be a function, received true`],
  [{ timeout: 0 }, "RangeError", `"timeout" must be a number > 0 and <= 2147483647, received 0`],
  [
    { timeout: Infinity },
    "RangeError",
    `"timeout" must be a number > 0 and <= 2147483647, received Infinity`,
  ],
  [
    { timeout: 2 ** 31 },
    "RangeError",
    `"timeout" must be a number > 0 and <= 2147483647, received 2147483648`,
  ],
  [{ timeout: "1s" }, "TypeError", `"timeout" must be a number, received "1s"`],
  [{ fallback: "cached" }, "TypeError", `"fallback" must be a function, received "cached"`],
  [{ listeners: {} }, "TypeError", `"listeners" must be an array of listeners, received an object`],
  [
    { listeners: [null] },
    "TypeError",
    `"listeners[0]" must be an object with hooks, received null`,
  ],
  [
    { listeners: [{ failure: 1 }] },
    "TypeError",
    `"listeners[0].failure" must be a function, received 1`,
  ],
  [{ clock: 5 }, "TypeError", `"clock" must be a function, received 5`],
  [{ failureTreshold: 3 }, "TypeError", `unknown option "failureTreshold"`],
  [{ failureRate: 0 }, "RangeError", `"failureRate" must be a number in (0, 1], received 0`],
  [{ failureRate: 1.5 }, "RangeError", `"failureRate" must be a number in (0, 1], received 1.5`],
  [{ failureRate: NaN }, "RangeError", `"failureRate" must be a number in (0, 1], received NaN`],
  [
    { slowCallRate: 0.5 },
    "TypeError",
    `"slowCallDuration" must be a finite number >= 0 when "slowCallRate" is set, received undefined`,
  ],
  [
    { slowCallRate: 0.5, slowCallDuration: -5 },
    "RangeError",
    `"slowCallDuration" must be a finite number >= 0, received -5`,
  ],
  [
    { failureRate: 0.5, minimumCalls: 0 },
    "RangeError",
    `"minimumCalls" must be an integer >= 1, received 0`,
  ],
  [
    { failureRate: 0.5, window: { calls: 0 } },
    "RangeError",
    `"window.calls" must be an integer >= 1, received 0`,
  ],
  [
    { failureRate: 0.5, window: { calls: 10 }, minimumCalls: 11 },
    "RangeError",
    `"minimumCalls" must be an integer <= "window.calls" (10), received 11`,
  ],
  [
    { failureRate: 0.5, window: { duration: 5, buckets: 10 } },
    "RangeError",
    `"window.buckets" must be an integer <= "window.duration" (5), received 10`,
  ],
  [
    { failureRate: 0.5, window: { duration: 0 } },
    "RangeError",
    `"window.duration" must be a finite number >= 1, received 0`,
  ],
  [
    { failureRate: 0.5, window: { duration: 1000, buckets: 0 } },
    "RangeError",
    `"window.buckets" must be an integer >= 1, received 0`,
  ],
  [
    { failureRate: 0.5, window: { duration: 1000, calls: 5 } },
    "TypeError",
    `"window" must be either { duration, buckets? } or { calls }, not both, received an object`,
  ],
  [
    { failureRate: 0.5, window: { size: 5 } },
    "TypeError",
    `"window" must be { duration, buckets? } or { calls } (unknown key "size"), received an object`,
  ],
  [
    { failureRate: 0.5, window: 60_000 },
    "TypeError",
    `"window" must be { duration, buckets? } or { calls }, received 60000`,
  ],
  [{ shouldTrip: "yes" }, "TypeError", `"shouldTrip" must be a function, received "yes"`],
  [
    { recoveryRamp: { duration: 0 } },
    "RangeError",
    `"recoveryRamp.duration" must be a finite number > 0, received 0`,
  ],
  [
    { recoveryRamp: { duration: 1000, initialRate: 0 } },
    "RangeError",
    `"recoveryRamp.initialRate" must be a number in (0, 1], received 0`,
  ],
  [
    { recoveryRamp: 1000 },
    "TypeError",
    `"recoveryRamp" must be { duration, initialRate? }, received 1000`,
  ],
  [
    { maxRetryAfter: -1 },
    "RangeError",
    `"maxRetryAfter" must be a finite number >= 0, received -1`,
  ],
];

describe("Breaker option validation", () => {
  for (const [options, type, message] of cases) {
    it(`new Breaker(${JSON.stringify(options) ?? ""}) throws ${type}: ${message}`, () => {
      assert.throws(() => new Breaker(options as BreakerOptions), {
        name: type,
        message: C + message,
      });
    });
  }

  it("Breaker keeps its own copy of the options: changing the caller's later changes nothing", () => {
    const window = { duration: 10_000, buckets: 10 };
    const isFailure = [TypeError];
    const options = { failureRate: 0.5, minimumCalls: 2, window, isFailure };
    const breaker = new Breaker(options);
    const other = new Breaker(options);
    window.duration = 5;
    isFailure.push(RangeError);
    options.minimumCalls = 1;
    breaker.configure({ slowCallDuration: 1_000 });
    assert.deepEqual(breaker.snapshot, other.snapshot);
    for (const b of [breaker, other]) {
      b.executeSync(() => 1);
      assert.throws(() =>
        b.executeSync(() => {
          throw new RangeError("not a failure");
        })
      );
      assert.equal(b.state, "closed", "a RangeError counts as a success: isFailure was copied");
      assert.equal(b.stats.calls, 2, "the 10 s window was copied");
    }
    assert.throws(() => new Breaker({ failureRate: 0.5, window }), {
      name: "RangeError",
      message: `${C}"window.buckets" must be an integer <= "window.duration" (5), received 10`,
    });
  });

  it("Breaker rejects options that are not an object", () => {
    assert.throws(() => new Breaker(5 as never), {
      name: "TypeError",
      message: 'Cannot create breaker: "options" must be an object, received 5',
    });
  });

  it("Breaker accepts Infinity as failureThreshold (the consecutive rule off)", () => {
    const breaker = new Breaker({ failureThreshold: Infinity });
    for (let i = 0; i < 100; i++) {
      assert.throws(() =>
        breaker.executeSync(() => {
          throw new Error("x");
        })
      );
    }
    assert.equal(breaker.state, "closed");
  });

  it("Breaker accepts empty matcher lists as no rule, at construction and in configure()", () => {
    const fail = (breaker: Breaker, error: Error) =>
      assert.throws(() =>
        breaker.executeSync(() => {
          throw error;
        }), (thrown) => thrown === error);
    const empty = new Breaker({ failureThreshold: 1, isFailure: [], exclude: [], ignore: [] });
    fail(empty, new TypeError("every error counts, as with no isFailure"));
    assert.equal(empty.state, "open");

    const cleared = new Breaker({ failureThreshold: 1, exclude: [TypeError], ignore: RangeError });
    fail(cleared, new TypeError("excluded"));
    fail(cleared, new RangeError("ignored"));
    assert.equal(cleared.state, "closed");
    cleared.configure({ exclude: [], ignore: [] });
    fail(cleared, new TypeError("no longer excluded"));
    assert.equal(cleared.state, "open");

    const narrowed = new Breaker({ failureThreshold: 1, isFailure: [RangeError] });
    fail(narrowed, new TypeError("not a failure"));
    assert.equal(narrowed.state, "closed");
    narrowed.configure({ isFailure: [] });
    fail(narrowed, new TypeError("a failure again"));
    assert.equal(narrowed.state, "open");
  });

  it("Breaker copies its options: changing them afterwards changes nothing", async () => {
    const options = {
      failureThreshold: 2,
      isFailure: [RangeError] as ErrorConstructor[],
      failureRate: 0.5,
      window: { calls: 4 },
      minimumCalls: 4,
    };
    const breaker = new Breaker(options);
    options.failureThreshold = 100;
    options.isFailure.push(Error);
    options.window.calls = 1_000;
    await breaker.execute(() => Promise.reject(new Error("not a RangeError"))).catch(() => {});
    assert.equal(breaker.failureCount, 0);
    for (let i = 0; i < 2; i++) {
      await breaker.execute(() => Promise.reject(new RangeError("r"))).catch(() => {});
    }
    assert.equal(breaker.state, "open");
  });

  it("circuit() validates options with the same messages", () => {
    assert.throws(() => circuit(() => Promise.resolve(1), { failureThreshold: 0 }), {
      name: "RangeError",
      message: C + `"failureThreshold" must be an integer >= 1 or Infinity, received 0`,
    });
    assert.throws(() => circuit({ timeout: -1 }), { name: "RangeError" });
    assert.throws(() => circuit.with({ typo: 1 } as never), {
      name: "TypeError",
      message: C + `unknown option "typo"`,
    });
  });

  it("Breaker.execute() rejects a function or signal of the wrong type", async () => {
    const breaker = new Breaker();
    await assert.rejects(breaker.execute("fn" as never), {
      name: "TypeError",
      message: `Cannot execute: "fn" must be a function, received "fn"`,
    });
    await assert.rejects(breaker.execute(() => 1, { signal: {} as AbortSignal }), {
      name: "TypeError",
      message: `Cannot execute: "signal" must be an AbortSignal, received an object`,
    });
    assert.throws(() => breaker.executeSync(null as never), { name: "TypeError" });
    assert.throws(() => breaker.wrap(1 as never), {
      name: "TypeError",
      message: `Cannot wrap: "fn" must be a function, received 1`,
    });
  });

  it("exponentialBackoff() validates its options", () => {
    const B = "Cannot create backoff: ";
    const bad: [Record<string, unknown>, string, string][] = [
      [
        { initialDelay: -1, maxDelay: 10 },
        "RangeError",
        `"initialDelay" must be a finite number >= 0, received -1`,
      ],
      [
        { initialDelay: 10, maxDelay: 5 },
        "RangeError",
        `"maxDelay" must be a finite number >= "initialDelay" (10), received 5`,
      ],
      [
        { initialDelay: 1, maxDelay: Infinity },
        "RangeError",
        `"maxDelay" must be a finite number >= "initialDelay" (1), received Infinity`,
      ],
      [
        { initialDelay: 1, maxDelay: 5, factor: 0.5 },
        "RangeError",
        `"factor" must be a finite number >= 1, received 0.5`,
      ],
      [
        { initialDelay: "1", maxDelay: 5 },
        "TypeError",
        `"initialDelay" must be a number, received "1"`,
      ],
      [
        { initialDelay: 1, maxDelay: 5, jitter: "half" },
        "TypeError",
        `"jitter" must be "full" or "none", received "half"`,
      ],
    ];
    for (const [options, name, message] of bad) {
      assert.throws(() => exponentialBackoff(options as never), { name, message: B + message });
    }
  });
});
