/**
 * Model-based tests: random sequences of steps (clock advances, calls started and settled in
 * every way a call can end, caller aborts, timeouts, manual control, `configure()`, restoring
 * from `toJSON()`, listeners added and removed) run against the real `Breaker` and against the
 * reference model (reference_model.ts). After every step both must agree on the state, the
 * counts, the window, the last failure, the state changes announced, and each call's fate
 * (admitted or not, and how its promise settled); a breaker restored from `toJSON()` must read
 * and decide the same; half-open trials in flight never exceed `halfOpenMaxCalls`; and at the
 * end every permit, timer and abort listener has been returned.
 *
 * Time: the breaker's `clock` reads the fake timers' clock, and the `timeout` timers are fake
 * too, so an "advance" step fires exactly the timeouts due, in order.
 *
 * Replaying a failure: fast-check prints the seed and path of the failing run,
 * `{ seed: S, path: "P", ... }`, and the shrunk steps. Play that run again with
 *
 *   FC_SEED=S FC_PATH=P ./node_modules/.bin/deno test --allow-all --v8-flags=--expose-gc \
 *     tests/model_test.ts --filter "<describe name>"
 *   FC_SEED=S FC_PATH=P ./node_modules/.bin/bun test tests/model_test.ts -t "<test name>"
 *
 * (FC_RUNS=10 runs ten times as many cases, for a soak.)
 */

import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import fc from "fast-check";
import {
  Breaker,
  type BreakerListener,
  BreakerOpenError,
  type BreakerOptions,
  type BreakerState,
  TimeoutError,
} from "../mod.ts";
import { captureConsole } from "./console_capture.ts";
import { replayable } from "./fast_check_runs.ts";
import { deferred } from "./manual_clock.ts";
import {
  type Hold,
  type ModelOptions,
  type ModelState,
  type ModelWindowOptions,
  ReferenceBreaker,
  type Ticket,
  type Verdict,
} from "./reference_model.ts";
import { describe, it } from "./timer_leaks.ts";
import { countingSignal } from "./counting_signal.ts";

// ------------------------------------------------------------------------------- steps

/** How a call ends, as its function settles. */
type Outcome =
  | "success"
  | "failure"
  | "failureString"
  | "failureUndefined"
  | "excluded"
  | "ignored"
  | "badResult"
  | "busy50"
  | "busy5000";
/** How a call is made. */
type Via = "execute" | "signal" | "wrap" | "sync";
/** How the function returns: later (pending), at once, as a settled promise, as a thenable. */
type Run = "pending" | "now" | "resolved" | "thenable";
/** The rule a property exercises: consecutive failures, or a rate rule over a window. */
type Rule = "consecutive" | "count window" | "time window";

/** The options `configure()` is called with (some invalid on purpose). */
type ConfigureOptions = Partial<
  Record<
    | "failureThreshold"
    | "successThreshold"
    | "halfOpenMaxCalls"
    | "recoveryTimeout"
    | "timeout"
    | "failureRate"
    | "slowCallRate"
    | "slowCallDuration"
    | "minimumCalls"
    | "maxRetryAfter",
    number
  > & { window: ModelWindowOptions }
>;

type Step =
  | { readonly kind: "advance"; readonly ms: number }
  /** Within the current time bucket: `share` of what is left of it. */
  | { readonly kind: "advanceWithinBucket"; readonly share: number }
  /** To the start of the bucket `buckets` ahead, `offset` ms off: a bucket's edge, or far past. */
  | { readonly kind: "advanceToBucket"; readonly buckets: number; readonly offset: number }
  | { readonly kind: "call"; readonly via: Via; readonly run: Run; readonly outcome: Outcome }
  | { readonly kind: "settle"; readonly pick: number; readonly outcome: Outcome }
  | { readonly kind: "abort"; readonly pick: number }
  | { readonly kind: "callAborted" }
  | { readonly kind: "open" | "close" | "halfOpen" | "isolate" | "restore" }
  | { readonly kind: "release"; readonly pick: number }
  | { readonly kind: "configure"; readonly options: ConfigureOptions }
  | { readonly kind: "listen"; readonly throwing: boolean }
  | { readonly kind: "unlisten"; readonly pick: number };

/** A breaker's configuration for one run. */
interface RunConfig {
  readonly options: ModelOptions;
  /** `isFailureResult` marks `BAD_RESULT` as a failure. */
  readonly failureResult: boolean;
  /** A `fallback` serves rejected calls. */
  readonly fallback: boolean;
  /** A listener records the state changes, admissions and rejections announced. */
  readonly recordEvents: boolean;
}

class ExcludedError extends Error {}
class IgnoredError extends Error {}
const BAD_RESULT = Object.freeze({ status: 503 });
const FALLBACK_VALUE = "served by the fallback";
/** What the model keeps as `lastFailure` for a timeout (the breaker makes the error). */
const TIMEOUT_FAILURE = Symbol("a TimeoutError");

const OUTCOMES: readonly Outcome[] = [
  "success",
  "failure",
  "failureString",
  "failureUndefined",
  "excluded",
  "ignored",
  "badResult",
  "busy50",
  "busy5000",
];

