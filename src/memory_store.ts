/**
 * `memoryStore()`: a `StateStore` in this process's memory. Breakers of the same name on it
 * share one circuit, as they would through Redis or Deno KV, without leaving the process:
 * for several breakers guarding one dependency from different modules, and for tests.
 *
 * @module
 */

import type { StateStore, StoredState } from "./store.ts";

/**
 * A store kept in memory, with compare-and-set and change notifications delivered on a
 * microtask (as a networked store delivers them later than the write).
 *
 * @example Two breakers sharing one circuit
 * ```ts
 * import { Breaker, memoryStore } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const store = memoryStore();
 * await using a = new Breaker({ name: "payments", store });
 * await using b = new Breaker({ name: "payments", store });
 * a.open();
 * await new Promise((resolve) => setTimeout(resolve, 0));
 * assert.equal(b.state, "open");
 * ```
 */
export function memoryStore(): StateStore {
  const entries = new Map<string, StoredState>();
  const listeners = new Map<string, Set<(stored: StoredState) => void>>();
  let writes = 0;
  return {
    read: (name) => Promise.resolve(entries.get(name)),
    compareAndSet(name, expectedVersion, value) {
      if (entries.get(name)?.version !== expectedVersion) return Promise.resolve(undefined);
      const stored: StoredState = { version: String(++writes), value };
      entries.set(name, stored);
      for (const listener of listeners.get(name) ?? []) {
        queueMicrotask(() => listener(stored));
      }
      return Promise.resolve(stored);
    },
    subscribe(name, onChange) {
      let forName = listeners.get(name);
      if (forName === undefined) listeners.set(name, forName = new Set());
      const listener = (stored: StoredState) => onChange(stored);
      forName.add(listener);
      return {
        [Symbol.asyncDispose]() {
          forName.delete(listener);
          if (forName.size === 0) listeners.delete(name);
          return Promise.resolve();
        },
      };
    },
  };
}
