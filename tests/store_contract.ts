/**
 * The contract every `StateStore` backend must meet, as named checks that a test file turns
 * into tests (`redis_store_test.ts`, `deno_kv_store_test.ts`) or that a child process runs and
 * reports (`deno_kv_contract.ts` under Bun). Each check opens its own harness: several stores
 * on one backend and prefix, each over its own connection, plus one with another prefix.
 * Waits are real but bounded: polling with a deadline, never a fixed sleep.
 */

import assert from "node:assert/strict";
import type { StateStore, StoredState } from "../src/store.ts";

/** Stores on one backend, and how to let it go. */
export interface StoreHarness {
  /** At least three stores with the same prefix, each over its own connection or handle. */
  readonly stores: readonly [StateStore, StateStore, StateStore, ...StateStore[]];
  /** A store on the same backend with another prefix. */
  readonly otherPrefix: StateStore;
  /** Closes the connections; the stores themselves must have left nothing open. */
  close(): Promise<void>;
}

/** One check of the contract. */
export interface ContractCheck {
  readonly name: string;
  run(harness: StoreHarness): Promise<void>;
}

/** How long a change may take to reach a subscription. */
export const DELIVERY_MS = 5_000;

/** Resolves once `condition()` holds, polling every few ms; rejects after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string,
  timeoutMs = DELIVERY_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A breaker name no other check (or earlier run) uses. */
export function uniqueName(label: string): string {
  return `${label}-${crypto.randomUUID()}`;
}

/** What a subscription received, and its errors. */
export interface Recorder {
  readonly changes: StoredState[];
  readonly errors: unknown[];
  readonly onChange: (stored: StoredState) => void;
  readonly onError: (error: unknown) => void;
}

export function recorder(): Recorder {
  const changes: StoredState[] = [];
  const errors: unknown[] = [];
  return {
    changes,
    errors,
    onChange: (stored) => changes.push(stored),
    onError: (error) => errors.push(error),
  };
}

function subscribeTo(store: StateStore): NonNullable<StateStore["subscribe"]> {
  assert.equal(typeof store.subscribe, "function", "the store has subscribe()");
  return store.subscribe!.bind(store);
}

/**
 * Writes through `writer` until `seen` receives one of the writes: a new subscription may
 * miss writes made before its server side is in place. Returns the version last stored.
 */
