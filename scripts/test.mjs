#!/usr/bin/env node
// Runs the test suite on Deno, on Bun and on Node.js and prints one summary.
//
//   node scripts/test.mjs                 all three runtimes, all of tests/
//   node scripts/test.mjs --deno-only     (npm run test:deno)
//   node scripts/test.mjs --bun-only      (npm run test:bun)
//   node scripts/test.mjs --node-only     (npm run test:node)
//   node scripts/test.mjs -- state retry  only test files under tests/ whose path
//                                         contains "state" or "retry"; an argument
//                                         that is an existing path is used as is
//
// First it sets up the services some tests need (scripts/services.mjs): redis-server and chromium
// are installed where the machine allows (root, or sudo without a password, and apt-get);
// otherwise their tests are skipped, and one line per missing service says what to install
// (under CI=true they fail).
//
// Output of the runners is streamed live and captured. Counts are per leaf test
// (each `it`/`test` body once; `describe` blocks are containers, not tests).
// The last line printed is always `tests: N passed, M failed` (sum over runtimes), followed on
// the same line by `, K skipped` when tests were skipped.
//
// Node.js is the one from npm (node_modules/.bin/node, the `node` devDependency), which
// strips the types of .ts files; a Node.js on PATH is used only when it does too (>= 22.18).
// Files Node.js cannot run are left out of its run with the reason printed (NODE_EXCLUDED).
// Exit code: 0 when nothing failed and every runtime reported, 1 otherwise.
//
// Plain ESM JavaScript for Node >= 20, no dependencies.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setUpServices } from "./services.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const TEST_DIR = "tests";
// A whole runtime that takes longer than this is killed and counted as failed.
const TIMEOUT_S = Number(process.env.TEST_RUNTIME_TIMEOUT_S ?? 600);

// ---------------------------------------------------------------- arguments

function usage(code) {
  console.log(
    "usage: node scripts/test.mjs [--deno-only | --bun-only | --node-only] [--] [file-or-substring ...]",
  );
  process.exit(code);
}

const RUNTIMES = ["deno", "bun", "node"];

function parseArgs(argv) {
  const only = [];
  const filters = [];
  let rest = false;
  for (const arg of argv) {
    const runtime = /^--(\w+)-only$/.exec(arg)?.[1];
    if (rest || !arg.startsWith("-")) filters.push(arg);
    else if (arg === "--") rest = true;
    else if (RUNTIMES.includes(runtime)) only.push(runtime);
    else if (arg === "-h" || arg === "--help") usage(0);
    else {
      console.error(`test.mjs: unknown option ${arg}`);
      usage(2);
    }
  }
  if (only.length > 1) {
    console.error(`test.mjs: ${only.map((r) => `--${r}-only`).join(" and ")} exclude each other`);
    usage(2);
  }
  const runs = (runtime) => only.length === 0 || only[0] === runtime;
  return { deno: runs("deno"), bun: runs("bun"), node: runs("node"), filters };
}

// Test file names both runners pick up: foo_test.ts, foo.test.ts (and js/mjs/tsx...).
const TEST_FILE = /[._]test\.(?:[cm]?[jt]sx?)$/;

function listTestFiles(dir) {
  const out = [];
  let entries;
  try {
    entries = fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of entries) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) out.push(...listTestFiles(rel));
    else if (TEST_FILE.test(e.name)) out.push(rel);
  }
  return out.sort();
}

// Turns CLI filters into repo-relative paths that both runners accept.
// An existing file or directory is kept; anything else is a substring matched
// against the test files under tests/. A filter matching nothing is passed on
// verbatim so that the runners fail loudly (and that counts as a failure).
function resolveTargets(filters) {
  if (filters.length === 0) return [TEST_DIR];
  const targets = [];
  const all = listTestFiles(TEST_DIR);
  for (const f of filters) {
    const abs = path.resolve(process.cwd(), f);
    if (fs.existsSync(abs)) {
      targets.push(path.relative(ROOT, abs).split(path.sep).join("/") || ".");
      continue;
    }
    const hits = all.filter((file) => file.includes(f));
    if (hits.length === 0) {
      console.error(`test.mjs: no test file under ${TEST_DIR}/ matches "${f}"`);
      targets.push(f);
    } else targets.push(...hits);
  }
  return [...new Set(targets)];
}

