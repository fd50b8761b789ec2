import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import process from "node:process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { keepRejection, refOutcomes } from "./failure_refs.ts";

/** Runs bench/failure_refs_drop.ts for `guard` in a new process of this runtime. */
function dropIn(guard: string): Promise<{ code: number; output: string }> {
  const script = fileURLToPath(new URL("failure_refs_drop.ts", import.meta.url));
  const runtimeArgs = "Bun" in globalThis ? ["run"] : "Deno" in globalThis ? ["run", "-A"] : [];
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...runtimeArgs, script, guard],
      { timeout: 30_000 },
      (e, out, err) => {
        resolve({
          code: e === null ? 0 : typeof e.code === "number" ? e.code : 1,
          output: out + err,
        });
      },
    );
  });
}

describe("issue 21's async failure references", () => {
  it("keepRejection() rejects with fn's error and counts it", async () => {
    const error = new Error("down");
    const before = refOutcomes.failures;
    await assert.rejects(keepRejection(() => Promise.reject(error)), (thrown) => thrown === error);
    assert.equal(refOutcomes.failures, before + 1);
    assert.equal(await keepRejection(() => Promise.resolve(1)), 1);
  });

  it("keepRejection() leaves a dropped rejection reported", async () => {
    const { code, output } = await dropIn("keepRejection");
    assert.notEqual(code, 0, output);
    assert.match(output, /dropped rejection/);
  });

  it("observe() leaves a dropped rejection unreported (why it is no reference of ours)", async () => {
    const { code, output } = await dropIn("observe");
    assert.equal(code, 0, output);
    assert.match(output, /nothing reported/);
  });
});
