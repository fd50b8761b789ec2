/**
 * A health answer for load balancers and Kubernetes probes, by one documented rule: the
 * service is healthy unless one of its **critical** breakers turns every call away (it is
 * `open` or `isolated`). A `half-open` or `recovering` breaker lets calls through, so it
 * counts as healthy; a critical breaker not (yet) in the registry is reported as `missing`
 * and counts as healthy too (a breaker made on first use must not fail a fresh process).
 * No critical breaker: always healthy (a dependency's outage must not take every replica out
 * of the load balancer, unless it is named critical).
 *
 * @module
 */

import type { BreakerState } from "./core/snapshot.ts";
import type { BreakerRegistry } from "./registry.ts";

/**
 * The JSON answer of a health read (`?format=health`), served with status 200 when `healthy`,
 * else 503.
 *
 * @example
 * ```ts
 * import { BreakerRegistry, type HealthReport, statusHandler } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const registry = new BreakerRegistry();
 * registry.breaker("db").open();
 * const status = statusHandler(registry, { critical: ["db"] });
 * const response = await status(new Request("http://localhost/?format=health"));
 * assert.equal(response.status, 503);
 * const report: HealthReport = await response.json();
 * assert.deepEqual(report, {
 *   healthy: false,
 *   failing: ["db"],
 *   missing: [],
 *   critical: [{ name: "db", state: "open" }],
 * });
 * ```
 */
export interface HealthReport {
  /** Whether no critical breaker is open or isolated. */
  readonly healthy: boolean;
  /** The critical breakers that are open or isolated. */
  readonly failing: readonly string[];
  /** The critical names no breaker of the registry holds. */
  readonly missing: readonly string[];
  /** Each critical breaker listed, with its state (every one of a duplicated name). */
  readonly critical: readonly { readonly name: string; readonly state: BreakerState }[];
}

/** The health of `registry` by the rule above, `critical` naming the breakers that count. */
export function readHealth(registry: BreakerRegistry, critical: readonly string[]): HealthReport {
  const wanted = new Set(critical);
  const found = new Set<string>();
  const listed: { name: string; state: BreakerState }[] = [];
  const failing: string[] = [];
  if (wanted.size !== 0) {
    for (const breaker of registry) {
      const name = breaker.name;
      if (!wanted.has(name)) continue;
      const state = breaker.state;
      found.add(name);
      listed.push({ name, state });
      if ((state === "open" || state === "isolated") && !failing.includes(name)) {
        failing.push(name);
      }
    }
  }
  return {
    healthy: failing.length === 0,
    failing,
    missing: [...wanted].filter((name) => !found.has(name)),
    critical: listed,
  };
}
