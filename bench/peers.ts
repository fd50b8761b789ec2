/**
 * The peers, configured as the issue asks: cockatiel (`ConsecutiveBreaker`, `SamplingBreaker`,
 * `CountBreaker`) and opossum (defaults, and `timeout: false`), both from npm (devDependencies).
 *
 * @module
 */

import {
  circuitBreaker,
  type CircuitBreakerPolicy,
  ConsecutiveBreaker,
  CountBreaker,
  handleAll,
  SamplingBreaker,
} from "cockatiel";
import CircuitBreaker from "opossum";

export { CircuitBreaker as Opossum };
export type { CircuitBreakerPolicy };

/** A cockatiel policy opening after `threshold` consecutive failures. */
export function cockatielConsecutive(threshold = 5, halfOpenAfter = 30_000): CircuitBreakerPolicy {
  return circuitBreaker(handleAll, { halfOpenAfter, breaker: new ConsecutiveBreaker(threshold) });
}

/** A cockatiel policy opening at a 50 % failure rate over 60 s (its time-window rule). */
export function cockatielSampling(): CircuitBreakerPolicy {
  return circuitBreaker(handleAll, {
    halfOpenAfter: 30_000,
    breaker: new SamplingBreaker({ threshold: 0.5, duration: 60_000 }),
  });
}

/** A cockatiel policy opening at a 50 % failure rate over the last 100 calls (its count rule). */
export function cockatielCount(): CircuitBreakerPolicy {
  return circuitBreaker(handleAll, {
    halfOpenAfter: 30_000,
    breaker: new CountBreaker({ threshold: 0.5, size: 100 }),
  });
}

const opossumBreakers: CircuitBreaker[] = [];

/** An opossum breaker (tracked, so `shutdownOpossum()` can stop its timers). */
export function opossum<T extends unknown[], R>(
  action: (...args: T) => R,
  options?: CircuitBreaker.Options,
): CircuitBreaker<T, Awaited<R>> {
  // opossum also accepts a synchronous action (its types say a promise-returning one).
  const asAsync = action as unknown as (...args: T) => Promise<Awaited<R>>;
  const breaker = new CircuitBreaker(asAsync, options);
  opossumBreakers.push(breaker as unknown as CircuitBreaker);
  return breaker;
}

/** Shuts down every opossum breaker made so far (they keep interval timers). */
export function shutdownOpossum(): void {
  for (const breaker of opossumBreakers) breaker.shutdown();
  opossumBreakers.length = 0;
}
