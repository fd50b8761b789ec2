/**
 * Captures what the code under test writes with `console.error` or `console.warn`, so a test
 * can assert on it and the test output stays clean. Held with `using`, the original method is
 * put back when the scope ends, also when the test throws.
 *
 * @module
 */

/** The console methods the library reports through. */
export type ConsoleMethod = "error" | "warn";

/** The calls a console method received while captured; disposing it restores the method. */
export interface ConsoleCapture extends Disposable {
  /** The arguments of each call, in order. */
  readonly calls: unknown[][];
}

/**
 * Replaces `console[method]` with one that records its arguments, until disposed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { captureConsole } from "./console_capture.ts";
 *
 * {
 *   using reported = captureConsole("error");
 *   console.error("boom", 42);
 *   assert.deepEqual(reported.calls, [["boom", 42]]);
 * }
 * ```
 */
export function captureConsole(method: ConsoleMethod = "error"): ConsoleCapture {
  const calls: unknown[][] = [];
  const original = console[method];
  console[method] = (...args: unknown[]) => {
    calls.push(args);
  };
  return {
    calls,
    [Symbol.dispose]() {
      console[method] = original;
    },
  };
}
