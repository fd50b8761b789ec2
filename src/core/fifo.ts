/**
 * A persistent first-in first-out queue: every operation returns a new queue and leaves the old
 * one intact, so snapshots that hold one stay values. Two linked lists (Okasaki's banker's
 * queue) give O(1) amortized push and shift.
 *
 * @module
 */

/** One cell of an immutable singly linked list. */
export interface Cell<T> {
  /** The item. */
  readonly value: T;
  /** The rest of the list. */
  readonly next: Cell<T> | undefined;
}

/** An immutable FIFO queue; `undefined` is the empty queue. */
export interface Fifo<T> {
  /** Oldest items first; never empty while the queue is not. */
  readonly front: Cell<T>;
  /** Newest items first. */
  readonly back: Cell<T> | undefined;
  /** Number of items. */
  readonly size: number;
}

/** Returns a queue with `value` added at the end. */
export function push<T>(queue: Fifo<T> | undefined, value: T): Fifo<T> {
  if (queue === undefined) return { front: { value, next: undefined }, back: undefined, size: 1 };
  return { front: queue.front, back: { value, next: queue.back }, size: queue.size + 1 };
}

/** The oldest item. */
export function peek<T>(queue: Fifo<T>): T {
  return queue.front.value;
}

/** Returns the queue without its oldest item. */
export function shift<T>(queue: Fifo<T>): Fifo<T> | undefined {
  if (queue.size === 1) return undefined;
  const rest = queue.front.next;
  if (rest !== undefined) return { front: rest, back: queue.back, size: queue.size - 1 };
  // The front list ran out: the back list, reversed, becomes the front (once per item).
  let front: Cell<T> | undefined;
  for (let cell = queue.back; cell !== undefined; cell = cell.next) {
    front = { value: cell.value, next: front };
  }
  return { front: front as Cell<T>, back: undefined, size: queue.size - 1 };
}

/** The items, oldest first. */
export function toArray<T>(queue: Fifo<T> | undefined): T[] {
  if (queue === undefined) return [];
  const items: T[] = [];
  for (let cell: Cell<T> | undefined = queue.front; cell !== undefined; cell = cell.next) {
    items.push(cell.value);
  }
  const newest: T[] = [];
  for (let cell = queue.back; cell !== undefined; cell = cell.next) newest.push(cell.value);
  return items.concat(newest.reverse());
}

/** A queue of the given items, oldest first. */
export function fromArray<T>(items: readonly T[]): Fifo<T> | undefined {
  let queue: Fifo<T> | undefined;
  for (const item of items) queue = push(queue, item);
  return queue;
}
