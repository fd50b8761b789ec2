/**
 * A status report in the Prometheus text exposition format 0.0.4, following Prometheus's
 * naming rules (base units, `_total` for counters, no `_count`/`_sum`/`_bucket` suffix on
 * anything but a histogram's own series). Gauges read now: `circuit_breaker_state`,
 * `circuit_breaker_consecutive_failures`, `circuit_breaker_retry_after_seconds`, the window's
 * counts, and per group `circuit_breaker_group_members`. With recorded metrics: the counters
 * `circuit_breaker_calls_total` and `circuit_breaker_transitions_total` and the histogram
 * `circuit_breaker_call_duration_seconds`, so that an episode between two scrapes shows.
 *
 * A breaker's series carry its `name`; a group's counters carry only `group` (its members
 * added up), and its members appear by `name` only while they are not closed (at most a
 * bounded number), so that a group of any size makes a bounded scrape.
 *
 * @module
 */

import {
  type BreakerMetrics,
  type CallTally,
  DURATION_BOUNDS,
  type DurationHistogram,
} from "./breaker_metrics.ts";
import type { BreakerState } from "./core/snapshot.ts";
import type { BreakerStatus, ListedBreaker, StatusReport } from "./status_report.ts";

const STATES: readonly BreakerState[] = ["closed", "open", "half-open", "recovering", "isolated"];

/** The content type of the format. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

type Labels = string;

/** Writes one metric family: HELP, TYPE, then its samples. */
class Exposition {
  readonly lines: string[] = [];

  family(
    name: string,
    type: "gauge" | "counter" | "histogram",
    help: string,
    samples: readonly (readonly [suffix: string, labels: Labels, value: number])[],
  ): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [suffix, labels, value] of samples) {
      this.lines.push(`${name}${suffix}{${labels}} ${prometheusNumber(value)}`);
    }
  }
}

/** The report (and, when given, the recorded metrics) as Prometheus text. */
export function prometheusText(
  report: StatusReport,
  listed: readonly ListedBreaker[],
  metrics: BreakerMetrics | undefined,
): string {
  const out = new Exposition();
  const statuses = report.breakers;
  const identities = seriesIdentities(statuses.map((status) => status.name));
  const labelsOf = new Map(statuses.map((status, i) => [status, identities[i]!]));
  const named = (status: BreakerStatus, more = "") => `${labelsOf.get(status)!}${more}`;
  out.family(
    "circuit_breaker_state",
    "gauge",
    "The circuit's state: 1 for the state it is in, 0 for the others.",
    statuses.flatMap((status) =>
      STATES.map((state) =>
        ["", named(status, `,state="${state}"`), status.state === state ? 1 : 0] as const
      )
    ),
  );
  out.family(
    "circuit_breaker_consecutive_failures",
    "gauge",
    "Consecutive failures recorded.",
    statuses.map((status) => ["", named(status), status.failureCount] as const),
  );
  out.family(
    "circuit_breaker_retry_after_seconds",
    "gauge",
    "Seconds until a call may be admitted: 0 unless open, +Inf while isolated.",
    statuses.map((status) => {
      const seconds = status.retryAfterMs === null ? Infinity : status.retryAfterMs / 1000;
      return ["", named(status), seconds] as const;
    }),
  );
  out.family(
    "circuit_breaker_window_calls",
    "gauge",
    "Calls in the rate rules' window (0 when no rule uses a window).",
    statuses.map((status) => ["", named(status), status.window.calls] as const),
  );
  out.family(
    "circuit_breaker_window_failures",
    "gauge",
    "Failed calls in the rate rules' window.",
    statuses.map((status) => ["", named(status), status.window.failures] as const),
  );
  out.family(
    "circuit_breaker_window_slow_calls",
    "gauge",
    "Slow calls in the rate rules' window.",
    statuses.map((status) => ["", named(status), status.window.slowCalls] as const),
  );
  out.family(
    "circuit_breaker_group_members",
    "gauge",
    "Members of a breaker group by state.",
    report.groups.flatMap((group) => {
      const counts: Record<BreakerState, number> = {
        closed: group.closed,
        open: group.open,
        "half-open": group.halfOpen,
        recovering: group.recovering,
        isolated: group.isolated,
      };
      return STATES.map((state) =>
        ["", `group="${escapeLabelValue(group.name)}",state="${state}"`, counts[state]] as const
      );
    }),
  );
  if (metrics !== undefined) writeCounters(out, report, listed, metrics);
  return out.lines.join("\n") + "\n";
}

