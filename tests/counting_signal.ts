/** Counts the "abort" listeners on a controller's signal, for tests that check none is left. */
export function countingSignal(controller: AbortController): () => number {
  const signal = controller.signal;
  let count = 0;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...args: Parameters<typeof add>) => {
    if (args[0] === "abort") count++;
    add(...args);
  }) as typeof signal.addEventListener;
  signal.removeEventListener = ((...args: Parameters<typeof remove>) => {
    if (args[0] === "abort") count--;
    remove(...args);
  }) as typeof signal.removeEventListener;
  return () => count;
}
