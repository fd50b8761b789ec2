/**
 * Leak probe: a child process that uses a store the way a program does (subscribe, see another
 * connection's write, dispose, close its client) and then simply ends its work. It exits by
 * itself only if nothing the store opened is left: a socket, a watch or a timer would keep it
 * running. Run as a script:
 *
 *   <runtime> tests/leak_probe.ts redis <node-redis|ioredis|bun> <url>
 *   deno run --allow-all --unstable-kv tests/leak_probe.ts kv <file>
 *
 * `openProbeStores` and `exercise` (exported) do the same work in-process, for Deno's
 * sanitizers (`sanitizer_probe.ts`); `spawnProbe` runs a script and reports how it ended.
 */

import { spawn } from "node:child_process";
import process from "node:process";
import { denoKvStore } from "../src/deno_kv_store.ts";
import { redisStore } from "../src/redis_store.ts";
import type { StateStore } from "../src/store.ts";
import { clientKind } from "./redis_clients.ts";
import { recorder, uniqueName, writeUntilSeen } from "./store_contract.ts";

/** What the probe prints last when its work is done. */
export const PROBE_DONE = "leak probe: done";

/** Two stores on one backend over two connections, and how to close those connections. */
export interface ProbeStores {
  readonly subscribing: StateStore;
  readonly writing: StateStore;
  close(): Promise<void>;
}

/** Opens the connections (clients or KV handles) named by the script's arguments. */
export async function openProbeStores(args: readonly string[]): Promise<ProbeStores> {
  const [backend, kindOrPath, url] = args;
  if (backend === "redis" && kindOrPath !== undefined && url !== undefined) {
    const kind = clientKind(kindOrPath);
    const subscriber = await kind.open(url);
    const writer = await kind.open(url);
    return {
      subscribing: redisStore(subscriber.client),
      writing: redisStore(writer.client),
      close: async () => {
        await subscriber.close();
        await writer.close();
      },
    };
  }
  if (backend === "kv" && kindOrPath !== undefined) {
    const first = await Deno.openKv(kindOrPath);
    const second = await Deno.openKv(kindOrPath);
    return {
      subscribing: denoKvStore(first),
      writing: denoKvStore(second),
      close: () => {
        first.close();
        second.close();
        return Promise.resolve();
      },
    };
  }
  throw new Error(`usage: leak_probe.ts redis <kind> <url> | kv <file>; received ${args}`);
}

/** Subscribes through one store, sees a write through the other, disposes every subscription. */
export async function exercise({ subscribing, writing }: ProbeStores): Promise<void> {
  const name = uniqueName("probe");
  const seen = recorder();
  const other = recorder();
  const subscription = subscribing.subscribe!(name, seen.onChange, seen.onError);
  const second = subscribing.subscribe!(uniqueName("probe-other"), other.onChange, other.onError);
  await writeUntilSeen(writing, name, seen, undefined);
  await second[Symbol.asyncDispose]();
  await subscription[Symbol.asyncDispose]();
  if (seen.errors.length + other.errors.length > 0) {
    throw new Error(`subscription errors: ${[...seen.errors, ...other.errors].join("; ")}`);
  }
}

/** How a probe process ended. */
export interface ProbeResult {
  /** True when it exited by itself, false when it was still running at the deadline. */
  readonly exited: boolean;
  readonly code: number | null;
  readonly output: string;
}

/** Runs this script with `command` (a runtime and its arguments before the script). */
export function spawnProbe(
  command: readonly string[],
  args: readonly string[],
  timeoutMs: number,
): Promise<ProbeResult> {
  return spawnUntil([...command, new URL(import.meta.url).pathname, ...args], {}, timeoutMs);
}

/**
 * Runs `sanitizer_probe.ts` in `deno test` (Deno's op and resource sanitizers on), with the
 * probe's arguments; it passes when the test reports no leak.
 */
export function spawnSanitizerProbe(
  deno: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<ProbeResult> {
  const script = new URL("./sanitizer_probe.ts", import.meta.url).pathname;
  return spawnUntil(
    [deno, "test", "--allow-all", "--unstable-kv", script],
    { PROBE_ARGS: JSON.stringify(args) },
    timeoutMs,
  );
}

function spawnUntil(
  command: readonly string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<ProbeResult> {
  const [program, ...args] = command;
  return new Promise((resolve) => {
    const child = spawn(program!, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1", ...env },
    });
    let output = "";
    child.stdout?.on("data", (chunk) => output += String(chunk));
    child.stderr?.on("data", (chunk) => output += String(chunk));
    let exited = true;
    const timer = setTimeout(() => {
      exited = false;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ exited, code, output });
    });
  });
}

if (import.meta.main) {
  const stores = await openProbeStores(process.argv.slice(2));
  try {
    await exercise(stores);
  } finally {
    await stores.close();
  }
  console.log(PROBE_DONE);
}
