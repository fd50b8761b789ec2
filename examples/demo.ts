/**
 * A guarded flaky function, tripping and recovering, printed as it happens.
 *
 *   npm ci && npm run demo        (or: deno run examples/demo.ts, bun examples/demo.ts,
 *                                  node examples/demo.ts on Node.js 22.18+ or 24)
 *
 * The "price service" is healthy, goes down after 0.6 s and comes back at 2.4 s. The circuit
 * opens after 3 consecutive failures, rejects calls at once while open, lets one trial call
 * through after 1 s, and closes again when the service answers.
 *
 * @module
 */

import { BreakerOpenError, circuit } from "../mod.ts";

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let serviceUp = true;
let serviceCalls = 0;

async function fetchPrice(item: string): Promise<number> {
  serviceCalls++;
  await sleep(20);
  if (!serviceUp) throw new Error("503 Service Unavailable");
  return item.length * 10;
}

const getPrice = circuit(fetchPrice, {
  failureThreshold: 3,
  recoveryTimeout: 1_000,
  listeners: [{
    stateChange: ({ from, to }) =>
      console.log(`${elapsed().padStart(5)}  >>> circuit ${from} -> ${to}`),
  }],
});

setTimeout(() => {
  serviceUp = false;
  console.log(`${elapsed().padStart(5)}  !!! the price service goes down`);
}, 600);
setTimeout(() => {
  serviceUp = true;
  console.log(`${elapsed().padStart(5)}  !!! the price service is back`);
}, 2_400);

console.log("time   call  outcome");
for (let call = 1; call <= 20; call++) {
  let outcome: string;
  try {
    outcome = `ok: price ${await getPrice("widget")}`;
  } catch (error) {
    outcome = error instanceof BreakerOpenError
      ? `rejected at once (${error.message})`
      : `failed: ${(error as Error).message}`;
  }
  console.log(`${elapsed().padStart(5)}  #${String(call).padEnd(3)}  ${outcome}`);
  await sleep(180);
}
console.log(
  `\n20 calls, ${serviceCalls} reached the service: the open circuit spared it the rest.`,
);
