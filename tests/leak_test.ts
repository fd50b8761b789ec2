/**
 * Leaks: a million calls (synchronous, asynchronous, through every state and exit path) keep
 * the heap flat; removed listeners, dropped breakers and their guarded functions are collected;
 * Deno's sanitizers find no timer, op or resource left by any way a call ends.
 *
 * The heap is measured after full garbage collections (`gc()` on Deno with
 * --v8-flags=--expose-gc, as the suite runs; `Bun.gc(true)` on Bun). Its noise after a collection
 * is under 0.1 MB on both runtimes, while a leak of one small object per 10 calls grows it by
 * ~4 MB over the measured 900,000 calls: the 1 MB margin is generous and still fails on a leak.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import FakeTimers from "@sinonjs/fake-timers";
import { Breaker, type BreakerListener, breakerOf, circuit } from "../mod.ts";
import { collectUntil } from "./gc.ts";
import { manualClock } from "./manual_clock.ts";
import { describe, it } from "./timer_leaks.ts";

const globals = globalThis as unknown as {
  gc?: () => void;
  Bun?: { gc(force: boolean): void };
};

/** Heap in use after full collections (microtasks only: fake timers may be installed). */
async function heapAfterCollection(): Promise<number> {
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 10; i++) await Promise.resolve();
    if (typeof globals.gc === "function") globals.gc();
    else if (globals.Bun !== undefined) globals.Bun.gc(true);
    else throw new Error("no way to collect garbage: run Deno with --v8-flags=--expose-gc");
  }
  return process.memoryUsage().heapUsed;
}

const BATCH = 100_000;
const BATCHES = 10;
const MARGIN = 1024 * 1024;

/**
 * Runs `batch` BATCHES times (BATCH calls each); after the first (warm-up) the heap must stay
 * within MARGIN of what it was, at every measurement.
 */
async function assertFlatHeap(batch: (offset: number) => void | Promise<void>): Promise<void> {
  await batch(0);
  const baseline = await heapAfterCollection();
  const growth: number[] = [];
  for (let b = 1; b < BATCHES; b++) {
    await batch(b * BATCH);
    growth.push((await heapAfterCollection()) - baseline);
  }
  const shown = growth.map((bytes) => `${(bytes / 1024).toFixed(0)} KB`).join(", ");
  assert.ok(Math.max(...growth) < MARGIN, `heap growth after each 100,000 calls: ${shown}`);
}

/** Per call: a failure now and then, a burst of failures every 5,000 calls (the circuit opens). */
function fails(i: number): boolean {
  return i % 3 === 0 || i % 5_000 < 40;
}

