/**
 * `redisStore(client)`: a {@linkcode StateStore} in Redis, so that breakers in several processes
 * (or on several machines) share one circuit. It takes the client you already have: Bun's
 * built-in `RedisClient`, `redis` (node-redis) or `ioredis`, or any object with
 * `send(command, args)`. The store adds no dependency and never closes your client.
 *
 * Layout: one hash per breaker name at `prefix + name`, with the fields `version` (an integer
 * counting the writes, as a string) and `value` (the snapshot's JSON). Compare-and-set is one
 * Lua script, run with `EVALSHA` (with `EVAL` when the server does not have it yet), so it is
 * atomic on the server; it also publishes `{"version","value"}` as JSON on the channel
 * `prefix + name`, which subscriptions listen to on one connection duplicated from the client.
 * A read is one script too: it returns the version alone when it is the one the breaker knows
 * (`readIfChanged`), and names a key of another type (or a hash without a value) as unreadable,
 * with a version that compare-and-set accepts to replace it.
 *
 * @example Breakers in several processes sharing one circuit through Redis (Bun)
 * ```ts ignore
 * import { RedisClient } from "bun";
 * import { Breaker } from "@circuit/breaker";
 * import { redisStore } from "@circuit/breaker/redis";
 *
 * const store = redisStore(new RedisClient("redis://127.0.0.1:6379"));
 * await using payments = new Breaker({ name: "payments", store });
 * ```
 *
 * @module
 */

import { describeValue } from "./core/describe_value.ts";
import { fail, optionsObject } from "./core/validate.ts";
import type { StateStore, StoredState } from "./store.ts";

export type { StateStore, StoredState } from "./store.ts";

/**
 * The least a Redis client must offer: one command at a time, arguments as strings. Bun's
 * `RedisClient` has it as it is; wrap any other client in it. A client given this way that
 * also has `duplicate()` returning a connection like Bun's (`subscribe(channel, listener)`,
 * `unsubscribe(channel)`, `close()`) gets subscriptions too.
 *
 * @example Adapting a client with another command method
 * ```ts
 * import { type RedisCommands, redisStore } from "@circuit/breaker/redis";
 * import assert from "node:assert/strict";
 *
 * // A stand-in for a client whose method is `command(args)`.
 * const client = { command: (_args: string[]): Promise<unknown> => Promise.resolve(null) };
 * const commands: RedisCommands = { send: (command, args) => client.command([command, ...args]) };
 * const store = redisStore(commands);
 * assert.equal(store.subscribe, undefined); // breakers sync on their interval
 * ```
 */
export interface RedisCommands {
  /** Runs one command, e.g. `send("HMGET", ["key", "field"])`, resolving with its reply. */
  send(command: string, args: string[]): Promise<unknown>;
}

/**
 * A client of the `redis` package (node-redis v4 and later), as far as the store uses it.
 *
 * @example
 * ```ts ignore
 * import { createClient } from "redis";
 * import { redisStore } from "@circuit/breaker/redis";
 *
 * const client = await createClient({ url: "redis://127.0.0.1:6379" }).connect();
 * const store = redisStore(client);
 * ```
 */
export interface NodeRedisClientLike {
  /** Runs one command given as an array, e.g. `["HMGET", "key", "field"]`. */
  sendCommand(args: string[]): Promise<unknown>;
}

/**
 * A client of the `ioredis` package, as far as the store uses it.
 *
 * @example
 * ```ts ignore
 * import { Redis } from "ioredis";
 * import { redisStore } from "@circuit/breaker/redis";
 *
 * const store = redisStore(new Redis("redis://127.0.0.1:6379"));
 * ```
 */
export interface IoRedisClientLike {
  /** Runs one command, e.g. `call("HMGET", "key", "field")`. */
  call(command: string, ...args: string[]): Promise<unknown>;
}

/**
 * What {@linkcode redisStore} accepts: Bun's `RedisClient`, a `redis` or `ioredis` client, or
 * {@linkcode RedisCommands}. Which one it is is told by its methods: `call` (ioredis), then
 * `sendCommand` (node-redis), then `send` (Bun, or your own).
 *
 * @example
 * ```ts
 * import type { RedisStoreClient } from "@circuit/breaker/redis";
 * const client: RedisStoreClient = { send: () => Promise.resolve(null) };
 * ```
 */
