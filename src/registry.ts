/**
 * A registry of breakers by name, for operators: list them, summarize them, find one, and
 * listen to all of them at once. Named breakers join {@linkcode defaultRegistry} by themselves.
 *
 * @module
 */

import { Breaker, type BreakerOptions } from "./breaker.ts";
import type { BreakerState } from "./core/snapshot.ts";
import { describeValue } from "./core/describe_value.ts";
import type { BreakerListener } from "./events.ts";

/**
 * The breakers of a registry by state, from {@linkcode BreakerRegistry.summary}.
 *
 * @example
 * ```ts
 * import { defaultRegistry, type RegistrySummary } from "@circuit/breaker";
 * const summary: RegistrySummary = defaultRegistry.summary();
 * if (!summary.allClosed) console.warn("open circuits:", summary.open);
 * ```
 */
export interface RegistrySummary {
  /** How many breakers the registry lists. */
  readonly total: number;
  /** Whether every breaker is `"closed"` (a `"recovering"` one still turns some calls away). */
  readonly allClosed: boolean;
  /** Names of the closed breakers. */
  readonly closed: readonly string[];
  /** Names of the open breakers (their recovery period has not elapsed). */
  readonly open: readonly string[];
  /** Names of the half-open breakers (also open ones whose period has elapsed). */
  readonly halfOpen: readonly string[];
  /** Names of the breakers ramping traffic back up after closing. */
  readonly recovering: readonly string[];
  /** Names of the isolated breakers (held open by `isolate()`). */
  readonly isolated: readonly string[];
}

/** Options of {@linkcode BreakerRegistry.breaker}: every breaker option but `name` and `registry`. */
export type RegistryBreakerOptions = Omit<BreakerOptions, "name" | "registry">;

/**
 * Lists `breaker` held strongly, for a holder that keeps it anyway and removes it with
 * `delete()` when done with it (a `BreakerGroup`): no `WeakRef` to pay for (on V8 one keeps its
 * target alive until the task ends, so a million keys cycled in one task would all stay).
 * Internal to the package.
 */
export let holdInRegistry: (registry: BreakerRegistry, breaker: Breaker) => void;

/** The fewest entries a sweep of collected breakers waits for. */
const MIN_SWEEP = 64;

/**
 * Breakers by name. A name lists one breaker: when a breaker joins under a name another live
 * breaker holds, the newcomer takes the name and the other is no longer listed (it keeps
 * working). That is the common case of a breaker created again for the same dependency (a
 * reload, a test, a breaker made per request), where the newest is the one in use; to get one
 * breaker per name, create them through {@linkcode BreakerRegistry.breaker}.
 *
 * A breaker that joined by itself (the `registry` option, or {@linkcode BreakerRegistry.add})
 * is held weakly: once nothing else references it, it is collected and leaves the registry.
 * A breaker the registry created with `breaker()` is kept until {@linkcode BreakerRegistry.delete}.
 *
 * @example
 * ```ts
 * import { BreakerRegistry } from "@circuit/breaker";
 *
 * const registry = new BreakerRegistry();
 * const db = registry.breaker("db", { failureThreshold: 3 });
 * registry.breaker("db") === db; // true: get-or-create
 * registry.summary().allClosed; // true
 * ```
 */
export class BreakerRegistry implements Iterable<Breaker> {
  /**
   * Listed breakers by name: a `WeakRef` for those that joined by themselves (entries of
   * collected ones are swept out as names are added), the breaker itself for those held (see
   * `holdInRegistry`).
   */
  #entries = new Map<string, WeakRef<Breaker> | Breaker>();
  /** The size at which the next addition sweeps out collected entries. */
  #sweepAt = MIN_SWEEP;
  #listeners: readonly BreakerListener[] = [];

  static {
    holdInRegistry = (registry, breaker) => registry.#list(breaker, true);
  }

