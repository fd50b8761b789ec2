/**
 * The link between a breaker and the store its circuit is shared through. The breaker keeps
 * deciding from its local snapshot; this link writes its transitions at once by
 * compare-and-set, merges its counts in batches, takes trial leases, and follows what other
 * breakers write. It decides nothing about the circuit: the core does (`reconcile`, `follow`,
 * `recordTally`, `takeLease`, `wantsLease`).
 *
 * @module
 */

import { quoteName } from "./core/describe_value.ts";
import type { Policy } from "./core/policy.ts";
import type { Snapshot } from "./core/snapshot.ts";
import { changesNothing, emptyTally, joinTallies, type Tally, tallyOutcome } from "./core/tally.ts";
import { follow, reconcile, takeLease, wantsLease } from "./core/transitions.ts";
import { boundStoredTimes } from "./core/stored_bounds.ts";
import {
  decodeStored,
  encodeStored,
  storedGeneration,
  storedWriteMarks,
} from "./core/stored_text.ts";
import { includesWrite, markWrite, type WriteMarks } from "./core/write_marks.ts";
import { TimeoutError } from "./errors.ts";
import type { StoreErrorEvent } from "./events.ts";
import type { StateStore, StoredState } from "./store.ts";

/** What the link needs of its breaker. */
export interface SharedHost {
  /** The breaker's local snapshot. */
  snapshot(): Snapshot;
  /** Replaces the local snapshot, announcing a change of state. */
  adopt(next: Snapshot): void;
  /** The breaker's policy (shared: with `lease` set). */
  policy(): Policy;
  /** The breaker's clock. */
  now(): number;
  /** Reports a store failure to the breaker's listeners. */
  storeError(error: unknown, operation: StoreErrorEvent["operation"]): void;
}

type Operation = StoreErrorEvent["operation"];

/** Retry delay after a store failure, at least: an outage is not hammered. */
const MIN_RETRY_MS = 250;
/** How long a store operation may take before the breaker goes on without it, at least. */
const MIN_PATIENCE_MS = 1_000;

/** Keeps one breaker's local snapshot in step with the stored one. */
export class SharedCircuit {
  readonly #store: StateStore;
  readonly #name: string;
  readonly #host: SharedHost;
  readonly #syncInterval: number;
  /** This link's name in the write marks: short (the marks stay small), random, its own. */
  readonly #writer = crypto.randomUUID().replaceAll("-", "").slice(0, 16);
  /** The stored state last known (`undefined`: none read yet, or the store has none). */
  #stored: StoredState | undefined;
  #storedSnapshot: Snapshot | undefined;
  /** The write marks of the stored state last known, carried forward by the next write. */
  #storedMarks: WriteMarks | undefined;
  /** Whether the store was read once: until then nothing is written. */
  #known = false;
  /** Outcomes recorded since the last write. */
  #tally: Tally;
  /** A local transition not yet written. */
  #transition = false;
  /** The stored value cannot be read: the local state is to be written over it. */
  #repair = false;
  /** A trial lease to take. */
  #leaseWanted = false;
  /**
   * Whether the counts may be written: set by the sync timer, so that counts are written at
   * most once per syncInterval whatever wakes the loop sooner (a transition, a notification).
   */
  #countsDue = false;
  /** Whether a batch of counts was timed already (see `recorded`). */
  #phased = false;
  /** The value of the write awaiting the store's answer (unique by its write marks). */
  #writing: string | undefined;
  /** The sync timer: makes the counts due. */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #syncing: Promise<void> | undefined;
  #again = false;
  /** The store operation running last (the one running, while one runs). */
  #running: Operation = "read";
  /** When the running store operation started (while one runs). */
  #busySince: number | undefined;
  /** Reports a store operation that has not answered in time, in any state. */
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  #slowReported = false;
  /** The store operation that failed last, for the report. */
  #failed: Operation = "read";
  /** Whether the last store operation failed. */
  #offline = false;
  /** When the store operations began failing (while they do). */
  #failingSince: number | undefined;
  /** Set while the link itself replaces the local snapshot: not a local transition. */
  #adopting = false;
  /** A read to refresh the stored state (a notification, or a call turned away). */
  #readWanted = false;
  #lastRead = -Infinity;
  /** Numbers this link's writes, for the write marks (see `#unconfirmed`). */
  #writes = 0;
  /**
   * A write whose answer was lost (the connection dropped), or refused: it may have been
   * applied. The next read tells, by the write marks; only if it was not is its tally put back.
   */
  #unconfirmed:
    | { write: number; sent: Tally; transition: boolean; lease: boolean }
    | undefined;
  /** Conflicts in a row: past the first, writes wait (a store that always refuses is not hammered). */
  #conflicts = 0;
  /** The version of the unreadable stored value last reported (each is reported once). */
  #reportedVersion: string | undefined;
  #subscription: AsyncDisposable | undefined;
  #closing: Promise<void> | undefined;
  #closed = false;

