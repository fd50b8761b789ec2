/**
 * Content negotiation for the status handler: which of its formats an `Accept` header
 * prefers (RFC 9110: the highest `q`, then the most specific media range).
 *
 * @module
 */

/** The formats a read can answer in. */
export type Format = "json" | "prometheus" | "html";

/** What each format answers to in `Accept`, in the order that breaks ties (JSON by default). */
const MEDIA_TYPES: readonly (readonly [Format, readonly string[]])[] = [
  ["json", ["application/json"]],
  ["html", ["text/html"]],
  ["prometheus", ["text/plain", "application/openmetrics-text"]],
];

/**
 * The format an `Accept` header prefers: the highest `q`, then the most specific range
 * (`text/plain` over `text/*` over the full wildcard), then the order of `MEDIA_TYPES`. An
 * `Accept` nothing matches gets JSON (RFC 9110 lets a server disregard it).
 */
export function negotiate(accept: string | null): Format {
  if (accept === null || accept.trim() === "") return "json";
  const ranges = parseAccept(accept);
  let best: { format: Format; q: number; specificity: number } | undefined;
  for (const [format, types] of MEDIA_TYPES) {
    for (const type of types) {
      const match = matchRange(ranges, type);
      if (match === undefined || match.q === 0) continue;
      if (
        best === undefined || match.q > best.q ||
        (match.q === best.q && match.specificity > best.specificity)
      ) {
        best = { format, q: match.q, specificity: match.specificity };
      }
    }
  }
  return best?.format ?? "json";
}

interface MediaRange {
  readonly type: string;
  readonly subtype: string;
  readonly q: number;
}

/** A weight as RFC 9110 writes it: 0 to 1, at most three decimals. */
const QVALUE = /^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/;

function parseAccept(accept: string): MediaRange[] {
  const ranges: MediaRange[] = [];
  for (const part of accept.split(",")) {
    const [mediaType = "", ...parameters] = part.split(";");
    const [type, subtype, extra] = mediaType.trim().toLowerCase().split("/");
    if (type === undefined || subtype === undefined || extra !== undefined) continue;
    if (type === "" || subtype === "") continue;
    let q: number | undefined = 1;
    for (const parameter of parameters) {
      const [key, value = ""] = parameter.split("=").map((piece) => piece.trim());
      if (key?.toLowerCase() === "q") q = QVALUE.test(value) ? Number(value) : undefined;
    }
    // A range with a malformed weight says nothing reliable: skip it.
    if (q === undefined) continue;
    ranges.push({ type, subtype, q });
  }
  return ranges;
}

/** The weight the most specific range matching `mediaType` gives it. */
function matchRange(
  ranges: readonly MediaRange[],
  mediaType: string,
): { q: number; specificity: number } | undefined {
  const [type, subtype] = mediaType.split("/");
  let best: { q: number; specificity: number } | undefined;
  for (const range of ranges) {
    let specificity: number;
    if (range.type === type && range.subtype === subtype) specificity = 2;
    else if (range.type === type && range.subtype === "*") specificity = 1;
    else if (range.type === "*" && range.subtype === "*") specificity = 0;
    else continue;
    if (best === undefined || specificity > best.specificity) best = { q: range.q, specificity };
  }
  return best;
}
