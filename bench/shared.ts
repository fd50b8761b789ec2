/**
 * Shared-state benchmarks (issue 6, point 6): what a breaker with a `store` costs per call
 * against one without, how many store round trips it makes (bounded by the sync rate, not the
 * call rate), and how long a trip in one process takes to turn calls away in another.
 *
 *   ./node_modules/.bin/deno run --allow-all --unstable-kv bench/shared.ts
 *   ./node_modules/.bin/bun bench/shared.ts
 *
 * It starts a private redis-server (tests/redis_server.ts) and, under Deno, a Deno KV file in a
 * temporary directory; both are removed at the end. Redis clients: node-redis and ioredis on
 * both runtimes, Bun's RedisClient under Bun (tests/redis_clients.ts). Deno KV rows are
 * Deno-only.
 *
 * Parts (`--only=throughput,roundtrips,trip`):
 *
 * 1. throughput: ns per sequential `await breaker.execute(fn)` on a closed circuit, cases
 *    interleaved round-robin (bench/harness.ts); ratios are medians of per-round ratios. No
 *    event-loop turn happens inside a sample (every await is a microtask), so these are the
 *    per-call costs alone; the syncs' costs are in part 2's interleaved full-speed table.
 * 2. roundtrips: store operations counted by a proxy around each breaker's store (and, for
 *    Redis, the server's own `INFO commandstats`), at paced call rates (all paced breakers of a
 *    backend run at once) and at full speed (one at a time, yielding to the event loop every
 *    64 calls), for two `syncInterval`s; then full-speed calls/s with the syncs' work, cases
 *    interleaved in 250 ms slices.
 * 3. trip: a second process (bench/shared_trip_worker.ts) calls a breaker every `pollMs`; this
 *    one trips the same-named breaker; the time from the trip here (this breaker's
 *    `stateChange` to open) to the other's first rejected call, in timestamps comparable
 *    across processes (`performance.timeOrigin + performance.now()`).
 *
 * Options: `--rounds=N` `--sample-ms=N` (part 1; 21 and 10), `--paced-ms=N` `--full-ms=N`
 * (part 2; 5000 and 1500), `--trips=N` (part 3, per backend; 20). A whole run takes about
 * 2.5 minutes. Markdown on stdout, progress on stderr.
 *
 * @module
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";
import { setImmediate } from "node:timers";
import { fileURLToPath } from "node:url";
import { Breaker, type BreakerOptions, memoryStore, type StateStore } from "../mod.ts";
import { denoKvStore } from "../src/deno_kv_store.ts";
import { redisStore } from "../src/redis_store.ts";
import { type ClientKind, clientKinds, type OpenClient } from "../tests/redis_clients.ts";
import type { RedisServer } from "../tests/redis_server.ts";
import {
  type CaseResult,
  caseResult,
  formatNs,
  formatRatio,
  median,
  quantile,
  runGroup,
  runtimeInfo,
  sleep,
  table,
} from "./harness.ts";
import type {
  TripCommand,
  TripObservation,
  TripReply,
  TripWorkerConfig,
} from "./shared_trip_worker.ts";

// ---------------------------------------------------------------------------------------------
// Command line

const args = new Map<string, string>();
for (const arg of process.argv.slice(2)) {
  const match = /^--([^=]+)(?:=(.*))?$/.exec(arg);
  if (match) args.set(match[1] as string, match[2] ?? "true");
}
const PARTS = ["throughput", "roundtrips", "trip"] as const;
type Part = (typeof PARTS)[number];
const only = args.get("only")?.split(",") ?? [...PARTS];
for (const name of only) {
  if (!(PARTS as readonly string[]).includes(name)) {
    throw new Error(`Unknown part ${JSON.stringify(name)}; parts: ${PARTS.join(", ")}`);
  }
}
const wanted = (part: Part) => only.includes(part);
const ROUNDS = Number(args.get("rounds") ?? 21);
const SAMPLE_MS = Number(args.get("sample-ms") ?? 10);
const PACED_MS = Number(args.get("paced-ms") ?? 5_000);
const FULL_MS = Number(args.get("full-ms") ?? 1_500);
const TRIPS = Number(args.get("trips") ?? 20);
/** The call rates of the paced runs, calls per second. */
const RATES = [100, 1_000, 10_000] as const;
/** The `syncInterval`s compared in part 2. */
const SYNC_INTERVALS = [100, 1_000] as const;
/** Full speed yields to the event loop after this many calls (so I/O and timers run). */
const YIELD_EVERY = 64;
/** A paced run sleeps this long between two bursts of calls. */
const PACE_TICK_MS = 5;

// ---------------------------------------------------------------------------------------------
// Runtime, server, stores

const runtime = runtimeInfo();
const isDeno = runtime.runtime === "deno";
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WORKER = fileURLToPath(new URL("./shared_trip_worker.ts", import.meta.url));

// tests/redis_server.ts loads tests/timer_leaks.ts, which replaces the global timer functions
// with tracking ones (a stack trace per setTimeout). Restore the real ones after loading it, so
// that neither the breakers' sync timers nor the pacing here pay for the tracking.
const realTimers = {
  setTimeout: globalThis.setTimeout,
  clearTimeout: globalThis.clearTimeout,
  setInterval: globalThis.setInterval,
  clearInterval: globalThis.clearInterval,
};
const { startRedisServer } = await import("../tests/redis_server.ts");
Object.assign(globalThis, realTimers);

