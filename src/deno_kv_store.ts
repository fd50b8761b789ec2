/**
 * `denoKvStore(kv)`: a {@linkcode StateStore} in Deno KV, so that breakers in several isolates,
 * processes or Deno Deploy regions share one circuit. It takes a database you opened
 * (`Deno.openKv()`, or `openKv()` of the npm package `@deno/kv`) and never closes it.
 *
 * Layout: one entry per breaker name at `[...prefix, name]`, whose value is the snapshot's
 * JSON and whose versionstamp is the version. Compare-and-set is an atomic operation checking
 * the versionstamp; subscriptions are `kv.watch()` streams.
 *
 * @example Breakers sharing one circuit through Deno KV
 * ```ts
 * import { Breaker } from "@circuit/breaker";
 * import { denoKvStore } from "@circuit/breaker/deno-kv";
 * import assert from "node:assert/strict";
 *
 * using kv = await Deno.openKv(":memory:"); // or Deno.openKv() for the default database
 * await using a = new Breaker({ name: "payments", store: denoKvStore(kv) });
 * await using b = new Breaker({ name: "payments", store: denoKvStore(kv) });
 * const seen = new Promise((resolve) => b.addListener({ stateChange: resolve }));
 * a.open();
 * await seen;
 * assert.equal(b.state, "open");
 * ```
 *
 * @module
 */

import { describeValue } from "./core/describe_value.ts";
import { fail, optionsObject } from "./core/validate.ts";
import type { StateStore, StoredState } from "./store.ts";

export type { StateStore, StoredState } from "./store.ts";

/**
 * A part of a Deno KV key (`Deno.KvKeyPart` without symbols).
 *
 * @example
 * ```ts
 * import type { DenoKvKeyPart } from "@circuit/breaker/deno-kv";
 * const parts: DenoKvKeyPart[] = ["circuit", 2, 3n, true, new Uint8Array([1])];
 * ```
 */
export type DenoKvKeyPart = Uint8Array | string | number | bigint | boolean;

/**
 * A Deno KV key.
 *
 * @example
 * ```ts
 * import type { DenoKvKey } from "@circuit/breaker/deno-kv";
 * const key: DenoKvKey = ["circuit", "payments"];
 * ```
 */
export type DenoKvKey = readonly DenoKvKeyPart[];

/**
 * An entry read or watched (`Deno.KvEntryMaybe`): `versionstamp` is `null` when there is none.
 *
 * @example
 * ```ts
 * import type { DenoKvEntryMaybe } from "@circuit/breaker/deno-kv";
 * const missing: DenoKvEntryMaybe = { value: null, versionstamp: null };
 * ```
 */
export interface DenoKvEntryMaybe {
  /** The stored value, `null` when there is none. */
  readonly value: unknown;
  /** The version of the entry, `null` when there is none. */
  readonly versionstamp: string | null;
}

/**
 * An atomic operation (`Deno.AtomicOperation`), as far as the store uses it.
 *
 * @example
 * ```ts
 * import type { DenoKvAtomicOperation } from "@circuit/breaker/deno-kv";
 * import assert from "node:assert/strict";
 * using kv = await Deno.openKv(":memory:");
 * const key = ["circuit", "db"];
 * const create = (): DenoKvAtomicOperation => kv.atomic().check({ key, versionstamp: null });
 * assert.equal((await create().set(key, "{}").commit()).ok, true);
 * assert.equal((await create().set(key, "{}").commit()).ok, false); // it exists now
 * ```
 */
export interface DenoKvAtomicOperation {
  /** Makes the commit fail unless each key has the given versionstamp (`null`: absent). */
  check(
    ...checks: { readonly key: DenoKvKey; readonly versionstamp: string | null }[]
  ): DenoKvAtomicOperation;
  /** Sets a key's value when the operation commits. */
  set(key: DenoKvKey, value: unknown): DenoKvAtomicOperation;
  /** Commits: `ok` with the new versionstamp, or not `ok` when a check failed. */
  commit(): Promise<{ readonly ok: boolean; readonly versionstamp?: string }>;
}

/**
 * A Deno KV database (`Deno.Kv`, or the npm `@deno/kv` client), as far as the store uses it.
 *
 * @example
 * ```ts
 * import { denoKvStore, type DenoKv } from "@circuit/breaker/deno-kv";
 * import assert from "node:assert/strict";
 * using database = await Deno.openKv(":memory:");
 * const kv: DenoKv = database;
 * assert.equal(typeof denoKvStore(kv).subscribe, "function"); // Deno's own has watch()
 * ```
 */
