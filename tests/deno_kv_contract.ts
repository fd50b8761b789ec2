/**
 * The store contract on a real Deno KV file: `openDenoKvHarness()` opens three `Deno.Kv`
 * handles on one file in a temporary directory. Run as a script (under Deno), it runs every
 * check of the contract and prints one JSON line per check, for runtimes without Deno KV:
 *
 *   deno run --allow-all --unstable-kv tests/deno_kv_contract.ts
 *
 * prints `{"check":"<name>","ok":true}` or `{"check":"<name>","ok":false,"error":"..."}`.
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { denoKvStore } from "../src/deno_kv_store.ts";
import { storeContract, type StoreHarness } from "./store_contract.ts";

/** A temporary directory for a KV file, removed by the returned function. */
export function temporaryKvPath(): { path: string; remove: () => void } {
  const directory = mkdtempSync(join(tmpdir(), "circuit-kv-"));
  return {
    path: join(directory, "kv.sqlite"),
    remove: () => rmSync(directory, { recursive: true, force: true }),
  };
}

/** Three stores over three `Deno.Kv` handles on one new file, and one with another prefix. */
export async function openDenoKvHarness(): Promise<StoreHarness> {
  const file = temporaryKvPath();
  const handles: Deno.Kv[] = [];
  try {
    for (let i = 0; i < 3; i++) handles.push(await Deno.openKv(file.path));
  } catch (error) {
    for (const kv of handles) kv.close();
    file.remove();
    throw error;
  }
  const [a, b, c] = handles as [Deno.Kv, Deno.Kv, Deno.Kv];
  const prefix = ["test", crypto.randomUUID()];
  return {
    stores: [
      denoKvStore(a, { prefix }),
      denoKvStore(b, { prefix }),
      denoKvStore(c, { prefix }),
    ],
    otherPrefix: denoKvStore(b, { prefix: ["other", ...prefix] }),
    close: () => {
      for (const kv of handles) kv.close();
      file.remove();
      return Promise.resolve();
    },
  };
}

/** Runs one check on a harness of its own, closing it whatever happens. */
export async function runKvCheck(run: (harness: StoreHarness) => Promise<void>): Promise<void> {
  const harness = await openDenoKvHarness();
  try {
    await run(harness);
  } finally {
    await harness.close();
  }
}

/** One line of the script's report. */
export interface CheckReport {
  readonly check: string;
  readonly ok: boolean;
  readonly error?: string;
}

if (import.meta.main) {
  for (const check of storeContract) {
    let report: CheckReport;
    try {
      await runKvCheck(check.run);
      report = { check: check.name, ok: true };
    } catch (error) {
      const text = error instanceof Error ? error.stack ?? error.message : String(error);
      report = { check: check.name, ok: false, error: text };
    }
    console.log(JSON.stringify(report));
  }
}
