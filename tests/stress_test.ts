/**
 * Concurrency stress: 100,000 calls with random arrival times, latencies and outcomes through one
 * breaker under fake time, in lockstep with the reference model (reference_model.ts): no permit
 * lost, no half-open circuit stuck, every call settled as it must, the final counts equal to a
 * recount of the outcomes. Then every way a call can end, one by one, returns its permit.
 *
 * The calls are driven by an event queue (arrivals, functions settling, callers aborting, and the
 * breaker's timeout deadlines, which the harness knows): the fake clock moves to each event in
 * turn, so the model sees outcomes in the order the breaker records them.
 *
 * Replaying a failure of the 100,000-call run: it prints `{ seed: S, path: "P", ... }`; run
 *
 *   FC_SEED=S FC_PATH=P ./node_modules/.bin/deno test --allow-all tests/stress_test.ts \
 *     --filter "Breaker under concurrency stress"
 *   FC_SEED=S FC_PATH=P ./node_modules/.bin/bun test tests/stress_test.ts -t "100,000"
 */

import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import fc from "fast-check";
import {
  Breaker,
  type BreakerListener,
  BreakerOpenError,
  type BreakerOptions,
  TimeoutError,
} from "../mod.ts";
import { replayable } from "./fast_check_runs.ts";
import { deferred } from "./manual_clock.ts";
import {
  type ModelOptions,
  ReferenceBreaker,
  type Ticket,
  type Verdict,
} from "./reference_model.ts";
import { describe, it } from "./timer_leaks.ts";
import { captureConsole } from "./console_capture.ts";
import { recordEvents } from "./event_recorder.ts";
import { countingSignal } from "./counting_signal.ts";

class ExcludedError extends Error {}
class IgnoredError extends Error {}
class FallbackError extends Error {}
const BAD_RESULT = Object.freeze({ status: 503 });
const FALLBACK_VALUE = "served by the fallback";

type FakeClock = ReturnType<ReturnType<typeof FakeTimers.withGlobal>["install"]>;

/** A small, fast, seedable generator (mulberry32), so one fast-check seed replays a run. */
function randomFrom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** Lets every pending promise reaction run. */
async function settleMicrotasks(): Promise<void> {
  for (let i = 0; i < 12; i++) await Promise.resolve();
}

// ------------------------------------------------------------------------------- the run

type Outcome = "success" | "failure" | "excluded" | "ignored" | "badResult" | "busy";
type Via = "execute" | "signal" | "wrap" | "sync" | "throwAtOnce" | "preAborted";

interface StressCall {
  readonly id: number;
  readonly via: Via;
  readonly outcome: Outcome;
  ticket: Ticket | undefined;
  deadline: number | undefined;
  controller: AbortController | undefined;
  running: ReturnType<typeof deferred> | undefined;
  /** The breaker is done with it (recorded, timed out or aborted). */
  ended: boolean;
  /** How it must settle: "value", "error" (its own), "timeout", "abort", "rejected". */
  expected: "pending" | "value" | "error" | "timeout" | "abort" | "rejected" | "fallbackError";
  observed: "pending" | { readonly ok: boolean; readonly value: unknown };
  /** The error or value it settles with, for "value" and "error". */
  payload: unknown;
  /** Its settlement has been checked and tallied. */
  verified: boolean;
}

/** A harness event; deadlines sort before other events at the same time (their timer fires first). */
interface StressEvent {
  readonly time: number;
  readonly order: number;
  readonly kind: "arrive" | "settle" | "abort" | "deadline";
  readonly call: StressCall | undefined;
}

/** A binary heap of events by (time, order). */
class EventQueue {
  readonly #heap: StressEvent[] = [];
  #next = 0;

  get size(): number {
    return this.#heap.length;
  }

  push(time: number, kind: StressEvent["kind"], call?: StressCall): void {
    // Deadlines get a lower order than anything scheduled at the same time.
    const order = (kind === "deadline" ? 0 : 1) * 2 ** 40 + this.#next++;
    const heap = this.#heap;
    heap.push({ time, order, kind, call });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  peek(): StressEvent | undefined {
    return this.#heap[0];
  }

  pop(): StressEvent | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let smallest = i;
        if (left < heap.length && before(heap[left]!, heap[smallest]!)) smallest = left;
        if (right < heap.length && before(heap[right]!, heap[smallest]!)) smallest = right;
        if (smallest === i) break;
        [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
        i = smallest;
      }
    }
    return top;
  }
}

