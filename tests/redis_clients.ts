/**
 * The Redis clients the store supports, as the tests open them: node-redis and ioredis on every
 * runtime, Bun's built-in RedisClient under Bun. Each comes with a raw command function for
 * assertions and a close that leaves nothing open.
 */

import { Redis } from "ioredis";
import { createClient } from "redis";
import type { RedisStoreClient } from "../src/redis_store.ts";

/** An open client of one kind. */
export interface OpenClient {
  readonly client: RedisStoreClient;
  /** Runs a raw command on this client, e.g. `command("PUBSUB", "NUMSUB", "ch")`. */
  command(command: string, ...args: string[]): Promise<unknown>;
  /** Errors the client reported on its own (connection losses). */
  readonly errors: unknown[];
  close(): Promise<void>;
}

/** A kind of client, and what differs between kinds. */
export interface ClientKind {
  readonly name: "node-redis" | "ioredis" | "bun";
  /** Whether losing the subscriber connection is reported at once (Bun's: at its return). */
  readonly reportsLossAtOnce: boolean;
  open(url: string): Promise<OpenClient>;
}

/** Just what the tests use of Bun's RedisClient (Bun's types are not installed). */
interface BunRedisClient {
  send(command: string, args: string[]): Promise<unknown>;
  duplicate(): Promise<unknown>;
  close(): void;
}

declare const Bun: { RedisClient: new (url: string) => BunRedisClient } | undefined;

const nodeRedis: ClientKind = {
  name: "node-redis",
  reportsLossAtOnce: true,
  async open(url) {
    const errors: unknown[] = [];
    const client = createClient({ url });
    client.on("error", (error) => errors.push(error));
    await client.connect();
    return {
      client,
      command: (command, ...args) => client.sendCommand([command, ...args]),
      errors,
      close: () => {
        if (client.isOpen) client.destroy();
        return Promise.resolve();
      },
    };
  },
};

const ioRedis: ClientKind = {
  name: "ioredis",
  reportsLossAtOnce: true,
  async open(url) {
    const errors: unknown[] = [];
    const client = new Redis(url);
    client.on("error", (error) => errors.push(error));
    await client.ping();
    return {
      client,
      command: (command, ...args) => client.call(command, ...args),
      errors,
      close: async () => {
        if (client.status === "end") return;
        const ended = new Promise((resolve) => client.once("end", resolve));
        client.disconnect();
        if (client.status !== "reconnecting") await ended;
      },
    };
  },
};

const bun: ClientKind = {
  name: "bun",
  reportsLossAtOnce: false,
  async open(url) {
    if (typeof Bun === "undefined") throw new Error("Bun's RedisClient needs Bun");
    const client = new Bun.RedisClient(url);
    await client.send("PING", []);
    return {
      client,
      command: (command, ...args) => client.send(command, args),
      errors: [],
      close: () => Promise.resolve(client.close()),
    };
  },
};

/** The kinds the running runtime has. */
export function clientKinds(): ClientKind[] {
  return typeof Bun === "undefined" ? [nodeRedis, ioRedis] : [nodeRedis, ioRedis, bun];
}

/** The kind of this name, when the running runtime has it. */
export function clientKind(name: string): ClientKind {
  const kind = clientKinds().find((kind) => kind.name === name);
  if (kind === undefined) throw new Error(`no Redis client "${name}" in this runtime`);
  return kind;
}
