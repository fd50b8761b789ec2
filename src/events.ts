/**
 * What a breaker tells its listeners, and the listener shape.
 *
 * @module
 */

import type { Breaker } from "./breaker.ts";
import type { BreakerState } from "./core/snapshot.ts";
import type { WindowStats } from "./core/window.ts";
import type { BreakerOpenError, BulkheadFullError } from "./errors.ts";

/**
 * The circuit changed state. `from` is the state last announced.
 *
 * @example
 * ```ts
 * import { Breaker, type StateChangeEvent } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const changes: string[] = [];
 * const log = ({ breaker, from, to }: StateChangeEvent) =>
 *   changes.push(`${breaker.name}: ${from} -> ${to}`);
 * new Breaker({ name: "db", listeners: [{ stateChange: log }] }).open();
 * assert.deepEqual(changes, ["db: closed -> open"]);
 * ```
 */
export interface StateChangeEvent {
  /** The breaker. */
  readonly breaker: Breaker;
  /** The state announced before. */
  readonly from: BreakerState;
  /** The new state. */
  readonly to: BreakerState;
  /**
   * When an outcome opened the circuit and a rule judges a window: the window's counts that
   * tripped it (the window itself is cleared on opening, so `breaker.stats` reads zeros).
   */
  readonly stats?: WindowStats;
}

/**
 * An admitted call is about to run.
 *
 * @example
 * ```ts
 * import { Breaker, type CallEvent } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * let calls = 0;
 * const count = (_event: CallEvent) => calls++;
 * const db = new Breaker({ listeners: [{ beforeCall: count }] });
 * await db.execute(() => Promise.resolve("row"));
 * assert.equal(calls, 1);
 * ```
 */
export interface CallEvent {
  /** The breaker. */
  readonly breaker: Breaker;
}

/**
 * A call counted as a success (it returned, or threw an error the matchers exclude).
 *
 * @example
 * ```ts
 * import { Breaker, type SuccessEvent } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const durations: number[] = [];
 * const timing = ({ durationMs }: SuccessEvent) => durations.push(durationMs);
 * const db = new Breaker({ listeners: [{ success: timing }] });
 * await db.execute(() => Promise.resolve("row"));
 * assert.equal(durations.length, 1);
 * ```
 */
export interface SuccessEvent {
  /** The breaker. */
  readonly breaker: Breaker;
  /** How long the call took, by the breaker's clock. */
  readonly durationMs: number;
}

/**
 * A call counted as a failure.
 *
 * @example
 * ```ts
 * import { Breaker, type FailureEvent } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const errors: unknown[] = [];
 * const log = ({ error }: FailureEvent) => errors.push(error);
 * const db = new Breaker({ listeners: [{ failure: log }] });
 * const down = new Error("down");
 * await assert.rejects(db.execute(() => Promise.reject(down)));
 * assert.deepEqual(errors, [down]);
 * ```
 */
export interface FailureEvent {
  /** The breaker. */
  readonly breaker: Breaker;
  /** The error thrown, or the value `isFailureResult` marked. */
  readonly error: unknown;
  /** How long the call took, by the breaker's clock. */
  readonly durationMs: number;
}

/**
 * A call was turned away without running.
 *
 * @example
 * ```ts
 * import { Breaker, type RejectedEvent } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const messages: string[] = [];
 * const log = ({ error }: RejectedEvent) => messages.push(error.message);
 * const db = new Breaker({ name: "db", listeners: [{ rejected: log }] });
 * db.isolate();
 * await assert.rejects(db.execute(() => Promise.resolve("row")));
 * assert.deepEqual(messages, ['Circuit "db" is isolated']);
 * ```
 */
export interface RejectedEvent {
  /** The breaker. */
  readonly breaker: Breaker;
  /**
   * The error the caller gets (unless a fallback serves the call): a `BreakerOpenError`, or
   * a `BulkheadFullError` when the bulkhead had no place.
   */
  readonly error: BreakerOpenError | BulkheadFullError;
}

/**
 * A shared circuit's store failed or did not answer in time. The breaker goes on under its
 * local state and merges its counts when the store answers again.
 *
 * @example
 * ```ts
 * import { Breaker, type StateStore, type StoreErrorEvent } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const down = () => Promise.reject(new Error("ECONNREFUSED"));
 * const store: StateStore = { read: down, compareAndSet: down }; // a store that is down
 * const operations: string[] = [];
 * const log = ({ operation }: StoreErrorEvent) => operations.push(operation);
 * {
 *   await using db = new Breaker({ name: "db", store, listeners: [{ storeError: log }] });
 *   db.open(); // still opens, locally
 *   assert.equal(db.state, "open");
 * }
 * assert.ok(operations.length > 0);
 * ```
 */
export interface StoreErrorEvent {
  /** The breaker. */
  readonly breaker: Breaker;
  /** The error the store raised, or a `TimeoutError` when it was too slow to answer. */
  readonly error: unknown;
  /** What the breaker asked of the store. */
  readonly operation: "read" | "compareAndSet" | "subscribe";
}

/**
 * Hooks called after the breaker's new state is in place. A hook that throws (or returns a
 * promise that rejects) is reported with `console.error` and changes nothing.
 *
 * @example Logging state changes
 * ```ts
 * import { Breaker } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * const changes: string[] = [];
 * const breaker = new Breaker({
 *   name: "db",
 *   listeners: [{ stateChange: ({ from, to }) => changes.push(`db: ${from} -> ${to}`) }],
 * });
 * breaker.open();
 * breaker.close();
 * assert.deepEqual(changes, ["db: closed -> open", "db: open -> closed"]);
 * ```
 */
export interface BreakerListener {
  /** The circuit changed state. */
  stateChange?(event: StateChangeEvent): void;
  /** An admitted call is about to run. */
  beforeCall?(event: CallEvent): void;
  /** A call counted as a success. */
  success?(event: SuccessEvent): void;
  /** A call counted as a failure. */
  failure?(event: FailureEvent): void;
  /** A call was turned away. */
  rejected?(event: RejectedEvent): void;
  /**
   * The store of a shared circuit failed (see the `store` option). Without a listener for it,
   * the first error of each outage is reported with `console.error`.
   */
  storeError?(event: StoreErrorEvent): void;
}

/** The hooks of a listener. */
export type ListenerHook = keyof BreakerListener;
