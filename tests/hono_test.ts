/**
 * The README's Hono recipe, with the real `hono` package, served on 127.0.0.1 by the runtime's
 * own server: an `app.use` middleware guards the routes under it with one breaker.
 */

import assert from "node:assert/strict";
import { Hono } from "hono";
import { Breaker, BreakerOpenError, serviceUnavailable } from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";
import { serveLocally } from "./local_server.ts";

/** The recipe, as the README has it. */
function app(api: Breaker, upstream: () => Promise<Response>): Hono {
  const app = new Hono();
  app.use("/api/*", async (c, next) => {
    using permit = api.acquire(); // while open: BreakerOpenError, answered by onError below
    await next();
    if (c.error !== undefined || c.res.status >= 500) permit.failure(c.error ?? c.res);
    else permit.success();
  });
  app.get("/api/data", () => upstream());
  app.onError((error, c) => {
    if (error instanceof BreakerOpenError) return serviceUnavailable(error);
    return c.text("internal error", 500);
  });
  return app;
}

describe("Hono recipe", () => {
  it("Hono app.use() middleware answers 503 with Retry-After while open and recovers", async () => {
    let calls = 0;
    let healthy = false;
    let now = 0;
    const api = new Breaker({
      name: "api",
      failureThreshold: 2,
      recoveryTimeout: 1_000,
      registry: false,
      clock: () => now,
    });
    const upstream = () => {
      calls++;
      if (healthy) return Promise.resolve(new Response("data"));
      return Promise.reject(new Error("ECONNREFUSED"));
    };
    const server = await serveLocally(app(api, upstream).fetch);
    try {
      for (let i = 0; i < 2; i++) {
        const failed = await fetch(`${server.origin}/api/data`);
        assert.equal(failed.status, 500);
        await failed.text();
      }
      assert.equal(api.state, "open");
      const refused = await fetch(`${server.origin}/api/data`);
      assert.equal(refused.status, 503);
      assert.equal(refused.headers.get("retry-after"), "1");
      await refused.text();
      assert.equal(calls, 2, "the open circuit never called the upstream");
      now += 1_000;
      healthy = true;
      const recovered = await fetch(`${server.origin}/api/data`);
      assert.equal(await recovered.text(), "data");
      assert.equal(api.state, "closed");
    } finally {
      await server.close();
    }
  });

  it("Hono app.use() middleware counts a 5xx response the route returns", async () => {
    const api = new Breaker({ name: "api", failureThreshold: 1, registry: false });
    const hono = app(api, () => Promise.resolve(new Response("bad gateway", { status: 502 })));
    const response = await hono.request("/api/data");
    assert.equal(response.status, 502);
    assert.equal(api.state, "open");
    assert.equal((await hono.request("/api/data")).status, 503);
  });
});
