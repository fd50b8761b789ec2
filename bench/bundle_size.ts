/**
 * What a program pays in bundle size for one import: each entry below is bundled and minified
 * with esbuild (`--bundle --minify --format=esm --platform=neutral`), and its size printed raw
 * and gzipped, beside cockatiel's and opossum's breakers.
 *
 *   node bench/bundle_size.ts        (or deno run -A, or bun)
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ESBUILD = join(ROOT, "node_modules", ".bin", "esbuild");
const MOD = join(ROOT, "mod.ts");

/** Programs that use one thing each, as a user would write them. */
const ENTRIES: Record<string, string> = {
  "ours: import { circuit }": `import { circuit } from ${JSON.stringify(MOD)};
export const get = circuit(async (id) => id);`,
  "ours: import { Breaker }": `import { Breaker } from ${JSON.stringify(MOD)};
export const db = new Breaker({ name: "db" });`,
  "ours: import { circuitFetch }": `import { circuitFetch } from ${JSON.stringify(MOD)};
export const guardedFetch = circuitFetch();`,
  "cockatiel: circuitBreaker(ConsecutiveBreaker)":
    `import { circuitBreaker, ConsecutiveBreaker, handleAll } from "cockatiel";
export const policy = circuitBreaker(handleAll, { halfOpenAfter: 10_000, breaker: new ConsecutiveBreaker(5) });`,
  "opossum: new CircuitBreaker": `import CircuitBreaker from "opossum";
export const breaker = new CircuitBreaker(async (id) => id);`,
};

const directory = mkdtempSync(join(tmpdir(), "bundle-size-"));
try {
  console.log("| program | minified | gzip |");
  console.log("|---|---:|---:|");
  for (const [name, source] of Object.entries(ENTRIES)) {
    const entry = join(ROOT, "bench", `.bundle_entry_${Object.keys(ENTRIES).indexOf(name)}.ts`);
    const out = join(directory, "out.js");
    writeFileSync(entry, source);
    try {
      const platform = name.startsWith("opossum") ? "node" : "neutral";
      execFileSync(ESBUILD, [
        entry,
        "--bundle",
        "--minify",
        "--format=esm",
        `--platform=${platform}`,
        "--main-fields=module,main",
        `--outfile=${out}`,
        "--log-level=error",
      ]);
    } finally {
      rmSync(entry);
    }
    const bundle = readFileSync(out);
    const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;
    console.log(`| ${name} | ${kb(bundle.length)} | ${kb(gzipSync(bundle).length)} |`);
  }
} finally {
  rmSync(directory, { recursive: true, force: true });
}