  /**
   * The breaker listed under `name`, created with `options` when there is none. The options
   * apply only on creation (change a listed breaker with `configure()`); the registry keeps the
   * breakers it creates alive until `delete()`.
   *
   * @example
   * ```ts
   * import { BreakerRegistry } from "@circuit/breaker";
   * const registry = new BreakerRegistry();
   * const payments = registry.breaker("payments", { failureThreshold: 3 });
   * await payments.execute(async () => "charged");
   * ```
   */
  breaker(name: string, options: RegistryBreakerOptions = {}): Breaker {
    if (typeof name !== "string" || name === "") {
      throw new TypeError(
        `Cannot get breaker: "name" must be a non-empty string, received ${describeValue(name)}`,
      );
    }
    const listed = this.get(name);
    if (listed !== undefined) return listed;
    if (options === null || typeof options !== "object") {
      throw new TypeError(
        `Cannot create breaker: options must be an object, received ${describeValue(options)}`,
      );
    }
    for (const fixed of ["name", "registry"] as const) {
      if (fixed in options) {
        throw new TypeError(
          `Cannot create breaker: "${fixed}" is not an option of registry.breaker(), received ${
            describeValue((options as Record<string, unknown>)[fixed])
          }`,
        );
      }
    }
    const breaker = new Breaker({ ...options, name, registry: false });
    this.#list(breaker, true);
    return breaker;
  }

  /**
   * Lists `breaker` under its name (held weakly), replacing any other breaker listed under it.
   * The registry's listeners are added to it. Breakers given a `name` join the
   * {@linkcode defaultRegistry} this way unless their `registry` option says otherwise.
   *
   * @example
   * ```ts
   * import { Breaker, BreakerRegistry } from "@circuit/breaker";
   * const registry = new BreakerRegistry();
   * const cache = new Breaker({ name: "cache", registry: false });
   * registry.add(cache);
   * registry.get("cache") === cache; // true
   * ```
   */
  add(breaker: Breaker): void {
    if (!(breaker instanceof Breaker)) {
      throw new TypeError(
        `Cannot add to registry: "breaker" must be a Breaker, received ${describeValue(breaker)}`,
      );
    }
    this.#list(breaker, false);
  }

  /**
   * Removes `breaker` (or the breaker listed under a name) from the registry, and the
   * registry's listeners from it. Returns whether it was listed.
   *
   * @example
   * ```ts
   * import { BreakerRegistry } from "@circuit/breaker";
   * const registry = new BreakerRegistry();
   * registry.breaker("db");
   * registry.delete("db"); // true
   * registry.get("db"); // undefined
   * ```
   */
  delete(breakerOrName: Breaker | string): boolean {
    const name = typeof breakerOrName === "string" ? breakerOrName : breakerOrName.name;
    const listed = this.get(name);
    if (listed === undefined) return false;
    if (typeof breakerOrName !== "string" && listed !== breakerOrName) return false;
    this.#unlist(name, listed);
    return true;
  }

  /**
   * The live breaker listed under `name`, or `undefined`.
   *
   * @example
   * ```ts
   * import { Breaker, defaultRegistry } from "@circuit/breaker";
   * const search = new Breaker({ name: "search" });
   * defaultRegistry.get("search") === search; // true
   * ```
   */
  get(name: string): Breaker | undefined {
    const entry = this.#entries.get(name);
    return entry instanceof WeakRef ? entry.deref() : entry;
  }

  /**
   * How many live breakers the registry lists.
   *
   * @example
   * ```ts
   * import { BreakerRegistry } from "@circuit/breaker";
   * new BreakerRegistry().size; // 0
   * ```
   */
  get size(): number {
    let count = 0;
    for (const _ of this) count++;
    return count;
  }

  /**
   * The live breakers, in the order they were listed.
   *
   * @example
   * ```ts
   * import { defaultRegistry } from "@circuit/breaker";
   * for (const breaker of defaultRegistry) console.log(breaker.name, breaker.state);
   * ```
   */
  *[Symbol.iterator](): IterableIterator<Breaker> {
    for (const entry of this.#entries.values()) {
      const breaker = entry instanceof WeakRef ? entry.deref() : entry;
      if (breaker !== undefined) yield breaker;
    }
  }

