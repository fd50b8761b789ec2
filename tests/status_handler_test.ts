import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Breaker } from "../src/breaker.ts";
import { BreakerGroup } from "../src/breaker_group.ts";
import { BreakerMetrics } from "../src/breaker_metrics.ts";
import { BreakerOpenError } from "../src/errors.ts";
import { BreakerRegistry, defaultRegistry } from "../src/registry.ts";
import {
  type BreakerStatus,
  type HealthReport,
  statusHandler,
  type StatusHandlerOptions,
  type StatusReport,
} from "../src/status_handler.ts";
import { captureConsole } from "./console_capture.ts";
import { serveLocally } from "./local_server.ts";
import { testsNeeding } from "./service_tests.ts";
import { type ManualClock, manualClock } from "./manual_clock.ts";
import { describe, it } from "./timer_leaks.ts";

const BASE = "http://status.test/status";
const SCRIPT_NAME = "<script>alert(1)</script>";

/** A fresh registry whose breakers all read one manual clock. */
function fixture(): {
  registry: BreakerRegistry;
  clock: ManualClock;
  breaker: (name: string, options?: Record<string, unknown>) => Breaker;
} {
  const registry = new BreakerRegistry();
  const clock = manualClock();
  return {
    registry,
    clock,
    breaker: (name, options = {}) => registry.breaker(name, { clock, ...options }),
  };
}

function get(query = "", headers: Record<string, string> = {}): Request {
  return new Request(`${BASE}${query}`, { headers });
}