function before(a: StressEvent, b: StressEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.order < b.order);
}

/** What the caller saw, tallied; and what the listeners heard. */
interface Tallies {
  started: number;
  admitted: number;
  rejected: number;
  preAborted: number;
  preAbortedSettled: number;
  fnCalls: number;
  values: number;
  ownErrors: number;
  timeouts: number;
  aborts: number;
  fallbacks: number;
  fallbackErrors: number;
  /** Outcomes that count as successes / failures (a late one too: events fire for it). */
  successes: number;
  failures: number;
  halfOpenRejections: number;
  trialsAdmitted: number;
}

const STRESS_OPTIONS = {
  failureThreshold: 4,
  successThreshold: 2,
  halfOpenMaxCalls: 3,
  recoveryTimeout: 60,
  timeout: 40,
  failureRate: 0.5,
  minimumCalls: 12,
  window: { calls: 24 },
  slowCallRate: 0.9,
  slowCallDuration: 35,
  maxRetryAfter: 200,
} as const satisfies ModelOptions;

class StressRun {
  readonly random: () => number;
  readonly timers: FakeClock;
  readonly model = new ReferenceBreaker(STRESS_OPTIONS);
  readonly breaker: Breaker;
  readonly queue = new EventQueue();
  readonly calls = new Set<StressCall>();
  readonly signals: (() => number)[] = [];
  readonly tallies: Tallies = {
    started: 0,
    admitted: 0,
    rejected: 0,
    preAborted: 0,
    preAbortedSettled: 0,
    fnCalls: 0,
    values: 0,
    ownErrors: 0,
    timeouts: 0,
    aborts: 0,
    fallbacks: 0,
    fallbackErrors: 0,
    successes: 0,
    failures: 0,
    halfOpenRejections: 0,
    trialsAdmitted: 0,
  };
  /** What the listener heard. */
  readonly heard = recordEvents();
  /** Trials in flight per (epoch), by the harness's own count. */
  readonly trialsInFlight = new Map<number, number>();
  nextId = 0;
  readonly total: number;
  events = 0;

  constructor(seed: number, total: number, timers: FakeClock) {
    this.random = randomFrom(seed);
    this.timers = timers;
    this.total = total;
    const throwing: BreakerListener = {
      stateChange: () => {
        throw new Error("a stateChange listener that throws");
      },
      beforeCall: () => {
        throw new Error("a beforeCall listener that throws");
      },
      success: () => Promise.reject(new Error("an async success listener that rejects")),
      failure: () => {
        throw new Error("a failure listener that throws");
      },
    };
    const options: BreakerOptions = {
      ...STRESS_OPTIONS,
      clock: () => timers.now,
      exclude: ExcludedError,
      ignore: IgnoredError,
      isFailureResult: (value) => value === BAD_RESULT,
      // Serves rejected wrapped calls; throws for odd arguments (and for execute(): none).
      fallback: (...args: unknown[]) => {
        if (args.length === 0 || (args[0] as number) % 2 === 1) throw new FallbackError("no");
        return FALLBACK_VALUE;
      },
      listeners: [throwing, this.heard.listener],
    };
    this.breaker = new Breaker(options);
  }

  pick<T>(choices: readonly (readonly [number, T])[]): T {
    let r = this.random() * choices.reduce((sum, [weight]) => sum + weight, 0);
    for (const [weight, choice] of choices) {
      r -= weight;
      if (r < 0) return choice;
    }
    return choices[choices.length - 1]![1];
  }

  async run(): Promise<void> {
    this.queue.push(0, "arrive");
    for (;;) {
      const event = this.queue.pop();
      if (event === undefined) break;
      this.events++;
      if (event.kind === "deadline") {
        this.deadlines(event);
      } else {
        if (event.time > this.timers.now) this.timers.tick(event.time - this.timers.now);
        if (event.kind === "arrive") this.arrive();
        else if (event.kind === "settle") this.settle(event.call as StressCall);
        else this.abort(event.call as StressCall);
      }
      await settleMicrotasks();
      this.checkAgreement();
    }
  }

