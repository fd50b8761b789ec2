/**
 * Store traffic under load (issue 16, point 1): N processes share one circuit through a
 * private redis-server and make calls (1 ms apart) of which a share fail, under a rate rule or
 * the consecutive rule, never tripping. Each process counts its store round trips; this prints
 * the writes (and reads) per process per `syncInterval`, as a Markdown table.
 *
 *   ./node_modules/.bin/deno run --allow-all --unstable-kv bench/shared_load.ts
 *
 * Options: `--processes=2,8` `--failures=0.1,0.5` `--rules=rate,consecutive`
 * `--sync-interval=500` `--duration=5000`. The processes run tests/fixtures/shared_fault_worker.ts
 * under Deno, with node-redis and ioredis clients in turn.
 *
 * @module
 */

import { execFile } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type {
  FaultWorkerConfig,
  FaultWorkerReport,
  WorkerBreakerOptions,
} from "../tests/fixtures/shared_fault_worker.ts";

const realTimers = { setTimeout: globalThis.setTimeout, clearTimeout: globalThis.clearTimeout };
const { startRedisServer } = await import("../tests/redis_server.ts");
Object.assign(globalThis, realTimers);

const args = new Map<string, string>();
for (const arg of process.argv.slice(2)) {
  const match = /^--([^=]+)=(.*)$/.exec(arg);
  if (match) args.set(match[1] as string, match[2] as string);
}
const list = (name: string, fallback: string) => (args.get(name) ?? fallback).split(",");
const PROCESSES = list("processes", "2,8").map(Number);
const FAILURES = list("failures", "0.1,0.5").map(Number);
const RULES = list("rules", "rate,consecutive");
const SYNC_INTERVAL = Number(args.get("sync-interval") ?? 500);
const DURATION = Number(args.get("duration") ?? 5_000);

const WORKER = fileURLToPath(new URL("../tests/fixtures/shared_fault_worker.ts", import.meta.url));
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DENO = "Deno" in globalThis ? process.execPath : `${ROOT}node_modules/.bin/deno`;

function runWorker(config: FaultWorkerConfig): Promise<FaultWorkerReport> {
  return new Promise((resolve, reject) => {
    execFile(
      DENO,
      ["run", "--allow-all", "--unstable-kv", WORKER, JSON.stringify(config)],
      { cwd: ROOT, timeout: DURATION + 30_000 },
      (error, stdout, stderr) => {
        try {
          resolve(JSON.parse(stdout.trim().split("\n").at(-1) ?? ""));
        } catch {
          reject(new Error(`worker ${config.id}: ${error?.message}\n${stdout}\n${stderr}`));
        }
      },
    );
  });
}

const RULE_OPTIONS: Record<string, WorkerBreakerOptions> = {
  // Never trips: the rule is judged, and successes are window entries to write.
  rate: { failureRate: 1, minimumCalls: 1_000_000_000 },
  consecutive: { failureThreshold: 1_000_000_000 },
};

const server = await startRedisServer();
const rows: string[] = [];
try {
  for (const processes of PROCESSES) {
    for (const rule of RULES) {
      for (const failureRatio of FAILURES) {
        const startAt = Date.now() + 2_000 + 150 * processes;
        const reports = await Promise.all(
          Array.from({ length: processes }, (_, id) =>
            runWorker({
              id,
              scenario: "calls",
              store: "redis",
              client: id % 2 === 0 ? "node-redis" : "ioredis",
              url: server.url,
              name: `load-${processes}-${rule}-${failureRatio}`,
              startAt,
              durationMs: DURATION,
              options: { ...RULE_OPTIONS[rule], syncInterval: SYNC_INTERVAL },
              failureRatio,
              pauseMs: 1,
            })),
        );
        const intervals = DURATION / SYNC_INTERVAL;
        const per = (count: (r: FaultWorkerReport) => number) => {
          const values = reports.map((r) => count(r) / intervals).sort((a, b) => a - b);
          return `${values[0]!.toFixed(1)}-${values.at(-1)!.toFixed(1)}`;
        };
        const calls = reports.reduce((sum, r) => sum + r.calls, 0) / processes;
        rows.push(
          `| ${processes} | ${rule} | ${failureRatio * 100} % | ${Math.round(calls)} | ${
            per((r) => r.writes)
          } | ${per((r) => r.conflicts)} | ${per((r) => r.reads)} |`,
        );
        console.error(rows.at(-1));
      }
    }
  }
} finally {
  await server.close();
}
console.log(
  `syncInterval ${SYNC_INTERVAL} ms, ${DURATION} ms of calls (1 ms apart) per process; per process per syncInterval, lowest-highest process:\n`,
);
console.log(
  "| processes | rule | failures | calls / process | writes | of which conflicts | reads |",
);
console.log("|---|---|---|---|---|---|---|");
for (const row of rows) console.log(row);