function post(body: unknown, headers: Record<string, string> = {}): Request {
  return new Request(BASE, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function report(registry: BreakerRegistry): Promise<StatusReport> {
  const response = await statusHandler(registry)(get("?format=json"));
  assert.equal(response.status, 200);
  return await response.json();
}

function fail(breaker: Breaker, failure: unknown = new Error("boom")): void {
  assert.throws(() =>
    breaker.executeSync(() => {
      throw failure;
    })
  );
}

interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

/** Parses the sample lines of the Prometheus text format, undoing label value escapes. */
function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-z_]+)\{(.*)\} (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${JSON.stringify(line)}`);
    const [, name = "", labelText = "", valueText = ""] = match;
    const labels: Record<string, string> = {};
    const labelPattern = /([a-z_]+)="((?:[^"\\]|\\.)*)",?/gy;
    let rest = 0;
    for (const label of labelText.matchAll(labelPattern)) {
      const [whole, key = "", escaped = ""] = label;
      labels[key] = escaped.replace(/\\(.)/g, (_, char) => (char === "n" ? "\n" : char));
      rest += whole.length;
    }
    assert.equal(rest, labelText.length, `unparsed labels in ${JSON.stringify(line)}`);
    const value = valueText === "+Inf" ? Infinity : Number(valueText);
    assert.ok(!Number.isNaN(value), `bad value in ${JSON.stringify(line)}`);
    samples.push({ name, labels, value });
  }
  return samples;
}

function sampleOf(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.filter((sample) =>
    sample.name === name &&
    Object.entries(labels).every(([key, value]) => sample.labels[key] === value)
  );
  assert.equal(found.length, 1, `${name} ${JSON.stringify(labels)}: ${found.length} samples`);
  return found[0]!.value;
}

describe("statusHandler arguments", () => {
  it("serves the default registry when none is given", async () => {
    const name = `status-default-${crypto.randomUUID()}`;
    const breaker = new Breaker({ name });
    const response = await statusHandler()(get("?format=json"));
    const body: StatusReport = await response.json();
    assert.ok(body.breakers.some((status) => status.name === name));
    assert.equal(defaultRegistry.get(name), breaker);
  });

  it("rejects a registry that is not a BreakerRegistry, naming it and the value", () => {
    for (const [value, shown] of [[null, "null"], [{}, "an object"], ["db", '"db"']] as const) {
      assert.throws(() => statusHandler(value as unknown as BreakerRegistry), {
        name: "TypeError",
        message:
          `Cannot create status handler: "registry" must be a BreakerRegistry, received ${shown}`,
      });
    }
  });

  it("rejects options that are not an object, unknown options and bad values", () => {
    const registry = new BreakerRegistry();
    const create = (options: unknown) => statusHandler(registry, options as StatusHandlerOptions);
    assert.throws(() => create(null), {
      name: "TypeError",
      message: 'Cannot create status handler: "options" must be an object, received null',
    });
    assert.throws(() => create({ authorise: () => true }), {
      name: "TypeError",
      message: 'Cannot create status handler: unknown option "authorise"',
    });
    assert.throws(() => create({ authorize: true }), {
      name: "TypeError",
      message: 'Cannot create status handler: "authorize" must be a function, received true',
    });
    assert.throws(() => create({ refreshInterval: "2000" }), {
      name: "TypeError",
      message:
        'Cannot create status handler: "refreshInterval" must be a number of ms, received "2000"',
    });
    for (const [value, shown] of [[50, "50"], [NaN, "NaN"], [Infinity, "Infinity"]] as const) {
      assert.throws(() => create({ refreshInterval: value }), {
        name: "RangeError",
        message:
          `Cannot create status handler: "refreshInterval" must be a finite number >= 100 (ms), received ${shown}`,
      });
    }
    assert.throws(() => create({ title: 1 }), {
      name: "TypeError",
      message: 'Cannot create status handler: "title" must be a string, received 1',
    });
  });
});

describe("statusHandler JSON", () => {
  it("answers with the summary and every breaker, not cached", async () => {
    const { registry, clock, breaker } = fixture();
    breaker("db", { recoveryTimeout: 30_000 });
    breaker("cache").open();
    clock.advance(12_000);
    const response = await statusHandler(registry)(get("?format=json"));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "no-store");
    const body: StatusReport = await response.json();
    assert.deepEqual(body.summary, registry.summary());
    assert.deepEqual(body.breakers.map((status) => status.name), ["db", "cache"]);
    const zeroWindow = { calls: 0, failures: 0, slowCalls: 0, failureRate: 0, slowCallRate: 0 };
    assert.deepEqual(
      body.breakers[0],
      {
        name: "db",
        state: "closed",
        failureCount: 0,
        openUntil: null,
        retryAfterMs: 0,
        window: zeroWindow,
        lastFailure: null,
        group: null,
        rule:
          "opens on 5 consecutive failures · recovery 30.0 s · 1 trial at once, 1 success closes",
        mode: "enforce",
        isolation: null,
        ramp: null,
        openedAt: null,
        lastFailureAt: null,
        history: [],
      } satisfies BreakerStatus,
    );
    assert.deepEqual(
      body.breakers[1],
      {
        name: "cache",
        state: "open",
        failureCount: 0,
        openUntil: clock.now + 18_000,
        retryAfterMs: 18_000,
        window: zeroWindow,
        lastFailure: null,
        group: null,
        rule:
          "opens on 5 consecutive failures · recovery 30.0 s · 1 trial at once, 1 success closes",
        mode: "enforce",
        isolation: null,
        ramp: null,
        openedAt: null,
        lastFailureAt: null,
        history: [],
      } satisfies BreakerStatus,
    );
  });

  it("writes an isolated breaker's Infinity retryAfterMs as null", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    using _hold = db.isolate();
    assert.equal(db.retryAfterMs, Infinity);
    const [status] = (await report(registry)).breakers;
    assert.equal(status?.state, "isolated");
    assert.equal(status?.retryAfterMs, null);
    assert.equal(status?.openUntil, null);
  });

  it("shows the failure count, the window's counts and the last failure as text", async () => {
    const { registry, breaker } = fixture();
    const api = breaker("api", {
      failureRate: 0.9,
      minimumCalls: 10,
      window: { calls: 10 },
    });
    api.executeSync(() => "ok");
    fail(api, new TypeError("fetch failed"));
    fail(api, new TypeError("fetch failed again"));
    const [status] = (await report(registry)).breakers;
    assert.equal(status?.state, "closed");
    assert.equal(status?.failureCount, 2);
    assert.deepEqual(status?.window, {
      calls: 3,
      failures: 2,
      slowCalls: 0,
      failureRate: 2 / 3,
      slowCallRate: 0,
    });
    assert.equal(status?.lastFailure, "TypeError: fetch failed again");
  });

  it("describes failures that are not errors without calling their code", async () => {
    const cases: [unknown, string][] = [
      ["plain text", "plain text"],
      [42, "42"],
      [
        new Response(null, { status: 503, statusText: "Service Unavailable" }),
        "HTTP 503 Service Unavailable",
      ],
      [{ toString: () => "secret" }, "an object"],
      [new (class Custom {})(), "a Custom"],
      [new Error(""), "Error"],
      [new Error("x".repeat(2_000)), `Error: ${"x".repeat(492)}…`],
    ];
    for (const [failure, text] of cases) {
      const { registry, breaker } = fixture();
      fail(breaker("db"), failure);
      const [status] = (await report(registry)).breakers;
      assert.equal(status?.lastFailure, text);
    }
  });

  it("answers HEAD with the headers of GET and no body", async () => {
    const { registry, breaker } = fixture();
    breaker("db");
    const response = await statusHandler(registry)(
      new Request(`${BASE}?format=json`, { method: "HEAD" }),
    );
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
    assert.equal(response.body, null);
  });
});

describe("statusHandler Prometheus", () => {
  it("serves the text format 0.0.4 with HELP and TYPE for every metric", async () => {
    const { registry, breaker } = fixture();
    breaker("db");
    const response = await statusHandler(registry)(get("?format=prometheus"));
    assert.equal(response.status, 200);
    assert.equal(
      response.headers.get("content-type"),
      "text/plain; version=0.0.4; charset=utf-8",
    );
    assert.equal(response.headers.get("cache-control"), "no-store");
    const text = await response.text();
    assert.ok(text.endsWith("\n"));
    const metrics = [
      "circuit_breaker_state",
      "circuit_breaker_consecutive_failures",
      "circuit_breaker_retry_after_seconds",
      "circuit_breaker_window_calls",
      "circuit_breaker_window_failures",
      "circuit_breaker_window_slow_calls",
      "circuit_breaker_group_members",
    ];
    for (const metric of metrics) {
      assert.match(text, new RegExp(`^# HELP ${metric} \\S.*$`, "m"));
      assert.match(text, new RegExp(`^# TYPE ${metric} gauge$`, "m"));
    }
    const names = new Set(parseSamples(text).map((sample) => sample.name));
    assert.deepEqual([...names].sort(), metrics.filter((name) => !name.includes("group")).sort());
  });

  it("has one state series per state, 1 for the breaker's state", async () => {
    const { registry, clock, breaker } = fixture();
    breaker("db");
    const cache = breaker("cache", { recoveryTimeout: 10_000 });
    fail(cache);
    cache.open();
    clock.advance(2_500);
    const samples = parseSamples(
      await (await statusHandler(registry)(get("?format=prometheus")))
        .text(),
    );
    const states = ["closed", "open", "half-open", "recovering", "isolated"];
    for (const state of states) {
      assert.equal(
        sampleOf(samples, "circuit_breaker_state", { name: "db", state }),
        state === "closed" ? 1 : 0,
      );
      assert.equal(
        sampleOf(samples, "circuit_breaker_state", { name: "cache", state }),
        state === "open" ? 1 : 0,
      );
    }
    assert.equal(sampleOf(samples, "circuit_breaker_consecutive_failures", { name: "cache" }), 1);
    assert.equal(sampleOf(samples, "circuit_breaker_retry_after_seconds", { name: "cache" }), 7.5);
    assert.equal(sampleOf(samples, "circuit_breaker_retry_after_seconds", { name: "db" }), 0);
    const keys = samples.map((sample) => `${sample.name}${JSON.stringify(sample.labels)}`);
    assert.equal(new Set(keys).size, keys.length, "a series appears twice");
  });

  it("writes +Inf for an isolated breaker's retry time, and the window's counts", async () => {
    const { registry, breaker } = fixture();
    const api = breaker("api", { failureRate: 0.9, minimumCalls: 5, window: { calls: 5 } });
    fail(api);
    api.executeSync(() => "ok");
    using _hold = breaker("db").isolate();
    const text = await (await statusHandler(registry)(get("?format=prometheus"))).text();
    assert.match(text, /^circuit_breaker_retry_after_seconds\{name="db"\} \+Inf$/m);
    const samples = parseSamples(text);
    assert.equal(sampleOf(samples, "circuit_breaker_window_calls", { name: "api" }), 2);
    assert.equal(sampleOf(samples, "circuit_breaker_window_failures", { name: "api" }), 1);
    assert.equal(sampleOf(samples, "circuit_breaker_window_slow_calls", { name: "api" }), 0);
  });

  it("escapes backslashes, double quotes and newlines in label values", async () => {
    const { registry, breaker } = fixture();
    const name = 'say "hi"\\there\nnext line';
    breaker(name);
    const text = await (await statusHandler(registry)(get("?format=prometheus"))).text();
    assert.ok(
      text.includes(
        'circuit_breaker_consecutive_failures{name="say \\"hi\\"\\\\there\\nnext line"} 0',
      ),
      text,
    );
    const samples = parseSamples(text);
    assert.equal(sampleOf(samples, "circuit_breaker_consecutive_failures", { name }), 0);
  });

  it("serves only HELP and TYPE lines for an empty registry", async () => {
    const text = await (await statusHandler(new BreakerRegistry())(get("?format=prometheus")))
      .text();
    assert.deepEqual(parseSamples(text), []);
    assert.ok(text.split("\n").filter(Boolean).every((line) => line.startsWith("# ")));
  });
});

