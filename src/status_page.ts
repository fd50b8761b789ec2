/**
 * The status handler's HTML page, made for an incident: breakers that turn calls away first
 * (isolated, open, half-open, recovering, then closed), a filter, when each opened and last
 * failed, its rule, window and ramp, its last transitions with their cause, groups counted by
 * state, and the actions next to each breaker with their outcome shown there. It refreshes
 * `<main>` by itself (fetching only that fragment, so no second nonce'd style ever reaches the
 * page's CSP), fits a 390 px phone, and escapes every text it shows.
 *
 * @module
 */

import type { Breaker } from "./breaker.ts";
import type { BreakerState } from "./core/snapshot.ts";
import type { WindowStats } from "./core/window.ts";
import { formatDuration, formatRate } from "./duration_text.ts";
import { isolatedByOperator } from "./operator_holds.ts";
import type { BreakerStatus, ListedBreaker, StatusReport } from "./status_report.ts";

/**
 * The request header the page's refresh sends, to get only the `<main>` fragment. `SCRIPT`
 * spells it out: a substitution would make the script a template that a bundler must keep in
 * every program importing the package.
 */
export const FRAGMENT_HEADER = "x-status-fragment";

/** What the page shows besides the report. */
export interface PageSettings {
  readonly title: string;
  readonly refreshInterval: number;
  /** Whether the viewer may run actions (then the page shows their buttons). */
  readonly canAct: boolean;
}

/** The order of the rows: states that turn calls away first. */
const STATE_ORDER: Readonly<Record<BreakerState, number>> = {
  isolated: 0,
  open: 1,
  "half-open": 2,
  recovering: 3,
  closed: 4,
};

const HTML_ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for an HTML element or a double-quoted attribute value. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (char) => HTML_ESCAPES[char] ?? char);
}

/** A time as `2026-12-07 18:40:12Z` in a `<time>` element. */
function timeText(at: number | null): string {
  if (at === null || !Number.isFinite(at)) return "—";
  let iso: string;
  try {
    iso = new Date(at).toISOString();
  } catch {
    return "—";
  }
  return `<time datetime="${iso}">${iso.slice(0, 10)} ${iso.slice(11, 19)}Z</time>`;
}

function retryText(status: BreakerStatus): string {
  switch (status.state) {
    case "open":
      return status.retryAfterMs === null ? "—" : formatDuration(status.retryAfterMs);
    case "isolated":
      return "until released";
    case "half-open":
      return "now (trial calls)";
    case "recovering":
      return status.ramp === null
        ? "ramping up"
        : `${formatRate(Math.round(status.ramp.admittedRate * 1_000) / 1_000)} admitted`;
    default:
      return "—";
  }
}

function windowText(window: WindowStats): string {
  if (window.calls === 0) return "—";
  const percent = (window.failureRate * 100).toFixed(1);
  const slow = window.slowCalls === 0 ? "" : `, ${window.slowCalls} slow`;
  return `${window.failures} / ${window.calls} (${percent} %)${slow}`;
}

function summaryText(report: StatusReport): string {
  const { total } = report.summary;
  if (total === 0) return "No breakers are registered.";
  const { counts } = report;
  const parts = ([
    [counts.open, "open"],
    [counts.halfOpen, "half-open"],
    [counts.isolated, "isolated"],
    [counts.recovering, "recovering"],
    [counts.closed, "closed"],
  ] as const).filter(([count]) => count !== 0).map(([count, state]) => `${count} ${state}`);
  return `${total} breaker${total === 1 ? "" : "s"}: ${parts.join(", ")}`;
}

function actionButtons(breaker: Breaker, status: BreakerStatus): string {
  const actions: [string, string][] = [];
  if (isolatedByOperator(breaker)) actions.push(["release", "Release"]);
  else actions.push(["isolate", "Isolate"]);
  if (status.state !== "closed" && applicationHolds(status) === 0) {
    actions.push(["close", "Close"]);
  }
  const name = escapeHtml(status.name);
  const buttons = actions.map(([action, label]) =>
    `<button type="button" data-action="${action}" data-name="${name}">${label}</button>`
  );
  return `${buttons.join(" ")} <output class="feedback" data-name="${name}"></output>`;
}

/** The isolation holds the application keeps (which no status page can release). */
export function applicationHolds(status: BreakerStatus): number {
  if (status.isolation === null) return 0;
  return status.isolation.holds - (status.isolation.byOperator ? 1 : 0);
}

function isolationText(status: BreakerStatus): string {
  if (status.isolation === null) return "";
  const { byOperator } = status.isolation;
  const application = applicationHolds(status);
  const parts = [
    ...(byOperator ? ["by an operator"] : []),
    ...(application > 0
      ? [`by the application (${application} hold${application === 1 ? "" : "s"})`]
      : []),
  ];
  return `<div class="note">isolated ${parts.join(" and ")}</div>`;
}

