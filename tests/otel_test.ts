import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { type Attributes, type Meter, metrics } from "@opentelemetry/api";
import {
  DataPointType,
  type Histogram,
  MeterProvider,
  type MetricData,
  MetricReader,
} from "@opentelemetry/sdk-metrics";
import { Breaker, BreakerOpenError, BreakerRegistry } from "../mod.ts";
import { instrumentBreakers } from "../src/otel.ts";
import { captureConsole } from "./console_capture.ts";
import { deferred, flush, type ManualClock, manualClock } from "./manual_clock.ts";
import { describe, it } from "./timer_leaks.ts";

/** A reader collected on demand: no export interval, so no timer. */
class CollectingReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

interface Telemetry extends AsyncDisposable {
  readonly meterProvider: MeterProvider;
  /** Collects now: the metrics of the `@circuit/breaker` scope, by name. */
  collect(): Promise<Map<string, MetricData>>;
}

/** An SDK meter provider with an in-memory reader; disposing it shuts the provider down. */
function telemetry(): Telemetry {
  const reader = new CollectingReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  return {
    meterProvider,
    async collect() {
      const { resourceMetrics, errors } = await reader.collect();
      assert.deepEqual(errors, []);
      const byName = new Map<string, MetricData>();
      for (const { scope, metrics } of resourceMetrics.scopeMetrics) {
        if (scope.name !== "@circuit/breaker") continue;
        for (const metric of metrics) byName.set(metric.descriptor.name, metric);
      }
      return byName;
    },
    [Symbol.asyncDispose]: () => meterProvider.shutdown(),
  };
}

type Point<T> = [attributes: Attributes, value: T];

function metricOf(collected: Map<string, MetricData>, name: string): MetricData {
  const metric = collected.get(name);
  assert.ok(metric, `metric ${name} was not collected`);
  return metric;
}

/** A sum's points, in a stable order; `only` keeps those of one breaker. */
function sumPoints(
  collected: Map<string, MetricData>,
  name: string,
  only?: string,
): Point<number>[] {
  const metric = metricOf(collected, name);
  assert.equal(metric.dataPointType, DataPointType.SUM);
  return sorted(
    metric.dataPoints
      .filter((point) => only === undefined || point.attributes["circuit_breaker.name"] === only)
      .map((point): Point<number> => [point.attributes, point.value]),
  );
}

interface HistogramSummary {
  count: number;
  sum: number | undefined;
  counts: number[];
}

/** A histogram's points as counts, sums and bucket counts, in a stable order. */
function histogramPoints(
  collected: Map<string, MetricData>,
  name: string,
): Point<HistogramSummary>[] {
  const metric = metricOf(collected, name);
  assert.equal(metric.dataPointType, DataPointType.HISTOGRAM);
  return sorted(metric.dataPoints.map((point): Point<HistogramSummary> => {
    const { count, sum, buckets } = point.value as Histogram;
    assert.deepEqual(buckets.boundaries, BOUNDARIES);
    return [point.attributes, { count, sum, counts: buckets.counts }];
  }));
}

function sorted<T>(points: Point<T>[]): Point<T>[] {
  const key = ([attributes]: Point<T>) => JSON.stringify(Object.entries(attributes).sort());
  return points.sort((a, b) => key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
}

/** A breaker's five status points: 1 for `current`, 0 for the other states. */
function statusPoints(name: string, current: string): Point<number>[] {
  return sorted(
    ["closed", "open", "half_open", "recovering", "isolated"].map((state): Point<number> => [
      { "circuit_breaker.name": name, "circuit_breaker.state": state },
      state === current ? 1 : 0,
    ]),
  );
}

const BOUNDARIES = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
  30,
  60,
];

/** Bucket counts holding `count` observations in the bucket whose upper boundary is `le`. */
function bucketCounts(...observations: [le: number, count: number][]): number[] {
  const counts = new Array<number>(BOUNDARIES.length + 1).fill(0);
  for (const [le, count] of observations) counts[BOUNDARIES.indexOf(le)]! += count;
  return counts;
}

/** A call that takes `ms` by the manual clock, then returns or throws what `outcome` does. */
function taking(clock: ManualClock, ms: number, outcome: () => unknown): () => Promise<unknown> {
  return async () => {
    clock.advance(ms);
    await Promise.resolve();
    return outcome();
  };
}

