/**
 * A status endpoint for operators: one web-standard handler `(request) => Response` that serves
 * the breakers of a registry as JSON, in the Prometheus text format, or as an HTML page that
 * refreshes by itself, with optional isolate / release / close actions. It mounts in
 * `Deno.serve`, `Bun.serve`, Hono or any fetch-style router, under any path.
 *
 * @example Deno.serve
 * ```ts
 * import { statusHandler } from "@circuit/breaker";
 *
 * const status = statusHandler();
 * Deno.serve((request) =>
 *   new URL(request.url).pathname === "/status"
 *     ? status(request)
 *     : new Response("Not found", { status: 404 })
 * );
 * ```
 *
 * @module
 */

import type { Breaker } from "./breaker.ts";
import { describeValue } from "./core/describe_value.ts";
import type { BreakerState } from "./core/snapshot.ts";
import type { WindowStats } from "./core/window.ts";
import { BreakerRegistry, defaultRegistry, type RegistrySummary } from "./registry.ts";

/**
 * Options of {@linkcode statusHandler}.
 *
 * @example
 * ```ts
 * import { statusHandler, type StatusHandlerOptions } from "@circuit/breaker";
 *
 * const options: StatusHandlerOptions = {
 *   authorize: (request) => request.headers.get("authorization") === "Bearer s3cret",
 *   refreshInterval: 5_000,
 * };
 * const status = statusHandler(undefined, options);
 * ```
 */
export interface StatusHandlerOptions {
  /**
   * Enables the actions (isolate, release, close) and decides who may run them: a `POST` is
   * carried out only when this returns (or resolves to) `true`; otherwise it gets 403. It is
   * called before the body is read, so decide on headers (a session cookie, a bearer token).
   * A throw is reported with `console.error` and answered with 500.
   *
   * @default undefined (actions disabled: every `POST` gets 403, and the page shows no buttons)
   */
  readonly authorize?: (request: Request) => boolean | Promise<boolean>;
  /**
   * Milliseconds between two refreshes of the HTML page (at least 100).
   *
   * @default 2_000
   */
  readonly refreshInterval?: number;
  /**
   * The HTML page's title and heading.
   *
   * @default "Circuit breakers"
   */
  readonly title?: string;
}

/**
 * The handler {@linkcode statusHandler} returns: a fetch-style function of a `Request`.
 *
 * @example
 * ```ts
 * import { type StatusHandler, statusHandler } from "@circuit/breaker";
 * const status: StatusHandler = statusHandler();
 * const response = await status(new Request("http://localhost/status?format=json"));
 * ```
 */
export type StatusHandler = (request: Request) => Promise<Response>;

/**
 * One breaker in the JSON answer (`?format=json`).
 *
 * @example
 * ```ts
 * import type { BreakerStatus } from "@circuit/breaker";
 * const db: BreakerStatus = {
 *   name: "db",
 *   state: "open",
 *   failureCount: 5,
 *   openUntil: 1_700_000_030_000,
 *   retryAfterMs: 12_000,
 *   window: { calls: 0, failures: 0, slowCalls: 0, failureRate: 0, slowCallRate: 0 },
 *   lastFailure: "Error: connection refused",
 * };
 * ```
 */
export interface BreakerStatus {
  /** The breaker's name. */
  readonly name: string;
  /** The state now. */
  readonly state: BreakerState;
  /** Consecutive failures recorded. */
  readonly failureCount: number;
  /** When trial calls may start (epoch ms, by the breaker's clock), or `null` when not open. */
  readonly openUntil: number | null;
  /**
   * Milliseconds until a call may be admitted: 0 unless open; `null` while isolated (the
   * breaker's `Infinity`, which JSON cannot write: no time is set, it waits for a release).
   */
  readonly retryAfterMs: number | null;
  /** Counts in the rate rules' window (all zero when no rule uses a window). */
  readonly window: WindowStats;
  /**
   * The last failure as text (`"TypeError: fetch failed"`, `"HTTP 503 Service Unavailable"`
   * for a `Response`), or `null` when none was recorded.
   */
  readonly lastFailure: string | null;
}

