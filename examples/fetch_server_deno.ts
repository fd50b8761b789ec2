/**
 * An API on `Deno.serve` forwarding to an upstream through `circuitHandler()`: 5xx and 429 answers,
 * network errors and timeouts count as failures, 4xx do not, a `Retry-After` on the answer that
 * opens the circuit is honoured, and while the circuit is open the API answers 503 at once with
 * `Retry-After`, without calling the upstream. The handler is examples/upstream_proxy.ts, shared
 * with the `Bun.serve` version (fetch_server_bun.ts).
 *
 *   deno run --allow-net examples/fetch_server_deno.ts
 *
 * Then, against the demo upstream the server also serves under /upstream/:
 *
 *   curl localhost:8000/api/status/404     # three times: a 4xx never opens the circuit
 *   curl localhost:8000/api/status/500     # three times: the circuit opens
 *   curl -i localhost:8000/api/anything    # 503 at once, Retry-After: 10
 *   curl localhost:8000/circuit            # {"state":"open",...}; "half-open" after 10 s
 *   curl -i 'localhost:8000/status?format=health'  # 503 while open; /status in a browser
 *   curl localhost:8000/api/delay/3000     # a timeout (2 s): 504, counted as a failure
 *   curl localhost:8000/api/status/503     # 503 with Retry-After: 5 (honoured when it opens)
 *
 * Flags: --upstream <url> (forward /api/<path> there instead), --port (8000; 0 picks one),
 * --hostname (127.0.0.1), --failure-threshold (3), --recovery-timeout (10000 ms),
 * --timeout (2000 ms). Stops on Ctrl-C or SIGTERM.
 *
 * @module
 */

import { serverOptions, upstreamProxy } from "./upstream_proxy.ts";

const options = serverOptions(Deno.args);
const server = Deno.serve({
  hostname: options.hostname,
  port: options.port,
  onListen({ hostname, port }) {
    console.log(`listening on http://${hostname}:${port}/`);
  },
}, upstreamProxy(options).handler);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(signal, async () => {
    await server.shutdown();
    console.log("stopped");
    Deno.exit(0);
  });
}
