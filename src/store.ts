/**
 * The `StateStore` interface: where breakers in several processes keep the one circuit they
 * share. A store holds, per breaker name, a serialized snapshot and a version, and changes it
 * only by compare-and-set. `denoKvStore` (`@circuit/breaker/deno-kv`) and `redisStore`
 * (`@circuit/breaker/redis`) implement it; `memoryStore()` shares circuits within one process.
 *
 * @module
 */

/**
 * A stored snapshot and its version.
 *
 * @example
 * ```ts
 * import type { StoredState } from "@circuit/breaker";
 * const stored: StoredState = { version: "1", value: '{"version":1}' };
 * ```
 */
export interface StoredState {
  /**
   * The store's version of the value: any string, changed by every write. Breakers compare
   * versions only for equality.
   */
  readonly version: string;
  /** The serialized snapshot (JSON text of a `SnapshotJSON`). */
  readonly value: string;
}

/**
 * Where breakers keep a shared circuit: compare-and-set of a serialized snapshot per breaker
 * name, plus an optional change subscription. Every method may reject (a store that is down);
 * breakers then go on under their local state and report the error to `storeError` listeners.
 *
 * @example An in-process store, as a model for your own
 * ```ts
 * import { Breaker, type StateStore, type StoredState } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const entries = new Map<string, StoredState>();
 * let writes = 0;
 * const store: StateStore = {
 *   read: (name) => Promise.resolve(entries.get(name)),
 *   compareAndSet(name, expectedVersion, value) {
 *     if (entries.get(name)?.version !== expectedVersion) return Promise.resolve(undefined);
 *     const stored = { version: String(++writes), value };
 *     entries.set(name, stored);
 *     return Promise.resolve(stored);
 *   },
 * };
 * {
 *   await using payments = new Breaker({ name: "payments", store });
 *   payments.open();
 * } // disposing a breaker awaits its writes
 * assert.equal(JSON.parse(entries.get("payments")?.value ?? "{}").state, "open");
 * ```
 */
export interface StateStore {
  /**
   * The value stored for a breaker name, or `undefined` when there is none. Whatever text is
   * stored is returned, even if it is no snapshot: breakers report it and write over it. An
   * entry that cannot be returned as text (another type of Redis key, a Deno KV value that is
   * not a string) rejects with an error whose `storedVersion` property (a string) is the
   * version a `compareAndSet` must expect to replace it: breakers report that error once and
   * write over the entry too.
   */
  read(name: string): Promise<StoredState | undefined>;
  /**
   * Optional: as `read`, but resolves with `"unchanged"`, without fetching the value, when the
   * stored version is still `version`. Breakers then re-read a large value only when it
   * changed.
   */
  readIfChanged?(name: string, version: string): Promise<StoredState | "unchanged" | undefined>;
  /**
   * Writes `value` for `name` only if the stored version is still `expectedVersion`
   * (`undefined`: nothing is stored). Resolves with what was stored, or `undefined` when the
   * version no longer matched and nothing was written. Must be atomic in the store.
   */
  compareAndSet(
    name: string,
    expectedVersion: string | undefined,
    value: string,
  ): Promise<StoredState | undefined>;
  /**
   * Calls `onChange` with each value written for `name` from now on (by any process, this one
   * included), and `onError` when the subscription fails. Optional: without it, breakers learn
   * of changes at their next sync. Breakers take a notification as a hint only: it makes them
   * read the store, and only what they read changes their circuit. Disposing the result ends
   * the subscription and closes what it opened.
   */
  subscribe?(
    name: string,
    onChange: (stored: StoredState) => void,
    onError: (error: unknown) => void,
  ): AsyncDisposable;
}
