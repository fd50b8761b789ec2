/**
 * Every way a call can end, with real timers and signals, in `Deno.test`s: Deno's op and
 * resource sanitizers fail a test that leaves a timer, an op or a resource behind (`node:test`
 * under Deno runs without them). leak_test.ts runs this file in a child `deno test`:
 *
 *   ./node_modules/.bin/deno test --allow-all tests/breaker_sanitizer_probe.ts
 *
 * With PROBE_LEAK=1 one more test leaves a timer behind on purpose, to show the sanitizers
 * are on. Not named *_test.ts: it runs only when asked.
 */

import assert from "node:assert/strict";
import process from "node:process";
import { Breaker, BreakerOpenError, TimeoutError } from "../mod.ts";
import { captureConsole } from "./console_capture.ts";

class IgnoredError extends Error {}

function breaker(): Breaker {
  return new Breaker({
    failureThreshold: 100,
    timeout: 20,
    ignore: IgnoredError,
    registry: false,
  });
}

Deno.test("a call that succeeds, with a timeout and the caller's signal", async () => {
  const guarded = breaker();
  const controller = new AbortController();
  assert.equal(await guarded.execute(() => Promise.resolve(1), { signal: controller.signal }), 1);
});

Deno.test("a call that rejects, throws at once, or throws an ignored error", async () => {
  const guarded = breaker();
  await assert.rejects(guarded.execute(() => Promise.reject(new Error("down"))), /down/);
  await assert.rejects(
    guarded.execute(() => {
      throw new Error("at once");
    }),
    /at once/,
  );
  await assert.rejects(guarded.execute(() => Promise.reject(new IgnoredError())), IgnoredError);
});

Deno.test("a call that times out, and its late result", async () => {
  const guarded = breaker();
  let settle!: (value: string) => void;
  const call = guarded.execute(() => new Promise<string>((resolve) => settle = resolve));
  await assert.rejects(call, TimeoutError);
  settle("late");
});

Deno.test("a caller that aborts during the call, and before it", async () => {
  const guarded = breaker();
  const controller = new AbortController();
  const call = guarded.execute(() => new Promise(() => {}), { signal: controller.signal });
  controller.abort(new Error("gone"));
  await assert.rejects(call, /gone/);
  await assert.rejects(
    guarded.execute(() => Promise.resolve(1), { signal: AbortSignal.abort(new Error("before")) }),
    /before/,
  );
});

Deno.test("a call turned away, with a fallback that throws, and listeners that throw", async () => {
  using reported = captureConsole("error");
  const guarded = new Breaker({
    timeout: 20,
    registry: false,
    fallback: () => {
      throw new Error("no fallback");
    },
    listeners: [{
      rejected: () => {
        throw new Error("listener");
      },
      beforeCall: () => Promise.reject(new Error("async listener")),
    }],
  });
  assert.equal(await guarded.execute(() => Promise.resolve(1)), 1);
  guarded.open();
  await assert.rejects(guarded.execute(() => Promise.resolve(1)), /no fallback/);
  assert.throws(() => guarded.executeSync(() => 1), /no fallback/);
  await new Promise((resolve) => setTimeout(resolve, 0)); // the async listener's report
  assert.equal(reported.calls.length, 3);
});

Deno.test("wrapped, synchronous, isolated and half-open calls", async () => {
  const guarded = breaker();
  assert.equal(await guarded.wrap((n: number) => Promise.resolve(n))(2), 2);
  assert.equal(guarded.executeSync(() => 3), 3);
  {
    using _hold = guarded.isolate();
    await assert.rejects(guarded.execute(() => Promise.resolve(1)), BreakerOpenError);
  }
  guarded.halfOpen();
  assert.equal(await guarded.execute(() => Promise.resolve(4)), 4);
});

if (process.env.PROBE_LEAK === "1") {
  Deno.test("a timer left behind on purpose", () => {
    setTimeout(() => {}, 10_000);
  });
}
