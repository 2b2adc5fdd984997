// Owns the renew loop shared by every lease backend: take, renew three times per TTL, and stop
// trusting the lease (and tell subscribers) the moment the last confirmed renewal is older than
// the TTL minus a margin. Backends only implement the three remote operations in LeaseOps.
// Every time here is on the monotonic clock: a wall-clock step cannot stretch the trusted window.
import type { Clock, Timer } from '../core/clock.js';
import type { LeaderLease } from './lease.js';
import { renewEvery, trustedUntil } from './lease.js';

/** What a backend does remotely for one lease. */
export interface LeaseOps {
  /** Takes the lease if free (or already ours). true = ours now. Throws when the backend is unreachable. */
  take(): Promise<boolean>;
  /** Extends a held lease. true = extended; false = the backend says it is gone. Throws when unreachable. */
  renew(): Promise<boolean>;
  /** Gives it up. Best effort. */
  release(): Promise<void>;
  /** Current holder's identity. */
  holder(): Promise<string | undefined>;
}

export class RenewingLease implements LeaderLease {
  readonly name: string;
  readonly identity: string;
  readonly #ops: LeaseOps;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #lost = new Set<(reason: string) => void>();
  #held = false;
  #until = 0;
  #renewTimer: Timer | undefined;
  #expiryTimer: Timer | undefined;
  #renewing = false;
  #closed = false;

  constructor(opts: { name: string; identity: string; ops: LeaseOps; clock: Clock; ttlMs: number }) {
    this.name = opts.name;
    this.identity = opts.identity;
    this.#ops = opts.ops;
    this.#clock = opts.clock;
    this.#ttlMs = opts.ttlMs;
  }

  async acquire(): Promise<boolean> {
    if (this.#closed) return false;
    const sent = this.#clock.mono();
    const ok = await this.#ops.take();
    if (this.#closed) return false;
    if (ok) {
      this.#held = true;
      this.#confirm(sent);
      this.#scheduleRenew();
    } else if (this.#held) {
      this.#lose('another instance holds the lease');
    }
    return ok;
  }

  isHeld(): boolean {
    if (this.#held && this.#clock.mono() >= this.#until) this.#lose(`not renewed within the lease TTL (${this.#ttlMs} ms)`);
    return this.#held;
  }

  trustedUntil(): number | undefined {
    return this.isHeld() ? this.#until : undefined;
  }

  holder(): Promise<string | undefined> {
    return this.#ops.holder();
  }

  async release(): Promise<void> {
    const was = this.#held;
    this.#held = false;
    this.#cancelTimers();
    if (was) await this.#ops.release().catch(() => undefined);
  }

  abandon(): void {
    this.#closed = true;
    this.#held = false;
    this.#cancelTimers();
  }

  /** release() and refuse further acquire() calls. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.release();
  }

  onLost(fn: (reason: string) => void): () => void {
    this.#lost.add(fn);
    return () => this.#lost.delete(fn);
  }

  #confirm(sentAt: number): void {
    this.#until = Math.max(this.#until, trustedUntil(sentAt, this.#ttlMs));
    this.#expiryTimer?.cancel();
    this.#expiryTimer = this.#clock.setTimeout(() => this.isHeld(), Math.max(0, this.#until - this.#clock.mono()));
  }

  #scheduleRenew(): void {
    this.#renewTimer?.cancel();
    this.#renewTimer = this.#clock.setTimeout(() => void this.#renew(), renewEvery(this.#ttlMs));
  }

  async #renew(): Promise<void> {
    if (!this.#held || this.#renewing) return;
    this.#renewing = true;
    const sent = this.#clock.mono();
    let ok: boolean | undefined;
    try {
      ok = await this.#ops.renew();
    } catch {
      ok = undefined; // unreachable: keep trying until the trusted window runs out
    } finally {
      this.#renewing = false;
    }
    if (!this.#held) return;
    if (ok === true && sent < this.#until) this.#confirm(sent);
    else if (ok === false) return this.#lose('the coordination service says the lease expired');
    if (this.isHeld()) this.#scheduleRenew();
  }

  #lose(reason: string): void {
    if (!this.#held) return;
    this.#held = false;
    this.#cancelTimers();
    for (const fn of this.#lost) {
      try {
        fn(reason);
      } catch {
        // a subscriber's failure must not keep others from hearing about the loss
      }
    }
  }

  #cancelTimers(): void {
    this.#renewTimer?.cancel();
    this.#expiryTimer?.cancel();
    this.#renewTimer = undefined;
    this.#expiryTimer = undefined;
  }
}