/**
 * The JSON answer of a read (`?format=json`): the registry's summary and every breaker.
 *
 * @example
 * ```ts
 * import { type StatusReport, statusHandler } from "@circuit/breaker";
 * const response = await statusHandler()(new Request("http://localhost/?format=json"));
 * const report: StatusReport = await response.json();
 * report.summary.allClosed;
 * ```
 */
export interface StatusReport {
  /** The breakers' names by state. */
  readonly summary: RegistrySummary;
  /** Every breaker the registry lists, in its order. */
  readonly breakers: readonly BreakerStatus[];
}

/**
 * Creates a handler serving the breakers of `registry` (by default {@linkcode defaultRegistry})
 * at whatever path it is mounted on; it never reads the path.
 *
 * Reads (`GET`, `HEAD`) answer in the format named by the `format` query parameter (`json`,
 * `prometheus` or `html`; any other value gets 400), else by the `Accept` header:
 * `text/html` → the page, `text/plain` or `application/openmetrics-text` → the Prometheus
 * text format 0.0.4, `application/json` → JSON (the highest `q` wins, then the most specific
 * match). A wildcard, no `Accept` or one that none of these match get JSON, so browsers get
 * the page and scripts and `curl` get JSON. Every answer is `Cache-Control: no-store`.
 *
 * Actions are a `POST` with a JSON body `{"action": "isolate" | "release" | "close", "name"}`
 * and `Content-Type: application/json`, enabled only by the `authorize` option. `isolate`
 * holds the breaker isolated until a `release` (or `close`) through this handler; `close` also
 * drops that hold and closes the circuit. The answer is the breaker's {@linkcode BreakerStatus}.
 * Against cross-site request forgery, an action must be JSON (a cross-site form cannot send
 * it, and a cross-site `fetch` needs a CORS preflight this handler never grants), and a
 * browser's `Sec-Fetch-Site`, when sent, must be `same-origin` (or `none`). Other methods get
 * 405 with an `Allow` header.
 *
 * The page's links and requests are relative to its own URL (`?format=json`,
 * `fetch(location.href)`), so it works under any prefix, even behind a proxy or a router that
 * rewrites the path.
 *
 * Throws a `TypeError` or `RangeError` naming a bad argument.
 *
 * @example Under a prefix in Hono, with actions for admins
 * ```ts ignore
 * import { Hono } from "hono";
 * import { defaultRegistry, statusHandler } from "@circuit/breaker";
 *
 * const status = statusHandler(defaultRegistry, {
 *   authorize: (request) => request.headers.get("x-admin-token") === Deno.env.get("ADMIN_TOKEN"),
 * });
 * const app = new Hono();
 * app.all("/admin/circuits", (c) => status(c.req.raw));
 * ```
 *
 * @example Bun.serve
 * ```ts ignore
 * import { statusHandler } from "@circuit/breaker";
 * Bun.serve({ routes: { "/status": statusHandler() }, fetch: () => new Response("Not found", { status: 404 }) });
 * ```
 */
export function statusHandler(
  registry: BreakerRegistry = defaultRegistry,
  options: StatusHandlerOptions = {},
): StatusHandler {
  const settings = parseHandlerArguments(registry, options);
  // The holds taken by the isolate action, so that release and close can dispose them.
  const holds = new WeakMap<Breaker, Disposable>();
  const context: HandlerContext = { registry, settings, holds };
  return async (request: Request): Promise<Response> => {
    switch (request.method) {
      case "GET":
        return read(context, request);
      case "HEAD": {
        const answer = read(context, request);
        return new Response(null, { status: answer.status, headers: answer.headers });
      }
      case "POST":
        return await act(context, request);
      default:
        return textResponse(
          405,
          `Method ${request.method} is not allowed: use GET or HEAD to read, POST for actions`,
          { allow: "GET, HEAD, POST" },
        );
    }
  };
}