  /** Timeouts due at one time fire in the order their calls were admitted. */
  deadlines(first: StressEvent): void {
    const due = [first];
    while (this.queue.peek()?.kind === "deadline" && this.queue.peek()?.time === first.time) {
      due.push(this.queue.pop() as StressEvent);
    }
    due.sort((a, b) => (a.call as StressCall).id - (b.call as StressCall).id);
    for (const { call } of due) {
      const timedOut = call as StressCall;
      if (timedOut.ended) continue; // settled or aborted first: its timer was cleared
      timedOut.ended = true;
      timedOut.expected = "timeout";
      this.endTrial(timedOut);
      this.model.record(timedOut.ticket as Ticket, "failure", first.time, "timeout");
    }
    this.timers.tick(first.time - this.timers.now);
  }

  arrive(): void {
    if (this.nextId >= this.total) return;
    // About one call per ms, in bursts.
    this.queue.push(this.timers.now + this.pick([[6, 0], [3, 1], [1, 4]]), "arrive");
    const via = this.pick<Via>([
      [40, "execute"],
      [20, "signal"],
      [15, "wrap"],
      [15, "sync"],
      [5, "throwAtOnce"],
      [1, "preAborted"],
    ]);
    const outcome = this.pick<Outcome>([
      [60, "success"],
      [12, "failure"],
      [5, "excluded"],
      [5, "ignored"],
      [5, "badResult"],
      [3, "busy"],
    ]);
    this.start(via, outcome);
  }

  start(via: Via, outcome: Outcome): void {
    const { tallies, model, breaker } = this;
    const id = this.nextId++;
    const now = this.timers.now;
    const call: StressCall = {
      id,
      via,
      outcome,
      ticket: undefined,
      deadline: undefined,
      controller: undefined,
      running: undefined,
      ended: true,
      expected: "rejected",
      observed: "pending",
      payload: undefined,
      verified: false,
    };
    tallies.started++;
    const observe = (promise: Promise<unknown>) =>
      promise.then(
        (value) => call.observed = { ok: true, value },
        (error) => call.observed = { ok: false, value: error },
      );
    if (via === "preAborted") {
      tallies.preAborted++;
      const controller = new AbortController();
      this.signals.push(countingSignal(controller));
      const reason = new Error(`aborted before ${id}`);
      controller.abort(reason);
      call.expected = "abort";
      call.payload = reason;
      this.calls.add(call);
      observe(breaker.execute(() => {
        tallies.fnCalls++;
      }, { signal: controller.signal }));
      return;
    }
    const stateBefore = model.stateAt(now);
    const admission = model.admit(now);
    const immediate = via === "sync" || via === "throwAtOnce";
    const settlement = this.settlementOf(outcome, id);
    if (admission.admitted) {
      tallies.admitted++;
      const ticket = admission.ticket;
      call.ticket = ticket;
      if (ticket.trial) {
        tallies.trialsAdmitted++;
        const inFlight = (this.trialsInFlight.get(ticket.epoch) ?? 0) + 1;
        this.trialsInFlight.set(ticket.epoch, inFlight);
        if (inFlight > STRESS_OPTIONS.halfOpenMaxCalls) {
          assert.fail(`call ${id}: ${inFlight} half-open trials in flight at ${now}`);
        }
      }
      if (immediate) {
        this.countVerdict(settlement.verdict);
        this.endTrial(call);
        model.record(ticket, settlement.verdict, now, settlement.payload, settlement.retryAfterMs);
        call.expected = settlement.ok ? "value" : "error";
        call.payload = settlement.payload;
      } else {
        call.ended = false;
        call.expected = "pending";
        call.deadline = now + STRESS_OPTIONS.timeout;
        this.queue.push(call.deadline, "deadline", call);
        const latency = this.pick([[70, () => this.random() * 30], [
          30,
          () => this.random() * 60,
        ]])();
        this.queue.push(now + Math.round(latency), "settle", call);
      }
    } else {
      tallies.rejected++;
      if (admission.state === "half-open") {
        tallies.halfOpenRejections++;
        // Not stuck: a half-open circuit only turns calls away while its trials are all out.
        const inFlight = this.trialsInFlight.get(model.epoch) ?? 0;
        if (inFlight < STRESS_OPTIONS.halfOpenMaxCalls) {
          assert.fail(`call ${id} rejected while half-open with ${inFlight} trials in flight`);
        }
      }
      call.expected = via === "wrap" && id % 2 === 0 ? "value" : "fallbackError";
      call.payload = FALLBACK_VALUE;
    }
    this.calls.add(call);
    let called = false;
    const fn = (): unknown => {
      called = true;
      tallies.fnCalls++;
      if (via === "throwAtOnce" || (via === "sync" && !settlement.ok)) {
        if (settlement.ok) return settlement.payload;
        throw settlement.payload;
      }
      if (via === "sync") return settlement.payload;
      call.running = deferred();
      return call.running.promise;
    };
    if (via === "sync") {
      try {
        call.observed = { ok: true, value: breaker.executeSync(fn) };
      } catch (error) {
        call.observed = { ok: false, value: error };
      }
    } else if (via === "wrap") {
      observe(breaker.wrap((_n: number) => fn())(id));
    } else if (via === "signal") {
      const controller = new AbortController();
      call.controller = controller;
      this.signals.push(countingSignal(controller));
      observe(breaker.execute(fn, { signal: controller.signal }));
      if (admission.admitted && !immediate && this.random() < 0.25) {
        this.queue.push(now + Math.round(this.random() * 50), "abort", call);
      }
    } else {
      observe(breaker.execute(fn));
    }
    if (called !== admission.admitted) {
      assert.fail(
        `call ${id} in ${stateBefore}: fn called ${called}, model admits ${admission.admitted}`,
      );
    }
  }

