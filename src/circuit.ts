/**
 * `circuit()`: guard a function, or decorate a method, with a breaker of its own (or a shared
 * one), in one call.
 *
 * @module
 */

import { Breaker } from "./breaker.ts";
import {
  BREAKER_OPTIONS,
  type BreakerOptions,
  checkBreakerAlone,
  parseOptions,
} from "./breaker_options.ts";
import { guardOf } from "./guarded_function.ts";
import { describeValue } from "./core/describe_value.ts";
import { checkOptionNames, optionsObject } from "./core/validate.ts";
import { guardAsyncGeneratorFunction, guardGeneratorFunction } from "./stream.ts";

/**
 * Any function: what `circuit()` accepts, with its `this`, parameters and result kept.
 *
 * @example
 * ```ts
 * import type { AnyFunction } from "@circuit/breaker";
 * const fn: AnyFunction = (id: string) => id;
 * ```
 */
// deno-lint-ignore no-explicit-any
export type AnyFunction = (this: any, ...args: any[]) => any;

/**
 * A `Breaker` subclass (or `Breaker` itself) that `circuit()` instantiates.
 *
 * @example
 * ```ts
 * import { Breaker, type BreakerClass } from "@circuit/breaker";
 * class Strict extends Breaker {}
 * const kind: BreakerClass = Strict;
 * ```
 */
export type BreakerClass = (new (options?: BreakerOptions) => Breaker) & {
  readonly defaults?: BreakerOptions;
};

/**
 * Options of `circuit()`: a breaker's options, typed for the guarded function, and the
 * breaker to use.
 *
 * @example
 * ```ts
 * import { circuit, type CircuitOptions } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const options: CircuitOptions<(id: string) => Promise<string>> = {
 *   failureThreshold: 1,
 *   fallback: (id) => `cached ${id}`, // while the circuit turns calls away
 * };
 * const load = circuit((id: string) => Promise.reject<string>(new Error(`${id}: down`)), options);
 * await assert.rejects(load("42"), /42: down/); // the error itself, unchanged
 * assert.equal(await load("42"), "cached 42");
 * ```
 */
export interface CircuitOptions<F extends AnyFunction = AnyFunction>
  extends Omit<BreakerOptions, "fallback" | "isFailureResult" | "isFailureItem"> {
  /**
   * An existing breaker to share (then no other option may be given), or a `Breaker`
   * subclass to instantiate.
   * @default {Breaker}
   */
  readonly breaker?: Breaker | BreakerClass;
  /**
   * Called with the call's arguments and `this` instead of rejecting while calls are turned
   * away; for a generator function it returns an iterable whose items are passed through.
   */
  readonly fallback?: (
    this: ThisParameterType<F>,
    ...args: Parameters<F>
  ) => FallbackResult<ReturnType<F>>;
  /** Marks a returned value as a failure; the value is still returned. */
  readonly isFailureResult?: (result: Awaited<ReturnType<F>>) => boolean;
  /** For a generator function: marks an item reporting an in-band error (the stream fails). */
  readonly isFailureItem?: (item: ItemOf<ReturnType<F>>) => boolean;
}

/**
 * What a fallback returns for a function returning `R`: the same value (or a promise of it),
 * or, for a generator function, an iterable of the same items.
 *
 * @example
 * ```ts
 * import type { FallbackResult } from "@circuit/breaker";
 * type Cached = FallbackResult<Promise<string>>; // string | PromiseLike<string>
 * ```
 */
export type FallbackResult<R> = R extends AsyncIterator<infer Y> ? AsyncIterable<Y> | Iterable<Y>
  : R extends Iterator<infer Y> ? Iterable<Y>
  : Awaited<R> | PromiseLike<Awaited<R>>;

/**
 * The item type of a stream a generator function returns (`never` for other functions).
 *
 * @example
 * ```ts
 * import type { ItemOf } from "@circuit/breaker";
 * type Token = ItemOf<AsyncGenerator<string>>; // string
 * ```
 */
