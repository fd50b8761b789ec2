/**
 * What JavaScriptCore needs of a sync stream guard's `next()` to compile a consumer's loop over
 * it as it compiles the loop over the bare generator (issue 21, the sync stream guard on Bun).
 *
 * The least sync guard of `bench/stream.ts` costs about 1.5x-2x the bare loop on Bun because
 * JavaScriptCore inlines its `next()`, the generator's `next()` and the generator's body into
 * the consumer's loop, and then never allocates the `{ value, done }` results (object allocation
 * sinking). Each case below is that guard with one change; a change that stops either the
 * inlining or the sinking triples the cost per item. The cases, in order:
 *
 * - `least`: the least sync guard (`bench/stream.ts`'s `LeastSyncIteratorGuard`).
 * - `first-read`: the first read answered by a private method: a path taken once per stream,
 *   so its answer merges with the source's result, which then escapes.
 * - `result-out`: the end reported by a function that is not inlined and receives the result.
 * - `end-out`: the same function not receiving the result.
 * - `small-record`: the end recorded into a real breaker through small methods (as the sync
 *   guard did: `#completed` -> `#record` -> `recordOutcome` -> `hooks.succeed`): all of them
 *   inlined into `next()` (each under JavaScriptCore's limit of 170 bytecode units), which is
 *   then not inlined into the loop.
 * - `one-record`: the same recording in one method over that limit: not inlined; `next()` is.
 * - `ours`: `circuit(function*)`.
 *
 * Run with Bun only: `bun bench/stream_bisect.ts [--only=least,first-read,...] [--rounds=15]`
 * times the cases, each against the bare loop in the same rounds. The engine's decisions vary
 * from process to process (the least guard itself is inlined into the loop in under half
 * of them: then 3-5 ns per item, else 8-10), so `--sinking=8` counts, per case, the processes
 * (8 each, one case per process) in which JavaScriptCore sank the source's results in the
 * case's loop. By hand: `BUN_JSC_printEachDFGFTLInlineCall=1` shows what is inlined where,
 * `BUN_JSC_verboseObjectAllocationSinking=1` what is sunk, `BUN_JSC_reportCompileTimes=1` each
 * function's bytecode cost.
 *
 * @module
 */

import { spawnSync } from "node:child_process";
import process from "node:process";
import { Breaker, circuit } from "../mod.ts";
import { type CallHooks, callHooks, type Permit } from "../src/call_protocol.ts";
import { streamDurationMs } from "../src/core/stream_duration.ts";
import { type Case, runGroup, runtimeInfo } from "./harness.ts";

if (runtimeInfo().runtime !== "bun") {
  throw new Error("bench/stream_bisect.ts is about JavaScriptCore: run it with Bun");
}
const jsc = await import("bun:jsc" as string) as { noInline(fn: unknown): void };

const ITEMS = 1000;
const SUM = (ITEMS * (ITEMS - 1)) / 2;

function* numbersSync(n: number): Generator<number, void, undefined> {
  for (let i = 0; i < n; i++) yield i;
}

function expectSum(acc: number): void {
  if (acc !== SUM) throw new Error(`Benchmark sanity check failed: stream sum ${acc} != ${SUM}`);
}

const ended = { successes: 0, failures: 0, results: 0 };

function reportEnd(failed: boolean): void {
  if (failed) ended.failures++;
  else ended.successes++;
}

/** Not inlined; receives the source's last result. */
const reportResult = (result: IteratorResult<number>): void => {
  if (result.done) ended.results++;
};
jsc.noInline(reportResult);

/** Not inlined; receives nothing. */
const reportEndNotInlined = (): void => {
  ended.successes++;
};
jsc.noInline(reportEndNotInlined);

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });
const IteratorBase = (typeof Iterator === "function" ? Iterator : Object) as unknown as new () =>
object;

class Least extends IteratorBase {
  #open: () => Iterator<number>;
  #source: Iterator<number> | undefined;
  constructor(open: () => Iterator<number>) {
    super();
    this.#open = open;
  }
  [Symbol.iterator](): this {
    return this;
  }
  next(): IteratorResult<number> {
    const source = this.#source ??= this.#open();
    let result: IteratorResult<number>;
    try {
      result = source.next();
    } catch (error) {
      reportEnd(true);
      throw error;
    }
    if (result.done) reportEnd(false);
    return result;
  }
  return(): IteratorResult<number> {
    this.#source?.return?.();
    return DONE;
  }
}

