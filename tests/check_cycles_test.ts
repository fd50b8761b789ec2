import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../scripts/check_cycles.mjs", import.meta.url));
// Node.js from npm (the `node` devDependency), as the CI step runs it; else the one on PATH.
const LOCAL_NODE = fileURLToPath(new URL("../node_modules/.bin/node", import.meta.url));
const NODE = existsSync(LOCAL_NODE) ? LOCAL_NODE : "node";

/** Runs the cycle check on a project made of `files` (deno.json's exports: mod.ts). */
function checkProject(files: Record<string, string>): { status: number | null; out: string } {
  const root = mkdtempSync(join(tmpdir(), "cycles-"));
  try {
    writeFileSync(join(root, "deno.json"), JSON.stringify({ exports: { ".": "./mod.ts" } }));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(root, name), text);
    const run = spawnSync(NODE, [SCRIPT, root], { encoding: "utf8" });
    return { status: run.status, out: run.stdout + run.stderr };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describe("scripts/check_cycles.mjs", () => {
  it("fails on modules that load each other at run time", () => {
    const { status, out } = checkProject({
      "mod.ts": 'export { a } from "./a.ts";\n',
      "a.ts": 'import { b } from "./b.ts";\nexport const a = () => b;\n',
      "b.ts": 'import {\n  a,\n} from "./a.ts";\nexport const b = () => a;\n',
    });
    assert.equal(status, 1, out);
    assert.match(out, /import cycle \(not allowed\): a\.ts -> b\.ts/);
  });

  it("passes imports that load nothing at run time (type-only)", () => {
    const { status, out } = checkProject({
      "mod.ts": 'export { a } from "./a.ts";\n',
      "a.ts": 'import { b } from "./b.ts";\nexport const a = () => b;\n',
      "b.ts": 'import type { a } from "./a.ts";\nimport { type a as c } from "./a.ts";\n' +
        "export const b = (x?: typeof a, y?: typeof c) => [x, y];\n",
    });
    assert.equal(status, 0, out);
    assert.match(out, /import cycles: 0 among 3 modules/);
  });
});
