/**
 * OpenTelemetry metrics for circuit breakers: {@linkcode instrumentBreakers} records every call,
 * rejection and state change of the breakers of a registry (or of one breaker) on an
 * OpenTelemetry `Meter`, and reports each breaker's current state when metrics are collected.
 * Its only dependency is `@opentelemetry/api`; the SDK and exporters are the application's.
 *
 * | metric | instrument | unit | attributes |
 * | --- | --- | --- | --- |
 * | `circuit_breaker.calls` | Counter | `{call}` | `circuit_breaker.name`, `circuit_breaker.call.outcome`, `error.type` (failures), `circuit_breaker.state` (rejections) |
 * | `circuit_breaker.call.duration` | Histogram | `s` | `circuit_breaker.name`, `circuit_breaker.call.outcome`, `error.type` (failures) |
 * | `circuit_breaker.transitions` | Counter | `{transition}` | `circuit_breaker.name`, `circuit_breaker.previous_state`, `circuit_breaker.state` |
 * | `circuit_breaker.status` | Asynchronous UpDownCounter | `1` | `circuit_breaker.name`, `circuit_breaker.state` |
 *
 * - `circuit_breaker.calls` counts calls by `circuit_breaker.call.outcome`: `success` and
 *   `failure` (the call ran and counted that way), `rejected` (turned away without running, even
 *   when a `fallback` served it). A call that counts neither way (an `ignore`d error, the
 *   caller's abort) is not recorded. A rejection carries the `circuit_breaker.state` that turned
 *   it away: `open`, `half_open` (its trials were taken), `recovering` or `isolated`.
 * - `circuit_breaker.call.duration` is the time of each call that ran (by the breaker's `clock`),
 *   in seconds, with explicit bucket boundaries from 5 ms to 60 s (the HTTP conventions'
 *   boundaries extended for streams).
 * - `circuit_breaker.transitions` counts announced state changes, e.g. `closed` → `open`.
 * - `circuit_breaker.status` has one series per breaker and state: 1 for the state the breaker
 *   is in when metrics are collected, 0 for the other four (OpenTelemetry's pattern for state
 *   metrics: a sum over breakers counts the breakers in each state).
 * - `circuit_breaker.state` and `circuit_breaker.previous_state` take the values `closed`,
 *   `open`, `half_open`, `recovering`, `isolated`: the breaker's `state` written the way
 *   OpenTelemetry writes enumerated values (`half-open` becomes `half_open`).
 * - `error.type` is the error's `name` (e.g. `TimeoutError`, `TypeError`), else its class name
 *   when the name is only `Error`; a failed `Response` (see `isFailureResult`) gives its status
 *   code, e.g. `503`; anything else `_OTHER`. The `errorType` option replaces this.
 *
 * @example Metrics of every named breaker, on the global meter provider
 * ```ts
 * import { Breaker } from "@circuit/breaker";
 * import { instrumentBreakers } from "@circuit/breaker/otel";
 * import assert from "node:assert/strict";
 *
 * using _metrics = instrumentBreakers(); // the default registry: every breaker given a name
 * const db = new Breaker({ name: "db" });
 * assert.equal(await db.execute(async () => "row"), "row");
 * ```
 *
 * @module
 */

import {
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
  type MeterProvider,
  metrics,
  type ObservableResult,
  ValueType,
} from "@opentelemetry/api";
import { Breaker } from "./breaker.ts";

import { DURATION_BOUNDS } from "./breaker_metrics.ts";
import { checkOptionNames, fail, optionsObject } from "./core/validate.ts";
import type { BreakerState } from "./core/snapshot.ts";
import type { BreakerListener } from "./events.ts";
import { BreakerRegistry, defaultRegistry } from "./registry.ts";

