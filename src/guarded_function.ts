/**
 * The mark on a guarded function: which breaker guards it and what it wraps. `wrap()`,
 * `circuit()` and the generator guards mark what they return, so that guarding it again
 * with the same breaker runs its own guard alone and no outcome is counted twice.
 *
 * @module
 */

import type { Breaker } from "./breaker.ts";
import { fail } from "./core/validate.ts";

// deno-lint-ignore no-explicit-any
export type AnyFunction = (this: any, ...args: any[]) => any;

/** What a guarded function is marked with: the breaker and the function it guards. */
export interface Guard {
  readonly breaker: Breaker;
  readonly fn: AnyFunction;
  readonly sync: boolean;
}

/**
 * The mark of a guarded function, a property rather than a `WeakMap` entry: every `execute()`
 * looks for it, and a property the function lacks is one inline-cached load, where a `WeakMap`
 * lookup is a hash probe.
 */
export const GUARD: unique symbol = Symbol("circuit.guard");

/** A function that may carry the mark. */
export type Marked = { [GUARD]?: Guard };

/** Marks `wrapper` as guarding `fn` with `breaker`, named like `fn`. */
export function markGuarded<W extends AnyFunction>(
  wrapper: W,
  fn: AnyFunction,
  breaker: Breaker,
  sync: boolean,
): W {
  // Only where they differ: each definition costs V8 a slow path.
  if (wrapper.name !== fn.name) {
    Object.defineProperty(wrapper, "name", { value: fn.name, configurable: true });
  }
  if (wrapper.length !== fn.length) {
    Object.defineProperty(wrapper, "length", { value: fn.length, configurable: true });
  }
  (wrapper as Marked)[GUARD] = { breaker, fn, sync };
  return wrapper;
}

/** A function's name as a string key (a `static name()` method makes it something else). */
export function functionName(fn: AnyFunction): string {
  const name: unknown = fn.name;
  return typeof name === "string" ? name : "";
}

/** The breaker a function is guarded by, if any. */
export function guardOf(fn: unknown): Guard | undefined {
  return typeof fn === "function" ? (fn as Marked)[GUARD] : undefined;
}

/**
 * The function to guard, or the error naming what was given instead.
 *
 * @throws {TypeError} When `fn` is not a function.
 */
export function checkFunction(fn: unknown, method: string): AnyFunction {
  return typeof fn === "function"
    ? fn as AnyFunction
    : fail(`Cannot ${method}`, "fn", "a function", fn, true);
}
