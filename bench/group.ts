/**
 * Per-key breakers (`BreakerGroup`) under key churn, the same on both runtimes:
 *
 *   ./node_modules/.bin/deno run --allow-all --v8-flags=--expose-gc bench/group.ts
 *   ./node_modules/.bin/bun bench/group.ts
 *
 * 1. Memory: 1,000,000 distinct keys cycle through `group.get(key)` (one successful call
 *    each) with `maxKeys: 10_000`; the heap after a full collection is sampled every 100,000
 *    keys, once in the task that ran them and once in the next task (a registry's `WeakRef`
 *    keeps its target alive until the task that made it ends), with members in the default
 *    registry and with `registry: false`.
 * 2. Time per operation: `group.get()` of a cached key and of a new key (create + evict),
 *    against a bare `Map` (lookup; LRU insert + delete) and against creating a plain
 *    `Breaker`, interleaved round-robin in one run (a new task before each sample).
 *
 * Options: `--keys=N` (1,000,000), `--max-keys=N` (10,000), `--rounds=N` (21),
 * `--sample-ms=N` (10).
 *
 * @module
 */

import process from "node:process";
import { Breaker, defaultRegistry } from "../mod.ts";
import { BreakerGroup } from "../src/breaker_group.ts";
import {
  canCollectGarbage,
  collectGarbage,
  formatNs,
  formatRatio,
  heapUsed,
  median,
  quantile,
  runtimeInfo,
  sleep,
  table,
} from "./harness.ts";

const args = new Map<string, string>();
for (const arg of process.argv.slice(2)) {
  const match = /^--([^=]+)(?:=(.*))?$/.exec(arg);
  if (match) args.set(match[1] as string, match[2] ?? "true");
}
const KEYS = Number(args.get("keys") ?? 1_000_000);
const MAX_KEYS = Number(args.get("max-keys") ?? 10_000);
const ROUNDS = Number(args.get("rounds") ?? 21);
const SAMPLE_MS = Number(args.get("sample-ms") ?? 10);
const WARMUP = 3;
const SAMPLE_EVERY = 100_000;

/** Keeps results alive so that no loop is optimized away. */
let sink: unknown;
const ok = (): Promise<number> => Promise.resolve(1);
const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
const thousands = (n: number): string => n.toLocaleString("en");

// ---------------------------------------------------------------------------------------------
// 1. Memory while keys cycle

interface Sample {
  readonly keys: number;
  readonly sameTask: number;
  readonly nextTask: number;
  readonly size: number;
  readonly listed: number;
  readonly nsPerKey: number;
}

/**
 * The heap after full collections in new tasks: the least of three, since a conservative
 * collector (Bun's) may keep some garbage alive through a stale pointer for a while.
 */
async function settledHeap(): Promise<number> {
  let least = Infinity;
  for (let i = 0; i < 3; i++) {
    await sleep(0);
    collectGarbage();
    least = Math.min(least, heapUsed());
  }
  return least;
}

/**
 * Cycles the keys; `base` is the heap once the group is cleared, so that a sample minus it is
 * what the group holds (a heap taken before the loop would include garbage of the previous
 * case that Bun's conservative collector frees late).
 */
async function cycle(registry: boolean): Promise<{ base: number; samples: Sample[] }> {
  const group = new BreakerGroup({
    name: `cycle-${registry}`,
    maxKeys: MAX_KEYS,
    ...(registry ? {} : { registry: false as const }),
  });
  const samples: Sample[] = [];
  let start = performance.now();
  for (let i = 0; i < KEYS; i++) {
    sink = await group.get(`key-${i}`).execute(ok);
    if ((i + 1) % SAMPLE_EVERY !== 0) continue;
    const ms = performance.now() - start;
    collectGarbage();
    const sameTask = heapUsed();
    const nextTask = await settledHeap();
    let listed = 0;
    for (const breaker of defaultRegistry) if (breaker.name.startsWith(group.name)) listed++;
    samples.push({
      keys: i + 1,
      sameTask,
      nextTask,
      size: group.size,
      listed,
      nsPerKey: (ms * 1e6) / SAMPLE_EVERY,
    });
    start = performance.now();
  }
  group.clear();
  const base = await settledHeap();
  return { base, samples };
}

