/**
 * What the status handler reports of a registry, in every format: each breaker's status, and
 * the groups' members aggregated so that the report stays bounded whatever the key count
 * (closed members are only counted; at most {@linkcode MAX_MEMBERS_LISTED} others per group
 * are listed).
 *
 * @module
 */

import type { BreakerMode } from "./core/options.ts";
import type { Breaker } from "./breaker.ts";
import { callHooks } from "./call_protocol.ts";
import type { BreakerState } from "./core/snapshot.ts";
import type { WindowStats } from "./core/window.ts";
import type { BreakerMetrics, Transition } from "./breaker_metrics.ts";
import { ruleText } from "./breaker_rule.ts";
import { describeFailure } from "./failure_text.ts";
import { isolatedByOperator } from "./operator_holds.ts";
import {
  type BreakerRegistry,
  groupOf,
  type GroupSummary,
  type RegistrySummary,
} from "./registry.ts";

/** The most members of one group listed one by one (those not closed, in registry order). */
export const MAX_MEMBERS_LISTED = 50;

/**
 * One breaker in the JSON answer (`?format=json`).
 *
 * @example
 * ```ts
 * import type { BreakerStatus } from "@circuit/breaker";
 * const db: BreakerStatus = {
 *   name: "db",
 *   group: null,
 *   state: "open",
 *   mode: "enforce",
 *   failureCount: 5,
 *   openUntil: 1_700_000_030_000,
 *   retryAfterMs: 12_000,
 *   window: { calls: 0, failures: 0, slowCalls: 0, failureRate: 0, slowCallRate: 0 },
 *   lastFailure: "Error: connection refused",
 *   rule: "opens on 5 consecutive failures · recovery 30.0 s · 1 trial at once, 1 success closes",
 *   isolation: null,
 *   ramp: null,
 *   openedAt: 1_700_000_000_000,
 *   lastFailureAt: 1_700_000_000_000,
 *   history: [],
 * };
 * ```
 */
export interface BreakerStatus {
  /** The breaker's name. */
  readonly name: string;
  /** The `BreakerGroup` it belongs to, or `null`. */
  readonly group: string | null;
  /** The state now. */
  readonly state: BreakerState;
  /** Consecutive failures recorded. */
  readonly failureCount: number;
  /** When trial calls may start (epoch ms, by the breaker's clock), or `null` when not open. */
  readonly openUntil: number | null;
  /**
   * Milliseconds until a call may be admitted: 0 unless open; `null` while isolated (the
   * breaker's `Infinity`, which JSON cannot write: no time is set, it waits for a release).
   */
  readonly retryAfterMs: number | null;
  /** Counts in the rate rules' window (all zero when no rule uses a window). */
  readonly window: WindowStats;
  /**
   * The last failure as text (`"TypeError: fetch failed"`, `"HTTP 503 Service Unavailable"`
   * for a `Response`), or `null` when none was recorded.
   */
  readonly lastFailure: string | null;
  /** The rule that opens the circuit and how it recovers, in words. */
  readonly rule: string;
  /** Whether the breaker turns calls away (`"enforce"`), only observes, or is off. */
  readonly mode: BreakerMode;
  /**
   * While isolated: how many holds keep it so, and whether operators hold one (through any
   * status handler of this process, which can release it); otherwise `null`.
   */
  readonly isolation: { readonly holds: number; readonly byOperator: boolean } | null;
  /** While recovering: the share of calls admitted now, and when the ramp ends (epoch ms). */
  readonly ramp: { readonly admittedRate: number; readonly until: number } | null;
  /** When the circuit last left `closed` (epoch ms); `null` when closed or not recorded. */
  readonly openedAt: number | null;
  /** When the last failure was recorded (epoch ms), or `null` (or not recorded). */
  readonly lastFailureAt: number | null;
  /** The last transitions with their cause, oldest first (recorded by `metrics`). */
  readonly history: readonly Transition[];
}

/**
 * The members of one group, counted by state, in a {@linkcode StatusReport}.
 *
 * @example
 * ```ts
 * import type { GroupStatus } from "@circuit/breaker";
 * const hosts: GroupStatus = {
 *   name: "hosts", total: 10_000, closed: 9_990, open: 10, halfOpen: 0, recovering: 0,
 *   isolated: 0, unlisted: 0,
 * };
 * ```
 */
export interface GroupStatus extends GroupSummary {
  /** The group's name. */
  readonly name: string;
  /** Members not closed that the report leaves out, past the listing bound. */
  readonly unlisted: number;
}

/**
 * The JSON answer of a read (`?format=json`).
 *
 * @example
 * ```ts
 * import { BreakerRegistry, type StatusReport, statusHandler } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 * const registry = new BreakerRegistry();
 * registry.breaker("db").open();
 * const response = await statusHandler(registry)(new Request("http://localhost/?format=json"));
 * const report: StatusReport = await response.json();
 * assert.deepEqual(report.summary.open, ["db"]);
 * assert.equal(report.breakers[0]?.state, "open");
 * ```
 */