interface Settings {
  readonly authorize: ((request: Request) => boolean | Promise<boolean>) | undefined;
  readonly refreshInterval: number;
  readonly title: string;
}

interface HandlerContext {
  readonly registry: BreakerRegistry;
  readonly settings: Settings;
  readonly holds: WeakMap<Breaker, Disposable>;
}

const OPTION_NAMES: readonly string[] = ["authorize", "refreshInterval", "title"];
const MIN_REFRESH_INTERVAL = 100;

function parseHandlerArguments(registry: unknown, options: unknown): Settings {
  const context = "Cannot create status handler";
  if (!(registry instanceof BreakerRegistry)) {
    throw new TypeError(
      `${context}: "registry" must be a BreakerRegistry, received ${describeValue(registry)}`,
    );
  }
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(
      `${context}: options must be an object, received ${describeValue(options)}`,
    );
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_NAMES.includes(key)) {
      throw new TypeError(`${context}: unknown option ${JSON.stringify(key)}`);
    }
  }
  const { authorize, refreshInterval = 2_000, title = "Circuit breakers" } = options as Record<
    string,
    unknown
  >;
  if (authorize !== undefined && typeof authorize !== "function") {
    throw new TypeError(
      `${context}: "authorize" must be a function, received ${describeValue(authorize)}`,
    );
  }
  if (typeof refreshInterval !== "number") {
    throw new TypeError(
      `${context}: "refreshInterval" must be a number of ms, received ${
        describeValue(refreshInterval)
      }`,
    );
  }
  if (!Number.isFinite(refreshInterval) || refreshInterval < MIN_REFRESH_INTERVAL) {
    throw new RangeError(
      `${context}: "refreshInterval" must be a finite number >= ${MIN_REFRESH_INTERVAL} (ms), received ${
        describeValue(refreshInterval)
      }`,
    );
  }
  if (typeof title !== "string") {
    throw new TypeError(`${context}: "title" must be a string, received ${describeValue(title)}`);
  }
  return {
    authorize: authorize as Settings["authorize"],
    refreshInterval,
    title,
  };
}

// ---------------------------------------------------------------- reads

type Format = "json" | "prometheus" | "html";

const FORMATS: readonly Format[] = ["json", "prometheus", "html"];

/** What each format answers to in `Accept`, in the order that breaks ties (JSON by default). */
const MEDIA_TYPES: readonly (readonly [Format, readonly string[]])[] = [
  ["json", ["application/json"]],
  ["html", ["text/html"]],
  ["prometheus", ["text/plain", "application/openmetrics-text"]],
];

const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

function read(context: HandlerContext, request: Request): Response {
  const requested = new URL(request.url).searchParams.get("format");
  let format: Format;
  if (requested === null) {
    format = negotiate(request.headers.get("accept"));
  } else if ((FORMATS as readonly string[]).includes(requested)) {
    format = requested as Format;
  } else {
    return textResponse(
      400,
      `Unknown "format" query parameter: received ${describeValue(requested)}; expected one of ${
        FORMATS.join(", ")
      }`,
    );
  }
  const headers: Record<string, string> = requested === null ? { vary: "Accept" } : {};
  const listed = [...context.registry].map((breaker) => ({ breaker, status: statusOf(breaker) }));
  const statuses = listed.map(({ status }) => status);
  switch (format) {
    case "json": {
      const report: StatusReport = { summary: context.registry.summary(), breakers: statuses };
      return response(200, JSON.stringify(report), {
        ...headers,
        "content-type": "application/json; charset=utf-8",
      });
    }
    case "prometheus":
      return response(200, prometheusText(statuses), {
        ...headers,
        "content-type": PROMETHEUS_CONTENT_TYPE,
      });
    case "html": {
      const nonce = randomNonce();
      return response(200, htmlPage(context, listed, nonce), {
        ...headers,
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": [
          "default-src 'none'",
          `script-src 'nonce-${nonce}'`,
          `style-src 'nonce-${nonce}'`,
          "connect-src 'self'",
          "base-uri 'none'",
          "form-action 'none'",
          "frame-ancestors 'none'",
        ].join("; "),
        "referrer-policy": "no-referrer",
      });
    }
  }
}

