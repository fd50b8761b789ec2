/**
 * Timer leak detection for the suite. Deno's `node:test` layer runs every test with its op
 * sanitizer off, whatever deno.json says, and ignores errors thrown by `afterEach` hooks. So
 * this module tracks the timers a test starts, and its `it`/`test` (use them instead of
 * `node:test`'s) fail a test that leaves one behind, on Deno and Bun alike.
 */

import * as nodeTest from "node:test";

type TimerFunction = (
  callback: (...args: unknown[]) => void,
  ms?: number,
  ...args: unknown[]
) => unknown;
type ClearFunction = (handle: unknown) => void;

const pending = new Map<unknown, string>();
const global = globalThis as unknown as Record<string, unknown>;
const realSetTimeout = global.setTimeout as TimerFunction;
const realClearTimeout = global.clearTimeout as ClearFunction;
const realSetInterval = global.setInterval as TimerFunction;
const realClearInterval = global.clearInterval as ClearFunction;

/**
 * Tracks a timer, unless Node.js's own code started it: its `fetch` (undici) keeps timers for
 * pooled connections, which on Deno and Bun live outside JavaScript, out of the tracker's view.
 * The frame under the tracking wrapper says who called `setTimeout`.
 */
function track(handle: unknown, stack: string): void {
  const caller = stack.split("\n")[2] ?? "";
  if (!caller.includes("(node:internal/")) pending.set(handle, stack);
}

if (!(global.setTimeout as { tracked?: boolean }).tracked) {
  const trackedSetTimeout: TimerFunction = (callback, ms, ...args) => {
    const handle = realSetTimeout(() => {
      pending.delete(handle);
      callback(...args);
    }, ms);
    track(handle, new Error("timer started here").stack ?? "");
    return handle;
  };
  const trackedSetInterval: TimerFunction = (callback, ms, ...args) => {
    const handle = realSetInterval(callback, ms, ...args);
    track(handle, new Error("interval started here").stack ?? "");
    return handle;
  };
  Object.assign(trackedSetTimeout, { tracked: true });
  global.setTimeout = trackedSetTimeout;
  global.setInterval = trackedSetInterval;
  global.clearTimeout = (handle: unknown) => {
    pending.delete(handle);
    realClearTimeout(handle);
  };
  global.clearInterval = (handle: unknown) => {
    pending.delete(handle);
    realClearInterval(handle);
  };
}

/** Fails when a timer started since the last check is still pending; clears it either way. */
export function assertNoPendingTimers(): void {
  if (pending.size === 0) return;
  const stacks = [...pending.values()];
  for (const handle of pending.keys()) {
    realClearTimeout(handle);
    realClearInterval(handle);
  }
  pending.clear();
  throw new Error(`${stacks.length} timer(s) left pending:\n${stacks.join("\n---\n")}`);
}

/** How many tracked timers are pending now. */
export function pendingTimerCount(): number {
  return pending.size;
}

type TestBody = () => unknown;

function checked(body: TestBody): () => Promise<void> {
  return async () => {
    try {
      await body();
    } catch (error) {
      try {
        assertNoPendingTimers();
      } catch {
        // the test's own failure is the one to report
      }
      throw error;
    }
    assertNoPendingTimers();
  };
}

/** `node:test`'s `it`, failing the test when it leaves a timer pending. */
export function it(name: string, body: TestBody): void {
  nodeTest.it(name, checked(body));
}

/** `node:test`'s `test`, failing the test when it leaves a timer pending. */
export function test(name: string, body: TestBody): void {
  nodeTest.test(name, checked(body));
}

/** `node:test`'s `describe`. */
export const describe: typeof nodeTest.describe = nodeTest.describe;
