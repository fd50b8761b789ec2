/**
 * Options validated into a policy: the frozen, normalized rules a breaker's transitions
 * follow. Every bad value is rejected here with the option's path and the value received.
 *
 * @module
 */

import {
  delay,
  duration,
  fail,
  integer,
  number,
  optionalFunction,
  optionsObject,
  rate,
} from "./validate.ts";
import type {
  BreakerMode,
  ErrorClass,
  ErrorMatcher,
  PolicyOptions,
  RecoveryRampOptions,
  RecoveryTimeout,
} from "./options.ts";
import type { WindowPolicy, WindowStats } from "./window.ts";

/**
 * Where the core reports a problem in user code it runs on the breaker's behalf (a throwing
 * matcher or `shouldTrip`, a bad `recoveryTimeout` result). It never throws to the caller.
 */
export type Reporter = (message: string, error?: unknown) => void;

/**
 * The validated, normalized rules of one breaker.
 *
 * @example
 * ```ts
 * import { createPolicy } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * const policy = createPolicy({ name: "db", failureThreshold: 3 });
 * assert.equal(policy.failureThreshold, 3);
 * ```
 */
export interface Policy {
  /** The breaker's name, for messages. */
  readonly name: string;
  /** Consecutive failures that open the circuit (`Infinity`: off). */
  readonly failureThreshold: number;
  /** The open period in ms, or the function computing it per opening. */
  readonly recoveryTimeout: number | RecoveryTimeout;
  /** Trial calls admitted at once while half-open. */
  readonly halfOpenMaxCalls: number;
  /** Successful trials that close the circuit. */
  readonly successThreshold: number;
  /** The compiled error matchers; `undefined` when none is set (every error is a failure). */
  readonly errors: ErrorMatchers | undefined;
  /** Marks returned values as failures. */
  readonly isFailureResult: ((result: unknown) => boolean) | undefined;
  /** Time allowed per call, in ms. */
  readonly timeout: number | undefined;
  /** Whether calls are turned away (`"enforce"`), only observed, or not guarded at all. */
  readonly mode: BreakerMode;
  /** The bulkhead: calls in flight at once; `undefined` for no limit. */
  readonly maxConcurrent: number | undefined;
  /** Calls that may wait for a place in the bulkhead. */
  readonly maxQueued: number;
  /** The rules that judge a window; `undefined` when no rule does. */
  readonly rules: WindowRules | undefined;
  /** The recovery ramp, with its defaults filled in. */
  readonly recoveryRamp: Required<RecoveryRampOptions> | undefined;
  /** The longest open period a `Retry-After` can ask for, in ms. */
  readonly maxRetryAfter: number;
  /** The stream options; `undefined` when none is set. */
  readonly streams: StreamRules | undefined;
  /** Whether every call needs the clock: a time window, or durations for slow calls. */
  readonly timed: boolean;
  /** Whether calls' durations are needed (slow calls are counted). */
  readonly durations: boolean;
  /** Where problems in user rules are reported. */
  readonly report: Reporter;
  /**
   * Set when the circuit is shared (see `sharePolicy`): trials then need a lease taken in the
   * store, and this breaker takes it as `holder`.
   */
  readonly lease: LeaseRules | undefined;
}

/**
 * How a breaker sharing its circuit takes trial leases.
 *
 * @example
 * ```ts
 * import { createPolicy, sharePolicy } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(sharePolicy(createPolicy({ timeout: 5_000 }), "worker-1").lease?.duration, 5000);
 * ```
 */
export interface LeaseRules {
  /** This breaker's identity, unique among the breakers sharing the circuit. */
  readonly holder: string;
  /** How long a lease lasts, in ms: the call `timeout`, else 30 s. */
  readonly duration: number;
}

/**
 * The policy of a breaker that shares its circuit through a store, as `holder`: its trials
 * need a lease (see `takeLease` in `shared.ts`), which lasts the call `timeout` (else 30 s) so
 * that a holder that crashed mid-trial blocks recovery no longer than a trial may run.
 *
 * @example
 * ```ts
 * import { createPolicy, sharePolicy } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(sharePolicy(createPolicy({}), "worker-1").lease?.holder, "worker-1");
 * ```
 */
