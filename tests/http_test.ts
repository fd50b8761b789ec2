/**
 * The HTTP entry points against real servers on 127.0.0.1 (Deno.serve, Bun.serve, node:http):
 * circuitFetch(), circuitHandler() (a streamed upstream answered 503 while open), and the
 * Retry-After helpers.
 */

import assert from "node:assert/strict";
import FakeTimers from "@sinonjs/fake-timers";
import {
  Breaker,
  BreakerOpenError,
  circuitFetch,
  circuitHandler,
  retryAfterSeconds,
  serviceUnavailable,
  TimeoutError,
} from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { type LocalServer, serveLocally } from "./local_server.ts";

/** Serves `handler` for the length of `body`. */
async function withServer(
  handler: (request: Request) => Response | Promise<Response>,
  body: (server: LocalServer) => Promise<void>,
): Promise<void> {
  const server = await serveLocally(handler);
  try {
    await body(server);
  } finally {
    await server.close();
  }
}

const encoder = new TextEncoder();

/** A body that sends `chunks`, then (unless `end`) stalls until cancelled. */
function chunked(chunks: string[], end: boolean): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller): Promise<void> | void {
      if (i < chunks.length) controller.enqueue(encoder.encode(chunks[i++]));
      else if (end) controller.close();
      else return new Promise(() => {}); // stalls
    },
  }, { highWaterMark: 0 });
}

describe("retryAfterSeconds() and serviceUnavailable()", () => {
  it("retryAfterSeconds() rounds up to whole seconds, at least 1, none for Infinity", () => {
    assert.equal(retryAfterSeconds(0), 1);
    assert.equal(retryAfterSeconds(1), 1);
    assert.equal(retryAfterSeconds(1_000), 1);
    assert.equal(retryAfterSeconds(1_001), 2);
    assert.equal(retryAfterSeconds(Infinity), undefined);
    assert.throws(() => retryAfterSeconds(Number.NaN), {
      name: "TypeError",
      message: `Cannot compute Retry-After: "retryAfterMs" must be a number, received NaN`,
    });
  });

  it("serviceUnavailable() answers 503 with Retry-After >= 1 for half-open and recovering rejections", async () => {
    const breaker = new Breaker({ name: "api" });
    breaker.halfOpen();
    using _trial = breaker.acquire();
    let refused: unknown;
    try {
      breaker.acquire();
    } catch (error) {
      refused = error;
    }
    assert.ok(refused instanceof BreakerOpenError && refused.retryAfterMs === 0);
    const response = serviceUnavailable(refused);
    assert.equal(response.status, 503);
    assert.equal(response.headers.get("retry-after"), "1");
    assert.equal(response.headers.get("cache-control"), "no-store");
    assert.match(await response.text(), /Circuit "api"/);
  });

  it("serviceUnavailable() sends no Retry-After while isolated", () => {
    const breaker = new Breaker({ name: "db" });
    using _hold = breaker.isolate();
    assert.throws(() => breaker.acquire(), (error) => {
      assert.ok(error instanceof BreakerOpenError);
      assert.equal(serviceUnavailable(error).headers.has("retry-after"), false);
      return true;
    });
  });
});

