/**
 * A breaker's listeners: the hooks a listener may have (derived from the `BreakerListener`
 * type, so that a new hook cannot escape the checks), their validation, and how an event
 * reaches them (a hook that throws or rejects is reported, never thrown to the caller).
 *
 * @module
 */

import { isThenable } from "./core/classify.ts";
import { quoteName } from "./core/describe_value.ts";
import { fail } from "./core/validate.ts";
import type { BreakerListener, ListenerHook } from "./events.ts";

/** Every hook a listener may have: a key missing here fails to compile, so none escapes checks. */
export const HOOKS = Object.keys(
  {
    stateChange: true,
    beforeCall: true,
    success: true,
    failure: true,
    rejected: true,
    storeError: true,
  } satisfies Record<ListenerHook, true>,
) as readonly ListenerHook[];

/** Shared by every breaker without listeners. */
export const NO_LISTENERS: readonly BreakerListener[] = Object.freeze([]);

export function checkListeners(listeners: unknown, context: string): readonly BreakerListener[] {
  if (listeners === undefined) return NO_LISTENERS;
  if (!Array.isArray(listeners)) {
    fail(context, "listeners", "an array of listeners", listeners, true);
  }
  listeners.forEach((listener, i) => {
    const path = context === "Cannot add listener" ? "listener" : `listeners[${i}]`;
    if (listener === null || typeof listener !== "object") {
      fail(context, path, "an object with hooks", listener, true);
    }
    for (const hook of HOOKS) {
      const method = (listener as Record<string, unknown>)[hook];
      if (method !== undefined && typeof method !== "function") {
        fail(context, `${path}.${hook}`, "a function", method, true);
      }
    }
  });
  return listeners.length === 0 ? NO_LISTENERS : [...listeners];
}

/**
 * Calls `hook` of every listener with `event`, in order. A hook that throws, or returns a
 * promise that rejects, is reported with `console.error` (naming the circuit) and changes
 * nothing else.
 */
export function emit<H extends ListenerHook>(
  listeners: readonly BreakerListener[],
  hook: H,
  event: Parameters<NonNullable<BreakerListener[H]>>[0],
  name: string,
): void {
  for (const listener of listeners) {
    const method = listener[hook] as ((event: unknown) => unknown) | undefined;
    if (method === undefined) continue;
    try {
      const result = method.call(listener, event);
      if (isThenable(result)) {
        Promise.resolve(result).catch((error) => reportListener(name, hook, error));
      }
    } catch (error) {
      reportListener(name, hook, error);
    }
  }
}

function reportListener(name: string, hook: ListenerHook, error: unknown): void {
  console.error(`Circuit ${quoteName(name)}: a "${hook}" listener threw; ignored`, error);
}