  settlementOf(outcome: Outcome, id: number): {
    ok: boolean;
    payload: unknown;
    verdict: Verdict;
    retryAfterMs: number | undefined;
  } {
    switch (outcome) {
      case "success":
        return { ok: true, payload: `value ${id}`, verdict: "success", retryAfterMs: undefined };
      case "badResult":
        return { ok: true, payload: BAD_RESULT, verdict: "failure", retryAfterMs: undefined };
      case "failure":
        return {
          ok: false,
          payload: new Error(`down ${id}`),
          verdict: "failure",
          retryAfterMs: undefined,
        };
      case "excluded":
        return {
          ok: false,
          payload: new ExcludedError(`${id}`),
          verdict: "success",
          retryAfterMs: undefined,
        };
      case "ignored":
        return {
          ok: false,
          payload: new IgnoredError(`${id}`),
          verdict: "neutral",
          retryAfterMs: undefined,
        };
      case "busy": {
        // A hint shorter than the open period changes nothing; a longer one extends it.
        const retryAfterMs = id % 2 === 0 ? 20 : 150;
        return {
          ok: false,
          payload: Object.assign(new Error("busy"), { retryAfterMs }),
          verdict: "failure",
          retryAfterMs,
        };
      }
    }
  }

  countVerdict(verdict: Verdict): void {
    if (verdict === "success") this.tallies.successes++;
    else if (verdict === "failure") this.tallies.failures++;
  }

  endTrial(call: StressCall): void {
    const ticket = call.ticket;
    if (ticket?.trial !== true) return;
    this.trialsInFlight.set(ticket.epoch, (this.trialsInFlight.get(ticket.epoch) ?? 1) - 1);
  }

  settle(call: StressCall): void {
    const settlement = this.settlementOf(call.outcome, call.id);
    const running = call.running as ReturnType<typeof deferred>;
    call.running = undefined;
    if (!call.ended) {
      call.ended = true;
      call.expected = settlement.ok ? "value" : "error";
      call.payload = settlement.payload;
      this.countVerdict(settlement.verdict);
      this.endTrial(call);
      this.model.record(
        call.ticket as Ticket,
        settlement.verdict,
        this.timers.now,
        settlement.payload,
        settlement.retryAfterMs,
      );
    }
    if (settlement.ok) running.resolve(settlement.payload);
    else running.reject(settlement.payload);
  }