describe("statusHandler HTML", () => {
  it("serves a page listing every breaker with its state as a class", async () => {
    const { registry, clock, breaker } = fixture();
    breaker("db");
    breaker("cache", { recoveryTimeout: 20_000 }).open();
    breaker("search").halfOpen();
    const held = breaker("payments").isolate();
    clock.advance(5_000);
    const response = await statusHandler(registry)(get("?format=html"));
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(response.headers.get("cache-control"), "no-store");
    const page = await response.text();
    assert.match(page, /^<!DOCTYPE html>/);
    for (
      const [name, state] of [
        ["db", "closed"],
        ["cache", "open"],
        ["search", "half-open"],
        ["payments", "isolated"],
      ]
    ) {
      assert.match(
        page,
        new RegExp(
          `<tr class="breaker" data-name="${name}" data-state="${state}">` +
            `<td class="name" data-label="Name">${name}</td>` +
            `<td class="state-cell" data-label="State"><span class="state state-${state}">${state}</span>`,
        ),
      );
    }
    assert.match(page, /<td class="number retry" data-label="Retry in">15\.0 s<\/td>/);
    assert.match(page, /<td class="number retry" data-label="Retry in">until released<\/td>/);
    assert.match(page, /1 open, 1 half-open, 1 isolated, 1 closed/);
    held[Symbol.dispose]();
  });

  it("escapes a breaker name and an error message instead of injecting them", async () => {
    const { registry, breaker } = fixture();
    fail(breaker(SCRIPT_NAME), new Error('<img src=x onerror="alert(2)">'));
    breaker(`"><b>quote's</b>`);
    const page = await (await statusHandler(registry, { title: "<i>ops</i>" })(
      get("?format=html"),
    )).text();
    assert.ok(!page.includes(SCRIPT_NAME));
    assert.ok(!page.includes("<img"));
    assert.ok(!page.includes("<b>"));
    assert.ok(!page.includes("<i>"));
    assert.ok(
      page.includes(
        '<td class="name" data-label="Name">&lt;script&gt;alert(1)&lt;/script&gt;</td>',
      ),
    );
    assert.ok(page.includes('data-name="&lt;script&gt;alert(1)&lt;/script&gt;"'));
    assert.ok(page.includes("Error: &lt;img src=x onerror=&quot;alert(2)&quot;&gt;"));
    assert.ok(page.includes('data-name="&quot;&gt;&lt;b&gt;quote&#39;s&lt;/b&gt;"'));
    assert.ok(page.includes("<title>&lt;i&gt;ops&lt;/i&gt;</title>"));
    // The page's own script is the only one, and the policy allows only it.
    assert.equal(page.match(/<script/g)?.length, 1);
  });

  it("allows only its own nonce'd script and style, and cannot be framed", async () => {
    const handler = statusHandler(new BreakerRegistry());
    const first = await handler(get("?format=html"));
    const policy = first.headers.get("content-security-policy") ?? "";
    const nonce = /script-src 'nonce-([^']+)'/.exec(policy)?.[1];
    assert.ok(nonce, policy);
    assert.match(policy, /default-src 'none'/);
    assert.match(policy, /frame-ancestors 'none'/);
    assert.match(policy, new RegExp(`style-src 'nonce-${nonce.replace(/[+/]/g, "\\$&")}'`));
    const page = await first.text();
    assert.ok(page.includes(`<script nonce="${nonce}">`));
    assert.ok(page.includes(`<style nonce="${nonce}">`));
    const second = await handler(get("?format=html"));
    assert.notEqual(second.headers.get("content-security-policy"), policy, "nonce reused");
    await second.body?.cancel();
  });

  it("refreshes every refreshInterval ms, 2 s by default, also without script", async () => {
    const registry = new BreakerRegistry();
    const page = await (await statusHandler(registry)(get("?format=html"))).text();
    assert.match(page, /<body data-refresh-interval="2000">/);
    assert.match(page, /<noscript><meta http-equiv="refresh" content="2"><\/noscript>/);
    const fast = await (await statusHandler(registry, { refreshInterval: 500 })(
      get("?format=html"),
    )).text();
    assert.match(fast, /<body data-refresh-interval="500">/);
    assert.match(fast, /content="1"/);
    assert.match(page, /No breakers are registered\./);
  });

  it("shows action buttons only with authorize, by state", async () => {
    const { registry, breaker } = fixture();
    breaker("db");
    breaker("cache").open();
    const without = await (await statusHandler(registry)(get("?format=html"))).text();
    assert.ok(!without.includes("<button"));
    assert.ok(!without.includes("<th>Actions</th>"));

    const handler = statusHandler(registry, { authorize: () => true });
    const page = await (await handler(get("?format=html"))).text();
    assert.ok(page.includes('<button type="button" data-action="isolate" data-name="db">'));
    assert.ok(!page.includes('data-action="close" data-name="db"'));
    assert.ok(page.includes('data-action="isolate" data-name="cache"'));
    assert.ok(page.includes('data-action="close" data-name="cache"'));

    assert.equal((await handler(post({ action: "isolate", name: "db" }))).status, 200);
    const isolated = await (await handler(get("?format=html"))).text();
    assert.ok(isolated.includes('data-action="release" data-name="db"'));
    assert.ok(!isolated.includes('data-action="isolate" data-name="db"'));
    assert.equal((await handler(post({ action: "release", name: "db" }))).status, 200);
  });

  it("links to the other formats relative to its own URL", async () => {
    const page = await (await statusHandler(new BreakerRegistry())(get("?format=html"))).text();
    assert.ok(page.includes('<a href="?format=json">JSON</a>'));
    assert.ok(page.includes('<a href="?format=prometheus">Prometheus</a>'));
    assert.ok(page.includes("fetch(location.href"));
  });
});

