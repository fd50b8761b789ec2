/**
 * Snapshots as JSON: `snapshotToJSON` for `toJSON()`, stores and logs; `snapshotFromJSON` to
 * restore one, rejecting anything that is not a well-formed snapshot of a known version.
 *
 * @module
 */

import { describeValue } from "./describe_value.ts";
import type { Policy } from "./policy.ts";
import { INITIAL_SNAPSHOT, type RecordedState, type Snapshot } from "./snapshot.ts";
import { windowFromJSON, type WindowJSON, windowToJSON } from "./window.ts";

/**
 * A snapshot's serialized form (version 1). In-flight trials, isolation and the last failure
 * are local to a process and are not part of it.
 *
 * @example
 * ```ts
 * import type { SnapshotJSON } from "@circuit/breaker/core";
 * const closed: SnapshotJSON = {
 *   version: 1, state: "closed", generation: 0, failureCount: 0, openUntil: null, openings: 0,
 *   trialSuccesses: 0, rampStart: null, rampUntil: null, rampCalls: 0, window: null,
 * };
 * ```
 */
export interface SnapshotJSON {
  /** The format's version. */
  readonly version: 1;
  /** The recorded state. */
  readonly state: RecordedState;
  /** State changes so far. */
  readonly generation: number;
  /** Consecutive failures. */
  readonly failureCount: number;
  /** While open: when trials may start, epoch ms. */
  readonly openUntil: number | null;
  /** Openings since the circuit last recovered. */
  readonly openings: number;
  /** While half-open: successful trials. */
  readonly trialSuccesses: number;
  /** While recovering: when the ramp started, epoch ms. */
  readonly rampStart: number | null;
  /** While recovering: when the ramp ends, epoch ms. */
  readonly rampUntil: number | null;
  /** While recovering: admission decisions made. */
  readonly rampCalls: number;
  /** The rate rules' window, or `null` when empty. */
  readonly window: WindowJSON | null;
  /** While half-open in a shared circuit: the trial lease. Absent or `null` otherwise. */
  readonly lease?: { readonly holder: string; readonly until: number } | null;
}

const STATES: readonly RecordedState[] = ["closed", "open", "half-open", "recovering"];

/**
 * The largest count a snapshot may hold: far beyond any breaker's real counts, and far enough
 * below 2 ** 53 that adding 1 still changes the number (a generation that stopped changing
 * would let late outcomes count).
 */
const MAX_COUNT = 2 ** 48;

/**
 * The snapshot's serialized form.
 *
 * @example
 * ```ts
 * import { INITIAL_SNAPSHOT, snapshotToJSON } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.deepEqual(snapshotToJSON(INITIAL_SNAPSHOT), {
 *   version: 1, state: "closed", generation: 0, failureCount: 0, openUntil: null, openings: 0,
 *   trialSuccesses: 0, rampStart: null, rampUntil: null, rampCalls: 0, window: null, lease: null,
 * });
 * ```
 */
export function snapshotToJSON(snapshot: Snapshot): SnapshotJSON {
  return {
    version: 1,
    state: snapshot.state,
    generation: snapshot.generation,
    failureCount: snapshot.failureCount,
    openUntil: snapshot.openUntil ?? null,
    openings: snapshot.openings,
    trialSuccesses: snapshot.trialSuccesses,
    rampStart: snapshot.rampStart ?? null,
    rampUntil: snapshot.rampUntil ?? null,
    rampCalls: snapshot.rampCalls,
    window: snapshot.window === undefined ? null : windowToJSON(snapshot.window),
    lease: snapshot.lease === undefined
      ? null
      : { holder: snapshot.lease.holder, until: snapshot.lease.until },
  };
}

/**
 * Restores a snapshot from its serialized form. A window that does not fit the policy (another
 * kind or size) is dropped. Throws a `TypeError` that starts with `context` and names the
 * first malformed field.
 *
 * @throws {TypeError} When `json` is not a snapshot from `snapshotToJSON()`; the message names the
 * path.
 *
 * @example
 * ```ts
 * import {
 *   createPolicy,
 *   INITIAL_SNAPSHOT,
 *   snapshotFromJSON,
 *   snapshotToJSON,
 * } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({});
 * const text = JSON.stringify(snapshotToJSON(INITIAL_SNAPSHOT));
 * assert.equal(snapshotFromJSON(policy, JSON.parse(text)).state, "closed");
 * ```
 */
export function snapshotFromJSON(
  policy: Policy,
  json: unknown,
  context = "Cannot restore breaker state",
): Snapshot {
  const fail = (path: string, expected: string, received: unknown): never => {
    throw new TypeError(
      `${context}: "${path}" must be ${expected}, received ${describeValue(received)}`,
    );
  };
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    return fail("state", "a snapshot object from toJSON()", json);
  }
  const form = json as Record<string, unknown>;
  if (form.version !== 1) fail("state.version", "1 (a snapshot from toJSON())", form.version);
  const state = form.state as RecordedState;
  if (!STATES.includes(state)) fail("state.state", `one of ${STATES.join(", ")}`, form.state);
  const count = (key: string): number => {
    const value = form[key];
    return Number.isSafeInteger(value) && (value as number) >= 0 && (value as number) <= MAX_COUNT
      ? value as number
      : fail(`state.${key}`, `an integer >= 0 and <= ${MAX_COUNT}`, value);
  };
  const time = (key: string, required: boolean): number | undefined => {
    const value = form[key];
    if (!required) {
      return value === null || value === undefined
        ? undefined
        : fail(`state.${key}`, `null while ${state}`, value);
    }
    return typeof value === "number" && Number.isFinite(value)
      ? value
      : fail(`state.${key}`, `a finite number while ${state}`, value);
  };
  const openUntil = time("openUntil", state === "open");
  const rampStart = time("rampStart", state === "recovering");
  const rampUntil = time("rampUntil", state === "recovering");
  if (rampStart !== undefined && rampUntil !== undefined && rampUntil < rampStart) {
    fail("state.rampUntil", `a time >= "rampStart" (${rampStart})`, rampUntil);
  }
  let lease: Snapshot["lease"];
  if (form.lease !== null && form.lease !== undefined) {
    if (state !== "half-open") fail("state.lease", "null unless half-open", form.lease);
    const { holder, until } = form.lease as Record<string, unknown>;
    if (typeof holder !== "string") fail("state.lease.holder", "a string", holder);
    if (typeof until !== "number" || !Number.isFinite(until)) {
      fail("state.lease.until", "a finite number", until);
    }
    lease = { holder: holder as string, until: until as number };
  }
  let window;
  try {
    window = windowFromJSON(policy.rules?.window, form.window, "state.window");
  } catch (error) {
    throw new TypeError(`${context}: ${(error as Error).message}`);
  }
  return {
    ...INITIAL_SNAPSHOT,
    state,
    generation: count("generation"),
    failureCount: count("failureCount"),
    openUntil,
    openings: count("openings"),
    trialSuccesses: count("trialSuccesses"),
    rampStart,
    rampUntil,
    rampCalls: count("rampCalls"),
    window,
    lease,
  };
}
