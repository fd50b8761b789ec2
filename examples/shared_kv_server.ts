/**
 * A Deno server (Deno Deploy-ready) whose breaker is shared through Deno KV: every isolate
 * (or local process on the same KV file) sees one circuit. Run two of them:
 *
 *   KV_PATH=/tmp/circuit.kv deno run -A --unstable-kv examples/shared_kv_server.ts 8001
 *   KV_PATH=/tmp/circuit.kv deno run -A --unstable-kv examples/shared_kv_server.ts 8002
 *
 * then `curl localhost:8001/fail` three times (502, counted as failures) and
 * `curl -i localhost:8002/` answers 503 with `Retry-After` within a second (local KV files have
 * no cross-process watch: the other learns at its next sync). Stops on Ctrl-C.
 */

import { Breaker, circuitHandler } from "../mod.ts";
import { denoKvStore } from "../src/deno_kv_store.ts";

const port = Number(Deno.args[0] ?? 8000);

/**
 * Opens the KV database. A local file that another process is opening at the same moment
 * answers "database is locked" for a few milliseconds: two servers started together retry.
 */
async function openKv(path: string | undefined): Promise<Deno.Kv> {
  for (let attempt = 1;; attempt++) {
    try {
      return await Deno.openKv(path);
    } catch (error) {
      if (attempt === 40 || !String(error).includes("database is locked")) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}
const kv = await openKv(Deno.env.get("KV_PATH")); // on Deno Deploy: the managed database
const upstream = new Breaker({
  name: "upstream",
  store: denoKvStore(kv),
  failureThreshold: 3,
  recoveryTimeout: 10_000,
  syncInterval: 500,
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
const server = Deno.serve({ port, hostname: "127.0.0.1" }, route);

Deno.addSignalListener("SIGINT", async () => {
  await upstream[Symbol.asyncDispose]();
  await server.shutdown();
  kv.close();
});