describe("Breaker heap over a million calls", () => {
  it("Breaker keeps the heap flat over a million synchronous calls through every state", async () => {
    const clock = manualClock(0);
    let events = 0;
    const listener: BreakerListener = {
      stateChange: () => events++,
      success: () => events++,
      failure: () => events++,
      rejected: () => events++,
    };
    const breaker = new Breaker({
      failureRate: 0.5,
      minimumCalls: 10,
      window: { calls: 100 },
      slowCallRate: 1,
      slowCallDuration: 5,
      recoveryTimeout: 100,
      registry: false,
      clock,
      listeners: [listener],
    });
    const quiet = new Breaker({ registry: false });
    const down = new Error("down"); // one for every failure: its stack would dominate the run
    let opened = 0;
    await assertFlatHeap((offset) => {
      for (let i = offset; i < offset + BATCH; i++) {
        clock.advance(1);
        try {
          breaker.executeSync(() => {
            if (fails(i)) throw down;
            return i;
          });
        } catch {
          // the call's own error, or BreakerOpenError
        }
        quiet.executeSync(() => i); // the fast path
        if (breaker.state === "open") opened++;
      }
    });
    assert.ok(
      opened > 10_000 && events > 1_000_000,
      `${opened} calls turned away, ${events} events`,
    );
  });

  it("Breaker keeps the heap flat over a million asynchronous calls: values, rejections, timeouts, aborts, wrappers", async () => {
    const timers = FakeTimers.withGlobal(globalThis).install({
      toFake: ["setTimeout", "clearTimeout"],
      now: 0,
    });
    try {
      const breaker = new Breaker({
        failureThreshold: 20,
        failureRate: 0.5,
        minimumCalls: 20,
        window: { calls: 50 },
        recoveryTimeout: 50,
        timeout: 100,
        registry: false,
        clock: () => timers.now,
      });
      const quiet = new Breaker({ registry: false });
      const never = () => new Promise<never>(() => {});
      // One error object for every failure: creating one (its stack) would dominate the run.
      const down = new Error("down");
      const gone = new Error("gone");
      const wrapped = breaker.wrap((n: number) => Promise.resolve(n));
      const tally = { values: 0, errors: 0 };
      const count = (promise: Promise<unknown>) =>
        promise.then(() => tally.values++, () => tally.errors++);
      await assertFlatHeap(async (offset) => {
        for (let start = offset; start < offset + BATCH; start += 1_000) {
          const calls: Promise<unknown>[] = [];
          // Every tenth chunk fails throughout: the circuit opens, turns calls away, recovers.
          const failing = (start / 1_000) % 10 === 9;
          for (let i = start; i < start + 1_000; i++) {
            if (failing) {
              calls.push(count(breaker.execute(() => Promise.reject(down))));
              continue;
            }
            switch (i % 10) {
              case 0:
              case 1:
              case 2:
                calls.push(count(breaker.execute(() => Promise.resolve(i))));
                break;
              case 3:
                calls.push(count(breaker.execute(() => Promise.reject(down))));
                break;
              case 4: {
                const controller = new AbortController();
                calls.push(count(breaker.execute(never, { signal: controller.signal })));
                controller.abort(gone);
                break;
              }
              case 5: // one in a hundred times out below
                calls.push(
                  count(breaker.execute(i % 100 === 5 ? never : () => Promise.resolve(i))),
                );
                break;
              case 6:
                calls.push(count(wrapped(i)));
                break;
              default:
                calls.push(count(quiet.execute(() => Promise.resolve(i))));
            }
          }
          // The other outcomes first (else the timeouts would be ten failures in a row).
          for (let i = 0; i < 10; i++) await Promise.resolve();
          timers.tick(100); // the timeouts
          await Promise.all(calls);
          timers.tick(50); // an open period is over
        }
      });
      assert.equal(tally.values + tally.errors, BATCH * BATCHES);
      assert.ok(tally.values > 500_000 && tally.errors > 200_000, JSON.stringify(tally));
      assert.equal(timers.countTimers(), 0);
    } finally {
      timers.uninstall();
    }
  });
});

