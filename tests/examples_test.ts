// Smoke tests of examples/: each example runs as a process of its own, as its header says, on
// 127.0.0.1 against a fake upstream served here (its behaviour switched by the test) or a
// private redis-server; the test drives it over HTTP, checks what the breaker does, stops it
// with a signal and waits for it to exit. Every wait is bounded.
//
// The runtime running the suite runs the examples: Deno the Deno ones, Bun the Bun ones, and
// each of Deno, Bun and Node.js the portable ones (retry_loop.ts, database_redis.ts, demo.ts).
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type LocalServer, serveLocally } from "./local_server.ts";
import { clientKind } from "./redis_clients.ts";
import { type RedisServer, withRedisServer } from "./redis_server.ts";
import { testsNeeding } from "./service_tests.ts";
import { describe, it } from "./timer_leaks.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RUNTIME = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";
/** The longest an example may take to print its address, or to exit once told to stop. */
const START_MS = 15_000;
const STOP_MS = 5_000;

/** The command running `examples/<file>` with this runtime (Deno with `permissions`). */
function command(file: string, args: readonly string[], permissions: readonly string[]) {
  const path = join(ROOT, "examples", file);
  const runtimeArgs = RUNTIME === "deno" ? ["run", ...permissions, path] : [path];
  return { program: process.execPath, args: [...runtimeArgs, ...args] };
}

/** An example process, its output so far, and how it ended. */
class ExampleProcess {
  readonly name: string;
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  #output = "";
  #exit: { code: number | null; signal: string | null } | undefined;

