/**
 * Shared circuits under load, faults and hostile store contents (issue 16), across processes:
 * a redis-server started here (stalled with SIGSTOP, killed), and Deno KV files. Each process
 * runs tests/fixtures/shared_fault_worker.ts and reports JSON; no backend is mocked.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FaultWorkerConfig, FaultWorkerReport } from "./fixtures/shared_fault_worker.ts";
import { clientKind } from "./redis_clients.ts";
import { type RedisServer, withRedisServer } from "./redis_server.ts";
import { testsNeeding } from "./service_tests.ts";
import { describe, it } from "./timer_leaks.ts";

const WORKER = fileURLToPath(new URL("./fixtures/shared_fault_worker.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const isBun = "Bun" in globalThis;
const isDeno = "Deno" in globalThis;
/** Deno runs the Deno KV workers: this runtime, or the one from npm under Bun and Node.js. */
const DENO = isDeno ? process.execPath : join(ROOT, "node_modules", ".bin", "deno");
type Runtime = "deno" | "bun" | "node";
const RUNTIME: Runtime = isBun ? "bun" : isDeno ? "deno" : "node";
/** The redis clients each runtime's workers use, mixed in one test. */
const REDIS_CLIENTS: ReadonlyArray<FaultWorkerConfig["client"]> = isBun
  ? ["bun", "ioredis", "node-redis", "bun"]
  : ["node-redis", "ioredis"];
/** A worker that has not reported by then has hung (a dispose that never returns). */
const WORKER_TIMEOUT_MS = 20_000;
/** A failure threshold never reached (options travel as JSON, which has no Infinity). */
const NEVER = 1_000_000_000;

type WorkerSettings = Omit<FaultWorkerConfig, "id" | "startAt" | "client">;

/** Runs one worker process to its end and returns its report. */
function runWorker(config: FaultWorkerConfig, runtime: Runtime): Promise<FaultWorkerReport> {
  const [command, args] = runtime === "deno"
    ? [DENO, ["run", "--allow-all", "--unstable-kv", WORKER, JSON.stringify(config)]]
    : runtime === "bun"
    ? [process.execPath, ["run", WORKER, JSON.stringify(config)]]
    : [process.execPath, [WORKER, JSON.stringify(config)]];
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd: ROOT, timeout: WORKER_TIMEOUT_MS }, (error, stdout, stderr) => {
      const last = stdout.trim().split("\n").at(-1) ?? "";
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(
          new Error(
            `worker ${config.id} printed no report${
              error ? ` (${error.message})` : ""
            }:\n${stdout}\n${stderr}`,
          ),
        );
      }
    });
  });
}

/**
 * Time for every process to start and connect before the common start. Node.js strips the
 * types of every module again at each start, so its workers get longer.
 */
function startDelay(runtime: Runtime): number {
  return runtime === "node" ? 3_000 : 1_500;
}

/** Starts `count` workers together (at a common start time); resolves with their reports. */
function runAll(
  settings: WorkerSettings,
  count: number,
  runtime: Runtime = settings.store === "kv" ? "deno" : RUNTIME,
): { startAt: number; reports: Promise<FaultWorkerReport[]> } {
  const startAt = Date.now() + startDelay(runtime);
  const reports = Promise.all(
    Array.from({ length: count }, (_, id) => {
      const client = settings.store === "redis"
        ? REDIS_CLIENTS[id % REDIS_CLIENTS.length]
        : undefined;
      return runWorker({ ...settings, id, startAt, ...(client ? { client } : {}) }, runtime);
    }),
  );
  return { startAt, reports };
}

/** Runs one worker that reports the raw stored value. */
async function readStored(settings: Pick<WorkerSettings, "store" | "url" | "kvPath" | "name">) {
  const [report] = await runAll(
    { ...settings, scenario: "read", durationMs: 0 },
    1,
    settings.store === "kv" ? "deno" : RUNTIME,
  ).reports;
  return report!.stored;
}

/** Runs `body` with a raw command function on the server (node-redis, every runtime has it). */
async function withCommands<T>(
  server: RedisServer,
  body: (command: (command: string, ...args: string[]) => Promise<unknown>) => Promise<T>,
): Promise<T> {
  const client = await clientKind("node-redis").open(server.url);
  try {
    return await body(client.command);
  } finally {
    await client.close();
  }
}

