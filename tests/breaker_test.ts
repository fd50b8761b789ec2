import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import FakeTimers from "@sinonjs/fake-timers";
import { Breaker, BreakerOpenError, TimeoutError } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { deferred, flush, manualClock } from "./manual_clock.ts";
import { captureConsole } from "./console_capture.ts";
import { recordEvents } from "./event_recorder.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const isBun = "Bun" in globalThis;

/** Runs a script of tests/fixtures in a new process of this runtime: exit code and output. */
function runFixture(name: string, args: string[]): Promise<{ code: number; output: string }> {
  const script = join(ROOT, "tests", "fixtures", name);
  // Deno needs `run` and permissions, Bun `run`, Node.js the script alone.
  const runtimeArgs = isBun ? ["run"] : "Deno" in globalThis ? ["run", "--allow-read"] : [];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...runtimeArgs, script, ...args],
      { cwd: ROOT, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        resolve({ code, output: `${stdout}${stderr}` });
      },
    );
  });
}

const fail = (error: unknown = new Error("down")) => () => Promise.reject(error);
const succeed = <T>(value: T) => () => Promise.resolve(value);

async function trip(breaker: Breaker, times: number): Promise<void> {
  for (let i = 0; i < times; i++) {
    await breaker.execute(fail()).catch(() => {});
  }
}

