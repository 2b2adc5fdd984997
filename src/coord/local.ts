// Owns the local coordination backend: leases kept in this process, for a single control-plane
// instance (the embedded default). It gives the same guarantees as etcd within one process
// (one holder per lease, expiry when not renewed) and none across processes or machines: run
// several Bulwark instances only with coordination.kind: etcd.
import type { Clock } from '../core/clock.js';
import type { ClusterKV, Coordination, LeaderLease } from './lease.js';
import { RenewingLease } from './renewing.js';

interface Entry {
  holder: string;
  expiresAt: number;
}

/** The shared in-process table; tests pass one table to several LocalCoordination instances to stand for "instances". */
export class LocalLeaseTable {
  readonly entries = new Map<string, Entry>();
  readonly kv = new Map<string, string>();
}

/** Shared state in this process: the same contract as etcd's, for one instance. */
class LocalKV implements ClusterKV {
  readonly #map: Map<string, string>;
  constructor(map: Map<string, string>) {
    this.#map = map;
  }
  get(key: string): Promise<string | undefined> {
    return Promise.resolve(this.#map.get(key));
  }
  list(prefix: string): Promise<Map<string, string>> {
    return Promise.resolve(new Map([...this.#map].filter(([k]) => k.startsWith(prefix))));
  }
  put(key: string, value: string): Promise<void> {
    this.#map.set(key, value);
    return Promise.resolve();
  }
  readonly #ephemeral = new Set<string>();
  putEphemeral(key: string, value: string): Promise<void> {
    this.#ephemeral.add(key);
    return this.put(key, value);
  }
  /** This instance's session keys go with it. */
  close(): void {
    for (const k of this.#ephemeral) this.#map.delete(k);
    this.#ephemeral.clear();
  }
  delete(key: string): Promise<void> {
    this.#map.delete(key);
    return Promise.resolve();
  }
  putIfHolder(lease: LeaderLease, key: string, value: string): Promise<boolean> {
    if (!lease.isHeld()) return Promise.resolve(false);
    this.#map.set(key, value);
    return Promise.resolve(true);
  }
}

export class LocalCoordination implements Coordination {
  readonly kind = 'local' as const;
  readonly identity: string;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #table: LocalLeaseTable;
  readonly #leases: RenewingLease[] = [];
  readonly #kv: LocalKV;

  constructor(opts: { identity: string; clock: Clock; ttlMs?: number; table?: LocalLeaseTable }) {
    this.identity = opts.identity;
    this.#clock = opts.clock;
    this.#ttlMs = opts.ttlMs ?? 5000;
    this.#table = opts.table ?? new LocalLeaseTable();
    this.#kv = new LocalKV(this.#table.kv);
  }

  get kv(): ClusterKV {
    return this.#kv;
  }

  lease(name: string): LeaderLease {
    const entries = this.#table.entries;
    const me = this.identity;
    const clock = this.#clock;
    const ttl = this.#ttlMs;
    const live = (): Entry | undefined => {
      const e = entries.get(name);
      return e && e.expiresAt > clock.mono() ? e : undefined;
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
          entries.set(name, { holder: me, expiresAt: clock.mono() + ttl });
          return Promise.resolve(true);
        },
        renew: () => {
          const e = live();
          if (!e || e.holder !== me) return Promise.resolve(false);
          e.expiresAt = clock.mono() + ttl;
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
    this.#kv.close();
  }
}