describe("statusHandler format negotiation", () => {
  const cases: [accept: string | undefined, format: "json" | "prometheus" | "html"][] = [
    [undefined, "json"],
    ["", "json"],
    ["*/*", "json"],
    ["application/json", "json"],
    ["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "html"],
    ["text/plain", "prometheus"],
    ["text/plain;version=0.0.4;q=0.3,*/*;q=0.2", "prometheus"],
    [
      "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5," +
      "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;q=0.3," +
      "text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
      "prometheus",
    ],
    ["text/*", "html"],
    ["text/plain, */*", "prometheus"],
    ["text/html;q=0.1, application/json;q=0.9", "json"],
    ["application/json;q=0, */*", "html"],
    ["image/png", "json"],
    ["text/html;q=nonsense, text/plain", "prometheus"],
    ["text/html;q=, application/json;q=0.5", "json"],
    ["text/html;q=1.5, text/plain;q=0.1", "prometheus"],
    ["text/html;q=0.001, */*;q=0", "html"],
  ];
  const contentTypes = {
    json: "application/json; charset=utf-8",
    prometheus: "text/plain; version=0.0.4; charset=utf-8",
    html: "text/html; charset=utf-8",
  };

  for (const [accept, format] of cases) {
    it(`answers Accept ${JSON.stringify(accept ?? null)} with ${format}`, async () => {
      const headers: Record<string, string> = accept === undefined ? {} : { accept };
      const response = await statusHandler(new BreakerRegistry())(get("", headers));
      assert.equal(response.status, 200);
      assert.equal(response.headers.get("content-type"), contentTypes[format]);
      assert.equal(response.headers.get("vary"), "Accept");
      await response.body?.cancel();
    });
  }

  it("lets the format query parameter win over Accept", async () => {
    const handler = statusHandler(new BreakerRegistry());
    for (const format of ["json", "prometheus", "html"] as const) {
      const response = await handler(get(`?format=${format}`, { accept: "image/png" }));
      assert.equal(response.headers.get("content-type"), contentTypes[format]);
      assert.equal(response.headers.get("vary"), null);
      await response.body?.cancel();
    }
  });

  it("rejects an unknown format with 400 naming the parameter and the value", async () => {
    const handler = statusHandler(new BreakerRegistry());
    for (const [query, shown] of [["?format=xml", '"xml"'], ["?format=", '""']]) {
      const response = await handler(get(query));
      assert.equal(response.status, 400);
      assert.equal(response.headers.get("content-type"), "text/plain; charset=utf-8");
      assert.equal(
        await response.text(),
        `Unknown "format" query parameter: received ${shown}; expected one of json, prometheus, html, health\n`,
      );
    }
  });

  it("answers other methods with 405 and an Allow header", async () => {
    const handler = statusHandler(new BreakerRegistry(), { authorize: () => true });
    for (const method of ["PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const response = await handler(new Request(BASE, { method }));
      assert.equal(response.status, 405, method);
      assert.equal(response.headers.get("allow"), "GET, HEAD, POST");
      assert.match(await response.text(), new RegExp(`^Method ${method} is not allowed`));
    }
  });
});

describe("statusHandler actions", () => {
  it("refuses every action with 403 when no authorize function is given", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    const response = await statusHandler(registry)(post({ action: "isolate", name: "db" }));
    assert.equal(response.status, 403);
    assert.match(await response.text(), /Actions are disabled: pass an authorize function/);
    assert.equal(db.state, "closed");
  });

  it("refuses with 403 when authorize returns or resolves to anything but true", async () => {
    const verdicts: StatusHandlerOptions["authorize"][] = [
      () => false,
      () => Promise.resolve(false),
      () => "yes" as unknown as boolean,
    ];
    for (const authorize of verdicts) {
      const { registry, breaker } = fixture();
      const db = breaker("db");
      const handler = statusHandler(registry, authorize ? { authorize } : {});
      const response = await handler(post({ action: "isolate", name: "db" }));
      assert.equal(response.status, 403);
      assert.equal(await response.text(), "Action refused: not authorized\n");
      assert.equal(db.state, "closed");
    }
  });

  it("runs an action when authorize resolves to true, giving it the request", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    const seen: string[] = [];
    const handler = statusHandler(registry, {
      authorize: async (request) => {
        await Promise.resolve();
        seen.push(request.headers.get("authorization") ?? "none");
        return request.headers.get("authorization") === "Bearer admin";
      },
    });
    const refused = await handler(post({ action: "isolate", name: "db" }));
    assert.equal(refused.status, 403);
    await refused.body?.cancel();
    const response = await handler(
      post({ action: "isolate", name: "db" }, { authorization: "Bearer admin" }),
    );
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
    const status: BreakerStatus = await response.json();
    assert.equal(status.name, "db");
    assert.equal(status.state, "isolated");
    assert.equal(db.state, "isolated");
    assert.deepEqual(seen, ["none", "Bearer admin"]);
  });

  it("answers 500 when authorize throws, and reports the error", async () => {
    const { registry, breaker } = fixture();
    breaker("db");
    using reported = captureConsole("error");
    const response = await statusHandler(registry, {
      authorize: () => {
        throw new Error("session store down");
      },
    })(post({ action: "isolate", name: "db" }));
    assert.equal(response.status, 500);
    assert.ok(!(await response.text()).includes("session store down"));
    assert.equal(reported.calls.length, 1);
    assert.equal((reported.calls[0]?.[1] as Error).message, "session store down");
  });

  it("holds isolation until release, once however often isolate is sent", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    const handler = statusHandler(registry, { authorize: () => true });
    for (let i = 0; i < 2; i++) {
      assert.equal((await handler(post({ action: "isolate", name: "db" }))).status, 200);
    }
    assert.equal(db.state, "isolated");
    const released = await handler(post({ action: "release", name: "db" }));
    assert.equal(released.status, 200);
    assert.equal(((await released.json()) as BreakerStatus).state, "closed");
    assert.equal(db.state, "closed");
    const again = await handler(post({ action: "release", name: "db" }));
    assert.equal(again.status, 409);
    assert.equal(await again.text(), 'Breaker "db" is not isolated by an operator\n');
  });

  it("refuses close with 409 while the application holds the breaker isolated; release drops the operators' hold", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    using _application = db.isolate();
    const handler = statusHandler(registry, { authorize: () => true });
    await (await handler(post({ action: "isolate", name: "db" }))).body?.cancel();
    const response = await handler(post({ action: "close", name: "db" }));
    assert.equal(response.status, 409);
    assert.equal(
      await response.text(),
      'Breaker "db" is isolated by the application (1 hold): only the application can end that; release ends the operators\' hold\n',
    );
    assert.equal(db.state, "isolated");
    const released = await handler(post({ action: "release", name: "db" }));
    const status = (await released.json()) as BreakerStatus;
    assert.equal(status.state, "isolated");
    assert.deepEqual(status.isolation, { holds: 1, byOperator: false });
    assert.equal(db.state, "isolated");
  });

  it("closes an open breaker, and one the handler isolated", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db", { failureThreshold: 1 });
    fail(db);
    assert.equal(db.state, "open");
    const handler = statusHandler(registry, { authorize: () => true });
    const closed = await handler(post({ action: "close", name: "db" }));
    assert.equal(((await closed.json()) as BreakerStatus).state, "closed");
    assert.equal(db.state, "closed");
    await (await handler(post({ action: "isolate", name: "db" }))).body?.cancel();
    await (await handler(post({ action: "close", name: "db" }))).body?.cancel();
    assert.equal(db.state, "closed");
    // The hold went with close: there is nothing left to release.
    assert.equal((await handler(post({ action: "release", name: "db" }))).status, 409);
  });

  it("answers 404 for an unknown breaker and 400 for a bad action or body", async () => {
    const { registry, breaker } = fixture();
    breaker(SCRIPT_NAME);
    const handler = statusHandler(registry, { authorize: () => true });
    const cases: [body: unknown, status: number, message: string][] = [
      [{ action: "isolate", name: "nope" }, 404, 'No breaker named "nope" in the registry'],
      [
        { action: "explode", name: "db" },
        400,
        'Unknown "action": received "explode"; expected one of isolate, release, close',
      ],
      [{ name: "db" }, 400, 'Unknown "action": received undefined'],
      [{ action: "close" }, 400, '"name" must be a string, received undefined'],
      [["isolate", "db"], 400, "The body must be a JSON object"],
      ["{not json", 400, "The body is not valid JSON"],
    ];
    for (const [body, status, message] of cases) {
      const response = await handler(post(body));
      assert.equal(response.status, status, JSON.stringify(body));
      assert.ok((await response.text()).startsWith(message), JSON.stringify(body));
    }
    const scripted = await handler(post({ action: "isolate", name: SCRIPT_NAME }));
    assert.equal(scripted.status, 200);
    assert.equal(((await scripted.json()) as BreakerStatus).name, SCRIPT_NAME);
  });

  it("refuses an action that is not JSON, so that no cross-site form can send it", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    let asked = 0;
    const handler = statusHandler(registry, { authorize: () => (asked++, true) });
    for (const contentType of ["application/x-www-form-urlencoded", "text/plain", null]) {
      const headers = new Headers();
      if (contentType !== null) headers.set("content-type", contentType);
      const response = await handler(
        new Request(BASE, {
          method: "POST",
          headers,
          body: contentType === null ? null : '{"action":"isolate","name":"db"}',
        }),
      );
      assert.equal(response.status, 415);
      assert.match(await response.text(), /Content-Type must be application\/json/);
    }
    const charset = await handler(
      post({ action: "isolate", name: "db" }, {
        "content-type": "Application/JSON; charset=utf-8",
      }),
    );
    assert.equal(charset.status, 200);
    await charset.body?.cancel();
    assert.equal(asked, 1);
    assert.equal(db.state, "isolated");
  });

  it("refuses a browser's cross-site or same-site action before asking authorize", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    let asked = 0;
    const handler = statusHandler(registry, { authorize: () => (asked++, true) });
    for (const site of ["cross-site", "same-site"]) {
      const response = await handler(
        post({ action: "isolate", name: "db" }, { "sec-fetch-site": site }),
      );
      assert.equal(response.status, 403);
      assert.equal(await response.text(), `Cross-site action refused (Sec-Fetch-Site: ${site})\n`);
    }
    assert.equal(asked, 0);
    assert.equal(db.state, "closed");
    const sameOrigin = await handler(
      post({ action: "isolate", name: "db" }, { "sec-fetch-site": "same-origin" }),
    );
    assert.equal(sameOrigin.status, 200);
    await sameOrigin.body?.cancel();
    assert.equal(db.state, "isolated");
  });
});

