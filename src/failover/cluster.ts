// Owns one PostgreSQL cluster's lifecycle and decisions: bootstrap (initdb, pg_basebackup),
// continuous observation, failover on primary loss (choose, fence, promote, repoint, publish),
// synchronous_standby_names, rejoin of a former primary (pg_rewind or re-clone), planned
// switchover, and the history of those events. Every role change happens only while this
// instance holds the cluster's leader lease, checked right before acting.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Clock, Timer } from '../core/clock.js';
import type { DatabaseConfig } from '../core/config/schema.js';
import { BulwarkError, describeError } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { StateStore } from '../core/subsystem.js';
import type { LeaderLease } from '../coord/lease.js';
import { archiveSettings, dataDirIntact, prepareWalDir, recoverWalArchive, restoreBaseBackup, takeBaseBackup, baseBackupTags, walTags, type BaseBackupStore } from './cold.js';
import { chooseCandidate, lagBytes, parseLsn, planSync, syncNamesFor } from './decide.js';
import { connect, execSql, observe, type Observation, type ObserveTarget } from './monitor.js';
import { PgCtl, type NodeSpec } from './pgctl.js';
import { FailoverHistory, type FailoverRecord, type RecordMetrics } from './records.js';
import { isWalName, lastArchivedSegment } from './wal.js';
import { readdirSync } from 'node:fs';

export type NodeRole = 'primary' | 'standby' | 'fenced' | 'down' | 'unknown' | 'rejoining';

export type { FailoverRecord } from './records.js';

/** What the cluster reports to metrics (the subsystem turns these into Prometheus series). */
export interface ClusterMetricsSink extends RecordMetrics {
  role(database: string, node: string, role: NodeRole): void;
  lag(database: string, node: string, bytes: number | undefined): void;
}

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

/** The last base backup of a cold-standby cluster (status). */
export interface BaseBackupStatus {
  ok: boolean;
  started_at: number;
  finished_at: number;
  /** ISO time of the newest base-backup snapshot known in the plan. */
  snapshot_time: string | undefined;
  targets: Array<{ target: string; ok: boolean; snapshot?: string | undefined; error?: string | undefined }>;
  error: string | undefined;
}

interface NodeState {
  spec: NodeSpec;
  ctl: PgCtl;
  obs: Observation | undefined;
  /** Consecutive failed observations. */
  fails: number;
  pidAlive: boolean;
}

export class PgCluster {
  readonly name: string;
  readonly #d: ClusterDeps;
  readonly #nodes = new Map<string, NodeState>();
  #primary: string | undefined;
  #syncNodes: string[] = [];
  #syncNamed: string | undefined;
  #syncNamedAtLsn: string | undefined;
  #ranAsync = false;
  #fenced = new Set<string>();
  #rejoining = new Set<string>();
  #primaryLastOk = 0;
  #primaryLastLsn: string | undefined;
  #busy: Promise<unknown> | undefined;
  #busyWhat = '';
  #timer: Timer | undefined;
  #stopped = false;
  #ticking = false;
  #lastTopology = '';
  #blockedReason: string | undefined;
  #lastLeaseError = '';
  #bootstrapped = false;
  readonly #history: FailoverHistory;
  /** Writes are held back (failover or switchover in progress, or no safe primary). */
  #blocked = false;
  /** standby: cold — the WAL archive directory, and the scratch node base backups are taken into. */
  readonly #walDir: string | undefined;
  readonly #scratch: PgCtl | undefined;
  #baseBackupRun: Promise<BaseBackupStatus> | undefined;
  #lastBaseBackup: BaseBackupStatus | undefined;
  #newestBaseBackup: string | undefined;
  #nextBaseBackupAt = 0;
  #coldRetryAt = 0;
  #walUploadRun: Promise<void> | undefined;
  #nextWalUploadAt = 0;
  /** The newest WAL file name (segment or history) the last successful upload held. */
  #walUploadedUpTo: string | undefined;
  #lastWalUpload: { ok: boolean; at: number; up_to: string | undefined; targets: string; error: string | undefined } | undefined;
  /** pg_stat_archiver of the primary, read every wal_upload_interval. */
  #archiver: { failed_count: number; last_failed_wal: string | undefined; last_failed_at: string | undefined; last_archived_wal: string | undefined; failing: boolean } | undefined;

  constructor(deps: ClusterDeps) {
    this.name = deps.name;
    this.#d = deps;
    this.#history = new FailoverHistory({ database: deps.name, store: deps.store, events: deps.events, clock: deps.clock, metrics: deps.metrics });
    const c = deps.config;
    for (const n of c.nodes) {
      // relative data_dir paths resolve against the config file's directory
      const spec: NodeSpec = { name: n.name, host: n.host, port: n.port, dataDir: resolve(deps.baseDir, n.data_dir) };
      const ctl = new PgCtl(spec, { binDir: c.bin_dir, osUser: c.os_user, superuser: c.superuser, logFile: join(deps.stateDir, 'failover', deps.name, `${n.name}.log`) });
      this.#nodes.set(n.name, { spec, ctl, obs: undefined, fails: 0, pidAlive: false });
    }
    if (c.standby === 'cold') {
      this.#walDir = resolve(deps.baseDir, c.wal_archive ?? join(deps.stateDir, 'failover', deps.name, 'wal'));
      // beside the nodes, not in state_dir: pg_basebackup runs as the postgres user, and state_dir may be private
      const first = c.nodes[0];
      const dir = join(dirname(resolve(deps.baseDir, first ? first.data_dir : deps.stateDir)), `.${deps.name}-basebackup`);
      this.#scratch = new PgCtl({ name: 'basebackup', host: '127.0.0.1', port: 1, dataDir: dir }, { binDir: c.bin_dir, osUser: c.os_user, superuser: c.superuser, logFile: join(deps.stateDir, 'failover', deps.name, 'basebackup.log') });
    }
    const row = deps.store.get<{ primary_node: string | null; sync_node: string | null; fenced: string }>('SELECT primary_node, sync_node, fenced FROM db_clusters WHERE database = ?', deps.name);
    if (row) {
      this.#primary = row.primary_node && this.#nodes.has(row.primary_node) ? row.primary_node : undefined;
      this.#syncNodes = row.sync_node ? row.sync_node.split(',').filter((n) => this.#nodes.has(n)) : [];
      this.#fenced = new Set((JSON.parse(row.fenced) as string[]).filter((n) => this.#nodes.has(n)));
    }
    deps.lease.onLost((reason) => deps.logger.warn({ database: deps.name, reason }, 'leader lease lost: no role changes until it is held again'));
  }

