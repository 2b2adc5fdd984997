// Owns the etcd coordination backend: each lease is an etcd key bound to an etcd lease (TTL),
// created only if absent (a transaction on create_revision == 0), renewed by keepalives, and
// revoked on release. Several Bulwark instances on several machines share one etcd cluster; at
// most one holds each key. Every call goes through the JSON gateway client (etcd-gateway.ts)
// with a short deadline and failover between endpoints, so an unreachable etcd — or a dead
// member — surfaces as an error quickly, and the shared renew loop (renewing.ts) stops trusting
// the lease on its own.
import type { Clock } from '../core/clock.js';
import { BulwarkError } from '../core/errors.js';
import { EtcdGateway } from './etcd-gateway.js';
import { EtcdKV } from './etcd-kv.js';
import type { ClusterKV, Coordination, EtcdMember, LeaderLease } from './lease.js';
import { RenewingLease } from './renewing.js';

const CALL_DEADLINE_MS = 1000;

export class EtcdCoordination implements Coordination {
  readonly kind = 'etcd' as const;
  readonly identity: string;
  readonly #gw: EtcdGateway;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  readonly #prefix: string;
  readonly #endpoints: string[];
  readonly #leases: RenewingLease[] = [];
  readonly #kv: EtcdKV;

  constructor(opts: { endpoints: string[]; prefix: string; ttlMs: number; identity: string; clock: Clock }) {
    this.identity = opts.identity;
    this.#clock = opts.clock;
    this.#ttlMs = opts.ttlMs;
    this.#prefix = opts.prefix.replace(/\/+$/, '');
    this.#endpoints = opts.endpoints;
    this.#gw = new EtcdGateway(opts.endpoints, CALL_DEADLINE_MS);
    this.#kv = new EtcdKV({ gateway: this.#gw, prefix: this.#prefix, identity: this.identity, ttlSec: this.#ttlSec(), call: (fn) => this.#call(fn) });
  }

  get kv(): ClusterKV {
    return this.#kv;
  }

  #ttlSec(): number {
    return Math.max(1, Math.ceil(this.#ttlMs / 1000));
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new BulwarkError('BULWARK_COORD_UNAVAILABLE', `etcd at ${this.#endpoints.join(', ')} cannot be reached: ${(err as Error).message}`, {
        hint: 'check coordination.endpoints and that etcd is running with a quorum; no instance acts as leader until the lease can be taken',
        cause: err,
      });
    }
  }

  /** The etcd cluster's members, as etcd lists them (for the audit: fewer than three is a single point of failure). */
  etcdMembers(): Promise<EtcdMember[]> {
    return this.#call(async () => (await this.#gw.members()).map((m) => ({ id: m.id, name: m.name, peer_urls: m.peerURLs, client_urls: m.clientURLs, learner: m.isLearner })));
  }

  lease(name: string): LeaderLease {
    const key = `${this.#prefix}/leases/${name}`;
    const gw = this.#gw;
    const me = this.identity;
    const ttlSec = this.#ttlSec();
    let current: string | undefined;
    const lease = new RenewingLease({
      name,
      identity: me,
      clock: this.#clock,
      ttlMs: this.#ttlMs,
      ops: {
        take: () =>
          this.#call(async () => {
            try {
              current ??= await gw.grant(ttlSec);
              const r = await gw.createIfAbsent(key, me, current);
              if (r.created) return true;
              const kv = r.existing;
              if (kv && kv.value === me && kv.lease === current) return true;
              if (kv && kv.value === me) {
                // Our own identity under an older etcd lease: this instance restarted (cluster mode:
                // the identity is the instance name) and abandoned the key on its way down. Adopt
                // it — only if nobody changed it meanwhile — so a restart does not cost a failover.
                if (await gw.putIf(key, { modRevision: kv.mod_revision }, key, me, current)) return true;
              }
              // Someone else holds it. Our etcd lease is not kept alive while we wait, so it would
              // expire and a later put with it would fail: give it back and grant a new one next time.
              const stale = current;
              current = undefined;
              await gw.revoke(stale).catch(() => undefined);
              return false;
            } catch (err) {
              current = undefined; // e.g. "requested lease not found": start from a fresh lease next time
              throw err;
            }
          }),
        renew: () =>
          this.#call(async () => {
            if (!current) return false;
            const ok = await gw.keepalive(current);
            if (!ok) current = undefined;
            return ok;
          }),
        release: async () => {
          const c = current;
          current = undefined;
          if (c) await gw.revoke(c).catch(() => undefined);
        },
        holder: () => this.#call(async () => (await gw.get(key))?.value),
      },
    });
    this.#leases.push(lease);
    return lease;
  }

  async close(): Promise<void> {
    for (const l of this.#leases.splice(0)) await l.close();
    await this.#kv.close();
  }
}