export type RedisStoreClient = RedisCommands | NodeRedisClientLike | IoRedisClientLike;

/**
 * Options of {@linkcode redisStore}.
 *
 * @example One Redis shared by two applications
 * ```ts
 * import type { RedisStoreOptions } from "@circuit/breaker/redis";
 * const options: RedisStoreOptions = { prefix: "billing:circuit:" };
 * ```
 */
export interface RedisStoreOptions {
  /**
   * Starts every key and channel name of this store: a breaker named `db` is kept at
   * `prefix + "db"`. Stores with different prefixes never see each other's circuits.
   *
   * @default {"circuit:"}
   */
  readonly prefix?: string;
}

/**
 * A {@linkcode StateStore} in Redis. Breakers with the same name on stores with the same prefix
 * (in any process) share one circuit. Subscriptions, when the client has `duplicate()`, share
 * one subscriber connection per store, opened at the first and closed with the last; your own
 * client is never closed. Requires Redis 4 or later (or a compatible server with Lua scripts).
 *
 * @throws {TypeError} When `client` is neither a Redis client (Bun's `RedisClient`, redis, ioredis)
 * nor an object with `send()`, or `prefix` is not a string.
 *
 * @example Shared circuits with node-redis
 * ```ts ignore
 * import { createClient } from "redis";
 * import { Breaker } from "@circuit/breaker";
 * import { redisStore } from "@circuit/breaker/redis";
 *
 * const client = await createClient({ url: process.env.REDIS_URL }).connect();
 * const store = redisStore(client, { prefix: "shop:circuit:" });
 * await using db = new Breaker({ name: "db", store });
 * ```
 */
export function redisStore(client: RedisStoreClient, options?: RedisStoreOptions): StateStore {
  const connection = connectionOf(client);
  const prefix = prefixOf(options);
  const readIfChanged = async (
    name: string,
    knownVersion: string | undefined,
  ): Promise<StoredState | "unchanged" | undefined> => {
    const key = prefix + name;
    const args = ["1", key];
    if (knownVersion !== undefined) args.push(knownVersion);
    const reply = await runScript(connection, READ_SCRIPT, args);
    if (reply === null || reply === undefined) return undefined;
    if (reply === 1) return "unchanged";
    if (!Array.isArray(reply)) throw unexpectedReply("the read script", reply);
    const version = textOf(reply[0]);
    if (version === undefined) throw unexpectedReply("the read script", reply);
    if (reply.length === 1) {
      throw unreadableEntry(
        `Redis store: the key ${JSON.stringify(key)} is a ${version.slice(5)}, not a hash`,
        version,
      );
    }
    const value = textOf(reply[1]);
    if (value === undefined) {
      throw unreadableEntry(
        `Redis store: the hash at ${JSON.stringify(key)} has a version (${version}) but no value`,
        version,
      );
    }
    return { version, value };
  };
  const read = async (name: string): Promise<StoredState | undefined> => {
    const stored = await readIfChanged(name, undefined);
    return stored === "unchanged" ? undefined : stored;
  };
  const compareAndSet = async (
    name: string,
    expectedVersion: string | undefined,
    value: string,
  ): Promise<StoredState | undefined> => {
    const key = prefix + name;
    // The expected version is the last argument, left out when nothing is expected to be
    // stored: then no string can stand for "absent" by mistake.
    const args = ["1", key, value, key];
    if (expectedVersion !== undefined) args.push(expectedVersion);
    const reply = await runScript(connection, COMPARE_AND_SET_SCRIPT, args);
    if (reply === null || reply === undefined) return undefined;
    const version = textOf(reply);
    if (version === undefined) throw unexpectedReply("the compare-and-set script", reply);
    return { version, value };
  };
  const { openSubscriber } = connection;
  if (openSubscriber === undefined) return { read, readIfChanged, compareAndSet };
  const subscriptions = new SubscriptionHub(openSubscriber);
  return {
    read,
    readIfChanged,
    compareAndSet,
    subscribe: (name, onChange, onError) =>
      subscriptions.subscribe(prefix + name, onChange, onError),
  };
}