function historyText(status: BreakerStatus): string {
  if (status.history.length === 0) return "—";
  const items = [...status.history].reverse().map((transition) =>
    `<li>${timeText(transition.at)} ${escapeHtml(transition.from)} → ${escapeHtml(transition.to)}${
      transition.cause === "" ? "" : `: ${escapeHtml(transition.cause)}`
    }</li>`
  );
  return `<details><summary>${status.history.length} change${
    status.history.length === 1 ? "" : "s"
  }</summary><ol>${items.join("")}</ol></details>`;
}

function row(listed: ListedBreaker, canAct: boolean): string {
  const { breaker, status, reachable } = listed;
  const state = escapeHtml(status.state);
  const cell = (label: string, className: string, content: string) =>
    `<td class="${className}" data-label="${label}">${content}</td>`;
  const cells = [
    cell("Name", "name", escapeHtml(status.name)),
    cell(
      "State",
      "state-cell",
      `<span class="state state-${state}">${state}</span>${
        status.openedAt === null ? "" : `<div class="note">since ${timeText(status.openedAt)}</div>`
      }${isolationText(status)}`,
    ),
    cell("Consecutive failures", "number failures", String(status.failureCount)),
    cell("Window", "number window", windowText(status.window)),
    cell("Retry in", "number retry", retryText(status)),
    cell(
      "Last failure",
      "failure",
      `${status.lastFailure === null ? "—" : escapeHtml(status.lastFailure)}${
        status.lastFailureAt === null
          ? ""
          : `<div class="note">${timeText(status.lastFailureAt)}</div>`
      }`,
    ),
    cell("Rule", "rule", escapeHtml(status.rule)),
    cell("History", "history", historyText(status)),
  ];
  if (canAct) {
    cells.push(cell(
      "Actions",
      "actions",
      reachable
        ? actionButtons(breaker, status)
        : '<span class="note">an older breaker of a duplicated name: actions reach the newest</span>',
    ));
  }
  return `<tr class="breaker" data-name="${escapeHtml(status.name)}" data-state="${state}">${
    cells.join("")
  }</tr>`;
}

function groupsTable(report: StatusReport): string {
  if (report.groups.length === 0) return "";
  const rows = report.groups.map((group) =>
    `<tr class="group" data-name="${escapeHtml(group.name)}"><td class="name" data-label="Group">${
      escapeHtml(group.name)
    }</td><td class="number" data-label="Members">${group.total}</td><td class="number" data-label="Closed">${group.closed}</td><td class="number" data-label="Open">${group.open}</td><td class="number" data-label="Half-open">${group.halfOpen}</td><td class="number" data-label="Recovering">${group.recovering}</td><td class="number" data-label="Isolated">${group.isolated}</td><td class="number" data-label="Not listed">${group.unlisted}</td></tr>`
  );
  return `<h2>Groups</h2>
<table class="groups">
<thead><tr><th>Group</th><th>Members</th><th>Closed</th><th>Open</th><th>Half-open</th><th>Recovering</th><th>Isolated</th><th>Not listed</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>`;
}

/** The `<main>` element: what a refresh replaces. */
export function pageMain(
  report: StatusReport,
  listed: readonly ListedBreaker[],
  settings: PageSettings,
): string {
  const { summary } = report;
  const sorted = [...listed].sort((a, b) =>
    STATE_ORDER[a.status.state] - STATE_ORDER[b.status.state]
  );
  const rows = sorted.map((listed) => row(listed, settings.canAct));
  const duplicates = summary.duplicates.length === 0
    ? ""
    : `<p class="warning">${
      summary.duplicates.length === 1 ? "One name is" : `${summary.duplicates.length} names are`
    } held by several breakers, each listed: ${
      summary.duplicates.map((name) => `<code>${escapeHtml(name)}</code>`).join(", ")
    }</p>`;
  const table = listed.length === 0 ? "" : `<table class="breakers">
<thead><tr><th>Name</th><th>State</th><th>Consecutive failures</th><th>Window</th><th>Retry in</th><th>Last failure</th><th>Rule</th><th>History</th>${
    settings.canAct ? "<th>Actions</th>" : ""
  }</tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>`;
  return `<main>
<p class="summary ${summary.allClosed ? "all-closed" : "not-all-closed"}">${
    escapeHtml(summaryText(report))
  }</p>
${duplicates}
${table}
${groupsTable(report)}
</main>`;
}