/** The recorded counters and histogram: one series set per lone breaker and per group. */
function writeCounters(
  out: Exposition,
  report: StatusReport,
  listed: readonly ListedBreaker[],
  metrics: BreakerMetrics,
): void {
  const tallies: [labels: Labels, tally: CallTally][] = [];
  const identities = seriesIdentities(listed.map(({ status }) => status.name));
  listed.forEach(({ breaker, status }, i) => {
    if (status.group !== null) return;
    const tally = metrics.tallyOf(breaker);
    if (tally !== undefined) tallies.push([identities[i]!, tally]);
  });
  for (const group of report.groups) {
    const tally = metrics.groupTallyOf(group.name);
    if (tally !== undefined) tallies.push([`group="${escapeLabelValue(group.name)}"`, tally]);
  }
  out.family(
    "circuit_breaker_calls_total",
    "counter",
    "Calls by outcome: success and failure ran; rejected were turned away.",
    tallies.flatMap(([labels, tally]) =>
      (["success", "failure", "rejected"] as const).map((outcome) =>
        ["", `${labels},outcome="${outcome}"`, tally.calls[outcome]] as const
      )
    ),
  );
  out.family(
    "circuit_breaker_transitions_total",
    "counter",
    "State transitions, by the state left and the state entered.",
    tallies.flatMap(([labels, tally]) =>
      [...tally.transitions].map(([key, count]) => {
        const [from = "", to = ""] = key.split(">");
        return ["", `${labels},from="${from}",to="${to}"`, count] as const;
      })
    ),
  );
  out.family(
    "circuit_breaker_call_duration_seconds",
    "histogram",
    "Duration of the calls that ran, by outcome.",
    tallies.flatMap(([labels, tally]) =>
      (["success", "failure"] as const).flatMap((outcome) =>
        histogramSamples(`${labels},outcome="${outcome}"`, tally.durations[outcome])
      )
    ),
  );
}

function histogramSamples(
  labels: Labels,
  histogram: DurationHistogram,
): (readonly [string, Labels, number])[] {
  const samples: (readonly [string, Labels, number])[] = [];
  let cumulative = 0;
  DURATION_BOUNDS.forEach((bound, i) => {
    cumulative += histogram.counts[i] ?? 0;
    samples.push(["_bucket", `${labels},le="${bound}"`, cumulative]);
  });
  samples.push(
    ["_bucket", `${labels},le="+Inf"`, histogram.count],
    ["_sum", labels, histogram.sum],
    ["_count", labels, histogram.count],
  );
  return samples;
}

/**
 * The identifying labels of each breaker's series: its `name`, and for the second and later
 * breakers of a name (a collision the registry lists) `duplicate="2"`, ..., since a scrape
 * must not repeat a series.
 */
function seriesIdentities(names: readonly string[]): string[] {
  const seen = new Map<string, number>();
  return names.map((name) => {
    const count = (seen.get(name) ?? 0) + 1;
    seen.set(name, count);
    const label = `name="${escapeLabelValue(name)}"`;
    return count === 1 ? label : `${label},duplicate="${count}"`;
  });
}

/** A label value as the exposition format writes it: `\`, `"` and newlines escaped. */
function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (char) => char === "\n" ? "\\n" : `\\${char}`);
}

function prometheusNumber(value: number): string {
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return Number.isNaN(value) ? "NaN" : String(value);
}