// ---------------------------------------------------------------- scripts

/** A Lua script, run by its SHA1 once the server knows it. */
interface Script {
  readonly source: string;
  sha: Promise<string> | undefined;
}

/**
 * KEYS[1]: the breaker's hash. ARGV[1]: the version the caller knows, if any. Returns nil when
 * nothing is stored (no key, or a hash without a version, which the next write replaces), 1
 * when the version is still ARGV[1], `{version, value}` otherwise (value nil when the hash has
 * none), or `{"type:<type>"}` for a key of another type: that string stands for its version,
 * which the compare-and-set script accepts to replace it.
 */
const READ_SCRIPT: Script = {
  source: `local kind = redis.call('TYPE', KEYS[1])['ok']
if kind == 'none' then return false end
if kind ~= 'hash' then
  local version = 'type:' .. kind
  if version == ARGV[1] then return 1 end
  return { version }
end
local version = redis.call('HGET', KEYS[1], 'version')
if not version then return false end
if version == ARGV[1] then return 1 end
return { version, redis.call('HGET', KEYS[1], 'value') }
`,
  sha: undefined,
};

/**
 * KEYS[1]: the breaker's hash. ARGV[1]: the new value; ARGV[2]: the channel to announce it on;
 * ARGV[3]: the version the caller expects, absent when it expects nothing stored. Returns the
 * new version, or nil (false) when the stored version is another one. A key of another type
 * has the version `type:<type>` (see the read script) and is replaced by the hash.
 */
const COMPARE_AND_SET_SCRIPT: Script = {
  source: `local kind = redis.call('TYPE', KEYS[1])['ok']
local current = false
if kind == 'hash' then
  current = redis.call('HGET', KEYS[1], 'version')
elseif kind ~= 'none' then
  current = 'type:' .. kind
end
if current ~= (ARGV[3] or false) then return false end
if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
local version = string.format('%d', (tonumber(current) or 0) + 1)
redis.call('HSET', KEYS[1], 'version', version, 'value', ARGV[1])
redis.call('PUBLISH', ARGV[2], cjson.encode({ version = version, value = ARGV[1] }))
return version
`,
  sha: undefined,
};

/** Runs a script by its SHA1, sending it whole only when the server does not know it. */
async function runScript(connection: Connection, script: Script, args: string[]): Promise<unknown> {
  script.sha ??= sha1Hex(script.source);
  try {
    return await connection.send("EVALSHA", [await script.sha, ...args]);
  } catch (error) {
    // The server's script cache is empty after a restart or SCRIPT FLUSH; EVAL fills it again.
    if (!/\bNOSCRIPT\b/.test(messageOf(error))) throw error;
    return await connection.send("EVAL", [script.source, ...args]);
  }
}

/** An entry that is there but is no value of this store: see `StateStore.read`. */
function unreadableEntry(message: string, storedVersion: string): TypeError {
  return Object.assign(new TypeError(message), { storedVersion });
}

async function sha1Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

// ---------------------------------------------------------------- clients

/** One client behind one shape: commands, and a way to open a subscriber connection if any. */
interface Connection {
  send(command: string, args: string[]): Promise<unknown>;
  readonly openSubscriber: OpenSubscriber | undefined;
}

/** What a subscriber connection tells its store. */
interface SubscriberEvents {
  message(channel: string, message: string): void;
  /** The connection failed or was lost; the client tries again on its own. */
  error(error: unknown): void;
  /** The connection is (again) up, with its channels subscribed. */
  ready(): void;
  /** The connection closed for good (the client gave up), not because the store closed it. */
  end(error: unknown): void;
}

/** A connection in subscriber mode, opened from the user's client. */
interface Subscriber {
  subscribe(channel: string): Promise<void>;
  unsubscribe(channel: string): Promise<void>;
  /** Closes the connection at once, also while it is still connecting. Never rejects. */
  close(): Promise<void>;
}

type OpenSubscriber = (events: SubscriberEvents) => Subscriber;