describe("Breaker lifecycle", () => {
  it("Breaker.execute() resolves with the function's value while closed", async () => {
    const breaker = new Breaker();
    assert.equal(await breaker.execute(succeed(42)), 42);
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.execute() rethrows the tripping call's own error object, then opens", async () => {
    const clock = manualClock();
    const breaker = new Breaker({ failureThreshold: 3, clock });
    const errors = [new Error("a"), new Error("b"), new Error("c")];
    for (const error of errors) {
      await assert.rejects(breaker.execute(fail(error)), (thrown) => thrown === error);
    }
    assert.equal(breaker.state, "open");
    assert.equal(breaker.failureCount, 3);
    assert.equal(breaker.lastFailure, errors[2]);
  });

  it("Breaker.execute() rejects with BreakerOpenError while open, without calling fn", async () => {
    const clock = manualClock();
    const breaker = new Breaker({ name: "db", failureThreshold: 1, recoveryTimeout: 1_200, clock });
    const cause = new Error("down");
    await breaker.execute(fail(cause)).catch(() => {});
    let called = false;
    const error = await breaker.execute(() => {
      called = true;
      return Promise.resolve();
    }).catch((e) => e);
    assert.equal(called, false);
    assert.ok(error instanceof BreakerOpenError);
    assert.equal(error.name, "BreakerOpenError");
    assert.equal(error.breaker, "db");
    assert.equal(error.state, "open");
    assert.equal(error.retryAfterMs, 1_200);
    assert.equal(error.cause, cause);
    assert.equal(error.message, 'Circuit "db" is open: retry in 1200 ms');
  });

  it("BreakerOpenError keeps its own fields, a non-enumerable cause, and a real Error's stack", () => {
    const cause = new Error("down");
    const error = new BreakerOpenError({ breaker: "db", state: "open", retryAfterMs: 5, cause });
    assert.deepEqual(Object.keys(error), ["breaker", "state", "retryAfterMs"]);
    assert.equal(Object.getOwnPropertyDescriptor(error, "cause")?.enumerable, false);
    assert.equal(error.cause, cause);
    assert.ok(Object.hasOwn(error, "message") && Object.hasOwn(error, "stack"));
    assert.equal(Object.prototype.toString.call(error), "[object Error]");
    assert.ok(
      String(error.stack).startsWith('BreakerOpenError: Circuit "db" is open: retry in 5 ms'),
    );
  });

  it("BreakerOpenError's message follows its breaker, state and retry time, call after call", () => {
    const message = (breaker: string, state: BreakerOpenError["state"], retryAfterMs: number) =>
      new BreakerOpenError({ breaker, state, retryAfterMs }).message;
    assert.equal(message("db", "open", 1_200), 'Circuit "db" is open: retry in 1200 ms');
    assert.equal(message("db", "open", 1_199.2), 'Circuit "db" is open: retry in 1200 ms');
    assert.equal(message("db", "open", 1_199), 'Circuit "db" is open: retry in 1199 ms');
    assert.equal(message("api", "open", 1_199), 'Circuit "api" is open: retry in 1199 ms');
    assert.equal(message("api", "isolated", 1_199), 'Circuit "api" is isolated');
    assert.equal(message("api", "isolated", Infinity), 'Circuit "api" is isolated');
    assert.equal(message("api", "open", Infinity), 'Circuit "api" is open: retry in Infinity ms');
    assert.equal(message("api", "open", Number.NaN), 'Circuit "api" is open: retry in NaN ms');
    assert.equal(message("api", "open", Number.NaN), 'Circuit "api" is open: retry in NaN ms');
    assert.equal(
      message("api", "half-open", 0),
      'Circuit "api" is half-open: every trial call is in flight',
    );
  });

  it("BreakerOpenError's stack shows the caller right under the method it called", async () => {
    const breaker = new Breaker({ name: "db", recoveryTimeout: 60_000 });
    const wrapped = breaker.wrap(succeed(1));
    const wrappedSync = breaker.wrapSync(() => 1);
    breaker.open();
    const callsExecute = () => breaker.execute(succeed(1)).catch((e) => e);
    const callsWrapper = () => wrapped().catch((e) => e);
    const callsExecuteSync = () => {
      try {
        return breaker.executeSync(() => 1);
      } catch (error) {
        return error;
      }
    };
    const callsSyncWrapper = () => {
      try {
        return wrappedSync();
      } catch (error) {
        return error;
      }
    };
    const errors: [string, unknown][] = [
      ["callsExecute", await callsExecute()],
      ["callsWrapper", await callsWrapper()],
      ["callsExecuteSync", callsExecuteSync()],
      ["callsSyncWrapper", callsSyncWrapper()],
    ];
    for (const [caller, error] of errors) {
      assert.ok(error instanceof BreakerOpenError);
      const frames = String(error.stack).split("\n").filter((line) => /^\s+at /.test(line));
      const at = frames.findIndex((line) => line.includes(caller));
      // The library's method (JavaScriptCore may leave it out), then the caller.
      assert.ok(at === 0 || at === 1, `${caller}: ${error.stack}`);
    }
  });

  it("Breaker.execute() after failures rejects with fn's own error and resolves with its value", async () => {
    const breaker = new Breaker({ failureThreshold: Infinity });
    const errors = [new Error("a"), new Error("b"), new Error("c")];
    for (const error of errors) {
      await assert.rejects(breaker.execute(fail(error)), (thrown) => thrown === error);
    }
    assert.equal(breaker.failureCount, 3);
    assert.equal(breaker.lastFailure, errors[2]);
    const value = { rows: 1 };
    assert.equal(await breaker.execute(succeed(value)), value);
    assert.equal(breaker.failureCount, 0);
  });

  for (
    const [calls, failures, kind] of [
      ["the first call", 0, "promise"],
      ["a call after failures", 3, "promise"],
      ["a thenable after failures", 3, "thenable"],
      ["a timed call after failures", 3, "listener"],
    ] as const
  ) {
    it(`Breaker.execute(): a rejection nobody handles is still reported (${calls})`, async () => {
      const dropped = await runFixture("unhandled_rejection.ts", [String(failures), "drop", kind]);
      assert.notEqual(dropped.code, 0, dropped.output);
      assert.match(dropped.output, /dropped rejection/);
      const handled = await runFixture("unhandled_rejection.ts", [
        String(failures),
        "handle",
        kind,
      ]);
      assert.equal(handled.code, 0, handled.output);
    });
  }

  it("Breaker.execute() after failures records a failure before the caller sees it", async () => {
    const failures: unknown[] = [];
    const breaker = new Breaker({ failureThreshold: Infinity });
    const timed = new Breaker({
      failureThreshold: Infinity,
      listeners: [{ failure: ({ error }) => failures.push(error) }],
    });
    for (let i = 1; i <= 3; i++) {
      const error = new Error(`down ${i}`);
      const seen = await breaker.execute(fail(error)).catch((thrown) => [
        thrown,
        breaker.failureCount,
        breaker.lastFailure,
      ]);
      assert.deepEqual(seen, [error, i, error]);
      const thenable = { then: (_: unknown, reject: (e: unknown) => void) => reject(error) };
      const seenTimed = await timed.execute(() => thenable).catch((thrown) => [
        thrown,
        timed.failureCount,
        failures.length,
      ]);
      assert.deepEqual(seenTimed, [error, i, i]);
    }
  });

  it("Breaker state turns half-open exactly when now == openUntil", async () => {
    const clock = manualClock(10_000);
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 500, clock });
    await trip(breaker, 1);
    assert.equal(breaker.openUntil, 10_500);
    clock.now = 10_499;
    assert.equal(breaker.state, "open");
    assert.equal(breaker.retryAfterMs, 1);
    await assert.rejects(breaker.execute(succeed(1)), BreakerOpenError);
    clock.now = 10_500;
    assert.equal(breaker.state, "half-open");
    assert.equal(breaker.retryAfterMs, 0);
    assert.equal(await breaker.execute(succeed("trial")), "trial");
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 0);
  });

  it("Breaker reopens with a fresh period when the trial fails", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ failureThreshold: 2, recoveryTimeout: 100, clock });
    await trip(breaker, 2);
    clock.now = 100;
    const trialError = new Error("still down");
    await assert.rejects(breaker.execute(fail(trialError)), (e) => e === trialError);
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 200);
    assert.equal(breaker.failureCount, 3);
    clock.now = 199;
    await assert.rejects(breaker.execute(succeed(1)), BreakerOpenError);
    clock.now = 200;
    assert.equal(await breaker.execute(succeed(1)), 1);
    assert.equal(breaker.state, "closed");
  });

  it("Breaker counts consecutive failures; a success while closed resets the count", async () => {
    const breaker = new Breaker({ failureThreshold: 3 });
    await trip(breaker, 2);
    assert.equal(breaker.failureCount, 2);
    await breaker.execute(succeed(1));
    assert.equal(breaker.failureCount, 0);
    await trip(breaker, 2);
    assert.equal(breaker.state, "closed");
    await trip(breaker, 1);
    assert.equal(breaker.state, "open");
  });

  it("Breaker.execute() counts a function that throws synchronously as a failure", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    const error = new Error("sync");
    await assert.rejects(
      breaker.execute(() => {
        throw error;
      }),
      (e) => e === error,
    );
    assert.equal(breaker.state, "open");
  });

  it("Breaker.execute() calls fn synchronously, before returning", () => {
    const breaker = new Breaker();
    let called = false;
    const promise = breaker.execute(() => {
      called = true;
      return Promise.resolve();
    });
    assert.equal(called, true);
    return promise;
  });

  it("Breaker.execute() accepts a function returning a plain value or a thenable", async () => {
    const breaker = new Breaker();
    assert.equal(await breaker.execute(() => 7), 7);
    const thenable = { then: (resolve: (v: number) => void) => resolve(8) };
    assert.equal(await breaker.execute(() => thenable as unknown as PromiseLike<number>), 8);
  });

  it("Breaker.execute() gives fn an AbortSignal that never aborts by default", async () => {
    const breaker = new Breaker();
    const signal = await breaker.execute((signal) => signal);
    assert.ok(signal instanceof AbortSignal);
    assert.equal(signal.aborted, false);
  });

  it("Breaker.executeSync() runs synchronously and throws BreakerOpenError while open", () => {
    const breaker = new Breaker({ failureThreshold: 1, name: "parser" });
    assert.deepEqual(breaker.executeSync(() => JSON.parse("[1]")), [1]);
    assert.throws(() => breaker.executeSync(() => JSON.parse("{")), SyntaxError);
    assert.equal(breaker.state, "open");
    assert.throws(() => breaker.executeSync(() => 1), BreakerOpenError);
  });

  it("Breaker works with recoveryTimeout 0: the next call is a trial", async () => {
    const clock = manualClock();
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 0, clock });
    await trip(breaker, 1);
    assert.equal(breaker.state, "half-open");
    assert.equal(await breaker.execute(succeed(1)), 1);
    assert.equal(breaker.state, "closed");
  });

  it('Breaker name defaults to "breaker"', () => {
    assert.equal(new Breaker().name, "breaker");
  });
});