class QueryError extends Error {}

const callAttributes = (name: string, outcome: string, extra: Attributes = {}): Attributes => ({
  "circuit_breaker.name": name,
  "circuit_breaker.call.outcome": outcome,
  ...extra,
});

const transitionAttributes = (name: string, from: string, to: string): Attributes => ({
  "circuit_breaker.name": name,
  "circuit_breaker.previous_state": from,
  "circuit_breaker.state": to,
});

describe("instrumentBreakers: instruments", () => {
  it("creates four instruments with their names, kinds, units and descriptions", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const db = registry.breaker("db", { failureThreshold: 1 });
    using _metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });
    await db.execute(() => Promise.resolve("row"));
    await assert.rejects(db.execute(() => Promise.reject(new Error("down"))));

    const collected = await recorded.collect();
    const shapes = [...collected.values()].map((metric) => ({
      name: metric.descriptor.name,
      unit: metric.descriptor.unit,
      kind: metric.dataPointType,
      monotonic: metric.dataPointType === DataPointType.SUM ? metric.isMonotonic : undefined,
    })).sort((a, b) => a.name < b.name ? -1 : 1);
    assert.deepEqual(shapes, [
      {
        name: "circuit_breaker.call.duration",
        unit: "s",
        kind: DataPointType.HISTOGRAM,
        monotonic: undefined,
      },
      { name: "circuit_breaker.calls", unit: "{call}", kind: DataPointType.SUM, monotonic: true },
      { name: "circuit_breaker.status", unit: "1", kind: DataPointType.SUM, monotonic: false },
      {
        name: "circuit_breaker.transitions",
        unit: "{transition}",
        kind: DataPointType.SUM,
        monotonic: true,
      },
    ]);
    for (const metric of collected.values()) {
      assert.match(metric.descriptor.description, /circuit breaker/i);
    }
  });

  it("names its scope @circuit/breaker, with the version in deno.json", async () => {
    const reader = new CollectingReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    try {
      const registry = new BreakerRegistry();
      using _metrics = instrumentBreakers(registry, { meterProvider });
      await registry.breaker("db").execute(() => Promise.resolve("row"));
      const { resourceMetrics } = await reader.collect();
      const config = JSON.parse(
        await readFile(new URL("../deno.json", import.meta.url), "utf8"),
      ) as { version: string };
      assert.deepEqual(
        resourceMetrics.scopeMetrics.map(({ scope }) => [scope.name, scope.version]),
        [["@circuit/breaker", config.version]],
      );
    } finally {
      await meterProvider.shutdown();
    }
  });
});

