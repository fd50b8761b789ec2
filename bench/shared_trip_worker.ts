/**
 * The second process of the trip-to-rejection measurement in `bench/shared.ts`. It opens the
 * store it is told to (Redis with one of the clients of tests/redis_clients.ts, or a Deno KV
 * file), then answers commands read from stdin, one JSON line each, with JSON lines on stdout:
 *
 * - `{"op":"clock"}`: replies with its clock, so that the parent can check that the two
 *   processes' timestamps are comparable.
 * - `{"op":"watch","name":N}`: creates a breaker named N on the store, calls it every `pollMs`
 *   with a healthy `async () => 1`, says `ready` once it has been running `settleMs`, and keeps
 *   calling until a call is rejected (the parent trips the circuit meanwhile); then replies
 *   with when its breaker learned the circuit was open (its `stateChange` event) and when the
 *   first call was rejected, and disposes the breaker.
 * - `{"op":"exit"}`: closes everything and exits.
 *
 * Timestamps are `performance.timeOrigin + performance.now()` (epoch ms with a fraction).
 * Runs under Deno (`run --allow-all --unstable-kv`) and Bun. Not meant to be run by hand.
 *
 * @module
 */

import process from "node:process";
import { createInterface } from "node:readline";
import { Breaker, BreakerOpenError, type StateStore } from "../mod.ts";
import { denoKvStore } from "../src/deno_kv_store.ts";
import { redisStore } from "../src/redis_store.ts";
import { type ClientKind, clientKind } from "../tests/redis_clients.ts";
import { openKvFile } from "../tests/open_kv_file.ts";

/** How the parent configures this process (one JSON argument, the last one). */
export interface TripWorkerConfig {
  readonly store: "redis" | "kv";
  /** With `store: "redis"`: which client. */
  readonly client?: ClientKind["name"] | undefined;
  readonly url?: string | undefined;
  /** With `store: "kv"`: the KV file, the parent's. */
  readonly kvPath?: string | undefined;
  /** The breakers' `syncInterval`. */
  readonly syncInterval: number;
  /** The pause between two calls, ms (a `setTimeout`; the real cadence is reported). */
  readonly pollMs: number;
  /** How long a new breaker runs before `ready` (its store read and subscription are done). */
  readonly settleMs: number;
  /** How long to wait for a rejection after `ready` before giving up. */
  readonly timeoutMs: number;
}

/** A command from the parent. */
export type TripCommand =
  | { readonly op: "clock" }
  | { readonly op: "watch"; readonly name: string }
  | { readonly op: "exit" };

/** What one `watch` saw. */
export interface TripObservation {
  readonly name: string;
  /** When the breaker announced `open` (it learned of the trip), epoch ms. */
  readonly learnedAt: number | undefined;
  /** When the first call was rejected, epoch ms. */
  readonly rejectedAt: number | undefined;
  /** Calls made. */
  readonly calls: number;
  /** Median time between two calls' starts, ms. */
  readonly callGapMs: number;
  /** Errors the breaker reported through `storeError`. */
  readonly storeErrors: number;
}

/** A line from this process. */
export type TripReply =
  | { readonly op: "started" }
  | { readonly op: "clock"; readonly at: number }
  | { readonly op: "ready"; readonly name: string }
  | ({ readonly op: "observed" } & TripObservation)
  | { readonly op: "exited" };

const config = JSON.parse(process.argv[process.argv.length - 1] as string) as TripWorkerConfig;

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
// deno-lint-ignore require-await
const healthy = async (): Promise<number> => 1;

function reply(line: TripReply): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

interface OpenedStore {
  readonly store: StateStore;
  close(): Promise<void>;
}

async function openStore(): Promise<OpenedStore> {
  if (config.store === "kv") {
    if (typeof Deno === "undefined") throw new Error("Deno KV needs Deno");
    const kv = await openKvFile(config.kvPath);
    const opened = kv;
    return {
      store: denoKvStore(opened, { prefix: ["bench"] }),
      close: () => Promise.resolve(opened.close()),
    };
  }
  if (config.client === undefined || config.url === undefined) {
    throw new Error("a Redis worker needs client and url");
  }
  const client = await clientKind(config.client).open(config.url);
  const store = redisStore(client.client, { prefix: "bench:" });
  // Keeps the store's one subscriber connection open between two watches, as in a process
  // with other breakers on the store: each watch then only subscribes one more channel.
  const anchor = store.subscribe?.("anchor", () => {}, () => {});
  return {
    store,
    close: async () => {
      await anchor?.[Symbol.asyncDispose]();
      await client.close();
    },
  };
}

async function watch(store: StateStore, name: string): Promise<TripObservation> {
  let learnedAt: number | undefined;
  let storeErrors = 0;
  const breaker = new Breaker({
    name,
    store,
    failureThreshold: 3,
    recoveryTimeout: 600_000,
    syncInterval: config.syncInterval,
    listeners: [{
      stateChange: ({ to }) => {
        if (to === "open") learnedAt ??= now();
      },
      storeError: () => {
        storeErrors++;
      },
    }],
  });
  const readyAt = now() + config.settleMs;
  const deadline = readyAt + config.timeoutMs;
  let ready = false;
  let rejectedAt: number | undefined;
  let calls = 0;
  const gaps: number[] = [];
  let lastCall: number | undefined;
  while (rejectedAt === undefined && now() < deadline) {
    const start = now();
    if (lastCall !== undefined) gaps.push(start - lastCall);
    lastCall = start;
    calls++;
    try {
      await breaker.execute(healthy);
    } catch (error) {
      if (!(error instanceof BreakerOpenError)) throw error;
      rejectedAt = now();
    }
    if (!ready && now() >= readyAt) {
      ready = true;
      reply({ op: "ready", name });
    }
    if (rejectedAt === undefined) await sleep(config.pollMs);
  }
  await breaker[Symbol.asyncDispose]();
  gaps.sort((a, b) => a - b);
  return {
    name,
    learnedAt,
    rejectedAt,
    calls,
    callGapMs: gaps[Math.floor(gaps.length / 2)] ?? NaN,
    storeErrors,
  };
}

const opened = await openStore();
reply({ op: "started" });
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() === "") continue;
  const command = JSON.parse(line) as TripCommand;
  if (command.op === "clock") {
    reply({ op: "clock", at: now() });
  } else if (command.op === "watch") {
    reply({ op: "observed", ...(await watch(opened.store, command.name)) });
  } else {
    break;
  }
}
lines.close();
await opened.close();
reply({ op: "exited" });
process.exit(0);