describe("Breaker failure classification", () => {
  class HttpError extends Error {
    readonly status: number;
    constructor(status: number) {
      super(`HTTP ${status}`);
      this.status = status;
    }
  }
  class NotFound extends HttpError {}

  it("Breaker counts every error as a failure by default, including non-Error values", async () => {
    for (const thrown of ["text", undefined, null, 42, { code: 1 }]) {
      const breaker = new Breaker({ failureThreshold: 1 });
      await assert.rejects(breaker.execute(() => Promise.reject(thrown)), (e) => e === thrown);
      assert.equal(breaker.state, "open", `thrown ${String(thrown)}`);
      await assert.rejects(breaker.execute(succeed(1)), BreakerOpenError);
    }
  });

  it("Breaker isFailure with an error class matches subclasses; other errors count as success", async () => {
    const breaker = new Breaker({ failureThreshold: 2, isFailure: HttpError });
    await breaker.execute(fail(new NotFound(404))).catch(() => {});
    assert.equal(breaker.failureCount, 1);
    await breaker.execute(fail(new TypeError("x"))).catch(() => {});
    assert.equal(breaker.failureCount, 0, "a non-matching error counts as success");
  });

  it("Breaker isFailure accepts a predicate and a mixed array", async () => {
    const serverError = (e: unknown) => e instanceof HttpError && e.status >= 500;
    const breaker = new Breaker({ failureThreshold: 10, isFailure: [RangeError, serverError] });
    await breaker.execute(fail(new HttpError(503))).catch(() => {});
    await breaker.execute(fail(new RangeError("r"))).catch(() => {});
    assert.equal(breaker.failureCount, 2);
    await breaker.execute(fail(new HttpError(404))).catch(() => {});
    assert.equal(breaker.failureCount, 0);
  });

  it("Breaker exclude counts matching errors as success and still rejects with them", async () => {
    const breaker = new Breaker({ failureThreshold: 1, exclude: [NotFound] });
    const error = new NotFound(404);
    await assert.rejects(breaker.execute(fail(error)), (e) => e === error);
    assert.equal(breaker.state, "closed");
  });

  it("Breaker ignore makes an error neutral: the count neither grows nor resets", async () => {
    const breaker = new Breaker({ failureThreshold: 3, ignore: (e) => e === "ignored" });
    await trip(breaker, 2);
    await breaker.execute(fail("ignored")).catch(() => {});
    assert.equal(breaker.failureCount, 2);
  });

  it("Breaker judges ignore, then exclude, then isFailure", async () => {
    const breaker = new Breaker({
      failureThreshold: 1,
      ignore: NotFound,
      exclude: HttpError,
      isFailure: Error,
    });
    await trip(breaker, 0);
    await breaker.execute(fail(new NotFound(404))).catch(() => {});
    assert.equal(breaker.state, "closed");
    await breaker.execute(fail(new HttpError(500))).catch(() => {});
    assert.equal(breaker.state, "closed");
    await breaker.execute(fail(new Error("x"))).catch(() => {});
    assert.equal(breaker.state, "open");
  });

  it("Breaker isFailureResult counts a returned value as a failure and still returns it", async () => {
    const breaker = new Breaker({
      failureThreshold: 2,
      isFailureResult: (result) => result instanceof Response && result.status >= 500,
    });
    const bad = new Response(null, { status: 502 });
    assert.equal(await breaker.execute(() => Promise.resolve(bad)), bad);
    assert.equal(breaker.failureCount, 1);
    assert.equal(breaker.lastFailure, bad);
    await breaker.execute(() => Promise.resolve(new Response("ok")));
    assert.equal(breaker.failureCount, 0);
    assert.equal(breaker.executeSync(() => bad), bad);
    assert.equal(breaker.executeSync(() => bad), bad);
    assert.equal(breaker.state, "open");
  });

  it("Breaker reports a throwing matcher and judges as if it were not set", async () => {
    using reports = captureConsole("error");
    const breaker = new Breaker({
      failureThreshold: 1,
      exclude: () => {
        throw new Error("broken matcher");
      },
    });
    await breaker.execute(fail()).catch(() => {});
    assert.equal(breaker.state, "open");
    assert.equal(reports.calls.length, 1);
  });
});