// Bun treats a bare argument as a substring filter on file paths ("tests/"
// would also match bench/tests/...); only "./x" or "/x" is taken as a path.
function bunPath(p) {
  if (path.isAbsolute(p) || p.startsWith("./") || p.startsWith("../")) return p;
  return `./${p}`;
}

// ---------------------------------------------------------------- helpers

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)/g;
const stripAnsi = (s) => s.replace(ANSI, "");

function bin(name) {
  const local = path.join(ROOT, "node_modules", ".bin", name);
  return fs.existsSync(local) ? local : name;
}

// Runs a command, streaming its output live while capturing it.
function run(cmd, args, env) {
  return new Promise((resolve) => {
    const chunks = [];
    let settled = false;
    let timedOut = false;
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ["inherit", "pipe", "pipe"] });
    child.stdout.on("data", (d) => {
      process.stdout.write(d);
      chunks.push(d);
    });
    child.stderr.on("data", (d) => {
      process.stderr.write(d);
      chunks.push(d);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(
        `\ntest.mjs: ${path.basename(cmd)} still running after ${TIMEOUT_S}s, killing it`,
      );
      child.kill("SIGTERM");
      setTimeout(() => child.kill("SIGKILL"), 5000).unref();
    }, TIMEOUT_S * 1000);
    const finish = (code, signal, error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        code,
        signal,
        error,
        timedOut,
        output: stripAnsi(Buffer.concat(chunks).toString("utf8")),
      });
    };
    child.on("error", (err) => finish(null, null, err));
    child.on("close", (code, signal) => finish(code, signal, null));
  });
}

function describeExit(res) {
  if (res.error) return `could not be started (${res.error.message})`;
  if (res.timedOut) return `timed out after ${TIMEOUT_S}s`;
  if (res.signal) return `was killed by ${res.signal}`;
  return `exited with code ${res.code}`;
}

// ---------------------------------------------------------------- Deno

function decodeXml(s) {
  return s.replace(/&(#x[0-9a-f]+|#\d+|lt|gt|amp|quot|apos);/gi, (m, e) => {
    const named = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" }[e.toLowerCase()];
    if (named) return named;
    const n = e[1].toLowerCase() === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return Number.isFinite(n) ? String.fromCodePoint(n) : m;
  });
}

// Deno's JUnit report is flat. Top-level tests (`describe` or `test`) sit in one
// <testsuite> per file; steps are separate <testcase>s named with their whole
// path ("outer > inner > leaf"); node:test `describe`/`it` steps land in a suite
// named "ext:deno_node/testing.ts", `t.test()` / `t.step()` steps in the file's
// suite. A testcase is a leaf when no other testcase is named "<its name> > ...".
// Leaves are counted; a container's failure is only counted when it is not the
// mere consequence of failing steps ("N test step(s) failed"), e.g. a throwing
// after() hook or describe body.
function parseDenoJunit(xml) {
  const cases = [];
  const re = /<testcase\b([^>]*?)(?:\/>|>([\s\S]*?)<\/testcase>)/g;
  for (let m; (m = re.exec(xml));) {
    const name = decodeXml(/\bname="([^"]*)"/.exec(m[1])?.[1] ?? "");
    const body = m[2] ?? "";
    const fail = /<(failure|error)\b/.exec(body);
    const message = fail
      ? decodeXml(/<(?:failure|error)\b[^>]*\bmessage="([^"]*)"/.exec(body)?.[1] ?? "")
      : "";
    cases.push({ name, failed: !!fail, skipped: !fail && /<skipped\b/.test(body), message });
  }
  const parents = new Set();
  for (const c of cases) {
    const parts = c.name.split(" > ");
    for (let i = 1; i < parts.length; i++) parents.add(parts.slice(0, i).join(" > "));
  }
  const r = { passed: 0, failed: 0, skipped: 0, containerFailures: 0, failedCases: 0 };
  for (const c of cases) {
    if (c.failed) r.failedCases++;
    if (parents.has(c.name)) {
      if (c.failed && !/^\d+ test steps? failed/.test(c.message)) r.containerFailures++;
    } else if (c.failed) r.failed++;
    else if (c.skipped) r.skipped++;
    else r.passed++;
  }
  r.failed += r.containerFailures;
  return r;
}

