/**
 * A retry loop around `circuitFetch()`, a `fetch` with a breaker per origin. The loop retries
 * failed calls with exponential backoff; when the circuit is open it waits exactly the
 * `retryAfterMs` of the `BreakerOpenError` (the breaker knows when it will let a trial call
 * through: retrying sooner would only be turned away), and it stops at once, without calling
 * anything, when that wait does not fit in its time budget. A 5xx or 429 answer and a timeout
 * count as failures for the circuit; a 4xx neither counts nor is retried; a `Retry-After` from
 * the upstream is honoured by both the loop and the circuit.
 *
 *   deno run --allow-net examples/retry_loop.ts
 *   bun examples/retry_loop.ts
 *   node examples/retry_loop.ts               (Node.js 22.18+)
 *
 * Without `--url` it calls a demo upstream it serves itself, which fails its first 3 requests
 * with 503: the third failure opens the circuit, the loop waits out the open period, the trial
 * call succeeds, and the next requests go through at once.
 *
 * Flags: --url <url>, --requests (3), --attempts (8, per request), --budget (5000 ms, per
 * request), --failure-threshold (3), --recovery-timeout (1000 ms), --timeout (2000 ms).
 * Exits with 1 when a request gave up.
 *
 * @module
 */

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { parseArgs } from "node:util";
import { BreakerOpenError, circuitFetch, TimeoutError } from "../mod.ts";

/** An upstream's answer that is not 2xx, with the wait its `Retry-After` asks for. */
class HttpError extends Error {
  override name = "HttpError";
  readonly status: number;
  readonly retryAfterMs: number | undefined;

  constructor(status: number, retryAfter: string | null) {
    super(`upstream answered ${status}`);
    this.status = status;
    this.retryAfterMs = retryAfter !== null && /^\d+$/.test(retryAfter)
      ? Number(retryAfter) * 1000
      : undefined;
  }
}

interface RetryOptions {
  /** Calls at most, the first included. */
  readonly attempts: number;
  /** ms from the first call after which no wait may end. */
  readonly budgetMs: number;
  /** Wait before the second call; doubled for each further one (add jitter for many clients). */
  readonly initialDelayMs: number;
  readonly onRetry?: (attempt: number, error: unknown, waitMs: number) => void;
}

/** Whether another attempt may succeed: not after a 4xx, nor while isolated. */
function retryable(error: unknown): boolean {
  if (error instanceof BreakerOpenError) return Number.isFinite(error.retryAfterMs);
  if (error instanceof HttpError) return error.status >= 500 || error.status === 429;
  return true; // timeouts, network errors
}

/** Calls `call` until it succeeds, the attempts are spent, or a wait would pass the budget. */
async function retry<T>(call: () => Promise<T>, options: RetryOptions): Promise<T> {
  const deadline = Date.now() + options.budgetMs;
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (attempt >= options.attempts || !retryable(error)) throw error;
      const backoff = options.initialDelayMs * 2 ** (attempt - 1);
      const waitMs = error instanceof BreakerOpenError
        ? error.retryAfterMs // until the circuit lets a trial through: not sooner, not later
        : Math.max(backoff, error instanceof HttpError ? error.retryAfterMs ?? 0 : 0);
      if (Date.now() + waitMs > deadline) throw error; // it would not fit: stop now
      options.onRetry?.(attempt, error, waitMs);
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}

function wholeNumber(flag: string, text: string): number {
  const value = Number(text);
  if (text.trim() === "" || !Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${flag} must be a whole number >= 0, received "${text}"`);
  }
  return value;
}

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    url: { type: "string" },
    requests: { type: "string", default: "3" },
    attempts: { type: "string", default: "8" },
    budget: { type: "string", default: "5000" },
    "failure-threshold": { type: "string", default: "3" },
    "recovery-timeout": { type: "string", default: "1000" },
    timeout: { type: "string", default: "2000" },
  },
});

/** A demo upstream on a free port of 127.0.0.1 that fails its first 3 requests with 503. */
async function startDemoUpstream(): Promise<{ url: string; close(): void }> {
  let requests = 0;
  const server = createServer((_request, response) => {
    requests++;
    response.writeHead(requests <= 3 ? 503 : 200, { "content-type": "text/plain" });
    response.end(requests <= 3 ? "busy\n" : `quote #${requests}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => server.close() };
}

const demo = values.url === undefined ? await startDemoUpstream() : undefined;
const url = values.url ?? demo!.url;
const started = Date.now();
const log = (line: string) =>
  console.log(`${((Date.now() - started) / 1000).toFixed(2).padStart(5)}s  ${line}`);

// Each answer is judged by the breaker of its origin before the loop sees it: a 5xx or 429 is a
// failure (and its Retry-After sets how long an opening keeps the circuit open), a 4xx is the
// upstream answering a bad request correctly, not a sign it is failing.
const guardedFetch = circuitFetch({
  name: "upstream",
  failureThreshold: wholeNumber("--failure-threshold", values["failure-threshold"]),
  recoveryTimeout: wholeNumber("--recovery-timeout", values["recovery-timeout"]),
  timeout: wholeNumber("--timeout", values.timeout),
  listeners: [{ stateChange: ({ from, to }) => log(`circuit ${from} -> ${to}`) }],
});

async function getQuote(): Promise<string> {
  const response = await guardedFetch(url);
  if (!response.ok) {
    await response.body?.cancel();
    throw new HttpError(response.status, response.headers.get("retry-after"));
  }
  return (await response.text()).trim();
}

const describe = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

let gaveUp = 0;
const requests = wholeNumber("--requests", values.requests);
for (let request = 1; request <= requests; request++) {
  let attempts = 0;
  try {
    const quote = await retry(() => {
      attempts++;
      return getQuote();
    }, {
      attempts: wholeNumber("--attempts", values.attempts),
      budgetMs: wholeNumber("--budget", values.budget),
      initialDelayMs: 100,
      onRetry: (attempt, error, waitMs) =>
        log(
          `request ${request} attempt ${attempt}: ${describe(error)}; ` +
            (error instanceof BreakerOpenError
              ? `waiting ${waitMs} ms for the circuit`
              : `retrying in ${waitMs} ms`),
        ),
    });
    log(`request ${request}: ok after ${attempts} attempt(s): ${quote}`);
  } catch (error) {
    gaveUp++;
    const reason = error instanceof TimeoutError ? "timed out" : describe(error);
    log(`request ${request}: gave up after ${attempts} attempt(s): ${reason}`);
  }
}

demo?.close();
log(`${requests - gaveUp} of ${requests} request(s) succeeded`);
if (gaveUp > 0) process.exitCode = 1;