describe("instrumentBreakers: calls", () => {
  it("counts successes and failures by outcome and error.type, with their durations", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const clock = manualClock();
    const db = registry.breaker("db", { clock, failureThreshold: 10 });
    using _metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });

    await db.execute(taking(clock, 40, () => "row")); // 0.04 s
    await db.execute(taking(clock, 60, () => "row")); // 0.06 s
    await db.execute(taking(clock, 3_000, () => "row")); // 3 s
    await assert.rejects(db.execute(taking(clock, 1_500, () => {
      throw new TypeError("bad row");
    })));
    await assert.rejects(db.execute(taking(clock, 200, () => {
      throw new QueryError("syntax");
    })));
    await assert.rejects(db.execute(taking(clock, 300, () => {
      throw new QueryError("deadlock");
    })));
    await assert.rejects(db.execute(taking(clock, 0, () => {
      throw "a string"; // neither an Error nor a Response
    })));

    const collected = await recorded.collect();
    assert.deepEqual(
      sumPoints(collected, "circuit_breaker.calls"),
      sorted([
        [callAttributes("db", "success"), 3],
        [callAttributes("db", "failure", { "error.type": "TypeError" }), 1],
        [callAttributes("db", "failure", { "error.type": "QueryError" }), 2],
        [callAttributes("db", "failure", { "error.type": "_OTHER" }), 1],
      ]),
    );
    const durations = histogramPoints(collected, "circuit_breaker.call.duration");
    const rounded = durations.map((
      [attributes, { count, sum, counts }],
    ): Point<HistogramSummary> => [
      attributes,
      { count, sum: Math.round((sum ?? NaN) * 1e6) / 1e6, counts },
    ]);
    assert.deepEqual(
      rounded,
      sorted<HistogramSummary>([
        [callAttributes("db", "success"), {
          count: 3,
          sum: 3.1,
          counts: bucketCounts([0.05, 1], [0.075, 1], [5, 1]),
        }],
        [callAttributes("db", "failure", { "error.type": "TypeError" }), {
          count: 1,
          sum: 1.5,
          counts: bucketCounts([2.5, 1]),
        }],
        [callAttributes("db", "failure", { "error.type": "QueryError" }), {
          count: 2,
          sum: 0.5,
          counts: bucketCounts([0.25, 1], [0.5, 1]),
        }],
        [callAttributes("db", "failure", { "error.type": "_OTHER" }), {
          count: 1,
          sum: 0,
          counts: bucketCounts([0.005, 1]),
        }],
      ]),
    );
  });

  it("gives a failed Response its status code as error.type", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const api = registry.breaker("api", {
      clock: manualClock(),
      isFailureResult: (response) => (response as Response).status >= 500,
    });
    using _metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });
    const response = await api.execute(() => Promise.resolve(new Response(null, { status: 503 })));
    assert.equal(response.status, 503);
    await api.execute(() => Promise.resolve(new Response("ok")));

    assert.deepEqual(
      sumPoints(await recorded.collect(), "circuit_breaker.calls"),
      sorted([
        [callAttributes("api", "success"), 1],
        [callAttributes("api", "failure", { "error.type": "503" }), 1],
      ]),
    );
  });

  it("does not record calls that count neither way", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const db = registry.breaker("db", { ignore: (error) => error === "cancelled" });
    using _metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });
    await assert.rejects(db.execute(() => Promise.reject("cancelled")));
    const collected = await recorded.collect();
    // The SDK leaves out an instrument without points.
    assert.ok(!collected.has("circuit_breaker.calls"));
    assert.ok(!collected.has("circuit_breaker.call.duration"));
    assert.deepEqual(sumPoints(collected, "circuit_breaker.status"), statusPoints("db", "closed"));
  });

  it("records synchronous calls too", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const clock = manualClock();
    const parser = registry.breaker("parser", { clock });
    using _metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });
    parser.executeSync(() => {
      clock.advance(20);
      return JSON.parse("{}");
    });
    assert.throws(() => parser.executeSync(() => JSON.parse("{")), SyntaxError);

    const collected = await recorded.collect();
    assert.deepEqual(
      sumPoints(collected, "circuit_breaker.calls"),
      sorted([
        [callAttributes("parser", "success"), 1],
        [callAttributes("parser", "failure", { "error.type": "SyntaxError" }), 1],
      ]),
    );
    const [, success] = histogramPoints(collected, "circuit_breaker.call.duration")
      .find(([attributes]) => attributes["circuit_breaker.call.outcome"] === "success")!;
    assert.equal(success.sum, 0.02);
  });
});

