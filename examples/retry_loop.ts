/**
 * `retry()` around `circuitFetch()`, a `fetch` with a breaker per origin. Failed calls are
 * retried with exponential backoff; while the circuit is open, `retry()` waits exactly the
 * `retryAfterMs` of the `BreakerOpenError` (the breaker knows when it will let a trial call
 * through: retrying sooner would only be turned away), and it stops at once, without calling
 * anything, when that wait does not fit in its time budget. A 5xx or 429 answer and a timeout
 * count as failures for the circuit and are retried; a 4xx is neither; a `Retry-After` from
 * the upstream is honoured by both the retrying and the circuit.
 *
 *   deno run --allow-net examples/retry_loop.ts
 *   bun examples/retry_loop.ts
 *   node examples/retry_loop.ts               (Node.js 22.18+)
 *
 * Without `--url` it calls a demo upstream it serves itself, which fails its first 3 requests
 * with 503: the third failure opens the circuit, the retrying waits out the open period, the
 * trial call succeeds, and the next requests go through at once.
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
import { BreakerOpenError, circuitFetch, retry } from "../mod.ts";

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

/** What a failed attempt was, in a few words. */
const describe = (failure: unknown) =>
  failure instanceof Response
    ? `HTTP ${failure.status}`
    : failure instanceof Error
    ? `${failure.name}: ${failure.message}`
    : String(failure);

let gaveUp = 0;
const requests = wholeNumber("--requests", values.requests);
for (let request = 1; request <= requests; request++) {
  let attempts = 0;
  try {
    // A failed Response (5xx, 429) is retried; the last one comes back as it is.
    const response = await retry((signal) => {
      attempts++;
      return guardedFetch(url, { signal });
    }, {
      attempts: wholeNumber("--attempts", values.attempts),
      budget: wholeNumber("--budget", values.budget),
      backoff: { initialDelay: 100, jitter: "none" }, // add jitter when many clients retry
      onRetry: ({ attempt, failure, delayMs }) =>
        log(
          `request ${request} attempt ${attempt}: ${describe(failure)}; ` +
            (failure instanceof BreakerOpenError
              ? `waiting ${delayMs} ms for the circuit`
              : `retrying in ${delayMs} ms`),
        ),
    });
    if (response.ok) {
      log(`request ${request}: ok after ${attempts} attempt(s): ${(await response.text()).trim()}`);
    } else {
      gaveUp++;
      await response.body?.cancel();
      log(`request ${request}: gave up after ${attempts} attempt(s): ${describe(response)}`);
    }
  } catch (error) {
    gaveUp++;
    log(`request ${request}: gave up after ${attempts} attempt(s): ${describe(error)}`);
  }
}

demo?.close();
log(`${requests - gaveUp} of ${requests} request(s) succeeded`);
if (gaveUp > 0) process.exitCode = 1;
