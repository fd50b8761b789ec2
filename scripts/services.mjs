#!/usr/bin/env node
// The services some tests need besides the npm packages, and the one rule every test that needs
// one follows. scripts/test.mjs (`npm test`) sets them up before the runners start,
// tests/service_tests.ts declares those tests by it, and .ci/run calls this file as its first
// step: one set-up, one rule.
//
//   the service is found                 -> its tests run
//   missing, and the machine can install -> the set-up installs it with apt-get (as root, or with
//     it (root or sudo without a            sudo without a password), then its tests run;
//     password, and apt-get)                redis-server is also started on 127.0.0.1:6379
//   missing, cannot be installed         -> its tests are skipped, counted as skipped, and the
//                                           test command prints one line saying what to install
//   missing under CI=true                -> its tests fail
//
//   node scripts/services.mjs   the set-up alone; exits 1 when a service is missing under CI=true
//
// redis-server and promtool (Debian's package prometheus, for the Prometheus text's check) are
// looked up on PATH (the tests start private Redis servers from it); chromium is Debian's
// /usr/bin/chromium. For the tests of this file, which cannot uninstall anything:
//   CIRCUIT_TEST_CHROMIUM=<path>  the Chromium to look for instead of /usr/bin/chromium
//   CIRCUIT_TEST_NO_INSTALL=1     never install, as on a machine without root or sudo
// (and a PATH without redis-server or promtool hides it).
//
// Plain ESM JavaScript for Node >= 20, no dependencies; the types are in JSDoc, which the tests
// importing this file read, and which the lint rule below does not.
// deno-lint-ignore-file explicit-module-boundary-types

import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { Socket } from "node:net";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** @typedef {"redis-server" | "chromium" | "promtool"} ServiceName */
/** @typedef {"run" | "install" | "skip" | "fail"} ServiceVerdict */
/** @typedef {Record<string, string | undefined>} Environment */

/** @type {readonly ServiceName[]} */
export const SERVICES = ["redis-server", "chromium", "promtool"];

/** The Debian package of each service. */
const PACKAGES = { "redis-server": "redis-server", chromium: "chromium", promtool: "prometheus" };

const CHROMIUM = "/usr/bin/chromium";
const REDIS_PORT = 6379;

/**
 * What to do about a service: the one rule.
 *
 * @param {{ found: boolean, canInstall: boolean, ci: boolean }} facts
 * @returns {ServiceVerdict}
 */
export function serviceVerdict({ found, canInstall, ci }) {
  if (found) return "run";
  if (canInstall) return "install";
  return ci ? "fail" : "skip";
}

/**
 * Whether the environment is a CI run, where a missing service fails its tests.
 *
 * @param {Environment} env
 * @returns {boolean}
 */
export function isCI(env) {
  return env.CI === "true";
}

/**
 * An executable file named `name` in a directory of `pathVariable`, or undefined.
 *
 * @param {string} name
 * @param {string | undefined} pathVariable
 * @returns {string | undefined}
 */
