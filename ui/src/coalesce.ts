// Updates that arrive faster than the page draws are gathered and handed over once per frame.

export type Schedule = (run: () => void) => unknown;

const frame: Schedule = (run) =>
  typeof requestAnimationFrame === "function" && typeof document !== "undefined" && !document.hidden
    ? requestAnimationFrame(() => run())
    : setTimeout(run, 50); // a hidden tab gets no frames: keep up, but rarely

/** `push(item)` any number of times; `flush(items)` runs once per `schedule` tick with all of them. */
export function coalescer<T>(flush: (items: T[]) => void, schedule: Schedule = frame) {
  let pending: T[] = [];
  let scheduled = false;
  const run = () => {
    scheduled = false;
    const items = pending;
    pending = [];
    if (items.length) flush(items);
  };
  return {
    push(item: T) {
      pending.push(item);
      if (!scheduled) {
        scheduled = true;
        schedule(run);
      }
    },
    get pending() {
      return pending.length;
    },
  };
}
