/**
 * A status endpoint for operators: one web-standard handler `(request) => Response` that serves
 * the breakers of a registry as JSON, in the Prometheus text format, as a health answer for
 * probes, or as an HTML page for an incident that refreshes by itself, with optional isolate /
 * release / close actions. It mounts in `Deno.serve`, `Bun.serve`, Hono or any fetch-style
 * router, under any path. This file is the handler (arguments, routing, authorization,
 * actions); the report, its renderers and the health rule are files of their own.
 *
 * @example Deno.serve
 * ```ts
 * import { statusHandler } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const status = statusHandler();
 * const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) =>
 *   new URL(request.url).pathname === "/status"
 *     ? status(request)
 *     : new Response("Not found", { status: 404 }));
 * const response = await fetch(`http://127.0.0.1:${server.addr.port}/status?format=json`);
 * assert.equal((await response.json()).summary.allClosed, true);
 * await server.shutdown();
 * ```
 *
 * @module
 */

import { BreakerMetrics } from "./breaker_metrics.ts";
import { describeValue, quoteName } from "./core/describe_value.ts";
import { checkOptionNames, fail, optionalFunction, optionsObject } from "./core/validate.ts";
import { type Format, negotiate } from "./accept_header.ts";
import { readHealth } from "./health_report.ts";
import { isolatedByOperator, isolateForOperator, releaseForOperator } from "./operator_holds.ts";
import { PROMETHEUS_CONTENT_TYPE, prometheusText } from "./prometheus_text.ts";
import { BreakerRegistry, defaultRegistry } from "./registry.ts";
import { applicationHolds, FRAGMENT_HEADER, pageMain, statusPage } from "./status_page.ts";
import { breakerStatus, readReport } from "./status_report.ts";

export type { BreakerStatus, GroupStatus, StatusReport } from "./status_report.ts";
export type { HealthReport } from "./health_report.ts";

/**
 * Decides whether a request may read or act: returns (or resolves to) `true` to allow.
 *
 * @example
 * ```ts
 * import { type RequestAuthorizer, statusHandler } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const admins: RequestAuthorizer = (request) =>
 *   request.headers.get("authorization") === "Bearer s3cret";
 * const status = statusHandler(undefined, { authorizeRead: admins });
 * assert.equal((await status(new Request("http://localhost/status"))).status, 403);
 * ```
 */
export type RequestAuthorizer = (request: Request) => boolean | Promise<boolean>;

/**
 * Options of {@linkcode statusHandler}.
 *
 * @example
 * ```ts
 * import { statusHandler, type StatusHandlerOptions } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const isAdmin = (request: Request) => request.headers.get("authorization") === "Bearer s3cret";
 * const options: StatusHandlerOptions = {
 *   authorize: isAdmin,
 *   authorizeRead: isAdmin,
 *   critical: ["db"],
 *   refreshInterval: 5_000,
 * };
 * const status = statusHandler(undefined, options);
 * const health = await status(new Request("http://localhost/status?format=health"));
 * assert.equal(health.status, 200); // not guarded; "db" is not listed yet, so not failing
 * const read = await status(new Request("http://localhost/status?format=json"));
 * assert.equal(read.status, 403);
 * ```
 */