describe("Breaker half-open", () => {
  it("Breaker admits halfOpenMaxCalls trials at once and rejects the rest at once", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      failureThreshold: 1,
      recoveryTimeout: 10,
      halfOpenMaxCalls: 2,
      successThreshold: 3,
      clock,
    });
    await trip(breaker, 1);
    clock.now = 10;
    const first = deferred<string>(), second = deferred<string>();
    const calls = [breaker.execute(() => first.promise), breaker.execute(() => second.promise)];
    const third = await breaker.execute(succeed("x")).catch((e) => e);
    assert.ok(third instanceof BreakerOpenError);
    assert.equal(third.state, "half-open");
    assert.equal(third.retryAfterMs, 0);
    first.resolve("1");
    await calls[0];
    // A permit came back: one more trial is admitted.
    const fourth = deferred<string>();
    const calls2 = breaker.execute(() => fourth.promise);
    await assert.rejects(breaker.execute(succeed("x")), BreakerOpenError);
    second.resolve("2");
    fourth.resolve("4");
    await Promise.all([calls[1], calls2]);
    assert.equal(breaker.state, "closed");
  });

  it("Breaker returns the permit of a neutral trial (ignored error or caller abort)", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({
      failureThreshold: 1,
      recoveryTimeout: 10,
      ignore: TypeError,
      clock,
    });
    await trip(breaker, 1);
    clock.now = 10;
    await breaker.execute(fail(new TypeError("neutral"))).catch(() => {});
    assert.equal(breaker.state, "half-open");
    const controller = new AbortController();
    const pending = breaker.execute(() => new Promise(() => {}), { signal: controller.signal });
    await assert.rejects(breaker.execute(succeed(1)), BreakerOpenError);
    controller.abort(new Error("caller gave up"));
    await assert.rejects(pending, /caller gave up/);
    assert.equal(await breaker.execute(succeed(1)), 1);
    assert.equal(breaker.state, "closed");
  });

  it("Breaker ignores the late outcome of a call admitted in an older generation", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 10, clock });
    const slow = deferred<string>();
    const late = breaker.execute(() => slow.promise);
    await trip(breaker, 1); // opens while `late` is in flight
    clock.now = 10; // half-open
    slow.resolve("late"); // must not close the circuit it did not test
    assert.equal(await late, "late");
    assert.equal(breaker.state, "half-open");
    const lateFailure = deferred<string>();
    clock.now = 10;
    breaker.close();
    const late2 = breaker.execute(() => lateFailure.promise);
    breaker.open();
    breaker.close();
    lateFailure.reject(new Error("late"));
    await late2.catch(() => {});
    assert.equal(breaker.failureCount, 0);
  });

  it("Breaker keeps failureCount through half-open until the circuit closes", async () => {
    const clock = manualClock(0);
    const breaker = new Breaker({ failureThreshold: 2, recoveryTimeout: 10, clock });
    await trip(breaker, 2);
    clock.now = 10;
    assert.equal(breaker.failureCount, 2);
    await breaker.execute(succeed(1));
    assert.equal(breaker.failureCount, 0);
  });
});

describe("Breaker fallback", () => {
  it("Breaker serves the fallback's result instead of rejecting while open", async () => {
    const breaker = new Breaker({ failureThreshold: 1, fallback: () => "cached" });
    await trip(breaker, 1);
    assert.equal(await breaker.execute(succeed("live")), "cached");
    assert.equal(breaker.executeSync(() => "live"), "cached");
  });

  it("Breaker.wrap() calls the fallback with the wrapper's arguments and this", async () => {
    const seen: unknown[] = [];
    const breaker = new Breaker({
      failureThreshold: 1,
      fallback: function (this: unknown, ...args: never[]) {
        seen.push(this, ...args);
        return Promise.resolve("fallback");
      },
    });
    const target = { wrapped: breaker.wrap((_a: number, _b: string) => Promise.resolve("live")) };
    await trip(breaker, 1);
    assert.equal(await target.wrapped(1, "b"), "fallback");
    assert.deepEqual(seen, [target, 1, "b"]);
  });

  it("Breaker rejects with the fallback's own error when the fallback throws", async () => {
    const error = new Error("fallback failed");
    const breaker = new Breaker({
      failureThreshold: 1,
      fallback: () => {
        throw error;
      },
    });
    await trip(breaker, 1);
    await assert.rejects(breaker.execute(succeed(1)), (e) => e === error);
    assert.throws(() => breaker.executeSync(() => 1), (e) => e === error);
  });

  it("Breaker does not call the fallback for the function's own failures", async () => {
    let calls = 0;
    const breaker = new Breaker({ fallback: () => calls++ });
    await assert.rejects(breaker.execute(fail()), /down/);
    assert.equal(calls, 0);
  });
});

describe("Breaker timeout", () => {
  it("Breaker times out a function that ignores its signal, as a failure, and aborts the signal", async () => {
    const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 0 });
    try {
      const breaker = new Breaker({ name: "slow", timeout: 100, failureThreshold: 1 });
      let seen: AbortSignal | undefined;
      const never = deferred<string>();
      const call = breaker.execute((signal) => {
        seen = signal;
        return never.promise; // ignores the signal
      });
      const outcome = call.catch((e) => e);
      await timers.tickAsync(99);
      assert.equal(seen?.aborted, false);
      await timers.tickAsync(1);
      const error = await outcome;
      assert.ok(error instanceof TimeoutError);
      assert.equal(error.name, "TimeoutError");
      assert.equal(error.message, 'Circuit "slow": the call timed out after 100 ms');
      assert.equal(seen?.aborted, true);
      assert.equal(seen?.reason, error);
      assert.equal(breaker.state, "open");
      never.resolve("too late"); // a late result changes nothing
      await flush();
      assert.equal(breaker.state, "open");
    } finally {
      timers.uninstall();
    }
  });

  it("Breaker counts a timeout as a failure even when the matchers exclude TimeoutError", async () => {
    const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 0 });
    try {
      const breaker = new Breaker({ timeout: 5, failureThreshold: 1, exclude: TimeoutError });
      const call = breaker.execute(() => new Promise(() => {})).catch((e) => e);
      await timers.tickAsync(5);
      assert.ok((await call) instanceof TimeoutError);
      assert.equal(breaker.state, "open");
    } finally {
      timers.uninstall();
    }
  });

  it("Breaker clears the timeout timer when the call settles first", async () => {
    const breaker = new Breaker({ timeout: 60_000 });
    assert.equal(await breaker.execute(succeed(1)), 1);
    await assert.rejects(breaker.execute(fail()), /down/);
    // afterEach's leak check fails this test if a timer is still pending.
  });

  it("Breaker.wrap() applies the timeout too", async () => {
    const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 0 });
    try {
      const breaker = new Breaker({ timeout: 10 });
      const wrapped = breaker.wrap((_id: string) => new Promise<string>(() => {}));
      const call = wrapped("1").catch((e) => e);
      await timers.tickAsync(10);
      assert.ok((await call) instanceof TimeoutError);
    } finally {
      timers.uninstall();
    }
  });
});

