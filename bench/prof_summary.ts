/**
 * Summarizes a V8 `.cpuprofile` (from `deno run --cpu-prof` or `bun --cpu-prof`): the top
 * functions by self time, with their file and line, and the share of samples in the library.
 *
 *   deno run --allow-all bench/prof_summary.ts /tmp/prof/<file>.cpuprofile [top]
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
    readonly columnNumber: number;
  };
  readonly hitCount?: number;
  readonly children?: readonly number[];
  readonly positionTicks?: readonly { readonly line: number; readonly ticks: number }[];
}

interface Profile {
  readonly nodes: readonly ProfileNode[];
  readonly samples?: readonly number[];
}

const path = process.argv[2];
if (path === undefined) throw new Error("usage: prof_summary.ts <file.cpuprofile> [top]");
const top = Number(process.argv[3] ?? 25);
const profile = JSON.parse(readFileSync(path, "utf8")) as Profile;

const hits = new Map<number, number>();
for (const node of profile.nodes) hits.set(node.id, node.hitCount ?? 0);
if (profile.samples !== undefined && [...hits.values()].every((h) => h === 0)) {
  for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
}

interface Entry {
  self: number;
  lines: Map<number, number>;
}
const byFunction = new Map<string, Entry>();
let total = 0;
for (const node of profile.nodes) {
  const self = hits.get(node.id) ?? 0;
  total += self;
  if (self === 0) continue;
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url.replace(/^file:\/\/.*?\/(src|bench|mod\.ts|node_modules)/, "$1");
  const key = `${functionName || "(anonymous)"}  ${file || "(native)"}:${lineNumber + 1}`;
  const entry = byFunction.get(key) ?? { self: 0, lines: new Map() };
  entry.self += self;
  for (const tick of node.positionTicks ?? []) {
    entry.lines.set(tick.line, (entry.lines.get(tick.line) ?? 0) + tick.ticks);
  }
  byFunction.set(key, entry);
}

const sorted = [...byFunction.entries()].sort((a, b) => b[1].self - a[1].self);
let library = 0;
for (const [key, entry] of sorted) if (/\s(src\/|mod\.ts)/.test(key)) library += entry.self;
console.log(`${total} samples; in src/: ${((library / total) * 100).toFixed(1)} %`);
console.log("self %   function  file:line  [hot lines: ticks]");
for (const [key, entry] of sorted.slice(0, top)) {
  const lines = [...entry.lines.entries()].sort((a, b) => b[1] - a[1]).slice(0, 4)
    .map(([line, ticks]) => `${line}:${ticks}`).join(" ");
  console.log(
    `${((entry.self / total) * 100).toFixed(1).padStart(5)}  ${key}${lines ? `  [${lines}]` : ""}`,
  );
}