const now = (): number => performance.timeOrigin + performance.now();
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function print(text = ""): void {
  console.log(text);
}
function progress(text: string): void {
  console.error(`[${(performance.now() / 1000).toFixed(1)} s] ${text}`);
}

/** A store behind one breaker (or one group of breakers) in the benchmark. */
interface Backend {
  /** Shown in the tables. */
  readonly label: string;
  readonly store: StateStore;
  /** For Redis backends: the client, to count the server's commands. */
  readonly redis?: OpenClient | undefined;
  readonly kind?: ClientKind["name"] | undefined;
}

// ---------------------------------------------------------------------------------------------
// Workloads

/** Keeps results alive so that no loop is optimized away. */
let sink: unknown;
const failure = new Error("down");
// deno-lint-ignore require-await
const healthy = async (): Promise<number> => 1;
// deno-lint-ignore require-await
const failing = async (): Promise<number> => {
  throw failure;
};
/** One failure in ten, with its own counter (one per breaker or case). */
function oneInTen(): () => Promise<number> {
  let calls = 0;
  // deno-lint-ignore require-await
  return async () => {
    if (++calls % 10 === 0) throw failure;
    return 1;
  };
}

const TIME_WINDOW = { failureRate: 0.5, window: { duration: 60_000, buckets: 10 } } as const;

/** A kind of traffic on a closed circuit that stays closed. */
interface Workload {
  readonly key: string;
  readonly title: string;
  readonly options: BreakerOptions;
  readonly fn: () => () => Promise<number>;
}

const WORKLOADS: readonly Workload[] = [
  {
    key: "healthy",
    title: "healthy, consecutive rule (failureThreshold 5)",
    options: { failureThreshold: 5 },
    fn: () => healthy,
  },
  {
    key: "healthy-window",
    title: "healthy, time-window rule (failureRate 0.5 over 60 s)",
    options: TIME_WINDOW,
    fn: () => healthy,
  },
  {
    key: "failing",
    title: "every call fails, failureThreshold Infinity (never trips)",
    options: { failureThreshold: Infinity },
    fn: () => failing,
  },
  {
    key: "one-in-ten",
    title: "1 call in 10 fails, time-window rule (failureRate 0.5, never trips)",
    options: TIME_WINDOW,
    fn: oneInTen,
  },
];

let breakerNames = 0;
function uniqueName(prefix: string): string {
  return `${prefix}-${++breakerNames}`;
}

// ---------------------------------------------------------------------------------------------
// Part 1: throughput, interleaved

/**
 * The ratio a / b as the median over rounds of the per-round ratios (the two samples of a
 * round were taken moments apart).
 */
function pairedRatio(a: CaseResult, b: CaseResult): number {
  const n = Math.min(a.samples.length, b.samples.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) ratios.push((a.samples[i] as number) / (b.samples[i] as number));
  return median(ratios);
}

const BARE = "bare await fn()";
const NO_STORE = "breaker, no store";

async function throughput(backends: readonly Backend[]): Promise<void> {
  print("## 1. Throughput: sequential `await breaker.execute(fn)`, closed circuit");
  print();
  print(
    `Interleaved (bench/harness.ts): ${ROUNDS} rounds of ${SAMPLE_MS} ms samples, 3 warm-up rounds; ` +
      "syncInterval 1000 (the default). No event-loop turn inside a sample, so no store I/O " +
      "lands in these figures (it is in part 2's full-speed rows); what they show is the per-call " +
      "work a store adds (tallying each outcome for the next merge).",
  );
  print();
  for (const workload of WORKLOADS) {
    const breakers: Breaker[] = [];
    const breaker = (backend: Backend | undefined): Breaker => {
      const created = new Breaker({
        ...workload.options,
        name: uniqueName(`throughput-${workload.key}`),
        ...(backend === undefined ? {} : { store: backend.store }),
      });
      breakers.push(created);
      return created;
    };
    const bareFn = workload.fn();
    const plain = breaker(undefined);
    const plainFn = workload.fn();
    const shared = backends.map((backend) => ({
      backend,
      breaker: breaker(backend),
      fn: workload.fn(),
    }));
    // Let each shared breaker read the store (and write its first state) before timing.
    await sleep(100);
    progress(`throughput: ${workload.key}`);
    const results = await runGroup([
      {
        name: BARE,
        run: async (n) => {
          for (let i = 0; i < n; i++) {
            try {
              sink = await bareFn();
            } catch (error) {
              sink = error;
            }
          }
        },
      },
      {
        name: NO_STORE,
        run: async (n) => {
          for (let i = 0; i < n; i++) {
            try {
              sink = await plain.execute(plainFn);
            } catch (error) {
              sink = error;
            }
          }
        },
      },
      ...shared.map(({ backend, breaker, fn }) => ({
        name: `store: ${backend.label}`,
        run: async (n: number) => {
          for (let i = 0; i < n; i++) {
            try {
              sink = await breaker.execute(fn);
            } catch (error) {
              sink = error;
            }
          }
        },
      })),
    ], { rounds: ROUNDS, warmup: 3, sampleMs: SAMPLE_MS });
    for (const created of breakers) {
      if (created.state !== "closed") throw new Error(`${created.name} is ${created.state}`);
    }
    await Promise.all(breakers.map((created) => created[Symbol.asyncDispose]()));
    const bare = results.find((r) => r.name === BARE) as CaseResult;
    const noStore = results.find((r) => r.name === NO_STORE) as CaseResult;
    print(`### ${workload.title}`);
    print();
    print(table(
      ["case", "median ns/call", "p25-p75", "calls/s", "ratio to bare", "ratio to no store"],
      results.map((r) => [
        r.name,
        formatNs(r.median),
        `${formatNs(r.p25)}-${formatNs(r.p75)}`,
        formatRate(1e9 / r.median),
        formatRatio(pairedRatio(r, bare)),
        r === bare ? "-" : formatRatio(pairedRatio(r, noStore)),
      ]),
    ));
    print();
  }
}

