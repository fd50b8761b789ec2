/**
 * A circuit breaker for TypeScript on Deno, Bun and Node.js: it stops cascading failures by
 * failing fast while a dependency (a database, an HTTP API, an LLM stream) is down, and lets a
 * few trial calls through to find out when it is back.
 *
 * ```ts
 * import { BreakerOpenError, circuit } from "@circuit/breaker";
 * import assert from "node:assert/strict";
 *
 * // 5 consecutive failures open the circuit for 30 s; then one trial call may close it.
 * const getUser = circuit(async (id: string): Promise<{ id: string }> => {
 *   throw new Error(`GET /users/${id}: connection refused`); // the dependency is down
 * });
 * for (let i = 0; i < 5; i++) await assert.rejects(getUser("42"), /connection refused/);
 * await assert.rejects(getUser("42"), BreakerOpenError); // fails fast: getUser is not called
 * ```
 *
 * - {@linkcode circuit} guards a function, or decorates a method.
 * - {@linkcode Breaker} guards many calls to one dependency, with manual control and events.
 * - {@linkcode BreakerOpenError} is what a call gets while the circuit is open.
 * - {@linkcode BreakerRegistry} lists breakers by name for operators; named breakers join
 *   {@linkcode defaultRegistry}.
 * - {@linkcode BreakerGroup} creates one breaker per key (host, tenant) on demand, bounded by
 *   `maxKeys`.
 * - {@linkcode statusHandler} serves a registry as JSON, Prometheus text, a health answer for
 *   probes or a self-refreshing HTML page for an incident; {@linkcode BreakerMetrics} adds
 *   counters, durations and each breaker's history to it.
 * - The pure decision core is `@circuit/breaker/core`.
 *
 * @module
 */

export { exponentialBackoff, type ExponentialBackoffOptions } from "./src/backoff.ts";
export { Breaker } from "./src/breaker.ts";
export {
  BREAKER_OPTIONS,
  type BreakerOptions,
  type ConfigurableOptions,
  type ExecuteOptions,
} from "./src/breaker_options.ts";
export {
  type AnyFunction,
  type BreakerClass,
  breakerOf,
  type Circuit,
  circuit,
  type CircuitOptions,
  type FallbackResult,
  type GuardedFunction,
  type ItemOf,
  type MethodDecorator,
  type SyncMethodDecorator,
} from "./src/circuit.ts";
export type {
  BreakerMode,
  ErrorClass,
  ErrorMatcher,
  PolicyOptions,
  RecoveryContext,
  RecoveryRampOptions,
  RecoveryTimeout,
  WindowOptions,
} from "./src/core/options.ts";
export type { SnapshotJSON } from "./src/core/serialize.ts";
export type { BreakerState, Lease, RecordedState, Snapshot } from "./src/core/snapshot.ts";
export type {
  Bucket,
  CallWindow,
  TimeWindow,
  WindowJSON,
  WindowState,
  WindowStats,
} from "./src/core/window.ts";
export type { Cell, Fifo } from "./src/core/fifo.ts";
export { BreakerGroup, type BreakerGroupOptions, type EvictionEvent } from "./src/breaker_group.ts";
export {
  BreakerOpenError,
  type BreakerOpenErrorOptions,
  BulkheadFullError,
  TimeoutError,
} from "./src/errors.ts";
export { memoryStore } from "./src/memory_store.ts";
export { BreakerPermit } from "./src/permit.ts";
export { type CircuitFetch, circuitFetch, type CircuitFetchOptions } from "./src/circuit_fetch.ts";
export { circuitHandler, type CircuitHandlerOptions } from "./src/circuit_handler.ts";
export { retryAfterSeconds, serviceUnavailable } from "./src/http_response.ts";
export { retry, type RetryEvent, type RetryOptions } from "./src/retry.ts";
export {
  BreakerRegistry,
  defaultRegistry,
  type GroupSummary,
  type RegistryBreakerOptions,
  type RegistrySummary,
} from "./src/registry.ts";
export type { StateStore, StoredState } from "./src/store.ts";
export {
  type BreakerStatus,
  type GroupStatus,
  type HealthReport,
  type RequestAuthorizer,
  type StatusHandler,
  statusHandler,
  type StatusHandlerOptions,
  type StatusReport,
} from "./src/status_handler.ts";
export {
  type BreakerHistory,
  BreakerMetrics,
  type BreakerMetricsOptions,
  type CallTally,
  DURATION_BOUNDS,
  type DurationHistogram,
  type Transition,
} from "./src/breaker_metrics.ts";
export type { GuardedStream, StreamItem, StreamOptions, StreamSource } from "./src/stream.ts";
export type {
  BreakerListener,
  CallEvent,
  FailureEvent,
  RejectedEvent,
  StateChangeEvent,
  StoreErrorEvent,
  SuccessEvent,
} from "./src/events.ts";