/** Successes about half the time, as in real traffic; every way to fail now and then. */
const outcomeArb: fc.Arbitrary<Outcome> = fc.oneof(
  { arbitrary: fc.constant("success" as const), weight: 8 },
  { arbitrary: fc.constant("failure" as const), weight: 4 },
  { arbitrary: fc.constantFrom(...OUTCOMES), weight: 6 },
);
const pickArb = fc.nat(7);

/** Time windows a run starts with and configure() picks from, so that it often keeps one. */
const TIME_WINDOWS: readonly ModelWindowOptions[] = [
  { duration: 100, buckets: 4 },
  { duration: 100 }, // 10 buckets of 10 ms
  { duration: 60, buckets: 1 },
  { duration: 250, buckets: 3 }, // buckets of 83.33... ms
  { duration: 1_000, buckets: 7 },
];
/** Time windows configure() must refuse: buckets > duration, a duration < 1, a fraction. */
const INVALID_TIME_WINDOWS: readonly ModelWindowOptions[] = [
  { duration: 5 },
  { duration: 0, buckets: 1 },
  { duration: 100, buckets: 2.5 },
];

function configureArb(rule: Rule): fc.Arbitrary<ConfigureOptions> {
  const windowRule = rule !== "consecutive";
  // One or two options at a time, mostly valid: an invalid one makes configure() throw and
  // change nothing.
  const option = <K extends keyof ConfigureOptions>(
    key: K,
    valid: readonly NonNullable<ConfigureOptions[K]>[],
    invalid: readonly NonNullable<ConfigureOptions[K]>[] = [],
  ): fc.Arbitrary<ConfigureOptions> => {
    const values = invalid.length === 0 ? fc.constantFrom(...valid) : fc.oneof(
      { arbitrary: fc.constantFrom(...valid), weight: 6 },
      { arbitrary: fc.constantFrom(...invalid), weight: 1 },
    );
    return values.map((value) => ({ [key]: value }) as ConfigureOptions);
  };
  const options = [
    option("failureThreshold", [1, 2, 3, 4, Infinity], [0, 2.5]),
    option("successThreshold", [1, 2, 3], [0]),
    option("halfOpenMaxCalls", [1, 2, 3], [-1]),
    option("recoveryTimeout", [0, 50, 200], [-5, Number.NaN]),
    option("timeout", [30, 150], [0]),
    option("maxRetryAfter", [0, 1_000]),
    option("minimumCalls", rule === "time window" ? [1, 2, 3, 4, 5, 6, 20] : [1, 2, 3, 4, 5, 6]),
    option("failureRate", windowRule ? [0.25, 0.5, 0.75, 1] : [0.5, 1], [0, 1.5]),
  ];
  if (windowRule) {
    options.push(
      option("slowCallRate", [0.5, 1]),
      option("slowCallDuration", [0, 30, 100]),
      rule === "time window"
        ? option("window", [...TIME_WINDOWS, { calls: 3 }], INVALID_TIME_WINDOWS)
        : option("window", [{ calls: 1 }, { calls: 3 }, { calls: 6 }]),
    );
  }
  return fc.array(fc.oneof(...options), { minLength: 1, maxLength: 2 })
    .map((parts) => Object.assign({}, ...parts) as ConfigureOptions);
}

function stepArb(rule: Rule): fc.Arbitrary<Step> {
  const advance = fc.record({
    kind: fc.constant("advance" as const),
    ms: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 400 })),
  });
  const advances: fc.WeightedArbitrary<Step>[] = rule === "time window"
    ? [
      { arbitrary: advance, weight: 8 },
      {
        arbitrary: fc.record({
          kind: fc.constant("advanceWithinBucket" as const),
          share: fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        }),
        weight: 6,
      },
      {
        arbitrary: fc.record({
          kind: fc.constant("advanceToBucket" as const),
          // Up to the window's edge (at most 10 buckets and one more), or far past it.
          buckets: fc.oneof(
            { arbitrary: fc.integer({ min: 1, max: 12 }), weight: 4 },
            { arbitrary: fc.integer({ min: 13, max: 200 }), weight: 1 },
          ),
          offset: fc.constantFrom(-1, 0, 1),
        }),
        weight: 6,
      },
    ]
    : [{ arbitrary: advance, weight: 20 }];
  return fc.oneof(
    ...advances,
    {
      arbitrary: fc.record({
        kind: fc.constant("call" as const),
        via: fc.constantFrom<Via>("execute", "signal", "wrap", "sync"),
        run: fc.constantFrom<Run>("pending", "pending", "now", "resolved", "thenable"),
        outcome: outcomeArb,
      }),
      weight: 30,
    },
    {
      arbitrary: fc.record({
        kind: fc.constant("settle" as const),
        pick: pickArb,
        outcome: outcomeArb,
      }),
      weight: 25,
    },
    { arbitrary: fc.record({ kind: fc.constant("abort" as const), pick: pickArb }), weight: 5 },
    { arbitrary: fc.constant({ kind: "callAborted" as const }), weight: 1 },
    {
      arbitrary: fc.constantFrom(
        { kind: "open" as const },
        { kind: "close" as const },
        { kind: "halfOpen" as const },
        { kind: "isolate" as const },
        { kind: "restore" as const },
      ),
      weight: 8,
    },
    { arbitrary: fc.record({ kind: fc.constant("release" as const), pick: pickArb }), weight: 3 },
    {
      arbitrary: fc.record({
        kind: fc.constant("configure" as const),
        options: configureArb(rule),
      }),
      weight: 4,
    },
    {
      arbitrary: fc.record({ kind: fc.constant("listen" as const), throwing: fc.boolean() }),
      weight: 2,
    },
    { arbitrary: fc.record({ kind: fc.constant("unlisten" as const), pick: pickArb }), weight: 2 },
  );
}