// ---------------------------------------------------------------------------------------------
// Part 2: store round trips

/** What a counting proxy saw. */
interface StoreCounts {
  reads: number;
  writes: number;
  /** compareAndSet calls that found another version (nothing written). */
  conflicts: number;
  /** Values a subscription delivered. */
  notifications: number;
  /**
   * Notifications of this breaker's own write that arrived before that write's
   * compareAndSet had resolved (the breaker cannot tell them from another breaker's write).
   */
  ownEarly: number;
}

function zeroCounts(): StoreCounts {
  return { reads: 0, writes: 0, conflicts: 0, notifications: 0, ownEarly: 0 };
}

/** A store that counts the calls made on it and passes them on. */
function countingStore(inner: StateStore, counts: StoreCounts): StateStore {
  /** Values of the compareAndSets in flight. */
  const writing = new Set<string>();
  const counted: StateStore = {
    read(name) {
      counts.reads++;
      return inner.read(name);
    },
    async compareAndSet(name, expectedVersion, value) {
      counts.writes++;
      writing.add(value);
      try {
        const stored = await inner.compareAndSet(name, expectedVersion, value);
        if (stored === undefined) counts.conflicts++;
        return stored;
      } finally {
        writing.delete(value);
      }
    },
  };
  const subscribe = inner.subscribe;
  if (subscribe === undefined) return counted;
  return {
    ...counted,
    subscribe(name, onChange, onError) {
      return subscribe.call(inner, name, (stored) => {
        counts.notifications++;
        if (writing.has(stored.value)) counts.ownEarly++;
        onChange(stored);
      }, onError);
    },
  };
}

/** The commands the Redis server ran since the last reset, by name (lower case). */
async function redisCommandCounts(client: OpenClient): Promise<Map<string, number>> {
  const reply = await client.command("INFO", "commandstats");
  const text = typeof reply === "string" ? reply : new TextDecoder().decode(reply as Uint8Array);
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+)/gm)) {
    counts.set(match[1] as string, Number(match[2]));
  }
  return counts;
}

/** Server-side command counts of a Redis backend, summed over runs. */
interface ServerCounts {
  hmget: number;
  evalsha: number;
  eval: number;
}

/** Resets the server's command counts (a Redis backend), so that a run can count its own. */
async function resetServerCounts(backend: Backend): Promise<void> {
  if (backend.redis !== undefined) await backend.redis.command("CONFIG", "RESETSTAT");
}

/** Adds the server's command counts since the last reset to `into` (a Redis backend). */
async function addServerCounts(backend: Backend, into: ServerCounts): Promise<void> {
  if (backend.redis === undefined) return;
  const counts = await redisCommandCounts(backend.redis);
  into.hmget += counts.get("hmget") ?? 0;
  into.evalsha += counts.get("evalsha") ?? 0;
  into.eval += counts.get("eval") ?? 0;
}

/** One measured breaker of part 2. */
interface RoundTripRun {
  readonly workload: Workload;
  readonly syncInterval: number;
  /** Target calls/s; `undefined` at full speed. */
  readonly rate: number | undefined;
  calls: number;
  elapsedMs: number;
  readonly counts: StoreCounts;
}

/** Calls `fn` through `breaker` at `rate` calls/s for `durationMs`, in bursts every tick. */
async function paced(
  breaker: Breaker,
  fn: () => Promise<number>,
  rate: number,
  durationMs: number,
): Promise<{ calls: number; elapsedMs: number }> {
  const start = performance.now();
  let calls = 0;
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= durationMs) break;
    const due = Math.floor((rate * elapsed) / 1000);
    while (calls < due) {
      calls++;
      try {
        sink = await breaker.execute(fn);
      } catch (error) {
        sink = error;
      }
    }
    await sleep(PACE_TICK_MS);
  }
  return { calls, elapsedMs: performance.now() - start };
}

/**
 * Calls as fast as it can for `durationMs`, yielding to the event loop every 64 calls (so that
 * store replies, notifications and sync timers are handled, as in a server).
 */
async function fullSpeed(
  breaker: Breaker | undefined,
  fn: () => Promise<number>,
  durationMs: number,
): Promise<{ calls: number; elapsedMs: number }> {
  const start = performance.now();
  const end = start + durationMs;
  let calls = 0;
  if (breaker === undefined) {
    while (performance.now() < end) {
      for (let i = 0; i < YIELD_EVERY; i++) {
        try {
          sink = await fn();
        } catch (error) {
          sink = error;
        }
      }
      calls += YIELD_EVERY;
      await yieldToEventLoop();
    }
  } else {
    while (performance.now() < end) {
      for (let i = 0; i < YIELD_EVERY; i++) {
        try {
          sink = await breaker.execute(fn);
        } catch (error) {
          sink = error;
        }
      }
      calls += YIELD_EVERY;
      await yieldToEventLoop();
    }
  }
  return { calls, elapsedMs: performance.now() - start };
}