/** Runs `body` with a fresh Deno KV file, removed after it. */
async function withKvFile(body: (kvPath: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "circuit-kv-"));
  try {
    await body(join(dir, "kv.sqlite3"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const sleepUntil = (at: number) =>
  new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));

/** A snapshot's JSON, as a breaker writes it. */
function snapshotJson(fields: Record<string, unknown>): string {
  return JSON.stringify({
    version: 1,
    state: "closed",
    generation: 0,
    failureCount: 0,
    openUntil: null,
    openings: 0,
    trialSuccesses: 0,
    rampStart: null,
    rampUntil: null,
    rampCalls: 0,
    window: null,
    lease: null,
    ...fields,
  });
}

/** The stored value is a snapshot a breaker wrote (parsed), else fails saying what it is. */
function assertSnapshot(stored: unknown): Record<string, unknown> {
  const text = typeof stored === "object" && stored !== null
    ? (stored as { value?: unknown }).value
    : stored;
  assert.equal(
    typeof text,
    "string",
    `a snapshot's JSON is stored, found ${JSON.stringify(stored)}`,
  );
  const parsed = JSON.parse(text as string);
  assert.equal(parsed.version, 1);
  return parsed;
}

/** The Redis tests follow the suite's one rule for a missing redis-server. */
const redisIt = testsNeeding("redis-server").it;

describe("shared circuits under load and faults, across processes", () => {
  for (
    const [rule, options, failureRatio] of [
      ["a rate rule, 10 % failures", { failureRate: 0.9, minimumCalls: 1_000_000 }, 0.1],
      ["the consecutive rule, 50 % failures", { failureThreshold: NEVER }, 0.5],
    ] as const
  ) {
    redisIt(
      `redisStore: each process writes its counts at most once per syncInterval (${rule})`,
      async () => {
        await withRedisServer(async (server) => {
          const syncInterval = 200;
          const durationMs = 2_000;
          const reports = await runAll({
            scenario: "calls",
            store: "redis",
            url: server.url,
            name: "load",
            durationMs,
            options: { ...options, syncInterval },
            failureRatio,
            pauseMs: 1,
          }, 4).reports;
          for (const report of reports) {
            assert.ok(report.made > 50, `process ${report.id} made ${report.made} failures`);
            assert.equal(report.rejected, 0);
            // One write per interval, plus the first (nothing stored yet) and the last (dispose);
            // a write that found another version stored is tried again after a read.
            const most = durationMs / syncInterval + 2;
            const written = report.writes - report.conflicts;
            assert.ok(
              written <= most && report.conflicts <= most / 2,
              `process ${report.id} wrote ${written} times (and ${report.conflicts} conflicts) in ${durationMs} ms (at most ${most})`,
            );
          }
        });
      },
    );
  }

  redisIt(
    "redisStore: a hash without a value, or a key of another type, is reported once and repaired",
    async () => {
      await withRedisServer(async (server) => {
        await withCommands(server, async (command) => {
          await command("HSET", "test:no-value", "version", "7");
          await command("SET", "test:a-string", "not a hash");
        });
        for (const name of ["no-value", "a-string"]) {
          const reports = await runAll({
            scenario: "calls",
            store: "redis",
            url: server.url,
            name,
            durationMs: 1_500,
            options: { failureThreshold: NEVER, syncInterval: 100 },
            failureRatio: 1,
            pauseMs: 2,
          }, 4).reports;
          for (const report of reports) {
            const reads = report.storeErrors.filter((e) => e.operation === "read");
            assert.ok(
              reads.length <= 1,
              `${name}: process ${report.id} reported ${reads.length} times`,
            );
            assert.ok(
              report.reads + report.writes < 100,
              `${name}: process ${report.id} made ${report.reads} reads and ${report.writes} writes`,
            );
          }
          assert.ok(
            reports.some((report) => report.storeErrors.some((e) => e.operation === "read")),
            `${name}: some process reported the unreadable value`,
          );
          const made = reports.reduce((sum, report) => sum + report.made, 0);
          const stored = assertSnapshot(
            await readStored({ store: "redis", url: server.url, name }),
          );
          assert.equal(stored.failureCount, made, `${name}: every failure counted once`);
        }
      });
    },
  );

  it("denoKvStore: a value that is not a string is reported once and repaired", async () => {
    await withKvFile(async (kvPath) => {
      const name = "not-a-string";
      await runAll({ scenario: "preset", store: "kv", kvPath, name, durationMs: 0, preset: 42 }, 1)
        .reports;
      const reports = await runAll({
        scenario: "calls",
        store: "kv",
        kvPath,
        name,
        durationMs: 1_500,
        options: { failureThreshold: NEVER, syncInterval: 100 },
        failureRatio: 1,
        pauseMs: 2,
      }, 3).reports;
      for (const report of reports) {
        const reported = report.storeErrors.filter((e) => e.message.includes("must be a string"));
        assert.ok(reported.length <= 1, `process ${report.id} reported ${reported.length} times`);
      }
      assert.ok(reports.some((report) => report.storeErrors.length > 0), "the value was reported");
      const made = reports.reduce((sum, report) => sum + report.made, 0);
      const stored = assertSnapshot(await readStored({ store: "kv", kvPath, name }));
      assert.equal(
        stored.failureCount,
        made,
        `every failure counted once; ${JSON.stringify(reports.map((r) => r.storeErrors))}`,
      );
    });
  });

  redisIt(
    "redisStore: stored times beyond what the policy can set are bounded and reported",
    async () => {
      await withRedisServer(async (server) => {
        const forged = {
          "far-open": snapshotJson({
            state: "open",
            generation: 3,
            openUntil: 8.64e15,
            openings: 1,
          }),
          "far-lease": snapshotJson({
            state: "half-open",
            generation: 4,
            lease: { holder: "forged", until: 8.64e15 },
          }),
        };
        await withCommands(server, async (command) => {
          for (const [name, value] of Object.entries(forged)) {
            await command("HSET", `test:${name}`, "version", "1", "value", value);
          }
        });
        for (const name of Object.keys(forged)) {
          // The longest this policy can set: 400 ms open (maxRetryAfter), 400 ms leases (timeout).
          const reports = await runAll({
            scenario: "calls",
            store: "redis",
            url: server.url,
            name,
            durationMs: 2_000,
            options: {
              recoveryTimeout: 200,
              maxRetryAfter: 400,
              timeout: 400,
              failureThreshold: 1,
            },
            pauseMs: 5,
          }, 4).reports;
          const last = Math.max(...reports.map((report) => report.lastAdmittedMs));
          // Open (or leased) for 400 ms at most from the first read; then a trial closes it.
          assert.ok(last > 1_500, `${name}: calls are admitted again (last at ${last} ms)`);
          // A process reads the forged time if it begins before any other has replaced it, which
          // takes the 400 ms bound: on a loaded machine a process may start up later than that.
          const first = Math.min(...reports.map((report) => report.lateMs));
          const onTime = reports.filter((report) => report.lateMs - first < 200);
          for (const report of onTime) {
            assert.ok(
              report.storeErrors.some((e) => e.name === "RangeError" && e.operation === "read"),
              `${name}: process ${report.id} reported the forged time: ${
                JSON.stringify(report.storeErrors)
              }`,
            );
          }
        }
      });
    },
  );

  for (const fault of ["stalled", "killed"] as const) {
    redisIt(
      `redisStore: asyncDispose returns within max(syncInterval, 1000) ms on a ${fault} server, reporting what it did not write`,
      async () => {
        await withRedisServer(async (server) => {
          const durationMs = 1_500;
          const run = runAll({
            scenario: "calls",
            store: "redis",
            url: server.url,
            name: "dispose",
            durationMs,
            options: { failureThreshold: NEVER, syncInterval: 500 },
            failureRatio: 1,
            pauseMs: 2,
          }, 4);
          // The fault comes 0.3 s before the processes stop calling and dispose.
          await sleepUntil(run.startAt + durationMs - 300);
          if (fault === "stalled") server.pause();
          else await server.stop();
          try {
            const reports = await run.reports;
            for (const report of reports) {
              assert.ok(
                // 1000 ms, and a little for a busy machine's late timers.
                report.disposeMs <= 1_000 + 400,
                `process ${report.id}: dispose took ${Math.round(report.disposeMs)} ms`,
              );
              assert.ok(
                report.storeErrors.some((e) => e.message.includes("closed without writing")),
                `process ${report.id} reported what it did not write: ${
                  JSON.stringify(report.storeErrors)
                }`,
              );
            }
          } finally {
            if (fault === "stalled") server.resume();
          }
        });
      },
    );
  }

  redisIt(
    "redisStore: a server stalled while the circuit is closed is reported by every process, naming the operation",
    async () => {
      await withRedisServer(async (server) => {
        const durationMs = 4_000;
        const run = runAll({
          scenario: "calls",
          store: "redis",
          url: server.url,
          name: "stall",
          durationMs,
          options: { failureThreshold: NEVER, syncInterval: 100 },
          failureRatio: 0.1,
          pauseMs: 2,
        }, 4);
        await sleepUntil(run.startAt + 500);
        server.pause();
        await sleepUntil(run.startAt + 3_000);
        server.resume();
        const reports = await run.reports;
        for (const report of reports) {
          assert.equal(report.rejected, 0);
          const stalls = report.storeErrors.filter((e) => e.name === "TimeoutError");
          assert.ok(
            stalls.length > 0,
            `process ${report.id} reported the stall: ${JSON.stringify(report.storeErrors)}`,
          );
          for (const stall of stalls.filter((e) => !e.message.includes("closed without writing"))) {
            assert.ok(
              stall.inFlight.includes(stall.operation),
              `process ${report.id} reported ${stall.operation} while ${stall.inFlight} was in flight`,
            );
          }
        }
      });
    },
  );

  redisIt("redisStore: a forged notification changes no circuit", async () => {
    await withRedisServer(async (server) => {
      const durationMs = 2_500;
      const run = runAll({
        scenario: "calls",
        store: "redis",
        url: server.url,
        name: "forged",
        durationMs,
        options: { failureThreshold: 5, syncInterval: 100 },
        pauseMs: 2,
      }, 4);
      await sleepUntil(run.startAt + 500);
      const value = snapshotJson({
        state: "open",
        generation: 50,
        openUntil: Date.now() + 60_000,
        openings: 1,
      });
      await withCommands(server, async (command) => {
        for (let i = 0; i < 5; i++) {
          await command("PUBLISH", "test:forged", JSON.stringify({ version: `99${i}`, value }));
          await sleepUntil(Date.now() + 200);
        }
      });
      const reports = await run.reports;
      for (const report of reports) {
        assert.ok(report.calls > 100, `process ${report.id} made ${report.calls} calls`);
        assert.equal(report.rejected, 0, `process ${report.id} turned calls away`);
      }
    });
  });

  redisIt("redisStore: re-reads fetch the value only when its version moved", async () => {
    await withRedisServer(async (server) => {
      const padding = "x".repeat(100_000);
      const value = snapshotJson({
        state: "open",
        generation: 1,
        openUntil: Date.now() + 120_000,
        openings: 1,
        padding,
      });
      const outputBytes = (command: (c: string, ...a: string[]) => Promise<unknown>) =>
        command("INFO", "stats").then((info) =>
          Number(/total_net_output_bytes:(\d+)/.exec(String(info))?.[1])
        );
      await withCommands(server, async (command) => {
        await command("HSET", "test:large", "version", "1", "value", value);
        const before = await outputBytes(command);
        // Open for two minutes: every call is turned away, and reads the store each 50 ms.
        const reports = await runAll({
          scenario: "calls",
          store: "redis",
          url: server.url,
          name: "large",
          durationMs: 2_000,
          options: { recoveryTimeout: 120_000, syncInterval: 50 },
          pauseMs: 2,
        }, 4).reports;
        const sent = (await outputBytes(command)) - before;
        const reads = reports.reduce((sum, report) => sum + report.reads, 0);
        assert.ok(reads > 40, `${reads} reads`);
        // Each process fetches the value once: about 4 x 100 KB.
        assert.ok(sent < 1_000_000, `the server sent ${sent} bytes for ${reads} reads`);
      });
    });
  });

  it("denoKvStore: the stored value stays small however many breakers write, and forged marks are pruned", async () => {
    await withKvFile(async (kvPath) => {
      const name = "churn";
      const future = Date.now() + 24 * 60 * 60_000;
      const writes: Record<string, [number, number]> = {};
      // About 58 KB: close to Deno KV's limit of 64 KB per value.
      for (let i = 0; i < 1_800; i++) writes[`forged-${i}`] = [1, future];
      await runAll({
        scenario: "preset",
        store: "kv",
        kvPath,
        name,
        durationMs: 0,
        preset: JSON.stringify({ ...JSON.parse(snapshotJson({})), writes }),
      }, 1).reports;
      const reports = await runAll({
        scenario: "churn",
        store: "kv",
        kvPath,
        name,
        durationMs: 0,
        churn: 40,
      }, 4).reports;
      for (const report of reports) {
        assert.deepEqual(
          report.storeErrors,
          [],
          `process ${report.id} wrote every time: ${
            JSON.stringify(report.storeErrors.slice(0, 3))
          }`,
        );
      }
      const stored = await readStored({ store: "kv", kvPath, name });
      assert.equal(typeof stored, "string");
      assert.ok(
        (stored as string).length < 8_000,
        `${(stored as string).length} characters stored`,
      );
      const parsed = assertSnapshot(stored);
      assert.equal(parsed.failureCount, 160, "every failure counted once");
      assert.ok(
        !Object.keys(parsed.writes as object).some((writer) => writer.startsWith("forged")),
      );
    });
  });
});
