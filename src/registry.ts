/**
 * A registry of breakers by name, for operators: list them, summarize them, find one, and
 * listen to all of them at once. Named breakers join {@linkcode defaultRegistry} by themselves.
 *
 * @module
 */

import { Breaker } from "./breaker.ts";
import type { BreakerOptions } from "./breaker_options.ts";
import type { BreakerState } from "./core/snapshot.ts";
import { describeValue } from "./core/describe_value.ts";
import { fail, optionsObject } from "./core/validate.ts";
import { checkListeners } from "./listeners.ts";
import type { BreakerListener } from "./events.ts";

/**
 * The breakers of a registry by state, from {@linkcode BreakerRegistry.summary}.
 *
 * @example
 * ```ts
 * import { BreakerRegistry, type RegistrySummary } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const registry = new BreakerRegistry();
 * registry.breaker("db").open();
 * const summary: RegistrySummary = registry.summary();
 * assert.equal(summary.allClosed, false);
 * assert.deepEqual(summary.open, ["db"]);
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
  /**
   * Names that more than one live breaker holds: each is listed above in its own state (a
   * name collision, such as two classes' methods named alike with the same `name` option).
   */
  readonly duplicates: readonly string[];
  /**
   * The members of each {@linkcode BreakerGroup} (by group name) counted by state. Closed
   * members are counted here only, not named in `closed`, so that a group of many keys keeps
   * the summary small; members in any other state are named in their state's list too.
   */
  readonly groups: Readonly<Record<string, GroupSummary>>;
}

/**
 * How many members of a {@linkcode BreakerGroup} are in each state, in a
 * {@linkcode RegistrySummary}.
 *
 * @example
 * ```ts
 * import type { GroupSummary } from "@circuit/breaker";
 * const hosts: GroupSummary = { total: 3, closed: 2, open: 1, halfOpen: 0, recovering: 0, isolated: 0 };
 * ```
 */
export interface GroupSummary {
  /** Members listed. */
  readonly total: number;
  /** Closed members. */
  readonly closed: number;
  /** Open members. */
  readonly open: number;
  /** Half-open members. */
  readonly halfOpen: number;
  /** Recovering members. */
  readonly recovering: number;
  /** Isolated members. */
  readonly isolated: number;
}

/** Options of {@linkcode BreakerRegistry.breaker}: every breaker option but `name` and `registry`. */
export type RegistryBreakerOptions = Omit<BreakerOptions, "name" | "registry">;

/**
 * Lists `breaker` held strongly, for a holder that keeps it anyway and removes it with
 * `delete()` when done with it (a `BreakerGroup`): no `WeakRef` to pay for (on V8 one keeps its
 * target alive until the task ends, so a million keys cycled in one task would all stay).
 * Internal to the package.
 */
export let holdInRegistry: (registry: BreakerRegistry, breaker: Breaker, group: string) => void;

/**
 * The name of the `BreakerGroup` that listed `breaker` in `registry`, or `undefined`. Internal
 * to the package (the status handler aggregates groups with it).
 */
export let groupOf: (registry: BreakerRegistry, breaker: Breaker) => string | undefined;

type Entry = WeakRef<Breaker> | Breaker;

function deref(entry: Entry): Breaker | undefined {
  return entry instanceof WeakRef ? entry.deref() : entry;
}

/** The fewest entries a sweep of collected breakers waits for. */
const MIN_SWEEP = 64;

/**
 * Breakers by name. When a breaker joins under a name another live breaker holds, both stay
 * listed (an open breaker is never hidden by a closed one of the same name): `get(name)`
 * returns the newest, iteration and `summary()` show both, and `summary().duplicates` names
 * the collision. A breaker created again for the same dependency (a reload, a breaker made
 * per request) is listed until the older one is collected; to get one breaker per name,
 * create them through {@linkcode BreakerRegistry.breaker}.
 *
 * A breaker that joined by itself (the `registry` option, or {@linkcode BreakerRegistry.add})
 * is held weakly: once nothing else references it, it is collected and leaves the registry.
 * A breaker the registry created with `breaker()` is kept until {@linkcode BreakerRegistry.delete}.
 *
 * @example
 * ```ts
 * import { BreakerRegistry } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const registry = new BreakerRegistry();
 * const db = registry.breaker("db", { failureThreshold: 3 });
 * assert.equal(registry.breaker("db"), db); // get-or-create
 * assert.equal(registry.summary().allClosed, true);
 * ```
 */
