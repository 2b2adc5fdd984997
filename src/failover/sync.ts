// Owns synchronous standby management: setting synchronous_standby_names on a primary and the
// plan of which standby to name and which are safe (decide.ts's planSync) from the primary's
// pg_stat_replication, for both engines; and, for the single-host engine, the state behind it
// (the safe set recorded in the state store, the standby named and the primary's position when it
// was named, whether the cluster ran without a synchronous copy).
import type { DatabaseConfig } from '../core/config/schema.js';
import type { Logger } from '../core/logger.js';
import { parseLsn, planSync, syncNamesFor, type SyncPlan } from './decide.js';
import { execSql, type ReplicaView, type ObserveTarget } from './monitor.js';

/** ALTER SYSTEM SET synchronous_standby_names (FIRST 1 (name), or '' for none) and a reload on the primary. */
export async function applySyncNames(log: { logger: Logger; database: string }, primary: { name: string; target: ObserveTarget }, name: string | undefined): Promise<void> {
  const value = syncNamesFor(name);
  await execSql(primary.target, `ALTER SYSTEM SET synchronous_standby_names = '${value.replace(/'/g, "''")}'`, 5000);
  await execSql(primary.target, 'SELECT pg_reload_conf()', 5000);
  log.logger.info({ database: log.database, primary: primary.name, synchronous_standby_names: value }, 'synchronous standby set');
}

/**
 * The synchronous plan from the primary's replication view: the streaming standbys, and those it
 * reports `sync` with their flushed WAL at or past the primary's position when the named one was
 * named (only then does a newly named standby hold every acknowledged commit).
 */
export function planFromReplicas(i: { noSyncStandby: DatabaseConfig['no_sync_standby']; named: string | undefined; namedAtLsn: string | undefined; replicas: readonly ReplicaView[]; standbys: string[] }, safeNow: readonly string[]): SyncPlan {
  const streaming = i.replicas.filter((r) => r.state === 'streaming').map((r) => r.name);
  const reportedSync = i.replicas.filter((r) => r.syncState === 'sync' && (parseLsn(r.flushLsn) ?? -1n) >= (parseLsn(i.namedAtLsn) ?? 0n)).map((r) => r.name);
  return planSync({ synchronous: true, noSyncStandby: i.noSyncStandby, named: i.named, streaming, reportedSync, standbys: i.standbys }, safeNow);
}

/** A primary as the sync manager sees it. */
export interface SyncPrimary {
  name: string;
  target: ObserveTarget;
  lsn: string | undefined;
  replicas: readonly ReplicaView[];
}

/** The single-host engine's synchronous standby state. */
export class SyncStandbys {
  readonly #log: { logger: Logger; database: string };
  #safe: string[] = [];
  #named: string | undefined;
  #namedAtLsn: string | undefined;
  #ranAsync = false;

  constructor(log: { logger: Logger; database: string }, safe: string[]) {
    this.#log = log;
    this.#safe = safe;
  }

  /** The standbys known to hold every acknowledged commit (recorded in the state store). */
  get safe(): string[] {
    return this.#safe;
  }

  set safe(nodes: string[]) {
    this.#safe = nodes;
  }

  /** The standby synchronous_standby_names names (undefined: none set by this instance yet). */
  get named(): string | undefined {
    return this.#named;
  }

  /** Forgets the name set on a former primary (a new primary is named afresh). */
  forgetNamed(): void {
    this.#named = undefined;
  }

  /** Whether writes went on without a synchronous copy (no_sync_standby: async). */
  get ranAsync(): boolean {
    return this.#ranAsync;
  }

  set ranAsync(v: boolean) {
    this.#ranAsync = v;
  }

  /** Names NAME synchronous on the primary; remembers the primary's position at that moment (lastLsn when it was not observed). */
  async name(p: SyncPrimary, name: string | undefined, lastLsn: string | undefined): Promise<void> {
    await applySyncNames(this.#log, p, name);
    this.#named = name;
    this.#namedAtLsn = p.lsn ?? lastLsn;
  }

  /** One round of the plan on a reachable primary; returns true when the safe set changed (to be persisted). */
  async maintain(p: SyncPrimary, config: DatabaseConfig, fenced: ReadonlySet<string>, lastLsn: string | undefined): Promise<boolean> {
    if (!config.synchronous) return false;
    const named = this.#named;
    const plan = planFromReplicas(
      { noSyncStandby: config.no_sync_standby, named, namedAtLsn: this.#namedAtLsn, replicas: p.replicas, standbys: config.nodes.map((n) => n.name).filter((n) => n !== p.name && !fenced.has(n)).concat([...fenced]) },
      this.#safe,
    );
    if (plan.name !== named) await this.name(p, plan.name, lastLsn);
    this.#ranAsync = plan.async;
    if (plan.syncNodes.join(',') === this.#safe.join(',')) return false;
    this.#safe = plan.syncNodes;
    return true;
  }
}