// "ok | 3 passed (12 steps) | 0 failed | 1 ignored (2 steps) (120ms)"
function parseDenoSummary(text) {
  const re =
    /^(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored(?: \((\d+) steps?\))?)?/gm;
  let last = null;
  for (let m; (m = re.exec(text));) last = m;
  if (!last) return null;
  const n = (i) => Number(last[i] ?? 0);
  return {
    ok: last[1] === "ok",
    passed: n(2),
    passedSteps: n(3),
    failed: n(4),
    failedSteps: n(5),
    ignored: n(6),
    ignoredSteps: n(7),
  };
}

async function runDeno(targets) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "circuit-test-"));
  const junit = path.join(tmp, "deno-junit.xml");
  const args = [
    "test",
    "--allow-all",
    "--unstable-kv",
    "--v8-flags=--expose-gc",
    `--junit-path=${junit}`,
    ...targets,
  ];
  const cmd = bin("deno");
  banner(`deno: ${path.relative(ROOT, cmd) || cmd} ${args.join(" ")}`);
  const res = await run(cmd, args, childEnv());
  let xml = null;
  try {
    xml = fs.readFileSync(junit, "utf8");
  } catch { /* no report */ }
  fs.rmSync(tmp, { recursive: true, force: true });

  const summary = parseDenoSummary(res.output);
  const out = { name: "deno", passed: 0, failed: 0, skipped: 0, notes: [] };
  if (xml && /<testsuites\b/.test(xml)) {
    const j = parseDenoJunit(xml);
    Object.assign(out, { passed: j.passed, failed: j.failed, skipped: j.skipped });
    if (j.containerFailures) {
      out.notes.push(`${j.containerFailures} failure(s) of a describe block/hook outside any test`);
    }
    // Errors Deno reports against a whole module (throw at top level, uncaught
    // error from a dangling promise/timer) are in its text summary but not in
    // the JUnit file: count the difference as failures.
    if (summary) {
      const missing = summary.failed + summary.failedSteps - j.failedCases;
      if (missing > 0) {
        out.failed += missing;
        out.notes.push(
          `${missing} uncaught error(s) outside any test (see "uncaught error" above)`,
        );
      }
    }
  } else if (summary) {
    // No JUnit file: the text summary counts describe blocks as tests too.
    out.passed = summary.passed + summary.passedSteps;
    out.failed = summary.failed + summary.failedSteps;
    out.skipped = summary.ignored + summary.ignoredSteps;
    out.notes.push("no JUnit report; counts from the text summary (describe blocks included)");
  } else {
    out.failed = 1;
    out.unreported = true;
    out.notes.push(`no test summary: deno ${describeExit(res)} (counted as 1 failure)`);
    return out;
  }
  sanityCheck(out, res);
  return out;
}

// ---------------------------------------------------------------- Bun