export function findOnPath(name, pathVariable) {
  for (const directory of (pathVariable ?? "").split(path.delimiter)) {
    if (directory === "") continue;
    const candidate = path.join(directory, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * @param {string} file
 * @returns {boolean}
 */
function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The executable of a service, or undefined when it is missing.
 *
 * @param {ServiceName} service
 * @param {Environment} env
 * @returns {string | undefined}
 */
export function locateService(service, env) {
  if (service !== "chromium") return findOnPath(service, env.PATH);
  const chromium = env.CIRCUIT_TEST_CHROMIUM ?? CHROMIUM;
  return isExecutable(chromium) ? chromium : undefined;
}

/**
 * Why a service counts as missing, e.g. `redis-server was not found on PATH`.
 *
 * @param {ServiceName} service
 * @param {Environment} env
 * @returns {string}
 */
export function missingReason(service, env) {
  if (service !== "chromium") return `${service} was not found on PATH`;
  return `${env.CIRCUIT_TEST_CHROMIUM ?? CHROMIUM} was not found`;
}

/**
 * The command that installs a service, for the line telling the user what to install.
 *
 * @param {ServiceName} service
 * @returns {string}
 */
export function installCommand(service) {
  return `sudo apt-get install ${PACKAGES[service]}`;
}

/**
 * How this machine may install packages: `"root"`, `"sudo"` (without a password), or undefined
 * when it cannot (no apt-get on PATH, neither root nor such sudo, or CIRCUIT_TEST_NO_INSTALL=1).
 *
 * @param {Environment} env
 * @param {number | undefined} uid the user id (undefined where there are none, on Windows)
 * @returns {"root" | "sudo" | undefined}
 */
export function installAccess(env, uid) {
  if (env.CIRCUIT_TEST_NO_INSTALL === "1") return undefined;
  if (findOnPath("apt-get", env.PATH) === undefined) return undefined;
  if (uid === 0) return "root";
  const sudo = findOnPath("sudo", env.PATH);
  if (sudo === undefined) return undefined;
  // -n: fail at once rather than ask for a password.
  const probe = spawnSync(sudo, ["-n", "true"], { env, stdio: "ignore", timeout: 10_000 });
  return probe.status === 0 ? "sudo" : undefined;
}

/**
 * One service after the set-up: where it is, and what its tests do.
 *
 * @typedef {object} ServiceSetUp
 * @property {ServiceName} service
 * @property {string | undefined} executable
 * @property {ServiceVerdict} verdict "run", "skip" or "fail" (an install has been tried)
 * @property {string} line what the set-up found, or what to install (one line)
 */

/**
 * Finds each service and installs the missing ones where the machine allows, as the rule says.
 * Progress goes to `log`; the result says, per service, whether its tests run, skip or fail.
 *
 * @param {Environment} env
 * @param {(line: string) => void} log
 * @param {number | undefined} uid the user id, this process's by default
 * @returns {Promise<ServiceSetUp[]>}
 */
export async function setUpServices(env, log, uid = process.getuid?.()) {
  const ci = isCI(env);
  /** @type {"root" | "sudo" | undefined | null} null until needed: probing sudo takes time */
  let access = null;
  let aptUpdated = false;
  /** @type {ServiceSetUp[]} */
  const results = [];
  for (const service of SERVICES) {
    let executable = locateService(service, env);
    let attempted = false;
    if (executable === undefined && access === null) {
      access = installAccess(env, uid);
    }
    const verdict = serviceVerdict({ found: executable !== undefined, canInstall: !!access, ci });
    if (verdict === "install" && access) {
      attempted = true;
      log(`services: ${missingReason(service, env)}: installing ${PACKAGES[service]} (apt-get)`);
      if (!aptUpdated) aptUpdated = runAsRoot(access, ["apt-get", "update", "-qq"], env);
      if (aptUpdated) {
        runAsRoot(access, ["apt-get", "install", "-y", "-qq", PACKAGES[service]], env);
      }
      executable = locateService(service, env);
      if (executable !== undefined && service === "redis-server") {
        await startRedis(executable, log);
      }
    }
    // After an install, or none: what is still missing is skipped or fails, by the same rule.
    const outcome = serviceVerdict({ found: executable !== undefined, canInstall: false, ci });
    const reason = `${missingReason(service, env)}${
      attempted ? " (apt-get could not install it)" : ""
    }`;
    const install = installCommand(service);
    const line = outcome === "run"
      ? `${service}: ${executable}`
      : outcome === "fail"
      ? `${reason}: its tests fail under CI=true; install it: ${install}`
      : `${reason}: its tests are skipped; to run them, install it: ${install}`;
    results.push({ service, executable, verdict: outcome, line });
  }
  return results;
}

/**
 * Runs an apt-get command as root; whether it succeeded.
 *
 * @param {"root" | "sudo"} access
 * @param {string[]} command
 * @param {Environment} env
 * @returns {boolean}
 */
function runAsRoot(access, command, env) {
  // sudo does not pass the caller's environment on: env sets DEBIAN_FRONTEND there.
  const [program, ...args] = access === "root"
    ? command
    : ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive", ...command];
  const result = spawnSync(/** @type {string} */ (program), args, {
    env: { ...env, DEBIAN_FRONTEND: "noninteractive" },
    stdio: ["ignore", "inherit", "inherit"],
    timeout: 900_000,
  });
  return result.status === 0;
}

/**
 * Starts a Redis server on 127.0.0.1:6379 for the examples and the README's commands, as the
 * package would under systemd, unless one answers there; the tests start private ones.
 *
 * @param {string} executable
 * @param {(line: string) => void} log
 * @returns {Promise<void>}
 */
async function startRedis(executable, log) {
  if (await answersPing(REDIS_PORT)) return;
  spawnSync(executable, [
    "--port",
    String(REDIS_PORT),
    "--bind",
    "127.0.0.1",
    "--daemonize",
    "yes",
    "--save",
    "",
    "--appendonly",
    "no",
  ], { stdio: "ignore", timeout: 10_000 });
  for (let i = 0; i < 50; i++) {
    if (await answersPing(REDIS_PORT)) {
      log(`services: redis-server answers on 127.0.0.1:${REDIS_PORT}`);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  log(`services: redis-server did not answer on 127.0.0.1:${REDIS_PORT} (the tests need none)`);
}

/**
 * Whether a server on 127.0.0.1:`port` answers PING with PONG within 1 s.
 *
 * @param {number} port
 * @returns {Promise<boolean>}
 */
function answersPing(port) {
  return new Promise((resolve) => {
    const socket = new Socket();
    let reply = "";
    /** @param {boolean} answered */
    const finish = (answered) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answered);
    };
    const timer = setTimeout(() => finish(false), 1_000);
    socket.once("error", () => finish(false));
    socket.on("data", (chunk) => {
      reply += String(chunk);
      if (reply.includes("\r\n")) finish(reply.startsWith("+PONG"));
    });
    socket.connect(port, "127.0.0.1", () => socket.write("PING\r\n"));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const results = await setUpServices(process.env, (line) => console.log(line));
  for (const result of results) console.log(`services: ${result.line}`);
  process.exitCode = results.some((result) => result.verdict === "fail") ? 1 : 0;
}