describe("instrumentBreakers: rejections and transitions", () => {
  it("counts rejections by the state that turned them away, and every transition", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const clock = manualClock();
    const db = registry.breaker("db", {
      clock,
      failureThreshold: 1,
      recoveryTimeout: 1_000,
      fallback: () => "cached",
    });
    using _metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });

    await assert.rejects(db.execute(() => Promise.reject(new Error("down")))); // closed -> open
    assert.equal(await db.execute(() => Promise.resolve("row")), "cached"); // rejected: open
    clock.advance(1_000);
    const trial = deferred<string>();
    const trialCall = db.execute(() => trial.promise); // open -> half-open, the trial runs
    assert.equal(await db.execute(() => Promise.resolve("row")), "cached"); // rejected: half-open
    trial.resolve("row");
    assert.equal(await trialCall, "row"); // half-open -> closed
    {
      using _hold = db.isolate(); // closed -> isolated
      assert.equal(await db.execute(() => Promise.resolve("row")), "cached"); // rejected: isolated
    } // isolated -> closed
    await flush();

    const collected = await recorded.collect();
    assert.deepEqual(
      sumPoints(collected, "circuit_breaker.calls"),
      sorted([
        [callAttributes("db", "failure", { "error.type": "Error" }), 1],
        [callAttributes("db", "success"), 1],
        [callAttributes("db", "rejected", { "circuit_breaker.state": "open" }), 1],
        [callAttributes("db", "rejected", { "circuit_breaker.state": "half_open" }), 1],
        [callAttributes("db", "rejected", { "circuit_breaker.state": "isolated" }), 1],
      ]),
    );
    assert.deepEqual(
      sumPoints(collected, "circuit_breaker.transitions"),
      sorted([
        [transitionAttributes("db", "closed", "open"), 1],
        [transitionAttributes("db", "open", "half_open"), 1],
        [transitionAttributes("db", "half_open", "closed"), 1],
        [transitionAttributes("db", "closed", "isolated"), 1],
        [transitionAttributes("db", "isolated", "closed"), 1],
      ]),
    );
  });

  it("counts rejections while recovering", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const clock = manualClock();
    const db = registry.breaker("db", {
      clock,
      failureThreshold: 1,
      recoveryTimeout: 1_000,
      recoveryRamp: { duration: 10_000, initialRate: 0.1 },
    });
    using _metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });
    await assert.rejects(db.execute(() => Promise.reject(new Error("down"))));
    clock.advance(1_000);
    await db.execute(() => Promise.resolve("row")); // the trial closes it: recovering
    assert.equal(db.state, "recovering");
    let rejected = 0;
    for (let i = 0; i < 10; i++) {
      await db.execute(() => Promise.resolve("row")).catch((error: unknown) => {
        assert.ok(error instanceof BreakerOpenError);
        rejected++;
      });
    }
    assert.ok(rejected > 0);

    const collected = await recorded.collect();
    const recovering = sumPoints(collected, "circuit_breaker.calls").find(([attributes]) =>
      attributes["circuit_breaker.state"] === "recovering"
    );
    assert.deepEqual(recovering, [
      callAttributes("db", "rejected", { "circuit_breaker.state": "recovering" }),
      rejected,
    ]);
    assert.deepEqual(
      sumPoints(collected, "circuit_breaker.transitions"),
      sorted([
        [transitionAttributes("db", "closed", "open"), 1],
        [transitionAttributes("db", "open", "half_open"), 1],
        [transitionAttributes("db", "half_open", "recovering"), 1],
      ]),
    );
  });
});

describe("instrumentBreakers: status", () => {
  it("reports each breaker's current state at collection: 1 for it, 0 for the others", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const clock = manualClock();
    const options = { clock, recoveryTimeout: 1_000 };
    const closed = registry.breaker("closed-one", options);
    const open = registry.breaker("open-one", options);
    const isolated = registry.breaker("isolated-one", options);
    const ramping = registry.breaker("ramping-one", {
      ...options,
      recoveryRamp: { duration: 10_000 },
    });
    using _metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });
    open.open();
    using _hold = isolated.isolate();
    ramping.halfOpen();
    await ramping.execute(() => Promise.resolve("row"));
    assert.equal(closed.state, "closed");
    assert.equal(ramping.state, "recovering");

    let collected = await recorded.collect();
    assert.deepEqual(
      sumPoints(collected, "circuit_breaker.status"),
      sorted([
        ...statusPoints("closed-one", "closed"),
        ...statusPoints("open-one", "open"),
        ...statusPoints("isolated-one", "isolated"),
        ...statusPoints("ramping-one", "recovering"),
      ]),
    );

    // Read at collection: the elapsed period reads half-open without any call.
    clock.advance(1_000);
    const late = registry.breaker("late-one", options);
    late.open();
    collected = await recorded.collect();
    assert.deepEqual(
      sumPoints(collected, "circuit_breaker.status", "open-one"),
      statusPoints("open-one", "half_open"),
    );
    assert.deepEqual(
      sumPoints(collected, "circuit_breaker.status", "late-one"),
      statusPoints("late-one", "open"),
    );
  });

  it("reports the state of one breaker instrumented alone", async () => {
    await using recorded = telemetry();
    const db = new Breaker({ name: "db", registry: false, failureThreshold: 1 });
    const other = new Breaker({ name: "other", registry: false });
    using _metrics = instrumentBreakers(db, { meterProvider: recorded.meterProvider });
    await assert.rejects(db.execute(() => Promise.reject(new Error("down"))));
    await other.execute(() => Promise.resolve("row"));

    const collected = await recorded.collect();
    assert.deepEqual(sumPoints(collected, "circuit_breaker.status"), statusPoints("db", "open"));
    assert.deepEqual(
      sumPoints(collected, "circuit_breaker.calls"),
      [[callAttributes("db", "failure", { "error.type": "Error" }), 1]],
    );
  });
});