/**
 * Options of {@linkcode instrumentBreakers}. Give a `meter` or a `meterProvider`, or neither
 * for the global meter provider's meter.
 *
 * @example Recording on a meter provider of one's own
 * ```ts
 * import { metrics } from "@opentelemetry/api";
 * import type { InstrumentBreakersOptions } from "@circuit/breaker/otel";
 *
 * const meterProvider = metrics.getMeterProvider(); // e.g. the SDK's, with an OTLP exporter
 * const options: InstrumentBreakersOptions = { meterProvider };
 * ```
 */
export interface InstrumentBreakersOptions {
  /** The meter to create the instruments on. */
  readonly meter?: Meter;
  /**
   * The meter provider to get the meter `@circuit/breaker` from.
   * @default {metrics.getMeterProvider()}
   */
  readonly meterProvider?: MeterProvider;
  /**
   * The `error.type` of a failure: a short name of its class, never a message (every value
   * makes new series). A result that is not a non-empty string, or a throw (reported with
   * `console.error`), gives `_OTHER`.
   */
  readonly errorType?: (error: unknown) => string;
}

/** The instrumentation scope's name and version (kept equal to deno.json's by a test). */
const SCOPE_NAME = "@circuit/breaker";
const SCOPE_VERSION = "0.1.0";

const OPTION_NAMES = ["meter", "meterProvider", "errorType"] as const;
const CONTEXT = "Cannot instrument breakers";

// Attribute names (semantic-convention style: namespaced, lowercase, snake_case words).
const NAME = "circuit_breaker.name";
const OUTCOME = "circuit_breaker.call.outcome";
const STATE = "circuit_breaker.state";
const PREVIOUS_STATE = "circuit_breaker.previous_state";
const ERROR_TYPE = "error.type";

const STATES: readonly BreakerState[] = ["closed", "open", "half-open", "recovering", "isolated"];

/** A breaker state as an attribute value: OpenTelemetry's enumerated values use `_`. */
const STATE_VALUES: Readonly<Record<BreakerState, string>> = {
  closed: "closed",
  open: "open",
  "half-open": "half_open",
  recovering: "recovering",
  isolated: "isolated",
};

/** Past this many error types, a breaker's failure attributes are made per call, not kept. */
const MAX_CACHED_ERROR_TYPES = 64;

/**
 * The attribute sets of one breaker, made once each and reused on every call, so that
 * recording allocates nothing in the common case.
 */
class BreakerAttributeSets {
  readonly success: Attributes;
  readonly #name: string;
  readonly #failures = new Map<string, Attributes>();
  readonly #rejections = new Map<BreakerState, Attributes>();
  readonly #transitions = new Map<string, Attributes>();
  #status: readonly Attributes[] | undefined;

  constructor(name: string) {
    this.#name = name;
    this.success = { [NAME]: name, [OUTCOME]: "success" };
  }

  failure(errorType: string): Attributes {
    let attributes = this.#failures.get(errorType);
    if (attributes === undefined) {
      attributes = { [NAME]: this.#name, [OUTCOME]: "failure", [ERROR_TYPE]: errorType };
      if (this.#failures.size < MAX_CACHED_ERROR_TYPES) this.#failures.set(errorType, attributes);
    }
    return attributes;
  }

  rejection(state: BreakerState): Attributes {
    let attributes = this.#rejections.get(state);
    if (attributes === undefined) {
      attributes = { [NAME]: this.#name, [OUTCOME]: "rejected", [STATE]: STATE_VALUES[state] };
      this.#rejections.set(state, attributes);
    }
    return attributes;
  }

  transition(from: BreakerState, to: BreakerState): Attributes {
    const key = `${from}>${to}`;
    let attributes = this.#transitions.get(key);
    if (attributes === undefined) {
      attributes = {
        [NAME]: this.#name,
        [PREVIOUS_STATE]: STATE_VALUES[from],
        [STATE]: STATE_VALUES[to],
      };
      this.#transitions.set(key, attributes);
    }
    return attributes;
  }

  /** One attribute set per state, in the order of `STATES`. */
  get status(): readonly Attributes[] {
    return this.#status ??= STATES.map((state) => ({
      [NAME]: this.#name,
      [STATE]: STATE_VALUES[state],
    }));
  }
}

