// redisStore against a real, private redis-server (see redis_server.ts), for each client the
// runtime has: node-redis and ioredis everywhere, Bun's RedisClient under Bun. The store
// contract (store_contract.ts), then what is Redis's own: the layout, the script cache, the
// shared subscriber connection, outages, leaks and bad arguments.
import assert from "node:assert/strict";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type RedisCommands, redisStore } from "../src/redis_store.ts";
import type { StateStore } from "../src/store.ts";
import { PROBE_DONE, spawnProbe, spawnSanitizerProbe } from "./leak_probe.ts";
import { type ClientKind, clientKinds, type OpenClient } from "./redis_clients.ts";
import { describeWithRedis, type RedisServer } from "./redis_server.ts";
import {
  recorder,
  storeContract,
  type StoreHarness,
  uniqueName,
  waitFor,
  writeUntilSeen,
} from "./store_contract.ts";
import { describe, it, pendingTimerCount } from "./timer_leaks.ts";

/** Deno: this runtime, or the one from npm (node_modules/.bin) under Bun. */
const DENO = typeof Deno === "undefined"
  ? fileURLToPath(new URL("../node_modules/.bin/deno", import.meta.url))
  : Deno.execPath();

/** Opens `count` clients of a kind, closing them all after `body`. */
async function withClients(
  kind: ClientKind,
  server: RedisServer,
  count: number,
  body: (clients: OpenClient[]) => Promise<void>,
): Promise<void> {
  const clients: OpenClient[] = [];
  try {
    for (let i = 0; i < count; i++) clients.push(await kind.open(server.url));
    await body(clients);
  } finally {
    for (const client of clients) await client.close();
  }
}

/** Three stores on three connections under one fresh prefix, and one under another prefix. */
async function withHarness(
  kind: ClientKind,
  server: RedisServer,
  body: (harness: StoreHarness) => Promise<void>,
): Promise<void> {
  await withClients(kind, server, 3, async ([a, b, c]) => {
    const prefix = `test:${crypto.randomUUID()}:`;
    await body({
      stores: [
        redisStore(a!.client, { prefix }),
        redisStore(b!.client, { prefix }),
        redisStore(c!.client, { prefix }),
      ],
      otherPrefix: redisStore(b!.client, { prefix: `other:${prefix}` }),
      close: () => Promise.resolve(),
    });
  });
}

/** The connections the server has open now: their ids and how many channels each listens to. */
async function connections(client: OpenClient): Promise<{ id: number; channels: number }[]> {
  const list = String(await client.command("CLIENT", "LIST"));
  return list.split("\n").filter((line) => line.trim() !== "").map((line) => ({
    id: Number(/\bid=(\d+)/.exec(line)?.[1]),
    channels: Number(/\bsub=(\d+)/.exec(line)?.[1]),
  }));
}

