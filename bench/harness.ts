/**
 * A small timing harness that runs unchanged on Deno and on Bun (no `Deno.bench`, no mitata):
 * cases of a group are calibrated, warmed up, then run round-robin (interleaved, with a rotating
 * start) for several rounds; each case's result is the median ns/op over the rounds, so ratios
 * between cases of one group are taken in the same run, under the same conditions.
 *
 * @module
 */

import process from "node:process";

/** One benchmarked operation. */
export interface Case {
  /** Shown in the tables; other code refers to a case by this name. */
  readonly name: string;
  /**
   * Runs the operation `n` times (sequentially; an async case awaits each one before the next).
   * Each case should be its own function literal so that the engine specializes it on its own.
   */
  readonly run: (n: number) => void | Promise<void>;
  /** Operations per iteration of `run` (e.g. 1000 for a batch of 1000 concurrent calls). */
  readonly opsPerIteration?: number | undefined;
  /** Untimed work before each sample (e.g. a fresh breaker). */
  readonly beforeSample?: (() => void) | undefined;
}

/** A case's measurements. */
export interface CaseResult {
  /** The case's name. */
  readonly name: string;
  /** Median ns per operation over the rounds. */
  readonly median: number;
  /** 25th percentile, ns/op. */
  readonly p25: number;
  /** 75th percentile, ns/op. */
  readonly p75: number;
  /** Iterations of `run` per sample. */
  readonly iterations: number;
  /** Every sample, ns/op, in round order. */
  readonly samples: readonly number[];
}

/** How a group is run. */
export interface GroupOptions {
  /** Timed rounds. */
  readonly rounds: number;
  /** Untimed rounds after calibration. */
  readonly warmup: number;
  /** Each sample lasts at least about this long (calibrated once per case). */
  readonly sampleMs: number;
}

/** Sorts a copy and returns the value at quantile `q` (linear interpolation). */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const position = (sorted.length - 1) * q;
  const low = Math.floor(position);
  const high = Math.ceil(position);
  const a = sorted[low] as number;
  const b = sorted[high] as number;
  return a + (b - a) * (position - low);
}

/** The median. */
export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

async function timeOnce(c: Case, iterations: number): Promise<number> {
  c.beforeSample?.();
  const start = performance.now();
  const result = c.run(iterations);
  if (result !== undefined) await result;
  return performance.now() - start;
}

/** Grows n until one sample takes `sampleMs` (this also warms the case up). */
async function calibrate(c: Case, sampleMs: number): Promise<number> {
  let n = 1;
  for (;;) {
    const ms = await timeOnce(c, n);
    if (ms >= sampleMs || n >= 1 << 26) {
      // Aim a little above sampleMs from the last measurement.
      return Math.max(1, Math.ceil(n * (sampleMs / Math.max(ms, 1e-3))));
    }
    n *= ms < sampleMs / 16 ? 8 : 2;
  }
}

/**
 * Runs a group of cases: calibrates each to `sampleMs`, runs `warmup` untimed rounds, then
 * `rounds` timed rounds, interleaving the cases within each round (the starting case rotates).
 */
export async function runGroup(
  cases: readonly Case[],
  options: GroupOptions,
): Promise<CaseResult[]> {
  const iterations: number[] = [];
  for (const c of cases) {
    // Twice, keeping the larger count: one stall (a collection, another process) during a
    // calibration would otherwise leave the case timed one operation per sample.
    iterations.push(
      Math.max(await calibrate(c, options.sampleMs), await calibrate(c, options.sampleMs)),
    );
  }
  const samples: number[][] = cases.map(() => []);
  const total = options.warmup + options.rounds;
  for (let round = 0; round < total; round++) {
    for (let k = 0; k < cases.length; k++) {
      const index = (k + round) % cases.length;
      const c = cases[index] as Case;
      const n = iterations[index] as number;
      const ms = await timeOnce(c, n);
      if (round >= options.warmup) {
        (samples[index] as number[]).push((ms * 1e6) / (n * (c.opsPerIteration ?? 1)));
      }
    }
  }
  return cases.map((c, i) => caseResult(c.name, samples[i] as number[], iterations[i] as number));
}

/** A case's result from its samples (ns/op, in round order). */
export function caseResult(name: string, samples: number[], iterations: number): CaseResult {
  return {
    name,
    median: median(samples),
    p25: quantile(samples, 0.25),
    p75: quantile(samples, 0.75),
    iterations,
    samples,
  };
}

const globals = globalThis as {
  gc?: () => void;
  Bun?: { gc(force: boolean): void; version: string; revision: string };
};

/** Runs a full garbage collection if the runtime lets us (Deno with --expose-gc, Bun). */
export function collectGarbage(): void {
  for (let i = 0; i < 3; i++) {
    globals.gc?.();
    globals.Bun?.gc(true);
  }
}

/** Whether `collectGarbage()` can actually collect. */
export function canCollectGarbage(): boolean {
  return typeof globals.gc === "function" || globals.Bun !== undefined;
}

/** The heap in use, in bytes. */
export function heapUsed(): number {
  return process.memoryUsage().heapUsed;
}

/**
 * Heap bytes per object: creates `count` objects held in a preallocated array and divides the
 * heap's growth (after full collections) by `count`. Returns the objects so the caller can
 * dispose of them.
 */
export function heapPerObject<T>(
  count: number,
  create: (i: number) => T,
): { bytes: number; objects: T[] } {
  const objects: T[] = new Array(count).fill(undefined);
  collectGarbage();
  const before = heapUsed();
  for (let i = 0; i < count; i++) objects[i] = create(i);
  collectGarbage();
  const after = heapUsed();
  return { bytes: (after - before) / count, objects };
}

/** CPU time (user + system) in ms used while `wait` runs, and the wall time. */
export async function cpuDuring(
  wait: () => Promise<void>,
): Promise<{ cpuMs: number; wallMs: number }> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  await wait();
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { cpuMs: (used.user + used.system) / 1000, wallMs };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Which runtime this is, with versions. */
export function runtimeInfo(): { runtime: "deno" | "bun" | "other"; versions: string } {
  if (globals.Bun !== undefined) {
    return {
      runtime: "bun",
      versions: `Bun ${globals.Bun.version} (${globals.Bun.revision.slice(0, 9)}), JavaScriptCore`,
    };
  }
  if (typeof Deno !== "undefined") {
    const v = Deno.version;
    return { runtime: "deno", versions: `Deno ${v.deno}, V8 ${v.v8}, TypeScript ${v.typescript}` };
  }
  return { runtime: "other", versions: `unknown (${process.version})` };
}

/** Formats ns/op for a table. */
export function formatNs(ns: number): string {
  if (!Number.isFinite(ns)) return "-";
  if (ns >= 100_000) return `${(ns / 1000).toFixed(0)} µs`;
  if (ns >= 10_000) return `${(ns / 1000).toFixed(1)} µs`;
  if (ns >= 1000) return `${(ns / 1000).toFixed(2)} µs`;
  if (ns >= 100) return ns.toFixed(0);
  if (ns >= 10) return ns.toFixed(1);
  return ns.toFixed(2);
}

/** Formats a ratio for a table. */
export function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return "-";
  return ratio >= 100
    ? `${ratio.toFixed(0)}x`
    : ratio >= 10
    ? `${ratio.toFixed(1)}x`
    : `${ratio.toFixed(2)}x`;
}

/** Formats a Markdown table. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const lines = [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ];
  return lines.join("\n");
}