export type ItemOf<R> = R extends AsyncIterator<infer Y> ? Y : R extends Iterator<infer Y> ? Y
: never;

/**
 * The async function `circuit(fn)` returns: `fn`'s `this` and parameters, its awaited result.
 *
 * @example
 * ```ts
 * import type { GuardedFunction } from "@circuit/breaker";
 * type Load = GuardedFunction<(id: string) => Promise<number>>; // (id: string) => Promise<number>
 * ```
 */
export type GuardedFunction<F extends AnyFunction> = (
  this: ThisParameterType<F>,
  ...args: Parameters<F>
) => Promise<Awaited<ReturnType<F>>>;

/**
 * A TC39 method decorator guarding an async method with one breaker shared by every instance.
 *
 * @example
 * ```ts
 * import { circuit, type MethodDecorator } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const guard: MethodDecorator = circuit({ failureThreshold: 3 });
 * class Api {
 *   @guard
 *   async load(id: string) {
 *     return { id };
 *   }
 * }
 * assert.deepEqual(await new Api().load("1"), { id: "1" });
 * ```
 */
export type MethodDecorator = <This, Args extends unknown[], R extends PromiseLike<unknown>>(
  method: (this: This, ...args: Args) => R,
  context: ClassMethodDecoratorContext<This, (this: This, ...args: Args) => R>,
) => (this: This, ...args: Args) => R;

/**
 * A TC39 method decorator guarding a synchronous method.
 *
 * @example
 * ```ts
 * import { circuit, type SyncMethodDecorator } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const guard: SyncMethodDecorator = circuit.sync({ failureThreshold: 3 });
 * class Config {
 *   @guard
 *   parse(text: string) {
 *     return JSON.parse(text);
 *   }
 * }
 * assert.deepEqual(new Config().parse('{"a":1}'), { a: 1 });
 * ```
 */
export type SyncMethodDecorator = <This, Args extends unknown[], R>(
  method: (this: This, ...args: Args) => R,
  context: ClassMethodDecoratorContext<This, (this: This, ...args: Args) => R>,
) => (this: This, ...args: Args) => R;

/**
 * The type of {@linkcode circuit}.
 *
 * @example
 * ```ts
 * import { breakerOf, circuit, type Circuit } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const strict: Circuit = circuit.with({ failureThreshold: 2 });
 * const load = strict(async function load() {
 *   throw new Error("down");
 * });
 * await assert.rejects(load());
 * await assert.rejects(load());
 * assert.equal(breakerOf(load)?.state, "open");
 * ```
 */
export interface Circuit {
  /**
   * Guards an async generator function: each call returns a guarded stream of the generator's
   * own type (its yield, return and `next()` types: `next(value)` and `throw(error)` reach it).
   */
  <This, Args extends unknown[], G extends AsyncGenerator<unknown, unknown, unknown>>(
    fn: (this: This, ...args: Args) => G,
    options?: CircuitOptions<(this: This, ...args: Args) => G>,
  ): (this: This, ...args: Args) => G;
  /** Guards a generator function: each call returns a guarded sync stream of its type. */
  <This, Args extends unknown[], G extends Generator<unknown, unknown, unknown>>(
    fn: (this: This, ...args: Args) => G,
    options?: CircuitOptions<(this: This, ...args: Args) => G>,
  ): (this: This, ...args: Args) => G;
  /** Guards `fn` (async, or returning a promise or a value) with a breaker of its own. */
  <F extends AnyFunction>(fn: F, options?: CircuitOptions<F>): GuardedFunction<F>;
  /** A method decorator: one breaker per decorated method, shared by all instances. */
  (options?: CircuitOptions): MethodDecorator;
  /** Guards a synchronous function without any promise (see `Breaker.executeSync`). */
  sync: {
    <F extends AnyFunction>(fn: F, options?: CircuitOptions<F>): F;
    (options?: CircuitOptions): SyncMethodDecorator;
  };
  /** A `circuit()` whose defaults are these options (under each call's own options). */
  with(defaults: CircuitOptions): Circuit;
}

