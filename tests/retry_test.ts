import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import {
  Breaker,
  BreakerOpenError,
  circuit,
  circuitFetch,
  retry,
  type RetryEvent,
  TimeoutError,
} from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";

type Timers = ReturnType<typeof FakeTimers.install>;

async function withFakeTime(body: (timers: Timers) => Promise<void>): Promise<void> {
  const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout", "Date"], now: 0 });
  try {
    await body(timers);
  } finally {
    timers.uninstall();
  }
}

const NO_JITTER = { initialDelay: 100, maxDelay: 1_000, jitter: "none" } as const;

describe("retry()", () => {
  it("retry() retries a failing call with exponential backoff and returns the first success", async () => {
    await withFakeTime(async (timers) => {
      const at: number[] = [];
      const result = retry(() => {
        at.push(Date.now());
        return at.length < 3 ? Promise.reject(new Error("flaky")) : Promise.resolve("ok");
      }, { attempts: 5, backoff: NO_JITTER });
      await timers.runAllAsync();
      assert.equal(await result, "ok");
      assert.deepEqual(at, [0, 100, 300]);
    });
  });

  it("retry() throws the last attempt's own error after the last attempt", async () => {
    await withFakeTime(async (timers) => {
      const errors = [new Error("1"), new Error("2"), new Error("3")];
      let i = 0;
      const result = retry(() => Promise.reject(errors[i++]), { backoff: NO_JITTER }).catch((e) =>
        e
      );
      await timers.runAllAsync();
      assert.equal(await result, errors[2]);
      assert.equal(i, 3, "3 attempts by default");
    });
  });

  it("retry() does not retry errors noRetry names, nor those retryOn leaves out", async () => {
    class BadRequest extends Error {}
    let calls = 0;
    const bad = new BadRequest();
    await assert.rejects(
      retry(() => {
        calls++;
        return Promise.reject(bad);
      }, { noRetry: BadRequest }),
      (error) => error === bad,
    );
    await assert.rejects(
      retry(() => {
        calls++;
        return Promise.reject(new TypeError("x"));
      }, { retryOn: [RangeError] }),
      TypeError,
    );
    assert.equal(calls, 2);
  });

  it("retry() waits a BreakerOpenError's retryAfterMs, then the trial goes through", async () => {
    await withFakeTime(async (timers) => {
      const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 5_000 });
      let healthy = false;
      const at: number[] = [];
      const result = retry(() => {
        at.push(Date.now());
        return breaker.execute(() =>
          healthy ? Promise.resolve("ok") : Promise.reject(new Error("down"))
        );
      }, {
        attempts: 5,
        backoff: NO_JITTER,
        onRetry: ({ attempt }) => attempt === 1 && (healthy = true),
      });
      await timers.runAllAsync();
      assert.equal(await result, "ok");
      assert.deepEqual(
        at,
        [0, 100, 5_000],
        "the second attempt was turned away; the third waited its retryAfterMs",
      );
    });
  });

  it("retry() stops at once when a BreakerOpenError's wait does not fit the budget", async () => {
    await withFakeTime(async () => {
      const breaker = new Breaker({ failureThreshold: 1, recoveryTimeout: 60_000 });
      breaker.open();
      const events: RetryEvent[] = [];
      await assert.rejects(
        retry(() => breaker.execute(() => Promise.resolve("never")), {
          budget: 10_000,
          onRetry: (event) => events.push(event),
        }),
        BreakerOpenError,
      );
      assert.equal(events.length, 0);
    });
  });

  it("retry() stops at once on an isolated circuit", async () => {
    const breaker = new Breaker();
    using _hold = breaker.isolate();
    let calls = 0;
    await assert.rejects(
      retry(() => (calls++, breaker.execute(() => Promise.resolve(1))), { attempts: 5 }),
      BreakerOpenError,
    );
    assert.equal(calls, 1);
  });

  it("retry() retries a 503 Response after its Retry-After and returns the last one as it is", async () => {
    await withFakeTime(async (timers) => {
      const at: number[] = [];
      const responses = [
        new Response("busy", { status: 503, headers: { "retry-after": "3" } }),
        new Response("busy", { status: 503 }),
      ];
      const result = retry(() => {
        at.push(Date.now());
        return Promise.resolve(responses[at.length - 1]!);
      }, { attempts: 2, backoff: NO_JITTER });
      await timers.runAllAsync();
      assert.equal(await result, responses[1]);
      assert.deepEqual(at, [0, 3_000]);
      assert.equal(
        responses[0]!.bodyUsed || responses[0]!.body?.locked,
        true,
        "the retried body was released",
      );
    });
  });

  it("retry() gives each attempt a signal that aborts on attemptTimeout", async () => {
    await withFakeTime(async (timers) => {
      const aborted: unknown[] = [];
      const result = retry((signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            aborted.push(signal.reason);
            reject(signal.reason);
          });
        }), { attempts: 2, attemptTimeout: 1_000, backoff: NO_JITTER }).catch((e) => e);
      await timers.runAllAsync();
      const error = await result;
      assert.ok(error instanceof TimeoutError);
      assert.equal(aborted.length, 2);
    });
  });

  it("retry() rejects with the caller's abort reason during a wait, and stops", async () => {
    await withFakeTime(async (timers) => {
      const caller = new AbortController();
      let calls = 0;
      const result = retry(() => (calls++, Promise.reject(new Error("down"))), {
        signal: caller.signal,
        backoff: NO_JITTER,
      }).catch((e) => e);
      await timers.tickAsync(50);
      const reason = new Error("gone");
      caller.abort(reason);
      assert.equal(await result, reason);
      await timers.runAllAsync();
      assert.equal(calls, 1);
    });
  });

  it("retry() composes with circuit() wrappers and circuitFetch", async () => {
    await withFakeTime(async (timers) => {
      let loads = 0;
      const load = circuit(() =>
        ++loads < 2 ? Promise.reject(new Error("x")) : Promise.resolve(loads)
      );
      const loaded = retry(() => load(), { backoff: NO_JITTER });
      let fetches = 0;
      const guardedFetch = circuitFetch({
        registry: false,
        fetch: () => Promise.resolve(new Response(null, { status: ++fetches < 3 ? 502 : 200 })),
      });
      const fetched = retry(() => guardedFetch("http://127.0.0.1:9/x"), {
        attempts: 4,
        backoff: NO_JITTER,
      });
      await timers.runAllAsync();
      assert.equal(await loaded, 2);
      assert.equal((await fetched).status, 200);
    });
  });

  it("retry() rejects bad options naming them", async () => {
    await assert.rejects(retry(() => 1, { attempts: 0 }), {
      name: "RangeError",
      message: `Cannot retry: "attempts" must be an integer >= 1, received 0`,
    });
    await assert.rejects(retry(() => 1, { noRetry: "TypeError" as never }), {
      name: "TypeError",
      message:
        `Cannot retry: "noRetry" must be an error class, a predicate or an array of them, received "TypeError"`,
    });
    await assert.rejects(retry("fn" as never), { name: "TypeError" });
  });
});