/** Drops the keys whose value is `undefined` (the options types forbid explicit undefined). */
function definedOnly<T extends object>(
  record: T,
): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(
    Object.entries(record).filter(([, value]) => value !== undefined),
  ) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

function runConfigArb(rule: Rule): fc.Arbitrary<RunConfig> {
  const windowRule = rule !== "consecutive";
  const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });
  return fc.record({
    failureThreshold: optional(fc.integer({ min: 1, max: 4 })),
    successThreshold: optional(fc.integer({ min: 1, max: 3 })),
    halfOpenMaxCalls: optional(fc.integer({ min: 1, max: 3 })),
    // The default, 30 s, mostly outlasts a run; short periods let trials happen.
    recoveryTimeout: fc.oneof(
      { arbitrary: fc.integer({ min: 0, max: 300 }), weight: 9 },
      { arbitrary: fc.constant(undefined), weight: 1 },
    ),
    // Without a timeout, failure results and listeners, calls take the fast path.
    timeout: fc.oneof(
      { arbitrary: fc.integer({ min: 1, max: 300 }), weight: 1 },
      { arbitrary: fc.constant(undefined), weight: 2 },
    ),
    maxRetryAfter: optional(fc.constantFrom(0, 1_000)),
    windowCalls: fc.integer({ min: 1, max: 6 }),
    // undefined: the default window, the last minute in 10 buckets. (A constant draws
    // nothing, so the other properties' seeds replay as before.)
    timeWindow: rule === "time window"
      ? fc.oneof(
        { arbitrary: fc.constantFrom(...TIME_WINDOWS), weight: 9 },
        { arbitrary: fc.constant(undefined), weight: 1 },
      )
      : fc.constant(undefined),
    minimumShare: fc.double({ min: 0, max: 1, noNaN: true }),
    explicitMinimum: fc.boolean(),
    failureRate: windowRule
      ? fc.oneof(fc.constantFrom(0.25, 0.5, 0.75, 1), fc.constant(undefined))
      : fc.constant(undefined),
    slowCallRate: windowRule ? optional(fc.constantFrom(0.5, 1)) : fc.constant(undefined),
    slowCallDuration: windowRule ? optional(fc.constantFrom(0, 30, 100)) : fc.constant(undefined),
    failureResult: fc.constantFrom(false, false, true),
    fallback: fc.boolean(),
    recordEvents: fc.constantFrom(false, false, true),
  }).map((c) => {
    let { failureRate, slowCallRate, slowCallDuration } = c;
    if (windowRule && failureRate === undefined && slowCallRate === undefined) failureRate = 0.5;
    if (slowCallRate !== undefined && slowCallDuration === undefined) slowCallDuration = 30;
    // A time window has no upper bound on minimumCalls; its default, 20, is rarely reached.
    const minimumCalls = c.explicitMinimum
      ? Math.max(1, Math.ceil(c.minimumShare * (rule === "time window" ? 6 : c.windowCalls)))
      : undefined;
    return {
      options: definedOnly({
        failureThreshold: c.failureThreshold,
        successThreshold: c.successThreshold,
        halfOpenMaxCalls: c.halfOpenMaxCalls,
        recoveryTimeout: c.recoveryTimeout,
        timeout: c.timeout,
        maxRetryAfter: c.maxRetryAfter,
        // Without a rate rule the window is unused, and a rule configured later judges it.
        window: rule === "time window" ? c.timeWindow : { calls: c.windowCalls },
        minimumCalls,
        failureRate,
        slowCallRate,
        slowCallDuration,
      }),
      failureResult: c.failureResult,
      fallback: c.fallback,
      recordEvents: c.recordEvents,
    };
  });
}

// ------------------------------------------------------------------------------- the run

/** How a call's promise settled (or a sync call returned or threw). */
type Observed =
  | { readonly kind: "pending" }
  | { readonly kind: "value"; readonly value: unknown }
  | { readonly kind: "error"; readonly error: unknown };

/** How the call must settle, by the model. */
type Expected =
  | { readonly kind: "pending" }
  | { readonly kind: "value"; readonly value: unknown }
  | { readonly kind: "error"; readonly error: unknown }
  | { readonly kind: "timeout" }
  | { readonly kind: "rejected"; readonly state: ModelState; readonly retryAfterMs: number };

interface TrackedCall {
  readonly id: number;
  readonly step: number;
  readonly via: Via | "preAborted";
  /** The model's breaker instance when the call started. */
  readonly instance: number;
  readonly ticket: Ticket | undefined;
  /** When its timeout fires (fake time), if it has one. */
  readonly deadline: number | undefined;
  readonly controller: AbortController | undefined;
  /** The function's promise, while it has not settled. */
  pending: ReturnType<typeof deferred> | undefined;
  /** The breaker is done with the call (its outcome recorded, or it timed out or aborted). */
  ended: boolean;
  expected: Expected;
  observed: Observed;
}