export function sharePolicy(policy: Policy, holder: string): Policy {
  return Object.freeze({
    ...policy,
    lease: Object.freeze({ holder, duration: policy.timeout ?? DEFAULT_LEASE }),
  });
}

const DEFAULT_LEASE = 30_000;

/**
 * The compiled error matchers (a policy groups them: a breaker without any keeps none).
 *
 * @example
 * ```ts
 * import { createPolicy } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(createPolicy({ exclude: TypeError }).errors?.exclude?.(new TypeError()), true);
 * ```
 */
export interface ErrorMatchers {
  /** `isFailure`; `undefined`: every error. */
  readonly isFailure: ((error: unknown) => boolean) | undefined;
  /** `exclude`. */
  readonly exclude: ((error: unknown) => boolean) | undefined;
  /** `ignore`. */
  readonly ignore: ((error: unknown) => boolean) | undefined;
}

/**
 * The rules that judge a window: the rate rules and `shouldTrip`.
 *
 * @example
 * ```ts
 * import { createPolicy } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(createPolicy({ failureRate: 0.5 }).rules?.minimumCalls, 20);
 * ```
 */
export interface WindowRules {
  /** How outcomes are windowed. */
  readonly window: WindowPolicy;
  /** The failure-rate rule's threshold. */
  readonly failureRate: number | undefined;
  /** The slow-call rule's threshold. */
  readonly slowCallRate: number | undefined;
  /** Calls slower than this many ms are slow. */
  readonly slowCallDuration: number | undefined;
  /** Calls the window needs before the rate rules judge it. */
  readonly minimumCalls: number;
  /** The custom trip rule. */
  readonly shouldTrip: ((stats: WindowStats) => boolean) | undefined;
}

/**
 * The stream options of a policy.
 *
 * @example
 * ```ts
 * import { createPolicy } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.equal(createPolicy({ idleTimeout: 1_000 }).streams?.idleTimeout, 1000);
 * ```
 */
export interface StreamRules {
  /** Ms to wait for the first item. */
  readonly firstItemTimeout: number | undefined;
  /** Ms to wait for each later item. */
  readonly idleTimeout: number | undefined;
  /** Marks an item reporting an in-band error. */
  readonly isFailureItem: ((item: unknown) => boolean) | undefined;
}

/** The option names a policy reads: a name missing here fails to compile. */
export const POLICY_OPTIONS: readonly (keyof PolicyOptions)[] = Object.keys(
  {
    name: true,
    failureThreshold: true,
    recoveryTimeout: true,
    halfOpenMaxCalls: true,
    successThreshold: true,
    isFailure: true,
    exclude: true,
    ignore: true,
    isFailureResult: true,
    timeout: true,
    failureRate: true,
    slowCallRate: true,
    slowCallDuration: true,
    minimumCalls: true,
    window: true,
    shouldTrip: true,
    recoveryRamp: true,
    maxRetryAfter: true,
    firstItemTimeout: true,
    idleTimeout: true,
    isFailureItem: true,
    mode: true,
    maxConcurrent: true,
    maxQueued: true,
  } satisfies Record<keyof PolicyOptions, true>,
) as (keyof PolicyOptions)[];

/** The longest delay `setTimeout` honours (larger ones fire at once on some runtimes). */
const DEFAULT_RECOVERY_TIMEOUT = 30_000;

const reportToConsole: Reporter = (message, error) => {
  if (error === undefined) console.error(message);
  else console.error(message, error);
};

/**
 * Validates options into a policy. Throws a `TypeError` (wrong type) or `RangeError` (value
 * out of range) whose message starts with `context` and names the option and the value.
 *
 * @param options The options to validate.
 * @param context How messages start.
 * @param report Where problems found while running user rules are reported.
 * @throws {TypeError} When an option has the wrong type; the message names it and the value.
 * @throws {RangeError} When an option is out of range; the message names it and the value.
 *
 * @example
 * ```ts
 * import { createPolicy } from "@circuit/breaker/core";
 * import assert from "node:assert/strict";
 * assert.throws(() => createPolicy({ failureThreshold: 0 }), {
 *   name: "RangeError",
 *   message:
 *     'Cannot create breaker: "failureThreshold" must be an integer >= 1 or Infinity, received 0',
 * });
 * ```
 */
