/**
 * Leak probe: a child process that uses a store the way a program does (subscribe, see another
 * connection's write, dispose, close its client) and then simply ends its work. It exits by
 * itself only if nothing the store opened is left: a socket, a watch or a timer would keep it
 * running. Run as a script:
 *
 *   <runtime> tests/leak_probe.ts redis <node-redis|ioredis|bun> <url>
 *   deno run --allow-all --unstable-kv tests/leak_probe.ts kv <file>
 *
 * `runProbe` (exported) does the same work in-process, for Deno's sanitizers
 * (`sanitizer_probe.ts`); `spawnProbe` runs the script and reports how it ended.
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

/** Subscribes through one store, sees a write through another, disposes, closes everything. */
export async function runProbe(args: readonly string[]): Promise<void> {
  const [backend, kindOrPath, url] = args;
  if (backend === "redis" && kindOrPath !== undefined && url !== undefined) {
    const kind = clientKind(kindOrPath);
    const subscriber = await kind.open(url);
    const writer = await kind.open(url);
    try {
      await exercise(redisStore(subscriber.client), redisStore(writer.client));
    } finally {
      await subscriber.close();
      await writer.close();
    }
  } else if (backend === "kv" && kindOrPath !== undefined) {
    const first = await Deno.openKv(kindOrPath);
    const second = await Deno.openKv(kindOrPath);
    try {
      await exercise(denoKvStore(first), denoKvStore(second));
    } finally {
      first.close();
      second.close();
    }
  } else {
    throw new Error(`usage: leak_probe.ts redis <kind> <url> | kv <file>; received ${args}`);
  }
}

async function exercise(subscribing: StateStore, writing: StateStore): Promise<void> {
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

/** Runs the probe script with `command` (a runtime and its arguments before the script). */
export function spawnProbe(
  command: readonly string[],
  args: readonly string[],
  timeoutMs: number,
): Promise<ProbeResult> {
  const [program, ...before] = command;
  return new Promise((resolve) => {
    const child = spawn(program!, [...before, new URL(import.meta.url).pathname, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NO_COLOR: "1" },
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
  await runProbe(process.argv.slice(2));
  console.log(PROBE_DONE);
}
