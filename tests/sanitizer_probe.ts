/**
 * The leak probe's work (leak_probe.ts) in a `Deno.test`, whose op and resource sanitizers fail
 * a test that leaves a timer, an op or a resource behind. The connections (the user's clients
 * or KV handles) are opened before the test and closed after it, so the sanitizers judge only
 * what the stores open: subscriber connections and KV watches. `node:test` under Deno runs
 * without these sanitizers, so the store tests run this file in a child `deno test`:
 *
 *   PROBE_ARGS='["redis","ioredis","redis://127.0.0.1:6379"]' deno test --allow-all \
 *     --unstable-kv tests/sanitizer_probe.ts
 *
 * Not named *_test.ts: it runs only when asked, with the arguments it needs.
 */

import process from "node:process";
import { exercise, openProbeStores } from "./leak_probe.ts";

const args = JSON.parse(process.env.PROBE_ARGS ?? "[]") as string[];
const stores = await openProbeStores(args);

Deno.test(`the store leaves nothing open: ${args.join(" ")}`, async () => {
  await exercise(stores);
});

Deno.test({
  name: "close the connections the test used",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => stores.close(),
});