/**
 * The format an `Accept` header prefers: the highest `q`, then the most specific range
 * (`text/plain` over `text/*` over the full wildcard), then the order of `MEDIA_TYPES`. An
 * `Accept` nothing matches gets JSON (RFC 9110 lets a server disregard it).
 */
function negotiate(accept: string | null): Format {
  if (accept === null || accept.trim() === "") return "json";
  const ranges = parseAccept(accept);
  let best: { format: Format; q: number; specificity: number } | undefined;
  for (const [format, types] of MEDIA_TYPES) {
    for (const type of types) {
      const match = matchRange(ranges, type);
      if (match === undefined || match.q === 0) continue;
      if (
        best === undefined || match.q > best.q ||
        (match.q === best.q && match.specificity > best.specificity)
      ) {
        best = { format, q: match.q, specificity: match.specificity };
      }
    }
  }
  return best?.format ?? "json";
}

interface MediaRange {
  readonly type: string;
  readonly subtype: string;
  readonly q: number;
}

/** A weight as RFC 9110 writes it: 0 to 1, at most three decimals. */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

function parseAccept(accept: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const part of accept.split(",")) {
    const [mediaType = "", ...parameters] = part.split(";");
    const [type, subtype, extra] = mediaType.trim().toLowerCase().split("/");
    if (type === undefined || subtype === undefined || extra !== undefined) continue;
    if (type === "" || subtype === "") continue;
    let q: number | undefined = 1;
    for (const parameter of parameters) {
      const [key, value = ""] = parameter.split("=").map((piece) => piece.trim());
      if (key?.toLowerCase() === "q") q = QVALUE.test(value) ? Number(value) : undefined;
    }
    // A range with a malformed weight says nothing reliable: skip it.
    if (q === undefined) continue;
    ranges.push({ type, subtype, q });
  }
  return ranges;
}

/** The weight the most specific range matching `mediaType` gives it. */
function matchRange(
  ranges: readonly MediaRange[],
  mediaType: string,
): { q: number; specificity: number } | undefined {
  const [type, subtype] = mediaType.split("/");
  let best: { q: number; specificity: number } | undefined;
  for (const range of ranges) {
    let specificity: number;
    if (range.type === type && range.subtype === subtype) specificity = 2;
    else if (range.type === type && range.subtype === "*") specificity = 1;
    else if (range.type === "*" && range.subtype === "*") specificity = 0;
    else continue;
    if (best === undefined || specificity > best.specificity) best = { q: range.q, specificity };
  }
  return best;
}

function statusOf(breaker: Breaker): BreakerStatus {
  const retryAfterMs = breaker.retryAfterMs;
  return {
    name: breaker.name,
    state: breaker.state,
    failureCount: breaker.failureCount,
    openUntil: breaker.openUntil ?? null,
    retryAfterMs: Number.isFinite(retryAfterMs) ? retryAfterMs : null,
    window: breaker.stats,
    lastFailure: describeFailure(breaker.lastFailure),
  };
}

const MAX_FAILURE_TEXT = 500;

/** A failure as text, without running any code of the failure but `Error`'s own fields. */
function describeFailure(failure: unknown): string | null {
  if (failure === undefined) return null;
  let text: string;
  if (failure instanceof Error) {
    const name = typeof failure.name === "string" ? failure.name : "Error";
    const message = typeof failure.message === "string" ? failure.message : "";
    text = message === "" ? name : `${name}: ${message}`;
  } else if (failure instanceof Response) {
    text = `HTTP ${failure.status} ${failure.statusText}`.trimEnd();
  } else if (typeof failure === "string") {
    text = failure;
  } else if (
    typeof failure === "number" || typeof failure === "boolean" || typeof failure === "bigint"
  ) {
    text = String(failure);
  } else {
    text = describeValue(failure);
  }
  return text.length > MAX_FAILURE_TEXT ? `${text.slice(0, MAX_FAILURE_TEXT - 1)}…` : text;
}

