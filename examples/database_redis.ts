/**
 * An HTTP API whose database calls (Redis, through node-redis: the `redis` package from npm) are
 * guarded by a breaker. While Redis is down or too slow, the API answers 503 with
 * `Retry-After` (whole seconds, at least 1: `retryAfterSeconds()`) at once instead of making
 * every request wait on a dead connection; when Redis is back, one trial call closes the
 * circuit. An error Redis answers with (a wrong type, a bad
 * argument) is the database working: it never opens the circuit. The server is `node:http`, so
 * the same file runs on Deno, Bun and Node.js. Start Redis, then:
 *
 *   deno run --allow-net --allow-env examples/database_redis.ts
 *   bun examples/database_redis.ts
 *   node examples/database_redis.ts           (Node.js 22.18+)
 *
 *   curl -X POST localhost:8000/visits/home   # {"page":"home","visits":1}
 *   curl localhost:8000/visits/home           # {"page":"home","visits":1}
 *   redis-cli set visits:bad x; curl -X POST localhost:8000/visits/bad   # 500, circuit closed
 *   # stop Redis: three calls fail (500), then 503 at once with Retry-After: 5
 *   #   (or stall it, redis-cli client pause 3000 all: three calls time out with 504)
 *   # start Redis: within 5 s a trial call closes the circuit
 *   curl localhost:8000/circuit               # {"state":"closed","failureCount":0,...}
 *
 * Flags: --redis-url (redis://127.0.0.1:6379), --port (8000; 0 picks one), --hostname
 * (127.0.0.1), --failure-threshold (3), --recovery-timeout (5000 ms), --timeout (500 ms, per
 * Redis call). Stops on Ctrl-C or SIGTERM.
 *
 * @module
 */

import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { parseArgs } from "node:util";
import { createClient, ErrorReply } from "redis";
import { Breaker, BreakerOpenError, retryAfterSeconds, TimeoutError } from "../mod.ts";

function wholeNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${flag} must be a whole number >= 0, received "${text}"`);
  }
  return value;
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    "redis-url": { type: "string", default: "redis://127.0.0.1:6379" },
    hostname: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8000" },
    "failure-threshold": { type: "string", default: "3" },
    "recovery-timeout": { type: "string", default: "5000" },
    timeout: { type: "string", default: "500" },
  },
});

const redis = createClient({
  url: values["redis-url"],
  // Reject commands at once while disconnected, rather than queueing them until Redis is back:
  // the breaker counts those rejections and opens the circuit.
  disableOfflineQueue: true,
  socket: { connectTimeout: 1_000, reconnectStrategy: (retries) => Math.min(retries * 100, 1_000) },
});
let reportedOutage = false;
redis.on("error", (error) => {
  // node-redis reports every failed reconnection: say it once per outage.
  if (!reportedOutage) console.error(`redis: ${error}`);
  reportedOutage = true;
});
redis.on("ready", () => {
  if (reportedOutage) console.log("redis: connected again");
  reportedOutage = false;
});
// Serve at once, even while Redis is down: the breaker answers for it.
redis.connect().catch(() => {});

const database = new Breaker({
  name: "redis",
  failureThreshold: wholeNumber("--failure-threshold", values["failure-threshold"]),
  recoveryTimeout: wholeNumber("--recovery-timeout", values["recovery-timeout"]),
  timeout: wholeNumber("--timeout", values.timeout),
  // Redis answered with an error: the database is up, the request was wrong.
  exclude: ErrorReply,
  listeners: [{ stateChange: ({ from, to }) => console.log(`circuit ${from} -> ${to}`) }],
});

/** Answers with a JSON body. */
function reply(response: ServerResponse, status: number, body: unknown, headers = {}): void {
  response.writeHead(status, { "content-type": "application/json", ...headers });
  response.end(`${JSON.stringify(body)}\n`);
}

async function answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
  const { pathname } = new URL(request.url ?? "/", "http://localhost");
  if (pathname === "/circuit") {
    const { state, failureCount, retryAfterMs } = database;
    return reply(response, 200, { state, failureCount, retryAfterMs });
  }
  const page = /^\/visits\/([\w-]+)$/.exec(pathname)?.[1];
  if (page === undefined || (request.method !== "GET" && request.method !== "POST")) {
    return reply(response, 404, { error: "try GET or POST /visits/<page>, or GET /circuit" });
  }
  const key = `visits:${page}`;
  try {
    // The breaker's signal aborts the command at the timeout.
    const visits = await database.execute((signal) =>
      request.method === "POST"
        ? redis.withAbortSignal(signal).incr(key)
        : redis.withAbortSignal(signal).get(key).then(Number)
    );
    reply(response, 200, { page, visits });
  } catch (error) {
    if (error instanceof BreakerOpenError) {
      // Whole seconds, at least 1; undefined while isolated (no end to announce).
      const seconds = retryAfterSeconds(error.retryAfterMs);
      const headers = seconds === undefined ? {} : { "retry-after": String(seconds) };
      return reply(response, 503, { error: error.message }, headers);
    }
    const status = error instanceof TimeoutError ? 504 : 500;
    reply(response, status, { error: `${(error as Error).name}: ${(error as Error).message}` });
  }
}

const server = createServer((request, response) => {
  answer(request, response).catch((error) => response.destroy(error));
});
server.listen(wholeNumber("--port", values.port), values.hostname, () => {
  const { port } = server.address() as AddressInfo;
  console.log(`listening on http://${values.hostname}:${port}/`);
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    try {
      server.close();
      server.closeAllConnections();
      if (redis.isOpen) redis.destroy(); // it throws when already closed
    } finally {
      console.log("stopped");
      process.exit(0);
    }
  });
}