const CIRCUIT_OPTIONS: readonly string[] = /* @__PURE__ */ BREAKER_OPTIONS.concat("breaker");

/**
 * Guards a function with a circuit breaker, keeping its `this`, parameters and result type;
 * or, called with options only, decorates a class method (TC39 decorators).
 *
 * Defaults: 5 consecutive failures open the circuit for 30 s; the breaker is named after the
 * function, or `Class.method` for a decorated method (made when the class is first used: its
 * first instance or the method's first call). An anonymous function's breaker is named
 * `"breaker"` and joins no registry: give it a `name` for it to be listed.
 *
 * @throws {TypeError} When an option has the wrong type, or is unknown, or when decorating anything
 * but a method.
 * @throws {RangeError} When an option is out of range; the message names it and the value received.
 *
 * @example Guarding a function
 * ```ts
 * import { circuit } from "@circuit/breaker";
 *
 * import assert from "node:assert/strict";
 *
 * const getUser = circuit(async (id: string) => ({ id }), { failureThreshold: 10 });
 * assert.deepEqual(await getUser("42"), { id: "42" });
 * ```
 *
 * @example Decorating a method
 * ```ts
 * import { circuit } from "@circuit/breaker";
 *
 * import assert from "node:assert/strict";
 *
 * class Api {
 *   @circuit({ failureThreshold: 3 })
 *   async load(id: string) {
 *     return { id };
 *   }
 * }
 * assert.deepEqual(await new Api().load("1"), { id: "1" });
 * ```
 */
export const circuit: Circuit = /* @__PURE__ */ createCircuit({});

function createCircuit(defaults: CircuitOptions): Circuit {
  const guard = (sync: boolean) => (target?: unknown, options?: unknown): unknown => {
    if (typeof target === "function") {
      return guardFunction(target as AnyFunction, merge(defaults, options), sync);
    }
    const merged = merge(defaults, target);
    if (!(merged.breaker instanceof Breaker)) {
      // Decorator options are complete: report a bad one here, not at the class definition.
      const { breaker: _, ...breakerOptions } = merged;
      parseOptions(breakerOptions as BreakerOptions, "Cannot create breaker");
    }
    return (method: AnyFunction, context: ClassMethodDecoratorContext) =>
      decorate(method, context, merged, sync);
  };
  const result = guard(false) as Circuit;
  result.sync = guard(true) as Circuit["sync"];
  result.with = (more) => createCircuit(merge(defaults, more));
  return result;
}

function merge(defaults: CircuitOptions, options: unknown): CircuitOptions {
  if (options === undefined) return defaults;
  const context = "Cannot create breaker";
  const given = optionsObject(context, options) as CircuitOptions;
  checkOptionNames(given, CIRCUIT_OPTIONS, context);
  if (given.breaker instanceof Breaker) {
    checkBreakerAlone(given, context);
    return given;
  }
  return { ...defaults, ...given };
}

function guardFunction(fn: AnyFunction, options: CircuitOptions, sync: boolean): AnyFunction {
  const known = guardOf(fn);
  const breaker = breakerFor(options, (known?.fn ?? fn).name);
  if (known?.breaker === breaker) return fn;
  switch (Object.prototype.toString.call(fn)) {
    case "[object AsyncGeneratorFunction]":
      return guardAsyncGeneratorFunction(breaker, fn);
    case "[object GeneratorFunction]":
      return guardGeneratorFunction(breaker, fn);
    default:
      return sync ? breaker.wrapSync(fn) : breaker.wrap(fn);
  }
}