/** A call's ending: what the function gives and how the model counts it. */
interface Settlement {
  readonly ok: boolean;
  readonly value: unknown;
  readonly verdict: Verdict;
  /** What becomes `lastFailure` when it is a failure. */
  readonly failure: unknown;
  readonly retryAfterMs: number | undefined;
}

function settlementOf(outcome: Outcome, id: number, config: RunConfig): Settlement {
  const ok = (value: unknown, verdict: Verdict): Settlement => ({
    ok: true,
    value,
    verdict,
    failure: value,
    retryAfterMs: undefined,
  });
  const thrown = (error: unknown, verdict: Verdict, retryAfterMs?: number): Settlement => ({
    ok: false,
    value: error,
    verdict,
    failure: error,
    retryAfterMs,
  });
  switch (outcome) {
    case "success":
      return ok(`value ${id}`, "success");
    case "badResult":
      return ok(BAD_RESULT, config.failureResult ? "failure" : "success");
    case "failure":
      return thrown(new Error(`down ${id}`), "failure");
    case "failureString":
      return thrown(`down ${id}`, "failure");
    case "failureUndefined":
      return thrown(undefined, "failure");
    case "excluded":
      return thrown(new ExcludedError(`answered ${id}`), "success");
    case "ignored":
      return thrown(new IgnoredError(`ignored ${id}`), "neutral");
    case "busy50":
      return thrown(Object.assign(new Error("busy"), { retryAfterMs: 50 }), "failure", 50);
    case "busy5000":
      return thrown(Object.assign(new Error("busy"), { retryAfterMs: 5_000 }), "failure", 5_000);
  }
}

/** Lets every pending promise reaction run (the breaker's paths are a few reactions deep). */
async function settleMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** An AbortSignal that counts its "abort" listeners, to check each is removed. */
function countingController(): { controller: AbortController; listeners: () => number } {
  const controller = new AbortController();
  return { controller, listeners: countingSignal(controller) };
}

type FakeClock = ReturnType<ReturnType<typeof FakeTimers.withGlobal>["install"]>;

class ModelRun {
  readonly timers: FakeClock;
  readonly config: RunConfig;
  readonly model: ReferenceBreaker;
  /** The breaker's options now (configure() merges into them; a restore reuses them). */
  options: BreakerOptions;
  breaker: Breaker;
  readonly calls: TrackedCall[] = [];
  readonly holds: { readonly disposable: Disposable; readonly hold: Hold }[] = [];
  extraListeners: BreakerListener[] = [];
  readonly signals: (() => number)[] = [];
  /** What the recording listener heard from the current breaker. */
  readonly heard = { stateChanges: [] as [BreakerState, BreakerState][], calls: 0, rejections: 0 };
  /** What it must have heard, by the model. */
  readonly expectedHeard = { calls: 0, rejections: 0 };
  stepIndex = -1;
  step: Step | undefined;

  constructor(config: RunConfig, timers: FakeClock) {
    this.timers = timers;
    this.config = config;
    this.model = new ReferenceBreaker(config.options);
    const recorder: BreakerListener = {
      stateChange: ({ breaker, from, to }) => {
        if (breaker === this.breaker) this.heard.stateChanges.push([from, to]);
      },
      beforeCall: ({ breaker }) => {
        if (breaker === this.breaker) this.heard.calls++;
      },
      rejected: ({ breaker }) => {
        if (breaker === this.breaker) this.heard.rejections++;
      },
    };
    const clock = () => this.timers.now;
    this.options = {
      ...config.options,
      clock,
      exclude: ExcludedError,
      ignore: [IgnoredError],
      ...(config.failureResult ? { isFailureResult: (value) => value === BAD_RESULT } : {}),
      ...(config.fallback ? { fallback: () => FALLBACK_VALUE } : {}),
      ...(config.recordEvents ? { listeners: [recorder] } : {}),
    };
    this.breaker = new Breaker(this.options);
  }

  get now(): number {
    return this.timers.now;
  }

  /** Runs one step; then compares the breaker with the model, unless `compare` is false. */
  async run(step: Step, index: number, compare = true): Promise<void> {
    this.stepIndex = index;
    this.step = step;
    switch (step.kind) {
      case "advance":
        this.advance(step.ms);
        break;
      case "advanceWithinBucket":
      case "advanceToBucket":
        this.advance(this.bucketAdvance(step));
        break;
      case "call":
        this.call(step.via, step.run, step.outcome);
        break;
      case "settle":
        this.settle(step.pick, step.outcome);
        break;
      case "abort":
        this.abort(step.pick);
        break;
      case "callAborted":
        this.callAborted();
        break;
      case "open":
        this.breaker.open();
        this.model.open(this.now);
        break;
      case "close":
        this.breaker.close();
        this.model.close();
        break;
      case "halfOpen":
        this.breaker.halfOpen();
        this.model.halfOpen();
        break;
      case "isolate":
        this.holds.push({ disposable: this.breaker.isolate(), hold: this.model.isolate() });
        break;
      case "release": {
        const held = this.holds[step.pick % Math.max(1, this.holds.length)];
        if (held !== undefined) {
          held.disposable[Symbol.dispose]();
          this.model.release(held.hold);
        }
        break;
      }
      case "configure":
        this.configure(step.options);
        break;
      case "restore":
        this.restore();
        break;
      case "listen":
        this.listen(step.throwing);
        break;
      case "unlisten": {
        const listener = this.extraListeners[step.pick % Math.max(1, this.extraListeners.length)];
        if (listener !== undefined) {
          this.breaker.removeListener(listener);
          this.extraListeners = this.extraListeners.filter((l) => l !== listener);
        }
        break;
      }
    }
    await settleMicrotasks();
    if (compare) this.check();
  }