// Bun's closing block (on stderr):   " 7 pass\n 1 skip\n 1 todo\n 1 fail\n 3 errors\n
// Ran 9 tests across 2 files." Its JUnit reporter leaves out errors thrown
// outside tests (module top level, hooks, describe bodies), which the text
// summary counts as "errors": they are added to the failures here.
function parseBunSummary(text) {
  const last = (re) => {
    let v = null;
    for (const m of text.matchAll(re)) v = Number(m[1]);
    return v;
  };
  const ran = last(/^Ran (\d+) tests? across \d+ files?/gm);
  const pass = last(/^ *(\d+) pass$/gm);
  const fail = last(/^ *(\d+) fail$/gm);
  if (ran === null && pass === null && fail === null) return null;
  return {
    passed: pass ?? 0,
    failed: fail ?? 0,
    skipped: (last(/^ *(\d+) skip$/gm) ?? 0) + (last(/^ *(\d+) todo$/gm) ?? 0),
    errors: last(/^ *(\d+) errors?$/gm) ?? 0,
    ran,
  };
}

async function runBun(targets) {
  // The multi-process tests run several seconds against real servers; Bun's default is 5 s.
  const args = ["test", "--timeout", "60000", ...targets.map(bunPath)];
  const cmd = bin("bun");
  banner(`bun: ${path.relative(ROOT, cmd) || cmd} ${args.join(" ")}`);
  const res = await run(cmd, args, childEnv());
  const s = parseBunSummary(res.output);
  const out = { name: "bun", passed: 0, failed: 0, skipped: 0, notes: [] };
  if (!s || (s.ran === 0 && s.passed + s.failed + s.errors === 0)) {
    out.failed = 1;
    out.unreported = true;
    out.notes.push(`no test summary: bun ${describeExit(res)} (counted as 1 failure)`);
    return out;
  }
  Object.assign(out, { passed: s.passed, failed: s.failed + s.errors, skipped: s.skipped });
  if (s.errors) {
    out.notes.push(`${s.errors} error(s) outside any test (see "Unhandled error" above)`);
  }
  sanityCheck(out, res);
  return out;
}

// ---------------------------------------------------------------- Node.js

// Test files the Node.js run leaves out, and why. Only what cannot run there.
const NODE_EXCLUDED = new Map([
  [
    "tests/decorator_test.ts",
    "TC39 decorator syntax (@circuit): not erasable, so Node.js's type stripping leaves it in, " +
    "and V8 cannot parse decorators yet (Deno and Bun run this file)",
  ],
]);

// Type stripping is on by default from Node.js 22.18 (23.6 on the 23 line).
function stripsTypes(version) {
  const [major, minor] = version.replace(/^v/, "").split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18);
}

// The Node.js to run: the npm one, else the one on PATH when it strips types.
function findNode() {
  for (const candidate of [path.join(ROOT, "node_modules", ".bin", "node"), "node"]) {
    const probe = spawnSync(candidate, ["--version"], { encoding: "utf8" });
    const version = probe.stdout?.trim() ?? "";
    if (probe.status === 0 && stripsTypes(version)) return { cmd: candidate, version };
  }
  return null;
}

// Test files under the targets (directories expanded), in the order given.
function nodeTestFiles(targets) {
  const files = [];
  for (const target of targets) {
    const abs = path.join(ROOT, target);
    if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) files.push(...listTestFiles(target));
    else files.push(target); // a file, or a filter matching nothing: Node fails loudly on it
  }
  return [...new Set(files)];
}

