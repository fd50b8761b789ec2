/**
 * Per-key breakers: a {@linkcode BreakerGroup} creates one breaker per key (a host, a tenant, a
 * model) on first use, all with the same options, and keeps at most `maxKeys` of them, evicting
 * the least recently used breaker that is closed and idle when a new key arrives.
 *
 * ```ts
 * import { BreakerGroup } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const hosts = new BreakerGroup({ name: "hosts", failureThreshold: 3, maxKeys: 10_000 });
 * const url = new URL("https://api.example.com/users/42");
 * const response = await hosts.get(url.host).execute(() => Promise.resolve(new Response("ok")));
 * assert.equal(await response.text(), "ok");
 * assert.equal(hosts.get(url.host).name, "hosts:api.example.com");
 * ```
 *
 * @module
 */

import { Breaker } from "./breaker.ts";
import {
  BREAKER_OPTIONS,
  type BreakerOptions,
  copyOptions,
  parseOptions,
} from "./breaker_options.ts";
import { describeValue, quoteName } from "./core/describe_value.ts";
import { checkOptionNames, fail, optionsObject } from "./core/validate.ts";
import type { Policy } from "./core/policy.ts";
import type { BreakerState } from "./core/snapshot.ts";
import { isForgettable } from "./core/transitions.ts";
import {
  type BreakerRegistry,
  checkRegistry,
  defaultRegistry,
  holdInRegistry,
} from "./registry.ts";

/**
 * A member left a {@linkcode BreakerGroup} to make room for a new key (see the `onEvict`
 * option). The breaker keeps working for whoever still holds it, but it is no longer the
 * group's: the next `get(key)` creates a fresh one.
 *
 * @example Counting evictions
 * ```ts
 * import { BreakerGroup, type EvictionEvent } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * let forced = 0;
 * const onEvict = (event: EvictionEvent) => {
 *   if (event.forced) forced++;
 * };
 * const tenants = new BreakerGroup({ name: "tenants", maxKeys: 1, onEvict });
 * tenants.get("acme").open();
 * tenants.get("globex"); // no room: "acme" is evicted although open
 * assert.equal(forced, 1);
 * ```
 */
export interface EvictionEvent<K extends string = string> {
  /** The group the breaker left. */
  readonly group: BreakerGroup<K>;
  /** The key the breaker was created for. */
  readonly key: K;
  /** The evicted breaker. */
  readonly breaker: Breaker;
  /** The breaker's state when it was evicted (always `"closed"` unless `forced`). */
  readonly state: BreakerState;
  /**
   * Whether the breaker was evicted although it was not idle (open, half-open, recovering,
   * isolated, or closed with failures counted), because no member was idle and the group
   * must stay within `maxKeys`. What it knew about its key is lost (unless a `store` keeps
   * the circuit).
   */
  readonly forced: boolean;
}

/**
 * Options of a {@linkcode BreakerGroup}: the options every member breaker is created with
 * (all of {@linkcode BreakerOptions} but `name` and `state`), plus the group's own.
 *
 * @example
 * ```ts
 * import type { BreakerGroupOptions } from "@circuit/breaker";
 * const options: BreakerGroupOptions = { name: "hosts", maxKeys: 5_000, failureThreshold: 3 };
 * ```
 */
export interface BreakerGroupOptions<K extends string = string>
  extends Omit<BreakerOptions, "name" | "state"> {
  /**
   * The group's name (a non-empty string). A member's breaker is named `${name}:${key}`: that
   * is its name in errors, events and registries, and, with a `store`, the shared circuit it
   * joins.
   */
  readonly name: string;
  /**
   * The most breakers the group holds (an integer >= 1). A new key beyond it evicts the least
   * recently used idle member, or, when none is idle, the least recently used member (a
   * forced eviction, reported).
   * @default {10_000}
   */
  readonly maxKeys?: number;
  /**
   * Called after each eviction (once the new member is in place), forced or not. A hook that
   * throws is reported with `console.error`. Without it, a forced eviction of a breaker that
   * is not closed is reported with `console.warn` (the first at once, then at most one
   * warning a minute, counting the others).
   */
  readonly onEvict?: (event: EvictionEvent<K>) => void;
}