  /** How far an advance by buckets moves the clock (by 50 ms under a count window). */
  bucketAdvance(
    step: Extract<Step, { kind: "advanceWithinBucket" | "advanceToBucket" }>,
  ): number {
    const bucketMs = this.model.bucketMs;
    if (bucketMs === undefined) return 50;
    const now = this.now;
    const bucket = Math.floor(now / bucketMs);
    if (step.kind === "advanceWithinBucket") {
      return Math.floor(step.share * ((bucket + 1) * bucketMs - now));
    }
    return Math.max(0, Math.ceil((bucket + step.buckets) * bucketMs + step.offset - now));
  }

  /** Moves the clock; the timeouts due fire in order (deadline, then start). */
  advance(ms: number): void {
    const target = this.now + ms;
    const due = this.calls
      .filter((call) => !call.ended && call.deadline !== undefined && call.deadline <= target)
      .sort((a, b) => (a.deadline as number) - (b.deadline as number) || a.id - b.id);
    for (const call of due) {
      call.ended = true;
      call.expected = { kind: "timeout" };
      if (call.instance === this.model.instance) {
        this.model.record(
          call.ticket as Ticket,
          "failure",
          call.deadline as number,
          TIMEOUT_FAILURE,
        );
      }
    }
    this.timers.tick(ms);
  }

  call(via: Via, run: Run, outcome: Outcome): void {
    const id = this.calls.length;
    const now = this.now;
    const admission = this.model.admit(now);
    const immediate = via === "sync" || run !== "pending";
    const settlement = settlementOf(outcome, id, this.config);
    let ticket: Ticket | undefined;
    let expected: Expected;
    let ended = true;
    if (admission.admitted) {
      ticket = admission.ticket;
      this.expectedHeard.calls++;
      if (ticket.trial) this.checkTrialsInFlight(ticket);
      if (immediate) {
        this.model.record(
          ticket,
          settlement.verdict,
          now,
          settlement.failure,
          settlement.retryAfterMs,
        );
        expected = settlement.ok
          ? { kind: "value", value: settlement.value }
          : { kind: "error", error: settlement.value };
      } else {
        expected = { kind: "pending" };
        ended = false;
      }
    } else {
      this.expectedHeard.rejections++;
      expected = this.config.fallback
        ? { kind: "value", value: FALLBACK_VALUE }
        : { kind: "rejected", state: admission.state, retryAfterMs: admission.retryAfterMs };
    }
    const timeout = this.model.timeout;
    const counting = via === "signal" ? countingController() : undefined;
    if (counting !== undefined) this.signals.push(counting.listeners);
    const call: TrackedCall = {
      id,
      step: this.stepIndex,
      via,
      instance: this.model.instance,
      ticket,
      deadline: admission.admitted && via !== "sync" && timeout !== undefined && !ended
        ? now + timeout
        : undefined,
      controller: counting?.controller,
      pending: undefined,
      ended,
      expected,
      observed: { kind: "pending" },
    };
    this.calls.push(call);

    let called = false;
    const fn = (): unknown => {
      called = true;
      if (!immediate) {
        call.pending = deferred();
        return call.pending.promise;
      }
      if (run === "resolved" && via !== "sync") {
        return settlement.ok ? Promise.resolve(settlement.value) : Promise.reject(settlement.value);
      }
      if (run === "thenable" && via !== "sync") {
        return {
          then(onValue: (value: unknown) => void, onError: (error: unknown) => void) {
            if (settlement.ok) onValue(settlement.value);
            else onError(settlement.value);
          },
        };
      }
      if (settlement.ok) return settlement.value;
      throw settlement.value;
    };
    if (via === "sync") {
      try {
        call.observed = { kind: "value", value: this.breaker.executeSync(fn) };
      } catch (error) {
        call.observed = { kind: "error", error };
      }
    } else {
      let promise: Promise<unknown>;
      if (via === "execute") promise = this.breaker.execute(fn);
      else if (via === "signal") {
        promise = this.breaker.execute(fn, { signal: call.controller?.signal });
      } else {
        const receiver = { id };
        const wrapped = this.breaker.wrap(function (this: { id: number }, n: number) {
          assert.equal(this, receiver, "wrap() keeps this");
          assert.equal(n, id, "wrap() passes the arguments");
          return fn();
        });
        promise = wrapped.call(receiver, id);
      }
      promise.then(
        (value) => call.observed = { kind: "value", value },
        (error) => call.observed = { kind: "error", error },
      );
    }
    this.expect(called, admission.admitted, `call ${id}: fn called iff the model admits it`);
  }