  constructor(store: StateStore, name: string, host: SharedHost, syncInterval: number) {
    this.#store = store;
    this.#name = name;
    this.#host = host;
    this.#syncInterval = syncInterval;
    this.#tally = emptyTally(host.snapshot().generation);
    if (typeof store.subscribe === "function") {
      try {
        this.#subscription = store.subscribe(
          name,
          (stored) => this.#hear(stored),
          (error) => this.#report(error, "subscribe"),
        );
      } catch (error) {
        this.#report(error, "subscribe");
      }
    }
    this.#kick();
  }

  /** An outcome the breaker recorded while its snapshot was `before`. */
  recorded(
    before: Snapshot,
    generation: number,
    failed: boolean,
    durationMs: number,
    now: number,
  ): void {
    const tally = tallyOutcome(
      this.#host.policy(),
      this.#tally,
      before,
      generation,
      failed,
      durationMs,
      now,
    );
    if (tally === this.#tally) return;
    this.#tally = tally;
    if (this.#timer !== undefined) return;
    // The first batch waits a random part of syncInterval: processes started together (a
    // deploy) would otherwise write in step, every interval, and conflict every time.
    const first = !this.#phased;
    this.#phased = true;
    this.#wake(first ? Math.random() * this.#syncInterval : this.#syncInterval);
  }

  /** The breaker's snapshot changed from `before` to `after`. */
  changed(before: Snapshot, after: Snapshot): void {
    if (this.#adopting || after.generation === before.generation || after.isolated !== 0) return;
    // A transition: written at once, and outcomes counted from now on are of its generation.
    this.#transition = true;
    this.#tally = emptyTally(after.generation);
    this.#kick();
  }

  /**
   * A call is being turned away: while the store does not answer (or this link is closed) and
   * the trial lease is free, takes it locally and returns true, so the call is admitted under
   * local state.
   */
  leaseLocally(now: number): boolean {
    const policy = this.#host.policy();
    const local = this.#host.snapshot();
    if (!wantsLease(policy, local, now) || !(this.#closed || this.#unavailable(now))) return false;
    this.#host.adopt(takeLease(policy, local, now));
    return true;
  }

  /**
   * A call was turned away: if the trial lease is free, take it through the store (calls are
   * turned away until it is taken). Without a subscription, read what others changed.
   */
  refused(now: number): void {
    const policy = this.#host.policy();
    const local = this.#host.snapshot();
    if (!wantsLease(policy, local, now)) {
      // A turned-away call reads others' changes at most once per syncInterval: not every
      // store notifies every process (Deno KV's watch() on a local file sees only its own).
      if (now - this.#lastRead >= this.#syncInterval) {
        this.#readWanted = true;
        this.#kick();
      }
      return;
    }
    this.#leaseWanted = true;
    this.#kick();
  }

  /**
   * Isolation ended: the breaker rejoins the shared circuit as last known, or keeps `released`
   * (its own release, which closes the circuit) when the store was never read.
   */
  rejoin(released: Snapshot, now: number): void {
    const stored = this.#storedSnapshot;
    if (stored === undefined) return this.#host.adopt(released);
    this.#transition = false;
    const next = follow(this.#host.policy(), released, stored, this.#tally, now);
    if (next.generation !== this.#tally.generation) this.#tally = emptyTally(next.generation);
    this.#adopt(next);
  }

  /**
   * Writes what is unsynced (if the store answers), then ends the subscription; within the
   * store's patience (`max(syncInterval, 1000)` ms) whatever the store does, reporting what
   * it could not write.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const patience = this.#patience();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), patience);
    });
    try {
      const flushed = await Promise.race([this.#flush().then(() => true), deadline]);
      this.#closed = true;
      clearTimeout(this.#timer);
      this.#timer = undefined;
      clearTimeout(this.#watchdog);
      this.#watchdog = undefined;
      this.#reportUnwritten(flushed, patience);
      const subscription = this.#subscription;
      this.#subscription = undefined;
      if (subscription !== undefined) {
        const ended = (async () => {
          try {
            await subscription[Symbol.asyncDispose]();
          } catch (error) {
            this.#host.storeError(error, "subscribe");
          }
        })();
        await Promise.race([ended, deadline]);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Writes what is unsynced: one more try even after a failure (a busy store answers later),
   * and more, after short random pauses, while others write first (until `close` gives up).
   * Nothing is written while the breaker is isolated.
   */
  async #flush(): Promise<void> {
    await this.#syncing;
    for (let round = 0; this.#pending() && !this.#closed && !this.#isolated(); round++) {
      if (round > 0) await pause(Math.random() * 2 ** Math.min(round, 6));
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#countsDue = true;
      this.#kick();
      await this.#syncing;
      if (this.#offline) return;
    }
  }

  /** Reports, on closing, the outcomes and the state change the store did not take. */
  #reportUnwritten(answered: boolean, patience: number): void {
    const outcomes = this.#tally.outcomes + (this.#unconfirmed?.sent.outcomes ?? 0);
    const transition = this.#transition || this.#unconfirmed?.transition === true;
    if (outcomes === 0 && !transition) return;
    const what = [
      ...(outcomes === 0 ? [] : [`${outcomes} outcome${outcomes === 1 ? "" : "s"}`]),
      ...(transition ? ["a change of state"] : []),
    ].join(" and ");
    const message = `Circuit ${
      quoteName(this.#name)
    }: closed without writing ${what} to the store (${
      !answered
        ? `it did not answer within ${patience} ms`
        : this.#isolated()
        ? "the breaker is isolated"
        : this.#offline
        ? "it failed"
        : "other breakers kept writing first"
    })`;
    this.#host.storeError(
      answered ? new Error(message) : new TimeoutError(message),
      "compareAndSet",
    );
  }

  #isolated(): boolean {
    return this.#host.snapshot().isolated !== 0;
  }

  #pending(): boolean {
    return this.#transition || this.#repair || this.#tally.outcomes !== 0 || this.#leaseWanted ||
      !this.#known;
  }

  /** Replaces the local snapshot with one the store holds (or is about to). */
  #adopt(next: Snapshot): void {
    this.#adopting = true;
    try {
      this.#host.adopt(next);
    } finally {
      this.#adopting = false;
    }
  }

  /**
   * Whether the store has failed, or not answered, for long enough to go on without it: a
   * single failed write (a busy database) must not let two breakers run trials.
   */
  #unavailable(now: number): boolean {
    const patience = this.#patience();
    const failing = this.#failingSince;
    if (failing !== undefined && now - failing >= patience) return true;
    const since = this.#busySince;
    if (since === undefined || now - since < patience) return false;
    this.#reportSlow(now - since);
    return true;
  }

  /** Reports, once per stall, that the running store operation has not answered. */
  #reportSlow(ms: number): void {
    if (this.#slowReported || this.#closed) return;
    this.#slowReported = true;
    const operation = this.#running;
    this.#report(
      new TimeoutError(
        `Circuit ${
          quoteName(this.#name)
        }: the store has not answered (${operation}) for ${ms} ms; going on under local state`,
      ),
      operation,
    );
  }

  /** How long a store operation may take before the breaker goes on without it. */
  #patience(): number {
    return Math.max(this.#syncInterval, MIN_PATIENCE_MS);
  }

  /**
   * A notification is a hint: it makes the link read the store, never changes the circuit. A
   * change of state (another generation announced) is read at once; others' counts within
   * syncInterval, at the next sync (before this link writes its own): with many processes,
   * reading each one's counts as they come would cost a read per write per process.
   */
  #hear(stored: StoredState): void {
    // A store may announce this link's own write before answering it: not news.
    if (this.#closed || stored.version === this.#stored?.version) return;
    if (stored.value === this.#writing) return;
    this.#readWanted = true;
    const generation = storedGeneration(stored.value);
    if (generation === undefined || generation !== this.#storedSnapshot?.generation) {
      this.#kick();
    } else {
      this.#wake(this.#syncInterval);
    }
  }

  /** Makes the counts due in `delay` ms (at once for 0), unless the sync timer already will. */
  #wake(delay: number): void {
    if (this.#closed) return;
    if (delay <= 0) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#countsDue = true;
      return this.#kick();
    }
    if (this.#timer !== undefined) return;
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.#countsDue = true;
      this.#kick();
    }, delay);
    // A pending sync must not keep a process alive; dispose the breaker to flush it.
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  /** The store answers again: counts wait for syncInterval again, not for the retry delay. */
  #backOnline(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#tally.outcomes !== 0) this.#wake(this.#syncInterval);
  }

  /** Runs the loop again in `delay` ms, whatever the sync timer was set to. */
  #retry(delay: number): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wake(Math.max(delay, 1));
  }

  /** Starts the sync loop, or makes the running one go round again. */
  #kick(): void {
    if (this.#closed) return;
    if (this.#syncing !== undefined) {
      this.#again = true;
      return;
    }
    // The loop clears #syncing as it ends, in the same turn: a kick from then on starts
    // another loop instead of being lost on one that is ending.
    this.#syncing = this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      do {
        this.#again = false;
        try {
          await this.#step();
          if (this.#offline) this.#backOnline();
          this.#offline = false;
          this.#failingSince = undefined;
          this.#slowReported = false;
        } catch (error) {
          if (!this.#offline) this.#report(error, this.#failed);
          this.#offline = true;
          try {
            this.#failingSince ??= this.#host.now();
          } catch {
            // A broken clock only loses the outage check.
          }
          if (this.#pending()) this.#retry(Math.max(this.#syncInterval, MIN_RETRY_MS));
          return;
        }
      } while (this.#again && !this.#closed);
    } finally {
      this.#syncing = undefined;
    }
  }

  /** One round: read what is unknown or announced, write what is unsynced. */
  async #step(): Promise<void> {
    const now = this.#host.now();
    const countsDue = this.#countsDue;
    this.#countsDue = false;
    // Calls that tallied outcomes run this step at least every syncInterval: it reads what
    // others wrote, so changes arrive by then even without notifications.
    if (
      !this.#known || this.#readWanted || this.#unconfirmed !== undefined ||
      now - this.#lastRead >= this.#syncInterval
    ) {
      this.#readWanted = false;
      this.#lastRead = now;
      await this.#read();
    }
    const local = this.#host.snapshot();
    if (local.isolated !== 0) return; // isolation is local: nothing is written while it lasts
    // After conflicts in a row, writes wait for the timer (see #write).
    if (this.#conflicts > 1 && !countsDue) return;
    if (this.#leaseWanted) {
      this.#leaseWanted = false;
      if (wantsLease(this.#host.policy(), local, now)) {
        await this.#write(takeLease(this.#host.policy(), local, now), local.generation, countsDue);
        return;
      }
    }
    const stored = this.#storedSnapshot;
    if (
      !this.#transition && stored !== undefined &&
      changesNothing(this.#host.policy(), stored, this.#tally)
    ) {
      this.#tally = emptyTally(this.#tally.generation);
    }
    if (
      this.#transition || this.#repair || this.#stored === undefined ||
      (countsDue && this.#tally.outcomes !== 0)
    ) {
      await this.#write(local, undefined, countsDue);
    } else if (this.#tally.outcomes !== 0) {
      this.#wake(this.#syncInterval);
    }
  }

  /**
   * Writes `snapshot` over the stored state last known; on a conflict, reads the store and
   * tries again: at once the first time, then after a growing delay. A lease taken
   * (`leaseFrom`: the local generation it was taken in) becomes the local snapshot, unless the
   * breaker changed state meanwhile.
   */
  async #write(
    snapshot: Snapshot,
    leaseFrom: number | undefined,
    countsDue: boolean,
  ): Promise<void> {
    const lease = leaseFrom !== undefined;
    const sent = this.#tally;
    const transition = this.#transition;
    this.#tally = emptyTally(snapshot.generation);
    this.#transition = false;
    let stored: StoredState | undefined;
    const write = ++this.#writes;
    const marks = markWrite(this.#storedMarks, this.#writer, write, this.#host.now());
    const value = encodeStored(snapshot, marks);
    // Unconfirmed until the store answers: if it never does, the next read tells.
    this.#unconfirmed = { write, sent, transition, lease };
    try {
      const expected = this.#stored?.version;
      this.#writing = value;
      stored = await this.#call(
        "compareAndSet",
        () => this.#store.compareAndSet(this.#name, expected, value),
      );
    } finally {
      this.#writing = undefined;
    }
    if (stored !== undefined) {
      this.#unconfirmed = undefined;
      this.#conflicts = 0;
      this.#repair = false;
      this.#stored = stored;
      this.#storedSnapshot = snapshot;
      this.#storedMarks = marks;
      if (lease && this.#host.snapshot().generation === leaseFrom) this.#adopt(snapshot);
      return;
    }
    // Another breaker wrote first (or a client re-sent this write after a reconnect, and the
    // first one was applied): learn what is stored, and go round again.
    await this.#read();
    this.#conflicts++;
    if (this.#conflicts === 1) {
      this.#countsDue ||= countsDue;
      this.#again = true;
      return;
    }
    const most = Math.max(this.#syncInterval, MIN_RETRY_MS);
    this.#retry(Math.min(most, 2 ** this.#conflicts) * (0.5 + Math.random() / 2));
  }

  /** Reads the stored state (its value only when its version moved) and follows it. */
  async #read(): Promise<void> {
    const known = this.#stored;
    const store = this.#store;
    const readIfChanged = store.readIfChanged;
    let stored: StoredState | "unchanged" | undefined;
    try {
      stored = known !== undefined && typeof readIfChanged === "function"
        ? await this.#call("read", () => readIfChanged.call(store, this.#name, known.version))
        : await this.#call("read", () => store.read(this.#name));
    } catch (error) {
      const version = storedVersionOf(error);
      if (version === undefined) throw error;
      this.#known = true;
      this.#confirm(undefined);
      this.#unreadable({ version, value: "" }, error);
      return;
    }
    this.#known = true;
    if (stored === "unchanged") return this.#confirm(known);
    this.#confirm(stored);
    this.#follow(stored);
  }

  /** Settles a write whose answer was lost, by what the store now holds. */
  #confirm(stored: StoredState | undefined): void {
    const unconfirmed = this.#unconfirmed;
    if (unconfirmed === undefined) return;
    this.#unconfirmed = undefined;
    // Unreadable: no marks (#follow reports it), and the write is taken as not applied.
    const marks = stored === undefined ? undefined : storedWriteMarks(stored.value);
    if (includesWrite(marks, this.#writer, unconfirmed.write)) return; // counts are stored
    this.#restore(unconfirmed.sent, unconfirmed.transition, unconfirmed.lease);
  }

  /** Puts back what a write that did not happen was to carry. */
  #restore(sent: Tally, transition: boolean, lease: boolean): void {
    this.#tally = joinTallies(this.#host.policy(), sent, this.#tally, this.#host.now());
    this.#transition ||= transition;
    this.#leaseWanted ||= lease;
  }

  /**
   * A stored value this link cannot read: reported once, and written over by the local state
   * at once (by compare-and-set against its version, so a repair by another breaker wins).
   */
  #unreadable(stored: StoredState, error: unknown): void {
    if (this.#reportedVersion !== stored.version) {
      this.#reportedVersion = stored.version;
      this.#report(error, "read");
    }
    this.#stored = stored;
    this.#storedSnapshot = undefined;
    this.#storedMarks = undefined;
    this.#repair = true;
  }

  /** Takes `stored`, read from the store, as the shared state. */
  #follow(stored: StoredState | undefined): void {
    if (stored === undefined) {
      // Nothing stored (new, or lost by the store): the local state is written next.
      this.#repair = false;
      this.#stored = undefined;
      this.#storedSnapshot = undefined;
      this.#storedMarks = undefined;
      return;
    }
    if (stored.version === this.#stored?.version) return;
    const policy = this.#host.policy();
    let snapshot: Snapshot;
    let marks: WriteMarks;
    try {
      ({ snapshot, marks } = decodeStored(
        policy,
        stored.value,
        `Cannot read the stored state of circuit ${quoteName(this.#name)}`,
      ));
    } catch (error) {
      return this.#unreadable(stored, error);
    }
    const now = this.#host.now();
    const bounded = boundStoredTimes(policy, snapshot, now);
    if (bounded.corrections.length !== 0) {
      this.#report(
        new RangeError(
          `Circuit ${quoteName(this.#name)}: the stored state is out of bounds: ${
            bounded.corrections.join("; ")
          }`,
        ),
        "read",
      );
    }
    snapshot = bounded.snapshot;
    this.#repair = false;
    const previous = this.#storedSnapshot;
    this.#stored = stored;
    this.#storedSnapshot = snapshot;
    this.#storedMarks = marks;
    const local = this.#host.snapshot();
    const next = reconcile(policy, local, previous, snapshot, this.#tally, this.#transition, now);
    this.#transition = next.generation !== snapshot.generation;
    if (next === local) return;
    if (next.generation !== this.#tally.generation) this.#tally = emptyTally(next.generation);
    this.#adopt(next);
  }

  /**
   * Runs one store operation, noting when it started (see `#unavailable`) and reporting it
   * once it has not answered for the store's patience, in any state.
   */
  async #call<T>(operation: Operation, run: () => Promise<T>): Promise<T> {
    this.#running = operation;
    try {
      this.#busySince = this.#host.now();
    } catch {
      // A broken clock only loses the slowness check.
    }
    const patience = this.#patience();
    const watchdog = setTimeout(() => this.#reportSlow(patience), patience);
    (watchdog as { unref?: () => void }).unref?.();
    this.#watchdog = watchdog;
    try {
      return await run();
    } catch (error) {
      this.#failed = operation;
      throw error;
    } finally {
      clearTimeout(watchdog);
      if (this.#watchdog === watchdog) this.#watchdog = undefined;
      this.#busySince = undefined;
    }
  }

  #report(error: unknown, operation: Operation): void {
    if (!this.#closed) this.#host.storeError(error, operation);
  }
}

/** The version an unreadable entry's error names (see `StateStore.read`), if any. */
function storedVersionOf(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const version = (error as { storedVersion?: unknown }).storedVersion;
  return typeof version === "string" ? version : undefined;
}

/** Resolves after `ms`, keeping no process alive. */
function pause(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    (timer as { unref?: () => void }).unref?.();
  });
}
