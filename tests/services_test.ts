/**
 * The services some tests need (scripts/services.mjs): the rule (run, install, skip, or fail
 * under CI=true), how a service is found, when the machine may install one, and the test
 * command run for real with redis-server and chromium hidden and installing refused (this
 * machine's own services cannot be uninstalled: PATH hides redis-server, CIRCUIT_TEST_CHROMIUM
 * points elsewhere, CIRCUIT_TEST_NO_INSTALL=1 refuses).
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import {
  installAccess,
  locateService,
  serviceVerdict,
  setUpServices,
} from "../scripts/services.mjs";
import { describe, it } from "./timer_leaks.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const NODE = join(ROOT, "node_modules", ".bin", "node");
const RUNTIME = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";

/** Runs `body` with a fresh directory, removed after it. */
async function withDirectory(body: (directory: string) => Promise<void> | void): Promise<void> {
  const directory = mkdtempSync(join(tmpdir(), "circuit-services-"));
  try {
    await body(directory);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** Writes a shell script that exits with `status`, executable or not. */
function writeScript(file: string, status: number, executable = true): void {
  writeFileSync(file, `#!/bin/sh\nexit ${status}\n`);
  chmodSync(file, executable ? 0o755 : 0o644);
}

/** The environment of a machine without the services and with installing refused. */
function hiddenServices(emptyDirectory: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    // NODE_TEST_CONTEXT would make a nested `node --test` report to this run instead.
    if (value !== undefined && key !== "CI" && key !== "NODE_TEST_CONTEXT") env[key] = value;
  }
  return {
    ...env,
    PATH: emptyDirectory,
    CIRCUIT_TEST_CHROMIUM: join(emptyDirectory, "chromium"),
    CIRCUIT_TEST_NO_INSTALL: "1",
  };
}

/** Runs scripts/test.mjs (what `npm test` runs) on this runtime alone; its exit code and output. */
function runTestCommand(
  env: Record<string, string>,
  files: readonly string[],
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      NODE,
      ["scripts/test.mjs", `--${RUNTIME}-only`, "--", ...files],
      { cwd: ROOT, env: { ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let output = "";
    child.stdout.on("data", (chunk) => (output += String(chunk)));
    child.stderr.on("data", (chunk) => (output += String(chunk)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 50_000);
    child.once("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe("serviceVerdict()", () => {
  it("serviceVerdict() runs the tests of a found service, under CI=true or not", () => {
    for (const ci of [false, true]) {
      for (const canInstall of [false, true]) {
        assert.equal(serviceVerdict({ found: true, canInstall, ci }), "run");
      }
    }
  });

  it("serviceVerdict() installs a missing service when the machine can, under CI=true or not", () => {
    assert.equal(serviceVerdict({ found: false, canInstall: true, ci: false }), "install");
    assert.equal(serviceVerdict({ found: false, canInstall: true, ci: true }), "install");
  });

  it("serviceVerdict() skips the tests of a missing service it cannot install, but fails them under CI=true", () => {
    assert.equal(serviceVerdict({ found: false, canInstall: false, ci: false }), "skip");
    assert.equal(serviceVerdict({ found: false, canInstall: false, ci: true }), "fail");
  });
});

describe("locateService()", () => {
  it("locateService() finds an executable redis-server on PATH, and nothing else", async () => {
    await withDirectory((directory) => {
      assert.equal(locateService("redis-server", { PATH: directory }), undefined);
      const server = join(directory, "redis-server");
      writeScript(server, 0, false);
      assert.equal(locateService("redis-server", { PATH: directory }), undefined, "not executable");
      chmodSync(server, 0o755);
      assert.equal(locateService("redis-server", { PATH: `/nonexistent:${directory}` }), server);
      assert.equal(locateService("redis-server", {}), undefined, "no PATH");
    });
  });

  it("locateService() finds chromium where CIRCUIT_TEST_CHROMIUM says", async () => {
    await withDirectory((directory) => {
      const chromium = join(directory, "chromium");
      const env = { CIRCUIT_TEST_CHROMIUM: chromium };
      assert.equal(locateService("chromium", env), undefined);
      writeScript(chromium, 0);
      assert.equal(locateService("chromium", env), chromium);
    });
  });
});

describe("installAccess()", () => {
  it("installAccess() is root for root with apt-get on PATH, and none without apt-get", async () => {
    await withDirectory((directory) => {
      assert.equal(installAccess({ PATH: directory }, 0), undefined, "no apt-get");
      writeScript(join(directory, "apt-get"), 0);
      assert.equal(installAccess({ PATH: directory }, 0), "root");
      assert.equal(installAccess({ PATH: directory }, undefined), undefined, "no user, no sudo");
    });
  });

  it("installAccess() is sudo for another user when sudo -n succeeds, and none when it asks for a password", async () => {
    await withDirectory((directory) => {
      writeScript(join(directory, "apt-get"), 0);
      assert.equal(installAccess({ PATH: directory }, 1000), undefined, "no sudo");
      writeScript(join(directory, "sudo"), 1);
      assert.equal(installAccess({ PATH: directory }, 1000), undefined, "a password needed");
      writeScript(join(directory, "sudo"), 0);
      assert.equal(installAccess({ PATH: directory }, 1000), "sudo");
    });
  });

  it("installAccess() is none under CIRCUIT_TEST_NO_INSTALL=1, even for root", async () => {
    await withDirectory((directory) => {
      writeScript(join(directory, "apt-get"), 0);
      assert.equal(installAccess({ PATH: directory, CIRCUIT_TEST_NO_INSTALL: "1" }, 0), undefined);
    });
  });
});

describe("setUpServices()", () => {
  it("setUpServices() skips the missing services it cannot install, one line each saying what to install", async () => {
    await withDirectory(async (directory) => {
      const log: string[] = [];
      const results = await setUpServices(hiddenServices(directory), (line) => log.push(line));
      assert.deepEqual(log, [], "nothing installed");
      assert.deepEqual(results.map((r) => [r.service, r.verdict, r.executable]), [
        ["redis-server", "skip", undefined],
        ["chromium", "skip", undefined],
        ["promtool", "skip", undefined],
      ]);
      assert.match(results[0]!.line, /redis-server .*skipped.*apt-get install redis-server$/);
      assert.match(results[2]!.line, /promtool .*skipped.*apt-get install prometheus$/);
      assert.match(results[1]!.line, /chromium was not found.*skipped.*apt-get install chromium$/);
    });
  });

  it("setUpServices() fails the missing services under CI=true", async () => {
    await withDirectory(async (directory) => {
      const env = { ...hiddenServices(directory), CI: "true" };
      const results = await setUpServices(env, () => {});
      assert.deepEqual(results.map((r) => r.verdict), ["fail", "fail", "fail"]);
      assert.match(results[0]!.line, /CI=true.*apt-get install redis-server$/);
    });
  });

  it("setUpServices() installs the missing services with apt-get where it may, updating once, and skips what apt-get could not install", async () => {
    await withDirectory(async (directory) => {
      const calls = join(directory, "apt-get calls");
      // A stand-in apt-get that records its calls and "installs" chromium alone.
      writeFileSync(
        join(directory, "apt-get"),
        `#!/bin/sh\necho "$*" >> "${calls}"\n` +
          `if [ "$*" = "install -y -qq chromium" ]; then\n` +
          `  echo '#!/bin/sh' > "$CIRCUIT_TEST_CHROMIUM"; /bin/chmod 755 "$CIRCUIT_TEST_CHROMIUM"\n` +
          `fi\n`,
      );
      chmodSync(join(directory, "apt-get"), 0o755);
      const env = { ...hiddenServices(directory), CIRCUIT_TEST_NO_INSTALL: "" };
      const chromium = join(directory, "chromium");
      const log: string[] = [];
      const results = await setUpServices(env, (line) => log.push(line), 0);
      assert.deepEqual(readFileSync(calls, "utf8").split("\n"), [
        "update -qq",
        "install -y -qq redis-server",
        "install -y -qq chromium",
        "install -y -qq prometheus",
        "",
      ]);
      assert.deepEqual(results.map((r) => [r.service, r.verdict, r.executable]), [
        ["redis-server", "skip", undefined],
        ["chromium", "run", chromium],
        ["promtool", "skip", undefined],
      ]);
      assert.match(results[0]!.line, /\(apt-get could not install it\): its tests are skipped/);
      assert.deepEqual(log, [
        "services: redis-server was not found on PATH: installing redis-server (apt-get)",
        `services: ${chromium} was not found: installing chromium (apt-get)`,
        "services: promtool was not found on PATH: installing prometheus (apt-get)",
      ]);
    });
  });

  it("setUpServices() runs the tests of the services found", async () => {
    await withDirectory(async (directory) => {
      const chromium = join(directory, "chromium");
      writeScript(chromium, 0);
      const env = { ...hiddenServices(directory), CIRCUIT_TEST_CHROMIUM: chromium, CI: "true" };
      const results = await setUpServices(env, () => {});
      assert.deepEqual(results.map((r) => [r.service, r.verdict]), [
        ["redis-server", "fail"],
        ["chromium", "run"],
        ["promtool", "fail"],
      ]);
      assert.equal(results[1]!.executable, chromium);
    });
  });
});

describe("the test command without the services", () => {
  const files = ["tests/redis_store_test.ts", "tests/status_page_browser_test.ts"];

  it(`the test command (${RUNTIME}) skips the tests needing missing services it cannot install, says what to install, and exits 0`, async () => {
    await withDirectory(async (directory) => {
      const { code, output } = await runTestCommand(hiddenServices(directory), files);
      const lines = output.trimEnd().split("\n");
      const summary = lines.at(-1) ?? "";
      const counts = /^tests: (\d+) passed, 0 failed, (\d+) skipped$/.exec(summary);
      assert.ok(counts, `last line: ${summary}\n${output}`);
      assert.ok(Number(counts[1]) > 0, "the tests needing no service ran");
      // redisStore's tests and the status page's, skipped one by one.
      assert.ok(Number(counts[2]) >= 40, `${counts[2]} skipped`);
      assert.equal(code, 0, output);
      const install = lines.filter((line) => /install it: sudo apt-get install/.test(line));
      assert.deepEqual(install, [
        "services: redis-server was not found on PATH: its tests are skipped; to run them, install it: sudo apt-get install redis-server",
        `services: ${
          join(directory, "chromium")
        } was not found: its tests are skipped; to run them, install it: sudo apt-get install chromium`,
        "services: promtool was not found on PATH: its tests are skipped; to run them, install it: sudo apt-get install prometheus",
      ]);
    });
  });

  it(`the test command (${RUNTIME}) fails the tests needing a missing service under CI=true`, async () => {
    await withDirectory(async (directory) => {
      const env = { ...hiddenServices(directory), CI: "true" };
      const { code, output } = await runTestCommand(env, ["tests/status_page_browser_test.ts"]);
      const summary = output.trimEnd().split("\n").at(-1) ?? "";
      assert.match(summary, /^tests: 0 passed, [1-9]\d* failed$/, output);
      assert.equal(code, 1, output);
      assert.match(output, /chromium was not found: CI=true needs every service/);
    });
  });
});
