// Owns the local coordination backend: leases kept in this process, for a single control-plane
// instance (the embedded default). It gives the same guarantees as etcd within one process
// (one holder per lease, expiry when not renewed) and none across processes or machines: run
// several Bulwark instances only with coordination.kind: etcd.
import type { Clock } from '../core/clock.js';
import type { Coordination, LeaderLease } from './lease.js';
import { RenewingLease } from './renewing.js';

interface Entry {
  holder: string;
  expiresAt: number;
}

/** The shared in-process table; tests pass one table to several LocalCoordination instances to stand for "instances". */
export class LocalLeaseTable {
  readonly entries = new Map<string, Entry>();
}

export class LocalCoordination implements Coordination {
  readonly kind = 'local' as const;
  readonly identity: string;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #table: LocalLeaseTable;
  readonly #leases: RenewingLease[] = [];

  constructor(opts: { identity: string; clock: Clock; ttlMs?: number; table?: LocalLeaseTable }) {
    this.identity = opts.identity;
    this.#clock = opts.clock;
    this.#ttlMs = opts.ttlMs ?? 5000;
    this.#table = opts.table ?? new LocalLeaseTable();
  }

  lease(name: string): LeaderLease {
    const entries = this.#table.entries;
    const me = this.identity;
    const clock = this.#clock;
    const ttl = this.#ttlMs;
    const live = (): Entry | undefined => {
      const e = entries.get(name);
      return e && e.expiresAt > clock.now() ? e : undefined;
    };
    const lease = new RenewingLease({
      name,
      identity: me,
      clock,
      ttlMs: ttl,
      ops: {
        take: () => {
          const e = live();
          if (e && e.holder !== me) return Promise.resolve(false);
          entries.set(name, { holder: me, expiresAt: clock.now() + ttl });
          return Promise.resolve(true);
        },
        renew: () => {
          const e = live();
          if (!e || e.holder !== me) return Promise.resolve(false);
          e.expiresAt = clock.now() + ttl;
          return Promise.resolve(true);
        },
        release: () => {
          if (entries.get(name)?.holder === me) entries.delete(name);
          return Promise.resolve();
        },
        holder: () => Promise.resolve(live()?.holder),
      },
    });
    this.#leases.push(lease);
    return lease;
  }

  async close(): Promise<void> {
    for (const l of this.#leases.splice(0)) await l.close();
  }
}