function decorate(
  method: AnyFunction,
  context: ClassMethodDecoratorContext,
  options: CircuitOptions,
  sync: boolean,
): AnyFunction {
  if (context === null || typeof context !== "object" || context.kind !== "method") {
    const kind = (context as { kind?: unknown } | null)?.kind;
    throw new TypeError(
      `circuit() decorates methods only, received ${
        typeof kind === "string" ? `a ${kind}` : describeValue(method)
      }`,
    );
  }
  const methodName = typeof context.name === "symbol"
    ? `[${context.name.description ?? ""}]`
    : context.name;
  const named = options.breaker instanceof Breaker || options.name !== undefined ||
    (typeof options.breaker === "function" && options.breaker.defaults?.name !== undefined);
  if (named) return guardFunction(method, options, sync);
  // The class is not known while its methods are decorated: the breaker, named
  // `Class.method`, is made when the class is first used (an instance constructed, a static
  // method's class defined, or the method called), then installed in place of this stand-in.
  let guarded: AnyFunction | undefined;
  const guard = (owner: object | undefined): AnyFunction => {
    if (guarded !== undefined) return guarded;
    const className = classNameOf(owner, context.static);
    const name = className === "" ? methodName : `${className}.${methodName}`;
    guarded = guardFunction(method, { ...options, name }, sync);
    if (owner !== undefined && !context.private) {
      const descriptor = Object.getOwnPropertyDescriptor(owner, context.name);
      if (descriptor?.value === standIn) {
        Object.defineProperty(owner, context.name, { ...descriptor, value: guarded });
      }
    }
    return guarded;
  };
  const standIn = {
    [methodName]: function (this: unknown, ...args: unknown[]): unknown {
      return (guarded ?? guard(ownerOf(this, standIn, context))).apply(this, args);
    },
  }[methodName] as AnyFunction;
  context.addInitializer(function (this: unknown) {
    if (guarded === undefined) guard(ownerOf(this, standIn, context));
  });
  return standIn;
}

/**
 * The object a decorated method is defined on, found from `self` (an instance, or the class
 * for a static method): the first in its prototype chain holding `standIn` under the method's
 * name (a subclass's instance finds its parent class's prototype).
 */
function ownerOf(
  self: unknown,
  standIn: AnyFunction,
  context: ClassMethodDecoratorContext,
): object | undefined {
  if (self === null || (typeof self !== "object" && typeof self !== "function")) return undefined;
  // A private method is on no prototype: its class is the instance's (or the class itself).
  if (context.private) return context.static ? self : Object.getPrototypeOf(self) ?? undefined;
  for (let owner: object | null = self; owner !== null; owner = Object.getPrototypeOf(owner)) {
    if (Object.getOwnPropertyDescriptor(owner, context.name)?.value === standIn) return owner;
  }
  return undefined;
}

/** The name of the class owning a method: `owner` is its prototype, or the class (static). */
function classNameOf(owner: object | undefined, isStatic: boolean): string {
  if (owner === undefined) return "";
  const constructor: unknown = isStatic
    ? owner
    : Object.getOwnPropertyDescriptor(owner, "constructor")?.value;
  if (typeof constructor !== "function") return "";
  const name: unknown = constructor.name;
  return typeof name === "string" ? name : "";
}

function breakerFor(options: CircuitOptions, functionName: string): Breaker {
  const { breaker: given, ...rest } = options;
  if (given instanceof Breaker) return given;
  const BreakerClass: BreakerClass = given ?? Breaker;
  if (
    typeof BreakerClass !== "function" ||
    !(BreakerClass === Breaker || BreakerClass.prototype instanceof Breaker)
  ) {
    throw new TypeError(
      `Cannot create breaker: "breaker" must be a Breaker or a Breaker subclass, received ${
        describeValue(given)
      }`,
    );
  }
  const named = rest.name !== undefined || BreakerClass.defaults?.name !== undefined ||
    functionName === "";
  return new BreakerClass(
    (named ? rest : { ...rest, name: functionName }) as BreakerOptions,
  );
}

/**
 * The breaker guarding a function returned by `circuit()`, `wrap()` or a decorated method, or
 * `undefined` for a function nobody guards.
 *
 * @example Reading a decorated method's breaker
 * ```ts
 * import { breakerOf, circuit } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const load = circuit(async () => "ok");
 * assert.equal(breakerOf(load)?.state, "closed");
 * ```
 */
export function breakerOf(fn: unknown): Breaker | undefined {
  return guardOf(fn)?.breaker;
}
