/**
 * A Bun server whose breaker is shared through Redis (Bun's built-in client): every process
 * sees one circuit, and a trip in one reaches the others within milliseconds (pub/sub).
 * Start Redis, then two servers:
 *
 *   REDIS_URL=redis://127.0.0.1:6379 bun examples/shared_redis_bun.ts 8001
 *   REDIS_URL=redis://127.0.0.1:6379 bun examples/shared_redis_bun.ts 8002
 *
 * `curl localhost:8001/fail` three times, and `curl localhost:8002/` answers 503 at once.
 */

// @ts-ignore: Bun's own module, present only under Bun
import { RedisClient } from "bun";
import { Breaker, BreakerOpenError } from "../mod.ts";
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

const server = Bun.serve({
  port,
  hostname: "127.0.0.1",
  async fetch(request) {
    const failing = new URL(request.url).pathname === "/fail";
    try {
      const body = await upstream.execute(() =>
        failing ? Promise.reject(new Error("upstream down")) : Promise.resolve("upstream ok\n")
      );
      return new Response(body);
    } catch (error) {
      if (error instanceof BreakerOpenError) {
        const seconds = Math.ceil(error.retryAfterMs / 1000);
        return new Response("circuit open\n", {
          status: 503,
          headers: { "retry-after": `${seconds}` },
        });
      }
      return new Response("upstream failed\n", { status: 502 });
    }
  },
});

console.log(`listening on ${server.url}`);

process.on("SIGINT", async () => {
  await upstream[Symbol.asyncDispose]();
  server.stop();
  redis.close();
  process.exit(0);
});