/** Polls an asynchronous condition every 10 ms until it holds; fails after 5 s. */
async function pollUntil(condition: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after 5000 ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Waits for the clients' own timers to run out after an outage: ioredis's disconnect() of a
 * connection whose socket is already gone arms a destroy timer (its disconnectTimeout, 2 s)
 * that nothing clears early.
 */
async function libraryTimersEnded(): Promise<void> {
  await waitFor(() => pendingTimerCount() === 0, "the clients' timers end", 5_000);
}

async function subscriberCount(client: OpenClient, channel: string): Promise<number> {
  const reply = await client.command("PUBSUB", "NUMSUB", channel) as unknown[];
  return Number(reply[1]);
}

describeWithRedis("redisStore", (server, it) => {
  for (const kind of clientKinds()) {
    describe(`with ${kind.name}`, () => {
      for (const check of storeContract) {
        it(check.name, () => withHarness(kind, server(), check.run));
      }

      it("keeps a name in one hash (version, value) and announces writes on prefix + name", async () => {
        await withClients(kind, server(), 1, async ([client]) => {
          const prefix = `layout:${crypto.randomUUID()}:`;
          const store = redisStore(client!.client, { prefix });
          const stored = await store.compareAndSet("db", undefined, '{"state":"open"}');
          assert.ok(stored);
          const fields = await client!.command("HMGET", `${prefix}db`, "version", "value");
          assert.deepEqual(fields, [stored.version, '{"state":"open"}']);
          assert.equal(await client!.command("TYPE", `${prefix}db`), "hash");
          const next = await store.compareAndSet("db", stored.version, "{}");
          assert.equal(
            Number(next?.version),
            Number(stored.version) + 1,
            "an incrementing integer",
          );
        });
      });

      it("runs the script with EVAL when the server has none cached (restart, SCRIPT FLUSH)", async () => {
        await withClients(kind, server(), 1, async ([client]) => {
          const store = redisStore(client!.client, { prefix: `flush:${crypto.randomUUID()}:` });
          const first = await store.compareAndSet("db", undefined, "{}");
          assert.ok(first);
          await client!.command("SCRIPT", "FLUSH");
          const second = await store.compareAndSet("db", first.version, '{"n":2}');
          assert.ok(second, "the write goes through after the cache was flushed");
          assert.equal(await store.compareAndSet("db", first.version, "{}"), undefined);
          assert.deepEqual(await store.read("db"), second);
        });
      });

      it("shares one subscriber connection per store, closed with its last subscription; the client stays open", async () => {
        await withClients(kind, server(), 2, async ([observer, user]) => {
          const prefix = `conn:${crypto.randomUUID()}:`;
          const store = redisStore(user!.client, { prefix });
          const writer = redisStore(observer!.client, { prefix });
          // Connections opened from here on have greater ids than any open now (the server
          // numbers them in order), whatever earlier tests leave closing meanwhile.
          const since = Math.max(...(await connections(observer!)).map((c) => c.id));
          const opened = async () => (await connections(observer!)).filter((c) => c.id > since);
          const a = recorder();
          const b = recorder();
          const first = store.subscribe!("a", a.onChange, a.onError);
          const second = store.subscribe!("b", b.onChange, b.onError);
          const third = store.subscribe!("a", a.onChange, a.onError);
          await writeUntilSeen(writer, "a", a, undefined);
          await writeUntilSeen(writer, "b", b, undefined);
          assert.deepEqual(
            (await opened()).map((c) => c.channels),
            [2],
            "one new connection, listening to both channels",
          );
          assert.equal(await subscriberCount(observer!, `${prefix}a`), 1);
          assert.equal(await subscriberCount(observer!, `${prefix}b`), 1);
          await second[Symbol.asyncDispose]();
          await pollUntil(async () => await subscriberCount(observer!, `${prefix}b`) === 0, "b");
          assert.equal(await subscriberCount(observer!, `${prefix}a`), 1, "a stays");
          await first[Symbol.asyncDispose]();
          assert.equal((await opened()).length, 1, "open while a subscription is left");
          await third[Symbol.asyncDispose]();
          await pollUntil(async () => (await opened()).length === 0, "the connection closed");
          assert.equal(await subscriberCount(observer!, `${prefix}a`), 0);
          assert.equal(await user!.command("PING"), "PONG", "the user's client still works");
          assert.deepEqual([...a.errors, ...b.errors], []);
        });
      });

      it("reports a lost subscriber connection to onError and delivers again once the server is back", async () => {
        await withClients(kind, server(), 2, async ([subscribing, writing]) => {
          const prefix = `outage:${crypto.randomUUID()}:`;
          const store = redisStore(subscribing!.client, { prefix });
          const writer = redisStore(writing!.client, { prefix });
          const seen = recorder();
          const subscription = store.subscribe!("db", seen.onChange, seen.onError);
          try {
            await writeUntilSeen(writer, "db", seen, undefined);
            await server().stop();
            if (kind.reportsLossAtOnce) {
              await waitFor(() => seen.errors.length > 0, "onError while the server is down");
            }
            await server().restart();
            await waitFor(() => seen.errors.length > 0, "onError by the time it is back", 10_000);
            const errorsAfterOutage = seen.errors.length;
            // The server came back empty: the name starts over.
            await writeUntilSeen(writer, "db", seen, undefined);
            assert.ok(errorsAfterOutage <= 2, `one report per outage, got ${errorsAfterOutage}`);
            assert.equal(seen.errors.length, errorsAfterOutage, "no error once it is back");
          } finally {
            await subscription[Symbol.asyncDispose]();
          }
        });
        await libraryTimersEnded();
      });

      it("disposes at once while the server is down", async () => {
        await withClients(kind, server(), 1, async ([client]) => {
          const store = redisStore(client!.client, { prefix: `down:${crypto.randomUUID()}:` });
          const seen = recorder();
          await server().stop();
          try {
            const subscription = store.subscribe!("db", seen.onChange, seen.onError);
            await new Promise((resolve) => setTimeout(resolve, 50));
            const started = Date.now();
            await subscription[Symbol.asyncDispose]();
            assert.ok(Date.now() - started < 1_000, `disposed in ${Date.now() - started} ms`);
          } finally {
            await server().restart();
          }
        });
        await libraryTimersEnded();
      });

      it("leaves nothing open: a child process using the store exits by itself", async () => {
        const runtime = typeof Deno === "undefined"
          ? [process.execPath]
          : [process.execPath, "run", "--allow-all"];
        const result = await spawnProbe(runtime, ["redis", kind.name, server().url], 20_000);
        assert.ok(result.exited, `the probe did not exit within 20 s:\n${result.output}`);
        assert.equal(result.code, 0, result.output);
        assert.ok(result.output.includes(PROBE_DONE), result.output);
      });

      if (kind.name !== "bun") {
        it("leaves nothing open: Deno's sanitizers pass on the store's work (child deno test)", async () => {
          const result = await spawnSanitizerProbe(
            DENO,
            ["redis", kind.name, server().url],
            30_000,
          );
          assert.ok(result.exited, `deno test did not end within 30 s:\n${result.output}`);
          assert.equal(result.code, 0, result.output);
          assert.match(result.output, /ok \| 2 passed \| 0 failed/, result.output);
        });
      }
    });
  }

  describe("with a client given as send()", () => {
    it("works without subscribe() when the client cannot duplicate itself", async () => {
      await withClients(clientKinds()[0]!, server(), 1, async ([open]) => {
        const commands: RedisCommands = {
          send: (command, args) => open!.command(command, ...args),
        };
        const store: StateStore = redisStore(commands, { prefix: `send:${crypto.randomUUID()}:` });
        assert.equal(store.subscribe, undefined);
        const name = uniqueName("send");
        assert.equal(await store.read(name), undefined);
        const stored = await store.compareAndSet(name, undefined, "{}");
        assert.ok(stored);
        assert.equal(await store.compareAndSet(name, undefined, "{}"), undefined);
        assert.deepEqual(await store.read(name), stored);
      });
    });
  });
});

describe("redisStore arguments", () => {
  const commands: RedisCommands = { send: () => Promise.resolve(null) };
  const clientMessage =
    'Cannot create Redis store: "client" must be a Redis client (Bun\'s RedisClient, redis or ioredis) or an object with send(), received';

  it("rejects what is not a client, saying what it received", () => {
    for (
      const [client, received] of [
        [42, "42"],
        [null, "null"],
        [undefined, "undefined"],
        ["redis://localhost", '"redis://localhost"'],
        [{}, "an object"],
        [{ send: "no" }, "an object"],
      ] as const
    ) {
      assert.throws(
        () => redisStore(client as unknown as RedisCommands),
        { name: "TypeError", message: `${clientMessage} ${received}` },
      );
    }
  });

  it("rejects a prefix that is not a string and options that are not an object", () => {
    assert.throws(() => redisStore(commands, { prefix: 42 as unknown as string }), {
      name: "TypeError",
      message: 'Cannot create Redis store: "prefix" must be a string, received 42',
    });
    assert.throws(() => redisStore(commands, { prefix: ["a"] as unknown as string }), {
      message: 'Cannot create Redis store: "prefix" must be a string, received an array of 1',
    });
    assert.throws(() => redisStore(commands, "circuit:" as never), {
      message: 'Cannot create Redis store: "options" must be an object, received "circuit:"',
    });
  });

  it("uses circuit: as the default prefix, and the given one as is", async () => {
    const keys: string[] = [];
    const recording: RedisCommands = {
      send: (_command, args) => {
        // EVALSHA sha numkeys key ...
        keys.push(args[2]!);
        return Promise.resolve(null);
      },
    };
    await redisStore(recording).read("db");
    await redisStore(recording, { prefix: "" }).read("db");
    await redisStore(recording, { prefix: "app/" }).read("db");
    assert.deepEqual(keys, ["circuit:db", "db", "app/db"]);
  });

  it("rejects an unexpected reply instead of guessing", async () => {
    const store = redisStore({ send: () => Promise.resolve(7) });
    await assert.rejects(store.read("db"), {
      name: "TypeError",
      message: "Redis store: unexpected reply to the read script: 7",
    });
  });
});
