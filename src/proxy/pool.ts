// Owns a service's backend pool as pure logic: each backend's routing state (health from
// 'health.transition', passive outlier ejection with backoff, draining, slow start), the balancers
// (round-robin with smooth weights, least-request, random-two-choices) and active-passive tiers
// with failback damping. No sockets and no timers: callers pass the current time.
import type { NodeHealth } from '../core/events.js';

/** Latency buckets in seconds (upper bounds) shared by every backend histogram. */
export const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/** A fixed-bucket histogram updated without allocation; exported to Prometheus by stats.ts. */
export class LatencyHistogram {
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > (LATENCY_BUCKETS[i] as number)) i++;
    this.counts[i] = (this.counts[i] ?? 0) + 1;
    this.sum += seconds;
    this.count++;
  }
}

export type Balance = 'round-robin' | 'least-request' | 'random-two';

export interface PassiveOptions {
  readonly enabled: boolean;
  readonly consecutiveFailures: number;
  readonly count5xx: boolean;
  readonly baseEjection: number;
  readonly maxEjection: number;
  readonly maxEjectedShare: number;
}

export interface PoolOptions {
  readonly mode: 'active-active' | 'active-passive';
  readonly balance: Balance;
  readonly failbackDelay: number;
  readonly slowStart: number;
  readonly passive: PassiveOptions;
}

/**
 * A backend as the proxy sees it. Counters are plain numbers (the hot path allocates nothing).
 * IO is the protocol's per-backend state (the HTTP connection pool, or the TCP connection set).
 */
export class Backend<IO = unknown> {
  readonly name: string;
  address: string;
  host: string;
  port: number;
  weight: number;
  standby: boolean;
  /** The zone the backend runs in (cluster mode), or undefined. */
  zone: string | undefined = undefined;
  /** Position in the pool (bit in retry masks). */
  index = 0;
  health: NodeHealth = 'unknown';
  /** When the backend last became routable (for slow start). */
  upSince: number;
  ejectedUntil = 0;
  ejections = 0;
  consecutiveFailures = 0;
  firstFailureAt = 0;
  /** Removed from the config: takes no new requests, finishes the ones in flight. */
  draining = false;
  inFlight = 0;
  requests = 0;
  errors = 0;
  retries = 0;
  /** Smooth weighted round-robin state. */
  current = 0;
  /** Finished requests by status class: [failed before a status, 1xx, 2xx, 3xx, 4xx, 5xx]. */
  readonly codes = new Float64Array(6);
  readonly latency = new LatencyHistogram();
  /** Connections (TCP) opened to this backend. */
  connections = 0;
  /** Per-backend resources of the I/O layer (connection pool, connection set). */
  io: IO;

  constructor(name: string, address: string, host: string, port: number, weight: number, standby: boolean, now: number, io: IO) {
    this.io = io;
    this.name = name;
    this.address = address;
    this.host = host;
    this.port = port;
    this.weight = weight;
    this.standby = standby;
    this.upSince = now;
  }

  /** A request or connection starts on this backend. */
  begin(): void {
    this.inFlight++;
    this.requests++;
  }

  /** A request or connection that began here ended (whatever the outcome). */
  finish(): void {
    this.inFlight--;
  }

  /** An attempt here failed and the request was tried again. */
  retried(): void {
    this.retries++;
  }

  ejected(now: number): boolean {
    return this.ejectedUntil > now;
  }

  /** Routable: not down, not ejected, not draining, weight above zero. */
  usable(now: number): boolean {
    return this.health !== 'down' && !this.draining && this.weight > 0 && this.ejectedUntil <= now;
  }

  get state(): string {
    if (this.draining) return 'draining';
    return this.health;
  }
}

export interface OutlierDecision {
  readonly ejected: boolean;
  readonly until: number;
  readonly reason: string;
  /** Time from the first failure of the streak to the ejection, ms. */
  readonly detectionMs: number;
  /** True when the max-ejected share stopped the ejection. */
  readonly capped: boolean;
}

export class Pool<B extends Backend<unknown> = Backend> {
  readonly backends: B[] = [];
  #opts: PoolOptions;
  #rr = 0;
  /** Active-passive: which tier takes traffic. */
  #tier: 'primary' | 'standby' = 'primary';
  /** Active-passive: since when a primary has been usable while standby serves (failback damping). */
  #primaryBackSince = 0;
  readonly #random: () => number;
  /**
   * Cluster mode: this instance's zone. Active-active picks among the backends of this zone while
   * one of them is usable (and not excluded by a retry), else among all.
   */
  localZone: string | undefined = undefined;

