// Owns the shared key-value state on etcd: plain keys under the deployment's prefix, ephemeral
// keys bound to one session lease per instance (kept alive by etcd3's keepalive; gone about a TTL
// after the instance dies or loses etcd), and writes guarded by a leader lease (a transaction
// that compares the lease key's value with this instance's identity, so a former holder whose
// key expired cannot overwrite what the new holder wrote).
import type { Etcd3, Lease } from 'etcd3';
import type { ClusterKV, LeaderLease } from './lease.js';

export interface EtcdKvOptions {
  client: Etcd3;
  /** The deployment's prefix, without a trailing slash. */
  prefix: string;
  identity: string;
  ttlSec: number;
  /** Runs a call with the backend's deadline, mapping failures to BULWARK_COORD_UNAVAILABLE. */
  call<T>(what: string, fn: () => Promise<T>): Promise<T>;
}

export class EtcdKV implements ClusterKV {
  readonly #o: EtcdKvOptions;
  #session: Lease | undefined;

  constructor(opts: EtcdKvOptions) {
    this.#o = opts;
  }

  #key(k: string): string {
    return `${this.#o.prefix}/${k}`;
  }

  get(key: string): Promise<string | undefined> {
    return this.#o.call('etcd get', async () => (await this.#o.client.get(this.#key(key)).string()) ?? undefined);
  }

  list(prefix: string): Promise<Map<string, string>> {
    return this.#o.call('etcd range', async () => {
      const all = await this.#o.client.getAll().prefix(this.#key(prefix)).strings();
      const cut = this.#o.prefix.length + 1;
      return new Map(Object.entries(all).map(([k, v]) => [k.slice(cut), v]));
    });
  }

  put(key: string, value: string): Promise<void> {
    return this.#o.call('etcd put', async () => {
      await this.#o.client.put(this.#key(key)).value(value);
    });
  }

  putEphemeral(key: string, value: string): Promise<void> {
    return this.#o.call('etcd put (session)', async () => {
      if (!this.#session || this.#session.revoked()) {
        const l = this.#o.client.lease(this.#o.ttlSec);
        l.on('lost', () => {
          if (this.#session === l) this.#session = undefined;
        });
        await l.grant();
        this.#session = l;
      }
      try {
        await this.#session.put(this.#key(key)).value(value);
      } catch (err) {
        this.#session = undefined; // e.g. the lease expired while etcd was away: a new one next time
        throw err;
      }
    });
  }

  delete(key: string): Promise<void> {
    return this.#o.call('etcd delete', async () => {
      await this.#o.client.delete().key(this.#key(key));
    });
  }

  putIfHolder(lease: LeaderLease, key: string, value: string): Promise<boolean> {
    if (!lease.isHeld()) return Promise.resolve(false);
    return this.#o.call('etcd transaction', async () => {
      const c = this.#o.client;
      const r = await c.if(this.#key(`leases/${lease.name}`), 'Value', '==', this.#o.identity).then(c.put(this.#key(key)).value(value)).commit();
      return r.succeeded;
    });
  }

  /** Revokes the session lease: this instance's ephemeral keys vanish at once (graceful stop). */
  async close(): Promise<void> {
    const s = this.#session;
    this.#session = undefined;
    if (s) await s.revoke().catch(() => undefined);
  }
}
