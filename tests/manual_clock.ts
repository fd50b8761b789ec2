/** A clock the test moves by hand, for the `clock` option. */
export interface ManualClock {
  (): number;
  /** The current time, epoch ms. */
  now: number;
  /** Moves the time forward by `ms`. */
  advance(ms: number): void;
}

/** A clock starting at `start` ms. */
export function manualClock(start = 1_000_000): ManualClock {
  const clock = (() => clock.now) as ManualClock;
  clock.now = start;
  clock.advance = (ms: number) => {
    clock.now += ms;
  };
  return clock;
}

/** A promise that never settles unless told to, with its resolvers. */
export function deferred<T = unknown>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets pending promise reactions run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}