  constructor(opts: PoolOptions, random: () => number = Math.random) {
    this.#opts = opts;
    this.#random = random;
  }

  get options(): PoolOptions {
    return this.#opts;
  }

  set options(o: PoolOptions) {
    this.#opts = o;
  }

  get tier(): 'primary' | 'standby' {
    return this.#tier;
  }

  add(b: B): void {
    b.index = this.backends.length;
    this.backends.push(b);
  }

  remove(b: B): void {
    const i = this.backends.indexOf(b);
    if (i < 0) return;
    this.backends.splice(i, 1);
    for (let j = 0; j < this.backends.length; j++) (this.backends[j] as B).index = j;
  }

  find(name: string): B | undefined {
    for (const b of this.backends) if (b.name === name) return b;
    return undefined;
  }

  /** Applies a health transition. Returns true when routability changed. */
  setHealth(b: B, to: NodeHealth, now: number): boolean {
    const before = b.usable(now);
    if (to !== 'down' && b.health === 'down') b.upSince = now;
    b.health = to;
    if (to === 'up') {
      b.consecutiveFailures = 0;
    }
    this.touch(now);
    return before !== b.usable(now);
  }

  /** Role of a backend for status: primary, standby, or active (active-active). */
  role(b: B): string {
    if (this.#opts.mode === 'active-active') return 'active';
    return b.standby ? 'standby' : 'primary';
  }

  /**
   * Picks a backend, skipping those whose bit is set in `exclude`. Returns undefined when none
   * is usable. Allocation-free.
   */
  pick(now: number, exclude = 0): B | undefined {
    let standbyTier = false;
    if (this.#opts.mode === 'active-passive') {
      standbyTier = this.#chooseTier(now) === 'standby';
      const b = this.#pickIn(now, exclude, standbyTier ? 1 : 0);
      if (b) return b;
      // The chosen tier is exhausted for this request (all excluded): try the other one.
      return this.#pickIn(now, exclude, standbyTier ? 0 : 1);
    }
    const zone = this.localZone;
    if (zone !== undefined) {
      const local = this.#pickIn(now, exclude, 2, zone);
      if (local) return local;
    }
    return this.#pickIn(now, exclude, 2);
  }

  /** tier: 0 primaries only, 1 standbys only, 2 all. zone: only backends of that zone. */
  #pickIn(now: number, exclude: number, tier: number, zone?: string): B | undefined {
    const list = this.backends;
    const n = list.length;
    switch (this.#opts.balance) {
      case 'round-robin': {
        // Smooth weighted round-robin (nginx): every pick adds each weight to its current and takes the largest.
        let total = 0;
        let best: B | undefined;
        for (let i = 0; i < n; i++) {
          const b = list[i] as B;
          if (!this.#eligible(b, now, exclude, tier, zone)) continue;
          const w = this.#effectiveWeight(b, now);
          b.current += w;
          total += w;
          if (!best || b.current > best.current) best = b;
        }
        if (best) best.current -= total;
        return best;
      }
      case 'least-request': {
        let best: B | undefined;
        let bestScore = Infinity;
        const start = this.#rr++ % (n || 1);
        for (let k = 0; k < n; k++) {
          const b = list[(start + k) % n] as B;
          if (!this.#eligible(b, now, exclude, tier, zone)) continue;
          const score = (b.inFlight + 1) / this.#effectiveWeight(b, now);
          if (score < bestScore) {
            bestScore = score;
            best = b;
          }
        }
        return best;
      }
      case 'random-two': {
        let count = 0;
        for (let i = 0; i < n; i++) if (this.#eligible(list[i] as B, now, exclude, tier, zone)) count++;
        if (count === 0) return undefined;
        const ia = Math.floor(this.#random() * count);
        const a = this.#nth(ia, now, exclude, tier, zone) as B;
        if (count === 1) return a;
        let j = Math.floor(this.#random() * (count - 1));
        if (j >= ia) j++;
        const c = this.#nth(j, now, exclude, tier, zone) ?? a;
        return (a.inFlight + 1) / this.#effectiveWeight(a, now) <= (c.inFlight + 1) / this.#effectiveWeight(c, now) ? a : c;
      }
    }
  }

  #nth(k: number, now: number, exclude: number, tier: number, zone?: string): B | undefined {
    let seen = 0;
    for (const b of this.backends) {
      if (!this.#eligible(b, now, exclude, tier, zone)) continue;
      if (seen === k) return b;
      seen++;
    }
    return undefined;
  }

  #eligible(b: B, now: number, exclude: number, tier: number, zone?: string): boolean {
    if (zone !== undefined && b.zone !== zone) return false;
    if (!b.usable(now)) return false;
    if (b.index < 31 && (exclude & (1 << b.index)) !== 0) return false;
    if (tier === 0 && b.standby) return false;
    if (tier === 1 && !b.standby) return false;
    return true;
  }

  /** Weight scaled by slow start: ramps from 10% to 100% over slowStart after the backend returns. */
  #effectiveWeight(b: B, now: number): number {
    const ss = this.#opts.slowStart;
    if (ss <= 0) return b.weight;
    const age = now - b.upSince;
    if (age >= ss) return b.weight;
    return b.weight * Math.max(0.1, age / ss);
  }

  /** Active-passive tier choice with failback damping. */
  #chooseTier(now: number): 'primary' | 'standby' {
    let primaryUsable = false;
    let hasStandby = false;
    for (const b of this.backends) {
      if (b.standby) hasStandby = true;
      else if (b.usable(now)) primaryUsable = true;
    }
    if (!hasStandby) return 'primary';
    if (this.#tier === 'primary') {
      if (!primaryUsable) {
        this.#tier = 'standby';
        this.#primaryBackSince = 0;
      }
      return this.#tier;
    }
    if (!primaryUsable) {
      this.#primaryBackSince = 0;
      return 'standby';
    }
    if (this.#primaryBackSince === 0) this.#primaryBackSince = now;
    if (now - this.#primaryBackSince >= this.#opts.failbackDelay) {
      this.#tier = 'primary';
      this.#primaryBackSince = 0;
    }
    return this.#tier;
  }

  /** Evaluates tier state without picking (call on health changes so damping starts on time). */
  touch(now: number): void {
    if (this.#opts.mode === 'active-passive') this.#chooseTier(now);
  }

  /** A request or connection to b succeeded (passive detection). */
  success(b: B): void {
    if (b.consecutiveFailures !== 0) b.consecutiveFailures = 0;
  }

  /**
   * A request or connection to b failed on live traffic. Returns a decision when the failure
   * ejects b (or would have, but the max-ejected share stopped it).
   */
  failure(b: B, reason: string, now: number): OutlierDecision | undefined {
    b.errors++;
    const p = this.#opts.passive;
    if (!p.enabled) return undefined;
    if (b.consecutiveFailures === 0) b.firstFailureAt = now;
    b.consecutiveFailures++;
    if (b.consecutiveFailures < p.consecutiveFailures || b.ejected(now)) return undefined;
    const detectionMs = now - b.firstFailureAt;
    // Never eject more than the configured share of the pool (at least one backend may go).
    let ejectedNow = 0;
    for (const x of this.backends) if (x.ejected(now)) ejectedNow++;
    const maxEjected = Math.max(1, Math.floor(this.backends.length * p.maxEjectedShare));
    b.consecutiveFailures = 0;
    if (ejectedNow + 1 > maxEjected) {
      return { ejected: false, until: 0, reason: `${reason}; not ejected: ${ejectedNow} of ${this.backends.length} backends already ejected (max_ejected_percent)`, detectionMs, capped: true };
    }
    // A backend that stayed in rotation longer than max_ejection since its last ejection starts a new
    // incident from base_ejection (healed() only runs when health marks it up, which a backend that
    // health never saw down never gets).
    if (b.ejections > 0 && now - b.ejectedUntil > p.maxEjection) b.ejections = 0;
    const backoff = Math.min(p.maxEjection, p.baseEjection * 2 ** Math.min(b.ejections, 20));
    b.ejections++;
    b.ejectedUntil = now + backoff;
    b.upSince = b.ejectedUntil; // slow start ramps from the end of the ejection
    return { ejected: true, until: b.ejectedUntil, reason: `${p.consecutiveFailures} consecutive failures on live traffic (${reason}); ejected for ${backoff} ms`, detectionMs, capped: false };
  }

  /** Forgets the ejection backoff of a backend that health marks up after its ejection ended. */
  healed(b: B, now: number): void {
    if (b.ejectedUntil <= now && b.ejections > 0 && b.health === 'up') b.ejections = 0;
  }
}
