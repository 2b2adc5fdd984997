// Owns the shared key-value state on etcd: plain keys under the deployment's prefix, ephemeral
// keys bound to one session lease per instance (renewed here; gone about a TTL after the
// instance dies or loses etcd), and writes guarded by a leader lease (a transaction that compares
// the lease key's value with this instance's identity, so a former holder whose key expired
// cannot overwrite what the new holder wrote).
import type { EtcdGateway } from './etcd-gateway.js';
import type { ClusterKV, LeaderLease } from './lease.js';

export interface EtcdKvOptions {
  gateway: EtcdGateway;
  /** The deployment's prefix, without a trailing slash. */
  prefix: string;
  identity: string;
  ttlSec: number;
  /** Runs a call, mapping failures to BULWARK_COORD_UNAVAILABLE. */
  call<T>(fn: () => Promise<T>): Promise<T>;
}

export class EtcdKV implements ClusterKV {
  readonly #o: EtcdKvOptions;
  #session: string | undefined;
  #renew: NodeJS.Timeout | undefined;

  constructor(opts: EtcdKvOptions) {
    this.#o = opts;
  }

  #key(k: string): string {
    return `${this.#o.prefix}/${k}`;
  }

  get(key: string): Promise<string | undefined> {
    return this.#o.call(async () => (await this.#o.gateway.get(this.#key(key)))?.value);
  }

  list(prefix: string): Promise<Map<string, string>> {
    return this.#o.call(async () => {
      const cut = this.#o.prefix.length + 1;
      return new Map((await this.#o.gateway.list(this.#key(prefix))).map((kv) => [kv.key.slice(cut), kv.value]));
    });
  }

  put(key: string, value: string): Promise<void> {
    return this.#o.call(() => this.#o.gateway.put(this.#key(key), value));
  }

  putEphemeral(key: string, value: string): Promise<void> {
    return this.#o.call(async () => {
      const gw = this.#o.gateway;
      if (!this.#session) {
        this.#session = await gw.grant(this.#o.ttlSec);
        this.#keepSession();
      }
      try {
        await gw.put(this.#key(key), value, this.#session);
      } catch (err) {
        this.#session = undefined; // e.g. the lease expired while etcd was away: a new one next time
        throw err;
      }
    });
  }

  /** Renews the session lease three times per TTL; a lease etcd no longer knows is dropped (a new one on the next put). */
  #keepSession(): void {
    if (this.#renew) return;
    this.#renew = setInterval(() => {
      const s = this.#session;
      if (!s) return;
      this.#o.gateway.keepalive(s).then(
        (ok) => {
          if (!ok && this.#session === s) this.#session = undefined;
        },
        () => undefined,
      );
    }, Math.max(200, (this.#o.ttlSec * 1000) / 3));
    this.#renew.unref();
  }

  delete(key: string): Promise<void> {
    return this.#o.call(() => this.#o.gateway.delete(this.#key(key)));
  }

  putIfHolder(lease: LeaderLease, key: string, value: string): Promise<boolean> {
    if (!lease.isHeld()) return Promise.resolve(false);
    return this.#o.call(() => this.#o.gateway.putIf(this.#key(`leases/${lease.name}`), { value: this.#o.identity }, this.#key(key), value));
  }

  /** Revokes the session lease: this instance's ephemeral keys vanish at once (graceful stop). */
  async close(): Promise<void> {
    if (this.#renew) clearInterval(this.#renew);
    this.#renew = undefined;
    const s = this.#session;
    this.#session = undefined;
    if (s) await this.#o.gateway.revoke(s).catch(() => undefined);
  }
}