describe("Breaker collectability", () => {
  it("Breaker lets a removed listener be collected, by dispose() or removeListener(), and keeps one still added", async () => {
    const breaker = new Breaker({ failureThreshold: 1, registry: false });
    const hooks = () => ({
      stateChange() {},
      beforeCall() {},
      success() {},
      failure() {},
      rejected() {},
    });
    const [byDispose, byRemove, kept] = (() => {
      const disposed = hooks();
      const removed = hooks();
      const added = hooks();
      const subscription = breaker.addListener(disposed);
      breaker.addListener(removed);
      breaker.addListener(added);
      // Events reach all three: each has been handed event objects.
      breaker.executeSync(() => 1);
      assert.throws(() =>
        breaker.executeSync(() => {
          throw new Error("down");
        })
      );
      assert.throws(() => breaker.executeSync(() => 1));
      subscription[Symbol.dispose]();
      breaker.removeListener(removed);
      return [new WeakRef(disposed), new WeakRef(removed), new WeakRef(added)];
    })();
    assert.ok(
      await collectUntil(() => byDispose.deref() === undefined && byRemove.deref() === undefined),
      "a removed listener is still referenced",
    );
    // The control: the listener still added is kept (the check can tell).
    assert.notEqual(kept.deref(), undefined);
    breaker.close();
    assert.equal(breaker.executeSync(() => "still works"), "still works");
  });

  it("Breaker is collected once dropped, after calls of every kind, while the caller's signal lives on", async () => {
    const controller = new AbortController(); // outlives the breaker
    const reference = await (async () => {
      const breaker = new Breaker({
        name: `leak probe ${Math.random()}`, // named: listed (weakly) in the default registry
        failureThreshold: 3,
        timeout: 1_000,
        listeners: [{ stateChange() {} }],
      });
      const signal = controller.signal;
      await breaker.execute(() => Promise.resolve(1), { signal });
      await breaker.execute(() => Promise.reject(new Error("down")), { signal }).catch(() => {});
      breaker.executeSync(() => 1);
      await breaker.wrap(() => Promise.resolve(2))();
      {
        using _hold = breaker.isolate();
      }
      breaker.addListener({ success() {} })[Symbol.dispose]();
      return new WeakRef(breaker);
    })();
    assert.ok(await collectUntil(() => reference.deref() === undefined), "the breaker was kept");
  });

  it("Breaker is collected once dropped with calls that never settle (no timeout, no signal)", async () => {
    const reference = (() => {
      const breaker = new Breaker({ registry: false });
      breaker.execute(() => new Promise(() => {})).catch(() => {});
      breaker.halfOpen();
      breaker.execute(() => new Promise(() => {})).catch(() => {}); // a trial that never ends
      return new WeakRef(breaker);
    })();
    assert.ok(await collectUntil(() => reference.deref() === undefined), "the breaker was kept");
  });

  it("circuit() lets a guarded function and its breaker be collected once dropped", async () => {
    const references = await (async () => {
      const guarded = circuit((n: number) => Promise.resolve(n * 2), { timeout: 1_000 });
      assert.equal(await guarded(2), 4);
      return [new WeakRef(guarded), new WeakRef(breakerOf(guarded) as Breaker)];
    })();
    assert.ok(
      await collectUntil(() => references.every((reference) => reference.deref() === undefined)),
    );
  });

  it("Breaker keeps a live breaker referenced (the control: collection is observed, not assumed)", async () => {
    const breaker = new Breaker({ registry: false });
    const reference = new WeakRef(breaker);
    assert.equal(await collectUntil(() => reference.deref() === undefined, 3), false);
    assert.equal(breaker.executeSync(() => 1), 1);
  });
});

/** Deno from this runtime, or from npm under Bun. */
const DENO = typeof Deno === "undefined"
  ? fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url))
  : Deno.execPath();
const PROBE = fileURLToPath(new URL("./breaker_sanitizer_probe.ts", import.meta.url));

/** Runs the sanitizer probe in a child `deno test`; resolves with its exit code and output. */
function runSanitizerProbe(leak: boolean): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    // --no-check: CI type-checks the probe; here only its sanitizers matter.
    const child = spawn(DENO, ["test", "--allow-all", "--no-check", PROBE], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", PROBE_LEAK: leak ? "1" : "0" },
    });
    let output = "";
    child.stdout?.on("data", (chunk) => output += String(chunk));
    child.stderr?.on("data", (chunk) => output += String(chunk));
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
  });
}

describe("Breaker under Deno's sanitizers", () => {
  it("Breaker leaves no timer, op or resource behind on any way a call ends (deno test sanitizers)", async () => {
    const clean = await runSanitizerProbe(false);
    assert.equal(clean.code, 0, clean.output);
    assert.match(clean.output, /ok \| 6 passed \| 0 failed/);
    // The control: the same run with a timer left on purpose fails, so the sanitizers are on.
    const leaking = await runSanitizerProbe(true);
    assert.notEqual(leaking.code, 0, leaking.output);
    assert.match(leaking.output, /a timer left behind on purpose \.\.\. FAILED/);
    assert.match(leaking.output, /6 passed \| 1 failed/);
  });
});