/** A breaker on a counting proxy of `backend` (or on no store). */
function countedBreaker(
  backend: Backend | undefined,
  workload: Workload,
  syncInterval: number,
): { breaker: Breaker; counts: StoreCounts } {
  const counts = zeroCounts();
  const breaker = new Breaker({
    ...workload.options,
    name: uniqueName(`roundtrips-${workload.key}`),
    ...(backend === undefined ? {} : { store: countingStore(backend.store, counts), syncInterval }),
  });
  return { breaker, counts };
}

function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return "-";
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)} M`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(perSecond >= 1e5 ? 0 : 1)} k`;
  return perSecond.toFixed(0);
}

function formatPerThousand(value: number): string {
  if (!Number.isFinite(value)) return "-";
  if (value === 0) return "0";
  if (value >= 10) return value.toFixed(0);
  if (value >= 0.1) return value.toFixed(2);
  return value.toPrecision(2);
}

/** "reads+writes/s (round trips per 1,000 calls)" for a table cell. */
function roundTripCell(run: RoundTripRun): string {
  const seconds = run.elapsedMs / 1000;
  const reads = run.counts.reads / seconds;
  const writes = run.counts.writes / seconds;
  const perThousand = ((run.counts.reads + run.counts.writes) / run.calls) * 1000;
  const cell = `${reads.toFixed(1)}+${writes.toFixed(1)} (${formatPerThousand(perThousand)})`;
  return run.rate === undefined ? `${cell} at ${formatRate(callsPerSecond(run))}/s` : cell;
}

function callsPerSecond(run: { calls: number; elapsedMs: number }): number {
  return (run.calls / run.elapsedMs) * 1000;
}

/** Starts a run's breaker, lets it settle, then zeroes its counts (start-up is not counted). */
async function settled(
  backend: Backend | undefined,
  workload: Workload,
  syncInterval: number,
  rate: number | undefined,
): Promise<{ breaker: Breaker; run: RoundTripRun }> {
  const { breaker, counts } = countedBreaker(backend, workload, syncInterval);
  await sleep(50);
  Object.assign(counts, zeroCounts());
  return {
    breaker,
    run: { workload, syncInterval, rate, calls: 0, elapsedMs: 0, counts },
  };
}

/** Disposes a run's breaker, keeping the counts as they were when its calls ended. */
async function finish(breaker: Breaker, run: RoundTripRun): Promise<void> {
  const atEnd = { ...run.counts };
  await breaker[Symbol.asyncDispose]();
  Object.assign(run.counts, atEnd);
}