describe("instrumentBreakers: the registry's breakers", () => {
  it("records a breaker that joins the registry later, and stops for one that leaves", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    using _metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });
    const late = registry.breaker("late");
    const added = new Breaker({ name: "added", registry: false });
    registry.add(added);
    await late.execute(() => Promise.resolve("row"));
    await added.execute(() => Promise.resolve("row"));
    registry.delete(added);
    await added.execute(() => Promise.resolve("row"));

    assert.deepEqual(
      sumPoints(await recorded.collect(), "circuit_breaker.calls"),
      sorted([[callAttributes("added", "success"), 1], [callAttributes("late", "success"), 1]]),
    );
  });

  it("stops recording on dispose, on every breaker", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const db = registry.breaker("db", { failureThreshold: 1 });
    const cache = registry.breaker("cache");
    const single = new Breaker({ name: "single", registry: false });
    const metrics = instrumentBreakers(registry, { meterProvider: recorded.meterProvider });
    const singleMetrics = instrumentBreakers(single, { meterProvider: recorded.meterProvider });
    await db.execute(() => Promise.resolve("row"));
    await cache.execute(() => Promise.resolve("row"));
    await single.execute(() => Promise.resolve("row"));
    const before = await recorded.collect();

    metrics[Symbol.dispose]();
    metrics[Symbol.dispose](); // a second dispose changes nothing
    singleMetrics[Symbol.dispose]();
    await db.execute(() => Promise.resolve("row"));
    await assert.rejects(db.execute(() => Promise.reject(new Error("down"))));
    await assert.rejects(db.execute(() => Promise.resolve("row")), BreakerOpenError);
    await cache.execute(() => Promise.resolve("row"));
    await single.execute(() => Promise.resolve("row"));
    registry.breaker("later").open();
    const after = await recorded.collect();

    for (const name of ["circuit_breaker.calls", "circuit_breaker.transitions"]) {
      assert.deepEqual(
        after.has(name) ? sumPoints(after, name) : [],
        before.has(name) ? sumPoints(before, name) : [],
      );
    }
    assert.deepEqual(
      histogramPoints(after, "circuit_breaker.call.duration"),
      histogramPoints(before, "circuit_breaker.call.duration"),
    );
    // The SDK keeps reporting a removed callback's last observations; none is new.
    const status = after.has("circuit_breaker.status")
      ? sumPoints(after, "circuit_breaker.status")
      : [];
    assert.ok(status.every(([attributes]) => attributes["circuit_breaker.name"] !== "later"));
    assert.ok(
      !status.some(([attributes, value]) =>
        attributes["circuit_breaker.name"] === "db" &&
        attributes["circuit_breaker.state"] === "open" &&
        value === 1
      ),
    );
  });

  it("instruments the default registry on the global meter provider by default", async () => {
    await using recorded = telemetry();
    metrics.setGlobalMeterProvider(recorded.meterProvider);
    try {
      using _metrics = instrumentBreakers();
      const name = `otel-default-${crypto.randomUUID()}`;
      const breaker = new Breaker({ name });
      await breaker.execute(() => Promise.resolve("row"));
      const collected = await recorded.collect();
      assert.deepEqual(sumPoints(collected, "circuit_breaker.calls", name), [
        [callAttributes(name, "success"), 1],
      ]);
      assert.deepEqual(
        sumPoints(collected, "circuit_breaker.status", name),
        statusPoints(name, "closed"),
      );
    } finally {
      metrics.disable();
    }
  });
});