export interface DenoKv {
  /** Reads one entry. */
  get(key: DenoKvKey): Promise<DenoKvEntryMaybe>;
  /** Starts an atomic operation. */
  atomic(): DenoKvAtomicOperation;
  /**
   * Streams the entries of `keys` each time one of them changes, starting with their current
   * entries. Optional: without it, the store has no `subscribe` and breakers learn of changes
   * at their next sync.
   */
  watch?(keys: readonly DenoKvKey[]): ReadableStream<readonly DenoKvEntryMaybe[]>;
}

/**
 * Options of {@linkcode denoKvStore}.
 *
 * @example Keeping one application's circuits apart
 * ```ts
 * import type { DenoKvStoreOptions } from "@circuit/breaker/deno-kv";
 * const options: DenoKvStoreOptions = { prefix: ["billing", "circuit"] };
 * ```
 */
export interface DenoKvStoreOptions {
  /**
   * The key parts before the breaker's name: a breaker named `db` is kept at
   * `[...prefix, "db"]`. Stores with different prefixes never see each other's circuits.
   *
   * @default {["circuit"]}
   */
  readonly prefix?: DenoKvKey;
}

/**
 * A {@linkcode StateStore} in Deno KV. Breakers with the same name on stores with the same
 * prefix (in any isolate or region of the database) share one circuit. Each subscription is
 * one `kv.watch()`; its first notification may be the value stored when it started. The
 * database is never closed by the store.
 *
 * On a local file (`Deno.openKv(path)`), a watch sees the writes of its own process only:
 * breakers in other processes on the same file learn of a change at their next sync
 * (`syncInterval`). A write that finds the file locked by another process is tried again for
 * up to 0.5 s. On Deno Deploy, watches see every isolate's writes. A database that is not
 * Deno's own (the npm client on Bun and Node.js, whose `watch()` keeps the process alive after
 * it is cancelled) gets no subscription: breakers read it at each sync. A value that is not a
 * string is reported by the breakers, which write over it.
 *
 * @throws {TypeError} When `kv` is not a Deno KV database, or `prefix` is not a key.
 *
 * @example Shared circuits on Deno Deploy
 * ```ts ignore
 * import { Breaker } from "@circuit/breaker";
 * import { denoKvStore } from "@circuit/breaker/deno-kv";
 *
 * const store = denoKvStore(await Deno.openKv(), { prefix: ["shop", "circuit"] });
 * await using db = new Breaker({ name: "db", store });
 * ```
 */
export function denoKvStore(kv: DenoKv, options?: DenoKvStoreOptions): StateStore {
  if (!isDenoKv(kv)) {
    fail(
      "Cannot create Deno KV store",
      "kv",
      "a Deno KV database (from Deno.openKv() or @deno/kv)",
      kv,
      true,
    );
  }
  const prefix = prefixOf(options);
  const keyOf = (name: string): DenoKvKey => [...prefix, name];
  const read = async (name: string): Promise<StoredState | undefined> => {
    const key = keyOf(name);
    const entry = await kv.get(key);
    if (entry.versionstamp === null) return undefined;
    if (typeof entry.value !== "string") {
      // Reported by the breakers, which write over it, expecting this versionstamp.
      throw Object.assign(notText(key, entry.value), { storedVersion: entry.versionstamp });
    }
    return { version: entry.versionstamp, value: entry.value };
  };
  const compareAndSet = async (
    name: string,
    expectedVersion: string | undefined,
    value: string,
  ): Promise<StoredState | undefined> => {
    // Deno KV rejects a check whose versionstamp is malformed; such a version matches nothing.
    if (expectedVersion !== undefined && !VERSIONSTAMP.test(expectedVersion)) return undefined;
    const key = keyOf(name);
    const result = await commitRetryingWhileLocked(() =>
      kv.atomic().check({ key, versionstamp: expectedVersion ?? null }).set(key, value).commit()
    );
    if (!result.ok) return undefined;
    if (typeof result.versionstamp !== "string") {
      throw new TypeError(
        `Deno KV store: a commit succeeded without a versionstamp, received ${
          describeValue(result.versionstamp)
        }`,
      );
    }
    return { version: result.versionstamp, value };
  };
  const { watch } = kv;
  if (typeof watch !== "function" || !isNativeKv(kv)) return { read, compareAndSet };
  return {
    read,
    compareAndSet,
    subscribe: (name, onChange, onError) =>
      watchEntry(() => watch.call(kv, [keyOf(name)]), onChange, onError),
  };
}

/** A versionstamp as Deno KV writes it: 10 bytes in hexadecimal. */
const VERSIONSTAMP = /^[0-9a-f]{20}$/;

/** How long, in all, a commit is tried again while a local KV file is locked. */
const LOCKED_RETRY_MS = 500;