describe("statusHandler over HTTP under a prefix", () => {
  it("serves every format and runs actions behind a router on a real server", async () => {
    const { registry, clock, breaker } = fixture();
    const db = breaker("db", { recoveryTimeout: 10_000 });
    db.open();
    clock.advance(4_000);
    const status = statusHandler(registry, {
      authorize: (request) => request.headers.get("x-admin") === "yes",
    });
    const prefix = "/admin/circuits/";
    const server = await serveLocally((request) =>
      new URL(request.url).pathname === prefix
        ? status(request)
        : new Response("not found", { status: 404 })
    );
    try {
      const url = `${server.origin}${prefix}`;
      const json = await fetch(`${url}?format=json`);
      assert.equal(json.status, 200);
      const body: StatusReport = await json.json();
      assert.equal(body.breakers[0]?.retryAfterMs, 6_000);

      const metrics = await fetch(url, { headers: { accept: "text/plain" } });
      assert.equal(metrics.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
      assert.match(await metrics.text(), /circuit_breaker_state\{name="db",state="open"\} 1/);

      const page = await fetch(url, { headers: { accept: "text/html" } });
      assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
      const html = await page.text();
      assert.match(html, /data-name="db" data-state="open"/);
      assert.ok(html.includes('href="?format=json"'));

      const head = await fetch(`${url}?format=prometheus`, { method: "HEAD" });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), "");

      const forged = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ action: "close", name: "db" }),
      });
      assert.equal(forged.status, 403);
      await forged.body?.cancel();
      assert.equal(db.state, "open");

      const closed = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-admin": "yes" },
        body: JSON.stringify({ action: "close", name: "db" }),
      });
      assert.equal(closed.status, 200);
      assert.equal(((await closed.json()) as BreakerStatus).state, "closed");
      assert.equal(db.state, "closed");

      const elsewhere = await fetch(`${server.origin}/admin/other`);
      assert.equal(elsewhere.status, 404);
      await elsewhere.body?.cancel();
    } finally {
      await server.close();
    }
  });
});

