// Owns the timeouts of one HTTP service's data path: a coarse clock and one interval that checks
// the exchanges in flight (per-try deadlines, quiet backends mid-response) every SWEEP_MS and the
// client connections (idle keep-alive) and idle backend connections every second, instead of a
// timer per request and a timer refresh on every socket read and write.
import { performance } from 'node:perf_hooks';

/** Resolution of the per-try and idle timeouts of requests in flight. */
export const SWEEP_MS = 50;
const SLOW_EVERY = 20;

export interface Sweepable {
  /** Called with the coarse time; the item removes itself when it is done. */
  sweep(now: number): void;
}

export class Sweeper {
  /** performance.now() as of the last tick (good to SWEEP_MS). */
  now = performance.now();
  readonly #fast = new Set<Sweepable>();
  readonly #slow = new Set<Sweepable>();
  #timer: NodeJS.Timeout | undefined;
  #ticks = 0;

  /** Checked every SWEEP_MS (requests in flight). */
  addFast(x: Sweepable): void {
    this.#fast.add(x);
    this.#ensure();
  }

  removeFast(x: Sweepable): void {
    this.#fast.delete(x);
  }

  /** Checked every second (connections). */
  addSlow(x: Sweepable): void {
    this.#slow.add(x);
    this.#ensure();
  }

  removeSlow(x: Sweepable): void {
    this.#slow.delete(x);
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #ensure(): void {
    if (this.#timer !== undefined) return;
    this.now = performance.now(); // stale while stopped
    this.#timer = setInterval(() => this.#tick(), SWEEP_MS);
    this.#timer.unref();
  }

  #tick(): void {
    const now = (this.now = performance.now());
    for (const x of this.#fast) x.sweep(now);
    if (++this.#ticks % SLOW_EVERY === 0) for (const x of this.#slow) x.sweep(now);
    if (this.#fast.size === 0 && this.#slow.size === 0) this.stop();
  }
}

/** The one sweeper of the process's HTTP data path (every service shares it). */
export const sweeper = new Sweeper();
