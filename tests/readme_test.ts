/**
 * README's TypeScript examples type-check against the library, under the repository's strict
 * compiler options: each ```ts block becomes a module (its `@circuit/breaker` imports pointed
 * at this checkout) and `deno check` runs on them all. The names README leaves to the reader (a
 * `query` function, a `request`, an existing `breaker`, ...) are declared in `PLACEHOLDERS`; a
 * block without imports gets the library's public names. Blocks importing Bun's own module are
 * left out (Deno has no types for "bun"); `tests/examples_test.ts` runs the Bun examples. The
 * modules are written in the checkout (in a hidden folder) so that npm imports such as "hono"
 * resolve from its node_modules.
 */

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
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
  "@circuit/breaker/otel": "src/otel.ts",
  "@circuit/breaker/redis": "src/redis_store.ts",
  "@circuit/breaker/deno-kv": "src/deno_kv_store.ts",
  "@circuit/breaker/core": "src/core/mod.ts",
  "@circuit/breaker": "mod.ts",
};

/** The names README's examples leave to the reader, and their types. */
const PLACEHOLDERS: Record<string, string> = {
  query: "(sql: string, options?: { signal?: AbortSignal }) => Promise<unknown[]>",
  cursor: "(sql: string, options?: { signal?: AbortSignal }) => AsyncIterable<unknown>",
  sql: "string",
  text: "string",
  request: "Request",
  callerSignal: "AbortSignal",
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
    const directory = fs.mkdtempSync(path.join(ROOT, ".readme-check-"));
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

  it("README's TypeScript examples that import pass deno lint as written (no unused imports)", () => {
    const markdown = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const blocks = tsBlocks(markdown).filter((block) => /^import /m.test(block.code));
    assert.ok(blocks.length >= 8, `found only ${blocks.length} ts blocks with imports`);
    const directory = fs.mkdtempSync(path.join(ROOT, ".readme-lint-"));
    try {
      const files = blocks.map((block) => {
        // The names left to the reader, declared without a type (lint reads no types).
        const declared = Object.keys(PLACEHOLDERS)
          .filter((name) => new RegExp(`\\b${name}\\b`).test(block.code))
          .filter((name) =>
            !new RegExp(`\\b(const|let|var|function|class)\\s+${name}\\b`).test(block.code)
          )
          .map((name) => `declare const ${name}: never;`);
        const file = path.join(directory, `readme_line_${block.line}.ts`);
        fs.writeFileSync(file, `${block.code}\n${declared.join("\n")}\nexport {};\n`);
        return file;
      });
      const result = spawnSync(DENO, ["lint", "--no-config", "--json", ...files], {
        cwd: directory,
        encoding: "utf8",
        env: { ...process.env, NO_COLOR: "1" },
      });
      const report = JSON.parse(result.stdout) as {
        diagnostics: {
          filename: string;
          range: { start: { line: number } };
          code: string;
          message: string;
        }[];
        errors: unknown[];
      };
      assert.deepEqual(report.errors, []);
      // A snippet may show a value it does not use; an import it does not use is a mistake.
      const problems = report.diagnostics.filter((diagnostic) => {
        if (diagnostic.code !== "no-unused-vars") return true;
        const file = diagnostic.filename.startsWith("file:")
          ? fileURLToPath(diagnostic.filename)
          : diagnostic.filename;
        const lines = fs.readFileSync(file, "utf8").split("\n");
        return /^\s*(import\b|[\w$]+,$|\} from )/.test(
          lines[diagnostic.range.start.line - 1] ?? "",
        );
      }).map((diagnostic) =>
        `${
          path.basename(diagnostic.filename)
        }:${diagnostic.range.start.line}: ${diagnostic.code}: ${diagnostic.message}`
      );
      assert.deepEqual(problems, [], "README line N is in file readme_line_N.ts");
    } finally {
      fs.rmSync(directory, { recursive: true, force: true });
    }
  });
});