describe("Breaker caller signal", () => {
  it("Breaker.execute() rejects at once with the abort reason and counts it neither way", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    const controller = new AbortController();
    let inner: AbortSignal | undefined;
    const call = breaker.execute((signal) => {
      inner = signal;
      return new Promise(() => {});
    }, { signal: controller.signal });
    const reason = new Error("client went away");
    controller.abort(reason);
    await assert.rejects(call, (e) => e === reason);
    assert.equal(inner?.aborted, true);
    assert.equal(breaker.state, "closed");
    assert.equal(breaker.failureCount, 0);
  });

  it("Breaker.execute() does not run fn when the signal is already aborted", async () => {
    const breaker = new Breaker();
    let called = false;
    const reason = new Error("already");
    await assert.rejects(
      breaker.execute(() => {
        called = true;
      }, { signal: AbortSignal.abort(reason) }),
      (e) => e === reason,
    );
    assert.equal(called, false);
  });

  it("Breaker follows the caller's signal and the timeout together", async () => {
    const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 0 });
    try {
      const breaker = new Breaker({ timeout: 50 });
      const controller = new AbortController();
      let inner: AbortSignal | undefined;
      const call = breaker.execute((signal) => {
        inner = signal;
        return new Promise(() => {});
      }, { signal: controller.signal }).catch((e) => e);
      controller.abort("stop");
      assert.equal(await call, "stop");
      assert.equal(inner?.aborted, true);
      assert.equal(inner?.reason, "stop");
      assert.equal(timers.countTimers(), 0, "the timeout timer was cleared");
    } finally {
      timers.uninstall();
    }
  });

  it("Breaker removes its abort listener from the caller's signal when the call settles", async () => {
    const breaker = new Breaker();
    const controller = new AbortController();
    let listeners = 0;
    const signal = controller.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((...args: Parameters<typeof add>) => {
      listeners++;
      add(...args);
    }) as typeof signal.addEventListener;
    signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
      listeners--;
      remove(...args);
    }) as typeof signal.removeEventListener;
    await breaker.execute(succeed(1), { signal });
    await breaker.execute(fail(), { signal }).catch(() => {});
    assert.equal(listeners, 0);
  });
});

describe("Breaker listeners", () => {
  it("Breaker fires beforeCall, failure, stateChange closed->open in that order", async () => {
    const clock = manualClock(0);
    const recorded = recordEvents();
    const breaker = new Breaker({
      failureThreshold: 1,
      recoveryTimeout: 10,
      listeners: [recorded.listener],
      clock,
    });
    await trip(breaker, 1);
    assert.deepEqual(recorded.lines(), ["beforeCall", "failure", "stateChange closed->open"]);
    recorded.clear();
    await breaker.execute(succeed(1)).catch(() => {});
    assert.deepEqual(recorded.lines(), ["rejected open"]);
    recorded.clear();
    clock.now = 10;
    assert.equal(breaker.state, "half-open");
    assert.deepEqual(recorded.lines(), [], "reading state has no side effects");
    await breaker.execute(succeed(1));
    assert.deepEqual(recorded.lines(), [
      "stateChange open->half-open",
      "beforeCall",
      "success",
      "stateChange half-open->closed",
    ]);
  });

  it("Breaker listeners see the new state in place when called", async () => {
    const seen: string[] = [];
    const breaker: Breaker = new Breaker({
      failureThreshold: 1,
      listeners: [{
        failure: ({ breaker }) => seen.push(breaker.state),
        stateChange: ({ breaker }) => seen.push(breaker.state),
      }],
    });
    await trip(breaker, 1);
    assert.deepEqual(seen, ["open", "open"]);
  });

  it("Breaker events carry the breaker, durations and errors", async () => {
    const clock = manualClock(0);
    const recorded = recordEvents(["success", "failure"]);
    const breaker = new Breaker({ clock });
    breaker.addListener(recorded.listener);
    const slow = deferred<number>();
    const call = breaker.execute(() => slow.promise);
    clock.advance(25);
    slow.resolve(1);
    await call;
    const error = new Error("x");
    await breaker.execute(() => {
      clock.advance(5);
      return Promise.reject(error);
    }).catch(() => {});
    assert.deepEqual(recorded.events, [
      { hook: "success", breaker, durationMs: 25 },
      { hook: "failure", breaker, error, durationMs: 5 },
    ]);
  });

  it("Breaker reports a throwing listener and keeps the call's outcome and state", async () => {
    using reports = captureConsole("error");
    const breaker = new Breaker({
      failureThreshold: 1,
      listeners: [{
        beforeCall: () => {
          throw new Error("listener bug");
        },
        stateChange: () => Promise.reject(new Error("async listener bug")),
        failure: () => {
          throw new Error("listener bug");
        },
      }],
    });
    assert.equal(await breaker.execute(succeed(5)), 5);
    const error = new Error("real");
    await assert.rejects(breaker.execute(fail(error)), (e) => e === error);
    assert.equal(breaker.state, "open");
    await flush();
    assert.equal(reports.calls.length, 4);
    assert.match(String(reports.calls[0]?.[0]), /"beforeCall" listener threw/);
  });

  it("Breaker.addListener() returns a Disposable that removes the listener", async () => {
    const breaker = new Breaker();
    const recorded = recordEvents(["beforeCall"]);
    {
      using _subscription = breaker.addListener(recorded.listener);
      await breaker.execute(succeed(1));
    }
    await breaker.execute(succeed(1));
    assert.equal(recorded.events.length, 1);
    breaker.addListener(recorded.listener);
    breaker.removeListener(recorded.listener);
    await breaker.execute(succeed(1));
    assert.equal(recorded.events.length, 1);
  });

  it("Breaker fires no event for the restored state", () => {
    const source = new Breaker();
    source.open();
    const recorded = recordEvents(["stateChange"]);
    const restored = new Breaker({ state: source.toJSON(), listeners: [recorded.listener] });
    assert.equal(restored.state, "open");
    assert.deepEqual(recorded.events, []);
  });
});