/**
 * Commits, trying again while the database answers "database is locked": a local KV file
 * (SQLite) opened by several handles or processes fails a write at once while another one
 * holds its write lock, instead of waiting for it. Nothing was written then, so trying the
 * same checked operation again is safe.
 */
async function commitRetryingWhileLocked<T>(commit: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCKED_RETRY_MS;
  for (let attempt = 0;; attempt++) {
    try {
      return await commit();
    } catch (error) {
      if (!isLockedError(error) || Date.now() >= deadline) throw error;
    }
    // A few ms, growing, with jitter so that the writers waiting do not collide again.
    const delay = Math.random() * Math.min(2 ** attempt, 32);
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function isLockedError(error: unknown): boolean {
  return error instanceof Error && /database is locked/i.test(error.message);
}

/**
 * Calls `onChange` for each new versionstamp of the entry until disposed; disposing cancels
 * the watch and resolves once it has ended, leaving nothing open.
 */
function watchEntry(
  watch: () => ReadableStream<readonly DenoKvEntryMaybe[]>,
  onChange: (stored: StoredState) => void,
  onError: (error: unknown) => void,
): AsyncDisposable {
  let disposed = false;
  let reader: ReadableStreamDefaultReader<readonly DenoKvEntryMaybe[]> | undefined;
  const report = (error: unknown) => {
    try {
      onError(error);
    } catch (thrown) {
      console.error("Deno KV store: a subscription's onError threw", thrown);
    }
  };
  const watching = (async () => {
    try {
      reader = watch().getReader();
      // Versionstamps already delivered are not delivered again (a watch may repeat one).
      let lastVersion: string | null = null;
      while (!disposed) {
        const { done, value: entries } = await reader.read();
        if (done) break;
        const entry = entries[0];
        if (entry === undefined || entry.versionstamp === null) continue;
        if (entry.versionstamp === lastVersion) continue;
        lastVersion = entry.versionstamp;
        // A value that is not text is no change to announce: read() reports it.
        if (typeof entry.value !== "string") continue;
        try {
          onChange({ version: entry.versionstamp, value: entry.value });
        } catch (error) {
          report(error);
        }
      }
      if (!disposed) report(new Error("Deno KV store: the watch ended (was the database closed?)"));
    } catch (error) {
      if (!disposed) report(error);
    }
  })();
  return {
    async [Symbol.asyncDispose]() {
      if (!disposed) {
        disposed = true;
        await reader?.cancel().catch(() => {});
      }
      await watching;
    },
  };
}

function notText(key: DenoKvKey, value: unknown): TypeError {
  return new TypeError(
    `Deno KV store: the value at ${
      describeKey(key)
    } must be a string (a snapshot's JSON), received ${describeValue(value)}`,
  );
}

/**
 * Whether `kv` is Deno's own database: only its `watch()` ends with the store's subscription.
 * The npm client's (`@deno/kv` on Bun and Node.js) keeps the process alive after the watch is
 * cancelled and the database closed, so there the store has no `subscribe` and breakers read
 * at each sync instead.
 */
function isNativeKv(kv: DenoKv): boolean {
  const native = (globalThis as { Deno?: { Kv?: unknown } }).Deno?.Kv;
  return typeof native === "function" && kv instanceof native;
}

function isDenoKv(kv: unknown): kv is DenoKv {
  if (typeof kv !== "object" || kv === null) return false;
  const { get, atomic } = kv as { get?: unknown; atomic?: unknown };
  return typeof get === "function" && typeof atomic === "function";
}

function prefixOf(options: unknown): DenoKvKey {
  if (options === undefined) return ["circuit"];
  optionsObject("Cannot create Deno KV store", options);
  const { prefix = ["circuit"] } = options as { prefix?: unknown };
  if (!Array.isArray(prefix) || !prefix.every(isKeyPart)) {
    fail(
      "Cannot create Deno KV store",
      "prefix",
      "an array of key parts (strings, numbers, bigints, booleans or Uint8Arrays)",
      prefix,
      true,
    );
  }
  // A copy: changing the caller's array later must not move the store's keys.
  return [...prefix];
}

function isKeyPart(part: unknown): part is DenoKvKeyPart {
  return typeof part === "string" || typeof part === "number" || typeof part === "bigint" ||
    typeof part === "boolean" || part instanceof Uint8Array;
}

function describeKey(key: DenoKvKey): string {
  return `[${
    key.map((part) =>
      typeof part === "bigint"
        ? `${part}n`
        : part instanceof Uint8Array
        ? "bytes"
        : JSON.stringify(part)
    ).join(", ")
  }]`;
}