// ---------------------------------------------------------------------------------------------
// 2. Time per operation

interface OpCase {
  readonly name: string;
  readonly run: (n: number) => void;
}

interface OpResult {
  readonly name: string;
  readonly samples: number[];
}

let counter = 0;
const cachedKeys = Array.from({ length: MAX_KEYS }, (_, i) => `cached-${i}`);

function opCases(): OpCase[] {
  const map = new Map<string, { name: string }>();
  for (const key of cachedKeys) map.set(key, { name: key });
  const cached = new BreakerGroup({ name: "cached", maxKeys: MAX_KEYS });
  for (const key of cachedKeys) cached.get(key);
  const churn = new BreakerGroup({ name: "churn", maxKeys: MAX_KEYS });
  const churnUnlisted = new BreakerGroup({ name: "unlisted", maxKeys: MAX_KEYS, registry: false });
  const bounded = new Map<string, { name: string }>();
  const ring: string[] = [];
  for (let i = 0; i < MAX_KEYS; i++) {
    churn.get(`warm-${i}`);
    churnUnlisted.get(`warm-${i}`);
    bounded.set(`warm-${i}`, { name: `warm-${i}` });
    ring.push(`warm-${i}`);
  }
  const last = cachedKeys.length;
  return [
    {
      name: "bare Map.get, cached key",
      run: (n) => {
        for (let i = 0; i < n; i++) sink = map.get(cachedKeys[i % last] as string);
      },
    },
    {
      name: "group.get, cached key (moved to most recent)",
      run: (n) => {
        for (let i = 0; i < n; i++) sink = cached.get(cachedKeys[i % last] as string);
      },
    },
    {
      name: "group.get, the most recent key again",
      run: (n) => {
        const key = cachedKeys[0] as string;
        for (let i = 0; i < n; i++) sink = cached.get(key);
      },
    },
    {
      name: "bare Map, bounded: set new key + delete the one set 10,000 before",
      run: (n) => {
        for (let i = 0; i < n; i++) {
          const key = `k-${counter++}`;
          const slot = counter % MAX_KEYS;
          bounded.delete(ring[slot] as string);
          bounded.set(key, { name: key });
          ring[slot] = key;
        }
      },
    },
    {
      name: "new Breaker({ name }) (joins the default registry)",
      run: (n) => {
        for (let i = 0; i < n; i++) sink = new Breaker({ name: `k-${counter++}` });
      },
    },
    {
      name: "new Breaker({ name, registry: false })",
      run: (n) => {
        for (let i = 0; i < n; i++) {
          sink = new Breaker({ name: `k-${counter++}`, registry: false });
        }
      },
    },
    {
      name: "group.get, new key (create + evict)",
      run: (n) => {
        for (let i = 0; i < n; i++) sink = churn.get(`k-${counter++}`);
      },
    },
    {
      name: "group.get, new key, registry: false",
      run: (n) => {
        for (let i = 0; i < n; i++) sink = churnUnlisted.get(`k-${counter++}`);
      },
    },
  ];
}

function timeOnce(c: OpCase, n: number): number {
  const start = performance.now();
  c.run(n);
  return performance.now() - start;
}

/**
 * Calibrates each case to SAMPLE_MS, then runs WARMUP + ROUNDS rounds, the cases interleaved
 * with a rotating start. Every sample starts in a new task, as requests do, so that objects a
 * `WeakRef` kept alive during the previous sample can go.
 */
