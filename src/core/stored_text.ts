/**
 * The text a shared circuit stores: a snapshot's JSON (see `snapshotToJSON`) with the write
 * marks of the breakers that wrote it (see `markWrite`). Every store holds this text as is;
 * this module is the one place that writes and reads it.
 *
 * @module
 */

import type { Policy } from "./policy.ts";
import { snapshotFromJSON, snapshotToJSON } from "./serialize.ts";
import type { Snapshot } from "./snapshot.ts";
import { readWriteMarks, type WriteMarks } from "./write_marks.ts";

/**
 * The stored text of `snapshot` with its write marks.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createPolicy, encodeStored, INITIAL_SNAPSHOT } from "@circuit/breaker/core";
 * const text = encodeStored(INITIAL_SNAPSHOT, { a: [1, 0] });
 * assert.equal(JSON.parse(text).state, "closed");
 * ```
 */
export function encodeStored(snapshot: Snapshot, marks: WriteMarks): string {
  return JSON.stringify({ ...snapshotToJSON(snapshot), writes: marks });
}

/**
 * The snapshot and write marks of a stored text, checked against `policy`.
 *
 * @throws {SyntaxError} When the text is not JSON.
 * @throws {TypeError} When it holds no valid snapshot (the message starts with `context`).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { createPolicy, decodeStored, encodeStored, INITIAL_SNAPSHOT } from "@circuit/breaker/core";
 * const policy = createPolicy({ name: "db" });
 * const { snapshot, marks } = decodeStored(policy, encodeStored(INITIAL_SNAPSHOT, { a: [1, 0] }), "db");
 * assert.equal(snapshot.state, "closed");
 * assert.deepEqual({ ...marks }, { a: [1, 0] });
 * ```
 */
export function decodeStored(
  policy: Policy,
  text: string,
  context: string,
): { snapshot: Snapshot; marks: WriteMarks } {
  const parsed: unknown = JSON.parse(text);
  return { snapshot: snapshotFromJSON(policy, parsed, context), marks: readWriteMarks(parsed) };
}

/**
 * The write marks of a stored text (none when it is not JSON).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { storedWriteMarks } from "@circuit/breaker/core";
 * assert.deepEqual({ ...storedWriteMarks('{"writes":{"a":[2,0]}}') }, { a: [2, 0] });
 * assert.deepEqual({ ...storedWriteMarks("not json") }, {});
 * ```
 */
export function storedWriteMarks(text: string): WriteMarks {
  try {
    return readWriteMarks(JSON.parse(text));
  } catch {
    return readWriteMarks(undefined);
  }
}

/** The generation field (`snapshotToJSON` writes it third, before any long field). */
const GENERATION = /"generation":(\d+)/;

/**
 * The generation of a stored text, read without parsing the whole of it (a breaker hears of
 * every write and needs only this to tell whether the circuit changed), or `undefined`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeStored, INITIAL_SNAPSHOT, storedGeneration } from "@circuit/breaker/core";
 * assert.equal(storedGeneration(encodeStored(INITIAL_SNAPSHOT, {})), 0);
 * ```
 */
export function storedGeneration(text: string): number | undefined {
  const digits = GENERATION.exec(text)?.[1];
  return digits === undefined ? undefined : Number(digits);
}
