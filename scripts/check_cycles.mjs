#!/usr/bin/env node
// Fails when the published modules load each other in a cycle at run time.
//
//   node scripts/check_cycles.mjs [root]      (root: the project, by default this one)
//
// It follows every relative `import`/`export ... from` of mod.ts and the files it reaches,
// leaving out those that load nothing at run time (`import type`, or braces holding only
// `type` names: Deno, Bun and Node.js's type stripping drop them, and nothing else is dropped:
// an import without `type` is loaded even when only its types are used). A cycle makes the
// order in which modules run depend on which one a program imports first, and keeps a bundler
// from leaving out the modules a program does not use. ALLOWED_CYCLES lists the ones we accept.
//
// Plain ESM JavaScript for Node >= 20, no dependencies.

import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(
  process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), ".."),
);
const ENTRIES = Object.values(
  JSON.parse(fs.readFileSync(path.join(ROOT, "deno.json"), "utf8")).exports,
).map((entry) => path.join(ROOT, entry));

/**
 * Cycles we accept, each as its files sorted and joined by " -> ". One: a named breaker joins
 * the default registry as it is made, and a registry makes breakers (`registry.breaker()`).
 */
const ALLOWED_CYCLES = new Set(["src/breaker.ts -> src/registry.ts"]);

const STATEMENT = /^(?:import|export)\s+(type\s+)?(?:([\s\S]*?)\s+from\s+)?"(\.[^"]+)"/gm;

/** The relative modules `file` loads at run time. */
function runtimeImports(file) {
  const source = fs.readFileSync(file, "utf8");
  const found = [];
  for (const [, typeOnly, clause, specifier] of source.matchAll(STATEMENT)) {
    if (typeOnly) continue;
    const braces = clause?.match(/^\{([\s\S]*)\}$/);
    if (braces) {
      const names = braces[1].split(",").map((name) => name.trim()).filter(Boolean);
      if (names.length > 0 && names.every((name) => name.startsWith("type "))) continue;
    }
    found.push(path.resolve(path.dirname(file), specifier));
  }
  return found;
}

const graph = new Map();
const pending = [...ENTRIES];
while (pending.length > 0) {
  const file = pending.pop();
  if (graph.has(file)) continue;
  const imports = runtimeImports(file);
  graph.set(file, imports);
  pending.push(...imports);
}

// Tarjan's strongly connected components: every component of more than one file is a cycle.
let counter = 0;
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const components = [];
function visit(file) {
  index.set(file, counter);
  low.set(file, counter);
  counter++;
  stack.push(file);
  onStack.add(file);
  for (const next of graph.get(file) ?? []) {
    if (!index.has(next)) {
      visit(next);
      low.set(file, Math.min(low.get(file), low.get(next)));
    } else if (onStack.has(next)) {
      low.set(file, Math.min(low.get(file), index.get(next)));
    }
  }
  if (low.get(file) !== index.get(file)) return;
  const component = [];
  let member;
  do {
    member = stack.pop();
    onStack.delete(member);
    component.push(path.relative(ROOT, member));
  } while (member !== file);
  if (component.length > 1) components.push(component.sort());
}
for (const file of graph.keys()) if (!index.has(file)) visit(file);

const refused = components.filter((component) => !ALLOWED_CYCLES.has(component.join(" -> ")));
for (const component of components) {
  const verdict = refused.includes(component) ? "not allowed" : "allowed";
  console.log(`import cycle (${verdict}): ${component.join(" -> ")}`);
}
console.log(
  `import cycles: ${components.length} among ${graph.size} modules, ${refused.length} not allowed`,
);
process.exit(refused.length === 0 ? 0 : 1);