type Listener = (...args: never[]) => unknown;

/** The members of the clients the store calls, all optional until checked. */
interface ClientMembers {
  call?: unknown;
  sendCommand?: unknown;
  send?: unknown;
  duplicate?: unknown;
}

function connectionOf(client: unknown): Connection {
  if (typeof client === "object" && client !== null) {
    const members = client as ClientMembers;
    const duplicate = typeof members.duplicate === "function"
      ? () => (members.duplicate as () => unknown).call(client)
      : undefined;
    if (typeof members.call === "function") {
      const call = members.call as (command: string, ...args: string[]) => Promise<unknown>;
      return {
        send: (command, args) => call.call(client, command, ...args),
        openSubscriber: duplicate && ((events) => ioRedisSubscriber(duplicate(), events)),
      };
    }
    if (typeof members.sendCommand === "function") {
      const sendCommand = members.sendCommand as (args: string[]) => Promise<unknown>;
      return {
        send: (command, args) => sendCommand.call(client, [command, ...args]),
        openSubscriber: duplicate && ((events) => nodeRedisSubscriber(duplicate(), events)),
      };
    }
    if (typeof members.send === "function") {
      const send = members.send as (command: string, args: string[]) => Promise<unknown>;
      return {
        send: (command, args) => send.call(client, command, args),
        openSubscriber: duplicate && ((events) => bunSubscriber(duplicate(), events)),
      };
    }
  }
  fail(
    "Cannot create Redis store",
    "client",
    "a Redis client (Bun's RedisClient, redis or ioredis) or an object with send()",
    client,
    true,
  );
}

/** A duplicated ioredis client: it connects by itself and resubscribes after a reconnect. */
interface IoRedisSubscriber {
  readonly status?: string;
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  on(event: string, listener: Listener): unknown;
  once(event: string, listener: Listener): unknown;
  disconnect(): void;
}

function ioRedisSubscriber(duplicated: unknown, events: SubscriberEvents): Subscriber {
  const sub = duplicated as IoRedisSubscriber;
  let closing = false;
  sub.on("message", (channel: unknown, message: unknown) => {
    events.message(String(channel), String(message));
  });
  sub.on("error", (error: unknown) => events.error(error));
  sub.on("ready", () => events.ready());
  sub.on("end", () => {
    if (!closing) events.end(new Error("The Redis subscriber connection closed"));
  });
  return {
    subscribe: async (channel) => {
      await sub.subscribe(channel);
    },
    unsubscribe: async (channel) => {
      await sub.unsubscribe(channel);
    },
    close() {
      closing = true;
      // Between two connection attempts there is no socket: disconnect() only cancels the next
      // attempt and no "end" follows. Otherwise "end" says the socket is gone.
      const gone = sub.status === "end" || sub.status === "reconnecting"
        ? Promise.resolve()
        : new Promise<void>((resolve) => sub.once("end", () => resolve()));
      sub.disconnect();
      return gone;
    },
  };
}

/** A duplicated node-redis client: it needs connect() and resubscribes after a reconnect. */
interface NodeRedisSubscriber {
  connect(): Promise<unknown>;
  subscribe(
    channel: string,
    listener: (message: string, channel: string) => void,
  ): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  on(event: string, listener: Listener): unknown;
  /** v5 and later: closes at once. */
  destroy?(): void;
  /** v4: closes at once (deprecated in v5 in favour of destroy). */
  disconnect?(): Promise<unknown>;
  /** v5 and later: closes after the pending commands. */
  close?(): Promise<unknown>;
  /** v4: closes after the pending commands. */
  quit?(): Promise<unknown>;
}