// ---------------------------------------------------------------- Prometheus

const STATES: readonly BreakerState[] = ["closed", "open", "half-open", "recovering", "isolated"];

/** The Prometheus text exposition format 0.0.4; every series has a `name` label. */
function prometheusText(statuses: readonly BreakerStatus[]): string {
  const lines: string[] = [];
  const metric = (
    name: string,
    help: string,
    samples: (status: BreakerStatus) => readonly [labels: string, value: number][],
  ) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
    for (const status of statuses) {
      const label = `name="${escapeLabelValue(status.name)}"`;
      for (const [labels, value] of samples(status)) {
        lines.push(`${name}{${label}${labels}} ${prometheusNumber(value)}`);
      }
    }
  };
  metric(
    "circuit_breaker_state",
    "The circuit's state: 1 for the state it is in, 0 for the others.",
    (status) => STATES.map((state) => [`,state="${state}"`, status.state === state ? 1 : 0]),
  );
  metric(
    "circuit_breaker_failure_count",
    "Consecutive failures recorded.",
    (status) => [["", status.failureCount]],
  );
  metric(
    "circuit_breaker_retry_after_seconds",
    "Seconds until a call may be admitted: 0 unless open, +Inf while isolated.",
    (status) => [["", status.retryAfterMs === null ? Infinity : status.retryAfterMs / 1000]],
  );
  metric(
    "circuit_breaker_window_calls",
    "Calls in the rate rules' window (0 when no rule uses a window).",
    (status) => [["", status.window.calls]],
  );
  metric(
    "circuit_breaker_window_failures",
    "Failed calls in the rate rules' window.",
    (status) => [["", status.window.failures]],
  );
  metric(
    "circuit_breaker_window_slow_calls",
    "Slow calls in the rate rules' window.",
    (status) => [["", status.window.slowCalls]],
  );
  return lines.join("\n") + "\n";
}

/** A label value as the exposition format writes it: `\`, `"` and newlines escaped. */
function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (char) => char === "\n" ? "\\n" : `\\${char}`);
}

function prometheusNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}

// ---------------------------------------------------------------- HTML

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for an HTML element or a double-quoted attribute value. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] ?? char);
}

function randomNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes));
}

/** Text for a duration in ms: `850 ms`, `12.5 s`, `4 min 10 s`, `2 h 5 min`. */
function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.ceil(ms)} ms`;
  if (ms < 60_000) return `${(Math.ceil(ms / 100) / 10).toFixed(1)} s`;
  const seconds = Math.ceil(ms / 1_000);
  if (seconds < 3_600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3_600)} h ${Math.floor((seconds % 3_600) / 60)} min`;
}

function retryText(status: BreakerStatus): string {
  switch (status.state) {
    case "open":
      return status.retryAfterMs === null ? "—" : formatDuration(status.retryAfterMs);
    case "isolated":
      return "until released";
    case "half-open":
      return "now (trial calls)";
    default:
      return "—";
  }
}

function windowText(window: WindowStats): string {
  if (window.calls === 0) return "—";
  const percent = (window.failureRate * 100).toFixed(1);
  return `${window.failures} / ${window.calls} (${percent} %)`;
}

function summaryText(summary: RegistrySummary): string {
  if (summary.total === 0) return "No breakers are registered.";
  const counts: [number, string][] = [
    [summary.closed.length, "closed"],
    [summary.open.length, "open"],
    [summary.halfOpen.length, "half-open"],
    [summary.recovering.length, "recovering"],
    [summary.isolated.length, "isolated"],
  ];
  const parts = counts.filter(([count]) => count !== 0).map(([count, state]) =>
    `${count} ${state}`
  );
  return `${summary.total} breaker${summary.total === 1 ? "" : "s"}: ${parts.join(", ")}`;
}