  constructor(
    file: string,
    args: readonly string[],
    permissions: readonly string[],
    env: Record<string, string> = {},
  ) {
    const { program, args: all } = command(file, args, permissions);
    this.name = file;
    this.#child = spawn(program, all, {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: unknown) => this.#output += String(chunk);
    this.#child.stdout?.on("data", keep);
    this.#child.stderr?.on("data", keep);
    this.#exited = new Promise((resolve) => {
      this.#child.once("error", (error) => {
        this.#output += `\n${error}`;
        this.#exit ??= { code: null, signal: null };
        resolve();
      });
      this.#child.once("close", (code, signal) => {
        this.#exit = { code, signal };
        resolve();
      });
    });
  }

  get output(): string {
    return this.#output;
  }

  get exit(): { code: number | null; signal: string | null } | undefined {
    return this.#exit;
  }

  /** Waits until the output matches `pattern`; fails if the process ends or time runs out. */
  async waitForOutput(pattern: RegExp, timeoutMs = START_MS): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(this.#output);
      if (match !== null) return match;
      if (this.#exit !== undefined || Date.now() > deadline) {
        throw new Error(
          `${this.name} ${
            this.#exit === undefined ? `printed no ${pattern} within ${timeoutMs} ms` : "exited"
          }; its output:\n${this.#output}`,
        );
      }
      await sleep(20);
    }
  }

  /** The address it prints: `listening on http://127.0.0.1:<port>/`, without the slash. */
  async origin(): Promise<string> {
    const [, url] = await this.waitForOutput(/listening on (http:\/\/[\d.]+:\d+)/i);
    return url!;
  }

  /** Waits for the process to end by itself. */
  async finished(timeoutMs: number): Promise<{ code: number | null; signal: string | null }> {
    if (!(await settlesWithin(this.#exited, timeoutMs))) {
      await this.kill();
      throw new Error(`${this.name} was still running after ${timeoutMs} ms:\n${this.#output}`);
    }
    return this.#exit!;
  }

  /** Sends `signal` and waits for the process to exit, which it must do within 5 s. */
  async stop(signal: "SIGTERM" | "SIGINT" = "SIGTERM"): Promise<void> {
    if (this.#exit !== undefined) return;
    this.#child.kill(signal);
    if (!(await settlesWithin(this.#exited, STOP_MS))) {
      await this.kill();
      throw new Error(`${this.name} did not exit within ${STOP_MS} ms of ${signal}`);
    }
  }

  /** Kills the process, whatever it is doing, and waits for it to end. */
  async kill(): Promise<void> {
    if (this.#exit === undefined) this.#child.kill("SIGKILL");
    await this.#exited;
  }
}

/** Runs `body` with the example running, stopped (then killed, if need be) after it. */
async function withExample(
  file: string,
  args: readonly string[],
  permissions: readonly string[],
  body: (example: ExampleProcess) => Promise<void>,
): Promise<void> {
  const example = new ExampleProcess(file, args, permissions);
  try {
    await body(example);
    await example.stop();
    // Its signal handler ran. (Not the exit code: Deno's child_process reports the signal it
    // sent, even when the child handled it and exited with 0.)
    assert.match(example.output, /^stopped$/m, `${file} did not stop by its signal handler`);
  } catch (error) {
    await example.kill();
    throw new Error(`${(error as Error).message}\n--- output of ${file}:\n${example.output}`, {
      cause: error,
    });
  }
}

/** Runs an example to its end (at most `timeoutMs`) and returns its exit code and output. */
async function runToEnd(
  file: string,
  args: readonly string[],
  permissions: readonly string[],
  timeoutMs: number,
): Promise<{ code: number | null; output: string; elapsedMs: number }> {
  const started = Date.now();
  const example = new ExampleProcess(file, args, permissions);
  const { code } = await example.finished(timeoutMs);
  return { code, output: example.output, elapsedMs: Date.now() - started };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether `promise` settles within `ms`; leaves no timer behind. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  try {
    return await Promise.race([promise.then(() => true, () => true), expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` every 25 ms until it holds; fails after `timeoutMs`. */
async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(25);
  }
}

interface Answer {
  readonly status: number;
  readonly retryAfter: string | null;
  readonly body: string;
}

/** A request with a bounded wait, its body read. */
async function request(url: string, method = "GET"): Promise<Answer> {
  const response = await fetch(url, { method, signal: AbortSignal.timeout(5_000) });
  const body = await response.text();
  return { status: response.status, retryAfter: response.headers.get("retry-after"), body };
}

/** What an example's `GET /circuit` says. */
async function circuitOf(origin: string): Promise<{ state: string; retryAfterMs: number }> {
  return JSON.parse((await request(`${origin}/circuit`)).body);
}

type UpstreamMode =
  | "ok"
  | "not found"
  | "error"
  | "unavailable"
  | "too many"
  | "stall"
  | "stream"
  | "stall stream";

/**
 * The fake upstream. `mode` says how it answers: 200, 404, 500, 503 or 429 with
 * `Retry-After: 1`, a stall (no answer until the client gives up or the upstream closes), three
 * streamed tokens, or a stream stalling after its first token. `hits` counts the requests that reached it.
 */
class FakeUpstream {
  mode: UpstreamMode = "ok";
  /** Modes for the next requests, one each, before `mode` applies again. */
  script: UpstreamMode[] = [];
  /** When each request arrived (Date.now()). */
  readonly hits: number[] = [];
  #server: LocalServer | undefined;
  readonly #stalled = new Set<() => void>();

  get origin(): string {
    return this.#server!.origin;
  }

  async start(): Promise<void> {
    this.#server = await serveLocally((request) => this.#answer(request));
  }

  /** Ends every stall, then stops the server. */
  async close(): Promise<void> {
    for (const release of this.#stalled) release();
    await this.#server?.close();
  }

  /** A promise that resolves when one of `signals` aborts or the upstream closes. */
  #stall(...signals: AbortSignal[]): Promise<void> {
    return new Promise((resolve) => {
      const release = () => {
        this.#stalled.delete(release);
        resolve();
      };
      this.#stalled.add(release);
      for (const signal of signals) signal.addEventListener("abort", release, { once: true });
    });
  }

  async #answer(request: Request): Promise<Response> {
    this.hits.push(Date.now());
    const mode = this.script.shift() ?? this.mode;
    switch (mode) {
      case "ok":
        return new Response(`hello from ${new URL(request.url).pathname}`);
      case "not found":
        return new Response("no such thing", { status: 404 });
      case "error":
        return new Response("broken", { status: 500 });
      case "unavailable":
        return new Response("busy", { status: 503, headers: { "retry-after": "1" } });
      case "too many":
        return new Response("slow down", { status: 429, headers: { "retry-after": "1" } });
      case "stall":
        await this.#stall(request.signal);
        return new Response("too late");
      case "stream":
      case "stall stream": {
        const encoder = new TextEncoder();
        const cancelled = new AbortController();
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull: async (controller) => {
            if (sent === 3) return controller.close();
            if (mode === "stall stream" && sent === 1) {
              await this.#stall(request.signal, cancelled.signal);
              return controller.close();
            }
            controller.enqueue(encoder.encode(`token${++sent} `));
          },
          cancel: () => cancelled.abort(),
        });
        return new Response(body);
      }
    }
  }
}

async function withUpstream(body: (upstream: FakeUpstream) => Promise<void>): Promise<void> {
  const upstream = new FakeUpstream();
  await upstream.start();
  try {
    await body(upstream);
  } finally {
    await upstream.close();
  }
}

/** The fetch server's checks, the same under Deno.serve and Bun.serve. */
async function checkFetchServer(file: string): Promise<void> {
  await withUpstream(async (upstream) => {
    const flags = [
      `--upstream=${upstream.origin}/`,
      "--port=0",
      "--failure-threshold=3",
      "--recovery-timeout=200",
      "--timeout=300",
    ];
    await withExample(file, flags, ["--allow-net"], async (example) => {
      const origin = await example.origin();
      const api = `${origin}/api/thing`;

      let answer = await request(api);
      assert.deepEqual([answer.status, answer.body], [200, "hello from /thing"]);

      // 4xx answers are the upstream working: they never open the circuit.
      upstream.mode = "not found";
      for (let i = 0; i < 4; i++) assert.equal((await request(api)).status, 404);
      assert.equal((await circuitOf(origin)).state, "closed");

      // Three 5xx open it; then the API answers 503 with Retry-After, without the upstream.
      upstream.mode = "error";
      for (let i = 0; i < 3; i++) assert.equal((await request(api)).status, 500);
      assert.equal((await circuitOf(origin)).state, "open");
      let hits = upstream.hits.length;
      answer = await request(api);
      assert.equal(answer.status, 503);
      assert.equal(answer.retryAfter, "1", "200 ms left, rounded up to whole seconds");
      assert.match(answer.body, /Circuit "upstream" is open/);
      assert.equal(upstream.hits.length, hits, "the open circuit called the upstream");

      // After the recovery timeout, a trial call closes it again.
      await waitUntil(
        async () => (await circuitOf(origin)).state === "half-open",
        2_000,
        "half-open",
      );
      upstream.mode = "ok";
      assert.equal((await request(api)).status, 200);
      assert.equal((await circuitOf(origin)).state, "closed");

      // Timeouts count as failures: three open the circuit.
      upstream.mode = "stall";
      for (let i = 0; i < 3; i++) assert.equal((await request(api)).status, 504);
      hits = upstream.hits.length;
      answer = await request(api);
      assert.deepEqual([answer.status, answer.retryAfter], [503, "1"]);
      assert.equal(upstream.hits.length, hits);

      // While the trial is in flight, other requests are turned away: Retry-After is never 0.
      await waitUntil(
        async () => (await circuitOf(origin)).state === "half-open",
        2_000,
        "half-open",
      );
      const trial = request(api);
      trial.catch(() => {}); // awaited below; should a check fail first, it is no stray rejection
      await waitUntil(
        () => Promise.resolve(upstream.hits.length > hits),
        2_000,
        "the trial reaches it",
      );
      answer = await request(api);
      assert.deepEqual([answer.status, answer.retryAfter], [503, "1"]);
      assert.match(answer.body, /is half-open/);
      assert.equal((await trial).status, 504);

      // A failed trial answered 503 with Retry-After: 1 reopens the circuit for 1 s, not 200 ms.
      await waitUntil(
        async () => (await circuitOf(origin)).state === "half-open",
        2_000,
        "half-open",
      );
      upstream.mode = "unavailable";
      answer = await request(api);
      assert.deepEqual([answer.status, answer.retryAfter, answer.body], [503, "1", "busy"]);
      const reopened = Date.now();
      hits = upstream.hits.length;
      answer = await request(api);
      assert.deepEqual([answer.status, answer.retryAfter], [503, "1"]);
      assert.match(answer.body, /is open/);
      const circuit = await circuitOf(origin);
      assert.equal(circuit.state, "open");
      assert.ok(circuit.retryAfterMs > 600, `Retry-After ignored: ${circuit.retryAfterMs} ms left`);
      await sleep(400);
      assert.equal((await circuitOf(origin)).state, "open", "open past the recovery timeout");
      assert.equal(upstream.hits.length, hits);
      upstream.mode = "ok";
      await waitUntil(
        async () => (await circuitOf(origin)).state === "half-open",
        2_000,
        "half-open",
      );
      assert.ok(Date.now() - reopened >= 900, `half-open after ${Date.now() - reopened} ms`);
      assert.equal((await request(api)).status, 200);
      assert.equal((await circuitOf(origin)).state, "closed");

      // Deno 2 prints a notice the first time a handler reads request.signal: it has no need to.
      assert.doesNotMatch(example.output, /request\.signal/);
    });
  });
}

describe("examples", () => {
  if (RUNTIME === "deno") {
    it("fetch_server_deno.ts: 5xx and timeouts open the circuit, 4xx do not; 503 + Retry-After while open; Retry-After honoured", async () => {
      await checkFetchServer("fetch_server_deno.ts");
    });

    it("stream_proxy.ts: stalled streams open the circuit; 503 + Retry-After while open; a trial stream closes it", async () => {
      await withUpstream(async (upstream) => {
        const flags = [
          `--upstream=${upstream.origin}/`,
          "--port=0",
          "--failure-threshold=2",
          "--recovery-timeout=300",
          "--idle-timeout=150",
        ];
        await withExample("stream_proxy.ts", flags, ["--allow-net"], async (example) => {
          const proxy = `${await example.origin()}/`;
          upstream.mode = "stream";
          const healthy = await request(proxy);
          assert.deepEqual([healthy.status, healthy.body], [200, "token1 token2 token3 "]);
          upstream.mode = "stall stream";
          for (let i = 0; i < 2; i++) {
            // The stall cuts the proxied stream after what came through.
            const response = await fetch(proxy, { signal: AbortSignal.timeout(5_000) });
            assert.equal(response.status, 200);
            const reader = (response.body as ReadableStream<Uint8Array>).getReader();
            assert.equal(new TextDecoder().decode((await reader.read()).value), "token1 ");
            await assert.rejects(reader.read());
          }
          const hits = upstream.hits.length;
          const answer = await request(proxy);
          assert.deepEqual([answer.status, answer.retryAfter], [503, "1"]);
          assert.equal(upstream.hits.length, hits, "the open circuit called the upstream");
          await sleep(350);
          upstream.mode = "stream";
          assert.equal((await request(proxy)).body, "token1 token2 token3 ");
          await example.waitForOutput(/circuit half-open -> closed/, 1_000);
        });
      });
    });

    it("shared_kv_server.ts: two processes on one Deno KV file share one circuit", async () => {
      const directory = mkdtempSync(join(tmpdir(), "circuit-example-kv-"));
      try {
        await checkSharedServers(
          "shared_kv_server.ts",
          ["-A", "--unstable-kv"],
          { KV_PATH: join(directory, "kv.sqlite3") },
        );
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
    });
  }

  if (RUNTIME === "bun") {
    it("fetch_server_bun.ts: 5xx and timeouts open the circuit, 4xx do not; 503 + Retry-After while open; Retry-After honoured", async () => {
      await checkFetchServer("fetch_server_bun.ts");
    });

    redisIt("shared_redis_bun.ts: two processes share one circuit through Redis", async (redis) => {
      await checkSharedServers("shared_redis_bun.ts", [], { REDIS_URL: redis.url });
    });
  }

  it(`retry_loop.ts (${RUNTIME}): waits out the open circuit, then the trial call succeeds`, async () => {
    await withUpstream(async (upstream) => {
      // A 429 asking to retry after 1 s (a failure too), two 500s (the second opens the
      // circuit), then 200s.
      upstream.script = ["too many", "error", "error"];
      const flags = [`--url=${upstream.origin}/`, "--requests=2", "--recovery-timeout=1000"];
      const run = await runToEnd("retry_loop.ts", flags, ["--allow-net"], 20_000);
      assert.equal(run.code, 0, run.output);
      assert.match(
        run.output,
        /request 1 attempt 1: HTTP 429; retrying in 1000 ms/,
      );
      assert.match(
        run.output,
        /request 1 attempt 2: HTTP 500; retrying in 200 ms/,
      );
      assert.match(run.output, /circuit closed -> open/);
      assert.match(
        run.output,
        /request 1 attempt 3: HTTP 500; retrying in 400 ms/,
      );
      // The circuit is still open after the backoff: the loop waits what is left of the period.
      const waited = /request 1 attempt 4: BreakerOpenError: .*; waiting (\d+) ms for the circuit/
        .exec(run.output);
      assert.ok(waited, run.output);
      assert.ok(Number(waited[1]) <= 600, `waited ${waited[1]} ms`);
      assert.match(run.output, /request 1: ok after 5 attempt\(s\)/);
      assert.match(run.output, /request 2: ok after 1 attempt\(s\)/);
      assert.equal(upstream.hits.length, 5, "3 failures, the trial, request 2");
      const [, , third, trial] = upstream.hits as [number, number, number, number];
      assert.ok(trial - third >= 950, `the trial came ${trial - third} ms after the 3rd call`);
    });
  });

  it(`retry_loop.ts (${RUNTIME}): stops on BreakerOpenError when the wait exceeds its budget; 4xx are not retried`, async () => {
    await withUpstream(async (upstream) => {
      upstream.mode = "error";
      let run = await runToEnd(
        "retry_loop.ts",
        [`--url=${upstream.origin}/`, "--requests=2", "--recovery-timeout=5000", "--budget=1500"],
        ["--allow-net"],
        20_000,
      );
      assert.equal(run.code, 1, run.output);
      assert.match(run.output, /request 1: gave up after 4 attempt\(s\): BreakerOpenError/);
      assert.match(run.output, /request 2: gave up after 1 attempt\(s\): BreakerOpenError/);
      assert.equal(upstream.hits.length, 3, "only the 3 calls that opened the circuit");
      assert.ok(run.elapsedMs < 4_500, `it waited: ${run.elapsedMs} ms`);

      upstream.mode = "not found";
      upstream.hits.length = 0;
      run = await runToEnd(
        "retry_loop.ts",
        [`--url=${upstream.origin}/`, "--requests=2"],
        ["--allow-net"],
        20_000,
      );
      assert.equal(run.code, 1, run.output);
      assert.match(
        run.output,
        /request 1: gave up after 1 attempt\(s\): HTTP 404/,
      );
      assert.match(run.output, /request 2: gave up after 1 attempt\(s\): HTTP 404/);
      assert.doesNotMatch(run.output, /circuit closed -> open/);
      assert.equal(upstream.hits.length, 2);
    });
  });

  redisIt(
    `database_redis.ts (${RUNTIME}): a Redis outage or stall opens the circuit; 503 + Retry-After (never 0); recovery closes it; Redis errors do not count`,
    async (redis) => {
      const flags = [
        `--redis-url=${redis.url}`,
        "--port=0",
        "--failure-threshold=3",
        "--recovery-timeout=300",
        "--timeout=500",
      ];
      await withExample(
        "database_redis.ts",
        flags,
        ["--allow-net", "--allow-env"],
        async (example) => {
          const origin = await example.origin();
          const visits = `${origin}/visits/home`;
          await waitUntil(
            async () => (await request(visits)).status === 200,
            5_000,
            "Redis answers",
          );
          assert.equal((await request(visits, "POST")).body, '{"page":"home","visits":1}\n');
          assert.equal((await request(visits, "POST")).body, '{"page":"home","visits":2}\n');
          assert.equal((await request(visits)).body, '{"page":"home","visits":2}\n');

          // Errors Redis answers with are the database working: they never open the circuit.
          const direct = await clientKind("node-redis").open(redis.url);
          try {
            await direct.command("SET", "visits:bad", "not a number");
          } finally {
            await direct.close();
          }
          for (let i = 0; i < 4; i++) {
            const answer = await request(`${origin}/visits/bad`, "POST");
            assert.equal(answer.status, 500);
            assert.match(answer.body, /not an integer/);
          }
          assert.equal((await circuitOf(origin)).state, "closed");

          // Redis stalls (CLIENT PAUSE): three timeouts open the circuit. While the trial is in
          // flight, another request is turned away with Retry-After: 1, never 0.
          const pausing = await clientKind("node-redis").open(redis.url);
          try {
            await pausing.command("CLIENT", "PAUSE", "4000", "ALL");
          } finally {
            await pausing.close();
          }
          for (let i = 0; i < 3; i++) assert.equal((await request(visits)).status, 504);
          await waitUntil(
            async () => (await circuitOf(origin)).state === "half-open",
            2_000,
            "half-open",
          );
          const both = await Promise.all([request(visits), request(visits)]);
          assert.deepEqual(
            both.map(({ status }) => status).sort(),
            [503, 504],
            "trial, turned away",
          );
          const turnedAway = both.find(({ status }) => status === 503)!;
          assert.equal(turnedAway.retryAfter, "1");
          assert.match(turnedAway.body, /is half-open/);
          await waitUntil(
            async () => (await request(visits)).status === 200,
            6_000,
            "a successful call after the pause",
          );

          // Redis goes down: three failed calls open the circuit, then 503 with Retry-After.
          await redis.stop();
          for (let i = 0; i < 3; i++) assert.ok((await request(visits, "POST")).status >= 500);
          const answer = await request(visits, "POST");
          assert.deepEqual([answer.status, answer.retryAfter], [503, "1"]);
          assert.match(answer.body, /Circuit \\"redis\\" is open/);
          assert.equal((await circuitOf(origin)).state, "open");

          // Redis is back (empty): once the client reconnects, a trial call closes the circuit.
          await redis.restart();
          await waitUntil(
            async () => (await request(visits, "POST")).status === 200,
            10_000,
            "a successful call after the restart",
          );
          assert.equal((await circuitOf(origin)).state, "closed");
          assert.equal((await request(visits)).body, '{"page":"home","visits":1}\n');
        },
      );
    },
  );

  it(`demo.ts (${RUNTIME}): the circuit opens, rejects at once, and closes after recovery`, async () => {
    const run = await runToEnd("demo.ts", [], [], 20_000);
    assert.equal(run.code, 0, run.output);
    for (const transition of ["closed -> open", "open -> half-open", "half-open -> closed"]) {
      assert.match(run.output, new RegExp(`>>> circuit ${transition}`));
    }
    assert.match(run.output, /rejected at once \(Circuit "fetchPrice" is open/);
    const reached = /20 calls, (\d+) reached the service/.exec(run.output);
    assert.ok(reached !== null && Number(reached[1]) < 20, run.output);
  });
});

/** Two servers sharing one circuit: three failures through one are refused by the other. */
async function checkSharedServers(
  file: string,
  permissions: readonly string[],
  env: Record<string, string>,
): Promise<void> {
  // Port 0: each picks a free port. The store's address is in `env`.
  const first = new ExampleProcess(file, ["0"], permissions, env);
  const second = new ExampleProcess(file, ["0"], permissions, env);
  try {
    const [one, two] = [await first.origin(), await second.origin()];
    assert.equal((await request(`${two}/`)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await request(`${one}/fail`)).status, 502);
    assert.equal((await request(`${one}/`)).status, 503);
    // The other process learns it through the store: at once (Redis pub/sub) or at its next
    // sync (a local Deno KV file).
    await waitUntil(async () => (await request(`${two}/`)).status === 503, 3_000, "shared trip");
    const answer = await request(`${two}/`);
    assert.ok(Number(answer.retryAfter) >= 1, `Retry-After: ${answer.retryAfter}`);
    assert.match(answer.body, /^Circuit "upstream" is open: retry in \d+ ms\n$/);
    await first.stop("SIGINT");
    await second.stop("SIGINT");
  } catch (error) {
    await first.kill();
    await second.kill();
    throw new Error(
      `${(error as Error).message}\n--- outputs:\n${first.output}\n${second.output}`,
      {
        cause: error,
      },
    );
  }
}

/**
 * A test with a private redis-server. Without redis-server it is skipped saying why, except in
 * CI (`CI=true`), where it fails (service_tests.ts).
 */
function redisIt(name: string, body: (redis: RedisServer) => Promise<void>): void {
  testsNeeding("redis-server").it(name, () => withRedisServer(body));
}