const STYLE = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { margin: 1.5rem 2rem; }
h1 { font-size: 1.4rem; margin: 0 0 .5rem; }
h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
.summary { margin: 0 0 1rem; font-weight: 600; }
.summary.all-closed { color: #1a7f37; }
.summary.not-all-closed { color: #cf222e; }
.warning { color: #cf222e; }
.controls { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; margin: 0 0 1rem; }
.controls input[type=search] { font: inherit; padding: .2rem .4rem; min-width: 14rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #8885; vertical-align: top; }
th { font-weight: 600; }
.name { font-family: ui-monospace, monospace; white-space: nowrap; }
.number { font-variant-numeric: tabular-nums; }
.failure { max-width: 28rem; overflow-wrap: anywhere; }
.rule { max-width: 18rem; font-size: .85rem; }
.note { font-size: .8rem; opacity: .8; margin-top: .2rem; }
.history ol { margin: .3rem 0 0; padding-left: 1.2rem; font-size: .85rem; }
.state { display: inline-block; padding: .1rem .55rem; border-radius: .8rem; font-weight: 600; color: #fff; }
.state-closed { background-color: #1a7f37; }
.state-open { background-color: #cf222e; }
.state-half-open { background-color: #d4a72c; color: #1f2328; }
.state-recovering { background-color: #0969da; }
.state-isolated { background-color: #8250df; }
button { font: inherit; padding: .1rem .6rem; cursor: pointer; }
.feedback { display: block; font-size: .85rem; }
.feedback.failed { color: #cf222e; }
tr.hidden { display: none; }
footer { margin-top: 1rem; font-size: .85rem; opacity: .8; }
@media (max-width: 700px) {
  body { margin: 1rem .75rem; }
  table, tbody, tr, td { display: block; width: auto; }
  thead { display: none; }
  tr { border: 1px solid #8885; border-radius: .5rem; margin: 0 0 .75rem; padding: .3rem .5rem; }
  tr.hidden { display: none; }
  td { border: none; padding: .2rem 0; max-width: none; }
  .name { white-space: normal; overflow-wrap: anywhere; }
  td::before { content: attr(data-label) ": "; font-weight: 600; font-family: system-ui, sans-serif; }
  .controls input[type=search] { min-width: 0; flex: 1 1 10rem; }
}
`;

// Refreshes <main> from the same URL (so it works under any prefix), keeps the filter, opened
// histories and each action's feedback across refreshes, and posts actions there.
const SCRIPT = `
const interval = Number(document.body.dataset.refreshInterval);
const refreshStatus = document.getElementById("refresh-status");
const filter = document.getElementById("filter");
const notClosed = document.getElementById("not-closed");
const feedback = new Map();
let timer;
function applyView() {
  const text = filter.value.trim().toLowerCase();
  for (const row of document.querySelectorAll("tr.breaker")) {
    const hidden = (text !== "" && !row.dataset.name.toLowerCase().includes(text)) ||
      (notClosed.checked && row.dataset.state === "closed");
    row.classList.toggle("hidden", hidden);
  }
  for (const output of document.querySelectorAll("output.feedback")) {
    const shown = feedback.get(output.dataset.name);
    if (shown === undefined) continue;
    output.textContent = shown.text;
    output.classList.toggle("failed", !shown.ok);
  }
}
async function refresh() {
  try {
    const response = await fetch(location.href, {
      headers: { accept: "text/html", "x-status-fragment": "main" },
      cache: "no-store",
    });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const template = document.createElement("template");
    template.innerHTML = await response.text();
    const main = template.content.querySelector("main");
    if (main === null) throw new Error("the answer has no <main>");
    // Histories the viewer opened stay open.
    const opened = new Set([...document.querySelectorAll("tr.breaker details[open]")]
      .map((details) => details.closest("tr").dataset.name));
    for (const details of main.querySelectorAll("tr.breaker details")) {
      if (opened.has(details.closest("tr").dataset.name)) details.open = true;
    }
    document.querySelector("main").replaceWith(main);
    applyView();
    refreshStatus.textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (error) {
    refreshStatus.textContent = "Refresh failed at " + new Date().toLocaleTimeString() + ": " + error.message;
  }
}
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => {
    if (!document.hidden) await refresh();
    schedule();
  }, interval);
}
filter.addEventListener("input", applyView);
notClosed.addEventListener("change", applyView);
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (button === null) return;
  const { action, name } = button.dataset;
  button.disabled = true;
  clearTimeout(timer);
  feedback.set(name, { text: action + "…", ok: true });
  applyView();
  try {
    const response = await fetch(location.href, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ action, name }),
    });
    const text = response.ok ? action + " done at " + new Date().toLocaleTimeString()
      : action + " failed: " + (await response.text()).trim();
    feedback.set(name, { text, ok: response.ok });
  } catch (error) {
    feedback.set(name, { text: action + " failed: " + error.message, ok: false });
  } finally {
    await refresh();
    schedule();
  }
});
applyView();
schedule();
`;

/** The whole page. */
export function statusPage(
  report: StatusReport,
  listed: readonly ListedBreaker[],
  settings: PageSettings,
  nonce: string,
): string {
  const title = escapeHtml(settings.title);
  const refreshSeconds = Math.max(1, Math.round(settings.refreshInterval / 1_000));
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<noscript><meta http-equiv="refresh" content="${refreshSeconds}"></noscript>
<style nonce="${nonce}">${STYLE}</style>
</head>
<body data-refresh-interval="${settings.refreshInterval}">
<h1>${title}</h1>
<div class="controls">
<input type="search" id="filter" placeholder="Filter by name" aria-label="Filter by name">
<label><input type="checkbox" id="not-closed"> Only breakers not closed</label>
</div>
${pageMain(report, listed, settings)}
<footer>
<a href="?format=json">JSON</a> · <a href="?format=prometheus">Prometheus</a> ·
<a href="?format=health">Health</a> ·
<span id="refresh-status">Refreshes every ${formatDuration(settings.refreshInterval)}</span>
</footer>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}
