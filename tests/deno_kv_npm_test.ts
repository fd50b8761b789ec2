/**
 * denoKvStore with the npm `@deno/kv` client, as on Bun and Node.js, in real processes on one
 * KV file: the circuit is shared, and each process exits by itself once the breaker is
 * disposed and the database closed (the client's watch() kept them alive).
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "./timer_leaks.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const FIXTURE = join(ROOT, "tests", "fixtures", "kv_npm_client.ts");

/** Runs the fixture with `runtime` from node_modules/.bin: its exit code and output. */
function run(
  runtime: "bun" | "node",
  path: string,
  action: "trip" | "read",
): Promise<{ code: number | string; output: string }> {
  return new Promise((resolve) => {
    execFile(
      join(ROOT, "node_modules", ".bin", runtime),
      [FIXTURE, path, action],
      { cwd: ROOT, timeout: 10_000, killSignal: "SIGKILL" },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : error.killed ? "killed after 10 s" : error.code ?? 1;
        resolve({ code: code as number | string, output: `${stdout}${stderr}` });
      },
    );
  });
}

describe("denoKvStore with the npm @deno/kv client", () => {
  for (const [first, second] of [["bun", "node"], ["node", "bun"]] as const) {
    it(`denoKvStore on ${first} and ${second}: one circuit, and each process exits by itself`, async () => {
      const directory = mkdtempSync(join(tmpdir(), "circuit-kv-npm-"));
      try {
        const path = join(directory, "kv.sqlite3");
        const tripped = await run(first, path, "trip");
        assert.equal(tripped.code, 0, tripped.output);
        assert.equal(tripped.output.trim(), `{"state":"open"}`);
        const read = await run(second, path, "read");
        assert.equal(read.code, 0, read.output);
        assert.equal(read.output.trim(), `{"state":"open"}`, "the other process sees it open");
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
    });
  }
});
