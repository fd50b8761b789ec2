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
 * @module
 */

import { Breaker, BreakerOpenError } from "../mod.ts";

const started = Date.now();
const log = (line: string) =>
  console.log(`${((Date.now() - started) / 1000).toFixed(2).padStart(5)}s  ${line}`);

// ---- the upstream: 5 tokens, 20 ms apart; while `stalling`, it hangs after the first one.
let stalling = false;
const upstream = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
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
});
const upstreamUrl = `http://127.0.0.1:${upstream.addr.port}/`;

// ---- the proxy: one breaker for the upstream; a stall of 150 ms fails the stream.
const breaker = new Breaker({
  name: "upstream",
  failureThreshold: 2,
  recoveryTimeout: 800,
  idleTimeout: 150,
  listeners: [{ stateChange: ({ from, to }) => log(`>>> circuit ${from} -> ${to}`) }],
});

async function* upstreamTokens(signal: AbortSignal): AsyncGenerator<string> {
  const response = await fetch(upstreamUrl, { signal });
  yield* (response.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream());
}

const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async () => {
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

// ---- a client: 9 requests, 250 ms apart; the upstream stalls for requests 3 to 6.
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
await upstream.shutdown();