  /** Half-open trials in flight, counting the one just admitted, stay within the limit. */
  checkTrialsInFlight(ticket: Ticket): void {
    const inFlight = 1 +
      this.calls.filter((call) =>
        !call.ended && call.ticket?.trial === true && call.instance === ticket.instance &&
        call.ticket.epoch === ticket.epoch
      ).length;
    if (inFlight > this.model.halfOpenMaxCalls) {
      this.fail(`${inFlight} trials in flight, more than ${this.model.halfOpenMaxCalls}`);
    }
  }

  settle(pick: number, outcome: Outcome): void {
    const running = this.calls.filter((call) => call.pending !== undefined);
    const call = running[pick % Math.max(1, running.length)];
    if (call === undefined) return;
    const settlement = settlementOf(outcome, call.id, this.config);
    if (!call.ended) {
      call.ended = true;
      if (call.instance === this.model.instance) {
        this.model.record(
          call.ticket as Ticket,
          settlement.verdict,
          this.now,
          settlement.failure,
          settlement.retryAfterMs,
        );
      }
      call.expected = settlement.ok
        ? { kind: "value", value: settlement.value }
        : { kind: "error", error: settlement.value };
    }
    const pending = call.pending as ReturnType<typeof deferred>;
    call.pending = undefined;
    if (settlement.ok) pending.resolve(settlement.value);
    else pending.reject(settlement.value);
  }

  abort(pick: number): void {
    const abortable = this.calls.filter((call) => call.controller !== undefined && !call.ended);
    const call = abortable[pick % Math.max(1, abortable.length)];
    if (call === undefined) return;
    const reason = new Error(`caller gave up on ${call.id}`);
    call.ended = true;
    call.expected = { kind: "error", error: reason };
    if (call.instance === this.model.instance) {
      this.model.record(call.ticket as Ticket, "neutral", this.now);
    }
    (call.controller as AbortController).abort(reason);
  }

  /** A call whose signal has already aborted: rejected with its reason, fn not called. */
  callAborted(): void {
    const id = this.calls.length;
    const counting = countingController();
    this.signals.push(counting.listeners);
    const reason = new Error(`aborted before ${id}`);
    counting.controller.abort(reason);
    const call: TrackedCall = {
      id,
      step: this.stepIndex,
      via: "preAborted",
      instance: this.model.instance,
      ticket: undefined,
      deadline: undefined,
      controller: undefined,
      pending: undefined,
      ended: true,
      expected: { kind: "error", error: reason },
      observed: { kind: "pending" },
    };
    this.calls.push(call);
    let called = false;
    this.breaker.execute(() => {
      called = true;
    }, { signal: counting.controller.signal }).then(
      (value) => call.observed = { kind: "value", value },
      (error) => call.observed = { kind: "error", error },
    );
    this.expect(called, false, "fn of a call whose signal had aborted");
  }

  configure(requested: ConfigureOptions): void {
    let partial = requested;
    if (this.config.options.slowCallDuration === undefined && "slowCallDuration" in partial) {
      // Not modelled: whether a call admitted before durations were measured counts as slow
      // depends on whether a listener made the breaker read its start time. Durations
      // measured from the start may be retuned.
      const { slowCallDuration: _dropped, ...rest } = partial;
      partial = rest;
    }
    const before = JSON.stringify(this.breaker.toJSON());
    if (this.model.configure(partial as ModelOptions)) {
      this.breaker.configure(partial);
      this.options = { ...this.options, ...partial };
    } else {
      assert.throws(
        () => this.breaker.configure(partial),
        (error) => error instanceof RangeError || error instanceof TypeError,
      );
      this.expect(JSON.stringify(this.breaker.toJSON()), before, "a refused configure()");
    }
  }

  restore(): void {
    const state = JSON.parse(JSON.stringify(this.breaker.toJSON()));
    this.breaker = new Breaker({ ...this.options, state });
    this.model.restore();
    this.extraListeners = [];
  }

  listen(throwing: boolean): void {
    const hook = throwing
      ? () => {
        throw new Error("a listener that throws");
      }
      : () => {};
    const listener: BreakerListener = {
      stateChange: hook,
      beforeCall: hook,
      success: hook,
      failure: hook,
      rejected: hook,
    };
    this.breaker.addListener(listener);
    this.extraListeners.push(listener);
  }

  /** Settles every function still running (as neutral), so every permit must come back. */
  async drain(): Promise<void> {
    this.stepIndex = Infinity;
    this.step = undefined;
    while (this.calls.some((call) => call.pending !== undefined)) this.settle(0, "ignored");
    await settleMicrotasks();
    this.check();
    for (const call of this.calls) {
      if (call.observed.kind === "pending") this.fail(`call ${call.id} never settled`);
    }
    this.expect(this.model.trials, 0, "the model's trials in flight after the drain");
    this.expect(this.breaker.snapshot.trials, 0, "trials in flight after the drain (permits)");
    this.expect(this.timers.countTimers(), 0, "timers left after every call ended");
    this.signals.forEach((listeners, i) =>
      this.expect(listeners(), 0, `abort listeners left on caller signal ${i}`)
    );
  }

  // ----------------------------------------------------------------------------- checks