  abort(call: StressCall): void {
    if (call.ended) return;
    call.ended = true;
    call.expected = "abort";
    const reason = new Error(`caller gave up on ${call.id}`);
    call.payload = reason;
    this.endTrial(call);
    this.model.record(call.ticket as Ticket, "neutral", this.timers.now);
    (call.controller as AbortController).abort(reason);
  }

  /** After every event: the breaker reads as the model does; finished calls settled right. */
  checkAgreement(): void {
    const { breaker, model } = this;
    const now = this.timers.now;
    const where = () => `after event ${this.events} at ${now}`;
    if (breaker.state !== model.stateAt(now)) {
      assert.fail(`state ${breaker.state}, model ${model.stateAt(now)}, ${where()}`);
    }
    if (breaker.failureCount !== model.failureCount) {
      assert.fail(`failureCount ${breaker.failureCount}, model ${model.failureCount}, ${where()}`);
    }
    if (breaker.snapshot.trials !== model.trials) {
      assert.fail(`trials ${breaker.snapshot.trials}, model ${model.trials}, ${where()}`);
    }
    if (breaker.openUntil !== model.openUntil) {
      assert.fail(`openUntil ${breaker.openUntil}, model ${model.openUntil}, ${where()}`);
    }
    for (const call of this.calls) {
      if (call.expected === "pending") continue;
      if (call.observed === "pending") {
        if (call.ended && call.running === undefined) {
          assert.fail(`call ${call.id} (${call.via}) has not settled, ${where()}`);
        }
        continue;
      }
      if (!call.verified) this.checkSettled(call);
      call.verified = true;
      if (call.running === undefined) this.calls.delete(call);
    }
  }

  checkSettled(call: StressCall): void {
    const observed = call.observed as { ok: boolean; value: unknown };
    const { tallies } = this;
    const what = `call ${call.id} (${call.via}, expected ${call.expected})`;
    switch (call.expected) {
      case "value":
        assert.ok(observed.ok && observed.value === call.payload, what);
        if (call.payload === FALLBACK_VALUE) tallies.fallbacks++;
        else tallies.values++;
        return;
      case "error":
        assert.ok(!observed.ok && observed.value === call.payload, what);
        tallies.ownErrors++;
        return;
      case "timeout":
        assert.ok(!observed.ok && observed.value instanceof TimeoutError, what);
        tallies.timeouts++;
        return;
      case "abort":
        assert.ok(!observed.ok && observed.value === call.payload, what);
        if (call.via === "preAborted") tallies.preAbortedSettled++;
        else tallies.aborts++;
        return;
      case "fallbackError":
        assert.ok(!observed.ok && observed.value instanceof FallbackError, what);
        tallies.fallbackErrors++;
        return;
      default:
        assert.fail(`${what}: unexpected ${String(observed.value)}`);
    }
  }
}

