// Integration: a proxy guarding a streamed upstream response with Breaker.readable(), over real
// HTTP on 127.0.0.1 (Deno.serve, Bun.serve or node:http: local_server.ts) and real timers. Every test shuts its
// servers down and ends every body it opened.
import assert from "node:assert/strict";
import { Breaker, BreakerOpenError, TimeoutError } from "../mod.ts";
import { serveLocally } from "./local_server.ts";
import { describe, it } from "./timer_leaks.ts";

interface Server {
  readonly url: string;
  close(): Promise<void>;
}

/** Serves `handler` on an ephemeral port of 127.0.0.1. */
async function serve(handler: (request: Request) => Response | Promise<Response>): Promise<Server> {
  const server = await serveLocally(handler);
  return { url: server.origin, close: () => server.close() };
}

/** Rejects with `what` after `ms` unless `promise` settles first; leaves no timer behind. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Reads a body to its end, returning the text. */
async function readAll(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  while (true) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    text += decoder.decode(value, { stream: true });
  }
}

/** A stream that starts with an item already read, then reads on from `reader`, on demand. */
function prepend<T>(
  first: ReadableStreamReadResult<T>,
  reader: ReadableStreamDefaultReader<T>,
): ReadableStream<T> {
  return new ReadableStream<T>({
    start(controller) {
      if (first.done) controller.close();
      else controller.enqueue(first.value);
    },
    async pull(controller) {
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  }, { highWaterMark: 0 });
}

/**
 * The upstream: `/ok` streams three chunks and ends; `/stall` sends a first chunk, then stalls
 * until `release()`.
 */
async function startUpstream() {
  const encoder = new TextEncoder();
  const stalled: Array<() => void> = [];
  let cancelled = 0;
  const server = await serve((request) => {
    const path = new URL(request.url).pathname;
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (path === "/ok") {
          if (sent === 3) controller.close();
          else controller.enqueue(encoder.encode(`chunk ${sent++};`));
          return;
        }
        if (sent++ === 0) {
          controller.enqueue(encoder.encode("first chunk"));
          return;
        }
        return new Promise<void>((resolve) => {
          stalled.push(() => {
            try {
              controller.close();
            } catch {
              // already cancelled
            }
            resolve();
          });
        });
      },
      cancel() {
        cancelled++;
      },
    });
    return new Response(body, { headers: { "content-type": "text/plain" } });
  });
  return {
    server,
    get cancelled() {
      return cancelled;
    },
    release() {
      for (const end of stalled.splice(0)) end();
    },
  };
}

/** The proxy: guards the upstream body; a refused first read becomes a 503. */
function startProxy(breaker: Breaker, upstreamUrl: string): Promise<Server> {
  return serve(async (request) => {
    const path = new URL(request.url).pathname;
    const upstream = await fetch(`${upstreamUrl}${path}`);
    const guarded = breaker.readable(upstream.body!, { idleTimeout: 100 });
    const reader = guarded.getReader();
    let first: ReadableStreamReadResult<Uint8Array>;
    try {
      first = await reader.read();
    } catch (error) {
      if (!(error instanceof BreakerOpenError)) throw error;
      return new Response(error.message, {
        status: 503,
        headers: { "retry-after": String(Math.ceil(error.retryAfterMs / 1_000)) },
      });
    }
    return new Response(prepend(first, reader), {
      headers: { "content-type": upstream.headers.get("content-type") ?? "text/plain" },
    });
  });
}

describe("Breaker.readable() behind a real HTTP proxy", () => {
  it("Breaker.readable() streams a healthy upstream through the proxy and counts a success", async () => {
    const upstream = await startUpstream();
    const breaker = new Breaker({ name: "upstream", failureThreshold: 1, recoveryTimeout: 60_000 });
    const proxy = await startProxy(breaker, upstream.server.url);
    try {
      const response = await within(fetch(`${proxy.url}/ok`), 1_000, "the proxy");
      assert.equal(response.status, 200);
      const text = await within(readAll(response.body!.getReader()), 1_000, "the body");
      assert.equal(text, "chunk 0;chunk 1;chunk 2;");
      assert.equal(breaker.state, "closed");
      assert.equal(breaker.failureCount, 0);
    } finally {
      upstream.release();
      await proxy.close();
      await upstream.server.close();
    }
  });

  it("Breaker.readable() errors a proxied body whose upstream stalls, opens, and the proxy answers 503 at once", async () => {
    const upstream = await startUpstream();
    const breaker = new Breaker({ name: "upstream", failureThreshold: 1, recoveryTimeout: 60_000 });
    const proxy = await startProxy(breaker, upstream.server.url);
    const bodies: ReadableStreamDefaultReader<Uint8Array>[] = [];
    try {
      const sent = performance.now();
      const response = await within(fetch(`${proxy.url}/stall`), 1_000, "the proxy");
      assert.equal(response.status, 200);
      const reader = response.body!.getReader();
      bodies.push(reader);
      const first = await within(reader.read(), 1_000, "the first chunk");
      assert.equal(new TextDecoder().decode(first.value), "first chunk");

      // The upstream stalls: 100 ms later the guarded stream errors, and so does the body.
      await assert.rejects(within(readAll(reader), 1_000, "the proxied body"), (error) => {
        assert.doesNotMatch(String(error), /no answer within/, "the proxied body never failed");
        return true;
      });
      const failedAfter = performance.now() - sent;
      assert.ok(failedAfter >= 95, `the body failed ${failedAfter} ms after the request`);
      assert.equal(breaker.state, "open");
      assert.ok(breaker.lastFailure instanceof TimeoutError);

      // Open: the proxy's first read through the guard is refused at once, and it answers 503.
      const before = performance.now();
      const refused = await within(fetch(`${proxy.url}/stall`), 1_000, "the proxy");
      const elapsed = performance.now() - before;
      assert.equal(refused.status, 503);
      assert.match(await refused.text(), /Circuit "upstream" is open/);
      assert.equal(refused.headers.get("retry-after"), "60");
      assert.ok(elapsed < 100, `the 503 took ${elapsed} ms`);
      assert.equal(breaker.state, "open");
    } finally {
      for (const reader of bodies) await reader.cancel().catch(() => {});
      upstream.release();
      await proxy.close();
      await upstream.server.close();
    }
  });
});