/**
 * Records the calls, rejections and state changes of the breakers of `breakers` (a registry,
 * by default {@linkcode defaultRegistry}: every breaker given a name; or one breaker) as
 * OpenTelemetry metrics, and reports their current state at each collection. A breaker that
 * joins the registry later is recorded too; one that leaves it no longer is. Dispose the
 * returned value to stop: the listener leaves every breaker and nothing more is recorded.
 * The instruments are listed in the module documentation.
 *
 * Instrument a registry or a breaker listed in it, not both: its calls would count twice.
 *
 * @throws {TypeError} When `breakers` is neither a `BreakerRegistry` nor a `Breaker`, or an option
 * is unknown, has the wrong type, or `meter` and `meterProvider` are both given.
 *
 * @example Metrics of the breakers of one registry, on a given meter provider
 * ```ts
 * import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
 * import { BreakerRegistry } from "@circuit/breaker";
 * import { instrumentBreakers } from "@circuit/breaker/otel";
 * import assert from "node:assert/strict";
 *
 * // A reader collected on demand; in production, the SDK's reader with an OTLP exporter.
 * class Reader extends MetricReader {
 *   protected override onForceFlush = () => Promise.resolve();
 *   protected override onShutdown = () => Promise.resolve();
 * }
 * const reader = new Reader();
 * const meterProvider = new MeterProvider({ readers: [reader] });
 * const registry = new BreakerRegistry();
 * using _metrics = instrumentBreakers(registry, { meterProvider });
 * const payments = registry.breaker("payments", { failureThreshold: 3 });
 * await payments.execute(async () => "charged");
 * const { resourceMetrics } = await reader.collect();
 * const names = resourceMetrics.scopeMetrics.flatMap(({ metrics }) =>
 *   metrics.map((metric) => metric.descriptor.name)
 * );
 * assert.ok(names.includes("circuit_breaker.calls"));
 * ```
 */
export function instrumentBreakers(
  breakers: BreakerRegistry | Breaker = defaultRegistry,
  options: InstrumentBreakersOptions = {},
): Disposable {
  if (!(breakers instanceof BreakerRegistry) && !(breakers instanceof Breaker)) {
    fail(CONTEXT, "breakers", "a BreakerRegistry or a Breaker", breakers, true);
  }
  const meter = meterOf(options);
  const errorTypeOf = errorTypeOption(options);

  const calls: Counter = meter.createCounter("circuit_breaker.calls", {
    description: "Calls through circuit breakers, by outcome: success, failure or rejected.",
    unit: "{call}",
    valueType: ValueType.INT,
  });
  const duration: Histogram = meter.createHistogram("circuit_breaker.call.duration", {
    description: "Duration of the calls circuit breakers let run.",
    unit: "s",
    advice: { explicitBucketBoundaries: [...DURATION_BOUNDS] },
  });
  const transitions: Counter = meter.createCounter("circuit_breaker.transitions", {
    description: "State transitions of circuit breakers.",
    unit: "{transition}",
    valueType: ValueType.INT,
  });
  const status = meter.createObservableUpDownCounter("circuit_breaker.status", {
    description: "1 for the state a circuit breaker is in, 0 for the other states.",
    unit: "1",
    valueType: ValueType.INT,
  });

  const attributeSets = new WeakMap<Breaker, BreakerAttributeSets>();
  const attributesOf = (breaker: Breaker): BreakerAttributeSets => {
    let sets = attributeSets.get(breaker);
    if (sets === undefined) {
      sets = new BreakerAttributeSets(breaker.name);
      attributeSets.set(breaker, sets);
    }
    return sets;
  };

  const listener: BreakerListener = {
    success({ breaker, durationMs }) {
      const attributes = attributesOf(breaker).success;
      calls.add(1, attributes);
      duration.record(seconds(durationMs), attributes);
    },
    failure({ breaker, error, durationMs }) {
      const attributes = attributesOf(breaker).failure(errorTypeOf(error));
      calls.add(1, attributes);
      duration.record(seconds(durationMs), attributes);
    },
    rejected({ breaker, error }) {
      calls.add(1, attributesOf(breaker).rejection(error.state));
    },
    stateChange({ breaker, from, to }) {
      transitions.add(1, attributesOf(breaker).transition(from, to));
    },
  };

  // The meter keeps this callback as long as it lives: it holds the target weakly, so that an
  // instrumentation never disposed keeps no registry or breaker alive.
  const target = new WeakRef<BreakerRegistry | Breaker>(breakers);
  const observeStatus = (result: ObservableResult): void => {
    const observed = target.deref();
    if (observed === undefined) return;
    for (const breaker of observed instanceof Breaker ? [observed] : observed) {
      const state = breaker.state;
      const sets = attributesOf(breaker).status;
      for (let i = 0; i < STATES.length; i++) {
        result.observe(STATES[i] === state ? 1 : 0, sets[i]);
      }
    }
  };

  const subscription = breakers.addListener(listener);
  status.addCallback(observeStatus);

  let instrumented = true;
  return {
    [Symbol.dispose]: () => {
      if (!instrumented) return;
      instrumented = false;
      status.removeCallback(observeStatus);
      subscription[Symbol.dispose]();
    },
  };
}