  check(): void {
    const { breaker, model } = this;
    const now = this.now;
    this.expect(breaker.state, model.stateAt(now), "state");
    this.expect(breaker.failureCount, model.failureCount, "failureCount");
    this.expect(breaker.openUntil, model.openUntil, "openUntil");
    this.expect(breaker.retryAfterMs, model.retryAfterMs(now), "retryAfterMs");
    this.expect(breaker.snapshot.trials, model.trials, "trials in flight");
    this.expect(breaker.snapshot.trialSuccesses, model.trialSuccesses, "trialSuccesses");
    const stats = breaker.stats;
    const counts = model.windowCounts(now);
    this.expect(stats.calls, counts.calls, "stats.calls");
    this.expect(stats.failures, counts.failures, "stats.failures");
    this.expect(stats.slowCalls, counts.slowCalls, "stats.slowCalls");
    if (model.lastFailure === TIMEOUT_FAILURE) {
      this.expect(breaker.lastFailure instanceof TimeoutError, true, "lastFailure is a timeout");
    } else {
      this.expect(breaker.lastFailure, model.lastFailure, "lastFailure");
    }
    if (this.config.recordEvents) {
      this.expectDeep(this.heard.stateChanges, model.stateChanges, "stateChange events");
      this.expect(this.heard.calls, this.expectedHeard.calls, "beforeCall events");
      this.expect(this.heard.rejections, this.expectedHeard.rejections, "rejected events");
    }
    for (const call of this.calls) this.checkCall(call);
    this.checkRestored();
  }

  checkCall(call: TrackedCall): void {
    const { expected, observed } = call;
    const what = `call ${call.id} (${call.via}, step ${call.step})`;
    if (expected.kind === "pending") {
      if (observed.kind !== "pending") {
        this.fail(`${what} settled early: ${describeObserved(observed)}`);
      }
      return;
    }
    if (observed.kind === "pending") {
      this.fail(`${what} is still pending; expected ${JSON.stringify(expected.kind)}`);
      return;
    }
    switch (expected.kind) {
      case "value":
        this.expect(observed.kind === "value" && observed.value, expected.value, `${what} value`);
        return;
      case "error":
        this.expect(observed.kind === "error" && observed.error, expected.error, `${what} error`);
        return;
      case "timeout":
        this.expect(
          observed.kind === "error" && observed.error instanceof TimeoutError,
          true,
          `${what} timed out`,
        );
        return;
      case "rejected": {
        const error = observed.kind === "error" ? observed.error : undefined;
        if (!(error instanceof BreakerOpenError)) {
          this.fail(
            `${what} should be rejected with BreakerOpenError, got ${describeObserved(observed)}`,
          );
          return;
        }
        this.expect(error.state, expected.state, `${what} BreakerOpenError.state`);
        this.expect(
          error.retryAfterMs,
          expected.retryAfterMs,
          `${what} BreakerOpenError.retryAfterMs`,
        );
      }
    }
  }

  /**
   * A breaker restored from `toJSON()` now reads the same as this one (but for isolation,
   * which is local) and decides a probe call as the model does after a restore.
   */
  checkRestored(): void {
    const { breaker, model } = this;
    const now = this.now;
    const { listeners: _listeners, ...options } = this.options;
    const json = breaker.toJSON();
    const copy = new Breaker({ ...options, state: JSON.parse(JSON.stringify(json)) });
    const underlying: ModelState = model.mode === "open" && now >= (model.openUntilTime as number)
      ? "half-open"
      : model.mode;
    this.expect(copy.state, underlying, "restored state");
    this.expect(copy.failureCount, model.failureCount, "restored failureCount");
    this.expect(
      copy.openUntil,
      model.mode === "open" ? model.openUntilTime : undefined,
      "restored openUntil",
    );
    this.expect(copy.snapshot.trials, 0, "restored trials in flight");
    this.expect(copy.snapshot.trialSuccesses, model.trialSuccesses, "restored trialSuccesses");
    this.expectDeep(copy.stats, breaker.stats, "restored stats");
    this.expectDeep(copy.toJSON(), json, "toJSON() of the restored breaker");

    // One probe call through both: admitted or not alike, then a failure counted alike.
    const twin = model.clone();
    twin.restore();
    const admission = twin.admit(now);
    const probe = new Error("probe");
    let ran = false;
    try {
      copy.executeSync(() => {
        ran = true;
        throw probe;
      });
    } catch (error) {
      if (error !== probe) {
        this.expect(error instanceof BreakerOpenError, true, "restored probe rejection type");
        if (error instanceof BreakerOpenError && !admission.admitted) {
          this.expect(error.state, admission.state, "restored probe rejection state");
          this.expect(error.retryAfterMs, admission.retryAfterMs, "restored probe retryAfterMs");
        }
      }
    }
    this.expect(ran, admission.admitted, "restored probe admitted");
    if (admission.admitted) twin.record(admission.ticket, "failure", now, probe);
    this.expect(copy.state, twin.stateAt(now), "restored state after the probe");
    this.expect(copy.failureCount, twin.failureCount, "restored failureCount after the probe");
  }

  expect(actual: unknown, expected: unknown, what: string): void {
    if (!Object.is(actual, expected)) {
      this.fail(`${what}: breaker ${describeValue(actual)}, model ${describeValue(expected)}`);
    }
  }

  expectDeep(actual: unknown, expected: unknown, what: string): void {
    try {
      assert.deepEqual(actual, expected);
    } catch {
      this.fail(`${what}: breaker ${describeValue(actual)}, model ${describeValue(expected)}`);
    }
  }