describe("statusHandler isolation belongs to the breaker", () => {
  it("releases an operator's isolation from a second handler and from one built per request", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    const first = statusHandler(registry, { authorize: () => true });
    await (await first(post({ action: "isolate", name: "db" }))).body?.cancel();
    assert.equal(db.state, "isolated");
    // Another handler sees the hold: its page offers Release and its JSON says who holds it.
    const second = statusHandler(registry, { authorize: () => true });
    const page = await (await second(get("?format=html"))).text();
    assert.ok(page.includes('data-action="release" data-name="db"'), page);
    assert.deepEqual((await report(registry)).breakers[0]?.isolation, {
      holds: 1,
      byOperator: true,
    });
    const released = await statusHandler(registry, { authorize: () => true })(
      post({ action: "release", name: "db" }),
    );
    assert.equal(released.status, 200);
    assert.equal(((await released.json()) as BreakerStatus).state, "closed");
    assert.equal(db.state, "closed");
  });

  it("close from another handler drops the operator's hold and closes the circuit", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    await (await statusHandler(registry, { authorize: () => true })(
      post({ action: "isolate", name: "db" }),
    )).body?.cancel();
    const closed = await statusHandler(registry, { authorize: () => true })(
      post({ action: "close", name: "db" }),
    );
    assert.equal(closed.status, 200);
    assert.equal(db.state, "closed");
  });
});

describe("statusHandler protected reads", () => {
  it("answers reads with 403 unless authorizeRead allows, but not the health read", async () => {
    const { registry, breaker } = fixture();
    fail(breaker("db", { failureThreshold: 1 }), new Error("ECONNREFUSED 10.0.3.7:5432"));
    const handler = statusHandler(registry, {
      authorizeRead: (request) => request.headers.get("authorization") === "Bearer ops",
      critical: ["db"],
    });
    for (const format of ["json", "prometheus", "html"]) {
      const refused = await handler(get(`?format=${format}`));
      assert.equal(refused.status, 403, format);
      const text = await refused.text();
      assert.equal(text, "Reading is not authorized\n");
      const allowed = await handler(get(`?format=${format}`, { authorization: "Bearer ops" }));
      assert.equal(allowed.status, 200, format);
      assert.ok((await allowed.text()).includes("ECONNREFUSED") || format === "prometheus");
    }
    const health = await handler(get("?format=health"));
    assert.equal(health.status, 503);
    assert.ok(!(await health.text()).includes("ECONNREFUSED"));
  });

  it("answers 500 when authorizeRead throws, and reports the error", async () => {
    using reported = captureConsole("error");
    const response = await statusHandler(new BreakerRegistry(), {
      authorizeRead: () => {
        throw new Error("session store down");
      },
    })(get("?format=json"));
    assert.equal(response.status, 500);
    await response.body?.cancel();
    assert.equal(reported.calls.length, 1);
  });

  it("shows action buttons only to a viewer authorize allows", async () => {
    const { registry, breaker } = fixture();
    breaker("db").open();
    const handler = statusHandler(registry, {
      authorize: (request) => request.headers.get("x-admin") === "yes",
    });
    const viewer = await (await handler(get("?format=html"))).text();
    assert.ok(!viewer.includes("<button"));
    assert.ok(!viewer.includes("<th>Actions</th>"));
    const admin = await (await handler(get("?format=html", { "x-admin": "yes" }))).text();
    assert.ok(admin.includes('data-action="close" data-name="db"'));
  });

  it("refuses an action body over 4 KiB with 413, by its declared length or as it streams", async () => {
    const { registry, breaker } = fixture();
    const db = breaker("db");
    const handler = statusHandler(registry, { authorize: () => true });
    const padded = JSON.stringify({ action: "isolate", name: "db", pad: "x".repeat(5_000) });
    const declared = await handler(post(padded));
    assert.equal(declared.status, 413);
    assert.equal(await declared.text(), "An action's body must be at most 4096 bytes\n");
    // A body with no declared length is read only up to the bound, then cancelled.
    let pulled = 0;
    let cancelled = false;
    const endless = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1_024).fill(0x20));
      },
      cancel() {
        cancelled = true;
      },
    });
    const streamed = await handler(
      new Request(BASE, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: endless,
        duplex: "half",
      } as RequestInit),
    );
    assert.equal(streamed.status, 413);
    await streamed.body?.cancel();
    assert.ok(pulled <= 8, `pulled ${pulled} chunks`);
    assert.ok(cancelled);
    assert.equal(db.state, "closed");
  });
});

