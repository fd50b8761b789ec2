/**
 * Full garbage collection for tests that check something is collectable: `gc()` on Deno (the
 * suite runs with `--v8-flags=--expose-gc`), `Bun.gc(true)` on Bun. Throws when neither exists,
 * so such a test fails rather than passing without collecting.
 */

const globals = globalThis as unknown as {
  gc?: () => void;
  Bun?: { gc(force: boolean): void };
};

/**
 * Collects garbage and lets finalization callbacks run, until `done()` holds or `rounds` pass.
 * A `WeakRef`'s target survives the task that created or dereferenced it, so each round waits
 * for a new task before collecting.
 */
export async function collectUntil(done: () => boolean, rounds = 20): Promise<boolean> {
  for (let round = 0; round < rounds; round++) {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (typeof globals.gc === "function") globals.gc();
    else if (globals.Bun !== undefined) globals.Bun.gc(true);
    else throw new Error("no way to collect garbage: run Deno with --v8-flags=--expose-gc");
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (done()) return true;
  }
  return false;
}