export async function writeUntilSeen(
  writer: StateStore,
  name: string,
  seen: Recorder,
  startVersion: string | undefined,
): Promise<string> {
  let version = startVersion;
  const written = new Set<string>();
  // Only what arrives from now on: a version seen earlier may be given again (Redis restarted
  // empty counts from 1 again).
  const from = seen.changes.length;
  const deadline = Date.now() + DELIVERY_MS;
  while (!seen.changes.slice(from).some((change) => written.has(change.version))) {
    if (Date.now() > deadline) {
      throw new Error(`no write reached the subscription within ${DELIVERY_MS} ms`);
    }
    const stored = await writer.compareAndSet(name, version, `{"warmup":${written.size}}`);
    assert.ok(stored, "a write with the current version succeeds");
    version = stored.version;
    written.add(version);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return version!;
}

/** Text that a store must keep exactly: quotes, escapes, slashes, separators, non-ASCII. */
const AWKWARD_VALUE = JSON.stringify({
  text: 'quote " backslash \\ slash / tab \t newline \n nul \u0000 sep \u2028 é ☃ 😀',
  nested: { list: [1, 2.5, -0, null, true], empty: "" },
  long: "x".repeat(20_000),
});

export const storeContract: readonly ContractCheck[] = [
  {
    name: "read of a missing name is undefined",
    async run({ stores }) {
      assert.equal(await stores[0].read(uniqueName("missing")), undefined);
    },
  },
  {
    name: "compareAndSet with undefined creates the entry, which every connection reads",
    async run({ stores }) {
      const name = uniqueName("create");
      const stored = await stores[0].compareAndSet(name, undefined, '{"a":1}');
      assert.ok(stored);
      assert.equal(typeof stored.version, "string");
      assert.equal(stored.value, '{"a":1}');
      for (const store of stores) assert.deepEqual(await store.read(name), stored);
    },
  },
  {
    name: "compareAndSet with undefined on an existing entry returns undefined and writes nothing",
    async run({ stores }) {
      const name = uniqueName("exists");
      const first = await stores[0].compareAndSet(name, undefined, '{"a":1}');
      assert.ok(first);
      assert.equal(await stores[1].compareAndSet(name, undefined, '{"a":2}'), undefined);
      assert.deepEqual(await stores[2].read(name), first);
    },
  },
  {
    name: "compareAndSet with a stale version returns undefined and writes nothing",
    async run({ stores }) {
      const name = uniqueName("stale");
      const first = await stores[0].compareAndSet(name, undefined, '{"n":1}');
      assert.ok(first);
      const second = await stores[1].compareAndSet(name, first.version, '{"n":2}');
      assert.ok(second);
      assert.equal(await stores[2].compareAndSet(name, first.version, '{"n":3}'), undefined);
      assert.deepEqual(await stores[0].read(name), second);
      assert.equal(
        await stores[2].compareAndSet(name, "not-a-version", '{"n":4}'),
        undefined,
        "a version the store never gave matches nothing",
      );
      assert.deepEqual(await stores[0].read(name), second);
    },
  },
  {
    name: "every write gets a new version",
    async run({ stores }) {
      const name = uniqueName("versions");
      const versions: string[] = [];
      let version: string | undefined;
      for (let i = 0; i < 6; i++) {
        const store = stores[i % stores.length]!;
        const stored = await store.compareAndSet(name, version, `{"i":${i}}`);
        assert.ok(stored, `write ${i} with the current version`);
        assert.deepEqual(await stores[0].read(name), stored);
        version = stored.version;
        versions.push(version);
      }
      assert.equal(new Set(versions).size, versions.length, `distinct: ${versions.join(" ")}`);
      for (const earlier of versions.slice(0, -1)) {
        assert.equal(await stores[1].compareAndSet(name, earlier, "{}"), undefined);
      }
    },
  },
  {
    name: "concurrent compareAndSets with the same expected version: exactly one wins",
    async run({ stores }) {
      const name = uniqueName("race");
      let expected: string | undefined;
      for (const round of [1, 2, 3]) {
        const attempts = stores.flatMap((store, s) =>
          [0, 1, 2].map((i) =>
            store.compareAndSet(name, expected, `{"round":${round},"by":"${s}.${i}"}`)
          )
        );
        const results = await Promise.all(attempts);
        const winners = results.filter((result) => result !== undefined);
        assert.equal(winners.length, 1, `round ${round}: one of ${results.length} wins`);
        const winner = winners[0]!;
        assert.deepEqual(await stores[0].read(name), winner);
        assert.notEqual(winner.version, expected);
        expected = winner.version;
      }
    },
  },
  {
    name: "values are kept exactly, by read and by subscriptions",
    async run({ stores }) {
      const name = uniqueName("awkward");
      const seen = recorder();
      const subscription = subscribeTo(stores[0])(name, seen.onChange, seen.onError);
      try {
        const version = await writeUntilSeen(stores[1], name, seen, undefined);
        const stored = await stores[1].compareAndSet(name, version, AWKWARD_VALUE);
        assert.ok(stored);
        assert.deepEqual(await stores[2].read(name), {
          version: stored.version,
          value: AWKWARD_VALUE,
        });
        await waitFor(() => seen.changes.some((c) => c.version === stored.version), "delivery");
        const delivered = seen.changes.find((c) => c.version === stored.version)!;
        assert.equal(delivered.value, AWKWARD_VALUE);
        assert.deepEqual(seen.errors, []);
      } finally {
        await subscription[Symbol.asyncDispose]();
      }
    },
  },
  {
    name: "subscribe sees the writes made through another connection, in order",
    async run({ stores }) {
      const name = uniqueName("watch");
      const seen = recorder();
      const subscription = subscribeTo(stores[0])(name, seen.onChange, seen.onError);
      try {
        let version = await writeUntilSeen(stores[1], name, seen, undefined);
        const written: StoredState[] = [];
        for (let i = 0; i < 3; i++) {
          const stored = await stores[1 + (i % 2)]!.compareAndSet(name, version, `{"step":${i}}`);
          assert.ok(stored);
          written.push(stored);
          version = stored.version;
        }
        await waitFor(() => seen.changes.at(-1)?.version === version, "the last write delivered");
        const versions = seen.changes.map((change) => change.version);
        const start = versions.indexOf(written[0]!.version);
        assert.ok(start >= 0, "the first write after warming up is delivered");
        // A store may skip intermediate values (Deno KV's watch does) but never reorders them.
        const delivered = seen.changes.slice(start);
        const positions = delivered.map((change) =>
          written.findIndex((w) => w.version === change.version)
        );
        assert.ok(positions.every((p) => p >= 0), "only the written values");
        assert.deepEqual(positions, [...positions].sort((a, b) => a - b), "in write order");
        assert.deepEqual(delivered.at(-1), written.at(-1));
        assert.deepEqual(seen.errors, []);
      } finally {
        await subscription[Symbol.asyncDispose]();
      }
    },
  },
  {
    name: "a subscription sees only its own name",
    async run({ stores }) {
      const watched = uniqueName("mine");
      const other = uniqueName("theirs");
      const seen = recorder();
      const subscription = subscribeTo(stores[0])(watched, seen.onChange, seen.onError);
      try {
        const otherWrite = await stores[1].compareAndSet(other, undefined, '{"other":true}');
        assert.ok(otherWrite);
        await writeUntilSeen(stores[1], watched, seen, undefined);
        assert.ok(seen.changes.every((change) => change.value !== '{"other":true}'));
        assert.deepEqual(seen.errors, []);
      } finally {
        await subscription[Symbol.asyncDispose]();
      }
    },
  },
  {
    name: "disposing a subscription ends it; the store's other subscriptions go on",
    async run({ stores }) {
      const name = uniqueName("dispose");
      const subscribe = subscribeTo(stores[0]);
      const kept = recorder();
      const dropped = recorder();
      const keptSubscription = subscribe(name, kept.onChange, kept.onError);
      const droppedSubscription = subscribe(name, dropped.onChange, dropped.onError);
      try {
        let version = await writeUntilSeen(stores[1], name, kept, undefined);
        await waitFor(() => dropped.changes.some((c) => c.version === version), "both see it");
        await droppedSubscription[Symbol.asyncDispose]();
        const countAtDispose = dropped.changes.length;
        for (let i = 0; i < 2; i++) {
          const stored = await stores[2].compareAndSet(name, version, `{"after":${i}}`);
          assert.ok(stored);
          version = stored.version;
        }
        await waitFor(() => kept.changes.at(-1)?.version === version, "the kept one sees on");
        assert.equal(dropped.changes.length, countAtDispose, "nothing after disposal");
        assert.deepEqual([...kept.errors, ...dropped.errors], []);
      } finally {
        await droppedSubscription[Symbol.asyncDispose]();
        await keptSubscription[Symbol.asyncDispose]();
      }
    },
  },
  {
    name: "disposing twice is harmless, and a store subscribes again after its last disposal",
    async run({ stores }) {
      const name = uniqueName("again");
      const subscribe = subscribeTo(stores[0]);
      const first = recorder();
      const firstSubscription = subscribe(name, first.onChange, first.onError);
      let version = await writeUntilSeen(stores[1], name, first, undefined);
      await Promise.all([
        firstSubscription[Symbol.asyncDispose](),
        firstSubscription[Symbol.asyncDispose](),
      ]);
      await firstSubscription[Symbol.asyncDispose]();
      const second = recorder();
      const secondSubscription = subscribe(name, second.onChange, second.onError);
      try {
        version = await writeUntilSeen(stores[1], name, second, version);
        assert.ok(!first.changes.some((c) => c.version === version), "the first one is over");
        assert.deepEqual([...first.errors, ...second.errors], []);
      } finally {
        await secondSubscription[Symbol.asyncDispose]();
      }
    },
  },
  {
    name: "an onChange that throws is reported to onError and the subscription goes on",
    async run({ stores }) {
      const name = uniqueName("throws");
      const changes: StoredState[] = [];
      const errors: unknown[] = [];
      const boom = new Error("listener failed");
      const subscription = subscribeTo(stores[0])(name, (stored) => {
        changes.push(stored);
        throw boom;
      }, (error) => errors.push(error));
      try {
        const seen: Recorder = { changes, errors, onChange: () => {}, onError: () => {} };
        let version = await writeUntilSeen(stores[1], name, seen, undefined);
        const stored = await stores[1].compareAndSet(name, version, '{"next":1}');
        assert.ok(stored);
        version = stored.version;
        await waitFor(() => changes.at(-1)?.version === version, "delivered after the throw");
        assert.ok(errors.length >= 2 && errors.every((error) => error === boom));
      } finally {
        await subscription[Symbol.asyncDispose]();
      }
    },
  },
  {
    name: "stores with different prefixes do not see each other",
    async run({ stores, otherPrefix }) {
      const name = uniqueName("prefix");
      const ours = await stores[0].compareAndSet(name, undefined, '{"ours":true}');
      assert.ok(ours);
      assert.equal(await otherPrefix.read(name), undefined);
      const seen = recorder();
      const subscription = subscribeTo(otherPrefix)(name, seen.onChange, seen.onError);
      try {
        const theirs = await otherPrefix.compareAndSet(name, undefined, '{"theirs":true}');
        assert.ok(theirs, "the same name is free under the other prefix");
        assert.deepEqual(await stores[1].read(name), ours);
        assert.deepEqual(await otherPrefix.read(name), theirs);
        const version = await stores[1].compareAndSet(name, ours.version, '{"ours":2}');
        assert.ok(version);
        await writeUntilSeen(otherPrefix, name, seen, theirs.version);
        assert.ok(seen.changes.every((change) => !change.value.includes("ours")));
        assert.deepEqual(seen.errors, []);
      } finally {
        await subscription[Symbol.asyncDispose]();
      }
    },
  },
];