function nodeRedisSubscriber(duplicated: unknown, events: SubscriberEvents): Subscriber {
  const sub = duplicated as NodeRedisSubscriber;
  let closing = false;
  const listener = (message: string, channel: string) => events.message(channel, message);
  // Without an "error" listener, node-redis would throw its connection errors as uncaught.
  sub.on("error", (error: unknown) => events.error(error));
  sub.on("ready", () => events.ready());
  sub.on("end", () => {
    if (!closing) events.end(new Error("The Redis subscriber connection closed"));
  });
  const connected = sub.connect();
  // Rejects when closed while connecting; subscribe() reports it when it matters.
  connected.catch(() => {});
  return {
    subscribe: async (channel) => {
      await connected;
      await sub.subscribe(channel, listener);
    },
    unsubscribe: async (channel) => {
      await connected;
      await sub.unsubscribe(channel);
    },
    async close() {
      closing = true;
      // At once rather than gracefully: a graceful close waits for a server that may be down.
      try {
        if (typeof sub.destroy === "function") sub.destroy();
        else if (typeof sub.disconnect === "function") await sub.disconnect();
        else if (typeof sub.close === "function") await sub.close();
        else if (typeof sub.quit === "function") await sub.quit();
      } catch {
        // Already closed: nothing is left open.
      }
    },
  };
}

/** A connection duplicated from Bun's RedisClient (or a client of the same shape). */
interface BunSubscriber {
  readonly connected?: boolean;
  onconnect?: (() => void) | null;
  onclose?: ((error: unknown) => void) | null;
  subscribe(
    channel: string,
    listener: (message: string, channel: string) => void,
  ): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  send?(command: string, args: string[]): Promise<unknown>;
  close(): void;
}

function bunSubscriber(duplicated: unknown, events: SubscriberEvents): Subscriber {
  let closing = false;
  const channels = new Set<string>();
  const listener = (message: string, channel: string) => events.message(channel, message);
  const opened = Promise.resolve(duplicated as BunSubscriber | Promise<BunSubscriber>).then(
    (sub) => {
      if (closing) {
        sub.close();
        throw new Error("The Redis subscriber connection was closed while opening");
      }
      let wasConnected = sub.connected !== false;
      // Bun's client reconnects by itself but neither reports the loss nor subscribes again:
      // the store does both when the connection comes back.
      sub.onconnect = () => {
        if (closing) return;
        if (wasConnected) {
          events.error(
            new Error(
              "The Redis subscriber connection was lost and reconnected: changes published meanwhile were missed",
            ),
          );
          if (channels.size > 0 && typeof sub.send === "function") {
            sub.send("SUBSCRIBE", [...channels]).then(() => events.ready(), events.error);
            return;
          }
        }
        wasConnected = true;
        events.ready();
      };
      sub.onclose = (error: unknown) => {
        if (!closing) events.end(error ?? new Error("The Redis subscriber connection closed"));
      };
      return sub;
    },
  );
  opened.catch(() => {});
  return {
    subscribe: async (channel) => {
      channels.add(channel);
      await (await opened).subscribe(channel, listener);
    },
    unsubscribe: async (channel) => {
      channels.delete(channel);
      await (await opened).unsubscribe(channel);
    },
    async close() {
      closing = true;
      try {
        (await opened).close();
      } catch {
        // Never opened, or already closed: nothing is left open.
      }
    },
  };
}

// ---------------------------------------------------------------- subscriptions

interface ChangeListener {
  readonly onChange: (stored: StoredState) => void;
  readonly onError: (error: unknown) => void;
}

/**
 * The subscriptions of one store, on one subscriber connection opened with the first and
 * closed with the last, so that an idle store holds no connection.
 */
class SubscriptionHub {
  readonly #open: OpenSubscriber;
  readonly #listeners = new Map<string, Set<ChangeListener>>();
  #subscriber: Subscriber | undefined;
  /** Errors are reported once per outage, not at every reconnection attempt. */
  #failing = false;

  constructor(open: OpenSubscriber) {
    this.#open = open;
  }

