// Owns talking to etcd over its JSON gateway (the v3 API as HTTP POSTs on the client URLs: kv
// range/put/deleterange/txn, lease grant/keepalive/revoke, cluster member list), with failover
// between endpoints built for hosts that die: every request has a short deadline; the endpoint
// that answered last is asked first, and when it does not answer in time the others are asked at
// once and the first answer wins. A dead host answers nothing (its connections stay half-open),
// so the only signal is the deadline — which is why this is not the gRPC client: its channels to
// a dead member wait out TCP, and its lease keepalive stream stays bound to that member, so a
// leader could not renew while another member was up (measured in the network-namespace lab).
// Every operation used here is idempotent or checked (create-if-absent transactions), so asking
// a second endpoint after a lost answer is safe.

/** One etcd request/response pair as the gateway speaks it (keys and values base64). */
type Json = Record<string, unknown>;

export interface KvPair {
  key: string;
  value: string;
  create_revision: string;
  mod_revision: string;
  lease: string | undefined;
}

const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

/** The key range end that makes a range query a prefix query (etcd's "prefix + 1"). */
function prefixEnd(prefix: string): string {
  const buf = Buffer.from(prefix, 'utf8');
  for (let i = buf.length - 1; i >= 0; i--) {
    if ((buf[i] as number) < 0xff) {
      buf[i] = (buf[i] as number) + 1;
      return buf.subarray(0, i + 1).toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64');
}

function pair(kv: Json): KvPair {
  return {
    key: unb64(kv['key'] as string),
    value: unb64(kv['value'] as string | undefined),
    create_revision: String(kv['create_revision'] ?? '0'),
    mod_revision: String(kv['mod_revision'] ?? '0'),
    lease: kv['lease'] === undefined ? undefined : String(kv['lease']),
  };
}

/** An answer from a live etcd member that means "this member cannot serve now": ask another. */
function unavailableAnswer(status: number, body: Json): boolean {
  const msg = String(body['error'] ?? body['message'] ?? '');
  return status >= 500 || /no leader|timed out|leader changed|not capable|unhealthy|stopped/i.test(msg);
}

export class EtcdGateway {
  readonly endpoints: readonly string[];
  readonly #timeoutMs: number;
  #preferred = 0;

  constructor(endpoints: readonly string[], timeoutMs = 1000) {
    this.endpoints = endpoints.map((e) => e.replace(/\/+$/, ''));
    this.#timeoutMs = timeoutMs;
  }

  async #one(endpoint: string, path: string, body: Json): Promise<Json> {
    const r = await fetch(`${endpoint}${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal: AbortSignal.timeout(this.#timeoutMs) });
    const json = (await r.json().catch(() => ({}))) as Json;
    if (!r.ok) {
      const err = new Error(`${endpoint}${path}: ${String(json['error'] ?? json['message'] ?? r.statusText)}`) as Error & { unavailable?: boolean };
      err.unavailable = unavailableAnswer(r.status, json);
      throw err;
    }
    return json;
  }

  /** Asks the preferred endpoint; when it does not answer in time, all the others at once. */
  async call(path: string, body: Json): Promise<Json> {
    const first = this.endpoints[this.#preferred] as string;
    try {
      return await this.#one(first, path, body);
    } catch (err) {
      if ((err as { unavailable?: boolean }).unavailable === false) throw err;
      const others = this.endpoints.map((e, i) => ({ e, i })).filter((x) => x.i !== this.#preferred);
      if (others.length === 0) throw err;
      try {
        return await Promise.any(
          others.map(async ({ e, i }) => {
            const res = await this.#one(e, path, body);
            this.#preferred = i;
            return res;
          }),
        );
      } catch (agg) {
        const errors = agg instanceof AggregateError ? (agg.errors as Error[]) : [agg as Error];
        const definite = errors.find((x) => (x as { unavailable?: boolean }).unavailable === false);
        if (definite) throw definite;
        throw new Error([err as Error, ...errors].map((x) => x.message).join('; '));
      }
    }
  }

  async get(key: string): Promise<KvPair | undefined> {
    const r = await this.call('/v3/kv/range', { key: b64(key) });
    const kvs = (r['kvs'] as Json[] | undefined) ?? [];
    return kvs[0] ? pair(kvs[0]) : undefined;
  }

  async list(prefix: string): Promise<KvPair[]> {
    const r = await this.call('/v3/kv/range', { key: b64(prefix), range_end: prefixEnd(prefix) });
    return ((r['kvs'] as Json[] | undefined) ?? []).map(pair);
  }

  async put(key: string, value: string, lease?: string): Promise<void> {
    await this.call('/v3/kv/put', { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) });
  }

  async delete(key: string): Promise<void> {
    await this.call('/v3/kv/deleterange', { key: b64(key) });
  }

  /** Puts key = value bound to lease if the key does not exist; else returns what is there. */
  async createIfAbsent(key: string, value: string, lease: string): Promise<{ created: boolean; existing: KvPair | undefined }> {
    const r = await this.call('/v3/kv/txn', {
      compare: [{ key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [{ request_put: { key: b64(key), value: b64(value), lease } }],
      failure: [{ request_range: { key: b64(key) } }],
    });
    if (r['succeeded'] === true) return { created: true, existing: undefined };
    const kvs = (((r['responses'] as Json[] | undefined)?.[0]?.['response_range'] as Json | undefined)?.['kvs'] as Json[] | undefined) ?? [];
    return { created: false, existing: kvs[0] ? pair(kvs[0]) : undefined };
  }

  /** Puts key = value (optionally bound to lease) if `guard` currently holds exactly `guardValue` (and, when given, was last changed at `guardModRevision`). */
  async putIf(guard: string, cmp: { value?: string; modRevision?: string }, key: string, value: string, lease?: string): Promise<boolean> {
    const compare: Json[] = [];
    if (cmp.value !== undefined) compare.push({ key: b64(guard), target: 'VALUE', result: 'EQUAL', value: b64(cmp.value) });
    if (cmp.modRevision !== undefined) compare.push({ key: b64(guard), target: 'MOD', result: 'EQUAL', mod_revision: cmp.modRevision });
    const r = await this.call('/v3/kv/txn', { compare, success: [{ request_put: { key: b64(key), value: b64(value), ...(lease ? { lease } : {}) } }] });
    return r['succeeded'] === true;
  }

  async grant(ttlSec: number): Promise<string> {
    const r = await this.call('/v3/lease/grant', { TTL: String(ttlSec) });
    const id = r['ID'];
    if (id === undefined || r['error']) throw new Error(`lease grant refused: ${String(r['error'] ?? 'no ID')}`);
    return String(id);
  }

  /** Renews a lease; false when etcd says it no longer exists (expired or revoked). */
  async keepalive(id: string): Promise<boolean> {
    const r = await this.call('/v3/lease/keepalive', { ID: id });
    const ttl = Number((r['result'] as Json | undefined)?.['TTL'] ?? 0);
    return ttl > 0;
  }

  async revoke(id: string): Promise<void> {
    await this.call('/v3/lease/revoke', { ID: id });
  }

  /** The members of the etcd cluster (name, peer and client URLs). */
  async members(): Promise<Array<{ id: string; name: string; peerURLs: string[]; clientURLs: string[]; isLearner: boolean }>> {
    const r = await this.call('/v3/cluster/member/list', {});
    return ((r['members'] as Json[] | undefined) ?? []).map((m) => ({ id: String(m['ID']), name: String(m['name'] ?? ''), peerURLs: (m['peerURLs'] as string[] | undefined) ?? [], clientURLs: (m['clientURLs'] as string[] | undefined) ?? [], isLearner: m['isLearner'] === true }));
  }
}
