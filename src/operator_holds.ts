/**
 * The isolations operators start through a status handler, held per breaker for the whole
 * process (a JavaScript realm): every status handler sees them and can release them, whether
 * it is a second handler, one built per request or the one that isolated. Isolation is local
 * to the process, like `breaker.isolate()` itself: with a shared `store`, the other processes
 * sharing the circuit are not isolated.
 *
 * @module
 */

import type { Breaker } from "./breaker.ts";

const holds = new WeakMap<Breaker, Disposable>();
/** The breaker an operator is isolating or releasing now, so its `stateChange` can say so. */
let acting: Breaker | undefined;

/** Isolates `breaker` on an operator's behalf, once however often it is asked. */
export function isolateForOperator(breaker: Breaker): void {
  if (holds.has(breaker)) return;
  acting = breaker;
  try {
    holds.set(breaker, breaker.isolate());
  } finally {
    acting = undefined;
  }
}

/** Releases the operators' hold on `breaker`; false when there was none. */
export function releaseForOperator(breaker: Breaker): boolean {
  const hold = holds.get(breaker);
  if (hold === undefined) return false;
  holds.delete(breaker);
  acting = breaker;
  try {
    hold[Symbol.dispose]();
  } finally {
    acting = undefined;
  }
  return true;
}

/** Whether operators hold `breaker` isolated. */
export function isolatedByOperator(breaker: Breaker): boolean {
  return holds.has(breaker);
}

/** Whether an operator's isolate or release is changing `breaker`'s state right now. */
export function operatorActing(breaker: Breaker): boolean {
  return acting === breaker;
}
