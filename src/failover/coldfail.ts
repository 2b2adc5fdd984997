// Owns cold standby for the single-host engine: WAL archiving on the primary (archive_mode,
// archive_command), the WAL archive's uploads into the restore_from plan and the primary's
// pg_stat_archiver, base-backup scheduling (cold.ts takes and restores them), and cold failover:
// restart in place when the data directory is intact, else build a new primary from the newest
// base backup plus the archived WAL.
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { BulwarkError, describeError } from '../core/errors.js';
import { archiveSettings, baseBackupTags, dataDirIntact, prepareWalDir, recoverWalArchive, restoreBaseBackup, takeBaseBackup, walTags, type BaseBackupStore } from './cold.js';
import { connect, observe } from './monitor.js';
import { PgCtl } from './pgctl.js';
import type { FailoverRecord } from './records.js';
import type { ClusterNode, ClusterState } from './state.js';
import { publishTopology } from './status.js';
import { isWalName, lastArchivedSegment } from './wal.js';

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

export interface WalUploadStatus {
  ok: boolean;
  at: number;
  up_to: string | undefined;
  targets: string;
  error: string | undefined;
}

export interface ArchiverStatus {
  failed_count: number;
  last_failed_wal: string | undefined;
  last_failed_at: string | undefined;
  last_archived_wal: string | undefined;
  failing: boolean;
}

/** The cold section of `bulwark db status`. */
export type ColdStatus = {
  restore_from: string | undefined;
  wal_archive: string;
  last_archived_wal: string | undefined;
  newest_base_backup: string | undefined;
  last_base_backup: BaseBackupStatus | undefined;
  base_backup_running: boolean;
  last_wal_upload: WalUploadStatus | undefined;
  archiver: ArchiverStatus | undefined;
};

export class ColdStandby {
  readonly #s: ClusterState;
  /** The WAL archive directory, and the scratch node base backups are taken into. */
  readonly walDir: string;
  readonly #scratch: PgCtl;
  #baseBackupRun: Promise<BaseBackupStatus> | undefined;
  #lastBaseBackup: BaseBackupStatus | undefined;
  #newestBaseBackup: string | undefined;
  #nextBaseBackupAt = 0;
  #coldRetryAt = 0;
  #walUploadRun: Promise<void> | undefined;
  #nextWalUploadAt = 0;
  /** The newest WAL file name (segment or history) the last successful upload held. */
  #walUploadedUpTo: string | undefined;
  #lastWalUpload: WalUploadStatus | undefined;
  /** pg_stat_archiver of the primary, read every wal_upload_interval. */
  #archiver: ArchiverStatus | undefined;

  constructor(s: ClusterState) {
    this.#s = s;
    const deps = s.d;
    const c = deps.config;
    this.walDir = resolve(deps.baseDir, c.wal_archive ?? join(deps.stateDir, 'failover', deps.name, 'wal'));
    // beside the nodes, not in state_dir: pg_basebackup runs as the postgres user, and state_dir may be private
    const first = c.nodes[0];
    const dir = join(dirname(resolve(deps.baseDir, first ? first.data_dir : deps.stateDir)), `.${deps.name}-basebackup`);
    this.#scratch = new PgCtl({ name: 'basebackup', host: '127.0.0.1', port: 1, dataDir: dir }, { binDir: c.bin_dir, osUser: c.os_user, superuser: c.superuser, logFile: join(deps.stateDir, 'failover', deps.name, 'basebackup.log') });
  }

