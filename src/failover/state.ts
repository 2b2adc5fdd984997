// Owns the single-host engine's shared state of one cluster, which its modules (bootstrap,
// promote, coldfail, rejoin, switchover, status) read and change through it: the nodes with their
// NodeActions and last observation, the recorded primary, fenced and rejoining nodes, what the
// loop last saw of the primary, the write gate, the synchronous standby state, the history, the
// row in db_clusters (persist) and the one-at-a-time runner for role-changing work.
import { join, resolve } from 'node:path';
import type { Clock } from '../core/clock.js';
import type { DatabaseConfig } from '../core/config/schema.js';
import { BulwarkError } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { StateStore } from '../core/subsystem.js';
import type { LeaderLease } from '../coord/lease.js';
import type { BaseBackupStore } from './cold.js';
import type { Observation, ObserveTarget } from './monitor.js';
import { targetOf, type ClusterMetricsSink, type NodeActions } from './nodes.js';
import { PgCtl, type NodeSpec } from './pgctl.js';
import { measureWrites } from './downtime.js';
import { FailoverHistory, type FailoverRecord } from './records.js';
import { SyncStandbys, type SyncPrimary } from './sync.js';
import { WriteGate } from './topology.js';

export interface ClusterDeps {
  name: string;
  config: DatabaseConfig;
  stateDir: string;
  /** Directory relative data_dir paths resolve against (the config file's). */
  baseDir: string;
  lease: LeaderLease;
  events: EventBus;
  logger: Logger;
  clock: Clock;
  store: StateStore;
  metrics: ClusterMetricsSink;
  /** standby: cold — the restore_from plan's repositories (from the composition root). */
  baseBackups?: BaseBackupStore | undefined;
}

export interface ClusterNode {
  spec: NodeSpec;
  ctl: NodeActions;
  obs: Observation | undefined;
  /** Consecutive failed observations. */
  fails: number;
  pidAlive: boolean;
}

export class ClusterState {
  readonly name: string;
  readonly d: ClusterDeps;
  readonly nodes = new Map<string, ClusterNode>();
  readonly history: FailoverHistory;
  readonly gate: WriteGate;
  readonly sync: SyncStandbys;
  primary: string | undefined;
  fenced = new Set<string>();
  rejoining = new Set<string>();
  /** The last good observation of the primary, and its WAL position then. */
  primaryLastOk = 0;
  primaryLastLsn: string | undefined;
  /** The primary's last view of each standby's flushed WAL (warm standbys take no connections). */
  readonly lastReplicaFlush = new Map<string, string>();
  stopped = false;
  #busy: Promise<unknown> | undefined;
  #busyWhat = '';

  constructor(deps: ClusterDeps) {
    this.name = deps.name;
    this.d = deps;
    this.history = new FailoverHistory({ database: deps.name, store: deps.store, events: deps.events, clock: deps.clock, metrics: deps.metrics });
    this.gate = new WriteGate(deps.name, deps.events, deps.clock);
    const c = deps.config;
    for (const n of c.nodes) {
      // relative data_dir paths resolve against the config file's directory
      const spec: NodeSpec = { name: n.name, host: n.host, port: n.port, dataDir: resolve(deps.baseDir, n.data_dir) };
      const ctl = new PgCtl(spec, { binDir: c.bin_dir, osUser: c.os_user, superuser: c.superuser, logFile: join(deps.stateDir, 'failover', deps.name, `${n.name}.log`) });
      this.nodes.set(n.name, { spec, ctl, obs: undefined, fails: 0, pidAlive: false });
    }
    let safe: string[] = [];
    const row = deps.store.get<{ primary_node: string | null; sync_node: string | null; fenced: string }>('SELECT primary_node, sync_node, fenced FROM db_clusters WHERE database = ?', deps.name);
    if (row) {
      this.primary = row.primary_node && this.nodes.has(row.primary_node) ? row.primary_node : undefined;
      safe = row.sync_node ? row.sync_node.split(',').filter((n) => this.nodes.has(n)) : [];
      this.fenced = new Set((JSON.parse(row.fenced) as string[]).filter((n) => this.nodes.has(n)));
    }
    this.sync = new SyncStandbys({ logger: deps.logger, database: deps.name }, safe);
  }

  /** What role-changing work runs now ('' when none). */
  get busyWhat(): string {
    return this.#busyWhat;
  }

  get busy(): boolean {
    return this.#busy !== undefined;
  }

  /** Waits for the running role-changing work, if any. */
  async idle(): Promise<void> {
    await this.#busy?.catch(() => undefined);
  }

  /** Runs role-changing work one at a time. */
  async serial<T>(what: string, fn: () => Promise<T>): Promise<T> {
    while (this.#busy) await this.#busy.catch(() => undefined);
    this.#busyWhat = what;
    const p = fn();
    this.#busy = p;
    try {
      return await p;
    } finally {
      this.#busy = undefined;
      this.#busyWhat = '';
    }
  }

  /** Records primary, safe set and fenced nodes in db_clusters. */
  persist(): void {
    this.d.store.run(
      `INSERT INTO db_clusters (database, primary_node, sync_node, fenced, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(database) DO UPDATE SET primary_node = excluded.primary_node, sync_node = excluded.sync_node, fenced = excluded.fenced, updated_at = excluded.updated_at`,
      this.name,
      this.primary ?? null,
      this.sync.safe.length ? this.sync.safe.join(',') : null,
      JSON.stringify([...this.fenced]),
      this.d.clock.now(),
    );
  }

  /** Fences a node (every process in its data directory killed, standby.signal written) and records it as fenced. */
  fence(n: ClusterNode): void {
    n.ctl.fence();
    this.fenced.add(n.spec.name);
    this.persist();
  }

  target(n: ClusterNode): ObserveTarget {
    return targetOf(n.spec, this.d.config.superuser);
  }

  /** The node as the sync manager needs it. */
  syncPrimary(n: ClusterNode): SyncPrimary {
    return { name: n.spec.name, target: this.target(n), lsn: n.obs?.lsn, replicas: n.obs?.replicas ?? [] };
  }

  node(name: string): ClusterNode {
    const n = this.nodes.get(name);
    if (!n) throw new BulwarkError('BULWARK_DB_UNKNOWN', `database ${this.name} has no node named '${name}'`, { hint: `use one of: ${[...this.nodes.keys()].join(', ')}`, httpStatus: 404 });
    return n;
  }

  primaryNode(): ClusterNode | undefined {
    return this.primary ? this.nodes.get(this.primary) : undefined;
  }

  requireLeader(hint?: string): void {
    if (!this.d.lease.isHeld()) throw new BulwarkError('BULWARK_DB_NOT_LEADER', `this instance does not hold the leader lease for database ${this.name}`, hint ? { hint } : undefined);
  }

  audit(kind: string, subject: string, message: string, data?: Record<string, unknown>): void {
    this.history.audit(kind, subject, message, data);
  }

  /** Measures (in the background) when writes work again on the new primary, into record ID. */
  measureWrites(target: ClusterNode, since: number, id: number, rec: FailoverRecord): Promise<void> {
    return measureWrites({ database: this.name, clock: this.d.clock, logger: this.d.logger, history: this.history }, { name: target.spec.name, target: this.target(target) }, since, id, rec, () => !this.stopped && this.primary === target.spec.name);
  }

  /** The new primary was just observed writable (promotion, cold build): the loop's view of it starts now. */
  sawPrimary(n: ClusterNode): void {
    n.obs = { ok: true, inRecovery: false, at: this.d.clock.now() };
    n.fails = 0;
    this.primaryLastOk = this.d.clock.now();
  }
}
