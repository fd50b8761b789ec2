/**
 * A private Redis server for tests: `redis-server` from PATH on 127.0.0.1 and a free port, with
 * nothing saved to disk. It can be killed and restarted on the same port (an outage), and
 * closed leaving no process. `describeWithRedis` wraps a group of tests around one server,
 * `withRedisServer` gives one test (or one multi-process scenario) a server of its own; a test
 * that needs one is declared by the rule of service_tests.ts (`testsNeeding("redis-server")`).
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer, Socket } from "node:net";
import { join } from "node:path";
import process from "node:process";
import * as nodeTest from "node:test";
import { locateService } from "../scripts/services.mjs";
import { type TestDeclaration, testsNeeding } from "./service_tests.ts";
import { describe } from "./timer_leaks.ts";

/** A running (or stopped) private Redis server. */
export interface RedisServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` */
  readonly url: string;
  /** Kills the server at once (SIGKILL), as a crash would; the port stays reserved for it. */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty, and waits until it answers. */
  restart(): Promise<void>;
  /** Stalls it (SIGSTOP): connections stay open and nothing is answered, as a hung server. */
  pause(): void;
  /** Lets a stalled server go on (SIGCONT). */
  resume(): void;
  /** Stops it for good; no process is left. */
  close(): Promise<void>;
}

/** How a private server keeps its data. */
export interface RedisServerOptions {
  /**
   * Keep the data across `stop()`/`restart()` in an append-only file synced on every write,
   * as a production server configured for durability would.
   * @default {false}
   */
  readonly persistent?: boolean;
}

/** The redis-server binary on PATH, or undefined. */
export function findRedisServer(): string | undefined {
  return locateService("redis-server", process.env);
}

/** Starts a private server on a free port of 127.0.0.1 and waits until it answers PING. */
export async function startRedisServer(
  binary = findRedisServer(),
  options: RedisServerOptions = {},
): Promise<RedisServer> {
  if (binary === undefined) throw new Error("redis-server was not found on PATH");
  let lastError: unknown;
  // A free port can be taken between finding it and the server binding it: try a few.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const server = new ServerProcess(binary, port, options.persistent === true);
    try {
      await server.start();
      return server;
    } catch (error) {
      lastError = error;
      await server.close();
    }
  }
  throw lastError;
}

/**
 * Runs `body` with a private Redis server of its own, closed after it whatever happens. For a
 * test that needs a fresh server (or kills it), declared with `testsNeeding("redis-server").it`
 * (skipped without redis-server); throws a clear error when redis-server is missing.
 */
export async function withRedisServer<T>(
  body: (server: RedisServer) => Promise<T>,
  options: RedisServerOptions = {},
): Promise<T> {
  const binary = findRedisServer();
  if (binary === undefined) {
    throw new Error(
      `redis-server was not found on PATH (PATH=${process.env.PATH}): install Redis to run this test`,
    );
  }
  const server = await startRedisServer(binary, options);
  try {
    return await body(server);
  } finally {
    await server.close();
  }
}

/**
 * Declares a group of tests around one private Redis server, started before them and closed
 * after them; `server()` returns it inside the tests, which are declared with the `it` given to
 * `body`: without redis-server they are skipped, or fail under `CI=true` (service_tests.ts).
 */
export function describeWithRedis(
  name: string,
  body: (server: () => RedisServer, it: TestDeclaration) => void,
): void {
  const tests = testsNeeding("redis-server");
  describe(name, () => {
    let server: RedisServer | undefined;
    const binary = tests.executable;
    if (binary !== undefined) {
      nodeTest.before(async () => {
        server = await startRedisServer(binary);
      });
      nodeTest.after(async () => {
        await server?.close();
      });
    }
    body(() => {
      if (server === undefined) throw new Error("the Redis server did not start");
      return server;
    }, tests.it);
  });
}

class ServerProcess implements RedisServer {
  readonly port: number;
  readonly url: string;
  readonly #binary: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #output = "";

  readonly #dir: string | undefined;

  constructor(binary: string, port: number, persistent: boolean) {
    this.#dir = persistent ? mkdtempSync(join(tmpdir(), "circuit-redis-")) : undefined;
    this.#binary = binary;
    this.port = port;
    this.url = `redis://127.0.0.1:${port}`;
  }

  async start(): Promise<void> {
    const child = spawn(this.#binary, [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      ...(this.#dir === undefined
        ? ["--appendonly", "no"]
        : ["--appendonly", "yes", "--appendfsync", "always", "--dir", this.#dir]),
      "--daemonize",
      "no",
    ], { stdio: ["ignore", "pipe", "pipe"] });
    this.#child = child;
    this.#output = "";
    const keep = (chunk: unknown) => {
      this.#output = (this.#output + String(chunk)).slice(-2000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    let exitedEarly = false;
    this.#exited = new Promise<void>((resolve) => {
      child.once("exit", () => {
        exitedEarly = true;
        resolve();
      });
      child.once("error", (error) => {
        exitedEarly = true;
        this.#output += String(error);
        resolve();
      });
    });
    const deadline = Date.now() + 5_000;
    while (!(await answersPing(this.port))) {
      if (exitedEarly || Date.now() > deadline) {
        throw new Error(
          `redis-server on port ${this.port} ${
            exitedEarly ? "exited" : "did not answer within 5 s"
          }:\n${this.#output}`,
        );
      }
      await sleep(20);
    }
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (child === undefined) return;
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await this.#exited;
  }

  // process.kill() rather than child.kill(): Deno's child.kill("SIGSTOP") records SIGSTOP as
  // the signal that ended the child and refuses every later kill (SIGKILL included).
  pause(): void {
    const pid = this.#child?.pid;
    if (pid !== undefined) process.kill(pid, "SIGSTOP");
  }

  resume(): void {
    const pid = this.#child?.pid;
    if (pid !== undefined) process.kill(pid, "SIGCONT");
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async close(): Promise<void> {
    await this.stop();
    if (this.#dir !== undefined) rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** A port that is free on 127.0.0.1 now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether a server on the port answers PING with PONG, within 1 s. */
function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    let reply = "";
    let settled = false;
    const finish = (answered: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => finish(false), 1_000);
    socket.once("error", () => finish(false));
    socket.once("close", () => finish(false));
    socket.on("data", (chunk) => {
      reply += String(chunk);
      if (reply.includes("\r\n")) finish(reply.startsWith("+PONG"));
    });
    socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