async function roundTrips(backends: readonly Backend[]): Promise<void> {
  const runs = new Map<Backend, RoundTripRun[]>(backends.map((backend) => [backend, []]));
  const serverCounts = new Map<Backend, ServerCounts>(
    backends.map((backend) => [backend, { hmget: 0, evalsha: 0, eval: 0 }]),
  );
  // Paced: every workload x syncInterval x rate of one backend at once.
  for (const backend of backends) {
    const started: Array<{ breaker: Breaker; run: RoundTripRun }> = [];
    for (const workload of WORKLOADS) {
      for (const syncInterval of SYNC_INTERVALS) {
        for (const rate of RATES) {
          const { breaker, counts } = countedBreaker(backend, workload, syncInterval);
          started.push({
            breaker,
            run: { workload, syncInterval, rate, calls: 0, elapsedMs: 0, counts },
          });
        }
      }
    }
    await sleep(200);
    for (const { run } of started) Object.assign(run.counts, zeroCounts());
    await resetServerCounts(backend);
    progress(`round trips, paced: ${backend.label} (${started.length} breakers at once)`);
    await Promise.all(started.map(async ({ breaker, run }) => {
      const done = await paced(breaker, run.workload.fn(), run.rate as number, PACED_MS);
      run.calls = done.calls;
      run.elapsedMs = done.elapsedMs;
    }));
    await addServerCounts(backend, serverCounts.get(backend) as ServerCounts);
    await Promise.all(started.map(({ breaker, run }) => finish(breaker, run)));
    runs.get(backend)?.push(...started.map(({ run }) => run));
  }

  // Full speed: one breaker at a time, for the round trips.
  for (const workload of WORKLOADS) {
    progress(`round trips, full speed: ${workload.key}`);
    for (const backend of backends) {
      for (const syncInterval of SYNC_INTERVALS) {
        const { breaker, run } = await settled(backend, workload, syncInterval, undefined);
        await resetServerCounts(backend);
        const done = await fullSpeed(breaker, workload.fn(), FULL_MS);
        run.calls = done.calls;
        run.elapsedMs = done.elapsedMs;
        await addServerCounts(backend, serverCounts.get(backend) as ServerCounts);
        await finish(breaker, run);
        runs.get(backend)?.push(run);
      }
    }
  }

  // Full speed, interleaved: calls/s with the syncs' work included.
  const sustained: Array<{ workload: Workload; results: CaseResult[] }> = [];
  for (const workload of WORKLOADS) {
    progress(`full speed, interleaved: ${workload.key}`);
    sustained.push({ workload, results: await fullSpeedInterleaved(workload, backends) });
  }

  print("## 2. Store round trips");
  print();
  print(
    "Each cell: store reads + compareAndSets per second, and in brackets round trips per " +
      "1,000 calls, counted by a proxy around the breaker's store (start-up's first read and " +
      `write not counted). Paced: ${PACED_MS} ms at the target rate, the ` +
      `${WORKLOADS.length * SYNC_INTERVALS.length * RATES.length} paced breakers of a backend ` +
      `at once (calls in bursts every ${PACE_TICK_MS} ms). Full speed: ${FULL_MS} ms each, one ` +
      `breaker at a time, yielding to the event loop every ${YIELD_EVERY} calls. Expected: at ` +
      "most one read and one write per syncInterval while calls flow, i.e. <= 1000/syncInterval " +
      "of each per second whatever the call rate, and no write for a healthy circuit under the " +
      "consecutive rule.",
  );
  print();
  const rateHeaders = [...RATES.map((rate) => `${formatRate(rate)} calls/s`), "full speed"];
  for (const backend of backends) {
    const backendRuns = runs.get(backend) as RoundTripRun[];
    const rows: string[][] = [];
    for (const workload of WORKLOADS) {
      for (const syncInterval of SYNC_INTERVALS) {
        const cells = backendRuns.filter((r) =>
          r.workload === workload && r.syncInterval === syncInterval
        );
        const byRate = (rate: number | undefined) => cells.find((r) => r.rate === rate);
        rows.push([
          workload.key,
          String(syncInterval),
          ...[...RATES, undefined].map((rate) => {
            const run = byRate(rate);
            return run === undefined ? "-" : roundTripCell(run);
          }),
        ]);
      }
    }
    print(`### ${backend.label}`);
    print();
    print(table(["workload", "syncInterval", ...rateHeaders], rows));
    print();
    const total = (pick: (c: StoreCounts) => number, full: boolean) =>
      backendRuns.filter((r) => (r.rate === undefined) === full).reduce(
        (sum, r) => sum + pick(r.counts),
        0,
      );
    const achieved = RATES.map((rate) => {
      const at = backendRuns.filter((r) => r.rate === rate);
      const mean = at.reduce((sum, r) => sum + callsPerSecond(r), 0) / Math.max(at.length, 1);
      return `${formatRate(rate)} -> ${formatRate(mean)}`;
    }).join(", ");
    const lines = [
      `Paced rates achieved (mean over breakers): ${achieved} calls/s.`,
      `Conflicts (compareAndSet finding another version): ${
        total((c) => c.conflicts, false) + total((c) => c.conflicts, true)
      }.`,
      `Notifications received: ${
        total((c) => c.notifications, false) + total((c) => c.notifications, true)
      }, of which of the breaker's own write before its compareAndSet resolved: paced ${
        total((c) => c.ownEarly, false)
      } of ${total((c) => c.writes, false)} writes, full speed ${
        total((c) => c.ownEarly, true)
      } of ${total((c) => c.writes, true)} writes.`,
    ];
    const server = serverCounts.get(backend) as ServerCounts;
    if (backend.redis !== undefined) {
      lines.push(
        `Server (INFO commandstats, over the timed parts): HMGET ${server.hmget}, EVALSHA ${server.evalsha}, EVAL ${server.eval}; proxies: ${
          total((c) => c.reads, false) + total((c) => c.reads, true)
        } reads, ${total((c) => c.writes, false) + total((c) => c.writes, true)} writes.`,
      );
    }
    print(lines.join(" "));
    print();
  }

  print("### Full speed with the syncs' work: calls/s, interleaved");
  print();
  print(
    `Each case calls for ${SLICE_MS} ms at full speed (yielding every ${YIELD_EVERY} calls), ` +
      `the cases one after the other with a rotating start, ${SLICE_ROUNDS} rounds after a ` +
      "warm-up round; the same breakers throughout, syncInterval 100, so that each slice " +
      "includes its breaker's syncs (and, where they happen, the extra writes counted above). " +
      "Cells: median calls/s over rounds (the median of per-round ratios of time per call to " +
      "no store's).",
  );
  print();
  const labels = sustained[0]?.results.map((r) => r.name) ?? [];
  print(table(
    ["workload", ...labels],
    sustained.map(({ workload, results }) => {
      const noStore = results.find((r) => r.name === NO_STORE) as CaseResult;
      return [
        workload.key,
        ...results.map((r) =>
          `${formatRate(1e9 / r.median)} (${formatRatio(pairedRatio(r, noStore))})`
        ),
      ];
    }),
  ));
  print();
}

/** The slices of `fullSpeedInterleaved`, ms. */
const SLICE_MS = 250;
/** Its timed rounds. */
const SLICE_ROUNDS = 7;

/**
 * Full-speed calls/s of the bare call, the breaker without a store and one breaker per
 * backend (syncInterval 100), interleaved in slices; results as ns/call per round.
 */