  /**
   * The breakers' names by state, read now.
   *
   * @example
   * ```ts
   * import { BreakerRegistry } from "@circuit/breaker";
   * const registry = new BreakerRegistry();
   * registry.breaker("db").open();
   * registry.summary(); // { total: 1, allClosed: false, open: ["db"], ... }
   * ```
   */
  summary(): RegistrySummary {
    const names: Record<BreakerState, string[]> = {
      closed: [],
      open: [],
      "half-open": [],
      recovering: [],
      isolated: [],
    };
    for (const breaker of this) names[breaker.state].push(breaker.name);
    const total = names.closed.length + names.open.length + names["half-open"].length +
      names.recovering.length + names.isolated.length;
    return {
      total,
      allClosed: names.closed.length === total,
      closed: names.closed,
      open: names.open,
      halfOpen: names["half-open"],
      recovering: names.recovering,
      isolated: names.isolated,
    };
  }

  /**
   * Adds a listener to every breaker the registry lists, now and later; dispose the returned
   * value to remove it from all of them.
   *
   * @example Logging every state change
   * ```ts
   * import { defaultRegistry } from "@circuit/breaker";
   * using _subscription = defaultRegistry.addListener({
   *   stateChange: ({ breaker, from, to }) => console.log(`${breaker.name}: ${from} -> ${to}`),
   * });
   * ```
   */
  addListener(listener: BreakerListener): Disposable {
    if (listener === null || typeof listener !== "object") {
      throw new TypeError(
        `Cannot add listener: "listener" must be an object, received ${describeValue(listener)}`,
      );
    }
    this.#listeners = [...this.#listeners, listener];
    for (const breaker of this) breaker.addListener(listener);
    let added = true;
    return {
      [Symbol.dispose]: () => {
        if (!added) return;
        added = false;
        const index = this.#listeners.indexOf(listener);
        if (index !== -1) this.#listeners = this.#listeners.filter((_, i) => i !== index);
        for (const breaker of this) breaker.removeListener(listener);
      },
    };
  }

  /**
   * Lists `breaker` (unless it is listed already), displacing any other of its name: held
   * (`strong`) or through a `WeakRef`.
   */
  #list(breaker: Breaker, strong: boolean): void {
    const name = breaker.name;
    // One lookup and one deref (each deref keeps its target alive for the current job).
    const entry = this.#entries.get(name);
    if (entry !== undefined) {
      const listed = entry instanceof WeakRef ? entry.deref() : entry;
      if (listed === breaker) return;
      if (listed !== undefined) this.#unlist(name, listed);
      // Deleting first moves the name to the end: the listing order is the order of joining.
      else this.#entries.delete(name);
    }
    this.#entries.set(name, strong ? breaker : new WeakRef(breaker));
    for (const listener of this.#listeners) breaker.addListener(listener);
    if (this.#entries.size >= this.#sweepAt) this.#sweep();
  }

  #unlist(name: string, breaker: Breaker): void {
    this.#entries.delete(name);
    for (const listener of this.#listeners) breaker.removeListener(listener);
  }

  /**
   * Drops the entries of collected breakers. Run when the map has doubled since the last sweep,
   * so its cost per added breaker is constant, and without a FinalizationRegistry, whose cell
   * would cost more memory per breaker than the entry itself.
   */
  #sweep(): void {
    for (const [name, entry] of this.#entries) {
      if (entry instanceof WeakRef && entry.deref() === undefined) this.#entries.delete(name);
    }
    this.#sweepAt = Math.max(MIN_SWEEP, 2 * this.#entries.size);
  }
}

/**
 * The registry that breakers given a `name` (and those `circuit()` names after their function)
 * join, unless their `registry` option names another one or is `false`. It holds them weakly.
 *
 * @example
 * ```ts
 * import { circuit, defaultRegistry } from "@circuit/breaker";
 * const loadUser = circuit(async function loadUser(id: string) {
 *   return { id };
 * });
 * defaultRegistry.get("loadUser")?.state; // "closed"
 * ```
 */
export const defaultRegistry: BreakerRegistry = new BreakerRegistry();