export function createPolicy(
  options: PolicyOptions,
  context = "Cannot create breaker",
  report: Reporter = reportToConsole,
): Policy {
  return createPolicySharingRules(options, context, report, undefined);
}

/**
 * {@linkcode createPolicy}, using `shareable` window rules as they are when the options give
 * equal ones: breakers made with the same options (one per key, say) then hold one copy. The
 * policy is the same either way. For the shell; `@circuit/breaker/core` does not export it.
 *
 * @throws {TypeError} When an option has the wrong type; the message names it and the value.
 * @throws {RangeError} When an option is out of range; the message names it and the value.
 *
 * @example
 * ```ts
 * import { createPolicy, createPolicySharingRules } from "./policy.ts";
 * import assert from "node:assert/strict";
 * const first = createPolicy({ failureRate: 0.5 });
 * const next = createPolicySharingRules({ failureRate: 0.5 }, "", undefined, first.rules);
 * assert.equal(next.rules, first.rules);
 * ```
 */
export function createPolicySharingRules(
  options: PolicyOptions,
  context: string,
  report: Reporter = reportToConsole,
  shareable: WindowRules | undefined,
): Policy {
  optionsObject(context, options);
  const name = options.name ?? "breaker";
  if (typeof name !== "string" || name === "") {
    fail(context, "name", "a non-empty string", name, true);
  }

  const failureRate = rate(context, "failureRate", options.failureRate);
  const slowCallRate = rate(context, "slowCallRate", options.slowCallRate);
  const shouldTrip = optionalFunction<WindowRules["shouldTrip"]>(
    context,
    "shouldTrip",
    options.shouldTrip,
  );
  let slowCallDuration: number | undefined;
  if (options.slowCallDuration !== undefined) {
    slowCallDuration = duration(context, "slowCallDuration", options.slowCallDuration);
  } else if (slowCallRate !== undefined) {
    fail(
      context,
      "slowCallDuration",
      'a finite number >= 0 when "slowCallRate" is set',
      undefined,
      true,
    );
  }
  const judgesWindow = failureRate !== undefined || slowCallRate !== undefined ||
    shouldTrip !== undefined;
  const window = windowPolicy(options.window, context);
  const minimumCallsDefault = window.kind === "calls" ? Math.min(20, window.calls) : 20;
  const minimumCalls = integer(context, "minimumCalls", options.minimumCalls, minimumCallsDefault);
  if (window.kind === "calls" && minimumCalls > window.calls) {
    fail(context, "minimumCalls", `an integer <= "window.calls" (${window.calls})`, minimumCalls);
  }

  let recoveryTimeout: number | RecoveryTimeout = DEFAULT_RECOVERY_TIMEOUT;
  if (typeof options.recoveryTimeout === "function") recoveryTimeout = options.recoveryTimeout;
  else if (options.recoveryTimeout !== undefined) {
    if (typeof options.recoveryTimeout !== "number") {
      fail(context, "recoveryTimeout", "a number or a function", options.recoveryTimeout, true);
    }
    recoveryTimeout = duration(context, "recoveryTimeout", options.recoveryTimeout);
  }

  return Object.freeze({
    name,
    failureThreshold: integer(
      context,
      "failureThreshold",
      options.failureThreshold,
      judgesWindow ? Infinity : 5,
      true,
    ),
    recoveryTimeout,
    halfOpenMaxCalls: integer(context, "halfOpenMaxCalls", options.halfOpenMaxCalls, 1),
    successThreshold: integer(context, "successThreshold", options.successThreshold, 1),
    errors: errorMatchers(
      compileMatchers(context, "isFailure", options.isFailure),
      compileMatchers(context, "exclude", options.exclude),
      compileMatchers(context, "ignore", options.ignore),
    ),
    isFailureResult: optionalFunction<Policy["isFailureResult"]>(
      context,
      "isFailureResult",
      options.isFailureResult,
    ),
    timeout: delay(context, "timeout", options.timeout),
    mode: mode(context, options.mode),
    maxConcurrent: options.maxConcurrent === undefined
      ? undefined
      : integer(context, "maxConcurrent", options.maxConcurrent, 1),
    maxQueued: queueLength(context, options),
    rules: judgesWindow
      ? windowRules(
        shareable,
        window,
        failureRate,
        slowCallRate,
        slowCallDuration,
        minimumCalls,
        shouldTrip,
      )
      : undefined,
    recoveryRamp: rampPolicy(options.recoveryRamp, context),
    maxRetryAfter: options.maxRetryAfter === undefined
      ? 3_600_000
      : duration(context, "maxRetryAfter", options.maxRetryAfter),
    streams: streamRules(
      delay(context, "firstItemTimeout", options.firstItemTimeout),
      delay(context, "idleTimeout", options.idleTimeout),
      optionalFunction<StreamRules["isFailureItem"]>(
        context,
        "isFailureItem",
        options.isFailureItem,
      ),
    ),
    timed: judgesWindow && (window.kind === "time" || slowCallDuration !== undefined),
    durations: judgesWindow && slowCallDuration !== undefined,
    report,
    lease: undefined,
  });
}

