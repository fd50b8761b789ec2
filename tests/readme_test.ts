/**
 * README's TypeScript examples type-check against the library, under the repository's strict
 * compiler options: each ```ts block becomes a module (its `jsr:@circuit/breaker` imports pointed
 * at this checkout) and `deno check` runs on them all. The names README leaves to the reader (a
 * `query` function, a `request`, an existing `breaker`, ...) are declared in `PLACEHOLDERS`; a
 * block without imports gets the library's public names. Blocks importing Bun's own module are
 * left out (Deno has no types for "bun"); `tests/examples_test.ts` runs the Bun examples.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as library from "../mod.ts";
import { describe, it } from "./timer_leaks.ts";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const DENO = path.join(
  ROOT,
  "node_modules",
  ".bin",
  process.platform === "win32" ? "deno.cmd" : "deno",
);

const ENTRY_POINTS: Record<string, string> = {
  "jsr:@circuit/breaker/otel": "src/otel.ts",
  "jsr:@circuit/breaker/redis": "src/redis_store.ts",
  "jsr:@circuit/breaker/deno-kv": "src/deno_kv_store.ts",
  "jsr:@circuit/breaker/core": "src/core/mod.ts",
  "jsr:@circuit/breaker": "mod.ts",
};

/** The names README's examples leave to the reader, and their types. */
const PLACEHOLDERS: Record<string, string> = {
  query: "(sql: string, options?: { signal?: AbortSignal }) => Promise<unknown[]>",
  cursor: "(sql: string, options?: { signal?: AbortSignal }) => AsyncIterable<unknown>",
  sql: "string",
  text: "string",
  request: "Request",
  LLM_URL: "string",
  db: "PlaceholderBreaker",
  breaker: "PlaceholderBreaker",
  registry: "PlaceholderRegistry",
  meter: 'import("@opentelemetry/api").Meter',
  meterProvider: 'import("@opentelemetry/api").MeterProvider',
};

/** Declarations of the placeholders `code` uses and does not declare itself. */
function placeholders(code: string, mod: string): string {
  const lines = [
    `import type { Breaker as PlaceholderBreaker, BreakerRegistry as PlaceholderRegistry } from "${mod}";`,
  ];
  for (const [name, type] of Object.entries(PLACEHOLDERS)) {
    const declared = new RegExp(`\\b(const|let|var|function|class)\\s+${name}\\b`).test(code);
    if (!declared && new RegExp(`\\b${name}\\b`).test(code)) {
      lines.push(`declare const ${name}: ${type};`);
    }
  }
  return lines.join("\n");
}

/** The ```ts blocks of README.md, with the line each starts on. */
function tsBlocks(markdown: string): { line: number; code: string }[] {
  const blocks: { line: number; code: string }[] = [];
  const fence = /^```ts\n([\s\S]*?)^```/gm;
  for (const match of markdown.matchAll(fence)) {
    const line = markdown.slice(0, match.index).split("\n").length + 1;
    blocks.push({ line, code: match[1] ?? "" });
  }
  return blocks;
}

describe("README", () => {
  it("README's TypeScript examples type-check against the library", () => {
    const markdown = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const blocks = tsBlocks(markdown).filter((block) => !/from "bun"/.test(block.code));
    assert.ok(blocks.length >= 15, `found only ${blocks.length} ts blocks in README.md`);
    const directory = fs.mkdtempSync(path.join(os.tmpdir(), "readme-check-"));
    try {
      const mod = pathToFileURL(path.join(ROOT, "mod.ts")).href;
      const publicNames = Object.keys(library).join(", ");
      const files = blocks.map((block) => {
        let code = block.code;
        for (const [specifier, file] of Object.entries(ENTRY_POINTS)) {
          code = code.replaceAll(
            `"${specifier}"`,
            `"${pathToFileURL(path.join(ROOT, file)).href}"`,
          );
        }
        const imports = /^import /m.test(code) ? "" : `import { ${publicNames} } from "${mod}";\n`;
        const file = path.join(directory, `readme_line_${block.line}.ts`);
        fs.writeFileSync(file, `${imports}${placeholders(code, mod)}\n${code}\nexport {};\n`);
        return file;
      });
      const result = spawnSync(
        DENO,
        ["check", "--quiet", "--unstable-kv", `--config=${path.join(ROOT, "deno.json")}`, ...files],
        { cwd: ROOT, encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } },
      );
      assert.equal(
        result.status,
        0,
        `deno check failed (file readme_line_N.ts is the block starting on README line N):\n${result.stderr}${result.stdout}`,
      );
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });
});