async function stressOnce(seed: number, total: number): Promise<StressRun> {
  using reported = captureConsole("error");
  const timers = FakeTimers.withGlobal(globalThis).install({
    toFake: ["setTimeout", "clearTimeout"],
    now: 0,
  });
  try {
    const run = new StressRun(seed, total, timers);
    await run.run();
    await settleMicrotasks();
    run.checkAgreement();
    const { breaker, model, tallies, heard } = run;
    // Every call settled, and every one is accounted for.
    assert.equal(run.calls.size, 0, "calls never settled");
    assert.equal(tallies.started, total);
    assert.equal(tallies.admitted + tallies.rejected + tallies.preAborted, total);
    assert.equal(tallies.fnCalls, tallies.admitted, "fn ran once per admitted call");
    assert.equal(
      tallies.values + tallies.ownErrors + tallies.timeouts + tallies.aborts,
      tallies.admitted,
      "admitted calls settled with their value, their error, a timeout or their abort",
    );
    assert.equal(tallies.fallbacks + tallies.fallbackErrors, tallies.rejected);
    assert.equal(tallies.preAbortedSettled, tallies.preAborted, "rejected with their reason");
    // The breaker's events recount the outcomes (a late outcome is announced too).
    assert.equal(heard.eventsOf("beforeCall").length, tallies.admitted);
    assert.equal(heard.eventsOf("rejected").length, tallies.rejected);
    assert.equal(heard.eventsOf("success").length, tallies.successes);
    assert.equal(heard.eventsOf("failure").length, tallies.failures + tallies.timeouts);
    assert.deepEqual(
      heard.eventsOf("stateChange").map(({ from, to }) => [from, to]),
      model.stateChanges,
    );
    // Final counts and window as the model recounts them.
    const counts = model.windowCounts(timers.now);
    assert.deepEqual(
      {
        calls: breaker.stats.calls,
        failures: breaker.stats.failures,
        slow: breaker.stats.slowCalls,
      },
      { calls: counts.calls, failures: counts.failures, slow: counts.slowCalls },
    );
    // No permit lost, no timer or abort listener left.
    assert.equal(breaker.snapshot.trials, 0);
    assert.equal(model.trials, 0);
    assert.equal(timers.countTimers(), 0, "timeout timers left");
    run.signals.forEach((listeners, i) => assert.equal(listeners(), 0, `abort listeners on ${i}`));
    // Not stuck: once its period is over, the circuit admits trials and closes again.
    let probes = 0;
    for (let attempt = 0; attempt < 10 && probes < 3; attempt++) {
      timers.tick(breaker.retryAfterMs);
      try {
        breaker.executeSync(() => "probe");
        probes++;
      } catch (error) {
        assert.ok(error instanceof BreakerOpenError);
      }
    }
    assert.equal(probes, 3);
    assert.equal(breaker.state, "closed");
    // console.error heard only the throwing listeners.
    await settleMicrotasks();
    for (const [message] of reported.calls) {
      assert.match(String(message), /listener threw; ignored/);
    }
    return run;
  } finally {
    timers.uninstall();
  }
}

describe("Breaker under concurrency stress", () => {
  it("Breaker keeps every permit and count through 100,000 concurrent calls with random latencies and outcomes", async () => {
    let last: StressRun | undefined;
    await fc.assert(
      fc.asyncProperty(fc.integer(), async (seed) => {
        last = await stressOnce(seed, 100_000);
      }),
      { ...replayable(1), endOnFailure: true },
    );
    // The run went through every kind of ending and every state.
    const tallies = (last as StressRun).tallies;
    for (
      const key of [
        "timeouts",
        "aborts",
        "preAborted",
        "fallbacks",
        "fallbackErrors",
        "halfOpenRejections",
        "trialsAdmitted",
      ] as const
    ) {
      assert.ok(tallies[key] > 50, `only ${tallies[key]} ${key}`);
    }
  });
});

// ------------------------------------------------------------------------------- exit paths

interface ExitContext {
  readonly breaker: Breaker;
  readonly timers: FakeClock;
  /** A caller's signal whose abort listeners are counted. */
  readonly controller: AbortController;
}

/**
 * Every way a half-open trial (or a call turned away) can end, and the state it leaves. The
 * breaker admits one trial at a time, needs two successes to close, times calls out at 100 ms,
 * ignores `IgnoredError` and has a fallback that throws.
 */
