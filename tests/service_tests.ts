/**
 * How a test that needs a service (redis-server, chromium) is declared, by the one rule of
 * scripts/services.mjs: it runs when the service is found; when it is missing it is skipped
 * (counted as skipped by Deno, Bun and Node.js), except under `CI=true`, where it fails saying
 * what to install. Installing is the test command's job (scripts/test.mjs), before any test runs.
 */

import process from "node:process";
import * as nodeTest from "node:test";
import {
  installCommand,
  isCI,
  locateService,
  missingReason,
  type ServiceName,
  serviceVerdict,
} from "../scripts/services.mjs";
import { it as checkedIt } from "./timer_leaks.ts";

export type { ServiceName };

/** Declares one test, as `it` does. */
export type TestDeclaration = (name: string, body: () => unknown) => void;

/** The tests that need one service. */
export interface ServiceTests {
  /** The service's executable, when it was found (only then do the tests run). */
  readonly executable: string | undefined;
  /** `it` for a test that needs the service. */
  readonly it: TestDeclaration;
}

/** The tests that need `service`, declared by the rule (the environment is read once, here). */
export function testsNeeding(
  service: ServiceName,
  env: Record<string, string | undefined> = process.env,
): ServiceTests {
  const executable = locateService(service, env);
  const verdict = serviceVerdict({
    found: executable !== undefined,
    canInstall: false,
    ci: isCI(env),
  });
  if (verdict === "run") return { executable, it: checkedIt };
  const reason = missingReason(service, env);
  if (verdict === "fail") {
    const message = `${reason}: CI=true needs every service; install it: ${
      installCommand(service)
    }`;
    return {
      executable,
      it: (name) =>
        checkedIt(name, () => {
          throw new Error(message);
        }),
    };
  }
  // The reason goes in the name: Bun and Deno show no skip reason.
  return { executable, it: (name) => nodeTest.it.skip(`${name} (skipped: ${reason})`, () => {}) };
}
