/**
 * A breaker's options: their types, the lists of their names (derived from the types, so that
 * an option cannot be added to one and forgotten in another), and how they are copied and
 * checked into what a breaker keeps. The policy's options are checked by the core
 * (`createPolicy`); the shell's (`fallback`, `clock`, `store`...) here.
 *
 * @module
 */

import {
  createPolicySharingRules,
  type Policy,
  POLICY_OPTIONS,
  type WindowRules,
} from "./core/policy.ts";
import type { PolicyOptions } from "./core/options.ts";
import type { SnapshotJSON } from "./core/serialize.ts";
import { duration, fail, optionalFunction } from "./core/validate.ts";
import type { BreakerListener } from "./events.ts";
import type { AnyFunction } from "./guarded_function.ts";
import { checkListeners } from "./listeners.ts";
import type { BreakerRegistry } from "./registry.ts";
import type { StateStore } from "./store.ts";

/**
 * A breaker's options: the policy (see the core's `PolicyOptions`) plus what the shell needs.
 * All are optional and validated at construction.
 *
 * @example
 * ```ts
 * import type { BreakerOptions } from "@circuit/breaker";
 * const options: BreakerOptions = { name: "db", failureThreshold: 5, recoveryTimeout: 60_000 };
 * ```
 */
export interface BreakerOptions extends PolicyOptions {
  /**
   * Called instead of rejecting while the circuit turns calls away, with the wrapper's
   * arguments and `this` (none for `execute()`); its result is the call's result.
   */
  readonly fallback?: (...args: never[]) => unknown;
  /**
   * Concurrent calls to a wrapper (`wrap()`, `circuit()`) with the same key share one call:
   * the function runs once, one outcome is counted, and every caller gets the same result or
   * error; nothing is kept once it settles. `true` keys calls by `JSON.stringify` of their
   * arguments; a function `(...args) => string` (called with the wrapper's `this`) chooses the
   * key. Not for `execute()`, whose functions are all different. Cannot be changed by
   * `configure()`.
   */
  readonly coalesce?: boolean | ((...args: never[]) => string);
  /** Listeners from the start; more can be added with `addListener()`. */
  readonly listeners?: readonly BreakerListener[];
  /**
   * The time, in epoch ms. Every duration is read from it; inject one in tests.
   * @default {Date.now}
   */
  readonly clock?: () => number;
  /** A snapshot from `toJSON()` to start from (no event fires for it). */
  readonly state?: SnapshotJSON;
  /**
   * Shares the circuit with every breaker of the same `name` on this store, in any process:
   * see `denoKvStore` (`@circuit/breaker/deno-kv`), `redisStore` (`@circuit/breaker/redis`)
   * and `memoryStore`. Dispose the breaker (`await breaker[Symbol.asyncDispose]()`) to flush
   * its counts and close its subscription.
   */
  readonly store?: StateStore;
  /**
   * With a `store`: the longest time, in ms, this breaker's counts wait before they are
   * merged into the shared circuit. Transitions are written at once.
   * @default {1000}
   */
  readonly syncInterval?: number;
  /**
   * The registry that lists this breaker (see {@linkcode BreakerRegistry}), or `false` for
   * none. A breaker is listed weakly: the registry never keeps it alive.
   * @default {defaultRegistry when the breaker has a `name`, else none}
   */
  readonly registry?: BreakerRegistry | false;
}

/**
 * Options of one `execute()` call.
 *
 * @example
 * ```ts
 * import type { ExecuteOptions } from "@circuit/breaker";
 * const options: ExecuteOptions = { signal: AbortSignal.timeout(1_000) };
 * ```
 */
export interface ExecuteOptions {
  /**
   * The caller's signal. The signal given to the function follows it; when it aborts the
   * call rejects at once with its reason and counts neither way.
   */
  readonly signal?: AbortSignal | undefined;
}

/**
 * Options `configure()` cannot change: exactly those `ConfigurableOptions` leaves out, or this
 * fails to compile.
 */
export const FIXED_OPTIONS = Object.keys(
  {
    name: true,
    coalesce: true,
    state: true,
    listeners: true,
    store: true,
    syncInterval: true,
    registry: true,
  } satisfies Record<Exclude<keyof BreakerOptions, keyof ConfigurableOptions>, true>,
);

/**
 * The options `configure()` can change: all but `name`, `coalesce`, `state`, `listeners`,
 * `store`, `syncInterval` and `registry`.
 *
 * @example
 * ```ts
 * import type { ConfigurableOptions } from "@circuit/breaker";
 * const tighter: ConfigurableOptions = { failureThreshold: 2 };
 * ```
 */
export type ConfigurableOptions = Omit<
  BreakerOptions,
  "name" | "coalesce" | "state" | "listeners" | "store" | "syncInterval" | "registry"
