/**
 * A listener that records what a breaker (or a registry) announces, in order, for tests that
 * assert on the events and their order. Each event is kept as `{ hook, ...event }`; `lines()`
 * gives the short form most tests compare (`"stateChange closed->open"`, `"rejected open"`).
 *
 * @module
 */

import type { BreakerListener } from "../mod.ts";
import { HOOKS } from "../src/listeners.ts";

/** A listener hook's name. */
export type Hook = keyof BreakerListener;

/** One announced event, with the hook that heard it. */
export type RecordedEvent = {
  [H in Hook]: { readonly hook: H } & Parameters<NonNullable<BreakerListener[H]>>[0];
}[Hook];

/** The events a listener heard, and the listener. */
export interface EventRecorder {
  /** The listener to give the breaker (`listeners` or `addListener`). */
  readonly listener: BreakerListener;
  /** Every event heard so far, oldest first. */
  readonly events: RecordedEvent[];
  /** The events one hook heard, oldest first. */
  eventsOf<H extends Hook>(hook: H): Extract<RecordedEvent, { hook: H }>[];
  /** The events in their short form (see {@linkcode describeEvent}). */
  lines(): string[];
  /** Forgets the events heard so far. */
  clear(): void;
}

/**
 * The short form of an event: the hook, then what sets it apart (`stateChange closed->open`,
 * `rejected open`, `storeError read`); `beforeCall`, `success` and `failure` are the hook alone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Breaker } from "../mod.ts";
 * import { describeEvent } from "./event_recorder.ts";
 *
 * const breaker = new Breaker({ registry: false });
 * const opened = describeEvent({ hook: "stateChange", breaker, from: "closed", to: "open" });
 * assert.equal(opened, "stateChange closed->open");
 * ```
 */
export function describeEvent(event: RecordedEvent): string {
  switch (event.hook) {
    case "stateChange":
      return `stateChange ${event.from}->${event.to}`;
    case "rejected":
      return `rejected ${event.error.state}`;
    case "storeError":
      return `storeError ${event.operation}`;
    default:
      return event.hook;
  }
}

/**
 * A recorder listening to `hooks`, by default every hook. Name the hooks when listening
 * changes what is tested: a `storeError` listener stops the breaker reporting store errors
 * with `console.error`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { Breaker } from "../mod.ts";
 * import { recordEvents } from "./event_recorder.ts";
 *
 * const recorded = recordEvents();
 * const breaker = new Breaker({
 *   failureThreshold: 1,
 *   registry: false,
 *   listeners: [recorded.listener],
 * });
 * await breaker.execute(() => Promise.reject(new Error("down"))).catch(() => {});
 * assert.deepEqual(recorded.lines(), ["beforeCall", "failure", "stateChange closed->open"]);
 * ```
 */
export function recordEvents(
  hooks: readonly Hook[] = HOOKS,
): EventRecorder {
  const events: RecordedEvent[] = [];
  const listener: Partial<Record<Hook, (event: object) => void>> = {};
  for (const hook of hooks) {
    listener[hook] = (event) => void events.push({ hook, ...event } as RecordedEvent);
  }
  return {
    listener: listener as BreakerListener,
    events,
    eventsOf: <H extends Hook>(hook: H) =>
      events.filter((event): event is Extract<RecordedEvent, { hook: H }> => event.hook === hook),
    lines: () => events.map(describeEvent),
    clear: () => void events.splice(0),
  };
}