async function runNode(targets) {
  const out = { name: "node", passed: 0, failed: 0, skipped: 0, notes: [] };
  const node = findNode();
  if (!node) {
    out.failed = 1;
    out.unreported = true;
    out.notes.push(
      "no Node.js that strips types (>= 22.18): run `npm ci` for the npm one (counted as 1 failure)",
    );
    return out;
  }
  const files = nodeTestFiles(targets).filter((file) => {
    const reason = NODE_EXCLUDED.get(file);
    if (reason) out.notes.push(`excluded ${file}: ${reason}`);
    return !reason;
  });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "circuit-test-"));
  const countsFile = path.join(tmp, "node-counts.json");
  const args = [
    "--expose-gc",
    "--test",
    // One file at a time, as Deno and Bun run them: the timing-sensitive tests stay reliable.
    "--test-concurrency=1",
    "--test-timeout=60000",
    // No --test-force-exit: with it, Node 24 ends a file's process once the tests it knows of
    // have run, and tests it had not yet reported were dropped without a word (118-156 of 156
    // in two files, varying run to run). A handle left open fails the Deno run instead.
    "--test-reporter=spec",
    "--test-reporter-destination=stdout",
    `--test-reporter=${path.join(ROOT, "scripts", "node_count_reporter.mjs")}`,
    `--test-reporter-destination=${countsFile}`,
    ...files,
  ];
  banner(`node ${node.version}: ${path.relative(ROOT, node.cmd) || node.cmd} ${args.join(" ")}`);
  for (const note of out.notes) console.log(`node: note: ${note}`);
  const env = childEnv();
  // No NODE_COMPILE_CACHE: Node.js 24.21 ran stale code for edited .ts files from it ("Receiver
  // must be class #settlersFor", a method breaker.ts no longer had), even from a new directory.
  const res = await run(node.cmd, args, env);
  let counts = null;
  try {
    counts = JSON.parse(fs.readFileSync(countsFile, "utf8"));
  } catch { /* no report */ }
  fs.rmSync(tmp, { recursive: true, force: true });
  if (!counts) {
    out.failed = 1;
    out.unreported = true;
    out.notes.push(`no test report: node ${describeExit(res)} (counted as 1 failure)`);
    return out;
  }
  Object.assign(out, { passed: counts.passed, failed: counts.failed, skipped: counts.skipped });
  if (counts.containerFailures) {
    out.notes.push(`${counts.containerFailures} failure(s) of a describe block/hook/file`);
  }
  if (counts.failures.length) out.notes.push(`failed: ${counts.failures.join("; ")}`);
  sanityCheck(out, res);
  return out;
}

// ---------------------------------------------------------------- main

// A runner that failed (or was killed) while its report shows no failure still
// fails the run, e.g. Deno's `.only` ("FAILED because the only option was used").
function sanityCheck(out, res) {
  if (out.failed === 0 && (res.code !== 0 || res.signal || res.error || res.timedOut)) {
    out.failed = 1;
    out.notes.push(`${out.name} ${describeExit(res)} though no test failed (counted as 1 failure)`);
  }
  if (out.passed + out.failed === 0) {
    out.failed = 1;
    out.unreported = true;
    out.notes.push(`${out.name} ran no test (counted as 1 failure)`);
  }
}

function childEnv() {
  const env = { ...process.env };
  // Logs (CI, pipes) get plain text; a terminal keeps the runners' colors.
  // ANSI codes are stripped before parsing either way.
  if (!process.stdout.isTTY && env.FORCE_COLOR === undefined) env.NO_COLOR = "1";
  return env;
}

function banner(text) {
  const line = "=".repeat(Math.min(78, Math.max(20, text.length)));
  process.stdout.write(`\n${line}\n${text}\n${line}\n`);
}

const opts = parseArgs(process.argv.slice(2));
const targets = resolveTargets(opts.filters);
const services = await setUpServices(process.env, (line) => console.log(line));
for (const service of services) {
  if (service.verdict === "run") console.log(`services: ${service.line}`);
}
const results = [];
if (opts.deno) results.push(await runDeno(targets));
if (opts.bun) results.push(await runBun(targets));
if (opts.node) results.push(await runNode(targets));

let passed = 0;
let failed = 0;
let skipped = 0;
const lines = [""];
for (const r of results) {
  passed += r.passed;
  failed += r.failed;
  skipped += r.skipped;
  for (const n of r.notes) lines.push(`${r.name}: note: ${n}`);
}
// One line per missing service, saying what to install.
for (const service of services) {
  if (service.verdict !== "run") lines.push(`services: ${service.line}`);
}
for (const r of results) {
  lines.push(
    `${r.name}: ${r.passed} passed, ${r.failed} failed${r.skipped ? `, ${r.skipped} skipped` : ""}`,
  );
}
lines.push(`tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.stdout.write(lines.join("\n") + "\n");
process.exitCode = failed > 0 || results.some((r) => r.unreported) ? 1 : 0;