/** A breaker held by the group, linked into one of its two recency lists. */
interface Member<K extends string> {
  readonly key: K;
  readonly breaker: Breaker;
  /** The next member towards the list's least recently used end. */
  older: Member<K> | undefined;
  /** The next member towards the list's most recently used end. */
  newer: Member<K> | undefined;
  list: RecencyList<K>;
}

/** A doubly linked list of members, least recently used first: O(1) to move a member. */
class RecencyList<K extends string> {
  oldest: Member<K> | undefined = undefined;
  newest: Member<K> | undefined = undefined;
  size = 0;

  push(member: Member<K>): void {
    member.list = this;
    member.older = this.newest;
    member.newer = undefined;
    if (this.newest === undefined) this.oldest = member;
    else this.newest.newer = member;
    this.newest = member;
    this.size++;
  }

  remove(member: Member<K>): void {
    const { older, newer } = member;
    if (older === undefined) this.oldest = newer;
    else older.newer = newer;
    if (newer === undefined) this.newest = older;
    else newer.older = older;
    member.older = member.newer = undefined;
    this.size--;
  }

  /**
   * Empties the list, unlinking every member: with a conservative collector (Bun's), one stale
   * pointer to a linked member would keep the whole chain alive.
   */
  clear(): void {
    for (let member = this.oldest; member !== undefined;) {
      const newer = member.newer;
      member.older = member.newer = undefined;
      member = newer;
    }
    this.oldest = this.newest = undefined;
    this.size = 0;
  }
}

const DEFAULT_MAX_KEYS = 10_000;
/** Without `onEvict`, forced evictions are warned about at most this often (by the clock). */
const WARNING_INTERVAL_MS = 60_000;

/**
 * Breakers by key, created on demand with shared options: one circuit per host, tenant or
 * model, so that one failing key does not open the circuit for the others.
 *
 * At most `maxKeys` breakers are held. When a new key arrives at the bound, the least recently
 * used breaker that is **idle** (closed, no consecutive failures, no failure or slow call in
 * its window: forgetting it loses nothing a fresh breaker would not know) is evicted. A
 * breaker that is open, half-open, recovering or isolated is kept while an idle one can go;
 * only when none is idle is the least recently used breaker evicted anyway, and that forced
 * eviction is reported (`onEvict`, else `console.warn` for a breaker that is not closed).
 *
 * Members join the `registry` option's registry (`defaultRegistry` unless it says otherwise)
 * and leave it when they leave the group. An evicted breaker keeps working for callers that
 * still hold it, but it is no longer the group's: the next `get(key)` creates a fresh one
 * (with a `store`, the fresh one joins the same shared circuit, so nothing is lost; the
 * evicted one is disposed, flushing its counts). So take the breaker from `get(key)` for each
 * call rather than keeping it. The group does not track calls in flight (that would put a
 * listener on every call): a call still running on an evicted breaker records its outcome
 * there. A key is evicted only after `maxKeys` other keys were used since it was, so choose
 * `maxKeys` above the number of distinct keys used during your longest call.
 *
 * @example One circuit per upstream host
 * ```ts
 * import { BreakerGroup } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const hosts = new BreakerGroup({ name: "hosts", failureThreshold: 3, maxKeys: 1_000 });
 * async function get(url: string): Promise<Response> {
 *   return await hosts.get(new URL(url).host).execute((signal) => fetch(url, { signal }));
 * }
 * assert.equal(hosts.get("api.example.com").name, "hosts:api.example.com");
 * ```
 */
export class BreakerGroup<K extends string = string> implements Iterable<[K, Breaker]> {
  #name: string;
  #maxKeys: number;
  /** The options each member is created with (a private copy, validated). */
  #options: BreakerOptions;
  #onEvict: ((event: EvictionEvent<K>) => void) | undefined;
  #registry: BreakerRegistry | false;
  #clock: () => number;
  /** The members' policy (they share the group's options), for `isForgettable`. */
  #policy: Policy;
  #members = new Map<K, Member<K>>();
  /** Members in recency order, least recently used first. */
  #recent = new RecencyList<K>();
  /**
   * Members an eviction found not idle, moved out of `#recent` so that later evictions do not
   * examine them again until they are used again. All are less recently used than any member
   * of `#recent`, in recency order too.
   */
  #aside = new RecencyList<K>();
  /** Evictions since the set-aside members were last examined again. */
  #evictionsSinceRecheck = 0;
  /** Disposals of members that left while they had a store: the group's dispose awaits them. */
  #disposing = new Set<Promise<void>>();
  #warnedAt: number | undefined;
  #unwarned = 0;