  fail(message: string): never {
    const where = this.step === undefined
      ? "after the drain"
      : `after step ${this.stepIndex} ${JSON.stringify(this.step)}`;
    throw new assert.AssertionError({ message: `${message}, ${where}` });
  }
}

function describeObserved(observed: Observed): string {
  return observed.kind === "value"
    ? `value ${describeValue(observed.value)}`
    : observed.kind === "error"
    ? `error ${describeValue(observed.error)}`
    : "pending";
}

function describeValue(value: unknown): string {
  if (value instanceof Error) return `${value.name}(${JSON.stringify(value.message)})`;
  if (typeof value === "symbol") return value.toString();
  try {
    return JSON.stringify(
      value,
      (_key, v) => typeof v === "number" && !Number.isFinite(v) ? String(v) : v,
    ) ??
      String(value);
  } catch {
    return String(value);
  }
}

/**
 * Runs the steps against a breaker and the model; console.error must only hear listeners.
 * Compares them after every `compareEvery`-th step (and after the drain): reading the breaker
 * records what it deferred, so steps left unread let deferred outcomes pile up.
 */
async function runSteps(
  config: RunConfig,
  steps: readonly Step[],
  compareEvery = 1,
): Promise<void> {
  using reported = captureConsole("error");
  const timers = FakeTimers.withGlobal(globalThis).install({
    toFake: ["setTimeout", "clearTimeout"],
    now: 1_000_000,
  });
  try {
    const run = new ModelRun(config, timers);
    for (const [index, step] of steps.entries()) {
      await run.run(step, index, (index + 1) % compareEvery === 0);
    }
    await run.drain();
    for (const args of reported.calls) {
      if (!/a "\w+" listener threw; ignored/.test(String(args[0]))) {
        run.fail(`unexpected console.error: ${args.map(String).join(" ")}`);
      }
    }
  } finally {
    timers.uninstall();
  }
}

// ------------------------------------------------------------------------------- tests

const quietConfig: RunConfig = {
  options: { window: { calls: 3 }, recoveryTimeout: 10 },
  failureResult: false,
  fallback: false,
  recordEvents: false,
};
const succeedAtOnce = (via: Via): Step => ({
  kind: "call",
  via,
  run: "resolved",
  outcome: "success",
});

/**
 * Cases random steps reach only now and then: a breaker on the fast path (closed, nothing
 * counted, no listener) reconfigured with a rule, a timeout, or a listener.
 */
const FAST_PATH_EXAMPLES: [RunConfig, Step[]][] = [
  [quietConfig, [
    succeedAtOnce("execute"),
    { kind: "configure", options: { failureRate: 0.5 } },
    succeedAtOnce("execute"),
    succeedAtOnce("sync"),
  ]],
  [quietConfig, [
    succeedAtOnce("wrap"),
    { kind: "configure", options: { timeout: 30 } },
    { kind: "call", via: "execute", run: "pending", outcome: "success" },
    { kind: "advance", ms: 30 },
  ]],
  [quietConfig, [
    succeedAtOnce("sync"),
    { kind: "listen", throwing: true },
    { kind: "call", via: "execute", run: "now", outcome: "failure" },
    { kind: "unlisten", pick: 0 },
    succeedAtOnce("execute"),
  ]],
];

describe("Breaker against the reference model, consecutive rule", () => {
  it("Breaker agrees with the reference model under the consecutive rule (random steps)", async () => {
    await fc.assert(
      fc.asyncProperty(
        runConfigArb("consecutive"),
        fc.array(stepArb("consecutive"), { maxLength: 60, size: "max" }),
        (config, steps) => runSteps(config, steps),
      ),
      { ...replayable(2_500), examples: FAST_PATH_EXAMPLES },
    );
  });
});

describe("Breaker against the reference model, consecutive rule, read now and then", () => {
  it("Breaker agrees with the reference model under the consecutive rule, compared every 5th step (deferred failures pile up)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(runConfigArb("consecutive"), fc.constantFrom(undefined, 8, Infinity)).map(
          ([config, failureThreshold]) =>
            failureThreshold === undefined
              ? config
              : { ...config, options: { ...config.options, failureThreshold } },
        ),
        fc.array(stepArb("consecutive"), { maxLength: 60, size: "max" }),
        (config, steps) => runSteps(config, steps, 5),
      ),
      replayable(1_000),
    );
  });
});

describe("Breaker against the reference model, count window", () => {
  it("Breaker agrees with the reference model under a count window with failureRate, slow calls and minimumCalls", async () => {
    await fc.assert(
      fc.asyncProperty(
        runConfigArb("count window"),
        fc.array(stepArb("count window"), { maxLength: 60, size: "max" }),
        (config, steps) => runSteps(config, steps),
      ),
      replayable(2_500),
    );
  });
});

describe("Breaker against the reference model, time window", () => {
  it("Breaker agrees with the reference model under a time window with failureRate, slow calls and minimumCalls", async () => {
    await fc.assert(
      fc.asyncProperty(
        runConfigArb("time window"),
        fc.array(stepArb("time window"), { maxLength: 60, size: "max" }),
        (config, steps) => runSteps(config, steps),
      ),
      replayable(2_500),
    );
  });
});