describe("Breaker manual control", () => {
  it("Breaker.open() starts a normal recovery period from now", () => {
    const clock = manualClock(100);
    const breaker = new Breaker({ recoveryTimeout: 1_000, clock });
    breaker.open();
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 1_100);
    clock.now = 1_100;
    assert.equal(breaker.state, "half-open");
  });

  it("Breaker.halfOpen() lets the next call through as a trial", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    await trip(breaker, 1);
    breaker.halfOpen();
    assert.equal(breaker.state, "half-open");
    await breaker.execute(succeed(1));
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.close() resets the failure count and closes", async () => {
    const breaker = new Breaker({ failureThreshold: 3 });
    await trip(breaker, 2);
    breaker.close();
    assert.equal(breaker.failureCount, 0);
    await trip(breaker, 3);
    breaker.close();
    assert.equal(breaker.state, "closed");
    assert.equal(await breaker.execute(succeed(1)), 1);
  });

  it("Breaker.isolate() rejects every call until the last hold is disposed", async () => {
    const recorded = recordEvents(["stateChange"]);
    const breaker = new Breaker({ name: "db", listeners: [recorded.listener] });
    const first = breaker.isolate();
    const second = breaker.isolate();
    const error = await breaker.execute(succeed(1)).catch((e) => e);
    assert.ok(error instanceof BreakerOpenError);
    assert.equal(error.state, "isolated");
    assert.equal(error.retryAfterMs, Infinity);
    assert.equal(error.message, 'Circuit "db" is isolated');
    assert.equal(breaker.retryAfterMs, Infinity);
    assert.equal(breaker.state, "isolated");
    breaker.close(); // does not end isolation
    assert.equal(breaker.state, "isolated");
    first[Symbol.dispose]();
    first[Symbol.dispose](); // disposing twice releases once
    assert.equal(breaker.state, "isolated");
    second[Symbol.dispose]();
    assert.equal(breaker.state, "closed");
    assert.deepEqual(recorded.lines(), [
      "stateChange closed->isolated",
      "stateChange isolated->closed",
    ]);
    assert.equal(await breaker.execute(succeed(1)), 1);
  });

  it("Breaker.isolate() works with using, and is not part of toJSON()", () => {
    const breaker = new Breaker();
    {
      using _hold = breaker.isolate();
      assert.equal(breaker.toJSON().state, "closed");
      assert.equal(breaker.state, "isolated");
    }
    assert.equal(breaker.state, "closed");
  });

  it("Breaker.configure() changes options and keeps the state", async () => {
    const breaker = new Breaker({ failureThreshold: 5 });
    await trip(breaker, 2);
    breaker.configure({ failureThreshold: 3 });
    assert.equal(breaker.failureCount, 2);
    await trip(breaker, 1);
    assert.equal(breaker.state, "open");
  });

  it("Breaker.configure() leaves the breaker unchanged when an option is bad", () => {
    const breaker = new Breaker({ name: "db", failureThreshold: 5 });
    assert.throws(
      () => breaker.configure({ failureThreshold: 2, recoveryTimeout: -1 }),
      {
        name: "RangeError",
        message:
          'Cannot configure breaker "db": "recoveryTimeout" must be a finite number >= 0, received -1',
      },
    );
    assert.throws(() => breaker.configure({ name: "x" } as never), /"name" cannot be changed/);
    assert.throws(() => breaker.configure({ listeners: [] } as never), /addListener/);
  });
});

describe("Breaker snapshots", () => {
  it("Breaker.toJSON() round-trips through JSON into a new breaker", async () => {
    const clock = manualClock(5_000);
    const breaker = new Breaker({ failureThreshold: 2, recoveryTimeout: 300, clock });
    await trip(breaker, 2);
    const json = JSON.parse(JSON.stringify(breaker));
    assert.equal(json.version, 1);
    assert.equal(json.state, "open");
    assert.equal(json.openUntil, 5_300);
    const restored = new Breaker({ failureThreshold: 2, recoveryTimeout: 300, clock, state: json });
    assert.equal(restored.state, "open");
    assert.equal(restored.failureCount, 2);
    assert.equal(restored.openUntil, 5_300);
    assert.deepEqual(restored.toJSON(), breaker.toJSON());
    clock.now = 5_300;
    await restored.execute(succeed(1));
    assert.equal(restored.state, "closed");
  });

  it("Breaker.snapshot stays the same object across successes while closed", async () => {
    const breaker = new Breaker();
    const before = breaker.snapshot;
    await breaker.execute(succeed(1));
    breaker.executeSync(() => 1);
    assert.equal(breaker.snapshot, before);
  });

  it("Breaker rejects a corrupt or unknown snapshot as state", () => {
    const good = new Breaker().toJSON();
    const cases: [unknown, RegExp][] = [
      ["closed", /"state" must be a snapshot object from toJSON\(\), received "closed"/],
      [{ ...good, version: 2 }, /"state.version" must be 1/],
      [
        { ...good, state: "opened" },
        /"state.state" must be one of closed, open, half-open, recovering, received "opened"/,
      ],
      [
        { ...good, failureCount: -1 },
        /"state.failureCount" must be an integer >= 0 and <= 281474976710656, received -1/,
      ],
      [
        { ...good, state: "open" },
        /"state.openUntil" must be a finite number while open, received null/,
      ],
      [{ ...good, openUntil: 5 }, /"state.openUntil" must be null while closed, received 5/],
      [{ ...good, window: { kind: "calls", outcomes: "01x" } }, /"state.window.outcomes"/],
    ];
    for (const [state, message] of cases) {
      assert.throws(() => new Breaker({ name: "db", state: state as never }), {
        name: "TypeError",
        message,
      });
    }
  });
});

describe("Breaker subclasses", () => {
  it("Breaker subclasses set static defaults under the constructor's options", () => {
    class DbBreaker extends Breaker {
      static override defaults = { failureThreshold: 2, name: "db" };
    }
    const breaker = new DbBreaker({ recoveryTimeout: 10 });
    assert.equal(breaker.name, "db");
    breaker.executeSync(() => 1);
    assert.throws(() =>
      breaker.executeSync(() => {
        throw new Error("a");
      })
    );
    assert.throws(() =>
      breaker.executeSync(() => {
        throw new Error("b");
      })
    );
    assert.equal(breaker.state, "open");
    assert.equal(new DbBreaker({ name: "other" }).name, "other");
  });
});