async function runOps(cases: readonly OpCase[]): Promise<OpResult[]> {
  const iterations: number[] = [];
  for (const c of cases) {
    let n = 1;
    for (;;) {
      await sleep(0);
      const ms = timeOnce(c, n);
      if (ms >= SAMPLE_MS || n >= 1 << 24) {
        n = Math.max(1, Math.ceil(n * (SAMPLE_MS / Math.max(ms, 1e-3))));
        break;
      }
      n *= ms < SAMPLE_MS / 16 ? 8 : 2;
    }
    iterations.push(n);
  }
  const samples: number[][] = cases.map(() => []);
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    for (let k = 0; k < cases.length; k++) {
      const index = (k + round) % cases.length;
      const n = iterations[index] as number;
      await sleep(0);
      const ms = timeOnce(cases[index] as OpCase, n);
      if (round >= WARMUP) (samples[index] as number[]).push((ms * 1e6) / n);
    }
  }
  return cases.map((c, i) => ({ name: c.name, samples: samples[i] as number[] }));
}

/** The median of the per-round ratios a / b (load drifting during the run cancels out). */
function pairedRatio(a: OpResult, b: OpResult): number {
  return median(a.samples.map((sample, i) => sample / (b.samples[i] as number)));
}

// ---------------------------------------------------------------------------------------------
// Report

const info = runtimeInfo();
console.log(`## BreakerGroup: ${info.versions}`);
console.log();
console.log(
  `${thousands(KEYS)} keys, maxKeys ${thousands(MAX_KEYS)}; rounds ${ROUNDS} (after ${WARMUP} ` +
    `warm-up rounds), samples of >= ${SAMPLE_MS} ms; gc ${
      canCollectGarbage() ? "available" : "NOT available (heap figures include garbage)"
    }`,
);
console.log();

for (const registry of [true, false]) {
  console.error(`running: ${thousands(KEYS)} keys, registry ${registry ? "default" : "false"}`);
  const { base, samples } = await cycle(registry);
  const rows = samples.map((s) => [
    thousands(s.keys),
    mb(s.nextTask - base),
    mb(s.sameTask - base),
    thousands(s.size),
    thousands(s.listed),
    formatNs(s.nsPerKey),
  ]);
  const steady = samples.slice(1).map((s) => s.nextTask - base);
  const spread = steady.length === 0 ? 0 : Math.max(...steady) - Math.min(...steady);
  const perMember = median(steady) / MAX_KEYS;
  console.log(
    `### ${thousands(KEYS)} distinct keys through group.get(key).execute(fn), maxKeys ${
      thousands(MAX_KEYS)
    }, ${registry ? "members in the default registry" : "registry: false"}`,
  );
  console.log();
  console.log(
    table([
      "keys so far",
      "heap MB held, next task",
      "heap MB held, same task",
      "group.size",
      "listed in registry",
      "ns per key (get + call)",
    ], rows),
  );
  console.log();
  console.log(
    `From ${thousands(SAMPLE_EVERY * 2)} keys on, the heap (next task) varies by ${
      (spread / 1e3).toFixed(0)
    } kB in all; ${perMember.toFixed(0)} B per member held (breaker, group node${
      registry ? ", registry entry" : ""
    }).`,
  );
  console.log();
}

console.error("running: time per operation");
const cases = opCases();
const results = await runOps(cases);
const byName = (name: string) => results.find((r) => r.name === name) as OpResult;
const mapGet = byName("bare Map.get, cached key");
const plain = byName("new Breaker({ name }) (joins the default registry)");
console.log(`### time per operation, group of ${thousands(MAX_KEYS)} members`);
console.log();
console.log(
  table(
    ["case", "median ns/op", "p25-p75", "ratio to bare Map.get", "ratio to new Breaker({ name })"],
    results.map((r) => [
      r.name,
      formatNs(median(r.samples)),
      `${formatNs(quantile(r.samples, 0.25))}-${formatNs(quantile(r.samples, 0.75))}`,
      formatRatio(pairedRatio(r, mapGet)),
      formatRatio(pairedRatio(r, plain)),
    ]),
  ),
);
console.log();
sink = String(sink).length;