  /**
   * Creates a group. Every option is validated here, so a bad breaker option fails at once
   * rather than at the first `get()`: a `TypeError` or `RangeError` naming it.
   *
   * @throws {TypeError} When an option has the wrong type, or is unknown; the message names it and
   * the value received.
   * @throws {RangeError} When an option is out of range; the message names it and the value
   * received.
   *
   * @example
   * ```ts
   * import { BreakerGroup } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const models = new BreakerGroup({ name: "models", recoveryTimeout: 10_000 });
   * assert.equal(models.get("gpt").name, "models:gpt");
   * assert.throws(() => new BreakerGroup({ name: "models", maxKeys: 0 }), RangeError);
   * ```
   */
  constructor(options: BreakerGroupOptions<K>) {
    const context = "Cannot create breaker group";
    optionsObject(context, options);
    const { name, maxKeys = DEFAULT_MAX_KEYS, onEvict, ...shared } = copyOptions({}, options);
    if (typeof name !== "string" || name === "") {
      fail(context, "name", "a non-empty string", name, true);
    }
    if (typeof maxKeys !== "number") {
      fail(context, "maxKeys", "a number", maxKeys, true);
    }
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) {
      fail(context, "maxKeys", "an integer >= 1", maxKeys);
    }
    if (onEvict !== undefined && typeof onEvict !== "function") {
      fail(context, "onEvict", "a function", onEvict, true);
    }
    if ("state" in shared) {
      throw new TypeError(
        `${context}: "state" is not an option of a breaker group (each member starts closed), received ${
          describeValue((shared as BreakerOptions).state)
        }`,
      );
    }
    checkOptionNames(shared, BREAKER_OPTIONS, context);
    const { clock, policy } = parseOptions({ ...shared, name }, context);
    this.#registry = checkRegistry(shared.registry, context) ?? defaultRegistry;
    this.#name = name;
    this.#maxKeys = maxKeys;
    this.#options = shared;
    this.#onEvict = onEvict;
    this.#clock = clock;
    this.#policy = policy;
  }

  /**
   * The group's name: its members are named `${name}:${key}`.
   *
   * @example
   * ```ts
   * import { BreakerGroup } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * assert.equal(new BreakerGroup({ name: "hosts" }).name, "hosts");
   * ```
   */
  get name(): string {
    return this.#name;
  }

  /**
   * How many breakers the group holds (never more than `maxKeys`).
   *
   * @example
   * ```ts
   * import { BreakerGroup } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const group = new BreakerGroup({ name: "tenants" });
   * group.get("acme");
   * assert.equal(group.size, 1);
   * ```
   */
  get size(): number {
    return this.#members.size;
  }

  /**
   * The breaker for `key`, created with the group's options if the group holds none, and now
   * the most recently used. At the `maxKeys` bound, creating one evicts another (see
   * {@linkcode BreakerGroup}). Throws a `TypeError` when `key` is not a non-empty string.
   *
   * @throws {TypeError} When `key` is not a non-empty string.
   *
   * @example
   * ```ts
   * import { BreakerGroup } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const tenants = new BreakerGroup({ name: "tenants", failureThreshold: 5 });
   * const invoices = await tenants.get("acme").execute(() => Promise.resolve(["inv-1"]));
   * assert.equal(tenants.get("acme"), tenants.get("acme"));
   * ```
   */
  get(key: K): Breaker {
    const member = this.#members.get(key);
    if (member === undefined) return this.#create(key);
    if (member !== this.#recent.newest) {
      member.list.remove(member);
      this.#recent.push(member);
    }
    return member.breaker;
  }

  /**
   * The breaker the group holds for `key`, or `undefined`, without creating one and without
   * making it the most recently used (for dashboards and health checks).
   *
   * @example
   * ```ts
   * import { BreakerGroup } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const tenants = new BreakerGroup({ name: "tenants" });
   * assert.equal(tenants.peek("acme"), undefined);
   * tenants.get("acme");
   * assert.equal(tenants.peek("acme")?.state, "closed");
   * ```
   */
  peek(key: K): Breaker | undefined {
    return this.#members.get(key)?.breaker;
  }

  /**
   * Removes the breaker held for `key` (from its registry too; with a `store`, it is
   * disposed). It keeps working for callers that hold it; the next `get(key)` creates a fresh
   * one. Returns whether the group held one. Not reported as an eviction.
   *
   * @example
   * ```ts
   * import { BreakerGroup } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const tenants = new BreakerGroup({ name: "tenants" });
   * tenants.get("acme");
   * assert.equal(tenants.delete("acme"), true);
   * assert.equal(tenants.size, 0);
   * ```
   */
  delete(key: K): boolean {
    const member = this.#members.get(key);
    if (member === undefined) return false;
    this.#remove(member);
    return true;
  }

  /**
   * Removes every breaker, as {@linkcode BreakerGroup.delete} does one.
   *
   * @example
   * ```ts
   * import { BreakerGroup } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const tenants = new BreakerGroup({ name: "tenants" });
   * tenants.get("acme");
   * tenants.clear();
   * assert.equal(tenants.size, 0);
   * ```
   */
  clear(): void {
    for (const member of this.#members.values()) this.#release(member.breaker);
    this.#members.clear();
    this.#recent.clear();
    this.#aside.clear();
  }

  /**
   * The `[key, breaker]` pairs, least recently used first, as they were when iteration
   * started. Iterating changes no recency.
   *
   * @example
   * ```ts
   * import { BreakerGroup } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * const hosts = new BreakerGroup({ name: "hosts" });
   * hosts.get("a.example");
   * hosts.get("b.example").open();
   * const states = [...hosts].map(([host, breaker]) => `${host}: ${breaker.state}`);
   * assert.deepEqual(states, ["a.example: closed", "b.example: open"]);
   * ```
   */
  [Symbol.iterator](): IterableIterator<[K, Breaker]> {
    const entries: [K, Breaker][] = [];
    for (const list of [this.#aside, this.#recent]) {
      for (let member = list.oldest; member !== undefined; member = member.newer) {
        entries.push([member.key, member.breaker]);
      }
    }
    return entries[Symbol.iterator]();
  }

  /**
   * Removes every breaker (see {@linkcode BreakerGroup.clear}) and disposes of them all,
   * awaiting the disposal of those evicted or deleted before: with a `store`, their counts
   * are flushed and their subscriptions closed. The group stays usable.
   *
   * @example
   * ```ts
   * import { BreakerGroup, memoryStore } from "@circuit/breaker";
   * import assert from "node:assert/strict";
   * await using tenants = new BreakerGroup({ name: "tenants", store: memoryStore() });
   * assert.equal(await tenants.get("acme").execute(() => Promise.resolve("ok")), "ok");
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    const members = [...this.#members.values()];
    this.clear();
    // clear() disposes members only with a store; without one this is a formality, kept so
    // that disposing the group always disposes every breaker it held.
    if (this.#options.store === undefined) {
      for (const member of members) this.#track(member.breaker);
    }
    while (this.#disposing.size !== 0) await Promise.all(this.#disposing);
  }

  #create(key: K): Breaker {
    if (typeof key !== "string" || key === "") {
      throw new TypeError(
        `Cannot get breaker from group ${
          quoteName(this.#name)
        }: "key" must be a non-empty string, received ${describeValue(key)}`,
      );
    }
    // Created before anything is evicted: if it threw, the group would be unchanged.
    const breaker = new Breaker({
      ...this.#options,
      name: `${this.#name}:${key}`,
      registry: false,
    });
    // Held, not weakly listed: the group keeps its members and delists them as they leave.
    if (this.#registry !== false) holdInRegistry(this.#registry, breaker, this.#name);
    const evicted = this.#members.size >= this.#maxKeys ? this.#evict() : undefined;
    const member: Member<K> = {
      key,
      breaker,
      older: undefined,
      newer: undefined,
      list: this.#recent,
    };
    this.#recent.push(member);
    this.#members.set(key, member);
    if (evicted !== undefined) this.#reportEviction(evicted.member, evicted.state, evicted.forced);
    return breaker;
  }

  /**
   * Evicts one member: the least recently used idle one, else the least recently used one.
   * Work stays O(1) per eviction on average: a member found not idle is set aside (each
   * member at most once per use), and the set-aside members are examined again at most once
   * per as many evictions as there are of them.
   */
  #evict(): { member: Member<K>; state: BreakerState; forced: boolean } {
    this.#evictionsSinceRecheck++;
    const now = this.#clock();
    const idle = (member: Member<K>) => isForgettable(this.#policy, member.breaker.snapshot, now);
    const recent = this.#recent;
    const aside = this.#aside;
    for (let member = recent.oldest; member !== undefined; member = recent.oldest) {
      if (idle(member)) {
        this.#remove(member);
        return { member, state: "closed", forced: false };
      }
      recent.remove(member);
      aside.push(member);
    }
    // Every member is set aside. Some may have become idle since (a recovery ramp ended,
    // failures left a time window, a holder closed one by hand).
    let examined = false;
    if (this.#evictionsSinceRecheck >= aside.size) {
      this.#evictionsSinceRecheck = 0;
      examined = true;
      for (let member = aside.oldest; member !== undefined; member = member.newer) {
        if (idle(member)) {
          this.#remove(member);
          return { member, state: "closed", forced: false };
        }
      }
    }
    const member = aside.oldest as Member<K>; // maxKeys >= 1, so the group holds one
    const forced = examined || !idle(member);
    const state = member.breaker.state;
    this.#remove(member);
    return { member, state, forced };
  }

  #remove(member: Member<K>): void {
    member.list.remove(member);
    this.#members.delete(member.key);
    this.#release(member.breaker);
  }

  /** A breaker leaves the group: out of the registry, and disposed if it has a store. */
  #release(breaker: Breaker): void {
    if (this.#registry !== false) this.#registry.delete(breaker);
    if (this.#options.store !== undefined) this.#track(breaker);
  }

  /** Disposes a breaker; the group's dispose awaits it. Store errors reach `storeError`. */
  #track(breaker: Breaker): void {
    let disposal: Promise<void>;
    try {
      disposal = breaker[Symbol.asyncDispose]();
    } catch (error) {
      disposal = Promise.reject(error);
    }
    const tracked: Promise<void> = disposal.then(
      () => {
        this.#disposing.delete(tracked);
      },
      (error) => {
        this.#disposing.delete(tracked);
        console.error(
          `Breaker group ${quoteName(this.#name)}: disposing ${quoteName(breaker.name)} failed`,
          error,
        );
      },
    );
    this.#disposing.add(tracked);
  }

  #reportEviction(member: Member<K>, state: BreakerState, forced: boolean): void {
    const onEvict = this.#onEvict;
    if (onEvict === undefined) {
      if (forced && state !== "closed") this.#warn(member.key, state);
      return;
    }
    try {
      const result: unknown = onEvict({
        group: this,
        key: member.key,
        breaker: member.breaker,
        state,
        forced,
      });
      if (result instanceof Promise) result.catch((error) => this.#reportHook(error));
    } catch (error) {
      this.#reportHook(error);
    }
  }

  #reportHook(error: unknown): void {
    console.error(`Breaker group ${quoteName(this.#name)}: "onEvict" threw; ignored`, error);
  }

  /** Warns of a forced eviction; the first at once, then one a minute with the count. */
  #warn(key: K, state: BreakerState): void {
    this.#unwarned++;
    let now: number;
    try {
      now = this.#clock();
    } catch {
      now = Date.now();
    }
    const last = this.#warnedAt;
    if (last !== undefined && now - last < WARNING_INTERVAL_MS) return;
    const count = this.#unwarned;
    this.#warnedAt = now;
    this.#unwarned = 0;
    console.warn(
      `Breaker group ${quoteName(this.#name)}: evicted the ${state} breaker of key ${
        JSON.stringify(key)
      } to stay within maxKeys (${this.#maxKeys}): no breaker was idle${
        count > 1 ? ` (${count} such evictions since the last warning)` : ""
      }. Raise maxKeys, or pass onEvict to handle evictions.`,
    );
  }
}
