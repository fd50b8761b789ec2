/**
 * The API that fetch_server_deno.ts (`Deno.serve`) and fetch_server_bun.ts (`Bun.serve`) serve:
 * a web-standard handler forwarding `/api/<path>` to an upstream through `circuitHandler()`,
 * one breaker for the upstream.
 *
 * - A 5xx or 429 answer, a network error or a timeout counts as a failure; a 4xx is the
 *   upstream answering the caller's mistake correctly, so it counts as a success and never
 *   opens the circuit.
 * - The upstream's answers pass through (a 5xx too: the caller gets what the upstream said).
 * - When the answer that opens the circuit is a 503 or 429 with `Retry-After`, the circuit stays
 *   open at least that long (the breaker reads the header itself).
 * - While the circuit turns calls away, the API answers 503 at once with `Retry-After` (whole
 *   seconds, at least 1), without calling the upstream.
 * - `GET /circuit` shows the breaker's state; `/status` is the status page for operators (in a
 *   browser; `?format=json`, `?format=prometheus` with counters and durations, and
 *   `?format=health`, 503 while the upstream's circuit is open, for a load balancer's probe).
 *
 * Without `--upstream`, the servers forward to a demo upstream served under `/upstream/`:
 * `/upstream/status/<code>` answers with that status (503 and 429 with `Retry-After: 5`),
 * `/upstream/delay/<ms>` answers after that long, anything else answers 200.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { Breaker, BreakerMetrics, circuitHandler, defaultRegistry, statusHandler } from "../mod.ts";

/** What the servers are told on their command line. */
export interface ServerOptions {
  readonly hostname: string;
  /** 0 picks a free port. */
  readonly port: number;
  /** Base URL `/api/<path>` is forwarded to; undefined: the demo upstream under `/upstream/`. */
  readonly upstream: string | undefined;
  readonly failureThreshold: number;
  /** ms the circuit stays open before a trial call. */
  readonly recoveryTimeout: number;
  /** ms an upstream call may take, body included. */
  readonly timeout: number;
}

/**
 * Reads the servers' flags: `--port` (8000), `--hostname` (127.0.0.1), `--upstream` (a URL),
 * `--failure-threshold` (3), `--recovery-timeout` (10000 ms), `--timeout` (2000 ms).
 */
export function serverOptions(args: readonly string[]): ServerOptions {
  const { values } = parseArgs({
    args: [...args],
    options: {
      hostname: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "8000" },
      upstream: { type: "string" },
      "failure-threshold": { type: "string", default: "3" },
      "recovery-timeout": { type: "string", default: "10000" },
      timeout: { type: "string", default: "2000" },
    },
  });
  if (values.upstream !== undefined && !URL.canParse(values.upstream)) {
    throw new TypeError(`--upstream must be a URL, received "${values.upstream}"`);
  }
  return {
    hostname: values.hostname,
    port: wholeNumber("--port", values.port),
    upstream: values.upstream,
    failureThreshold: wholeNumber("--failure-threshold", values["failure-threshold"]),
    recoveryTimeout: wholeNumber("--recovery-timeout", values["recovery-timeout"]),
    timeout: wholeNumber("--timeout", values.timeout),
  };
}

function wholeNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${flag} must be a whole number >= 0, received "${text}"`);
  }
  return value;
}

/** The API's handler and the breaker guarding its upstream. */
export interface UpstreamProxy {
  readonly breaker: Breaker;
  readonly handler: (request: Request) => Promise<Response>;
}

/** Statuses whose responses have no body (a `Response` with one would throw). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** Makes the API. */
export function upstreamProxy(options: ServerOptions): UpstreamProxy {
  const breaker = new Breaker({
    name: "upstream",
    failureThreshold: options.failureThreshold,
    recoveryTimeout: options.recoveryTimeout,
    listeners: [{ stateChange: ({ from, to }) => console.log(`circuit ${from} -> ${to}`) }],
  });

  // The breaker is named, so it is in the default registry, which the status page serves.
  const status = statusHandler(defaultRegistry, {
    critical: ["upstream"],
    metrics: new BreakerMetrics(defaultRegistry),
  });

  // Each request to /api/ is one call. While the circuit turns calls away, circuitHandler
  // answers 503 with Retry-After without calling this function. It counts the errors this
  // function throws (and throws them on), and the 5xx and 429 answers it returns.
  const forward = circuitHandler(async (request: Request): Promise<Response> => {
    const { pathname, search } = new URL(request.url);
    // The demo upstream is this very server, under /upstream/.
    const base = options.upstream ?? new URL("/upstream/", request.url).href;
    const target = new URL(
      `${pathname.slice("/api/".length)}${search}`,
      base.endsWith("/") ? base : `${base}/`,
    );
    const upstream = await fetch(target, {
      method: request.method,
      headers: { accept: request.headers.get("accept") ?? "*/*" },
      // Bounds the whole call, body included. (Not request.signal: a client that goes away
      // costs at most this long, and Deno 2 prints a notice when a handler reads it.)
      signal: AbortSignal.timeout(options.timeout),
    });
    // Read the body here, so that a stalled body times out and fails too. (stream_proxy.ts
    // streams its upstream's body instead, cut by `idleTimeout` when it stalls.)
    const body = NULL_BODY_STATUSES.has(upstream.status) ? null : await upstream.arrayBuffer();
    const headers = new Headers();
    for (const name of ["content-type", "retry-after"]) {
      const value = upstream.headers.get(name);
      if (value !== null) headers.set(name, value);
    }
    return new Response(body, { status: upstream.status, headers });
  }, { breaker });

  async function handler(request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    if (pathname === "/circuit") {
      const { state, failureCount, retryAfterMs } = breaker;
      return Response.json({ state, failureCount, retryAfterMs });
    }
    if (pathname === "/status") return await status(request);
    if (pathname.startsWith("/api/")) {
      try {
        return await forward(request);
      } catch (error) {
        // The timeout's abort makes fetch reject with a DOMException named "TimeoutError".
        if (error instanceof Error && error.name === "TimeoutError") {
          return new Response(`upstream timed out after ${options.timeout} ms\n`, { status: 504 });
        }
        return new Response(`upstream unreachable: ${String(error)}\n`, { status: 502 });
      }
    }
    if (options.upstream === undefined && pathname.startsWith("/upstream/")) {
      return await demoUpstream(request, pathname.slice("/upstream/".length));
    }
    return new Response("not found: try /api/<path>, /circuit or /status\n", { status: 404 });
  }

  return { breaker, handler };
}

/** The demo upstream: `status/<code>`, `delay/<ms>`, anything else 200. */
async function demoUpstream(request: Request, path: string): Promise<Response> {
  const [kind, value] = path.split("/");
  const number = Number(value);
  if (kind === "status" && Number.isInteger(number) && number >= 200 && number <= 599) {
    const retryAfter: HeadersInit = number === 503 || number === 429 ? { "retry-after": "5" } : {};
    const body = NULL_BODY_STATUSES.has(number) ? null : `status ${number}\n`;
    return new Response(body, { status: number, headers: retryAfter });
  }
  if (kind === "delay" && Number.isFinite(number) && number >= 0) {
    // request.signal ends the wait when the proxy gives up, so that a shutdown need not wait
    // for it. Deno 2 prints a notice the first time a handler reads it (its signal also aborts
    // after a successful response, a legacy behaviour): harmless, the wait is over by then.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.min(number, 60_000));
      request.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    return new Response(`answered after ${number} ms\n`);
  }
  return Response.json({ ok: true, path });
}
