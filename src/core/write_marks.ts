/**
 * Write marks: for each breaker writing a shared circuit, the number of its last write that
 * the stored state includes. Every write carries the marks of the state it replaces forward,
 * so a breaker whose write got no answer (the connection dropped) can tell from any later
 * stored state whether that write was applied, however many others wrote since; its counts
 * are then merged exactly once.
 *
 * @module
 */

/**
 * Marks by writer: `[number of the writer's last write in the stored state, when it wrote]`.
 *
 * @example
 * ```ts
 * import type { WriteMarks } from "@circuit/breaker/core";
 * const marks: WriteMarks = { "db:1f0c": [12, 1_700_000_000_000] };
 * ```
 */
export type WriteMarks = Readonly<Record<string, readonly [write: number, at: number]>>;

/**
 * How long a writer's mark is kept after its last write, in ms. A writer needs its mark only
 * until it reads the store again (at once, or when an outage ends); pruning keeps the stored
 * value small when writers come and go (isolates, restarts). A writer cut off for longer than
 * this may merge its last batch twice. A mark dated further ahead than this is pruned too:
 * no clock is that far off, so it is forged or damaged.
 */
export const WRITE_MARK_TTL_MS = 10 * 60_000;

/**
 * The most marks a stored value carries: the newest are kept. With writer names of at most
 * {@linkcode MAX_WRITER_LENGTH} characters, the marks stay under 6 KB however many breakers
 * write. A breaker whose mark was pushed out (more writers than this within
 * {@linkcode WRITE_MARK_TTL_MS}) may merge its last batch twice if that write's answer was lost.
 */
export const MAX_WRITE_MARKS = 64;

/** The longest writer name kept; longer ones (from a hostile stored value) are dropped. */
export const MAX_WRITER_LENGTH = 40;

/**
 * The marks a write carries: those of the state it replaces (`stored`), without marks older
 * (or further ahead) than {@linkcode WRITE_MARK_TTL_MS}, at most the newest
 * {@linkcode MAX_WRITE_MARKS} in all, and `writer`'s set to `write`.
 *
 * @example
 * ```ts
 * import { markWrite } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * // A null-prototype record, hence the spread.
 * assert.deepEqual({ ...markWrite({ a: [3, 0] }, "b", 1, 1_000) }, { a: [3, 0], b: [1, 1000] });
 * ```
 */
export function markWrite(
  stored: WriteMarks | undefined,
  writer: string,
  write: number,
  now: number,
): WriteMarks {
  let kept: Array<[string, readonly [number, number]]> = [];
  if (stored !== undefined) {
    for (const [other, mark] of Object.entries(stored)) {
      if (other !== writer && Math.abs(now - mark[1]) < WRITE_MARK_TTL_MS) kept.push([other, mark]);
    }
  }
  if (kept.length >= MAX_WRITE_MARKS) {
    kept = kept.sort((a, b) => b[1][1] - a[1][1]).slice(0, MAX_WRITE_MARKS - 1);
  }
  // No prototype: a writer named "__proto__" (from a hostile stored value) is just a key.
  const marks: Record<string, readonly [number, number]> = Object.create(null);
  for (const [other, mark] of kept) marks[other] = mark;
  marks[writer] = [write, now];
  return marks;
}

/**
 * Whether the stored state (whose marks are `stored`) includes `writer`'s write number `write`.
 *
 * @example
 * ```ts
 * import { includesWrite } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(includesWrite({ a: [3, 0] }, "a", 2), true); // write 3 came after it, over it
 * assert.equal(includesWrite({ a: [3, 0] }, "a", 4), false);
 * ```
 */
export function includesWrite(
  stored: WriteMarks | undefined,
  writer: string,
  write: number,
): boolean {
  const mark = stored !== undefined && Object.hasOwn(stored, writer) ? stored[writer] : undefined;
  return mark !== undefined && mark[0] >= write;
}

/**
 * The marks in a parsed stored value (its `writes` field); anything malformed is dropped, since
 * the value comes from outside (another version, another program).
 *
 * @example
 * ```ts
 * import { readWriteMarks } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.deepEqual({ ...readWriteMarks({ writes: { a: [3, 0], b: "x" } }) }, { a: [3, 0] });
 * ```
 */
export function readWriteMarks(value: unknown): WriteMarks {
  const writes = value !== null && typeof value === "object"
    ? (value as { writes?: unknown }).writes
    : undefined;
  const marks: Record<string, readonly [number, number]> = Object.create(null);
  if (writes === null || typeof writes !== "object" || Array.isArray(writes)) return marks;
  for (const [writer, mark] of Object.entries(writes)) {
    if (
      writer.length <= MAX_WRITER_LENGTH && Array.isArray(mark) && mark.length === 2 &&
      Number.isSafeInteger(mark[0]) && Number.isFinite(mark[1])
    ) {
      marks[writer] = [mark[0], mark[1]];
    }
  }
  return marks;
}