/** The meter the options give, or the global provider's. */
function meterOf(options: InstrumentBreakersOptions): Meter {
  optionsObject(CONTEXT, options);
  checkOptionNames(options, OPTION_NAMES, CONTEXT);
  const { meter, meterProvider } = options;
  if (meter !== undefined && meterProvider !== undefined) {
    throw new TypeError(`${CONTEXT}: give "meter" or "meterProvider", not both`);
  }
  if (meter !== undefined) {
    if (!isMeter(meter)) {
      fail(CONTEXT, "meter", "an OpenTelemetry Meter", meter, true);
    }
    return meter;
  }
  if (meterProvider !== undefined) {
    if (typeof (meterProvider as Partial<MeterProvider> | null)?.getMeter !== "function") {
      fail(CONTEXT, "meterProvider", "an OpenTelemetry MeterProvider", meterProvider, true);
    }
    return meterProvider.getMeter(SCOPE_NAME, SCOPE_VERSION);
  }
  return metrics.getMeter(SCOPE_NAME, SCOPE_VERSION);
}

function isMeter(value: unknown): value is Meter {
  const meter = value as Partial<Meter> | null;
  return typeof meter === "object" && meter !== null &&
    typeof meter.createCounter === "function" &&
    typeof meter.createHistogram === "function" &&
    typeof meter.createObservableUpDownCounter === "function";
}

/** The `error.type` function: the option, guarded, or the default. */
function errorTypeOption(options: InstrumentBreakersOptions): (error: unknown) => string {
  const { errorType } = options;
  if (errorType === undefined) return defaultErrorType;
  if (typeof errorType !== "function") {
    fail(CONTEXT, "errorType", "a function", errorType, true);
  }
  return (error) => {
    try {
      const type: unknown = errorType(error);
      return typeof type === "string" && type !== "" ? type : OTHER;
    } catch (thrown) {
      console.error(`instrumentBreakers(): "errorType" threw; error.type is ${OTHER}`, thrown);
      return OTHER;
    }
  };
}

/** `error.type`'s fallback value in OpenTelemetry's conventions. */
const OTHER = "_OTHER";

/** An error's name, else its class name; a `Response`'s status; else `_OTHER`. */
function defaultErrorType(error: unknown): string {
  if (error instanceof Error) {
    const { name } = error;
    if (typeof name === "string" && name !== "" && name !== "Error") return name;
    const className: unknown = error.constructor?.name;
    return typeof className === "string" && className !== "" ? className : "Error";
  }
  if (typeof Response === "function" && error instanceof Response) return String(error.status);
  return OTHER;
}

/** Milliseconds by the breaker's clock as seconds; a clock set back gives 0, not a negative. */
function seconds(durationMs: number): number {
  return durationMs > 0 ? durationMs / 1000 : 0;
}
