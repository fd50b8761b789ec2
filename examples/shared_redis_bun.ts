/**
 * A Bun server whose breaker is shared through Redis (Bun's built-in client): every process
 * sees one circuit, and a trip in one reaches the others within milliseconds (pub/sub).
 * Start Redis, then two servers:
 *
 *   REDIS_URL=redis://127.0.0.1:6379 bun examples/shared_redis_bun.ts 8001
 *   REDIS_URL=redis://127.0.0.1:6379 bun examples/shared_redis_bun.ts 8002
 *
 * `curl localhost:8001/fail` three times (502, counted as failures), and `curl -i localhost:8002/`
 * answers 503 with `Retry-After` at once. Stops on Ctrl-C.
 */

// @ts-ignore: Bun's own module, present only under Bun
import { RedisClient } from "bun";
import { Breaker, circuitHandler } from "../mod.ts";
import { redisStore } from "../src/redis_store.ts";

declare const Bun: {
  serve(options: {
    port: number;
    hostname: string;
    fetch(request: Request): Promise<Response>;
  }): { readonly url: URL; stop(): void };
};

const port = Number(process.argv[2] ?? 8000);
const redis = new RedisClient(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const upstream = new Breaker({
  name: "upstream",
  store: redisStore(redis),
  failureThreshold: 3,
  recoveryTimeout: 10_000,
  listeners: [{ stateChange: ({ from, to }) => console.log(`[${port}] ${from} -> ${to}`) }],
});

// circuitHandler answers 503 with Retry-After while the shared circuit is open, without calling
// the handler, and counts a 5xx answer as a failure. The handler stands in for a route that
// calls the upstream: /fail is the upstream failing.
const route = circuitHandler(
  (request: Request) =>
    new URL(request.url).pathname === "/fail"
      ? new Response("upstream failed\n", { status: 502 })
      : new Response("upstream ok\n"),
  { breaker: upstream },
);
const server = Bun.serve({ port, hostname: "127.0.0.1", fetch: route });

console.log(`listening on ${server.url}`);

process.on("SIGINT", async () => {
  await upstream[Symbol.asyncDispose]();
  server.stop();
  redis.close();
  process.exit(0);
});
