/**
 * One circuit shared by several processes through real stores: a redis-server started here
 * and a Deno KV file. Each process runs tests/fixtures/shared_worker.ts and reports JSON. The
 * Redis tests are skipped without redis-server, or fail under CI=true (service_tests.ts).
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { WorkerConfig } from "./fixtures/shared_worker.ts";
import { describe, it } from "./timer_leaks.ts";
import { withRedisServer } from "./redis_server.ts";
import { testsNeeding } from "./service_tests.ts";

const WORKER = fileURLToPath(new URL("./fixtures/shared_worker.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const isBun = "Bun" in globalThis;
const isDeno = "Deno" in globalThis;
/** Deno runs the Deno KV workers: this runtime, or the one from npm under Bun and Node.js. */
const DENO = isDeno ? process.execPath : join(ROOT, "node_modules", ".bin", "deno");
type Runtime = "deno" | "bun" | "node";
const PROCESSES = 4;

type Report = Record<string, unknown> & { id: number };

/** Runs one worker process to its end and returns its report. */
function runWorker(config: WorkerConfig, runtime: Runtime): Promise<Report> {
  const [command, args] = runtime === "deno"
    ? [DENO, ["run", "--allow-all", "--unstable-kv", WORKER, JSON.stringify(config)]]
    : runtime === "bun"
    ? [process.execPath, ["run", WORKER, JSON.stringify(config)]]
    : [process.execPath, [WORKER, JSON.stringify(config)]];
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) {
        return reject(new Error(`worker ${config.id} failed: ${error.message}\n${stderr}`));
      }
      const last = stdout.trim().split("\n").at(-1) ?? "";
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`worker ${config.id} printed no report:\n${stdout}\n${stderr}`));
      }
    });
  });
}

/**
 * Time for every process to start and connect before the common start. Node.js strips the types
 * of every module again at each start (about twice Deno's CPU time), so its workers get longer.
 */
function startDelay(runtime: Runtime): number {
  return runtime === "node" ? 3_000 : 1_500;
}

/** Starts `PROCESSES` workers together (at a common start time) and collects their reports. */
function runAll(
  base: Omit<WorkerConfig, "id" | "startAt" | "client">,
  clients: ReadonlyArray<WorkerConfig["client"]>,
  runtime: Runtime,
): Promise<Report[]> {
  const startAt = Date.now() + startDelay(runtime);
  return Promise.all(
    Array.from({ length: PROCESSES }, (_, id) => {
      const client = clients[id % clients.length];
      return runWorker({ ...base, id, startAt, ...(client ? { client } : {}) }, runtime);
    }),
  );
}

/** The redis clients each runtime's workers use, mixed in one test. */
const REDIS_CLIENTS: ReadonlyArray<WorkerConfig["client"]> = isBun
  ? ["bun", "ioredis", "node-redis", "bun"]
  : ["node-redis", "ioredis"];
const RUNTIME: Runtime = isBun ? "bun" : isDeno ? "deno" : "node";
/** `it` for the tests that need redis-server. */
const redisIt = testsNeeding("redis-server").it;

/** The failure count the store holds for `name`, read by a worker process. */
async function storedFailureCount(
  config: Omit<WorkerConfig, "id" | "scenario" | "startAt" | "durationMs">,
): Promise<unknown> {
  const report = await runWorker(
    { ...config, id: 99, scenario: "read", startAt: 0, durationMs: 0 },
    config.store === "kv" ? "deno" : RUNTIME,
  );
  return report.failureCount;
}

function assertOneTrialPerPeriod(reports: Report[]): number {
  const trials = new Map<number, number>();
  for (const report of reports) {
    for (const run of report.runs as Array<{ state: string; generation: number }>) {
      if (run.state !== "half-open") continue;
      trials.set(run.generation, (trials.get(run.generation) ?? 0) + 1);
    }
  }
  // While the store answers, one trial per period. A store that stalls past its patience
  // (max(syncInterval, 1000) ms: an overloaded machine can stall a KV file that long) lets each
  // process take the lease locally, as documented; only a reported stall or failure excuses it.
  const stalls = reports.flatMap((r) => (r.storeErrorMessages as string[] | undefined) ?? []);
  let single = 0;
  for (const [generation, count] of trials) {
    if (count === 1) {
      single++;
      continue;
    }
    assert.ok(
      stalls.length > 0,
      `half-open generation ${generation} ran ${count} trials, and no process reported the store stalled or failing`,
    );
    console.warn(
      `half-open generation ${generation} ran ${count} trials while the store stalled: ${
        stalls[0]
      }`,
    );
  }
  assert.ok(single >= 3, `only ${single} half-open periods ran exactly one trial`);
  return trials.size;
}