async function fullSpeedInterleaved(
  workload: Workload,
  backends: readonly Backend[],
): Promise<CaseResult[]> {
  const cases: Array<{ name: string; breaker: Breaker | undefined; fn: () => Promise<number> }> = [
    { name: BARE, breaker: undefined, fn: workload.fn() },
    {
      name: NO_STORE,
      breaker: new Breaker({ ...workload.options, name: uniqueName("sustained") }),
      fn: workload.fn(),
    },
    ...backends.map((backend) => ({
      name: `store: ${backend.label}`,
      breaker: new Breaker({
        ...workload.options,
        name: uniqueName("sustained"),
        store: backend.store,
        syncInterval: 100,
      }),
      fn: workload.fn(),
    })),
  ];
  await sleep(100);
  const samples: number[][] = cases.map(() => []);
  for (let round = 0; round <= SLICE_ROUNDS; round++) {
    for (let k = 0; k < cases.length; k++) {
      const index = (k + round) % cases.length;
      const slice = cases[index] as (typeof cases)[number];
      const done = await fullSpeed(slice.breaker, slice.fn, SLICE_MS);
      if (round > 0) (samples[index] as number[]).push((done.elapsedMs * 1e6) / done.calls);
    }
  }
  await Promise.all(cases.map((c) => c.breaker?.[Symbol.asyncDispose]()));
  return cases.map((c, i) => caseResult(c.name, samples[i] as number[], 0));
}

// ---------------------------------------------------------------------------------------------
// Part 3: trip to rejection across processes

/** A worker process, with its replies as a queue. */
class TripWorker {
  readonly #child: ChildProcess;
  readonly #replies: TripReply[] = [];
  #waiting: ((reply: TripReply) => void) | undefined;
  #stderr = "";
  readonly #exited: Promise<void>;

  constructor(config: TripWorkerConfig) {
    const [command, commandArgs] = isDeno
      ? [Deno.execPath(), ["run", "--allow-all", "--unstable-kv", WORKER, JSON.stringify(config)]]
      : [process.execPath, [WORKER, JSON.stringify(config)]];
    const child = spawn(command, commandArgs, { cwd: ROOT, stdio: ["pipe", "pipe", "pipe"] });
    this.#child = child;
    child.stderr?.on("data", (chunk) => {
      this.#stderr = (this.#stderr + String(chunk)).slice(-4000);
    });
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    if (child.stdout === null) throw new Error("the worker has no stdout");
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      if (!line.startsWith("{")) return;
      const reply = JSON.parse(line) as TripReply;
      const waiting = this.#waiting;
      if (waiting !== undefined) {
        this.#waiting = undefined;
        waiting(reply);
      } else {
        this.#replies.push(reply);
      }
    });
  }

  send(command: TripCommand): void {
    this.#child.stdin?.write(`${JSON.stringify(command)}\n`);
  }

  /** The next reply, which must be `op`; fails after `timeoutMs`. */
  async expect<Op extends TripReply["op"]>(
    op: Op,
    timeoutMs = 15_000,
  ): Promise<Extract<TripReply, { op: Op }>> {
    const queued = this.#replies.shift();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const reply = queued ?? await Promise.race([
      new Promise<TripReply>((resolve) => {
        this.#waiting = resolve;
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`worker: no "${op}" within ${timeoutMs} ms\n${this.#stderr}`)),
          timeoutMs,
        );
      }),
      this.#exited.then(() => {
        throw new Error(`worker exited while "${op}" was awaited\n${this.#stderr}`);
      }),
    ]);
    clearTimeout(timer);
    if (reply.op !== op) throw new Error(`worker: expected "${op}", got ${JSON.stringify(reply)}`);
    return reply as Extract<TripReply, { op: Op }>;
  }

  async close(): Promise<void> {
    if (this.#child.exitCode === null) {
      this.send({ op: "exit" });
      this.#child.stdin?.end();
      const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5_000);
      await this.#exited;
      clearTimeout(timer);
    }
  }
}

/** One backend of part 3: how the worker opens it, and this process's store on it. */
interface TripBackend {
  readonly label: string;
  readonly store: StateStore;
  readonly worker: TripWorkerConfig;
  /** The parent waits a random 0..phaseMs before tripping (the worker's sync phase varies). */
  readonly phaseMs: number;
}

interface TripResult {
  readonly label: string;
  /** Trip here to the worker's first rejected call, ms. */
  readonly rejected: number[];
  /** Trip here to the worker's breaker announcing open, ms. */
  readonly learned: number[];
  /** Trip here to this process receiving the worker's report (one clock), ms. */
  readonly reported: number[];
  readonly callGapMs: number[];
  readonly clockOffsetMs: number;
  readonly clockRttMs: number;
  storeErrors: number;
  missed: number;
}