class FirstRead extends IteratorBase {
  #open: () => Iterator<number>;
  #source: Iterator<number> | undefined;
  constructor(open: () => Iterator<number>) {
    super();
    this.#open = open;
  }
  [Symbol.iterator](): this {
    return this;
  }
  next(): IteratorResult<number> {
    const source = this.#source;
    let result: IteratorResult<number>;
    if (source === undefined) {
      result = this.#first();
    } else {
      try {
        result = source.next();
      } catch (error) {
        reportEnd(true);
        throw error;
      }
      if (result.done) reportEnd(false);
    }
    return result;
  }
  #first(): IteratorResult<number> {
    const source = this.#source = this.#open();
    return source.next();
  }
  return(): IteratorResult<number> {
    this.#source?.return?.();
    return DONE;
  }
}

class ResultOut extends IteratorBase {
  #open: () => Iterator<number>;
  #source: Iterator<number> | undefined;
  constructor(open: () => Iterator<number>) {
    super();
    this.#open = open;
  }
  [Symbol.iterator](): this {
    return this;
  }
  next(): IteratorResult<number> {
    const source = this.#source ??= this.#open();
    let result: IteratorResult<number>;
    try {
      result = source.next();
    } catch (error) {
      reportEnd(true);
      throw error;
    }
    if (result.done) reportResult(result);
    return result;
  }
  return(): IteratorResult<number> {
    this.#source?.return?.();
    return DONE;
  }
}

class EndOut extends IteratorBase {
  #open: () => Iterator<number>;
  #source: Iterator<number> | undefined;
  constructor(open: () => Iterator<number>) {
    super();
    this.#open = open;
  }
  [Symbol.iterator](): this {
    return this;
  }
  next(): IteratorResult<number> {
    const source = this.#source ??= this.#open();
    let result: IteratorResult<number>;
    try {
      result = source.next();
    } catch (error) {
      reportEnd(true);
      throw error;
    }
    if (result.done) reportEndNotInlined();
    return result;
  }
  return(): IteratorResult<number> {
    this.#source?.return?.();
    return DONE;
  }
}

/** The admission, not inlined (as ours' `#start`, too big to be). */
const admit = (hooks: CallHooks): Permit => {
  const permit = hooks.begin();
  if (permit instanceof Error) throw permit;
  return permit;
};
jsc.noInline(admit);

/** As `src/stream.ts` recorded a sync stream's outcome before: a module function. */
function recordOutcome(hooks: CallHooks, permit: Permit, kind: "success" | "error"): void {
  const durationMs = streamDurationMs(permit.start, undefined);
  if (kind === "success") hooks.succeed(permit, durationMs);
  else hooks.settleError(permit, undefined, durationMs);
}

class SmallRecord extends IteratorBase {
  #hooks: CallHooks;
  #open: () => Iterator<number>;
  #source: Iterator<number> | undefined;
  #permit: Permit | undefined;
  #recorded = false;
  constructor(hooks: CallHooks, open: () => Iterator<number>) {
    super();
    this.#hooks = hooks;
    this.#open = open;
  }
  [Symbol.iterator](): this {
    return this;
  }
  next(): IteratorResult<number> {
    if (this.#source === undefined) this.#start();
    const source = this.#source as Iterator<number>;
    let result: IteratorResult<number>;
    try {
      result = source.next();
    } catch (error) {
      this.#record("error");
      throw error;
    }
    if (result.done) this.#completed();
    return result;
  }
  #start(): void {
    this.#permit = admit(this.#hooks);
    this.#source = this.#open();
  }
  #completed(): void {
    this.#record("success");
  }
  #record(kind: "success" | "error"): void {
    if (this.#recorded) return;
    this.#recorded = true;
    recordOutcome(this.#hooks, this.#permit as Permit, kind);
  }
  return(): IteratorResult<number> {
    this.#record("success");
    this.#source?.return?.();
    return DONE;
  }
}

