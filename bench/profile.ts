/**
 * Runs one hot path of ours for a few seconds, alone, so that a CPU profile shows only it:
 *
 *   deno run --allow-all --cpu-prof --cpu-prof-dir=/tmp/prof --cpu-prof-interval=100 \
 *     bench/profile.ts consecutive
 *   bun --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts consecutive
 *   deno run --allow-all bench/prof_summary.ts /tmp/prof/<file>.cpuprofile
 *
 * Cases: consecutive, time-window, count-window, sync, circuit, circuit-sync, sync-time-window,
 * failure, failure-sync, open, open-sync, concurrent, create; streams of 1,000 items (bench/stream.ts): stream-bare,
 * stream, stream-circuit, stream-idle, readable-bare, readable, sync-stream-bare, sync-stream.
 * A second argument sets the seconds (default 4).
 *
 * @module
 */

import process from "node:process";
import { Breaker, circuit } from "../mod.ts";
import { chunks as chunkStream, numbers, numbersSync, readAll } from "./stream.ts";

const ok = (): Promise<number> => Promise.resolve(1);
const okSync = (): number => 1;
const failure = new Error("down");
const fail = (): Promise<never> => Promise.reject(failure);
const failSync = (): never => {
  throw failure;
};

let sink: unknown;
const CHUNK = 10_000;

const ITEMS = 1000;
const guardedNumbers = circuit(numbers);
const guardedNumbersSync = circuit(numbersSync);

const cases: Record<string, () => Promise<void> | void> = {
  "consecutive": async () => {
    const b = new Breaker({ failureThreshold: 5 });
    for (let i = 0; i < CHUNK; i++) sink = await b.execute(ok);
  },
  "time-window": async () => {
    const b = timeWindow;
    for (let i = 0; i < CHUNK; i++) sink = await b.execute(ok);
  },
  "count-window": async () => {
    const b = countWindow;
    for (let i = 0; i < CHUNK; i++) sink = await b.execute(ok);
  },
  "sync": () => {
    const b = consecutive;
    let acc = 0;
    for (let i = 0; i < CHUNK * 10; i++) acc += b.executeSync(okSync);
    sink = acc;
  },
  "circuit": async () => {
    const f = guardedOk;
    for (let i = 0; i < CHUNK; i++) sink = await f();
  },
  "circuit-sync": () => {
    const f = guardedOkSync;
    let acc = 0;
    for (let i = 0; i < CHUNK * 10; i++) acc += f();
    sink = acc;
  },
  "sync-time-window": () => {
    const b = timeWindow;
    let acc = 0;
    for (let i = 0; i < CHUNK; i++) acc += b.executeSync(okSync);
    sink = acc;
  },
  "failure": async () => {
    const b = never;
    for (let i = 0; i < CHUNK; i++) {
      try {
        await b.execute(fail);
      } catch (error) {
        sink = error;
      }
    }
  },
  "failure-sync": () => {
    const b = never;
    for (let i = 0; i < CHUNK; i++) {
      try {
        b.executeSync(failSync);
      } catch (error) {
        sink = error;
      }
    }
  },
  "open": async () => {
    const b = opened;
    for (let i = 0; i < CHUNK; i++) {
      try {
        await b.execute(ok);
      } catch (error) {
        sink = error;
      }
    }
  },
  "open-sync": () => {
    const b = opened;
    for (let i = 0; i < CHUNK; i++) {
      try {
        b.executeSync(okSync);
      } catch (error) {
        sink = error;
      }
    }
  },
  "concurrent": async () => {
    const b = consecutive;
    for (let k = 0; k < CHUNK / 1000; k++) {
      let resolve!: (value: number) => void;
      const promise = new Promise<number>((r) => (resolve = r));
      const fn = () => promise;
      const batch: Promise<number>[] = [];
      for (let i = 0; i < 1000; i++) batch.push(b.execute(fn));
      resolve(1);
      sink = await Promise.all(batch);
    }
  },
  "create": async () => {
    const map = new Map<string, Breaker>();
    for (let i = 0; i < CHUNK; i++) {
      const name = `dependency-${i}`;
      const b = new Breaker({ name });
      map.set(name, b);
      sink = await b.execute(ok);
    }
  },
  "stream-bare": async () => {
    for (let k = 0; k < CHUNK / 1000; k++) {
      let acc = 0;
      for await (const x of numbers(ITEMS)) acc += x;
      sink = acc;
    }
  },
  "stream": async () => {
    const b = consecutive;
    for (let k = 0; k < CHUNK / 1000; k++) {
      let acc = 0;
      for await (const x of b.stream(numbers(ITEMS))) acc += x;
      sink = acc;
    }
  },
  "stream-circuit": async () => {
    for (let k = 0; k < CHUNK / 1000; k++) {
      let acc = 0;
      for await (const x of guardedNumbers(ITEMS)) acc += x;
      sink = acc;
    }
  },
  "stream-idle": async () => {
    const b = idle;
    for (let k = 0; k < CHUNK / 1000; k++) {
      let acc = 0;
      for await (const x of b.stream(numbers(ITEMS))) acc += x;
      sink = acc;
    }
  },
  "readable-bare": async () => {
    for (let k = 0; k < CHUNK / 1000; k++) sink = await readAll(chunkStream(ITEMS));
  },
  "readable": async () => {
    const b = consecutive;
    for (let k = 0; k < CHUNK / 1000; k++) sink = await readAll(b.readable(chunkStream(ITEMS)));
  },
  "sync-stream-bare": () => {
    for (let k = 0; k < CHUNK / 100; k++) {
      let acc = 0;
      for (const x of numbersSync(ITEMS)) acc += x;
      sink = acc;
    }
  },
  "sync-stream": () => {
    for (let k = 0; k < CHUNK / 100; k++) {
      let acc = 0;
      for (const x of guardedNumbersSync(ITEMS)) acc += x;
      sink = acc;
    }
  },
};

const consecutive = new Breaker({ failureThreshold: 5 });
const idle = new Breaker({ idleTimeout: 60_000 });
const timeWindow = new Breaker({
  failureRate: 0.5,
  window: { duration: 60_000, buckets: 10 },
  minimumCalls: 20,
});
const guardedOk = circuit(ok, { failureThreshold: 5 });
const guardedOkSync = circuit.sync(okSync, { failureThreshold: 5 });
const countWindow = new Breaker({ failureRate: 0.5, window: { calls: 100 } });
const never = new Breaker({ failureThreshold: Infinity });
const opened = new Breaker({ recoveryTimeout: 1e12 });
opened.open();

const name = process.argv[2] ?? "consecutive";
const seconds = Number(process.argv[3] ?? 4);
const run = cases[name];
if (run === undefined) {
  throw new Error(`Unknown case ${JSON.stringify(name)}: ${Object.keys(cases).join(", ")}`);
}
const end = performance.now() + seconds * 1000;
let chunks = 0;
while (performance.now() < end) {
  await run();
  chunks++;
}
console.log(`${name}: ${chunks} chunks in ${seconds} s`, typeof sink);