function queueLength(context: string, options: PolicyOptions): number {
  const value = options.maxQueued;
  if (value === undefined) return 0;
  const n = number(context, "maxQueued", value);
  if (!Number.isSafeInteger(n) || n < 0) fail(context, "maxQueued", "an integer >= 0", value);
  if (options.maxConcurrent === undefined && n > 0) {
    fail(context, "maxQueued", 'set only with "maxConcurrent"', value, true);
  }
  return n;
}

const MODES: readonly BreakerMode[] = ["enforce", "observe", "off"];

function mode(context: string, value: unknown): BreakerMode {
  if (value === undefined) return "enforce";
  if (MODES.includes(value as BreakerMode)) return value as BreakerMode;
  return fail(context, "mode", `one of ${MODES.map((m) => `"${m}"`).join(", ")}`, value, true);
}

function errorMatchers(
  isFailure: ErrorMatchers["isFailure"],
  exclude: ErrorMatchers["exclude"],
  ignore: ErrorMatchers["ignore"],
): ErrorMatchers | undefined {
  if (isFailure === undefined && exclude === undefined && ignore === undefined) return undefined;
  return Object.freeze({ isFailure, exclude, ignore });
}

function streamRules(
  firstItemTimeout: number | undefined,
  idleTimeout: number | undefined,
  isFailureItem: StreamRules["isFailureItem"],
): StreamRules | undefined {
  if (firstItemTimeout === undefined && idleTimeout === undefined && isFailureItem === undefined) {
    return undefined;
  }
  return Object.freeze({ firstItemTimeout, idleTimeout, isFailureItem });
}

/** The window rules, or `shareable` (or its window) where it holds the same. */
function windowRules(
  shareable: WindowRules | undefined,
  window: WindowPolicy,
  failureRate: number | undefined,
  slowCallRate: number | undefined,
  slowCallDuration: number | undefined,
  minimumCalls: number,
  shouldTrip: WindowRules["shouldTrip"],
): WindowRules {
  const sameWindow = shareable !== undefined && equalWindows(shareable.window, window);
  if (
    sameWindow && shareable.failureRate === failureRate &&
    shareable.slowCallRate === slowCallRate && shareable.slowCallDuration === slowCallDuration &&
    shareable.minimumCalls === minimumCalls && shareable.shouldTrip === shouldTrip
  ) {
    return shareable;
  }
  return Object.freeze({
    window: sameWindow ? shareable.window : window,
    failureRate,
    slowCallRate,
    slowCallDuration,
    minimumCalls,
    shouldTrip,
  });
}

function equalWindows(a: WindowPolicy, b: WindowPolicy): boolean {
  return a.kind === "calls"
    ? b.kind === "calls" && a.calls === b.calls
    : b.kind === "time" && a.duration === b.duration && a.buckets === b.buckets;
}

/** The window when none is given, shared by every policy (it is read, never changed). */
const DEFAULT_WINDOW: WindowPolicy = Object.freeze({
  kind: "time",
  duration: 60_000,
  buckets: 10,
  bucketMs: 6_000,
});