async function tripLatency(backend: TripBackend): Promise<TripResult> {
  progress(`trip to rejection: ${backend.label}`);
  const worker = new TripWorker(backend.worker);
  try {
    await worker.expect("started", 30_000);
    // The two clocks: the offset of the worker's at the midpoint of the least-delayed exchange.
    let clockOffsetMs = NaN;
    let clockRttMs = Infinity;
    for (let i = 0; i < 20; i++) {
      const sent = now();
      worker.send({ op: "clock" });
      const { at } = await worker.expect("clock");
      const received = now();
      if (received - sent < clockRttMs) {
        clockRttMs = received - sent;
        clockOffsetMs = at - (sent + received) / 2;
      }
    }
    const result: TripResult = {
      label: backend.label,
      rejected: [],
      learned: [],
      reported: [],
      callGapMs: [],
      clockOffsetMs,
      clockRttMs,
      storeErrors: 0,
      missed: 0,
    };
    for (let trip = 0; trip < TRIPS; trip++) {
      const name = uniqueName("trip");
      let trippedAt: number | undefined;
      const breaker = new Breaker({
        name,
        store: backend.store,
        failureThreshold: 3,
        recoveryTimeout: 600_000,
        syncInterval: backend.worker.syncInterval,
        listeners: [{
          stateChange: ({ to }) => {
            if (to === "open") trippedAt ??= now();
          },
          storeError: () => {
            result.storeErrors++;
          },
        }],
      });
      worker.send({ op: "watch", name });
      await worker.expect("ready");
      await sleep(Math.random() * backend.phaseMs);
      for (let i = 0; i < 3; i++) {
        try {
          await breaker.execute(failing);
        } catch (error) {
          sink = error;
        }
      }
      const observed: TripObservation = await worker.expect(
        "observed",
        backend.worker.timeoutMs + 5_000,
      );
      const reportedAt = now();
      await breaker[Symbol.asyncDispose]();
      if (trippedAt === undefined) throw new Error(`${name}: the circuit did not open here`);
      result.storeErrors += observed.storeErrors;
      result.callGapMs.push(observed.callGapMs);
      if (observed.rejectedAt === undefined) {
        result.missed++;
        continue;
      }
      result.rejected.push(observed.rejectedAt - trippedAt);
      if (observed.learnedAt !== undefined) result.learned.push(observed.learnedAt - trippedAt);
      result.reported.push(reportedAt - trippedAt);
    }
    return result;
  } finally {
    await worker.close();
  }
}

function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return "-";
  return ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2);
}

function spread(values: readonly number[]): string {
  if (values.length === 0) return "-";
  return `${formatMs(median(values))} / ${formatMs(quantile(values, 0.95))} / ${
    formatMs(Math.max(...values))
  }`;
}

async function trips(backends: readonly TripBackend[]): Promise<void> {
  const results: TripResult[] = [];
  for (const backend of backends) results.push(await tripLatency(backend));
  print("## 3. Trip in one process to rejection in another");
  print();
  print(
    `${TRIPS} trips per backend. The other process (bench/shared_trip_worker.ts, same runtime, ` +
      "its own client or KV handle) calls a fresh breaker of the same name with a healthy fn, " +
      "sleeping pollMs between calls; this process trips its breaker (3 failures, " +
      "failureThreshold 3) after a random pause. Times from this breaker's stateChange to open, " +
      "in `performance.timeOrigin + performance.now()` of each process (sub-ms, comparable: " +
      "see the clock offset column, estimated from 20 clock exchanges). " +
      "Columns: median / p95 / max, in ms.",
  );
  print();
  print(table(
    [
      "backend",
      "to first rejected call",
      "to its breaker learning open",
      "to report received (one clock)",
      "call gap (median)",
      "clock offset (rtt)",
      "missed",
      "store errors",
    ],
    results.map((r) => [
      r.label,
      spread(r.rejected),
      spread(r.learned),
      spread(r.reported),
      `${formatMs(median(r.callGapMs))} ms`,
      `${r.clockOffsetMs.toFixed(3)} ms (${r.clockRttMs.toFixed(2)})`,
      String(r.missed),
      String(r.storeErrors),
    ]),
  ));
  print();
}

// ---------------------------------------------------------------------------------------------
// Main

function gitDescription(): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT })
      .toString().trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "mod.ts", "src"], {
      cwd: ROOT,
    }).toString().trim().split("\n").filter((line) => line !== "");
    return dirty.length === 0 ? head : `${head} plus uncommitted ${dirty.join(", ")}`;
  } catch {
    return "unknown";
  }
}

