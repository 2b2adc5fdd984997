// Owns time: a Clock interface so timing logic (rise/fall, leases, SLO windows, schedules) can be
// tested with a fake clock instead of real sleeps.

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds since the epoch (wall clock: for records and schedules; it can step). */
  now(): number;
  /**
   * Milliseconds on a monotonic clock (never steps; CLOCK_MONOTONIC, shared by every process on
   * the host). Deadlines that safety depends on (lease trust, self-fencing) use this one.
   */
  mono(): number;
  /** Calls fn once after ms. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Resolves after ms. */
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  mono: () => Number(process.hrtime.bigint() / 1000n) / 1000,
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** A manual clock for tests: time moves only when advance() is called; due timers fire in order. */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  mono(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn });
    return { cancel: () => this.#timers.delete(id) };
  }

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /** Moves time forward by ms, firing every timer that falls due, in time order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let nextId: number | undefined;
      let nextAt = Infinity;
      for (const [id, t] of this.#timers) {
        if (t.at <= end && t.at < nextAt) {
          nextAt = t.at;
          nextId = id;
        }
      }
      if (nextId === undefined) break;
      const t = this.#timers.get(nextId);
      this.#timers.delete(nextId);
      this.#now = nextAt;
      t?.fn();
    }
    this.#now = end;
  }

  /** Number of pending timers (for assertions). */
  get pending(): number {
    return this.#timers.size;
  }
}