class OneRecord extends IteratorBase {
  #hooks: CallHooks;
  #open: () => Iterator<number>;
  #source: Iterator<number> | undefined;
  #permit: Permit | undefined;
  #recorded = false;
  constructor(hooks: CallHooks, open: () => Iterator<number>) {
    super();
    this.#hooks = hooks;
    this.#open = open;
  }
  [Symbol.iterator](): this {
    return this;
  }
  next(): IteratorResult<number> {
    if (this.#source === undefined) this.#start();
    const source = this.#source as Iterator<number>;
    let result: IteratorResult<number>;
    try {
      result = source.next();
    } catch (error) {
      this.#record("error");
      throw error;
    }
    if (result.done) this.#completed();
    return result;
  }
  #start(): void {
    this.#permit = admit(this.#hooks);
    this.#source = this.#open();
  }
  #completed(): void {
    this.#record("success");
  }
  #record(kind: "success" | "error"): void {
    if (this.#recorded) return;
    this.#recorded = true;
    const hooks = this.#hooks;
    const permit = this.#permit as Permit;
    const durationMs = streamDurationMs(permit.start, undefined);
    if (kind === "success") hooks.succeed(permit, durationMs);
    else hooks.settleError(permit, undefined, durationMs);
  }
  return(): IteratorResult<number> {
    this.#record("success");
    this.#source?.return?.();
    return DONE;
  }
}

type Source = (n: number) => Iterator<number>;

// Each made by a `(...args)` wrapper, the source from `fn.apply` at the first read, as ours.
const least = (fn: Source) =>
  function (this: unknown, ...args: [number]) {
    return new Least(() => fn.apply(this, args));
  };
const firstRead = (fn: Source) =>
  function (this: unknown, ...args: [number]) {
    return new FirstRead(() => fn.apply(this, args));
  };
const resultOut = (fn: Source) =>
  function (this: unknown, ...args: [number]) {
    return new ResultOut(() => fn.apply(this, args));
  };
const endOut = (fn: Source) =>
  function (this: unknown, ...args: [number]) {
    return new EndOut(() => fn.apply(this, args));
  };
const smallRecord = (hooks: CallHooks, fn: Source) =>
  function (this: unknown, ...args: [number]) {
    return new SmallRecord(hooks, () => fn.apply(this, args));
  };
const oneRecord = (hooks: CallHooks, fn: Source) =>
  function (this: unknown, ...args: [number]) {
    return new OneRecord(hooks, () => fn.apply(this, args));
  };

const breakers = [new Breaker(), new Breaker(), new Breaker()] as const;
const streams = {
  least: least(numbersSync),
  firstRead: firstRead(numbersSync),
  resultOut: resultOut(numbersSync),
  endOut: endOut(numbersSync),
  smallRecord: smallRecord(callHooks(breakers[0]), numbersSync),
  oneRecord: oneRecord(callHooks(breakers[1]), numbersSync),
  ours: circuit(numbersSync, { breaker: breakers[2] }),
};

// Each case its own function literal, so that the engine compiles each loop on its own.
const all: Case[] = [
  {
    name: "bare",
    opsPerIteration: ITEMS,
    run: (n) => {
      for (let k = 0; k < n; k++) {
        let acc = 0;
        for (const x of numbersSync(ITEMS)) acc += x;
        expectSum(acc);
      }
    },
  },
  {
    name: "least",
    opsPerIteration: ITEMS,
    run: (n) => {
      for (let k = 0; k < n; k++) {
        let acc = 0;
        for (const x of streams.least(ITEMS)) acc += x;
        expectSum(acc);
      }
    },
  },
  {
    name: "first-read",
    opsPerIteration: ITEMS,
    run: (n) => {
      for (let k = 0; k < n; k++) {
        let acc = 0;
        for (const x of streams.firstRead(ITEMS)) acc += x;
        expectSum(acc);
      }
    },
  },
  {
    name: "result-out",
    opsPerIteration: ITEMS,
    run: (n) => {
      for (let k = 0; k < n; k++) {
        let acc = 0;
        for (const x of streams.resultOut(ITEMS)) acc += x;
        expectSum(acc);
      }
    },
  },
  {
    name: "end-out",
    opsPerIteration: ITEMS,
    run: (n) => {
      for (let k = 0; k < n; k++) {
        let acc = 0;
        for (const x of streams.endOut(ITEMS)) acc += x;
        expectSum(acc);
      }
    },
  },
  {
    name: "small-record",
    opsPerIteration: ITEMS,
    run: (n) => {
      for (let k = 0; k < n; k++) {
        let acc = 0;
        for (const x of streams.smallRecord(ITEMS)) acc += x;
        expectSum(acc);
      }
    },
  },
  {
    name: "one-record",
    opsPerIteration: ITEMS,
    run: (n) => {
      for (let k = 0; k < n; k++) {
        let acc = 0;
        for (const x of streams.oneRecord(ITEMS)) acc += x;
        expectSum(acc);
      }
    },
  },
  {
    name: "ours",
    opsPerIteration: ITEMS,
    run: (n) => {
      for (let k = 0; k < n; k++) {
        let acc = 0;
        for (const x of streams.ours(ITEMS)) acc += x;
        expectSum(acc);
      }
    },
  },
];