export class BreakerRegistry implements Iterable<Breaker> {
  /**
   * Listed breakers by name: a `WeakRef` for those that joined by themselves (entries of
   * collected ones are swept out as names are added), the breaker itself for those held (see
   * `holdInRegistry`).
   */
  #entries = new Map<string, Entry>();
  /** Older live breakers of a listed name (a collision), oldest first. */
  #shadowed = new Map<string, Entry[]>();
  /** The breakers `#shadowed` lists, to find one in O(1). */
  #isShadowed = new WeakSet<Breaker>();
  /** The group of each breaker a `BreakerGroup` listed. */
  #groups = new WeakMap<Breaker, string>();
  /** The size at which the next addition sweeps out collected entries. */
  #sweepAt = MIN_SWEEP;
  #listeners: readonly BreakerListener[] = [];

  static {
    holdInRegistry = (registry, breaker, group) => {
      registry.#groups.set(breaker, group);
      registry.#list(breaker, true);
    };
    groupOf = (registry, breaker) => registry.#groups.get(breaker);
  }

  /**
   * The breaker listed under `name`, created with `options` when there is none. The options
   * apply only on creation (change a listed breaker with `configure()`); the registry keeps the
   * breakers it creates alive until `delete()`.
   *
   * @throws {TypeError} When `name` is not a non-empty string, or a breaker option has the wrong
   * type or is unknown.
   * @throws {RangeError} When a breaker option is out of range.
   *
   * @example
   * ```ts
   * import { BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const registry = new BreakerRegistry();
   * const payments = registry.breaker("payments", { failureThreshold: 3 });
   * assert.equal(await payments.execute(async () => "charged"), "charged");
   * assert.equal(registry.breaker("payments"), payments); // listed: the same breaker
   * ```
   */
  breaker(name: string, options: RegistryBreakerOptions = {}): Breaker {
    if (typeof name !== "string" || name === "") {
      fail("Cannot get breaker", "name", "a non-empty string", name, true);
    }
    const listed = this.get(name);
    if (listed !== undefined) return listed;
    optionsObject("Cannot create breaker", options);
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
   * @throws {TypeError} When `breaker` is not a `Breaker`.
   *
   * @example
   * ```ts
   * import { Breaker, BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const registry = new BreakerRegistry();
   * const cache = new Breaker({ name: "cache", registry: false });
   * registry.add(cache);
   * assert.equal(registry.get("cache"), cache);
   * ```
   */
  add(breaker: Breaker): void {
    if (!(breaker instanceof Breaker)) {
      fail("Cannot add to registry", "breaker", "a Breaker", breaker, true);
    }
    this.#list(breaker, false);
  }

  /**
   * Removes `breaker` (or every breaker listed under a name) from the registry, and the
   * registry's listeners from it. Returns whether it was listed.
   *
   * @example
   * ```ts
   * import { BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const registry = new BreakerRegistry();
   * registry.breaker("db");
   * assert.equal(registry.delete("db"), true);
   * assert.equal(registry.get("db"), undefined);
   * ```
   */
  delete(breakerOrName: Breaker | string): boolean {
    if (typeof breakerOrName === "string") {
      const listed = [...this.#named(breakerOrName)];
      for (const breaker of listed) this.#unlist(breakerOrName, breaker);
      return listed.length !== 0;
    }
    const name = breakerOrName.name;
    for (const breaker of this.#named(name)) {
      if (breaker === breakerOrName) {
        this.#unlist(name, breaker);
        return true;
      }
    }
    return false;
  }

  /**
   * The live breaker listed under `name`, or `undefined`.
   *
   * @example
   * ```ts
   * import { Breaker, defaultRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const search = new Breaker({ name: "search" });
   * assert.equal(defaultRegistry.get("search"), search);
   * ```
   */
  get(name: string): Breaker | undefined {
    const entry = this.#entries.get(name);
    return entry === undefined ? undefined : deref(entry);
  }

  /**
   * How many live breakers the registry lists.
   *
   * @example
   * ```ts
   * import { BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * assert.equal(new BreakerRegistry().size, 0);
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
   * import { BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const registry = new BreakerRegistry();
   * registry.breaker("db").open();
   * registry.breaker("cache");
   * const states = [...registry].map((breaker) => `${breaker.name}: ${breaker.state}`);
   * assert.deepEqual(states, ["db: open", "cache: closed"]);
   * ```
   */
  *[Symbol.iterator](): IterableIterator<Breaker> {
    for (const [name, entry] of this.#entries) {
      if (this.#shadowed.size !== 0) {
        for (const older of this.#shadowed.get(name) ?? []) {
          const breaker = deref(older);
          if (breaker !== undefined) yield breaker;
        }
      }
      const breaker = deref(entry);
      if (breaker !== undefined) yield breaker;
    }
  }

  /** The live breakers listed under `name`, oldest first. */
  *#named(name: string): IterableIterator<Breaker> {
    for (const older of this.#shadowed.get(name) ?? []) {
      const breaker = deref(older);
      if (breaker !== undefined) yield breaker;
    }
    const listed = this.get(name);
    if (listed !== undefined) yield listed;
  }

  /**
   * The breakers' names by state, read now.
   *
   * @example
   * ```ts
   * import { BreakerRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const registry = new BreakerRegistry();
   * registry.breaker("db").open();
   * const { total, allClosed, open } = registry.summary();
   * assert.deepEqual({ total, allClosed, open }, { total: 1, allClosed: false, open: ["db"] });
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
    const groups: Record<string, Record<BreakerState | "total", number>> = {};
    let total = 0;
    let closed = 0;
    for (const breaker of this) {
      const state = breaker.state;
      total++;
      if (state === "closed") closed++;
      const group = this.#groups.get(breaker);
      if (group !== undefined) {
        const counts = groups[group] ??= {
          total: 0,
          closed: 0,
          open: 0,
          "half-open": 0,
          recovering: 0,
          isolated: 0,
        };
        counts.total++;
        counts[state]++;
        if (state === "closed") continue;
      }
      names[state].push(breaker.name);
    }
    const duplicates: string[] = [];
    for (const name of this.#shadowed.keys()) {
      let count = 0;
      for (const _ of this.#named(name)) count++;
      if (count > 1) duplicates.push(name);
    }
    return {
      total,
      allClosed: closed === total,
      closed: names.closed,
      open: names.open,
      halfOpen: names["half-open"],
      recovering: names.recovering,
      isolated: names.isolated,
      duplicates,
      groups: Object.fromEntries(
        Object.entries(groups).map(([group, counts]) => [group, {
          total: counts.total,
          closed: counts.closed,
          open: counts.open,
          halfOpen: counts["half-open"],
          recovering: counts.recovering,
          isolated: counts.isolated,
        }]),
      ),
    };
  }

  /**
   * Adds a listener to every breaker the registry lists, now and later; dispose the returned
   * value to remove it from all of them.
   *
   * @throws {TypeError} When `listener` is not an object of hook functions.
   *
   * @example Logging every state change
   * ```ts
   * import { Breaker, defaultRegistry } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const changes: string[] = [];
   * using _subscription = defaultRegistry.addListener({
   *   stateChange: ({ breaker, from, to }) => changes.push(`${breaker.name}: ${from} -> ${to}`),
   * });
   * new Breaker({ name: "db" }).open(); // a named breaker joins the default registry
   * assert.deepEqual(changes, ["db: closed -> open"]);
   * ```
   */
  addListener(listener: BreakerListener): Disposable {
    checkListeners([listener], "Cannot add listener");
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
   * Lists `breaker` (unless it is listed already) as the newest of its name, held (`strong`)
   * or through a `WeakRef`; another live breaker of the name stays listed, as an older one.
   */
  #list(breaker: Breaker, strong: boolean): void {
    const name = breaker.name;
    // One lookup and one deref (each deref keeps its target alive for the current job).
    const entry = this.#entries.get(name);
    // Listed already as an older one of its name: it becomes the newest, and has the listeners.
    const relisted = this.#isShadowed.has(breaker);
    if (relisted) this.#unshadow(name, breaker);
    if (entry !== undefined) {
      const listed = deref(entry);
      if (listed === breaker) return;
      if (listed !== undefined) {
        let older = this.#shadowed.get(name);
        if (older === undefined) this.#shadowed.set(name, older = []);
        older.push(entry);
        this.#isShadowed.add(listed);
        // Collected ones leave at each doubling, so that a breaker made per request costs O(1).
        if (older.length >= 8 && (older.length & (older.length - 1)) === 0) {
          this.#shadowed.set(name, older.filter((shadowed) => deref(shadowed) !== undefined));
        }
      }
      // Deleting first moves the name to the end: the listing order is the order of joining.
      this.#entries.delete(name);
    }
    this.#entries.set(name, strong ? breaker : new WeakRef(breaker));
    if (!relisted) { for (const listener of this.#listeners) breaker.addListener(listener); }
    if (this.#entries.size >= this.#sweepAt) this.#sweep();
  }

  #unlist(name: string, breaker: Breaker): void {
    this.#unshadow(name, breaker);
    if (this.get(name) === breaker) {
      this.#entries.delete(name);
      // The newest older one takes the name back.
      const newest = this.#shadowed.get(name)?.pop();
      const listed = newest === undefined ? undefined : deref(newest);
      if (newest !== undefined) this.#entries.set(name, newest);
      if (listed !== undefined) this.#unshadow(name, listed);
    }
    this.#groups.delete(breaker);
    for (const listener of this.#listeners) breaker.removeListener(listener);
  }

  /** Takes `breaker` (and collected breakers) out of the older ones of `name`. */
  #unshadow(name: string, breaker: Breaker): void {
    this.#isShadowed.delete(breaker);
    const older = this.#shadowed.get(name);
    if (older === undefined) return;
    const live = older.filter((entry) => {
      const shadowed = deref(entry);
      return shadowed !== undefined && shadowed !== breaker;
    });
    if (live.length === 0) this.#shadowed.delete(name);
    else this.#shadowed.set(name, live);
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
    for (const [name, older] of this.#shadowed) {
      const live = older.filter((entry) => deref(entry) !== undefined);
      if (!this.#entries.has(name)) {
        // A name whose newest breaker was collected: its newest older one takes it back.
        const newest = live.pop();
        const listed = newest === undefined ? undefined : deref(newest);
        if (newest !== undefined) this.#entries.set(name, newest);
        if (listed !== undefined) this.#isShadowed.delete(listed);
      }
      if (live.length === 0) this.#shadowed.delete(name);
      else this.#shadowed.set(name, live);
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
 * import assert from "node:assert/strict";
 * const loadUser = circuit(async function loadUser(id: string) {
 *   return { id };
 * });
 * assert.equal(defaultRegistry.get("loadUser")?.state, "closed");
 * ```
 */
export const defaultRegistry: BreakerRegistry = new BreakerRegistry();

/**
 * The `registry` option of a breaker, checked.
 *
 * @throws {TypeError} When it is neither a `BreakerRegistry` nor `false`.
 */
export function checkRegistry(
  registry: unknown,
  context: string,
): BreakerRegistry | false | undefined {
  return registry === undefined || registry === false || registry instanceof BreakerRegistry
    ? registry
    : fail(context, "registry", "a BreakerRegistry or false", registry, true);
}
