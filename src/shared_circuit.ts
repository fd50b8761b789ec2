/**
 * The link between a breaker and the store its circuit is shared through. The breaker keeps
 * deciding from its local snapshot; this link writes its transitions at once by
 * compare-and-set, merges its counts in batches, takes trial leases, and follows what other
 * breakers write. It decides nothing about the circuit: the core does (`reconcile`, `follow`,
 * `recordTally`, `takeLease`, `wantsLease`).
 *
 * @module
 */

import type { Policy } from "./core/policy.ts";
import { snapshotFromJSON, snapshotToJSON } from "./core/serialize.ts";
import type { Snapshot } from "./core/snapshot.ts";
import { changesNothing, emptyTally, joinTallies, type Tally, tallyOutcome } from "./core/tally.ts";
import { follow, reconcile, takeLease, wantsLease } from "./core/transitions.ts";
import { includesWrite, markWrite, readWriteMarks, type WriteMarks } from "./core/write_marks.ts";
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
  /** A trial lease to take. */
  #leaseWanted = false;
  /** The value of the write awaiting the store's answer (unique by its write marks). */
  #writing: string | undefined;
  /** The newest value a subscription delivered, not yet followed. */
  #heard: StoredState | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #syncing: Promise<void> | undefined;
  #again = false;
  /** When the running store operation started (while one runs). */
  #busySince: number | undefined;
  #slowReported = false;
  /** Whether the last store operation failed. */
  #offline = false;
  /** When the store operations began failing (while they do). */
  #failingSince: number | undefined;
  /** Set while the link itself replaces the local snapshot: not a local transition. */
  #adopting = false;
  /** A read to refresh the stored state (for stores without a subscription). */
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
    this.#schedule(this.#syncInterval);
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

  /** Writes what is unsynced (if the store answers), then ends the subscription. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#syncing;
    if (this.#pending()) {
      // One more try even after a failure (a busy database answers the next time); after a
      // failure, waiting no longer than the store's patience, so a dead store cannot hang it.
      const offline = this.#offline;
      this.#kick();
      if (offline) await this.#within(this.#syncing, this.#patience());
      else await this.#syncing;
    }
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const subscription = this.#subscription;
    this.#subscription = undefined;
    if (subscription !== undefined) {
      try {
        await subscription[Symbol.asyncDispose]();
      } catch (error) {
        this.#report(error, "subscribe");
      }
    }
  }

  #pending(): boolean {
    return this.#transition || this.#tally.outcomes !== 0 || this.#leaseWanted ||
      this.#heard !== undefined || !this.#known;
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
    if (!this.#slowReported) {
      this.#slowReported = true;
      this.#report(
        new TimeoutError(
          `Circuit ${JSON.stringify(this.#name)}: the store has not answered for ${
            now - since
          } ms; going on under local state`,
        ),
        "compareAndSet",
      );
    }
    return true;
  }

  /** How long a store operation may take before the breaker goes on without it. */
  #patience(): number {
    return Math.max(this.#syncInterval, MIN_PATIENCE_MS);
  }

  /** Waits for `operation`, or `ms`, whichever comes first. */
  async #within(operation: Promise<void> | undefined, ms: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([operation, new Promise((resolve) => timer = setTimeout(resolve, ms))]);
    } finally {
      clearTimeout(timer);
    }
  }

  #hear(stored: StoredState): void {
    // A store may announce this link's own write before answering it: not news.
    if (this.#closed || stored.version === this.#stored?.version) return;
    if (stored.value === this.#writing) return;
    this.#heard = stored;
    this.#kick();
  }

  /** Runs the sync loop after `delay` ms, unless it runs sooner. */
  #schedule(delay: number): void {
    if (this.#timer !== undefined || this.#closed) return;
    if (delay <= 0) return this.#kick();
    const timer = setTimeout(() => {
      this.#timer = undefined;
      this.#kick();
    }, delay);
    // A pending sync must not keep a process alive; dispose the breaker to flush it.
    (timer as { unref?: () => void }).unref?.();
    this.#timer = timer;
  }

  /** Starts the sync loop, or makes the running one go round again. */
  #kick(): void {
    if (this.#closed) return;
    if (this.#syncing !== undefined) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#syncing = this.#loop().finally(() => {
      this.#syncing = undefined;
    });
  }

  async #loop(): Promise<void> {
    do {
      this.#again = false;
      try {
        await this.#step();
        this.#offline = false;
        this.#failingSince = undefined;
      } catch (error) {
        if (!this.#offline) this.#report(error, this.#known ? "compareAndSet" : "read");
        this.#offline = true;
        try {
          this.#failingSince ??= this.#host.now();
        } catch {
          // A broken clock only loses the outage check.
        }
        if (this.#pending()) this.#schedule(Math.max(this.#syncInterval, MIN_RETRY_MS));
        return;
      } finally {
        this.#busySince = undefined;
        this.#slowReported = false;
      }
    } while (this.#again && !this.#closed);
  }

  /** One round: read what is unknown, follow what was heard, write what is unsynced. */
  async #step(): Promise<void> {
    const now = this.#host.now();
    // Calls that tallied outcomes run this step at least every syncInterval: it reads what
    // others wrote, so changes arrive by then even without notifications.
    if (
      !this.#known || this.#readWanted || this.#unconfirmed !== undefined ||
      now - this.#lastRead >= this.#syncInterval
    ) {
      this.#readWanted = false;
      this.#lastRead = now;
      const stored = await this.#call(() => this.#store.read(this.#name));
      this.#known = true;
      this.#confirm(stored);
      this.#follow(stored, true);
    }
    const heard = this.#heard;
    if (heard !== undefined) {
      this.#heard = undefined;
      this.#follow(heard, false);
    }
    const local = this.#host.snapshot();
    if (local.isolated !== 0) return; // isolation is local: nothing is written while it lasts
    if (this.#leaseWanted) {
      this.#leaseWanted = false;
      if (wantsLease(this.#host.policy(), local, now)) {
        await this.#write(takeLease(this.#host.policy(), local, now), local.generation);
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
    if (this.#transition || this.#tally.outcomes !== 0 || this.#stored === undefined) {
      await this.#write(local, undefined);
    }
  }

  /**
   * Writes `snapshot` over the stored state last known; on a conflict, follows the store. A
   * lease taken (`leaseFrom`: the local generation it was taken in) becomes the local
   * snapshot, unless the breaker changed state meanwhile.
   */
  async #write(snapshot: Snapshot, leaseFrom: number | undefined): Promise<void> {
    const lease = leaseFrom !== undefined;
    const sent = this.#tally;
    const transition = this.#transition;
    this.#tally = emptyTally(snapshot.generation);
    this.#transition = false;
    let stored: StoredState | undefined;
    const write = ++this.#writes;
    const marks = markWrite(this.#storedMarks, this.#writer(), write, this.#host.now());
    const value = JSON.stringify({ ...snapshotToJSON(snapshot), writes: marks });
    try {
      const expected = this.#stored?.version;
      this.#writing = value;
      stored = await this.#call(() => this.#store.compareAndSet(this.#name, expected, value));
    } catch (error) {
      this.#unconfirmed = { write, sent, transition, lease };
      throw error;
    } finally {
      this.#writing = undefined;
    }
    if (stored !== undefined) {
      this.#stored = stored;
      this.#storedSnapshot = snapshot;
      this.#storedMarks = marks;
      if (lease && this.#host.snapshot().generation === leaseFrom) this.#adopt(snapshot);
      return;
    }
    // Another breaker wrote first (or a client re-sent this write after a reconnect, and the
    // first one was applied): learn what is stored, and go round again.
    this.#unconfirmed = { write, sent, transition, lease };
    const current = await this.#call(() => this.#store.read(this.#name));
    this.#confirm(current);
    this.#follow(current, true);
    this.#again = true;
  }

  /** Settles a write whose answer was lost, by what the store now holds. */
  #confirm(stored: StoredState | undefined): void {
    const unconfirmed = this.#unconfirmed;
    if (unconfirmed === undefined) return;
    this.#unconfirmed = undefined;
    let marks: WriteMarks | undefined;
    try {
      marks = stored === undefined ? undefined : readWriteMarks(JSON.parse(stored.value));
    } catch {
      // Unreadable: #follow reports it; the write is taken as not applied.
    }
    if (includesWrite(marks, this.#writer(), unconfirmed.write)) return; // counts are stored
    this.#restore(unconfirmed.sent, unconfirmed.transition, unconfirmed.lease);
  }

  /** This link's name in the write marks: its lease holder name, unique per breaker. */
  #writer(): string {
    return this.#host.policy().lease?.holder ?? this.#name;
  }

  /** Puts back what a write that did not happen was to carry. */
  #restore(sent: Tally, transition: boolean, lease: boolean): void {
    this.#tally = joinTallies(this.#host.policy(), sent, this.#tally, this.#host.now());
    this.#transition ||= transition;
    this.#leaseWanted ||= lease;
  }

  /**
   * Takes `stored` as the shared state. A subscription's value older (by generation) than the
   * one known is ignored; a read is authoritative (the store may have lost its data).
   */
  #follow(stored: StoredState | undefined, authoritative: boolean): void {
    if (stored === undefined) {
      // Nothing stored (new, or lost by the store): the local state is written next.
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
      const parsed: unknown = JSON.parse(stored.value);
      snapshot = snapshotFromJSON(
        policy,
        parsed,
        `Cannot read the stored state of circuit ${JSON.stringify(this.#name)}`,
      );
      marks = readWriteMarks(parsed);
    } catch (error) {
      // Unreadable: reported, and overwritten by the local state.
      this.#report(error, "read");
      this.#stored = stored;
      this.#storedSnapshot = undefined;
      this.#storedMarks = undefined;
      this.#transition = true;
      return;
    }
    const previous = this.#storedSnapshot;
    if (!authoritative && previous !== undefined && snapshot.generation < previous.generation) {
      return;
    }
    this.#stored = stored;
    this.#storedSnapshot = snapshot;
    this.#storedMarks = marks;
    const local = this.#host.snapshot();
    const now = this.#host.now();
    const next = reconcile(policy, local, previous, snapshot, this.#tally, this.#transition, now);
    this.#transition = next.generation !== snapshot.generation;
    if (next === local) return;
    if (next.generation !== this.#tally.generation) this.#tally = emptyTally(next.generation);
    this.#adopt(next);
  }

  /** Runs one store operation, noting when it started (see `#unavailable`). */
  #call<T>(operation: () => Promise<T>): Promise<T> {
    try {
      this.#busySince ??= this.#host.now();
    } catch {
      // A broken clock only loses the slowness check.
    }
    return operation();
  }

  #report(error: unknown, operation: StoreErrorEvent["operation"]): void {
    this.#host.storeError(error, operation);
  }
}