describe("instrumentBreakers: options", () => {
  it("records on a given meter, reusing one attribute object per breaker and outcome", async () => {
    const recordings: { instrument: string; value: number; attributes: Attributes }[] = [];
    const instrument = (name: string) => ({
      add: (value: number, attributes: Attributes) =>
        recordings.push({ instrument: name, value, attributes }),
      record: (value: number, attributes: Attributes) =>
        recordings.push({ instrument: name, value, attributes }),
      addCallback: () => {},
      removeCallback: () => {},
    });
    const meter = {
      createCounter: instrument,
      createHistogram: instrument,
      createObservableUpDownCounter: instrument,
    } as unknown as Meter;
    const registry = new BreakerRegistry();
    const clock = manualClock();
    const db = registry.breaker("db", { clock });
    using _metrics = instrumentBreakers(registry, { meter });
    await db.execute(() => Promise.resolve("row"));
    await db.execute(() => {
      clock.now -= 10; // a clock set back: the duration is 0, never negative
      return Promise.resolve("row");
    });
    await assert.rejects(db.execute(() => Promise.reject(new QueryError("a"))));
    await assert.rejects(db.execute(() => Promise.reject(new QueryError("b"))));

    assert.deepEqual(
      recordings.map(({ instrument, value }) => [instrument, value]),
      [
        ["circuit_breaker.calls", 1],
        ["circuit_breaker.call.duration", 0],
        ["circuit_breaker.calls", 1],
        ["circuit_breaker.call.duration", 0],
        ["circuit_breaker.calls", 1],
        ["circuit_breaker.call.duration", 0],
        ["circuit_breaker.calls", 1],
        ["circuit_breaker.call.duration", 0],
      ],
    );
    const [first, second, third, fourth, fifth, , seventh] = recordings.map((r) => r.attributes);
    assert.equal(first, second); // the counter and the histogram share it
    assert.equal(first, third); // and the next success
    assert.equal(first, fourth);
    assert.equal(fifth, seventh); // the same error type
    assert.deepEqual(fifth, callAttributes("db", "failure", { "error.type": "QueryError" }));
  });

  it("uses the errorType option for error.type, _OTHER when it throws or gives no string", async () => {
    await using recorded = telemetry();
    const registry = new BreakerRegistry();
    const db = registry.breaker("db", { failureThreshold: 10 });
    using reported = captureConsole("error");
    {
      using _metrics = instrumentBreakers(registry, {
        meterProvider: recorded.meterProvider,
        errorType: (error) => {
          const code = (error as { code?: unknown }).code;
          if (code === "throw") throw new Error("errorType broke");
          return code as string;
        },
      });
      const failing = (code: unknown) =>
        assert.rejects(db.execute(() => Promise.reject(Object.assign(new Error(), { code }))));
      await failing("ECONNREFUSED");
      await failing("ECONNREFUSED");
      await failing("throw");
      await failing(42);
      await failing("");
    }
    assert.equal(reported.calls.length, 1);
    assert.match(String(reported.calls[0]![0]), /"errorType" threw; error\.type is _OTHER/);
    assert.deepEqual(
      sumPoints(await recorded.collect(), "circuit_breaker.calls"),
      sorted([
        [callAttributes("db", "failure", { "error.type": "ECONNREFUSED" }), 2],
        [callAttributes("db", "failure", { "error.type": "_OTHER" }), 3],
      ]),
    );
  });

  it("rejects bad input with a TypeError naming the option and the value", () => {
    const registry = new BreakerRegistry();
    const cases: [() => unknown, string][] = [
      [
        () => instrumentBreakers(42 as never),
        'Cannot instrument breakers: "breakers" must be a BreakerRegistry or a Breaker, received 42',
      ],
      [
        () => instrumentBreakers(registry, null as never),
        'Cannot instrument breakers: "options" must be an object, received null',
      ],
      [
        () => instrumentBreakers(registry, { meter: 42 as never }),
        'Cannot instrument breakers: "meter" must be an OpenTelemetry Meter, received 42',
      ],
      [
        () => instrumentBreakers(registry, { meter: {} as never }),
        'Cannot instrument breakers: "meter" must be an OpenTelemetry Meter, received an object',
      ],
      [
        () => instrumentBreakers(registry, { meterProvider: "global" as never }),
        'Cannot instrument breakers: "meterProvider" must be an OpenTelemetry MeterProvider, received "global"',
      ],
      [
        () =>
          instrumentBreakers(registry, {
            meter: metrics.getMeter("test"),
            meterProvider: metrics.getMeterProvider(),
          }),
        'Cannot instrument breakers: give "meter" or "meterProvider", not both',
      ],
      [
        () => instrumentBreakers(registry, { errorType: "name" as never }),
        'Cannot instrument breakers: "errorType" must be a function, received "name"',
      ],
      [
        () => instrumentBreakers(registry, { metre: metrics.getMeter("test") } as never),
        'Cannot instrument breakers: unknown option "metre"',
      ],
    ];
    for (const [instrument, message] of cases) {
      assert.throws(instrument, (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.equal(error.message, message);
        return true;
      });
    }
  });
});