>;
/** The shell's options: an option missing here fails to compile, so none is refused. */
const SHELL_OPTIONS = Object.keys(
  {
    fallback: true,
    coalesce: true,
    listeners: true,
    clock: true,
    state: true,
    store: true,
    syncInterval: true,
    registry: true,
  } satisfies Record<Exclude<keyof BreakerOptions, keyof PolicyOptions>, true>,
);
/** Every option a `Breaker` accepts. */
export const BREAKER_OPTIONS: readonly string[] = [...POLICY_OPTIONS, ...SHELL_OPTIONS];

/**
 * Rejects options given beside an existing `breaker`: they would be silently lost, since that
 * breaker already has its own.
 */
export function checkBreakerAlone(options: object, context: string): void {
  const others = Object.keys(options).filter((key) => key !== "breaker");
  if (others.length === 0) return;
  throw new TypeError(
    `${context}: "breaker" is an existing Breaker, so ${
      others.map((key) => JSON.stringify(key)).join(", ")
    } cannot be given; configure that breaker instead`,
  );
}

/**
 * `options` over `base`, copied so that the caller can no longer change them: nested arrays
 * and the `window` and `recoveryRamp` objects are copied too.
 */
export function copyOptions<T extends BreakerOptions>(base: BreakerOptions, options: T): T {
  // Without defaults, a spread of the options alone: it sizes the copy to them, where `base`'s
  // empty object would leave it room for more fields (24 B per breaker on Deno).
  const copy = (
    Object.keys(base).length === 0 ? { ...options } : { ...base, ...options }
  ) as Record<string, unknown>;
  for (const key of Object.keys(copy)) {
    const value = copy[key];
    if (Array.isArray(value)) copy[key] = [...value];
    else if (key === "window" && value !== null && typeof value === "object") {
      copy[key] = windowCopy(value);
    } else if (key === "recoveryRamp" && value !== null && typeof value === "object") {
      copy[key] = { ...value };
    }
  }
  return copy as T;
}

/** The `window` option of the breaker made last, copied and frozen: shared when equal. */
let recentWindow: Readonly<Record<string, unknown>> | undefined;

/** A frozen copy of a `window` option; breakers given equal ones share it. */
function windowCopy(window: object): Readonly<Record<string, unknown>> {
  const copy: Record<string, unknown> = { ...window };
  const recent = recentWindow;
  if (recent !== undefined) {
    const keys = Object.keys(copy);
    if (
      keys.length === Object.keys(recent).length &&
      keys.every((key) => Object.is(copy[key], recent[key]))
    ) {
      return recent;
    }
  }
  return recentWindow = Object.freeze(copy);
}

/**
 * The window rules of the breaker made last: the next one shares them when its options give
 * equal ones, so that breakers made per key with the same options hold one copy.
 */
let recentRules: WindowRules | undefined;

/**
 * Validates a breaker's options (all of them, listeners too) into what the breaker keeps.
 * Throws the first problem found, naming the option.
 */
export function parseOptions(
  options: BreakerOptions,
  context: string,
): {
  policy: Policy;
  listeners: readonly BreakerListener[];
  clock: () => number;
  fallback: AnyFunction | undefined;
  coalesce: ((this: unknown, ...args: unknown[]) => string) | undefined;
  store: StateStore | undefined;
  syncInterval: number;
} {
  const policy = createPolicySharingRules(options, context, undefined, recentRules);
  if (policy.rules !== undefined) recentRules = policy.rules;
  return {
    policy,
    listeners: checkListeners(options.listeners, context),
    clock: checkClock(options.clock, context),
    fallback: optionalFunction<AnyFunction>(context, "fallback", options.fallback),
    coalesce: checkCoalesce(options.coalesce, context),
    store: checkStore(options.store, context),
    syncInterval: checkSyncInterval(options.syncInterval, context),
  };
}

function checkStore(store: unknown, context: string): StateStore | undefined {
  if (store === undefined) return undefined;
  const candidate = store as Partial<StateStore> | null;
  if (
    candidate !== null && typeof candidate === "object" &&
    typeof candidate.read === "function" && typeof candidate.compareAndSet === "function"
  ) {
    return store as StateStore;
  }
  return fail(
    context,
    "store",
    "a StateStore (an object with read() and compareAndSet())",
    store,
    true,
  );
}

function checkSyncInterval(syncInterval: unknown, context: string): number {
  return syncInterval === undefined ? 1_000 : duration(context, "syncInterval", syncInterval);
}

/** `Date.now` as the module found it: whatever replaces it later may break. */
export const SYSTEM_CLOCK = Date.now;

function checkClock(clock: unknown, context: string): () => number {
  return optionalFunction<() => number>(context, "clock", clock) ?? Date.now;
}

/** Keys a call by its arguments (the `coalesce: true` option). */
function argumentsKey(this: unknown, ...args: unknown[]): string {
  return JSON.stringify(args);
}

function checkCoalesce(
  coalesce: unknown,
  context: string,
): ((this: unknown, ...args: unknown[]) => string) | undefined {
  if (coalesce === undefined || coalesce === false) return undefined;
  if (coalesce === true) return argumentsKey;
  if (typeof coalesce === "function") return coalesce as (...args: unknown[]) => string;
  return fail(context, "coalesce", "a boolean or a function returning a key", coalesce, true);
}
