/**
 * A streaming proxy on `Deno.serve` whose breaker opens when the upstream stalls.
 *
 *   deno run --allow-net examples/stream_proxy.ts
 *
 * An "upstream" server streams tokens (like an LLM); for a while it stalls after the first
 * token. The proxy guards the upstream stream with `idleTimeout`: a stall ends the proxied
 * stream with a `TimeoutError` and counts as a failure. After two stalls the circuit opens and
 * the proxy answers 503 at once (with `Retry-After`) without calling the upstream, until a
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
import { Breaker, BreakerOpenError } from "../mod.ts";

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

async function* upstreamTokens(signal: AbortSignal): AsyncGenerator<string> {
  const response = await fetch(upstreamUrl, { signal });
  yield* (response.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream());
}

const port = values.port === undefined
  ? (values.upstream === undefined ? 0 : 8000)
  : wholeNumber("--port", values.port);
const proxy = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, async () => {
  const tokens = breaker.stream(upstreamTokens);
  let first: IteratorResult<string>;
  try {
    first = await tokens.next(); // admission happens here, at the first read
  } catch (error) {
    if (error instanceof BreakerOpenError) {
      const retryAfter = Math.ceil(error.retryAfterMs / 1000);
      return new Response("upstream unavailable\n", {
        status: 503,
        headers: { "retry-after": String(retryAfter) },
      });
    }
    return new Response(`upstream failed: ${(error as Error).message}\n`, { status: 502 });
  }
  const encoder = new TextEncoder();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      if (first.done) controller.close();
      else controller.enqueue(encoder.encode(first.value));
    },
    async pull(controller) {
      try {
        const { done, value } = await tokens.next();
        if (done) controller.close();
        else controller.enqueue(encoder.encode(value));
      } catch (error) {
        // A stall rejects the read (TimeoutError): end the response with an in-band error.
        controller.enqueue(encoder.encode(`[error: ${(error as Error).name}]`));
        controller.close();
      }
    },
    cancel() {
      return tokens.return?.().then(() => {});
    },
  }, { highWaterMark: 0 });
  return new Response(body);
});
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
    outcome = `${response.status} "${(await response.text()).trim()}"`;
  }
  log(`request ${request}: ${outcome}`);
  await new Promise((resolve) => setTimeout(resolve, 250));
}

await proxy.shutdown();
await upstream?.shutdown();