describe("circuitFetch()", () => {
  it("circuitFetch() trips an origin's breaker on 503 answers with no option set, then rejects without sending", async () => {
    let requests = 0;
    await withServer(() => {
      requests++;
      return new Response("down", { status: 503 });
    }, async (server) => {
      const guardedFetch = circuitFetch({ registry: false });
      for (let i = 0; i < 5; i++) {
        const response = await guardedFetch(`${server.origin}/users/${i}`);
        assert.equal(response.status, 503);
        await response.body?.cancel();
      }
      await assert.rejects(guardedFetch(`${server.origin}/users/6`), BreakerOpenError);
      assert.equal(requests, 5);
      assert.equal(guardedFetch.breakers.peek(server.origin)?.state, "open");
    });
  });

  it("circuitFetch() answers a synthetic 503 with Retry-After while open when respondWhenOpen is set", async () => {
    await withServer(
      () => new Response("slow down", { status: 429, headers: { "retry-after": "120" } }),
      async (server) => {
        const guardedFetch = circuitFetch({
          failureThreshold: 1,
          respondWhenOpen: true,
          registry: false,
        });
        const first = await guardedFetch(server.origin);
        assert.equal(first.status, 429);
        await first.body?.cancel();
        const synthetic = await guardedFetch(server.origin);
        assert.equal(synthetic.status, 503);
        assert.equal(synthetic.headers.get("retry-after"), "120");
        await synthetic.body?.cancel();
      },
    );
  });

  it("circuitFetch() aborts a request the upstream never answers and counts it", async () => {
    const hanging: (() => void)[] = [];
    await withServer(
      (request) =>
        new Promise<Response>((resolve) => {
          const answer = () => resolve(new Response("late"));
          hanging.push(answer);
          request.signal.addEventListener("abort", answer);
        }),
      async (server) => {
        const guardedFetch = circuitFetch({ timeout: 100, failureThreshold: 2, registry: false });
        for (let i = 0; i < 2; i++) {
          await assert.rejects(guardedFetch(server.origin), TimeoutError);
        }
        await assert.rejects(guardedFetch(server.origin), BreakerOpenError);
        for (const answer of hanging) answer();
      },
    );
  });

  it("circuitFetch() keeps a breaker per origin, and key() can choose another", async () => {
    await withServer(() => new Response("down", { status: 500 }), async (server) => {
      const byPath = circuitFetch({
        failureThreshold: 1,
        registry: false,
        key: (request) => new URL(request.url).pathname,
      });
      (await byPath(`${server.origin}/a`)).body?.cancel();
      await assert.rejects(byPath(`${server.origin}/a`), BreakerOpenError);
      const other = await byPath(`${server.origin}/b`);
      assert.equal(other.status, 500);
      await other.body?.cancel();
      assert.deepEqual(byPath.breakers.peek("/a")?.name, "fetch:/a");
    });
  });

  it("circuitFetch() follows the caller's signal: an abort rejects with its reason and counts neither way", async () => {
    await withServer(() => new Promise<Response>(() => {}), async (server) => {
      const guardedFetch = circuitFetch({ failureThreshold: 1, registry: false });
      const caller = new AbortController();
      const reason = new Error("client went away");
      const pending = guardedFetch(server.origin, { signal: caller.signal });
      caller.abort(reason);
      await assert.rejects(pending, (error) => error === reason);
      assert.equal(guardedFetch.breakers.peek(server.origin)?.state, "closed");
    });
  });

  it("circuitFetch() times out after 10 s by default", async () => {
    const timers = FakeTimers.install({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      const guardedFetch = circuitFetch({
        registry: false,
        fetch: (_input, init) =>
          new Promise((_resolve, reject) => {
            init?.signal?.addEventListener("abort", () => reject(init.signal?.reason));
          }),
      });
      const pending = guardedFetch("http://127.0.0.1:9/never").catch((error) => error);
      await timers.tickAsync(9_999);
      await timers.tickAsync(1);
      assert.ok((await pending) instanceof TimeoutError);
    } finally {
      timers.uninstall();
    }
  });

  it("circuitFetch() rejects bad options naming them", () => {
    assert.throws(() => circuitFetch({ key: "origin" as never }), {
      name: "TypeError",
      message: `Cannot create circuitFetch: "key" must be a function, received "origin"`,
    });
    assert.throws(() => circuitFetch({ timeout: -1, registry: false }), { name: "RangeError" });
  });
});

describe("circuitHandler()", () => {
  it("circuitHandler() answers 503 with Retry-After while open, never calling the handler (the upstream)", async () => {
    let upstreamCalls = 0;
    await withServer(() => {
      upstreamCalls++;
      return new Response("down", { status: 502 });
    }, async (upstream) => {
      const proxy = circuitHandler(
        (request: Request) => fetch(upstream.origin, { signal: request.signal }),
        { name: "upstream", failureThreshold: 2, recoveryTimeout: 60_000, registry: false },
      );
      await withServer(proxy, async (server) => {
        for (let i = 0; i < 2; i++) {
          const response = await fetch(server.origin);
          assert.equal(response.status, 502);
          await response.text();
        }
        const refused = await fetch(server.origin);
        assert.equal(refused.status, 503);
        assert.equal(refused.headers.get("retry-after"), "60");
        await refused.text();
        assert.equal(upstreamCalls, 2);
      });
    });
  });

  it("circuitHandler() counts a streamed body that stalls past idleTimeout as a failure", async () => {
    await withServer(() => new Response(chunked(["a", "b"], false)), async (upstream) => {
      const breaker = new Breaker({
        name: "llm",
        idleTimeout: 100,
        failureThreshold: 1,
        registry: false,
      });
      const proxy = circuitHandler(
        (request: Request) => fetch(upstream.origin, { signal: request.signal }),
        { breaker },
      );
      await withServer(proxy, async (server) => {
        const response = await fetch(server.origin);
        assert.equal(response.status, 200);
        await assert.rejects(response.text());
        assert.equal(breaker.state, "open");
        const refused = await fetch(server.origin);
        assert.equal(refused.status, 503);
        await refused.text();
      });
    });
  });

  it("circuitHandler() lets a streamed trial close a half-open circuit when its body ends", async () => {
    let release = () => {};
    const gate = new Promise<void>((resolve) => release = resolve);
    const upstreamBody = () =>
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode("a"));
          await gate;
          controller.enqueue(encoder.encode("b"));
          controller.close();
        },
      });
    await withServer(() => new Response(upstreamBody()), async (upstream) => {
      const breaker = new Breaker({ name: "llm", idleTimeout: 5_000, registry: false });
      breaker.halfOpen();
      const proxy = circuitHandler(
        (request: Request) => fetch(upstream.origin, { signal: request.signal }),
        { breaker },
      );
      await withServer(proxy, async (server) => {
        const response = await fetch(server.origin);
        const reader = (response.body as ReadableStream<Uint8Array>).getReader();
        const first = await reader.read();
        assert.equal(new TextDecoder().decode(first.value), "a");
        assert.equal(breaker.state, "half-open", "the trial runs while the body streams");
        release();
        while (!(await reader.read()).done) { /* the rest */ }
        assert.equal(breaker.state, "closed");
      });
    });
  });

  it("circuitHandler() counts a thrown error and throws it on unchanged", async () => {
    const down = new Error("down");
    const breaker = new Breaker({ failureThreshold: 1, registry: false });
    const handler = circuitHandler((_request: Request): Response => {
      throw down;
    }, { breaker });
    await assert.rejects(handler(new Request("http://localhost/")), (error) => error === down);
    assert.equal(breaker.state, "open");
    const refused = await handler(new Request("http://localhost/"));
    assert.equal(refused.status, 503);
  });

  it("circuitHandler() gives a body cancelled before its first read back as a success", async () => {
    const breaker = new Breaker({ registry: false });
    breaker.halfOpen();
    const handler = circuitHandler(() => new Response(chunked(["a"], true)), { breaker });
    const response = await handler();
    await response.body?.cancel();
    assert.equal(breaker.state, "closed");
  });

  it("circuitHandler() serves the fallback with the handler's arguments while open", async () => {
    const breaker = new Breaker({
      registry: false,
      fallback: (request: Request) => new Response(`cached ${new URL(request.url).pathname}`),
    });
    breaker.open();
    const handler = circuitHandler((_request: Request) => new Response("live"), { breaker });
    assert.equal(await (await handler(new Request("http://localhost/x"))).text(), "cached /x");
  });
});
