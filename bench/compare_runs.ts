/**
 * Compares the ratios of `bench/run.ts` outputs taken before and after a change: for each
 * group and case, the median over the runs of its ratio to the group's baseline, before and
 * after, and their quotient. Ratios within one run are what count on a noisy machine; runs of
 * the two versions should alternate.
 *
 *   node bench/compare_runs.ts before-1.txt before-2.txt -- after-1.txt after-2.txt
 *
 * @module
 */

import { readFileSync } from "node:fs";
import process from "node:process";
import { median } from "./harness.ts";

/** Ratio of each `group / case` in one output of `bench/run.ts`. */
function ratiosOf(file: string): Map<string, number> {
  const ratios = new Map<string, number>();
  let group = "";
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (line.startsWith("### ")) group = line.slice(4).trim();
    const cells = line.split("|").map((cell) => cell.trim());
    // | case | median | p25-p75 | ratio | ops |
    if (cells.length !== 7 || group === "verdicts") continue;
    const ratio = /^([\d.]+)x$/.exec(cells[4] ?? "")?.[1];
    if (ratio !== undefined) ratios.set(`${group} / ${cells[1]}`, Number(ratio));
  }
  return ratios;
}

function mediansOf(files: readonly string[]): Map<string, number> {
  const all = new Map<string, number[]>();
  for (const file of files) {
    for (const [key, ratio] of ratiosOf(file)) all.set(key, [...(all.get(key) ?? []), ratio]);
  }
  return new Map([...all].map(([key, values]) => [key, median(values)]));
}

const args = process.argv.slice(2);
const split = args.indexOf("--");
if (split <= 0 || split === args.length - 1) {
  console.error("usage: node bench/compare_runs.ts before... -- after...");
  process.exit(2);
}
const before = mediansOf(args.slice(0, split));
const after = mediansOf(args.slice(split + 1));
console.log("| group / case | before | after | after / before |");
console.log("|---|---:|---:|---:|");
for (const [key, old] of before) {
  const now = after.get(key);
  if (now === undefined || old === 1) continue;
  console.log(`| ${key} | ${old.toFixed(2)}x | ${now.toFixed(2)}x | ${(now / old).toFixed(2)} |`);
}