  get primary(): string | undefined {
    return this.#primary;
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    await this.#tryLease();
    if (this.#d.lease.isHeld()) await this.#serial('bootstrap', () => this.#bootstrap());
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    await this.#busy?.catch(() => undefined);
    if (this.#d.config.stop_nodes_on_exit && this.#d.lease.isHeld()) {
      // standbys first, so the primary's shutdown checkpoint is not waited on by anyone
      const order = [...this.#nodes.values()].sort((a, b) => (a.spec.name === this.#primary ? 1 : 0) - (b.spec.name === this.#primary ? 1 : 0));
      for (const n of order) {
        try {
          await n.ctl.stop('fast');
        } catch (err) {
          this.#d.logger.warn({ database: this.name, node: n.spec.name, err: describeError(err) }, 'stopping node failed; killing it');
          n.ctl.killAll();
        }
      }
    }
    await this.#d.lease.release();
  }

  /** Repoints every other live standby at the new primary, then routes writes to it (publishes the topology). */
  async #adoptPrimary(target: NodeState, old: NodeState): Promise<void> {
    const clock = this.#d.clock;
    for (const n of this.#nodes.values()) {
      if (n === target || n === old || this.#fenced.has(n.spec.name)) continue;
      n.ctl.configureStandby(target.spec);
      await n.ctl.reload().catch((err) => this.#d.logger.warn({ database: this.name, node: n.spec.name, err: describeError(err) }, 'repoint failed'));
    }
    target.obs = { ok: true, inRecovery: false, at: clock.now() };
    target.fails = 0;
    this.#primaryLastOk = clock.now();
    this.#blocked = false;
    this.#lastTopology = '';
    this.#publish();
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = this.#d.clock.setTimeout(() => void this.#tick(), ms);
  }

  async #tryLease(): Promise<void> {
    try {
      await this.#d.lease.acquire();
      this.#lastLeaseError = '';
    } catch (err) {
      const msg = describeError(err);
      if (msg !== this.#lastLeaseError) this.#d.logger.warn({ database: this.name, err: msg }, 'cannot take the leader lease');
      this.#lastLeaseError = msg;
    }
  }

  /** Runs role-changing work one at a time. */
  async #serial<T>(what: string, fn: () => Promise<T>): Promise<T> {
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

  #persist(): void {
    this.#d.store.run(
      `INSERT INTO db_clusters (database, primary_node, sync_node, fenced, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(database) DO UPDATE SET primary_node = excluded.primary_node, sync_node = excluded.sync_node, fenced = excluded.fenced, updated_at = excluded.updated_at`,
      this.name,
      this.#primary ?? null,
      this.#syncNodes.length ? this.#syncNodes.join(',') : null,
      JSON.stringify([...this.#fenced]),
      this.#d.clock.now(),
    );
  }

  #target(n: NodeState): ObserveTarget {
    return { host: n.spec.host, port: n.spec.port, user: this.#d.config.superuser };
  }

  #node(name: string): NodeState {
    const n = this.#nodes.get(name);
    if (!n) throw new BulwarkError('BULWARK_DB_UNKNOWN', `database ${this.name} has no node named '${name}'`, { hint: `use one of: ${[...this.#nodes.keys()].join(', ')}`, httpStatus: 404 });
    return n;
  }

  // ---------------------------------------------------------------- bootstrap

  async #bootstrap(): Promise<void> {
    const c = this.#d.config;
    const nodes = [...this.#nodes.values()];
    for (const n of nodes) n.pidAlive = n.ctl.postmasterPid() !== undefined;
    // Who is primary: a node running out of recovery (observation beats records: another instance
    // may have failed over since this one recorded anything; with several, the recorded one wins
    // and the others are fenced by the loop); else the recorded one; else an initialized node
    // without standby.signal; else the first.
    const running: string[] = [];
    for (const n of nodes) {
      if (!n.pidAlive) continue;
      const o = await observe(this.#target(n), 2000, () => this.#d.clock.now());
      if (o.ok && o.inRecovery === false) running.push(n.spec.name);
    }
    let primary = running.length === 0 ? this.#primary : this.#primary && running.includes(this.#primary) ? this.#primary : running[0];
    if (primary !== this.#primary && primary !== undefined) this.#fenced.delete(primary);
    primary ??= nodes.find((n) => n.ctl.initialized() && !n.ctl.isStandbyConfigured())?.spec.name;
    primary ??= nodes.find((n) => !n.ctl.initialized())?.spec.name ?? nodes[0]?.spec.name;
    const p = this.#node(primary as string);
    if (!p.ctl.initialized()) {
      this.#d.logger.info({ database: this.name, node: p.spec.name }, 'initdb');
      if (this.#walDir) prepareWalDir(this.#walDir, this.#osOwner());
      await p.ctl.initdb(this.#walDir ? { ...archiveSettings(this.#walDir, c.archive_timeout), ...c.settings } : c.settings, c.standby === 'hot');
      if (c.hba.length) p.ctl.allowHosts([], c.hba);
    }
    if (this.#fenced.has(p.spec.name) || (p.ctl.isStandbyConfigured() && !p.pidAlive)) {
      throw new BulwarkError('BULWARK_DB_NO_PRIMARY', `database ${this.name}: the recorded primary ${p.spec.name} is fenced or configured as a standby, and Bulwark will not start it as a primary`, {
        hint: 'check `bulwark db status`; remove standby.signal from its data_dir only if you are sure no other node has newer data',
      });
    }
    if (!p.pidAlive) await p.ctl.start();
    if (this.#walDir) await this.#ensureArchiving(p);
    this.#primary = p.spec.name;
    this.#primaryLastOk = this.#d.clock.now();
    this.#persist();
    if (c.synchronous && !this.#syncNamed) {
      const first = nodes.find((n) => n.spec.name !== p.spec.name)?.spec.name;
      // a fresh cluster: no commit acknowledged yet, so naming the first standby is safe at once
      if (first && this.#syncNodes.length === 0) this.#syncNodes = [first];
      await this.#setSyncNames(p, first);
    }
    for (const n of nodes) {
      if (n === p || c.standby === 'cold') continue; // cold: the other nodes are spares, nothing runs there
      await this.#ensureStandby(n, p, 'bootstrap');
    }
    if (c.standby === 'cold') await this.#planBaseBackups();
    this.#bootstrapped = true;
  }

  // ---------------------------------------------------------------- cold standby: archiving and base backups

  #osOwner(): { uid: number; gid: number } | undefined {
    if (process.getuid?.() !== 0) return undefined;
    const u = this.#d.config.os_user;
    return { uid: Number(execFileSync('id', ['-u', u]).toString().trim()), gid: Number(execFileSync('id', ['-g', u]).toString().trim()) };
  }

  /** Makes sure the primary archives into the WAL archive (archive_mode needs a restart; the command and timeout a reload). */
  async #ensureArchiving(p: NodeState): Promise<void> {
    const walDir = this.#walDir as string;
    prepareWalDir(walDir, this.#osOwner());
    const want: Record<string, string> = archiveSettings(walDir, this.#d.config.archive_timeout);
    const client = await connect(this.#target(p), 5000);
    let have: Record<string, string>;
    try {
      const r = await client.query<{ name: string; setting: string; unit: string | null }>("SELECT name, setting, unit FROM pg_settings WHERE name IN ('archive_mode', 'archive_command', 'archive_timeout')");
      have = Object.fromEntries(r.rows.map((x) => [x.name, x.name === 'archive_timeout' ? `${x.setting}${x.unit ?? ''}` : x.setting]));
      const q = (v: string): string => `'${v.replace(/'/g, "''")}'`;
      for (const k of ['archive_command', 'archive_timeout'] as const) if (have[k] !== want[k]) await client.query(`ALTER SYSTEM SET ${k} = ${q(want[k] ?? "")}`);
      if (have['archive_mode'] !== 'on') await client.query("ALTER SYSTEM SET archive_mode = 'on'");
      await client.query('SELECT pg_reload_conf()');
    } finally {
      await client.end().catch(() => undefined);
    }
    if (have['archive_mode'] !== 'on') {
      this.#d.logger.warn({ database: this.name, node: p.spec.name }, 'turning on WAL archiving (archive_mode needs a restart of the primary)');
      await p.ctl.stop('fast');
      await p.ctl.start();
    }
  }

  /** Snapshots the WAL archive into the plan's targets when it holds files the last upload did not (incremental: only new files are read). */
  async #uploadWal(): Promise<void> {
    const walDir = this.#walDir as string;
    const store = this.#d.baseBackups as BaseBackupStore;
    const clock = this.#d.clock;
    this.#nextWalUploadAt = clock.now() + this.#d.config.wal_upload_interval;
    await this.#checkArchiver();
    const newest = newestWalFile(walDir);
    if (newest === undefined || newest === this.#walUploadedUpTo) return;
    try {
      const r = await store.save(walDir, walTags(this.name), { excludes: ['.*.tmp'] });
      const ok = r.targets.filter((t) => t.ok);
      const failed = r.targets.filter((t) => !t.ok);
      if (ok.length > 0) this.#walUploadedUpTo = newest;
      this.#lastWalUpload = { ok: failed.length === 0, at: clock.now(), up_to: ok.length > 0 ? newest : this.#lastWalUpload?.up_to, targets: `${ok.length}/${r.targets.length}`, error: failed.length ? failed.map((t) => `${t.target}: ${t.error ?? 'failed'}`).join('; ') : undefined };
      if (failed.length) this.#d.logger.warn({ database: this.name, failed: this.#lastWalUpload.error }, 'WAL upload: some targets failed');
    } catch (err) {
      this.#lastWalUpload = { ok: false, at: clock.now(), up_to: this.#lastWalUpload?.up_to, targets: '0', error: describeError(err) };
      this.#d.logger.error({ database: this.name, err: describeError(err) }, 'WAL upload failed');
    }
  }

  /** Reads pg_stat_archiver on the primary; a failing archive_command (a failure after the last success) is logged and audited once. */
  async #checkArchiver(): Promise<void> {
    const p = this.#primary ? this.#nodes.get(this.#primary) : undefined;
    if (!p?.obs?.ok || p.obs.inRecovery !== false) return;
    try {
      const c = await connect(this.#target(p), 2000);
      try {
        const r = await c.query<{ failed_count: string; last_failed_wal: string | null; last_failed_time: Date | null; last_archived_wal: string | null; last_archived_time: Date | null }>(
          'SELECT failed_count, last_failed_wal, last_failed_time, last_archived_wal, last_archived_time FROM pg_stat_archiver',
        );
        const row = r.rows[0];
        if (!row) return;
        const failing = row.last_failed_time !== null && (row.last_archived_time === null || row.last_failed_time > row.last_archived_time);
        if (failing && !this.#archiver?.failing) {
          this.#d.logger.error({ database: this.name, last_failed_wal: row.last_failed_wal }, 'archive_command is failing: WAL is not reaching the archive (see the primary\'s log)');
          this.#audit('db.wal_archive.failing', this.name, `archive_command fails on ${p.spec.name} (last failed: ${row.last_failed_wal ?? '?'}); cold standby would lose WAL since ${row.last_archived_wal ?? 'the start'}`);
        }
        this.#archiver = { failed_count: Number(row.failed_count), last_failed_wal: row.last_failed_wal ?? undefined, last_failed_at: row.last_failed_time?.toISOString(), last_archived_wal: row.last_archived_wal ?? undefined, failing };
      } finally {
        await c.end().catch(() => undefined);
      }
    } catch {
      // the observation loop reports an unreachable primary
    }
  }

  /** At bootstrap: when the plan holds no base backup yet, take one at once; else at newest + base_backup_interval. */
  async #planBaseBackups(): Promise<void> {
    const store = this.#d.baseBackups;
    const now = this.#d.clock.now();
    if (!store) {
      this.#d.logger.error({ database: this.name }, 'standby: cold without a backup store: no base backups can be taken or restored');
      return;
    }
    try {
      const latest = await store.latest(baseBackupTags(this.name));
      this.#newestBaseBackup = latest?.time;
      this.#nextBaseBackupAt = latest ? Date.parse(latest.time) + this.#d.config.base_backup_interval : now;
    } catch (err) {
      this.#d.logger.warn({ database: this.name, err: describeError(err) }, 'cannot list base backups; taking one now');
      this.#nextBaseBackupAt = now;
    }
  }

  /** Takes a base backup of the current primary into the restore_from plan now (leader only). One at a time: a second request waits for the running one, then takes its own. */
  async baseBackup(): Promise<BaseBackupStatus> {
    if (this.#d.config.standby !== 'cold') throw new BulwarkError('BULWARK_DB_COLD_CONFIG', `database ${this.name} is not a cold-standby cluster (standby: ${this.#d.config.standby})`, { hint: 'base backups for cold standby need standby: cold and restore_from' });
    if (!this.#d.lease.isHeld()) throw new BulwarkError('BULWARK_DB_NOT_LEADER', `this instance does not hold the leader lease for database ${this.name}`);
    while (this.#baseBackupRun) await this.#baseBackupRun.catch(() => undefined);
    const st = await this.#startBaseBackup('requested');
    if (!st.ok) throw new BulwarkError('BULWARK_DB_BASE_BACKUP', `base backup of database ${this.name} failed: ${st.error ?? 'no target stored it'}`, { details: st.targets.filter((t) => !t.ok).map((t) => `${t.target}: ${t.error ?? 'failed'}`) });
    return st;
  }

  #startBaseBackup(why: string): Promise<BaseBackupStatus> {
    if (this.#baseBackupRun) return this.#baseBackupRun;
    const run = this.#runBaseBackup(why).finally(() => {
      this.#baseBackupRun = undefined;
    });
    this.#baseBackupRun = run;
    return run;
  }

  async #runBaseBackup(why: string): Promise<BaseBackupStatus> {
    const clock = this.#d.clock;
    const startedAt = clock.now();
    const p = this.#primary ? this.#nodes.get(this.#primary) : undefined;
    const st: BaseBackupStatus = { ok: false, started_at: startedAt, finished_at: startedAt, snapshot_time: this.#newestBaseBackup, targets: [], error: undefined };
    try {
      if (!p) throw new BulwarkError('BULWARK_DB_NO_PRIMARY', `database ${this.name} has no primary to take a base backup of`);
      if (!this.#d.baseBackups || !this.#scratch) throw new BulwarkError('BULWARK_DB_COLD_CONFIG', `database ${this.name}: no backup store for restore_from`);
      this.#d.logger.info({ database: this.name, primary: p.spec.name, why }, 'base backup: pg_basebackup, then a snapshot into the plan');
      const r = await takeBaseBackup(this.#scratch, p.spec, this.#d.config.superuser, this.#d.baseBackups, this.name);
      st.targets = r.targets;
      st.ok = true;
      st.snapshot_time = new Date(r.startedAt).toISOString();
      this.#newestBaseBackup = st.snapshot_time;
      this.#audit('db.base_backup', this.name, `base backup of ${p.spec.name} stored in ${r.targets.filter((t) => t.ok).length}/${r.targets.length} target(s) of ${this.#d.config.restore_from ?? '?'} (${r.files} files, ${r.bytes} bytes, ${r.finishedAt - r.startedAt} ms)`, { targets: r.targets, files: r.files, bytes: r.bytes, ms: r.finishedAt - r.startedAt });
    } catch (err) {
      const details = err instanceof BulwarkError && err.details.length > 0 ? ` (${err.details.join("; ")})` : "";
      st.error = `${describeError(err)}${details}`;
      this.#d.logger.error({ database: this.name, err: st.error }, 'base backup failed');
      this.#audit('db.base_backup.failed', this.name, `base backup failed: ${st.error}`);
    }
    st.finished_at = clock.now();
    this.#lastBaseBackup = st;
    // after a failure, try again in a minute (or at the interval if that is sooner)
    this.#nextBaseBackupAt = clock.now() + (st.ok ? this.#d.config.base_backup_interval : Math.min(60_000, this.#d.config.base_backup_interval));
    return st;
  }

  /** Makes a node a running standby of the primary: clone when empty, rewind when it was a primary, else just start. */
  async #ensureStandby(n: NodeState, p: NodeState, why: string): Promise<void> {
    const running = n.ctl.postmasterPid() !== undefined;
    if (!n.ctl.initialized()) {
      this.#d.logger.info({ database: this.name, node: n.spec.name, from: p.spec.name, why }, 'cloning standby (pg_basebackup)');
      await n.ctl.clone(p.spec);
      await n.ctl.start();
      return;
    }
    if (running) {
      const o = await observe(this.#target(n), 2000, () => this.#d.clock.now());
      if (o.ok && o.inRecovery === false) {
        await this.#rejoin(n, p, `${why}: found running as a second primary`);
        return;
      }
      n.ctl.configureStandby(p.spec);
      await n.ctl.reload();
      return;
    }
    if (!n.ctl.isStandbyConfigured() || this.#fenced.has(n.spec.name)) {
      await this.#rejoin(n, p, why);
      return;
    }
    n.ctl.configureStandby(p.spec);
    await n.ctl.start();
  }

  // ---------------------------------------------------------------- observation loop

  async #tick(): Promise<void> {
    if (this.#stopped || this.#ticking) return;
    this.#ticking = true;
    try {
      if (!this.#d.lease.isHeld()) await this.#tryLease();
      await this.#observeAll();
      const leader = this.#d.lease.isHeld();
      if (!leader) this.#followObservation();
      if (leader && !this.#bootstrapped && !this.#busy) {
        await this.#serial('bootstrap', () => this.#bootstrap()).catch((err) => this.#d.logger.error({ database: this.name, err: describeError(err) }, 'bootstrap failed; retrying'));
      }
      if (leader && this.#bootstrapped && !this.#busy) await this.#decide();
      this.#publish();
      if (leader && this.#bootstrapped && this.#scratch && !this.#busy && !this.#baseBackupRun && !this.#blocked && this.#d.clock.now() >= this.#nextBaseBackupAt) {
        void this.#startBaseBackup('scheduled');
      }
      if (leader && this.#bootstrapped && this.#walDir && this.#d.baseBackups && !this.#busy && !this.#walUploadRun && this.#d.clock.now() >= this.#nextWalUploadAt) {
        this.#walUploadRun = this.#uploadWal().finally(() => {
          this.#walUploadRun = undefined;
        });
      }
    } catch (err) {
      this.#d.logger.error({ database: this.name, err: describeError(err) }, 'failover loop error');
    } finally {
      this.#ticking = false;
      this.#schedule(this.#d.config.probe_interval);
    }
  }

  async #observeAll(): Promise<void> {
    const timeout = Math.max(300, Math.min(2000, this.#d.config.probe_interval * 2));
    await Promise.all(
      [...this.#nodes.values()].map(async (n) => {
        n.pidAlive = n.ctl.postmasterPid() !== undefined;
        const o = n.pidAlive ? await observe(this.#target(n), timeout, () => this.#d.clock.now()) : { ok: false, error: 'postmaster not running', at: this.#d.clock.now() };
        n.obs = o;
        n.fails = o.ok ? 0 : n.fails + 1;
        if (n.spec.name === this.#primary && o.ok && o.inRecovery === false) {
          this.#primaryLastOk = o.at;
          this.#primaryLastLsn = o.lsn;
        }
      }),
    );
    const p = this.#primary ? this.#nodes.get(this.#primary) : undefined;
    for (const n of this.#nodes.values()) {
      this.#d.metrics.role(this.name, n.spec.name, this.#roleOf(n));
      this.#d.metrics.lag(this.name, n.spec.name, this.#lagOf(n, p));
    }
  }

  /** Not the leader: route to what is observed (exactly one node out of recovery), never change roles. */
  #followObservation(): void {
    const primaries = [...this.#nodes.values()].filter((n) => n.obs?.ok && n.obs.inRecovery === false);
    if (primaries.length === 1 && primaries[0] && primaries[0].spec.name !== this.#primary) {
      this.#primary = primaries[0].spec.name;
      this.#bootstrapped = false; // on taking the lease, start from what is observed
    }
  }

  #roleOf(n: NodeState): NodeRole {
    if (this.#rejoining.has(n.spec.name)) return 'rejoining';
    if (this.#fenced.has(n.spec.name)) return 'fenced';
    if (!n.pidAlive) return 'down';
    if (!n.obs?.ok) return n.spec.name === this.#primary ? 'unknown' : 'standby';
    return n.obs.inRecovery ? 'standby' : 'primary';
  }

  #lagOf(n: NodeState, p: NodeState | undefined): number | undefined {
    if (!p || n === p) return n === p ? 0 : undefined;
    const pl = p.obs?.ok ? p.obs.lsn : this.#primaryLastLsn;
    const fromPrimary = p.obs?.replicas?.find((r) => r.name === n.spec.name)?.flushLsn;
    return lagBytes(pl, n.obs?.ok ? n.obs.lsn : fromPrimary);
  }

  /** A standby's received WAL: its own report, or the primary's last view of it (warm standbys take no connections). */
  #receivedLsn(n: NodeState, lastReplicas: Map<string, string>): string | undefined {
    if (n.obs?.ok && n.obs.inRecovery) return n.obs.lsn ?? n.obs.replayLsn;
    return lastReplicas.get(n.spec.name);
  }

  #lastReplicaFlush = new Map<string, string>();
  /** Nodes whose last rejoin or restart failed: not before this time again. */
  #retryAt = new Map<string, number>();

  async #restartStandby(n: NodeState, p: NodeState): Promise<void> {
    this.#d.logger.info({ database: this.name, node: n.spec.name, primary: p.spec.name }, 'restarting a stopped standby');
    n.ctl.killAll();
    if (!n.ctl.initialized()) await n.ctl.clone(p.spec);
    else n.ctl.configureStandby(p.spec);
    await n.ctl.start();
    n.fails = 0;
    this.#audit('db.restart', `${this.name}/${n.spec.name}`, `restarted standby ${n.spec.name} (following ${p.spec.name})`);
  }

  async #decide(): Promise<void> {
    const p = this.#primary ? this.#nodes.get(this.#primary) : undefined;
    if (!p) return;
    if (p.obs?.ok && p.obs.inRecovery === false) {
      for (const r of p.obs.replicas ?? []) if (r.flushLsn) this.#lastReplicaFlush.set(r.name, r.flushLsn);
    }
    const primaryDown = !p.pidAlive || p.fails >= this.#d.config.fall || (p.obs?.ok === true && p.obs.inRecovery === true);
    if (primaryDown) {
      const reason = !p.pidAlive ? 'postmaster process gone' : p.obs?.ok ? 'primary is in recovery' : `${p.fails} failed observations (${p.obs?.error ?? 'no answer'})`;
      if (this.#d.config.standby === 'cold') {
        if (this.#d.clock.now() >= this.#coldRetryAt) await this.#serial('cold failover', () => this.#coldFailover(p, reason));
        else this.#publishBlocked();
        return;
      }
      await this.#serial('failover', () => this.#failover(p, reason));
      return;
    }
    // a second primary (someone started a fenced node by hand, without standby.signal)
    for (const n of this.#nodes.values()) {
      if (n === p || this.#rejoining.has(n.spec.name)) continue;
      if (n.obs?.ok && n.obs.inRecovery === false) {
        this.#d.logger.error({ database: this.name, node: n.spec.name }, 'a second primary is running: fencing it');
        n.ctl.fence();
        this.#fenced.add(n.spec.name);
        this.#persist();
        this.#audit('db.fence', `${this.name}/${n.spec.name}`, `fenced ${n.spec.name}: it ran as a second primary`);
      }
    }
    if (p.obs?.ok) await this.#maintainSync(p);
    // rejoin fenced former primaries (rewind); restart standbys that stopped (as standbys: a
    // crashed standby recovers as a standby, it must not go through pg_rewind's crash recovery)
    // (cold standby: nothing streams; a fenced former primary stays fenced until it is the next build target)
    if (this.#d.config.auto_rejoin && this.#d.config.standby !== 'cold') {
      const now = this.#d.clock.now();
      for (const n of this.#nodes.values()) {
        if (n === p || this.#rejoining.has(n.spec.name) || (this.#retryAt.get(n.spec.name) ?? 0) > now) continue;
        const fenced = this.#fenced.has(n.spec.name);
        if (!fenced && (n.pidAlive || n.fails < this.#d.config.fall)) continue;
        const work = fenced ? () => this.#rejoin(n, p, 'former primary') : () => this.#restartStandby(n, p);
        void this.#serial(fenced ? 'rejoin' : 'restart standby', work).then(
          () => this.#retryAt.delete(n.spec.name),
          (err) => {
            this.#retryAt.set(n.spec.name, this.#d.clock.now() + 5000);
            this.#d.logger.error({ database: this.name, node: n.spec.name, err: describeError(err) }, 'bringing the node back failed; retrying in 5 s');
          },
        );
        return;
      }
    }
  }

  async #maintainSync(p: NodeState): Promise<void> {
    const c = this.#d.config;
    if (!c.synchronous) return;
    const replicas = p.obs?.replicas ?? [];
    const streaming = replicas.filter((r) => r.state === 'streaming').map((r) => r.name);
    const reportedSync = replicas
      .filter((r) => r.syncState === 'sync' && (parseLsn(r.flushLsn) ?? -1n) >= (parseLsn(this.#syncNamedAtLsn) ?? 0n))
      .map((r) => r.name);
    const named = this.#syncNamed;
    const plan = planSync(
      { synchronous: true, noSyncStandby: c.no_sync_standby, named, streaming, reportedSync, standbys: c.nodes.map((n) => n.name).filter((n) => n !== p.spec.name && !this.#fenced.has(n)).concat([...this.#fenced]) },
      this.#syncNodes,
    );
    if (plan.name !== named) await this.#setSyncNames(p, plan.name);
    this.#ranAsync = plan.async;
    if (plan.syncNodes.join(',') !== this.#syncNodes.join(',')) {
      this.#syncNodes = plan.syncNodes;
      this.#persist();
    }
  }

  async #setSyncNames(p: NodeState, name: string | undefined): Promise<void> {
    const value = syncNamesFor(name);
    await execSql(this.#target(p), `ALTER SYSTEM SET synchronous_standby_names = '${value.replace(/'/g, "''")}'`, 5000);
    await execSql(this.#target(p), 'SELECT pg_reload_conf()', 5000);
    this.#syncNamed = name;
    this.#syncNamedAtLsn = p.obs?.lsn ?? this.#primaryLastLsn;
    this.#d.logger.info({ database: this.name, primary: p.spec.name, synchronous_standby_names: value }, 'synchronous standby set');
  }

  // ---------------------------------------------------------------- topology

  #publish(): void {
    const p = this.#primary ? this.#nodes.get(this.#primary) : undefined;
    const writable = p && !this.#blocked && p.pidAlive && p.obs?.ok === true && p.obs.inRecovery === false;
    const replicas = this.#d.config.standby === 'hot'
      ? [...this.#nodes.values()]
          .filter((n) => n !== p && n.obs?.ok && n.obs.inRecovery && n.obs.receiverStatus === 'streaming' && !this.#fenced.has(n.spec.name))
          .map((n) => ({ node: n.spec.name, address: `${n.spec.host}:${n.spec.port}`, lag_bytes: this.#lagOf(n, p) ?? 0 }))
      : [];
    const primary = writable && p ? { node: p.spec.name, address: `${p.spec.host}:${p.spec.port}` } : undefined;
    // lag changes constantly: publish on changes of membership, not of byte counts
    const key = JSON.stringify({ primary, replicas: replicas.map((r) => r.node) });
    if (key === this.#lastTopology) return;
    this.#lastTopology = key;
    this.#d.events.emit('db.topology', { database: this.name, primary, replicas, at: this.#d.clock.now() });
  }

  /** Blocks writes at once (before fencing), whatever the observation loop last saw. */
  #publishBlocked(): void {
    this.#blocked = true;
    const key = JSON.stringify({ primary: undefined, blocked: true });
    if (key === this.#lastTopology) return;
    this.#lastTopology = key;
    this.#d.events.emit('db.topology', { database: this.name, primary: undefined, replicas: [], at: this.#d.clock.now() });
  }

  // ---------------------------------------------------------------- failover

  async #failover(old: NodeState, reason: string): Promise<void> {
    const c = this.#d.config;
    const clock = this.#d.clock;
    const startedAt = clock.now();
    const lastOk = this.#primaryLastOk || startedAt;
    this.#publishBlocked();
    const candidates = [...this.#nodes.values()]
      .filter((n) => n !== old && !this.#fenced.has(n.spec.name) && !this.#rejoining.has(n.spec.name))
      .map((n) => ({ node: n.spec.name, available: n.pidAlive && (n.obs?.ok ? n.obs.inRecovery === true : c.standby === 'warm'), receivedLsn: this.#receivedLsn(n, this.#lastReplicaFlush) }));
    const choice = chooseCandidate({ candidates, primaryLsn: this.#primaryLastLsn, synchronous: c.synchronous, syncNodes: this.#syncNodes, ranAsync: this.#ranAsync, maxLagBytes: c.max_lag_on_failover });
    if (!choice.node) {
      if (this.#blockedReason !== choice.reason) {
        this.#d.logger.error({ database: this.name, old: old.spec.name, reason: choice.reason }, 'primary lost and no standby may be promoted: writes blocked');
        this.#audit('db.failover.blocked', this.name, `primary ${old.spec.name} lost (${reason}); no promotion: ${choice.reason}`);
      }
      this.#blockedReason = choice.reason;
      // No other node was promoted, so the old primary is still the only one with every commit:
      // kill what is left of it (orphaned backends) and start it again as the primary.
      old.ctl.killAll();
      if (old.ctl.initialized() && !old.ctl.isStandbyConfigured() && !this.#fenced.has(old.spec.name)) {
        try {
          await old.ctl.start();
          this.#d.logger.warn({ database: this.name, node: old.spec.name }, 'restarted the old primary in place (no standby could be promoted)');
          this.#audit('db.restart', `${this.name}/${old.spec.name}`, `restarted ${old.spec.name} as the primary: no standby could be promoted (${choice.reason})`);
          old.fails = 0;
          this.#blocked = false;
          this.#blockedReason = undefined;
        } catch (err) {
          this.#d.logger.error({ database: this.name, node: old.spec.name, err: describeError(err) }, 'restarting the old primary failed');
        }
      }
      return;
    }
    this.#blockedReason = undefined;
    const target = this.#node(choice.node);
    this.#d.logger.warn({ database: this.name, old: old.spec.name, new: target.spec.name, reason, choice: choice.reason }, 'failover: promoting');
    // 1. fence the old primary: kill whatever still runs in its data dir, and make it start read-only
    old.ctl.fence();
    this.#fenced.add(old.spec.name);
    this.#persist();
    // 2. promote, only while holding the lease
    if (!this.#d.lease.isHeld()) {
      this.#d.logger.error({ database: this.name }, 'lease lost before promotion: not promoting');
      return;
    }
    const promoteAt = clock.now();
    try {
      await target.ctl.promote();
    } catch (err) {
      this.#record({ kind: 'failover', old_primary: old.spec.name, new_primary: target.spec.name, started_at: startedAt, finished_at: clock.now(), ok: false, detect_ms: startedAt - lastOk, promote_ms: undefined, write_downtime_ms: undefined, message: `promotion failed: ${describeError(err)}` });
      throw err;
    }
    const promotedAt = clock.now();
    this.#primary = target.spec.name;
    this.#primaryLastLsn = undefined;
    this.#lastReplicaFlush.clear();
    if (c.synchronous) {
      // the new primary has acknowledged nothing yet: the former primary (which will rejoin) or another standby becomes the synchronous one
      const next = [...this.#nodes.values()].find((n) => n !== target && n !== old && n.obs?.ok && n.obs.receiverStatus === 'streaming')?.spec.name;
      this.#syncNodes = next ? [] : [old.spec.name];
      this.#syncNamed = undefined;
      if (next || c.no_sync_standby === 'block') await this.#setSyncNames(target, next ?? old.spec.name);
      else {
        await this.#setSyncNames(target, undefined);
        this.#ranAsync = true;
      }
    }
    this.#persist();
    // 3. repoint the other standbys, 4. route writes to the new primary
    await this.#adoptPrimary(target, old);
    const rec: FailoverRecord = {
      kind: 'failover',
      old_primary: old.spec.name,
      new_primary: target.spec.name,
      started_at: startedAt,
      finished_at: promotedAt,
      ok: true,
      detect_ms: startedAt - lastOk,
      promote_ms: promotedAt - promoteAt,
      write_downtime_ms: undefined,
      message: `${reason}; promoted ${target.spec.name}: ${choice.reason}`,
    };
    const id = this.#record(rec);
    // 5. measure when writes work again (in synchronous mode with block, that is once a synchronous standby streams)
    void this.#measureWrites(target, lastOk, id, rec);
  }

  /**
   * Cold standby: the primary is lost and nothing streams. If its data directory is intact, crash
   * recovery in place loses nothing: restart it there. Otherwise fence it, restore the newest base
   * backup of restore_from into a spare node (or, with one node, into its own data directory, the
   * remains moved aside), replay the WAL archive (recovery.signal + restore_command), let the
   * server promote itself at the end of the archive, and route writes to it. The write downtime
   * measured from the last good observation to the first commit is the RTO.
   */
  async #coldFailover(old: NodeState, reason: string): Promise<void> {
    const clock = this.#d.clock;
    const startedAt = clock.now();
    const lastOk = this.#primaryLastOk || startedAt;
    this.#publishBlocked();
    old.ctl.killAll();
    // 1. intact data directory: restart in place (crash recovery replays its own WAL; nothing is lost)
    if (!this.#fenced.has(old.spec.name) && dataDirIntact(old.spec.dataDir) && !old.ctl.isStandbyConfigured()) {
      try {
        await old.ctl.start();
        old.fails = 0;
        this.#blocked = false;
        this.#blockedReason = undefined;
        this.#d.logger.warn({ database: this.name, node: old.spec.name, reason }, 'cold standby: primary restarted in place (its data directory is intact)');
        this.#audit('db.restart', `${this.name}/${old.spec.name}`, `restarted ${old.spec.name} in place after ${reason}: its data directory is intact, nothing lost`);
        return;
      } catch (err) {
        this.#d.logger.error({ database: this.name, node: old.spec.name, err: describeError(err) }, 'cold standby: restarting the primary in place failed; building a new one from the backup');
      }
    }
    // 2. fence the old primary: whatever is left of it must never accept writes again
    old.ctl.fence();
    this.#fenced.add(old.spec.name);
    this.#persist();
    const store = this.#d.baseBackups;
    const walDir = this.#walDir as string;
    const target = [...this.#nodes.values()].find((n) => n !== old && !n.pidAlive) ?? [...this.#nodes.values()].find((n) => n !== old) ?? old;
    const lastWal = lastArchivedSegment(walDir);
    const fail = (message: string): void => {
      this.#blockedReason = `cold standby: ${message}`;
      this.#coldRetryAt = clock.now() + 10_000;
      this.#record({ kind: 'cold-failover', old_primary: old.spec.name, new_primary: target.spec.name, started_at: startedAt, finished_at: clock.now(), ok: false, detect_ms: startedAt - lastOk, promote_ms: undefined, write_downtime_ms: undefined, message: `${reason}; building ${target.spec.name} from the backup failed: ${message}` });
    };
    if (!store) return fail('no backup store for restore_from');
    if (!this.#d.lease.isHeld()) {
      this.#d.logger.error({ database: this.name }, 'lease lost before the cold build: not building');
      return;
    }
    this.#d.logger.warn({ database: this.name, old: old.spec.name, new: target.spec.name, reason, last_archived_wal: lastWal }, 'cold failover: building a new primary from the latest base backup and the WAL archive');
    this.#rejoining.add(target.spec.name);
    // the WAL archive may have been lost (or be behind what was uploaded): complete it from the
    // newest pg-wal snapshot in the plan. An archive at least as new as the last upload is used as
    // it is (restoring the whole WAL snapshot would only lengthen the outage).
    let walNote = '';
    const localNewest = newestWalFile(walDir);
    const walBehind = localNewest === undefined || (this.#walUploadedUpTo !== undefined && walOrder(localNewest) < walOrder(this.#walUploadedUpTo));
    if (walBehind) {
      try {
        const w = await recoverWalArchive(store, this.name, walDir, this.#osOwner());
        walNote = w.copied > 0 ? `; ${w.copied} WAL file(s) recovered into the archive from snapshot ${w.snapshot.slice(0, 8)} (${w.time})` : '';
        if (w.failed.length) {
          walNote += `; ${w.failed.length} WAL file(s) of that snapshot could not be restored (${w.failed.join(', ')})`;
          this.#d.logger.error({ database: this.name, failed: w.failed }, 'some WAL files of the plan could not be restored: recovery stops before the first missing one it needs');
        }
        if (w.conflicts.length) this.#d.logger.error({ database: this.name, conflicts: w.conflicts }, 'WAL files in the plan differ from the archive: kept the archive\'s');
      } catch (err) {
        this.#d.logger.warn({ database: this.name, err: describeError(err) }, 'no WAL snapshot to complete the archive from; using the archive as it is');
      }
    }
    const lastWalAfter = lastArchivedSegment(walDir);
    let restored: Awaited<ReturnType<typeof restoreBaseBackup>>;
    try {
      target.ctl.killAll();
      restored = await restoreBaseBackup(target.ctl, store, this.name, walDir, { owner: this.#osOwner(), now: clock.now() });
    } catch (err) {
      this.#rejoining.delete(target.spec.name);
      return fail(`restoring the base backup failed: ${describeError(err)}`);
    }
    const restoredAt = clock.now();
    // 3. archive recovery; the server ends recovery (new timeline) at the end of the archive
    if (!this.#d.lease.isHeld()) {
      this.#rejoining.delete(target.spec.name);
      this.#d.logger.error({ database: this.name }, 'lease lost before starting the rebuilt primary: not starting it');
      return;
    }
    let lsn: string | undefined;
    let timeline: number | undefined;
    try {
      await target.ctl.start();
      const deadline = clock.now() + 600_000;
      for (;;) {
        const o = await observe(this.#target(target), 2000, () => clock.now());
        if (o.ok && o.inRecovery === false) {
          lsn = o.lsn;
          timeline = o.timeline;
          break;
        }
        if (target.ctl.postmasterPid() === undefined) throw new BulwarkError('BULWARK_DB_COLD_RESTORE', `${target.spec.name} stopped during archive recovery (see its log)`);
        if (clock.now() > deadline) throw new BulwarkError('BULWARK_DB_COLD_RESTORE', `${target.spec.name} did not finish archive recovery within 10 minutes`);
        await clock.sleep(100);
      }
    } catch (err) {
      target.ctl.fence();
      this.#rejoining.delete(target.spec.name);
      return fail(`archive recovery failed: ${describeError(err)}`);
    }
    const promotedAt = clock.now();
    this.#rejoining.delete(target.spec.name);
    this.#fenced.delete(target.spec.name);
    this.#primary = target.spec.name;
    this.#primaryLastLsn = lsn;
    this.#lastReplicaFlush.clear();
    this.#persist();
    try {
      await this.#ensureArchiving(target);
    } catch (err) {
      this.#d.logger.error({ database: this.name, err: describeError(err) }, 'cold failover: could not check WAL archiving on the new primary');
    }
    target.obs = { ok: true, inRecovery: false, at: clock.now() };
    target.fails = 0;
    this.#primaryLastOk = clock.now();
    this.#blocked = false;
    this.#blockedReason = undefined;
    this.#coldRetryAt = 0;
    this.#lastTopology = '';
    this.#publish();
    // a fresh base backup on the new timeline as soon as writes flow
    this.#nextBaseBackupAt = clock.now();
    const rec: FailoverRecord = {
      kind: 'cold-failover',
      old_primary: old.spec.name,
      new_primary: target.spec.name,
      started_at: startedAt,
      finished_at: promotedAt,
      ok: true,
      detect_ms: startedAt - lastOk,
      promote_ms: promotedAt - restoredAt,
      write_downtime_ms: undefined,
      message: `${reason}; built ${target.spec.name} from base backup ${restored.snapshot.slice(0, 8)} (${restored.time}, target ${restored.target}, restored in ${restored.restoreMs} ms) plus archived WAL up to ${lastWalAfter ?? 'none'}${walNote}; recovery ended at ${lsn ?? '?'} on timeline ${timeline ?? '?'}${restored.movedAside ? `; previous data moved to ${restored.movedAside}` : ''}`,
    };
    const id = this.#record(rec);
    void this.#measureWrites(target, lastOk, id, rec);
  }

  /** Commits a transaction with an xid on the new primary; the time it succeeds ends the write downtime. */
  async #measureWrites(target: NodeState, since: number, id: number, rec: FailoverRecord): Promise<void> {
    const deadline = this.#d.clock.now() + 120_000;
    while (!this.#stopped && this.#d.clock.now() < deadline && this.#primary === target.spec.name) {
      try {
        await execSql(this.#target(target), 'SELECT txid_current()', 60_000);
        const ms = this.#d.clock.now() - since;
        this.#history.writesBack(id, rec, ms, target.spec.name);
        this.#d.logger.info({ database: this.name, primary: target.spec.name, write_downtime_ms: ms }, 'writes work again');
        return;
      } catch {
        await this.#d.clock.sleep(100);
      }
    }
  }

  #record(r: FailoverRecord): number {
    return this.#history.record(r);
  }

  #audit(kind: string, subject: string, message: string, data?: Record<string, unknown>): void {
    this.#history.audit(kind, subject, message, data);
  }

  // ---------------------------------------------------------------- rejoin

  /** Rewinds a former primary (or a broken standby) against the primary and starts it as a standby; re-clones when the rewind fails. Never starts it as a primary. */
  async #rejoin(n: NodeState, p: NodeState, why: string): Promise<void> {
    const name = n.spec.name;
    this.#rejoining.add(name);
    try {
      this.#d.logger.info({ database: this.name, node: name, primary: p.spec.name, why }, 'rejoining as standby');
      n.ctl.killAll();
      if (n.ctl.initialized()) {
        // pg_rewind needs the divergence point on disk of the source: checkpoint first
        await execSql(this.#target(p), 'CHECKPOINT', 30_000);
        const r = await n.ctl.rewind(p.spec);
        if (r.ok) {
          n.ctl.configureStandby(p.spec);
        } else {
          this.#d.logger.warn({ database: this.name, node: name, output: r.output.trim().split('\n').slice(-4) }, 'pg_rewind failed: cloning again');
          await n.ctl.clone(p.spec);
        }
      } else {
        await n.ctl.clone(p.spec);
      }
      await n.ctl.start();
      this.#fenced.delete(name);
      this.#persist();
      n.fails = 0;
      this.#audit('db.rejoin', `${this.name}/${name}`, `${name} rejoined as a standby of ${p.spec.name} (${why})`);
    } finally {
      this.#rejoining.delete(name);
    }
  }

  /** Rejoins a node as a standby of the current primary now (rewind, or re-clone when the rewind fails). Leader only. */
  async rejoin(node: string): Promise<void> {
    const n = this.#node(node);
    if (!this.#d.lease.isHeld()) throw new BulwarkError('BULWARK_DB_NOT_LEADER', `this instance does not hold the leader lease for database ${this.name}`);
    const p = this.#primary ? this.#nodes.get(this.#primary) : undefined;
    if (!p || p === n) throw new BulwarkError('BULWARK_DB_NO_PRIMARY', `database ${this.name} has no other primary for ${node} to follow`);
    await this.#serial('rejoin', () => this.#rejoin(n, p, 'requested'));
  }

  // ---------------------------------------------------------------- switchover

  /** Planned switchover: wait for the target to catch up, then swap roles with writes blocked for about a second. */
  async switchover(to: string): Promise<FailoverRecord> {
    const target = this.#node(to);
    if (!this.#d.lease.isHeld()) {
      throw new BulwarkError('BULWARK_DB_NOT_LEADER', `this instance does not hold the leader lease for database ${this.name}`, { hint: 'run the switchover against the instance holding the lease' });
    }
    return this.#serial('switchover', async () => {
      const c = this.#d.config;
      const clock = this.#d.clock;
      const old = this.#primary ? this.#nodes.get(this.#primary) : undefined;
      if (!old) throw new BulwarkError('BULWARK_DB_NO_PRIMARY', `database ${this.name} has no primary to switch over from`);
      if (old === target) throw new BulwarkError('BULWARK_DB_SWITCHOVER', `${to} is already the primary of ${this.name}`);
      const startedAt = clock.now();
      // 1. wait for catch-up while writes still flow
      const deadline = startedAt + c.switchover_timeout;
      for (;;) {
        const po = await observe(this.#target(old), 2000, () => clock.now());
        const to_ = await observe(this.#target(target), 2000, () => clock.now());
        const streaming = po.replicas?.find((r) => r.name === to && r.state === 'streaming');
        const lag = lagBytes(po.lsn, streaming?.flushLsn);
        if (po.ok && to_.ok && to_.inRecovery && streaming && lag !== undefined && lag < 1024 * 1024) break;
        if (clock.now() > deadline) {
          throw new BulwarkError('BULWARK_DB_SWITCHOVER', `${to} did not catch up with ${old.spec.name} within ${c.switchover_timeout} ms (streaming: ${streaming ? 'yes' : 'no'}, lag: ${lag ?? 'unknown'} bytes)`, {
            hint: 'check `bulwark db status`; the target must be a streaming standby',
          });
        }
        await clock.sleep(200);
      }
      // 2. block writes, stop the old primary cleanly (its walsenders ship everything, shutdown checkpoint included)
      const blockedAt = clock.now();
      this.#publishBlocked();
      await old.ctl.stop('fast');
      const finalLsn = await old.ctl.checkpointLsn();
      // 3. the target must have received the old primary's last record
      const until = clock.now() + 10_000;
      let caught = false;
      while (clock.now() < until) {
        const o = await observe(this.#target(target), 2000, () => clock.now());
        if (o.ok && (parseLsn(o.lsn) ?? -1n) > (parseLsn(finalLsn) ?? 0n)) {
          caught = true;
          break;
        }
        await clock.sleep(50);
      }
      if (!caught) {
        await old.ctl.start();
        this.#blocked = false;
        this.#lastTopology = '';
        throw new BulwarkError('BULWARK_DB_SWITCHOVER', `${to} did not receive ${old.spec.name}'s final WAL (${finalLsn ?? '?'}); ${old.spec.name} was restarted as the primary`);
      }
      if (!this.#d.lease.isHeld()) {
        await old.ctl.start();
        this.#blocked = false;
        this.#lastTopology = '';
        throw new BulwarkError('BULWARK_COORD_LEASE_LOST', `lost the leader lease during switchover of ${this.name}; ${old.spec.name} stays primary`, {
          hint: 'check the coordination service (etcd) and retry the switchover',
        });
      }
      // 4. promote; the old primary becomes a standby (clean shutdown, so no rewind is needed)
      old.ctl.fence();
      this.#fenced.add(old.spec.name);
      this.#persist();
      const promoteAt = clock.now();
      await target.ctl.promote();
      const promotedAt = clock.now();
      this.#primary = target.spec.name;
      this.#primaryLastLsn = undefined;
      this.#lastReplicaFlush.clear();
      if (c.synchronous) {
        this.#syncNodes = [old.spec.name];
        this.#syncNamed = undefined;
        await this.#setSyncNames(target, old.spec.name);
      }
      this.#persist();
      old.ctl.configureStandby(target.spec);
      await old.ctl.start();
      this.#fenced.delete(old.spec.name);
      this.#persist();
      await this.#adoptPrimary(target, old);
      // 5. measure: a committed write on the new primary ends the write downtime
      await execSql(this.#target(target), 'SELECT txid_current()', 60_000);
      const writesAt = clock.now();
      const rec: FailoverRecord = {
        kind: 'switchover',
        old_primary: old.spec.name,
        new_primary: target.spec.name,
        started_at: startedAt,
        finished_at: writesAt,
        ok: true,
        detect_ms: 0,
        promote_ms: promotedAt - promoteAt,
        write_downtime_ms: writesAt - blockedAt,
        message: `planned switchover from ${old.spec.name} to ${target.spec.name}`,
      };
      this.#record(rec);
      this.#d.metrics.downtime(this.name, 'switchover', writesAt - blockedAt);
      return rec;
    }).finally(() => {
      this.#lastTopology = '';
      this.#publish();
    });
  }

  // ---------------------------------------------------------------- status

  status(): {
    database: string;
    leader: boolean;
    primary: string | undefined;
    synchronous: boolean;
    sync_standbys: string[];
    writes: 'open' | 'blocked';
    blocked_reason: string | undefined;
    busy: string;
    nodes: Array<Record<string, unknown>>;
    last_failover: FailoverRecord | undefined;
    cold?: {
      restore_from: string | undefined;
      wal_archive: string;
      last_archived_wal: string | undefined;
      newest_base_backup: string | undefined;
      last_base_backup: BaseBackupStatus | undefined;
      base_backup_running: boolean;
      last_wal_upload: { ok: boolean; at: number; up_to: string | undefined; targets: string; error: string | undefined } | undefined;
      archiver: { failed_count: number; last_failed_wal: string | undefined; last_failed_at: string | undefined; last_archived_wal: string | undefined; failing: boolean } | undefined;
    };
  } {
    const p = this.#primary ? this.#nodes.get(this.#primary) : undefined;
    const topo = this.#lastTopology ? (JSON.parse(this.#lastTopology) as { primary?: unknown }) : {};
    return {
      database: this.name,
      leader: this.#d.lease.isHeld(),
      primary: this.#primary,
      synchronous: this.#d.config.synchronous,
      sync_standbys: this.#syncNodes,
      writes: topo.primary ? 'open' : 'blocked',
      blocked_reason: this.#blockedReason,
      busy: this.#busyWhat,
      nodes: [...this.#nodes.values()].map((n) => ({
        database: this.name,
        node: n.spec.name,
        address: `${n.spec.host}:${n.spec.port}`,
        role: this.#roleOf(n),
        lsn: n.obs?.lsn,
        lag_bytes: this.#lagOf(n, p),
        sync: this.#syncNamed === n.spec.name ? (this.#syncNodes.includes(n.spec.name) ? 'sync' : 'naming') : this.#syncNodes.includes(n.spec.name) ? 'safe' : '',
        timeline: n.obs?.timeline,
        streaming: n.obs?.receiverStatus === 'streaming' ? 'yes' : n.obs?.inRecovery ? 'no' : '',
        error: n.obs?.ok === false ? n.obs.error : undefined,
      })),
      last_failover: this.#history.last,
      ...(this.#walDir
        ? {
            cold: {
              restore_from: this.#d.config.restore_from,
              wal_archive: this.#walDir,
              last_archived_wal: lastArchivedSegment(this.#walDir),
              newest_base_backup: this.#newestBaseBackup,
              last_base_backup: this.#lastBaseBackup,
              base_backup_running: this.#baseBackupRun !== undefined,
              last_wal_upload: this.#lastWalUpload,
              archiver: this.#archiver,
            },
          }
        : {}),
    };
  }

  history(limit = 20): Promise<unknown[]> {
    return this.#history.list(limit);
  }

  /** Test and diagnostics hook: whether the data dir of a node exists. */
  hasData(node: string): boolean {
    return existsSync(join(this.#node(node).spec.dataDir, 'PG_VERSION'));
  }
}

/** Sort key of a WAL file name: timeline history files order with the start of their timeline. */
function walOrder(name: string): string {
  return name.endsWith('.history') ? `${name.slice(0, 8)}0000000000000000` : name;
}

/** The newest WAL file (segment or history) in an archive directory, or undefined (none, or no directory). */
function newestWalFile(dir: string): string | undefined {
  try {
    return readdirSync(dir).filter(isWalName).sort((a, b) => (walOrder(a) < walOrder(b) ? -1 : walOrder(a) > walOrder(b) ? 1 : 0)).at(-1);
  } catch {
    return undefined;
  }
}