  /** The loop's cold-standby work, leader only and once bootstrapped: a due base backup, a due WAL upload (both in the background). */
  schedule(): void {
    const s = this.#s;
    if (!s.busy && !this.#baseBackupRun && !s.gate.blocked && s.d.clock.now() >= this.#nextBaseBackupAt) {
      void this.#startBaseBackup('scheduled');
    }
    if (s.d.baseBackups && !s.busy && !this.#walUploadRun && s.d.clock.now() >= this.#nextWalUploadAt) {
      this.#walUploadRun = this.#uploadWal().finally(() => {
        this.#walUploadRun = undefined;
      });
    }
  }

  /** The primary is lost: a cold failover (one at a time), or, until the retry time of a failed one, writes stay blocked. */
  async primaryLost(p: ClusterNode, reason: string): Promise<void> {
    const s = this.#s;
    if (s.d.clock.now() >= this.#coldRetryAt) await s.serial('cold failover', () => this.failover(p, reason));
    else s.gate.close();
  }

  status(): ColdStatus {
    return {
      restore_from: this.#s.d.config.restore_from,
      wal_archive: this.walDir,
      last_archived_wal: lastArchivedSegment(this.walDir),
      newest_base_backup: this.#newestBaseBackup,
      last_base_backup: this.#lastBaseBackup,
      base_backup_running: this.#baseBackupRun !== undefined,
      last_wal_upload: this.#lastWalUpload,
      archiver: this.#archiver,
    };
  }

  /** The postgres OS user's uid and gid when Bulwark runs as root (the WAL archive and restored files are theirs). */
  osOwner(): { uid: number; gid: number } | undefined {
    if (process.getuid?.() !== 0) return undefined;
    const u = this.#s.d.config.os_user;
    return { uid: Number(execFileSync('id', ['-u', u]).toString().trim()), gid: Number(execFileSync('id', ['-g', u]).toString().trim()) };
  }

  /** Makes sure the primary archives into the WAL archive (archive_mode needs a restart; the command and timeout a reload). */
  async ensureArchiving(p: ClusterNode): Promise<void> {
    const s = this.#s;
    const walDir = this.walDir;
    prepareWalDir(walDir, this.osOwner());
    const want: Record<string, string> = archiveSettings(walDir, s.d.config.archive_timeout);
    const client = await connect(s.target(p), 5000);
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
      s.d.logger.warn({ database: s.name, node: p.spec.name }, 'turning on WAL archiving (archive_mode needs a restart of the primary)');
      await p.ctl.stop('fast');
      await p.ctl.start();
    }
  }

  /** Snapshots the WAL archive into the plan's targets when it holds files the last upload did not (incremental: only new files are read). */
  async #uploadWal(): Promise<void> {
    const s = this.#s;
    const walDir = this.walDir;
    const store = s.d.baseBackups as BaseBackupStore;
    const clock = s.d.clock;
    this.#nextWalUploadAt = clock.now() + s.d.config.wal_upload_interval;
    await this.#checkArchiver();
    const newest = newestWalFile(walDir);
    if (newest === undefined || newest === this.#walUploadedUpTo) return;
    try {
      const r = await store.save(walDir, walTags(s.name), { excludes: ['.*.tmp'] });
      const ok = r.targets.filter((t) => t.ok);
      const failed = r.targets.filter((t) => !t.ok);
      if (ok.length > 0) this.#walUploadedUpTo = newest;
      this.#lastWalUpload = { ok: failed.length === 0, at: clock.now(), up_to: ok.length > 0 ? newest : this.#lastWalUpload?.up_to, targets: `${ok.length}/${r.targets.length}`, error: failed.length ? failed.map((t) => `${t.target}: ${t.error ?? 'failed'}`).join('; ') : undefined };
      if (failed.length) s.d.logger.warn({ database: s.name, failed: this.#lastWalUpload.error }, 'WAL upload: some targets failed');
    } catch (err) {
      this.#lastWalUpload = { ok: false, at: clock.now(), up_to: this.#lastWalUpload?.up_to, targets: '0', error: describeError(err) };
      s.d.logger.error({ database: s.name, err: describeError(err) }, 'WAL upload failed');
    }
  }

  /** Reads pg_stat_archiver on the primary; a failing archive_command (a failure after the last success) is logged and audited once. */
  async #checkArchiver(): Promise<void> {
    const s = this.#s;
    const p = s.primaryNode();
    if (!p?.obs?.ok || p.obs.inRecovery !== false) return;
    try {
      const c = await connect(s.target(p), 2000);
      try {
        const r = await c.query<{ failed_count: string; last_failed_wal: string | null; last_failed_time: Date | null; last_archived_wal: string | null; last_archived_time: Date | null }>(
          'SELECT failed_count, last_failed_wal, last_failed_time, last_archived_wal, last_archived_time FROM pg_stat_archiver',
        );
        const row = r.rows[0];
        if (!row) return;
        const failing = row.last_failed_time !== null && (row.last_archived_time === null || row.last_failed_time > row.last_archived_time);
        if (failing && !this.#archiver?.failing) {
          s.d.logger.error({ database: s.name, last_failed_wal: row.last_failed_wal }, 'archive_command is failing: WAL is not reaching the archive (see the primary\'s log)');
          s.audit('db.wal_archive.failing', s.name, `archive_command fails on ${p.spec.name} (last failed: ${row.last_failed_wal ?? '?'}); cold standby would lose WAL since ${row.last_archived_wal ?? 'the start'}`);
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
  async planBaseBackups(): Promise<void> {
    const s = this.#s;
    const store = s.d.baseBackups;
    const now = s.d.clock.now();
    if (!store) {
      s.d.logger.error({ database: s.name }, 'standby: cold without a backup store: no base backups can be taken or restored');
      return;
    }
    try {
      const latest = await store.latest(baseBackupTags(s.name));
      this.#newestBaseBackup = latest?.time;
      this.#nextBaseBackupAt = latest ? Date.parse(latest.time) + s.d.config.base_backup_interval : now;
    } catch (err) {
      s.d.logger.warn({ database: s.name, err: describeError(err) }, 'cannot list base backups; taking one now');
      this.#nextBaseBackupAt = now;
    }
  }

  /** Takes a base backup of the current primary into the restore_from plan now (leader only). One at a time: a second request waits for the running one, then takes its own. */
  async baseBackup(): Promise<BaseBackupStatus> {
    const s = this.#s;
    if (!s.d.lease.isHeld()) throw new BulwarkError('BULWARK_DB_NOT_LEADER', `this instance does not hold the leader lease for database ${s.name}`);
    while (this.#baseBackupRun) await this.#baseBackupRun.catch(() => undefined);
    const st = await this.#startBaseBackup('requested');
    if (!st.ok) throw new BulwarkError('BULWARK_DB_BASE_BACKUP', `base backup of database ${s.name} failed: ${st.error ?? 'no target stored it'}`, { details: st.targets.filter((t) => !t.ok).map((t) => `${t.target}: ${t.error ?? 'failed'}`) });
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
    const s = this.#s;
    const clock = s.d.clock;
    const startedAt = clock.now();
    const p = s.primaryNode();
    const st: BaseBackupStatus = { ok: false, started_at: startedAt, finished_at: startedAt, snapshot_time: this.#newestBaseBackup, targets: [], error: undefined };
    try {
      if (!p) throw new BulwarkError('BULWARK_DB_NO_PRIMARY', `database ${s.name} has no primary to take a base backup of`);
      if (!s.d.baseBackups || !this.#scratch) throw new BulwarkError('BULWARK_DB_COLD_CONFIG', `database ${s.name}: no backup store for restore_from`);
      s.d.logger.info({ database: s.name, primary: p.spec.name, why }, 'base backup: pg_basebackup, then a snapshot into the plan');
      const r = await takeBaseBackup(this.#scratch, p.spec, s.d.config.superuser, s.d.baseBackups, s.name);
      st.targets = r.targets;
      st.ok = true;
      st.snapshot_time = new Date(r.startedAt).toISOString();
      this.#newestBaseBackup = st.snapshot_time;
      s.audit('db.base_backup', s.name, `base backup of ${p.spec.name} stored in ${r.targets.filter((t) => t.ok).length}/${r.targets.length} target(s) of ${s.d.config.restore_from ?? '?'} (${r.files} files, ${r.bytes} bytes, ${r.finishedAt - r.startedAt} ms)`, { targets: r.targets, files: r.files, bytes: r.bytes, ms: r.finishedAt - r.startedAt });
    } catch (err) {
      const details = err instanceof BulwarkError && err.details.length > 0 ? ` (${err.details.join("; ")})` : "";
      st.error = `${describeError(err)}${details}`;
      s.d.logger.error({ database: s.name, err: st.error }, 'base backup failed');
      s.audit('db.base_backup.failed', s.name, `base backup failed: ${st.error}`);
    }
    st.finished_at = clock.now();
    this.#lastBaseBackup = st;
    // after a failure, try again in a minute (or at the interval if that is sooner)
    this.#nextBaseBackupAt = clock.now() + (st.ok ? s.d.config.base_backup_interval : Math.min(60_000, s.d.config.base_backup_interval));
    return st;
  }

  /**
   * Cold standby: the primary is lost and nothing streams. If its data directory is intact, crash
   * recovery in place loses nothing: restart it there. Otherwise fence it, restore the newest base
   * backup of restore_from into a spare node (or, with one node, into its own data directory, the
   * remains moved aside), replay the WAL archive (recovery.signal + restore_command), let the
   * server promote itself at the end of the archive, and route writes to it. The write downtime
   * measured from the last good observation to the first commit is the RTO.
   */
  async failover(old: ClusterNode, reason: string): Promise<void> {
    const s = this.#s;
    const clock = s.d.clock;
    const startedAt = clock.now();
    const lastOk = s.primaryLastOk || startedAt;
    s.gate.close();
    old.ctl.killAll();
    // 1. intact data directory: restart in place (crash recovery replays its own WAL; nothing is lost)
    if (!s.fenced.has(old.spec.name) && dataDirIntact(old.spec.dataDir) && !old.ctl.isStandbyConfigured()) {
      try {
        await old.ctl.start();
        old.fails = 0;
        s.gate.open();
        s.gate.reason = undefined;
        s.d.logger.warn({ database: s.name, node: old.spec.name, reason }, 'cold standby: primary restarted in place (its data directory is intact)');
        s.audit('db.restart', `${s.name}/${old.spec.name}`, `restarted ${old.spec.name} in place after ${reason}: its data directory is intact, nothing lost`);
        return;
      } catch (err) {
        s.d.logger.error({ database: s.name, node: old.spec.name, err: describeError(err) }, 'cold standby: restarting the primary in place failed; building a new one from the backup');
      }
    }
    // 2. fence the old primary: whatever is left of it must never accept writes again
    s.fence(old);
    const store = s.d.baseBackups;
    const walDir = this.walDir;
    const target = [...s.nodes.values()].find((n) => n !== old && !n.pidAlive) ?? [...s.nodes.values()].find((n) => n !== old) ?? old;
    const lastWal = lastArchivedSegment(walDir);
    const fail = (message: string): void => {
      s.gate.reason = `cold standby: ${message}`;
      this.#coldRetryAt = clock.now() + 10_000;
      s.history.record({ kind: 'cold-failover', old_primary: old.spec.name, new_primary: target.spec.name, started_at: startedAt, finished_at: clock.now(), ok: false, detect_ms: startedAt - lastOk, promote_ms: undefined, write_downtime_ms: undefined, message: `${reason}; building ${target.spec.name} from the backup failed: ${message}` });
    };
    if (!store) return fail('no backup store for restore_from');
    if (!s.d.lease.isHeld()) {
      s.d.logger.error({ database: s.name }, 'lease lost before the cold build: not building');
      return;
    }
    s.d.logger.warn({ database: s.name, old: old.spec.name, new: target.spec.name, reason, last_archived_wal: lastWal }, 'cold failover: building a new primary from the latest base backup and the WAL archive');
    s.rejoining.add(target.spec.name);
    // the WAL archive may have been lost (or be behind what was uploaded): complete it from the
    // newest pg-wal snapshot in the plan. An archive at least as new as the last upload is used as
    // it is (restoring the whole WAL snapshot would only lengthen the outage).
    let walNote = '';
    const localNewest = newestWalFile(walDir);
    const walBehind = localNewest === undefined || (this.#walUploadedUpTo !== undefined && walOrder(localNewest) < walOrder(this.#walUploadedUpTo));
    if (walBehind) {
      try {
        const w = await recoverWalArchive(store, s.name, walDir, this.osOwner());
        walNote = w.copied > 0 ? `; ${w.copied} WAL file(s) recovered into the archive from snapshot ${w.snapshot.slice(0, 8)} (${w.time})` : '';
        if (w.failed.length) {
          walNote += `; ${w.failed.length} WAL file(s) of that snapshot could not be restored (${w.failed.join(', ')})`;
          s.d.logger.error({ database: s.name, failed: w.failed }, 'some WAL files of the plan could not be restored: recovery stops before the first missing one it needs');
        }
        if (w.conflicts.length) s.d.logger.error({ database: s.name, conflicts: w.conflicts }, 'WAL files in the plan differ from the archive: kept the archive\'s');
      } catch (err) {
        s.d.logger.warn({ database: s.name, err: describeError(err) }, 'no WAL snapshot to complete the archive from; using the archive as it is');
      }
    }
    const lastWalAfter = lastArchivedSegment(walDir);
    let restored: Awaited<ReturnType<typeof restoreBaseBackup>>;
    try {
      target.ctl.killAll();
      restored = await restoreBaseBackup(target.ctl, store, s.name, walDir, { owner: this.osOwner(), now: clock.now() });
    } catch (err) {
      s.rejoining.delete(target.spec.name);
      return fail(`restoring the base backup failed: ${describeError(err)}`);
    }
    const restoredAt = clock.now();
    // 3. archive recovery; the server ends recovery (new timeline) at the end of the archive
    if (!s.d.lease.isHeld()) {
      s.rejoining.delete(target.spec.name);
      s.d.logger.error({ database: s.name }, 'lease lost before starting the rebuilt primary: not starting it');
      return;
    }
    let lsn: string | undefined;
    let timeline: number | undefined;
    try {
      await target.ctl.start();
      const deadline = clock.now() + 600_000;
      for (;;) {
        const o = await observe(s.target(target), 2000, () => clock.now());
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
      s.rejoining.delete(target.spec.name);
      return fail(`archive recovery failed: ${describeError(err)}`);
    }
    const promotedAt = clock.now();
    s.rejoining.delete(target.spec.name);
    s.fenced.delete(target.spec.name);
    s.primary = target.spec.name;
    s.primaryLastLsn = lsn;
    s.lastReplicaFlush.clear();
    s.persist();
    try {
      await this.ensureArchiving(target);
    } catch (err) {
      s.d.logger.error({ database: s.name, err: describeError(err) }, 'cold failover: could not check WAL archiving on the new primary');
    }
    s.sawPrimary(target);
    s.gate.open();
    s.gate.reason = undefined;
    this.#coldRetryAt = 0;
    s.gate.forget();
    publishTopology(s);
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
    const id = s.history.record(rec);
    void s.measureWrites(target, lastOk, id, rec);
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