function windowPolicy(value: unknown, context: string): WindowPolicy {
  if (value === undefined) return DEFAULT_WINDOW;
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return fail(context, "window", "{ duration, buckets? } or { calls }", value, true);
  }
  const form = value as Record<string, unknown>;
  for (const key of Object.keys(form)) {
    if (key !== "duration" && key !== "buckets" && key !== "calls") {
      fail(
        context,
        "window",
        `{ duration, buckets? } or { calls } (unknown key "${key}")`,
        value,
        true,
      );
    }
  }
  if (form.calls !== undefined) {
    if (form.duration !== undefined || form.buckets !== undefined) {
      fail(context, "window", "either { duration, buckets? } or { calls }, not both", value, true);
    }
    const calls = form.calls;
    if (typeof calls !== "number") return fail(context, "window.calls", "a number", calls, true);
    if (!Number.isSafeInteger(calls) || calls < 1) {
      return fail(context, "window.calls", "an integer >= 1", calls);
    }
    return { kind: "calls", calls };
  }
  if (form.duration === undefined) {
    return fail(context, "window.duration", "a finite number >= 1", undefined, true);
  }
  const total = duration(context, "window.duration", form.duration, 1);
  const buckets = form.buckets ?? 10;
  if (typeof buckets !== "number") {
    return fail(context, "window.buckets", "a number", buckets, true);
  }
  if (!Number.isSafeInteger(buckets) || buckets < 1) {
    return fail(context, "window.buckets", "an integer >= 1", buckets);
  }
  if (buckets > total) {
    return fail(context, "window.buckets", `an integer <= "window.duration" (${total})`, buckets);
  }
  return { kind: "time", duration: total, buckets, bucketMs: total / buckets };
}

function rampPolicy(value: unknown, context: string): Required<RecoveryRampOptions> | undefined {
  if (value === undefined) return undefined;
  if (value === null || typeof value !== "object") {
    return fail(context, "recoveryRamp", "{ duration, initialRate? }", value, true);
  }
  const form = value as Record<string, unknown>;
  for (const key of Object.keys(form)) {
    if (key !== "duration" && key !== "initialRate") {
      fail(
        context,
        "recoveryRamp",
        `{ duration, initialRate? } (unknown key "${key}")`,
        value,
        true,
      );
    }
  }
  const length = duration(context, "recoveryRamp.duration", form.duration);
  if (length === 0) fail(context, "recoveryRamp.duration", "a finite number > 0", 0);
  const initialRate = rate(context, "recoveryRamp.initialRate", form.initialRate) ?? 0.1;
  return Object.freeze({ duration: length, initialRate });
}

function isErrorClass(value: ErrorMatcher): value is ErrorClass {
  const prototype = (value as { prototype?: unknown }).prototype;
  if (prototype === undefined) return false; // arrows, methods and bound functions
  return value === Error || prototype instanceof Error ||
    Function.prototype.toString.call(value).startsWith("class");
}

/**
 * Compiles an `ErrorMatcher` option (a class, a predicate, or an array of them) into one
 * predicate, or `undefined` for none (an empty array too). Throws a `TypeError` that starts
 * with `context` and names `path` for anything else.
 *
 * @throws {TypeError} When a matcher is neither an error class nor a function.
 *
 * @example
 * ```ts
 * import { compileMatchers } from "./policy.ts";
 * import assert from "node:assert/strict";
 * assert.equal(compileMatchers("Cannot retry", "noRetry", [TypeError])?.(new TypeError()), true);
 * ```
 */
export function compileMatchers(
  context: string,
  path: string,
  value: unknown,
): ((error: unknown) => boolean) | undefined {
  if (value === undefined) return undefined;
  const expected = "an error class, a predicate or an array of them";
  const list = Array.isArray(value) ? value as unknown[] : [value];
  // An empty list names no error: the rule is off, as if the option were not set (so that
  // `configure({ exclude: [] })` can clear what an earlier call set).
  if (list.length === 0) return undefined;
  const tests = list.map((item, i): (error: unknown) => boolean => {
    const itemPath = Array.isArray(value) ? `${path}[${i}]` : path;
    if (typeof item !== "function") return fail(context, itemPath, expected, item, true);
    const errorMatcher = item as ErrorMatcher;
    if (isErrorClass(errorMatcher)) return (error) => error instanceof errorMatcher;
    return errorMatcher;
  });
  if (tests.length === 1) return tests[0];
  return (error) => tests.some((test) => test(error));
}