export interface StatusReport {
  /**
   * The breakers' names by state (see `BreakerRegistry.summary()`), but the group members past
   * the listing bound: those are only counted, in `summary.groups`.
   */
  readonly summary: RegistrySummary;
  /**
   * Every breaker the registry lists, in its order, but groups' closed members (counted in
   * `groups`) and those past the listing bound.
   */
  readonly breakers: readonly BreakerStatus[];
  /** Each group's members counted by state. */
  readonly groups: readonly GroupStatus[];
  /** Every breaker listed in the registry (group members too) counted by state. */
  readonly counts: {
    readonly closed: number;
    readonly open: number;
    readonly halfOpen: number;
    readonly recovering: number;
    readonly isolated: number;
  };
}

/** A report's breakers with the breaker objects themselves, for actions on the page. */
export interface ListedBreaker {
  readonly breaker: Breaker;
  readonly status: BreakerStatus;
  /** Whether actions by its name reach it: not an older breaker of a duplicated name. */
  readonly reachable: boolean;
}

/** Reads the report of `registry` now. */
export function readReport(
  registry: BreakerRegistry,
  metrics: BreakerMetrics | undefined,
): { readonly report: StatusReport; readonly listed: readonly ListedBreaker[] } {
  const summary = registry.summary();
  const listedPerGroup = new Map<string, number>();
  const unlisted = new Map<string, number>();
  const unlistedBreakers = new Set<string>();
  const listed: ListedBreaker[] = [];
  for (const breaker of registry) {
    const group = groupOf(registry, breaker) ?? null;
    if (group !== null) {
      if (breaker.state === "closed") continue;
      const count = listedPerGroup.get(group) ?? 0;
      if (count >= MAX_MEMBERS_LISTED) {
        unlisted.set(group, (unlisted.get(group) ?? 0) + 1);
        unlistedBreakers.add(breaker.name);
        continue;
      }
      listedPerGroup.set(group, count + 1);
    }
    listed.push({
      breaker,
      status: statusOf(breaker, group, metrics),
      reachable: registry.get(breaker.name) === breaker,
    });
  }
  const groups = Object.entries(summary.groups).map(([name, counts]) => ({
    name,
    ...counts,
    unlisted: unlisted.get(name) ?? 0,
  }));
  const bounded: RegistrySummary = unlistedBreakers.size === 0 ? summary : {
    ...summary,
    open: summary.open.filter((name) => !unlistedBreakers.has(name)),
    halfOpen: summary.halfOpen.filter((name) => !unlistedBreakers.has(name)),
    recovering: summary.recovering.filter((name) => !unlistedBreakers.has(name)),
    isolated: summary.isolated.filter((name) => !unlistedBreakers.has(name)),
  };
  return {
    report: {
      summary: bounded,
      breakers: listed.map(({ status }) => status),
      groups,
      counts: {
        closed: summary.total - summary.open.length - summary.halfOpen.length -
          summary.recovering.length - summary.isolated.length,
        open: summary.open.length,
        halfOpen: summary.halfOpen.length,
        recovering: summary.recovering.length,
        isolated: summary.isolated.length,
      },
    },
    listed,
  };
}

/** The status of one breaker of `registry` now. */
export function breakerStatus(
  registry: BreakerRegistry,
  breaker: Breaker,
  metrics: BreakerMetrics | undefined,
): BreakerStatus {
  return statusOf(breaker, groupOf(registry, breaker) ?? null, metrics);
}

function statusOf(
  breaker: Breaker,
  group: string | null,
  metrics: BreakerMetrics | undefined,
): BreakerStatus {
  const hooks = callHooks(breaker);
  const snapshot = breaker.snapshot;
  const state = breaker.state;
  const retryAfterMs = breaker.retryAfterMs;
  const history = metrics?.historyOf(breaker);
  let ramp: BreakerStatus["ramp"] = null;
  const rampRules = hooks.policy.recoveryRamp;
  if (
    state === "recovering" && rampRules !== undefined && snapshot.rampStart !== undefined &&
    snapshot.rampUntil !== undefined
  ) {
    const elapsed = Math.max(0, hooks.now() - snapshot.rampStart);
    const progress = Math.min(1, elapsed / rampRules.duration);
    ramp = {
      admittedRate: rampRules.initialRate + (1 - rampRules.initialRate) * progress,
      until: snapshot.rampUntil,
    };
  }
  return {
    name: breaker.name,
    group,
    state,
    failureCount: breaker.failureCount,
    openUntil: breaker.openUntil ?? null,
    retryAfterMs: Number.isFinite(retryAfterMs) ? retryAfterMs : null,
    window: breaker.stats,
    lastFailure: describeFailure(breaker.lastFailure),
    rule: ruleText(hooks.policy),
    mode: hooks.policy.mode,
    isolation: snapshot.isolated === 0
      ? null
      : { holds: snapshot.isolated, byOperator: isolatedByOperator(breaker) },
    ramp,
    openedAt: state === "closed" ? null : history?.openedAt ?? null,
    lastFailureAt: history?.lastFailureAt ?? null,
    history: history?.transitions ?? [],
  };
}
