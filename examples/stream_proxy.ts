/**
 * A streaming proxy on `Deno.serve` whose breaker opens when the upstream stalls.
 *
 *   deno run --allow-net examples/stream_proxy.ts
 *
 * An "upstream" server streams tokens (like an LLM); for a while it stalls after the first
 * token. The proxy is `circuitHandler()` around the upstream `fetch`, with `idleTimeout`: a
 * stall cuts the proxied stream and counts as a failure. After two stalls the circuit opens
 * and the proxy answers 503 at once (with `Retry-After`) without calling the upstream, until a
 * trial stream gets through.
 *
 * With `--upstream <url>` it proxies that upstream instead, and serves until Ctrl-C or SIGTERM
 * without running its demo client:
 *
 *   deno run --allow-net examples/stream_proxy.ts --upstream http://127.0.0.1:9000/ --port 8000
 *
 * Flags: --upstream, --port (8000 with --upstream, else a free one), --failure-threshold (2),
 * --recovery-timeout (800 ms), --idle-timeout (150 ms).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Breaker, circuitHandler } from "../mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    upstream: { type: "string" },
    port: { type: "string" },
    "failure-threshold": { type: "string", default: "2" },
    "recovery-timeout": { type: "string", default: "800" },
    "idle-timeout": { type: "string", default: "150" },
  },
});

function wholeNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${flag} must be a whole number >= 0, received "${text}"`);
  }
  return value;
}

const started = Date.now();
const log = (line: string) =>
  console.log(`${((Date.now() - started) / 1000).toFixed(2).padStart(5)}s  ${line}`);

// ---- the demo upstream: 5 tokens, 20 ms apart; while `stalling`, it hangs after the first one.
let stalling = false;
function demoUpstream(): Response {
  const stall = stalling;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let sent = 0;
  const body = new ReadableStream<string>({
    start(controller) {
      const next = () => {
        if (sent === 5) return controller.close();
        controller.enqueue(`token${++sent} `);
        if (stall && sent === 1) return; // never another token
        timer = setTimeout(next, 20);
      };
      next();
    },
    cancel() {
      clearTimeout(timer);
    },
  });
  return new Response(body.pipeThrough(new TextEncoderStream()));
}
const upstream = values.upstream === undefined
  ? Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, demoUpstream)
  : undefined;
const upstreamUrl = values.upstream ?? `http://127.0.0.1:${upstream!.addr.port}/`;

// ---- the proxy: one breaker for the upstream; a stall of 150 ms fails the stream.
const breaker = new Breaker({
  name: "upstream",
  failureThreshold: wholeNumber("--failure-threshold", values["failure-threshold"]),
  recoveryTimeout: wholeNumber("--recovery-timeout", values["recovery-timeout"]),
  idleTimeout: wholeNumber("--idle-timeout", values["idle-timeout"]),
  listeners: [{ stateChange: ({ from, to }) => log(`>>> circuit ${from} -> ${to}`) }],
});

const port = values.port === undefined
  ? (values.upstream === undefined ? 0 : 8000)
  : wholeNumber("--port", values.port);
// circuitHandler admits each request before the upstream is called: while the circuit is open
// the client gets 503 with Retry-After and the upstream is never contacted. The upstream's
// body is guarded as it streams: a stall past idleTimeout cuts the response and counts as a
// failure; a body that ends (or a client that hangs up) counts as a success.
// (No `request.signal` for the upstream: when the client goes away, Deno cancels the response
// body, and the guard cancels the upstream's body with it.)
const proxy = Deno.serve(
  { hostname: "127.0.0.1", port, onListen() {} },
  circuitHandler(() => fetch(upstreamUrl), { breaker }),
);
const proxyUrl = `http://127.0.0.1:${proxy.addr.port}/`;

if (values.upstream !== undefined) {
  log(`listening on ${proxyUrl}`);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, async () => {
      await proxy.shutdown();
      console.log("stopped");
      Deno.exit(0);
    });
  }
  await proxy.finished;
}

// ---- the demo client: 9 requests, 250 ms apart; the upstream stalls for requests 3 to 6.
for (let request = 1; request <= 9; request++) {
  stalling = request >= 3 && request <= 6;
  const response = await fetch(proxyUrl);
  let outcome: string;
  if (response.status === 503) {
    outcome = `503 at once, Retry-After: ${response.headers.get("retry-after")} s`;
    await response.body?.cancel();
  } else {
    const { text, cut } = await readAll(response);
    outcome = `${response.status} "${text.trim()}"${cut ? " (cut: the upstream stalled)" : ""}`;
  }
  log(`request ${request}: ${outcome}`);
  await new Promise((resolve) => setTimeout(resolve, 250));
}

await proxy.shutdown();
await upstream?.shutdown();

/** The body as far as it came, and whether the connection was cut before its end. */
async function readAll(response: Response): Promise<{ text: string; cut: boolean }> {
  let text = "";
  const decoder = new TextDecoder();
  try {
    for await (const chunk of response.body ?? []) text += decoder.decode(chunk, { stream: true });
    return { text, cut: false };
  } catch {
    return { text, cut: true };
  }
}