const option = (name: string): string | undefined =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const only = option("only")?.split(",");
const cases = all.filter((c, i) => i === 0 || only === undefined || only.includes(c.name));

/**
 * Runs `--only=<case> --rounds=20` in `processes` child processes per case with
 * `BUN_JSC_verboseObjectAllocationSinking=1` and counts those whose last compilation of the
 * case's loop sank an allocation (the source's result: nothing else in the loop is a
 * candidate). The bare loop's own function is told apart by running it alone first.
 */
function countSinking(processes: number): void {
  const loops = (name: string): Map<string, string> => {
    const child = spawnSync(process.execPath, [
      process.argv[1] as string,
      `--only=${name}`,
      "--rounds=20",
    ], {
      env: { ...process.env, BUN_JSC_verboseObjectAllocationSinking: "1" },
      encoding: "utf8",
      maxBuffer: 1 << 30,
    });
    // Each compilation: "Graph before elimination:", its function ("DFG for run#..."), then
    // "Initial candidates: D@12, ..." (empty when nothing can be sunk).
    const last = new Map<string, string>();
    let loop: string | undefined;
    for (const line of `${child.stdout}${child.stderr}`.split("\n")) {
      if (line.startsWith("Graph before elimination")) loop = undefined;
      const match = loop === undefined ? / DFG for (run#\w+):/.exec(line) : null;
      if (match !== null) loop = match[1];
      if (loop !== undefined && line.startsWith("Initial candidates:")) {
        last.set(loop, line.slice("Initial candidates:".length).trim());
      }
    }
    return last;
  };
  const bareLoops = new Set(loops("bare").keys());
  for (const c of cases.slice(1)) {
    let sunk = 0;
    for (let i = 0; i < processes; i++) {
      for (const [loop, candidates] of loops(c.name)) {
        if (!bareLoops.has(loop) && candidates !== "") sunk++;
      }
    }
    console.log(`${c.name}: the result sunk in ${sunk} of ${processes} processes`);
  }
}

const sinking = option("sinking");
if (sinking !== undefined) {
  countSinking(Number(sinking));
  process.exit(0);
}

const results = await runGroup(cases, {
  rounds: Number(option("rounds") ?? 15),
  warmup: 2,
  sampleMs: 10,
});

/** The median of the per-round ratios of two cases' samples. */
function ratio(a: readonly number[], b: readonly number[]): number {
  const ratios = a.map((s, i) => s / (b[i] as number)).sort((x, y) => x - y);
  return ratios[ratios.length >> 1] as number;
}

const bare = (results[0] as (typeof results)[number]).samples;
const leastResult = results.find((r) => r.name === "least");
console.log("| case | ns per item | x bare | x least |");
console.log("|---|---:|---:|---:|");
for (const r of results) {
  const xLeast = leastResult === undefined
    ? ""
    : `${ratio(r.samples, leastResult.samples).toFixed(2)}x`;
  console.log(
    `| ${r.name} | ${r.median.toFixed(2)} | ${ratio(r.samples, bare).toFixed(2)}x | ${xLeast} |`,
  );
}
for (const b of breakers) {
  if (b.state !== "closed" || b.snapshot.failureCount !== 0) throw new Error("breakers closed");
}
if (ended.failures !== 0) throw new Error("no stream failed");
