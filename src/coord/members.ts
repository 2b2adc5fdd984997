// Owns cluster membership: each instance registers itself under members/<instance> as an
// ephemeral key (bound to its coordination session, so it vanishes about one TTL after the
// instance dies or loses etcd) and refreshes it with a small health summary; listing joins the
// live keys with the configured instances and says who is up and who is gone. Outside cluster
// mode the membership is just this instance (kept in the in-process KV the same way).
import type { Clock, Timer } from '../core/clock.js';
import type { ClusterKV } from './lease.js';

export const MEMBERS_PREFIX = 'members/';

/** A small summary of how an instance is doing, refreshed with its member key. */
export interface MemberHealth {
  /** Subsystems running. */
  subsystems: number;
  /** Subsystems whose status failed, by name. */
  errors: string[];
}

/** What an instance publishes about itself. */
export interface MemberRecord {
  name: string;
  api: string;
  zone?: string | undefined;
  version: string;
  /** Unix ms when the instance started. */
  started_at: number;
  pid: number;
  /** Unix ms of the last refresh. */
  updated_at: number;
  health: MemberHealth;
}

export type MemberState = 'up' | 'gone' | 'unknown';

/** One row of the membership: a configured instance (or a live key of one no longer configured). */
export interface MemberView {
  name: string;
  api: string;
  zone: string | undefined;
  /** up: its key is live; gone: configured but no live key (dead, stopped or cut off from etcd); unknown: etcd could not be read. */
  state: MemberState;
  /** The live record when up. */
  record?: MemberRecord | undefined;
  /** true for an instance that has a live key but is not under cluster.instances (a stale config somewhere). */
  unlisted?: boolean;
}

export interface ConfiguredInstance {
  name: string;
  api: string;
  zone?: string | undefined;
}

function parseRecord(text: string): MemberRecord | undefined {
  try {
    const v = JSON.parse(text) as MemberRecord;
    return v && typeof v.name === 'string' && typeof v.api === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Pure: joins configured instances with the live member records. */
export function joinMembers(configured: readonly ConfiguredInstance[], live: ReadonlyMap<string, MemberRecord>): MemberView[] {
  const out: MemberView[] = configured.map((c) => {
    const r = live.get(c.name);
    return { name: c.name, api: c.api, zone: c.zone, state: r ? 'up' : 'gone', ...(r ? { record: r } : {}) };
  });
  for (const [name, r] of live) {
    if (!configured.some((c) => c.name === name)) out.push({ name, api: r.api, zone: r.zone, state: 'up', record: r, unlisted: true });
  }
  return out;
}

/** Reads every live member record. Throws BULWARK_COORD_UNAVAILABLE when the KV cannot be read. */
export async function liveMembers(kv: ClusterKV): Promise<Map<string, MemberRecord>> {
  const all = await kv.list(MEMBERS_PREFIX);
  const out = new Map<string, MemberRecord>();
  for (const [k, v] of all) {
    const r = parseRecord(v);
    if (r && k === `${MEMBERS_PREFIX}${r.name}`) out.set(r.name, r);
  }
  return out;
}

/** Lists the configured instances with their state; when the KV cannot be read, every one is 'unknown' and `error` says why. */
export async function listMembers(kv: ClusterKV, configured: readonly ConfiguredInstance[]): Promise<{ members: MemberView[]; error?: string }> {
  try {
    return { members: joinMembers(configured, await liveMembers(kv)) };
  } catch (err) {
    return { members: configured.map((c) => ({ name: c.name, api: c.api, zone: c.zone, state: 'unknown' as const })), error: (err as Error).message };
  }
}

export interface MembershipOptions {
  kv: ClusterKV;
  clock: Clock;
  self: Omit<MemberRecord, 'updated_at' | 'health'>;
  /** The health summary published with each refresh. */
  health: () => MemberHealth;
  /** How often the record is refreshed (the key's liveness comes from the session; this refreshes the summary). */
  everyMs: number;
  /** Told when a refresh fails (etcd away): the key will vanish and others will see this instance as gone. */
  onError?: (err: unknown) => void;
}

/** This instance's registration: put at start, refreshed every `everyMs`, deleted at a graceful stop. */
export class Membership {
  readonly #o: MembershipOptions;
  #timer: Timer | undefined;
  #running = false;
  #refreshing: Promise<void> | undefined;

  constructor(opts: MembershipOptions) {
    this.#o = opts;
  }

  get key(): string {
    return `${MEMBERS_PREFIX}${this.#o.self.name}`;
  }

  /** Registers now (a failure is reported, not thrown: the refresh loop retries), then keeps refreshing. */
  async start(): Promise<void> {
    this.#running = true;
    await this.refresh();
    this.#arm();
  }

  #arm(): void {
    if (!this.#running) return;
    this.#timer = this.#o.clock.setTimeout(() => {
      void this.refresh().finally(() => this.#arm());
    }, this.#o.everyMs);
  }

  /** Writes the record once. */
  refresh(): Promise<void> {
    if (this.#refreshing) return this.#refreshing;
    const record: MemberRecord = { ...this.#o.self, updated_at: this.#o.clock.now(), health: this.#safeHealth() };
    const p = this.#o.kv
      .putEphemeral(this.key, JSON.stringify(record))
      .catch((err: unknown) => this.#o.onError?.(err))
      .finally(() => (this.#refreshing = undefined));
    this.#refreshing = p;
    return p;
  }

  #safeHealth(): MemberHealth {
    try {
      return this.#o.health();
    } catch {
      return { subsystems: 0, errors: ['health summary failed'] };
    }
  }

  /** Stops refreshing and removes the key (others see this instance gone at once). */
  async stop(): Promise<void> {
    this.#running = false;
    this.#timer?.cancel();
    await this.#refreshing;
    await this.#o.kv.delete(this.key).catch(() => undefined);
  }
}