function assertAllSeeTheTrip(reports: Report[]): number {
  const trippedAt = reports.find((r) => r.id === 0)!.trippedAt as number;
  assert.equal(typeof trippedAt, "number", "process 0 tripped the circuit");
  let slowest = 0;
  for (const report of reports) {
    assert.equal(typeof report.seenAt, "number", `process ${report.id} saw the trip`);
    slowest = Math.max(slowest, (report.seenAt as number) - trippedAt);
  }
  return slowest;
}

describe("shared circuits across processes", () => {
  redisIt("redisStore: a trip in one process is seen by all", async () => {
    await withRedisServer(async (server) => {
      const reports = await runAll(
        { scenario: "trip", store: "redis", url: server.url, name: "trip", durationMs: 3_000 },
        REDIS_CLIENTS,
        RUNTIME,
      );
      const slowest = assertAllSeeTheTrip(reports);
      assert.ok(slowest < 1_000, `seen within ${slowest} ms`);
    });
  });

  redisIt("redisStore: the shared failure count equals the failures made", async () => {
    await withRedisServer(async (server) => {
      const reports = await runAll(
        { scenario: "count", store: "redis", url: server.url, name: "count", durationMs: 800 },
        REDIS_CLIENTS,
        RUNTIME,
      );
      const made = reports.reduce((sum, r) => sum + (r.made as number), 0);
      assert.ok(made > 100, `${made} failures made`);
      for (const report of reports) assert.equal(report.rejected, 0);
      assert.equal(
        await storedFailureCount({
          store: "redis",
          url: server.url,
          name: "count",
          client: REDIS_CLIENTS[0]!,
        }),
        made,
      );
    });
  });

  redisIt("redisStore: exactly one trial call per half-open period across processes", async () => {
    await withRedisServer(async (server) => {
      const reports = await runAll(
        { scenario: "trials", store: "redis", url: server.url, name: "trials", durationMs: 1_500 },
        REDIS_CLIENTS,
        RUNTIME,
      );
      const periods = assertOneTrialPerPeriod(reports);
      assert.ok(periods >= 3, `${periods} half-open periods`);
    });
  });

  redisIt(
    "redisStore: killing redis-server mid-run loses no call and the counts reconcile",
    async () => {
      await withRedisServer(async (server) => {
        const running = runAll(
          { scenario: "count", store: "redis", url: server.url, name: "outage", durationMs: 3_000 },
          REDIS_CLIENTS,
          RUNTIME,
        );
        // 0.5 s into the run
        await new Promise((resolve) => setTimeout(resolve, startDelay(RUNTIME) + 500));
        await server.stop();
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        await server.restart();
        const reports = await running;
        const made = reports.reduce((sum, r) => sum + (r.made as number), 0);
        for (const report of reports) {
          assert.equal(report.rejected, 0, `process ${report.id}: no call turned away`);
          assert.equal(
            report.other,
            0,
            `process ${report.id}: no call failed but by its own error`,
          );
        }
        assert.ok(
          reports.some((r) => (r.storeErrors as number) > 0),
          "the outage was reported to storeError",
        );
        assert.equal(
          await storedFailureCount({
            store: "redis",
            url: server.url,
            name: "outage",
            client: REDIS_CLIENTS[0]!,
          }),
          made,
        );
      }, { persistent: true });
    },
  );

  /** Runs `body` with a fresh Deno KV file, removed after it. */
  async function withKvFile(body: (kvPath: string) => Promise<void>): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "circuit-kv-"));
    try {
      await body(join(dir, "kv.sqlite3"));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it("denoKvStore: a trip in one process is seen by all on one KV file", async () => {
    await withKvFile(async (kvPath) => {
      const reports = await runAll(
        { scenario: "trip", store: "kv", kvPath, name: "trip", durationMs: 3_000 },
        [undefined],
        "deno",
      );
      // A KV file's watch() sees only its own process's writes: others learn at their sync.
      const slowest = assertAllSeeTheTrip(reports);
      assert.ok(slowest < 2_000, `seen within ${slowest} ms`);
    });
  });

  it("denoKvStore: exactly one trial call per half-open period across processes", async () => {
    await withKvFile(async (kvPath) => {
      const reports = await runAll(
        { scenario: "trials", store: "kv", kvPath, name: "trials", durationMs: 1_500 },
        [undefined],
        "deno",
      );
      const periods = assertOneTrialPerPeriod(reports);
      assert.ok(periods >= 3, `${periods} half-open periods`);
    });
  });

  it("denoKvStore: compare-and-set conflicts under contention lose no update", async () => {
    await withKvFile(async (kvPath) => {
      // Every process writes its counts as often as it can (syncInterval 0).
      const reports = await runAll(
        { scenario: "count", store: "kv", kvPath, name: "count", durationMs: 800, syncInterval: 0 },
        [undefined],
        "deno",
      );
      const made = reports.reduce((sum, r) => sum + (r.made as number), 0);
      assert.ok(made > 100, `${made} failures made`);
      assert.equal(await storedFailureCount({ store: "kv", kvPath, name: "count" }), made);
    });
  });
});