describe("Breaker clock", () => {
  it("Breaker rejects with a clear error when the clock returns NaN, and keeps its state", async () => {
    let now = 0;
    const breaker = new Breaker({ failureThreshold: 1, clock: () => now });
    await trip(breaker, 1);
    now = NaN;
    await assert.rejects(breaker.execute(succeed(1)), {
      name: "TypeError",
      message: 'Circuit "breaker": "clock" must return epoch milliseconds, returned NaN',
    });
    now = 0;
    assert.equal(breaker.state, "open");
  });
});

describe("Breaker fast path", () => {
  it("Breaker notices a listener added after quiet successes", async () => {
    const breaker = new Breaker();
    await breaker.execute(succeed(1));
    breaker.executeSync(() => 1);
    const recorded = recordEvents(["beforeCall", "success"]);
    breaker.addListener(recorded.listener);
    await breaker.execute(succeed(1));
    breaker.executeSync(() => 1);
    assert.deepEqual(recorded.lines(), ["beforeCall", "success", "beforeCall", "success"]);
  });

  for (
    const [rule, options] of [
      ["the consecutive rule", {}],
      ["a count window", { failureRate: 0.5, window: { calls: 10 } }],
      ["a time window", { failureRate: 0.5, window: { duration: 60_000, buckets: 10 } }],
    ] as const
  ) {
    for (const deferring of [false, true]) {
      it(`Breaker reports to a listener only the calls that began after it was added, under ${rule}${deferring ? ", after successes" : ""}`, async () => {
        const clock = manualClock();
        const breaker = new Breaker({ ...options, clock });
        // Successes already counted put a windowed breaker's next calls on its deferring lane.
        if (deferring) {
          for (let i = 0; i < 3; i++) await breaker.execute(() => Promise.resolve(0));
        }
        const early = [deferred<number>(), deferred<number>()] as const;
        const calls = [
          breaker.execute(() => early[0].promise),
          breaker.execute(() => early[1].promise).catch((error) => error),
        ];
        clock.advance(250);
        const recorded = recordEvents(["beforeCall", "success", "failure"]);
        breaker.addListener(recorded.listener);
        const late = deferred<number>();
        const lateCall = breaker.execute(() => late.promise);
        clock.advance(40);
        early[0].resolve(1);
        early[1].reject(new Error("down"));
        late.resolve(2);
        await Promise.all([...calls, lateCall]);
        assert.deepEqual(
          recorded.events.map((event) => ({ ...event, breaker: undefined })),
          [
            { hook: "beforeCall", breaker: undefined },
            { hook: "success", breaker: undefined, durationMs: 40 },
          ],
        );
      });
    }
  }

  it("Breaker applies a timeout configured after quiet successes", async () => {
    const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 0 });
    try {
      const breaker = new Breaker();
      await breaker.execute(succeed(1));
      breaker.configure({ timeout: 10 });
      const call = breaker.execute(() => new Promise(() => {})).catch((e) => e);
      await timers.tickAsync(10);
      assert.ok((await call) instanceof TimeoutError);
      assert.equal(breaker.failureCount, 1);
    } finally {
      timers.uninstall();
    }
  });

  it("Breaker counts failures between quiet successes and rejects once isolated", async () => {
    const breaker = new Breaker({ failureThreshold: 2 });
    await breaker.execute(succeed(1));
    await breaker.execute(fail()).catch(() => {});
    assert.equal(breaker.failureCount, 1);
    await breaker.execute(succeed(1));
    assert.equal(breaker.failureCount, 0);
    breaker.executeSync(() => 1);
    assert.throws(() =>
      breaker.executeSync(() => {
        throw new Error("x");
      })
    );
    assert.equal(breaker.failureCount, 1);
    breaker.executeSync(() => 1);
    await trip(breaker, 2);
    assert.equal(breaker.state, "open");
    breaker.close();
    await breaker.execute(succeed(1));
    using _hold = breaker.isolate();
    await assert.rejects(breaker.execute(succeed(1)), BreakerOpenError);
    assert.throws(() => breaker.executeSync(() => 1), BreakerOpenError);
  });

  it("Breaker applies isFailureResult configured after quiet successes", async () => {
    const breaker = new Breaker({ failureThreshold: 1 });
    await breaker.execute(succeed("fine"));
    breaker.configure({ isFailureResult: (result) => result === "bad" });
    assert.equal(await breaker.execute(succeed("bad")), "bad");
    assert.equal(breaker.state, "open");
  });
});