/** A short hash of the files the measured paths load: `shared` is the shared-state part. */
function sourceHashes(): { all: string; shared: string } {
  const files: string[] = ["mod.ts"];
  const walk = (directory: string) => {
    for (const entry of readdirSync(join(ROOT, directory), { withFileTypes: true })) {
      const path = `${directory}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else if (path.endsWith(".ts")) files.push(path);
    }
  };
  walk("src");
  files.sort();
  const hashOf = (paths: readonly string[]) => {
    const hash = createHash("sha1");
    for (const path of paths) hash.update(path).update(readFileSync(join(ROOT, path)));
    return hash.digest("hex").slice(0, 10);
  };
  return { all: hashOf(files), shared: hashOf(files.filter((path) => SHARED_FILES.has(path))) };
}

/** The files of the shared-state path (besides the breaker itself). */
const SHARED_FILES = new Set([
  "src/shared_circuit.ts",
  "src/store.ts",
  "src/memory_store.ts",
  "src/redis_store.ts",
  "src/deno_kv_store.ts",
  "src/core/tally.ts",
]);

function packageVersion(name: string): string {
  try {
    const manifest = JSON.parse(
      readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8"),
    ) as { version?: string };
    return manifest.version ?? "?";
  } catch {
    return "?";
  }
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(" ");

/** The machine's busy CPU time so far, ms (Linux's /proc/stat; NaN elsewhere). */
function machineBusyMs(): number {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]?.trim().split(/\s+/)
      .slice(1).map(Number) ?? [];
    const total = fields.slice(0, 8).reduce((sum, ticks) => sum + ticks, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return (total - idle) * 10; // USER_HZ is 100
  } catch {
    return NaN;
  }
}

/** Runs a part, then prints how busy the rest of the machine was meanwhile. */
async function measured(part: string, body: () => Promise<void>): Promise<void> {
  const busy = machineBusyMs();
  const own = process.cpuUsage();
  const start = performance.now();
  await body();
  const wallMs = performance.now() - start;
  const ownUsage = process.cpuUsage(own);
  const ownMs = (ownUsage.user + ownUsage.system) / 1000;
  const otherMs = machineBusyMs() - busy - ownMs;
  print(
    `_${part}: ${(wallMs / 1000).toFixed(0)} s; this process used ${
      ((ownMs / wallMs) * 100).toFixed(0)
    } % of a CPU, all other processes (redis-server and the trip worker included) ${
      ((otherMs / wallMs) * 100).toFixed(0)
    } % (of 200 %); load average now ${load()}._`,
  );
  print();
}

const started = performance.now();
const server: RedisServer = await startRedisServer();
const clients: Array<{ kind: ClientKind; client: OpenClient }> = [];
let kv: Deno.Kv | undefined;
let kvDirectory: string | undefined;
let cleaned: Promise<void> | undefined;
/** Closes the clients and the KV file, removes the KV directory and stops redis-server. */
function cleanUp(): Promise<void> {
  cleaned ??= (async () => {
    for (const { client } of clients) await client.close().catch(() => {});
    kv?.close();
    if (kvDirectory !== undefined) rmSync(kvDirectory, { recursive: true, force: true });
    await server.close();
  })();
  return cleaned;
}
const onSignal = (signal: string) => {
  progress(`${signal}: cleaning up`);
  cleanUp().finally(() => process.exit(130));
};
process.once("SIGINT", onSignal);
process.once("SIGTERM", onSignal);
try {
  for (const kind of clientKinds()) clients.push({ kind, client: await kind.open(server.url) });
  const serverVersion = /redis_version:([^\r\n]+)/.exec(
    String(await (clients[0] as { client: OpenClient }).client.command("INFO", "server")),
  )?.[1];
  let kvPath: string | undefined;
  if (isDeno) {
    kvDirectory = mkdtempSync(join(tmpdir(), "circuit-bench-kv-"));
    kvPath = join(kvDirectory, "shared.kv");
    kv = await Deno.openKv(kvPath);
  }

  const hashes = sourceHashes();
  print(`# Shared state: ${runtime.versions}`);
  print();
  print(
    `Code: ${gitDescription()}; sha1 of mod.ts + src/ ${hashes.all}, of the store files ${hashes.shared}. CPU: ${
      cpus()[0]?.model ?? "?"
    } x ${cpus().length}. ` +
      `redis-server ${serverVersion ?? "?"} (private, 127.0.0.1), redis ${
        packageVersion("redis")
      }, ioredis ${packageVersion("ioredis")}. Load average at start: ${load()}.`,
  );
  if (!isDeno) print("Deno KV rows are Deno-only: run this file under Deno for them.");
  print();

  const backendsOf = (prefix: string): Backend[] => {
    const backends: Backend[] = [{ label: "memoryStore()", store: memoryStore() }];
    for (const { kind, client } of clients) {
      backends.push({
        label: `redisStore(${kind.name})`,
        store: redisStore(client.client, { prefix: `${prefix}:` }),
        redis: client,
        kind: kind.name,
      });
    }
    if (kv !== undefined) {
      backends.push({
        label: "denoKvStore (local file)",
        store: denoKvStore(kv, { prefix: [prefix] }),
      });
    }
    return backends;
  };

  if (wanted("throughput")) {
    await measured("Part 1", () => throughput(backendsOf("throughput")));
  }
  if (wanted("roundtrips")) await measured("Part 2", () => roundTrips(backendsOf("roundtrips")));
  if (wanted("trip")) {
    const tripBackends: TripBackend[] = [];
    const base = { pollMs: 1, settleMs: 150, timeoutMs: 5_000 };
    for (const { kind, client } of clients) {
      tripBackends.push({
        label: `Redis pub/sub, ${kind.name}, syncInterval 1000`,
        store: redisStore(client.client, { prefix: "bench:" }),
        worker: {
          ...base,
          store: "redis",
          client: kind.name,
          url: server.url,
          syncInterval: 1_000,
        },
        phaseMs: 20,
      });
    }
    if (kv !== undefined && kvPath !== undefined) {
      for (const syncInterval of [100, 1_000]) {
        tripBackends.push({
          label: `Deno KV file, syncInterval ${syncInterval}`,
          store: denoKvStore(kv, { prefix: ["bench"] }),
          worker: { ...base, store: "kv", kvPath, syncInterval },
          phaseMs: syncInterval,
        });
      }
    }
    await measured("Part 3", () => trips(tripBackends));
  }
  // Every breaker is disposed: only the benchmark's own client connections should be left
  // (a store's subscriber connection closes with its last subscription).
  await sleep(200);
  const connections = String(
    await (clients[0] as { client: OpenClient }).client.command("CLIENT", "LIST"),
  ).split("\n").filter((line) => line.startsWith("id=")).length;
  print(
    `Redis connections open after disposing every breaker: ${connections} (the benchmark's ` +
      `own clients: ${clients.length}).`,
  );
  print();
  print(
    `Whole run: ${
      ((performance.now() - started) / 1000).toFixed(0)
    } s. Load average at end: ${load()}.`,
  );
} finally {
  await cleanUp();
  // A signal listener would keep the process alive.
  process.off("SIGINT", onSignal);
  process.off("SIGTERM", onSignal);
}
if (args.has("print-sink")) console.log(sink);