function actionButtons(context: HandlerContext, breaker: Breaker, status: BreakerStatus): string {
  const actions: [Action, string][] = [];
  if (context.holds.has(breaker)) actions.push(["release", "Release"]);
  else if (status.state !== "isolated") actions.push(["isolate", "Isolate"]);
  if (status.state !== "closed" && status.state !== "isolated") actions.push(["close", "Close"]);
  const name = escapeHtml(status.name);
  return actions.map(([action, label]) =>
    `<button type="button" data-action="${action}" data-name="${name}">${label}</button>`
  ).join(" ");
}

const STYLE = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { margin: 1.5rem 2rem; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
.summary { margin: 0 0 1rem; }
.summary.all-closed { color: #1a7f37; }
.summary.not-all-closed { color: #cf222e; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #8885; vertical-align: top; }
th { font-weight: 600; }
.name { font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
.number { font-variant-numeric: tabular-nums; white-space: nowrap; }
.failure { max-width: 32rem; overflow-wrap: anywhere; }
.state { display: inline-block; padding: .1rem .55rem; border-radius: .8rem; font-weight: 600; color: #fff; }
.state-closed { background-color: #1a7f37; }
.state-open { background-color: #cf222e; }
.state-half-open { background-color: #d4a72c; color: #1f2328; }
.state-recovering { background-color: #0969da; }
.state-isolated { background-color: #8250df; }
button { font: inherit; padding: .1rem .6rem; cursor: pointer; }
footer { margin-top: 1rem; font-size: .85rem; opacity: .8; }
`;

// Refreshes <main> from the same URL (so it works under any prefix) and posts actions there.
const SCRIPT = `
const interval = Number(document.body.dataset.refreshInterval);
const refreshStatus = document.getElementById("refresh-status");
let timer;
async function refresh() {
  try {
    const response = await fetch(location.href, { headers: { accept: "text/html" }, cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const next = new DOMParser().parseFromString(await response.text(), "text/html");
    const main = next.querySelector("main");
    if (main === null) throw new Error("the answer has no <main>");
    document.querySelector("main").replaceWith(main);
    refreshStatus.textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (error) {
    refreshStatus.textContent = "Refresh failed at " + new Date().toLocaleTimeString() + ": " + error.message;
  }
}
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, interval);
}
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (button === null) return;
  button.disabled = true;
  clearTimeout(timer);
  try {
    const response = await fetch(location.href, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ action: button.dataset.action, name: button.dataset.name }),
    });
    if (!response.ok) {
      await refresh();
      refreshStatus.textContent = button.dataset.action + " failed: " + await response.text();
      return;
    }
    await refresh();
  } catch (error) {
    refreshStatus.textContent = button.dataset.action + " failed: " + error.message;
  } finally {
    schedule();
  }
});
schedule();
`;

function htmlPage(
  context: HandlerContext,
  listed: readonly { breaker: Breaker; status: BreakerStatus }[],
  nonce: string,
): string {
  const { settings, registry } = context;
  const summary = registry.summary();
  const title = escapeHtml(settings.title);
  const withActions = settings.authorize !== undefined;
  const rows = listed.map(({ breaker, status }) => {
    const state = escapeHtml(status.state);
    const cells = [
      `<td class="name">${escapeHtml(status.name)}</td>`,
      `<td><span class="state state-${state}">${state}</span></td>`,
      `<td class="number failures">${status.failureCount}</td>`,
      `<td class="number window">${windowText(status.window)}</td>`,
      `<td class="number retry">${retryText(status)}</td>`,
      `<td class="failure">${
        status.lastFailure === null ? "—" : escapeHtml(status.lastFailure)
      }</td>`,
    ];
    if (withActions) {
      cells.push(
        `<td class="actions">${actionButtons(context, breaker, status)}</td>`,
      );
    }
    return `<tr class="breaker" data-name="${escapeHtml(status.name)}" data-state="${state}">${
      cells.join("")
    }</tr>`;
  });
  const table = listed.length === 0 ? "" : `<table>
<thead><tr><th>Name</th><th>State</th><th>Consecutive failures</th><th>Window failures</th><th>Retry in</th><th>Last failure</th>${
    withActions ? "<th>Actions</th>" : ""
  }</tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>`;
  const refreshSeconds = Math.max(1, Math.round(settings.refreshInterval / 1_000));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<noscript><meta http-equiv="refresh" content="${refreshSeconds}"></noscript>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body data-refresh-interval="${settings.refreshInterval}">
<h1>${title}</h1>
<main>
<p class="summary ${summary.allClosed ? "all-closed" : "not-all-closed"}">${
    escapeHtml(summaryText(summary))
  }</p>
${table}
</main>
<footer>
<a href="?format=json">JSON</a> · <a href="?format=prometheus">Prometheus</a> ·
<span id="refresh-status">Refreshes every ${formatDuration(settings.refreshInterval)}</span>
</footer>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}

// ---------------------------------------------------------------- actions

type Action = "isolate" | "release" | "close";

const ACTIONS: readonly Action[] = ["isolate", "release", "close"];

async function act(context: HandlerContext, request: Request): Promise<Response> {
  const { authorize } = context.settings;
  if (authorize === undefined) {
    return textResponse(
      403,
      "Actions are disabled: pass an authorize function to statusHandler() to enable them",
    );
  }
  // A browser says where a request comes from; anything but the page's own origin is forged.
  const site = request.headers.get("sec-fetch-site");
  if (site !== null && site !== "same-origin" && site !== "none") {
    return textResponse(403, `Cross-site action refused (Sec-Fetch-Site: ${site})`);
  }
  const contentType = request.headers.get("content-type");
  if (contentType?.split(";")[0]?.trim().toLowerCase() !== "application/json") {
    return textResponse(
      415,
      `An action must be sent as JSON: Content-Type must be application/json, received ${
        contentType === null ? "none" : JSON.stringify(contentType)
      }`,
    );
  }
  let allowed: unknown;
  try {
    allowed = await authorize(request);
  } catch (error) {
    console.error("statusHandler: authorize() threw", error);
    return textResponse(500, "authorize() failed; see the server's log");
  }
  if (allowed !== true) return textResponse(403, "Action refused: not authorized");

  let body: unknown;
  try {
    body = JSON.parse(await request.text());
  } catch (error) {
    return textResponse(
      400,
      `The body is not valid JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    return textResponse(
      400,
      `The body must be a JSON object like {"action":"isolate","name":"db"}, received ${
        describeValue(body)
      }`,
    );
  }
  const { action, name } = body as Record<string, unknown>;
  if (typeof action !== "string" || !(ACTIONS as readonly string[]).includes(action)) {
    return textResponse(
      400,
      `Unknown "action": received ${describeValue(action)}; expected one of ${ACTIONS.join(", ")}`,
    );
  }
  if (typeof name !== "string") {
    return textResponse(400, `"name" must be a string, received ${describeValue(name)}`);
  }
  const breaker = context.registry.get(name);
  if (breaker === undefined) {
    return textResponse(404, `No breaker named ${JSON.stringify(name)} in the registry`);
  }
  const { holds } = context;
  const hold = holds.get(breaker);
  switch (action as Action) {
    case "isolate":
      if (hold === undefined) holds.set(breaker, breaker.isolate());
      break;
    case "release":
      if (hold === undefined) {
        return textResponse(
          409,
          `Breaker ${JSON.stringify(name)} is not isolated by this status handler`,
        );
      }
      holds.delete(breaker);
      hold[Symbol.dispose]();
      break;
    case "close":
      holds.delete(breaker);
      hold?.[Symbol.dispose]();
      breaker.close();
      break;
  }
  return response(200, JSON.stringify(statusOf(breaker)), {
    "content-type": "application/json; charset=utf-8",
  });
}

// ---------------------------------------------------------------- responses

function response(status: number, body: string | null, headers: Record<string, string>): Response {
  return new Response(body, {
    status,
    headers: { ...headers, "cache-control": "no-store", "x-content-type-options": "nosniff" },
  });
}

function textResponse(
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return response(status, message + "\n", {
    ...headers,
    "content-type": "text/plain; charset=utf-8",
  });
}