describe("Breaker regressions found by the model-based and hostile-input tests", () => {
  it("Breaker opens for the full recovery period when a success trips the failure rate of a count window", async () => {
    const clock = manualClock(1_000_000);
    const breaker = new Breaker({
      failureRate: 0.5,
      minimumCalls: 2,
      window: { calls: 4 },
      recoveryTimeout: 1_000,
      clock,
    });
    await breaker.execute(fail()).catch(() => {});
    await breaker.execute(succeed(1)); // 1 failure in 2 calls: this success trips the rule
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 1_001_000);
    breaker.close();
    assert.throws(() =>
      breaker.executeSync(() => {
        throw new Error("down");
      })
    );
    breaker.executeSync(() => 1);
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 1_001_000);
  });

  it("Breaker.close() on a closed breaker resets the window's counts too", async () => {
    const breaker = new Breaker({ failureRate: 0.5, minimumCalls: 2, window: { calls: 4 } });
    await breaker.execute(fail()).catch(() => {});
    assert.equal(breaker.stats.failures, 1);
    breaker.close();
    assert.deepEqual(breaker.stats, {
      calls: 0,
      failures: 0,
      slowCalls: 0,
      failureRate: 0,
      slowCallRate: 0,
    });
    await breaker.execute(succeed(1)); // with the old failure kept, 1 in 2 would trip
    assert.equal(breaker.state, "closed");
  });

  it("Breaker does not count a call whose start it did not time as slow when it succeeds", async () => {
    const clock = manualClock(1_000_000);
    const breaker = new Breaker({ failureRate: 1, window: { calls: 4 }, clock });
    const running = [deferred(), deferred()];
    const calls = running.map((call) => breaker.execute(() => call.promise).catch(() => {}));
    clock.advance(5_000);
    // Durations are measured from now on; the calls already running have no start time.
    breaker.configure({ slowCallDuration: 0 });
    running[0]!.resolve("late");
    running[1]!.reject(new Error("late"));
    await Promise.all(calls);
    assert.equal(breaker.stats.calls, 2);
    assert.equal(breaker.stats.slowCalls, 0);
  });

  it("Breaker keeps the full open period when the clock fails just as a failure trips it", async () => {
    let now = 1_000_000;
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 60_000, clock: () => now });
    assert.equal(breaker.state, "closed"); // the clock read well at 1_000_000
    {
      using reported = captureConsole("error");
      now = NaN;
      const error = new Error("down");
      await assert.rejects(breaker.execute(fail(error)), (thrown) => thrown === error);
      assert.match(
        String(reported.calls[0]?.[0]),
        /"clock" must return epoch milliseconds, returned NaN/,
      );
    }
    now = 1_000_001;
    assert.equal(breaker.state, "open");
    assert.equal(breaker.openUntil, 1_060_000); // from the last time the clock read well
  });

  it("Breaker rejects a restored count too large to go on counting (generation, rampCalls)", () => {
    const good = new Breaker().toJSON();
    // 2 ** 53 - 1 + 1 + 1 === 2 ** 53 + 0: the next transitions would share one generation,
    // and a late outcome would count; a ramp counter that stops counting admits nothing.
    for (const field of ["generation", "failureCount", "openings", "trialSuccesses", "rampCalls"]) {
      assert.throws(
        () => new Breaker({ state: { ...good, [field]: Number.MAX_SAFE_INTEGER } }),
        {
          name: "TypeError",
          message: new RegExp(
            `^Cannot create breaker "breaker": "state.${field}" must be an integer`,
          ),
        },
      );
    }
    const restored = new Breaker({ state: { ...good, generation: 2 ** 48 } });
    restored.open();
    restored.halfOpen();
    assert.equal(restored.snapshot.generation, 2 ** 48 + 2);
  });

  it("Breaker.isolate()'s hold can be released again after its release failed on a broken clock", () => {
    let now = 1_000;
    const breaker = new Breaker({ clock: () => now });
    const hold = breaker.isolate();
    now = NaN;
    assert.throws(() => hold[Symbol.dispose](), /"clock" must return epoch milliseconds/);
    assert.equal(breaker.snapshot.isolated, 1);
    now = 2_000;
    hold[Symbol.dispose]();
    assert.equal(breaker.state, "closed");
  });

  it("Breaker rejects a time window with holes in its buckets, naming the bucket", () => {
    const options = { failureRate: 0.5, window: { duration: 1_000, buckets: 4 } };
    const good = new Breaker(options).toJSON();
    const withHole = (buckets: unknown[]) => ({
      ...good,
      window: { kind: "time", bucketMs: 250, buckets },
    });
    const missingBucket: unknown[] = [[3_999, 1, 0, 0], [4_000, 1, 0, 0]];
    delete missingBucket[0];
    const missingCount: unknown[] = [4_000, 1, 0, 0];
    delete missingCount[1]; // counted as NaN calls when accepted
    for (const state of [withHole(missingBucket), withHole([missingCount])]) {
      assert.throws(() => new Breaker({ ...options, state: state as never }), {
        name: "TypeError",
        message:
          /^Cannot create breaker "breaker": "state.window.buckets\[0\]" must be \[index, calls, failures, slowCalls\] of integers >= 0, received /,
      });
    }
  });

  it("Breaker opens from its construction time when the clock fails at the first failure that trips it", () => {
    let now: number = 1_000_000;
    const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 60_000, clock: () => now });
    now = NaN; // never read while closed: this failure is the first reading, and it fails
    failWithClockReportSilenced(breaker);
    now = 1_000_001;
    assert.equal(breaker.openUntil, 1_060_000);
    assert.equal(breaker.state, "open");
  });

  it("Breaker opens from its construction time when a stand-in for Date.now fails at the first failure that trips it", () => {
    let wall = 1_000_000;
    const realNow = Date.now;
    Date.now = () => wall; // a test double, captured by the breaker as its default clock
    let breaker: Breaker;
    try {
      breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 60_000 });
    } finally {
      Date.now = realNow;
    }
    wall = NaN;
    failWithClockReportSilenced(breaker);
    wall = 1_000_001;
    assert.equal(breaker.openUntil, 1_060_000);
  });

  it("Breaker.configure() with a clock that fails at the first failure that trips it opens from the time of the change", () => {
    let wall = 2_000_000;
    const realNow = Date.now;
    Date.now = () => wall; // the default clock, captured by the breaker
    let breaker: Breaker;
    try {
      breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 60_000 });
    } finally {
      Date.now = realNow;
    }
    let now = NaN;
    wall = 3_000_000; // the default clock at the change
    breaker.configure({ clock: () => now });
    failWithClockReportSilenced(breaker);
    now = 3_000_001;
    assert.equal(breaker.openUntil, 3_060_000);
    assert.equal(breaker.state, "open");
  });

  it("Breaker accepts a clock that does not work yet at construction", () => {
    let now: unknown = undefined;
    const breaker = new Breaker({
      clock: () => {
        if (now === undefined) throw new Error("not yet");
        return now as number;
      },
    });
    now = 5;
    breaker.open();
    assert.equal(breaker.openUntil, 30_005);
  });
});

/** One failing sync call whose broken clock is reported on console.error, kept quiet here. */
function failWithClockReportSilenced(breaker: Breaker): void {
  using _silenced = captureConsole("error");
  assert.throws(() =>
    breaker.executeSync(() => {
      throw new Error("down");
    }), /down/);
}