describe("statusHandler health", () => {
  async function health(
    registry: BreakerRegistry,
    critical?: string[],
  ): Promise<[number, HealthReport]> {
    const response = await statusHandler(registry, critical === undefined ? {} : { critical })(
      get("?format=health"),
    );
    assert.equal(response.headers.get("content-type"), "application/json; charset=utf-8");
    return [response.status, await response.json()];
  }

  it("answers 503 while a critical breaker is open or isolated, else 200", async () => {
    const { registry, clock, breaker } = fixture();
    const db = breaker("db", { recoveryTimeout: 1_000 });
    breaker("cache").open();
    assert.deepEqual(await health(registry, ["db"]), [200, {
      healthy: true,
      failing: [],
      missing: [],
      critical: [{ name: "db", state: "closed" }],
    }]);
    db.open();
    assert.deepEqual(await health(registry, ["db", "queue"]), [503, {
      healthy: false,
      failing: ["db"],
      missing: ["queue"],
      critical: [{ name: "db", state: "open" }],
    }]);
    clock.advance(1_000);
    assert.equal((await health(registry, ["db"]))[0], 200, "half-open lets trials through");
    {
      using _hold = db.isolate();
      assert.equal((await health(registry, ["db"]))[0], 503);
    }
  });

  it("is healthy without critical breakers, whatever is open", async () => {
    const { registry, breaker } = fixture();
    breaker("db").open();
    assert.deepEqual(await health(registry), [200, {
      healthy: true,
      failing: [],
      missing: [],
      critical: [],
    }]);
  });

  it("rejects a critical option that is not an array of names", () => {
    assert.throws(() => statusHandler(new BreakerRegistry(), { critical: "db" as never }), {
      name: "TypeError",
      message:
        'Cannot create status handler: "critical" must be an array of breaker names, received "db"',
    });
  });
});

