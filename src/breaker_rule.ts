/**
 * A breaker's tripping rule and recovery as one line for operators, read from its policy:
 * `5 consecutive failures · recovery 30.0 s · 1 trial at once, 1 success closes`.
 *
 * @module
 */

import type { Policy } from "./core/policy.ts";
import { formatDuration, formatRate } from "./duration_text.ts";

/** The rule that opens the circuit and how it recovers, in words. */
export function ruleText(policy: Policy): string {
  const parts: string[] = [];
  if (Number.isFinite(policy.failureThreshold)) {
    parts.push(
      `${policy.failureThreshold} consecutive failure${policy.failureThreshold === 1 ? "" : "s"}`,
    );
  }
  const rules = policy.rules;
  if (rules !== undefined) {
    const rates: string[] = [];
    if (rules.failureRate !== undefined) {
      rates.push(`failure rate >= ${formatRate(rules.failureRate)}`);
    }
    if (rules.slowCallRate !== undefined) {
      rates.push(
        `calls slower than ${formatDuration(rules.slowCallDuration ?? 0)} >= ${
          formatRate(rules.slowCallRate)
        }`,
      );
    }
    if (rates.length !== 0) {
      const window = rules.window.kind === "calls"
        ? `the last ${rules.window.calls} calls`
        : formatDuration(rules.window.duration);
      parts.push(`${rates.join(" or ")} (over ${window}, from ${rules.minimumCalls} calls)`);
    }
    if (rules.shouldTrip !== undefined) parts.push("shouldTrip()");
  }
  const recovery = typeof policy.recoveryTimeout === "number"
    ? `recovery ${formatDuration(policy.recoveryTimeout)}`
    : "recovery by backoff";
  const trials = `${policy.halfOpenMaxCalls} trial${
    policy.halfOpenMaxCalls === 1 ? "" : "s"
  } at once, ${policy.successThreshold} success${policy.successThreshold === 1 ? "" : "es"} close${
    policy.successThreshold === 1 ? "s" : ""
  }`;
  const ramp = policy.recoveryRamp === undefined ? [] : [
    `ramp ${formatDuration(policy.recoveryRamp.duration)} from ${
      formatRate(policy.recoveryRamp.initialRate)
    }`,
  ];
  const timeout = policy.timeout === undefined ? [] : [`timeout ${formatDuration(policy.timeout)}`];
  // A breaker that only observes (or is off) turns nothing away whatever its state says.
  const mode = policy.mode === "enforce" ? [] : [`mode ${policy.mode}: turns no call away`];
  return [
    ...mode,
    parts.length === 0 ? "opens by hand only" : `opens on ${parts.join(" or ")}`,
    ...timeout,
    recovery,
    trials,
    ...ramp,
  ].join(" · ");
}