  subscribe(
    channel: string,
    onChange: (stored: StoredState) => void,
    onError: (error: unknown) => void,
  ): AsyncDisposable {
    const listener: ChangeListener = { onChange, onError };
    let listeners = this.#listeners.get(channel);
    const first = listeners === undefined;
    if (listeners === undefined) this.#listeners.set(channel, listeners = new Set());
    listeners.add(listener);
    if (this.#subscriber === undefined) {
      // A new connection (the first, or one after the last gave up) subscribes to every
      // channel listened to.
      const subscriber = this.#connect();
      for (const listened of this.#listeners.keys()) this.#subscribeChannel(subscriber, listened);
    } else if (first) {
      this.#subscribeChannel(this.#subscriber, channel);
    }
    let disposed: Promise<void> | undefined;
    return {
      [Symbol.asyncDispose]: () => disposed ??= this.#remove(channel, listener),
    };
  }

  #connect(): Subscriber {
    const subscriber: Subscriber = this.#open({
      message: (channel, message) => {
        if (this.#subscriber === subscriber) this.#deliver(channel, message);
      },
      error: (error) => {
        if (this.#subscriber === subscriber) this.#fail(error);
      },
      ready: () => {
        if (this.#subscriber === subscriber) this.#failing = false;
      },
      end: (error) => {
        if (this.#subscriber !== subscriber) return;
        this.#subscriber = undefined;
        this.#fail(error);
        this.#failing = false;
      },
    });
    this.#subscriber = subscriber;
    return subscriber;
  }

  #subscribeChannel(subscriber: Subscriber, channel: string): void {
    subscriber.subscribe(channel).catch((error) => {
      if (this.#subscriber !== subscriber) return;
      for (const listener of this.#listeners.get(channel) ?? []) report(listener, error);
    });
  }

  async #remove(channel: string, listener: ChangeListener): Promise<void> {
    const listeners = this.#listeners.get(channel);
    if (listeners === undefined || !listeners.delete(listener) || listeners.size > 0) return;
    this.#listeners.delete(channel);
    const subscriber = this.#subscriber;
    if (subscriber === undefined) return;
    if (this.#listeners.size === 0) {
      this.#subscriber = undefined;
      this.#failing = false;
      await subscriber.close();
      return;
    }
    // Not awaited: while the server is down it would wait for the reconnection. A failed
    // UNSUBSCRIBE only leaves messages coming that no listener receives.
    subscriber.unsubscribe(channel).catch(() => {});
  }

  #deliver(channel: string, message: string): void {
    const listeners = this.#listeners.get(channel);
    if (listeners === undefined) return;
    let stored: StoredState;
    try {
      stored = storedStateOf(JSON.parse(message));
    } catch {
      const error = new Error(
        `Redis store: unexpected message on channel ${JSON.stringify(channel)}: ${
          describeValue(message)
        }`,
      );
      for (const listener of [...listeners]) report(listener, error);
      return;
    }
    for (const listener of [...listeners]) {
      try {
        listener.onChange(stored);
      } catch (error) {
        report(listener, error);
      }
    }
  }

  #fail(error: unknown): void {
    if (this.#failing) return;
    this.#failing = true;
    for (const listeners of [...this.#listeners.values()]) {
      for (const listener of [...listeners]) report(listener, error);
    }
  }
}

/** Hands an error to a subscription's onError; one that throws itself goes to the console. */
function report(listener: ChangeListener, error: unknown): void {
  try {
    listener.onError(error);
  } catch (thrown) {
    console.error("Redis store: a subscription's onError threw", thrown);
  }
}

function storedStateOf(message: unknown): StoredState {
  const { version, value } = (message ?? {}) as { version?: unknown; value?: unknown };
  if (typeof version !== "string" || typeof value !== "string") throw new TypeError();
  return { version, value };
}

// ---------------------------------------------------------------- arguments and replies

function prefixOf(options: unknown): string {
  if (options === undefined) return "circuit:";
  optionsObject("Cannot create Redis store", options);
  const { prefix = "circuit:" } = options as { prefix?: unknown };
  if (typeof prefix !== "string") {
    fail("Cannot create Redis store", "prefix", "a string", prefix, true);
  }
  return prefix;
}

/** A bulk string reply as text: clients give strings, or bytes when set up for buffers. */
function textOf(reply: unknown): string | undefined {
  if (typeof reply === "string") return reply;
  if (reply instanceof Uint8Array) return new TextDecoder().decode(reply);
  return undefined;
}

function unexpectedReply(command: string, reply: unknown): Error {
  return new TypeError(`Redis store: unexpected reply to ${command}: ${describeValue(reply)}`);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