describe("statusHandler with recorded metrics", () => {
  it("counts calls by outcome, rejections and transitions, so that an episode between scrapes shows", async () => {
    const { registry, clock, breaker } = fixture();
    using metrics = new BreakerMetrics(registry);
    const db = breaker("db", { failureThreshold: 1, recoveryTimeout: 1_000 });
    const handler = statusHandler(registry, { metrics });
    db.executeSync(() => "ok");
    fail(db);
    assert.throws(() => db.executeSync(() => "turned away"), BreakerOpenError);
    clock.advance(1_000);
    db.executeSync(() => "trial");
    assert.equal(db.state, "closed");
    const text = await (await handler(get("?format=prometheus"))).text();
    const samples = parseSamples(text);
    const calls = (outcome: string) =>
      sampleOf(samples, "circuit_breaker_calls_total", { name: "db", outcome });
    assert.equal(calls("success"), 2);
    assert.equal(calls("failure"), 1);
    assert.equal(calls("rejected"), 1);
    const transitions = (from: string, to: string) =>
      sampleOf(samples, "circuit_breaker_transitions_total", { name: "db", from, to });
    assert.equal(transitions("closed", "open"), 1);
    assert.equal(transitions("open", "half-open"), 1);
    assert.equal(transitions("half-open", "closed"), 1);
    assert.match(text, /^# TYPE circuit_breaker_calls_total counter$/m);
    assert.match(text, /^# TYPE circuit_breaker_call_duration_seconds histogram$/m);
    assert.equal(
      sampleOf(samples, "circuit_breaker_call_duration_seconds_count", {
        name: "db",
        outcome: "success",
      }),
      2,
    );
    assert.equal(
      sampleOf(samples, "circuit_breaker_call_duration_seconds_bucket", {
        name: "db",
        outcome: "success",
        le: "+Inf",
      }),
      2,
    );
  });

  it("reports when a breaker opened and last failed, and its last transitions with their cause", async () => {
    const { registry, clock, breaker } = fixture();
    using metrics = new BreakerMetrics(registry, { history: 3 });
    const db = breaker("db", { failureThreshold: 2, recoveryTimeout: 1_000 });
    fail(db, new Error("ECONNREFUSED"));
    clock.advance(100);
    fail(db, new Error("ECONNREFUSED again"));
    const openedAt = clock.now;
    const handler = statusHandler(registry, { metrics, authorize: () => true });
    let [status] = (await (await handler(get("?format=json"))).json() as StatusReport).breakers;
    assert.equal(status?.openedAt, openedAt);
    assert.equal(status?.lastFailureAt, openedAt);
    assert.deepEqual(status?.history, [{
      at: openedAt,
      from: "closed",
      to: "open",
      cause: "2 consecutive failures; last: Error: ECONNREFUSED again",
    }]);
    clock.advance(1_000);
    fail(db, new Error("still down"));
    await (await handler(post({ action: "isolate", name: "db" }))).body?.cancel();
    await (await handler(post({ action: "release", name: "db" }))).body?.cancel();
    [status] = (await (await handler(get("?format=json"))).json() as StatusReport).breakers;
    assert.deepEqual(status?.history.map(({ from, to, cause }) => `${from}>${to}: ${cause}`), [
      "half-open>open: a trial call failed; last: Error: still down",
      "open>isolated: isolated by an operator",
      "isolated>closed: released by an operator",
    ]);
    assert.equal(status?.openedAt, null);
    const page = await (await handler(get("?format=html"))).text();
    assert.ok(page.includes("isolated by an operator"));
  });

  it("rejects metrics of another registry", () => {
    using metrics = new BreakerMetrics(new BreakerRegistry());
    assert.throws(() => statusHandler(new BreakerRegistry(), { metrics }), {
      name: "TypeError",
      message:
        'Cannot create status handler: "metrics" records another registry than the one served',
    });
  });
});

describe("statusHandler bounded groups", () => {
  it("keeps a scrape, the JSON and the page small for a group of 10,000 keys, 2,000 of them open", async () => {
    const registry = new BreakerRegistry();
    using metrics = new BreakerMetrics(registry);
    const group = new BreakerGroup({ name: "tenants", registry, failureThreshold: 1 });
    for (let i = 0; i < 10_000; i++) group.get(`t${i}`).executeSync(() => "ok");
    for (let i = 0; i < 2_000; i++) fail(group.get(`t${i}`));
    const handler = statusHandler(registry, { metrics });
    const text = await (await handler(get("?format=prometheus"))).text();
    assert.ok(text.length < 40_000, `${text.length} characters`);
    const samples = parseSamples(text);
    assert.equal(
      sampleOf(samples, "circuit_breaker_group_members", { group: "tenants", state: "open" }),
      2_000,
    );
    assert.equal(
      sampleOf(samples, "circuit_breaker_group_members", { group: "tenants", state: "closed" }),
      8_000,
    );
    assert.equal(
      sampleOf(samples, "circuit_breaker_calls_total", { group: "tenants", outcome: "success" }),
      10_000,
    );
    assert.equal(
      sampleOf(samples, "circuit_breaker_state", { name: "tenants:t0", state: "open" }),
      1,
    );
    const json = await (await handler(get("?format=json"))).text();
    assert.ok(json.length < 60_000, `${json.length} characters`);
    const body = JSON.parse(json) as StatusReport;
    assert.equal(body.breakers.length, 50);
    assert.deepEqual(body.groups, [{
      name: "tenants",
      total: 10_000,
      closed: 8_000,
      open: 2_000,
      halfOpen: 0,
      recovering: 0,
      isolated: 0,
      unlisted: 1_950,
    }]);
    // The summary names only the members listed; the others are counted in its groups.
    assert.equal(body.summary.open.length, 50);
    assert.equal(body.summary.groups["tenants"]?.open, 2_000);
    assert.deepEqual(body.counts, {
      closed: 8_000,
      open: 2_000,
      halfOpen: 0,
      recovering: 0,
      isolated: 0,
    });
    const page = await (await handler(get("?format=html"))).text();
    assert.ok(page.length < 150_000, `${page.length} characters`);
    assert.match(page, /10000 breakers: 2000 open, 8000 closed/);
  });
});

describe("statusHandler rules", () => {
  it("states each breaker's rule and thresholds in words, and a mode that turns nothing away", async () => {
    const { registry, breaker } = fixture();
    breaker("rates", {
      failureRate: 0.5,
      slowCallRate: 0.8,
      slowCallDuration: 2_000,
      minimumCalls: 20,
      window: { calls: 100 },
      recoveryRamp: { duration: 10_000, initialRate: 0.1 },
      timeout: 5_000,
    });
    breaker("watching", { mode: "observe" });
    const [rates, watching] = (await report(registry)).breakers;
    assert.equal(
      rates?.rule,
      "opens on failure rate >= 50 % or calls slower than 2.0 s >= 80 % (over the last 100 calls, from 20 calls) · timeout 5.0 s · recovery 30.0 s · 1 trial at once, 1 success closes · ramp 10.0 s from 10 %",
    );
    assert.match(watching?.rule ?? "", /^mode observe: turns no call away · opens on 5/);
  });
});

describe("statusHandler odd failures", () => {
  it("serves every format when a failure's message getter throws or it is a revoked Proxy", async () => {
    const { registry, breaker } = fixture();
    const throwing = new Error("hidden");
    Object.defineProperty(throwing, "message", {
      get() {
        throw new Error("message getter");
      },
    });
    const { proxy, revoke } = Proxy.revocable(new Error("proxied"), {});
    revoke();
    fail(breaker("getter"), throwing);
    fail(breaker("proxy"), proxy);
    const handler = statusHandler(registry);
    const body = (await (await handler(get("?format=json"))).json()) as StatusReport;
    assert.deepEqual(body.breakers.map((status) => status.lastFailure), [
      "(a failure that could not be read)",
      "(a failure that could not be read)",
    ]);
    for (const format of ["prometheus", "html"]) {
      assert.equal((await handler(get(`?format=${format}`))).status, 200);
    }
  });
});

describe("statusHandler name collisions", () => {
  it("lists both breakers of a name and warns on the page", async () => {
    const registry = new BreakerRegistry();
    const older = new Breaker({ name: "get", registry });
    const newer = new Breaker({ name: "get", registry });
    older.open();
    const handler = statusHandler(registry);
    const body = (await (await handler(get("?format=json"))).json()) as StatusReport;
    assert.deepEqual(body.breakers.map((status) => status.state), ["open", "closed"]);
    assert.equal(body.summary.allClosed, false);
    const page = await (await handler(get("?format=html"))).text();
    assert.match(page, /One name is held by several breakers, each listed: <code>get<\/code>/);
    assert.equal(newer.state, "closed");
    // Actions by name reach the newest only, so the older one's row offers none.
    const admin = await (await statusHandler(registry, { authorize: () => true })(
      get("?format=html"),
    )).text();
    assert.equal(admin.match(/data-action="isolate" data-name="get"/g)?.length, 1);
    assert.match(admin, /an older breaker of a duplicated name: actions reach the newest/);
    // A scrape never repeats a series: the second breaker of a name is told apart.
    const text = await (await handler(get("?format=prometheus"))).text();
    assert.match(text, /^circuit_breaker_state\{name="get",state="open"\} 1$/m);
    assert.match(text, /^circuit_breaker_state\{name="get",duplicate="2",state="open"\} 0$/m);
    const keys = parseSamples(text).map((sample) =>
      `${sample.name}${JSON.stringify(sample.labels)}`
    );
    assert.equal(new Set(keys).size, keys.length, "a series appears twice");
  });
});

/** Debian's `promtool` (package `prometheus`), by the suite's one rule for a missing service. */
const promtool = testsNeeding("promtool");

describe("statusHandler Prometheus naming rules", () => {
  promtool.it(
    "passes promtool check metrics, with counters, a histogram, groups and odd names",
    async () => {
      const PROMTOOL = promtool.executable as string;
      const { registry, clock, breaker } = fixture();
      using metrics = new BreakerMetrics(registry);
      const db = breaker("db", { failureThreshold: 1, recoveryTimeout: 1_000 });
      db.executeSync(() => "ok");
      fail(db);
      clock.advance(1_000);
      db.executeSync(() => "trial");
      using _hold = breaker('say "hi"\\there\nnext').isolate();
      const group = new BreakerGroup({ name: "hosts", registry, clock, failureThreshold: 1 });
      group.get("a").executeSync(() => "ok");
      fail(group.get("b"));
      const text = await (await statusHandler(registry, { metrics })(get("?format=prometheus")))
        .text();
      const checked = spawnSync(PROMTOOL, ["check", "metrics"], { input: text, encoding: "utf8" });
      assert.equal(checked.status, 0, `${checked.stdout}${checked.stderr}\n${text}`);
      assert.equal(`${checked.stdout}${checked.stderr}`, "");
    },
  );
});
