// Owns the etcd coordination backend: each lease is an etcd key bound to an etcd lease (TTL),
// created only if absent (a transaction on create_revision == 0), renewed with keepalives, and
// revoked on release. Several Bulwark instances on several machines share one etcd cluster; at
// most one holds each key. Every call has a short deadline so an unreachable etcd surfaces as an
// error quickly, and the shared renew loop (renewing.ts) stops trusting the lease on its own.
import { Etcd3, type Lease } from 'etcd3';
import type { Clock } from '../core/clock.js';
import { BulwarkError } from '../core/errors.js';
import { EtcdKV } from './etcd-kv.js';
import type { ClusterKV, Coordination, EtcdMember, LeaderLease } from './lease.js';
import { RenewingLease } from './renewing.js';

const CALL_DEADLINE_MS = 1000;

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

export class EtcdCoordination implements Coordination {
  readonly kind = 'etcd' as const;
  readonly identity: string;
  readonly #client: Etcd3;
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
    this.#client = new Etcd3({
      hosts: opts.endpoints,
      dialTimeout: CALL_DEADLINE_MS,
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + CALL_DEADLINE_MS }),
    });
    this.#kv = new EtcdKV({
      client: this.#client,
      prefix: this.#prefix,
      identity: this.identity,
      ttlSec: Math.max(1, Math.ceil(this.#ttlMs / 1000)),
      call: async (what, fn) => {
        try {
          return await withDeadline(fn(), CALL_DEADLINE_MS * 2, what);
        } catch (err) {
          throw this.#unavailable(err);
        }
      },
    });
  }

  get kv(): ClusterKV {
    return this.#kv;
  }

  #unavailable(err: unknown): BulwarkError {
    return new BulwarkError('BULWARK_COORD_UNAVAILABLE', `etcd at ${this.#endpoints.join(', ')} cannot be reached: ${(err as Error).message}`, {
      hint: 'check coordination.endpoints and that etcd is running; no instance acts as leader until the lease can be taken',
      cause: err,
    });
  }

  lease(name: string): LeaderLease {
    const key = `${this.#prefix}/leases/${name}`;
    const client = this.#client;
    const me = this.identity;
    const ttlSec = Math.max(1, Math.ceil(this.#ttlMs / 1000));
    let current: { lease: Lease; id: string } | undefined;
    const fresh = async (): Promise<{ lease: Lease; id: string }> => {
      if (current && !current.lease.revoked()) return current;
      const lease = client.lease(ttlSec, { autoKeepAlive: false });
      lease.on('lost', () => undefined); // handled by the renew loop; keep EventEmitter from throwing
      const id = await withDeadline(lease.grant(), CALL_DEADLINE_MS * 2, 'etcd lease grant');
      current = { lease, id };
      return current;
    };
    const lease = new RenewingLease({
      name,
      identity: me,
      clock: this.#clock,
      ttlMs: this.#ttlMs,
      ops: {
        take: async () => {
          try {
            const l = await fresh();
            const r = await withDeadline(
              client.if(key, 'Create', '==', 0).then(client.put(key).value(me).lease(l.id)).else(client.get(key)).commit(),
              CALL_DEADLINE_MS * 2,
              'etcd transaction',
            );
            if (r.succeeded) return true;
            const kv = r.responses[0]?.response_range?.kvs[0];
            if (kv !== undefined && kv.value.toString() === me && String(kv.lease) === String(l.id)) return true;
            if (kv !== undefined && kv.value.toString() === me) {
              // Our own identity under an older etcd lease: this instance restarted (cluster mode:
              // the identity is the instance name) and abandoned the key on its way down. Adopt
              // it — only if nobody changed it meanwhile — so a restart does not cost a failover.
              const a = await withDeadline(
                client.if(key, 'Mod', '==', Number(kv.mod_revision)).then(client.put(key).value(me).lease(l.id)).commit(),
                CALL_DEADLINE_MS * 2,
                'etcd transaction (adopt)',
              );
              if (a.succeeded) return true;
            }
            // Someone else holds it. Our etcd lease is not kept alive while we wait, so it would
            // expire and a later put with it would fail: give it back and grant a new one next time.
            current = undefined;
            await withDeadline(l.lease.revoke(), CALL_DEADLINE_MS, 'etcd revoke').catch(() => undefined);
            return false;
          } catch (err) {
            current = undefined; // e.g. "requested lease not found": start from a fresh lease next time
            throw this.#unavailable(err);
          }
        },
        renew: async () => {
          if (!current) return false;
          const c = current;
          try {
            const r = await withDeadline(c.lease.keepaliveOnce({ deadline: Date.now() + CALL_DEADLINE_MS }), CALL_DEADLINE_MS, 'etcd keepalive');
            if (Number(r.TTL) <= 0) {
              current = undefined;
              return false;
            }
            return true;
          } catch (err) {
            throw this.#unavailable(err);
          }
        },
        release: async () => {
          const c = current;
          current = undefined;
          if (c) await withDeadline(c.lease.revoke(), CALL_DEADLINE_MS, 'etcd revoke').catch(() => undefined);
        },
        holder: async () => {
          try {
            return (await withDeadline(client.get(key).string(), CALL_DEADLINE_MS * 2, 'etcd get')) ?? undefined;
          } catch (err) {
            throw this.#unavailable(err);
          }
        },
      },
    });
    this.#leases.push(lease);
    return lease;
  }

  /** The etcd cluster's members, as etcd lists them. */
  async etcdMembers(): Promise<EtcdMember[]> {
    try {
      const r = await withDeadline(this.#client.cluster.memberList({}), CALL_DEADLINE_MS * 2, 'etcd member list');
      return r.members.map((m) => ({ id: String(m.ID), name: m.name, peer_urls: m.peerURLs, client_urls: m.clientURLs, learner: m.isLearner }));
    } catch (err) {
      throw this.#unavailable(err);
    }
  }

  async close(): Promise<void> {
    for (const l of this.#leases.splice(0)) await l.close();
    await this.#kv.close();
    this.#client.close();
  }
}