export interface StatusHandlerOptions {
  /**
   * Enables the actions (isolate, release, close) and decides who may run them: a `POST` is
   * carried out only when this returns (or resolves to) `true`; otherwise it gets 403. The
   * page shows the buttons only to a viewer for whom it returns `true` on the page's own
   * `GET`. It is called before the body is read, so decide on headers (a session cookie, a
   * bearer token). A throw is reported with `console.error` and answered with 500 (on a
   * page read: no buttons).
   *
   * @default undefined (actions disabled: every `POST` gets 403, and the page shows no buttons)
   */
  readonly authorize?: RequestAuthorizer;
  /**
   * Guards reads (the page, JSON, Prometheus): a read is answered only when this returns (or
   * resolves to) `true`, otherwise 403, since failures' texts may name hosts, addresses or
   * queries. The health read (`?format=health`) is not guarded: probes do not authenticate,
   * and it names only the critical breakers and their states. A throw is reported with
   * `console.error` and answered with 500.
   *
   * @default undefined (anyone who reaches the handler may read)
   */
  readonly authorizeRead?: RequestAuthorizer;
  /**
   * The names of the breakers the health read (`?format=health`) judges: it answers 503 while
   * any of them is open or isolated, else 200 (see {@linkcode HealthReport}).
   *
   * @default [] (always healthy)
   */
  readonly critical?: readonly string[];
  /**
   * Recorded counters, durations and transitions (see {@linkcode BreakerMetrics}) to serve:
   * Prometheus counters and a histogram, and each breaker's history in the JSON and the page.
   *
   * @default undefined (current state only)
   */
  readonly metrics?: BreakerMetrics;
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
 * import assert from "node:assert/strict";
 * const status: StatusHandler = statusHandler();
 * const response = await status(new Request("http://localhost/status?format=json"));
 * assert.equal(response.headers.get("cache-control"), "no-store");
 * ```
 */
export type StatusHandler = (request: Request) => Promise<Response>;

/**
 * Creates a handler serving the breakers of `registry` (by default {@linkcode defaultRegistry})
 * at whatever path it is mounted on; it never reads the path.
 *
 * Reads (`GET`, `HEAD`) answer in the format named by the `format` query parameter (`json`,
 * `prometheus`, `html` or `health`; any other value gets 400), else by the `Accept` header:
 * `text/html` → the page, `text/plain` or `application/openmetrics-text` → the Prometheus
 * text format 0.0.4, `application/json` → JSON (the highest `q` wins, then the most specific
 * match). A wildcard, no `Accept` or one that none of these match get JSON, so browsers get
 * the page and scripts and `curl` get JSON. Every answer is `Cache-Control: no-store`.
 * `?format=health` answers 200 or 503 with a {@linkcode HealthReport} (see `critical`).
 * A `BreakerGroup`'s closed members are only counted, and at most 50 of its other members
 * are listed, so that a read stays small whatever the number of keys.
 *
 * Actions are a `POST` with a JSON body `{"action": "isolate" | "release" | "close", "name"}`
 * (at most 4 KiB) and `Content-Type: application/json`, enabled only by the `authorize`
 * option. `isolate` holds the breaker isolated for operators until a `release` or `close`
 * through any status handler of this process (the hold belongs to the breaker, not to the
 * handler); `close` also drops that hold and closes the circuit, unless the application
 * itself holds it isolated (409: only the application can end that). Isolation is local to
 * the process: with a shared `store`, other processes are not isolated. The answer is the
 * breaker's {@linkcode BreakerStatus}. Against cross-site request forgery, an action must be
 * JSON (a cross-site form cannot send it, and a cross-site `fetch` needs a CORS preflight this
 * handler never grants), and a browser's `Sec-Fetch-Site`, when sent, must be `same-origin`
 * (or `none`). Other methods get 405 with an `Allow` header.
 *
 * The page's links and requests are relative to its own URL (`?format=json`,
 * `fetch(location.href)`), so it works under any prefix, even behind a proxy or a router that
 * rewrites the path.
 *
 * Throws a `TypeError` or `RangeError` naming a bad argument.
 *
 * @throws {TypeError} When `registry` is not a `BreakerRegistry`, or an option is unknown or has
 * the wrong type.
 * @throws {RangeError} When `refreshInterval` is below 100 ms or not finite.
 *
 * @example Under a prefix in Hono, with actions for admins
 * ```ts
 * import { Hono } from "hono";
 * import { defaultRegistry, statusHandler } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const status = statusHandler(defaultRegistry, {
 *   authorize: (request) => request.headers.get("x-admin-token") === Deno.env.get("ADMIN_TOKEN"),
 * });
 * const app = new Hono();
 * app.all("/admin/circuits", (c) => status(c.req.raw));
 * assert.equal((await app.request("/admin/circuits?format=json")).status, 200);
 * const isolate = await app.request("/admin/circuits", {
 *   method: "POST",
 *   headers: { "content-type": "application/json" },
 *   body: JSON.stringify({ action: "isolate", name: "db" }),
 * });
 * assert.equal(isolate.status, 403); // no admin token
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
  const context: HandlerContext = { registry, settings };
  return async (request: Request): Promise<Response> => {
    switch (request.method) {
      case "GET":
        return await read(context, request);
      case "HEAD": {
        const answer = await read(context, request);
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
  readonly authorize: RequestAuthorizer | undefined;
  readonly authorizeRead: RequestAuthorizer | undefined;
  readonly critical: readonly string[];
  readonly metrics: BreakerMetrics | undefined;
  readonly refreshInterval: number;
  readonly title: string;
}

interface HandlerContext {
  readonly registry: BreakerRegistry;
  readonly settings: Settings;
}

const OPTION_NAMES: readonly string[] = [
  "authorize",
  "authorizeRead",
  "critical",
  "metrics",
  "refreshInterval",
  "title",
];
const MIN_REFRESH_INTERVAL = 100;
/** The largest action body read, in bytes: an action is a few dozen. */
const MAX_ACTION_BODY = 4_096;

function parseHandlerArguments(registry: unknown, options: unknown): Settings {
  const context = "Cannot create status handler";
  if (!(registry instanceof BreakerRegistry)) {
    fail(context, "registry", "a BreakerRegistry", registry, true);
  }
  checkOptionNames(optionsObject(context, options), OPTION_NAMES, context);
  const {
    authorize,
    authorizeRead,
    critical = [],
    metrics,
    refreshInterval = 2_000,
    title = "Circuit breakers",
  } = options as Record<string, unknown>;
  optionalFunction(context, "authorize", authorize);
  optionalFunction(context, "authorizeRead", authorizeRead);
  if (!Array.isArray(critical) || !critical.every((name) => typeof name === "string")) {
    fail(context, "critical", "an array of breaker names", critical, true);
  }
  if (metrics !== undefined && !(metrics instanceof BreakerMetrics)) {
    fail(context, "metrics", "a BreakerMetrics", metrics, true);
  }
  if (metrics !== undefined && metrics.registry !== registry) {
    throw new TypeError(
      `${context}: "metrics" records another registry than the one served`,
    );
  }
  if (typeof refreshInterval !== "number") {
    fail(context, "refreshInterval", "a number of ms", refreshInterval, true);
  }
  if (!Number.isFinite(refreshInterval) || refreshInterval < MIN_REFRESH_INTERVAL) {
    fail(
      context,
      "refreshInterval",
      `a finite number >= ${MIN_REFRESH_INTERVAL} (ms)`,
      refreshInterval,
    );
  }
  if (typeof title !== "string") {
    fail(context, "title", "a string", title, true);
  }
  return {
    authorize: authorize as RequestAuthorizer | undefined,
    authorizeRead: authorizeRead as RequestAuthorizer | undefined,
    critical: [...critical],
    metrics,
    refreshInterval,
    title,
  };
}

/** What an authorizer said: allowed, refused, or it threw (reported here). */
async function ask(
  authorizer: RequestAuthorizer,
  option: string,
  request: Request,
): Promise<"allowed" | "refused" | "failed"> {
  try {
    return (await authorizer(request)) === true ? "allowed" : "refused";
  } catch (error) {
    console.error(`statusHandler: ${option}() threw`, error);
    return "failed";
  }
}

// ---------------------------------------------------------------- reads

const FORMATS: readonly (Format | "health")[] = ["json", "prometheus", "html", "health"];

async function read(context: HandlerContext, request: Request): Promise<Response> {
  const { registry, settings } = context;
  const requested = new URL(request.url).searchParams.get("format");
  let format: Format | "health";
  if (requested === null) {
    format = negotiate(request.headers.get("accept"));
  } else if ((FORMATS as readonly string[]).includes(requested)) {
    format = requested as Format | "health";
  } else {
    return textResponse(
      400,
      `Unknown "format" query parameter: received ${describeValue(requested)}; expected one of ${
        FORMATS.join(", ")
      }`,
    );
  }
  const headers: Record<string, string> = requested === null ? { vary: "Accept" } : {};
  if (format === "health") {
    const health = readHealth(registry, settings.critical);
    return response(health.healthy ? 200 : 503, JSON.stringify(health), {
      "content-type": "application/json; charset=utf-8",
    });
  }
  if (settings.authorizeRead !== undefined) {
    const verdict = await ask(settings.authorizeRead, "authorizeRead", request);
    if (verdict === "failed") {
      return textResponse(500, "authorizeRead() failed; see the server's log");
    }
    if (verdict === "refused") return textResponse(403, "Reading is not authorized");
  }
  const { report, listed } = readReport(registry, settings.metrics);
  switch (format) {
    case "json":
      return response(200, JSON.stringify(report), {
        ...headers,
        "content-type": "application/json; charset=utf-8",
      });
    case "prometheus":
      return response(200, prometheusText(report, listed, settings.metrics), {
        ...headers,
        "content-type": PROMETHEUS_CONTENT_TYPE,
      });
    case "html": {
      const canAct = settings.authorize !== undefined &&
        await ask(settings.authorize, "authorize", request) === "allowed";
      const pageSettings = {
        title: settings.title,
        refreshInterval: settings.refreshInterval,
        canAct,
      };
      if (request.headers.get(FRAGMENT_HEADER) === "main") {
        return response(200, pageMain(report, listed, pageSettings), {
          ...headers,
          "content-type": "text/html; charset=utf-8",
          "content-security-policy": "default-src 'none'",
        });
      }
      const nonce = randomNonce();
      return response(200, statusPage(report, listed, pageSettings, nonce), {
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

function randomNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes));
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
  const verdict = await ask(authorize, "authorize", request);
  if (verdict === "failed") return textResponse(500, "authorize() failed; see the server's log");
  if (verdict === "refused") return textResponse(403, "Action refused: not authorized");

  const text = await readBoundedText(request, MAX_ACTION_BODY);
  if (text === undefined) {
    return textResponse(413, `An action's body must be at most ${MAX_ACTION_BODY} bytes`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
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
  const { registry, settings } = context;
  const breaker = registry.get(name);
  if (breaker === undefined) {
    return textResponse(404, `No breaker named ${quoteName(name)} in the registry`);
  }
  switch (action as Action) {
    case "isolate":
      isolateForOperator(breaker);
      break;
    case "release":
      if (!releaseForOperator(breaker)) {
        return textResponse(
          409,
          `Breaker ${quoteName(name)} is not isolated by an operator${
            breaker.state === "isolated" ? " (the application isolated it)" : ""
          }`,
        );
      }
      break;
    case "close": {
      const holds = applicationHolds(breakerStatus(registry, breaker, undefined));
      if (holds > 0) {
        return textResponse(
          409,
          `Breaker ${quoteName(name)} is isolated by the application (${holds} hold${
            holds === 1 ? "" : "s"
          }): only the application can end that${
            isolatedByOperator(breaker) ? "; release ends the operators' hold" : ""
          }`,
        );
      }
      releaseForOperator(breaker);
      breaker.close();
      break;
    }
  }
  return response(200, JSON.stringify(breakerStatus(registry, breaker, settings.metrics)), {
    "content-type": "application/json; charset=utf-8",
  });
}

/**
 * The body as text, or `undefined` when it is longer than `limit` bytes: a declared length
 * over it is refused unread, and reading stops (cancelling the rest) once past it.
 */
async function readBoundedText(request: Request, limit: number): Promise<string | undefined> {
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > limit) {
    await request.body?.cancel().catch(() => {});
    return undefined;
  }
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
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