const EXIT_PATHS:
  readonly (readonly [string, (context: ExitContext) => Promise<"half-open" | "open">])[] = [
    ["the trial throws synchronously (an ignored error)", async ({ breaker }) => {
      await assert.rejects(
        breaker.execute(() => {
          throw new IgnoredError();
        }),
        IgnoredError,
      );
      return "half-open";
    }],
    ["the trial throws synchronously (a failure)", async ({ breaker }) => {
      await assert.rejects(
        breaker.execute(() => {
          throw new Error("down");
        }),
        /down/,
      );
      return "open";
    }],
    ["the trial rejects asynchronously (an ignored error)", async ({ breaker }) => {
      await assert.rejects(breaker.execute(() => Promise.reject(new IgnoredError())), IgnoredError);
      return "half-open";
    }],
    ["the trial rejects asynchronously (a failure)", async ({ breaker }) => {
      await assert.rejects(breaker.execute(() => Promise.reject(new Error("down"))), /down/);
      return "open";
    }],
    ["the trial succeeds (one of two successes needed)", async ({ breaker }) => {
      assert.equal(await breaker.execute(() => Promise.resolve("ok")), "ok");
      return "half-open";
    }],
    ["the trial returns a value isFailureResult marks", async ({ breaker }) => {
      assert.equal(await breaker.execute(() => Promise.resolve(BAD_RESULT)), BAD_RESULT);
      return "open";
    }],
    ["the trial times out", async ({ breaker, timers }) => {
      const call = breaker.execute(() => new Promise(() => {})).catch((error) => error);
      await timers.tickAsync(100);
      assert.ok((await call) instanceof TimeoutError);
      return "open";
    }],
    ["the caller aborts during the trial", async ({ breaker, controller }) => {
      const call = breaker.execute(() => new Promise(() => {}), { signal: controller.signal });
      const reason = new Error("caller gone");
      controller.abort(reason);
      await assert.rejects(call, (error) => error === reason);
      return "half-open";
    }],
    ["the caller's signal aborted before the call", async ({ breaker, controller }) => {
      const reason = new Error("caller gone");
      controller.abort(reason);
      let called = false;
      const call = breaker.execute(() => {
        called = true;
      }, { signal: controller.signal });
      await assert.rejects(call, (error) => error === reason);
      assert.equal(called, false);
      return "half-open";
    }],
    ["a call turned away meanwhile gets the fallback's error", async ({ breaker }) => {
      const trial = deferred();
      const running = breaker.execute(() => trial.promise);
      await assert.rejects(breaker.execute(() => Promise.resolve("never runs")), FallbackError);
      assert.throws(() => breaker.executeSync(() => "never runs"), FallbackError);
      assert.equal(breaker.snapshot.trials, 1, "a call turned away takes no permit");
      trial.reject(new IgnoredError());
      await assert.rejects(running, IgnoredError);
      return "half-open";
    }],
    ["every listener hook throws", async ({ breaker }) => {
      breaker.addListener({
        stateChange: () => {
          throw new Error("listener");
        },
        beforeCall: () => {
          throw new Error("listener");
        },
        success: () => {
          throw new Error("listener");
        },
        failure: () => Promise.reject(new Error("listener")),
        rejected: () => {
          throw new Error("listener");
        },
      });
      assert.equal(await breaker.execute(() => Promise.resolve("ok")), "ok");
      return "half-open";
    }],
    ["executeSync's trial throws (an ignored error)", ({ breaker }) => {
      assert.throws(() =>
        breaker.executeSync(() => {
          throw new IgnoredError();
        }), IgnoredError);
      return Promise.resolve("half-open");
    }],
    ["a wrapped trial rejects (an ignored error)", async ({ breaker }) => {
      const guarded = breaker.wrap((_id: string) => Promise.reject(new IgnoredError()));
      await assert.rejects(guarded("1"), IgnoredError);
      return "half-open";
    }],
  ];

describe("Breaker returns the half-open permit on every exit path", () => {
  for (const [exit, end] of EXIT_PATHS) {
    it(`Breaker returns the half-open permit when ${exit}`, async () => {
      const timers = FakeTimers.withGlobal(globalThis).install({
        toFake: ["setTimeout", "clearTimeout"],
        now: 0,
      });
      using reported = captureConsole("error");
      try {
        const breaker = new Breaker({
          halfOpenMaxCalls: 1,
          successThreshold: 2,
          recoveryTimeout: 50,
          timeout: 100,
          ignore: IgnoredError,
          isFailureResult: (value) => value === BAD_RESULT,
          fallback: () => {
            throw new FallbackError("no fallback today");
          },
          clock: () => timers.now,
        });
        breaker.halfOpen();
        const controller = new AbortController();
        const abortListeners = countingSignal(controller);
        const state = await end({ breaker, timers, controller });
        await timers.tickAsync(0);
        assert.equal(breaker.state, state);
        assert.equal(breaker.snapshot.trials, 0, "the permit came back");
        assert.equal(timers.countTimers(), 0, "the timeout timer was cleared");
        assert.equal(abortListeners(), 0, "the abort listener was removed");
        // And the next trial is admitted (after the new open period, when the trial failed).
        timers.tick(breaker.retryAfterMs);
        assert.equal(breaker.executeSync(() => "next"), "next");
        for (const [message] of reported.calls) {
          assert.match(String(message), /listener threw; ignored/);
        }
      } finally {
        timers.uninstall();
      }
    });
  }
});
