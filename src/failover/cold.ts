// Owns the PostgreSQL side of cold standby: the small interface failover needs from the backup
// engine (BaseBackupStore, implemented by the composition root so that failover never imports
// backup/), taking a base backup (pg_basebackup into a scratch directory, then a snapshot of it
// into the restore_from plan's targets), and building a new primary in a node's data directory
// from the newest base backup plus the archived WAL (recovery.signal + restore_command; the
// server promotes itself at the end of the archive). Role decisions stay in coldfail.ts.
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BulwarkError } from '../core/errors.js';
import type { NodeActions } from './nodes.js';
import { conninfo, type NodeSpec, type PgCtl } from './pgctl.js';
import { archiveCommand, isWalName, pushWal, restoreCommand } from './wal.js';

export interface BaseBackupRef {
  /** The plan target the snapshot was read from (or the newest one's target). */
  target: string;
  snapshot: string;
  /** ISO time of the snapshot. */
  time: string;
}

export interface BaseBackupSaveResult {
  targets: Array<{ target: string; ok: boolean; snapshot?: string | undefined; error?: string | undefined }>;
  files: number;
  bytes: number;
}

/** What cold standby needs from the backup engine, for one plan. */
export interface BaseBackupStore {
  /** Snapshots DIR (one path) into every target of the plan with these tags; a failing target is reported, not thrown. */
  save(dir: string, tags: string[], opts?: { excludes?: string[] }): Promise<BaseBackupSaveResult>;
  /** The newest snapshot carrying every tag, over all targets; undefined when there is none. */
  latest(tags: string[]): Promise<BaseBackupRef | undefined>;
  /**
   * Restores the newest snapshot carrying every tag from the first target (in plan order) that
   * has one and restores without errors, into the empty directory INTO. Returns where the copy
   * of the snapshotted directory is (INTO/<basename of the snapshotted path>). With partial, a
   * restore with some failed files is accepted and those files are listed in `failed` (removed).
   */
  restoreLatest(tags: string[], into: string, opts?: { partial?: boolean }): Promise<BaseBackupRef & { dir: string; restoreMs: number; failed: string[] }>;
}

/** Builds the store for a plan name (the composition root's adapter over backup/). */
export type BaseBackupStoreFactory = (plan: string) => BaseBackupStore;

export const baseBackupTags = (database: string): string[] => ['pg-base', `db:${database}`];
export const walTags = (database: string): string[] => ['pg-wal', `db:${database}`];

/**
 * Copies into the WAL archive every archived file of the newest pg-wal snapshot in the plan that
 * the archive lacks (the archive directory was lost with its disk, or is behind). Files already
 * there are kept: identical ones are skipped, and a different one is reported, never replaced.
 */
export async function recoverWalArchive(store: BaseBackupStore, database: string, walDir: string, owner: { uid: number; gid: number } | undefined): Promise<{ copied: number; conflicts: string[]; failed: string[]; snapshot: string; time: string }> {
  prepareWalDir(walDir, owner);
  const staging = `${walDir}.from-backup`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { mode: 0o700 });
  try {
    // partial: a WAL file the restore could not write is skipped (recovery stops before it if it is needed)
    const ref = await store.restoreLatest(walTags(database), staging, { partial: true });
    const failed = new Set(ref.failed.map((f) => basename(f)));
    let copied = 0;
    const conflicts: string[] = [];
    for (const name of readdirSync(ref.dir)) {
      if (!isWalName(name) || failed.has(name)) continue;
      try {
        if (pushWal(walDir, join(ref.dir, name), name) === 'stored') {
          copied++;
          if (owner) chownSync(join(walDir, name), owner.uid, owner.gid); // restore_command runs as the postgres user
        }
      } catch (err) {
        conflicts.push(`${name}: ${(err as Error).message}`);
      }
    }
    return { copied, conflicts, failed: [...failed], snapshot: ref.snapshot, time: ref.time };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** The postgresql.conf settings of a cold-standby primary: WAL archiving into the archive directory. */
export function archiveSettings(walDir: string, archiveTimeoutMs: number): Record<string, string> {
  return { archive_mode: 'on', archive_command: archiveCommand(walDir), archive_timeout: `${Math.max(1, Math.round(archiveTimeoutMs / 1000))}s` };
}

/** Creates the WAL archive directory, owned by the postgres OS user (archive_command runs as it). */
export function prepareWalDir(walDir: string, osUser: { uid: number; gid: number } | undefined): void {
  mkdirSync(walDir, { recursive: true, mode: 0o700 });
  if (osUser) chownSync(walDir, osUser.uid, osUser.gid);
}

/**
 * pg_basebackup of the primary into SCRATCH (a plain copy: no standby files, WAL needed for
 * consistency included with -X stream), then a snapshot of it into the plan's targets.
 */
export async function takeBaseBackup(scratchCtl: PgCtl, primary: NodeSpec, superuser: string, store: BaseBackupStore, database: string): Promise<BaseBackupSaveResult & { startedAt: number; finishedAt: number }> {
  const startedAt = Date.now();
  scratchCtl.killAll();
  rmSync(scratchCtl.dataDir, { recursive: true, force: true });
  scratchCtl.prepareDir();
  try {
    const r = await scratchCtl.run('pg_basebackup', ['-D', scratchCtl.dataDir, '-d', conninfo(primary, superuser, { application_name: 'bulwark-basebackup' }), '-X', 'stream', '-c', 'fast', '--no-sync'], { timeoutMs: 3_600_000 });
    if (r.code !== 0) {
      throw new BulwarkError('BULWARK_DB_BASE_BACKUP', `pg_basebackup of ${primary.name} for database ${database} failed (exit ${r.code ?? 'killed'})`, {
        details: r.output.trim().split('\n').slice(-6),
        hint: 'check that the primary runs and accepts replication connections from 127.0.0.1',
      });
    }
    const res = await store.save(scratchCtl.dataDir, baseBackupTags(database));
    if (!res.targets.some((t) => t.ok)) {
      throw new BulwarkError('BULWARK_DB_BASE_BACKUP', `base backup of database ${database}: no target of the plan stored it`, {
        details: res.targets.map((t) => `${t.target}: ${t.error ?? 'failed'}`),
        hint: 'check the restore_from plan\'s targets (`bulwark backup plan status`)',
      });
    }
    return { ...res, startedAt, finishedAt: Date.now() };
  } finally {
    rmSync(scratchCtl.dataDir, { recursive: true, force: true });
  }
}

/** Directories PostgreSQL needs in a data directory (a restore keeps empty ones, but be sure). */
const PG_DIRS = ['pg_wal', 'pg_wal/archive_status', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat', 'pg_stat_tmp', 'pg_subtrans', 'pg_twophase', 'pg_commit_ts', 'pg_dynshmem', 'pg_logical', 'pg_logical/snapshots', 'pg_logical/mappings', 'pg_replslot', 'pg_tblspc'];

/**
 * Replaces TARGET's data directory with the newest base backup, configured for archive recovery
 * from the WAL archive. Whatever was in the data directory is moved aside (never deleted). The
 * node is not started.
 */
export async function restoreBaseBackup(target: Pick<NodeActions, 'dataDir' | 'killAll'>, store: BaseBackupStore, database: string, walDir: string, opts: { owner: { uid: number; gid: number } | undefined; now: number }): Promise<BaseBackupRef & { restoreMs: number; movedAside: string | undefined }> {
  const dataDir = target.dataDir;
  target.killAll();
  let movedAside: string | undefined;
  if (existsSync(dataDir)) {
    movedAside = `${dataDir}.replaced-${new Date(opts.now).toISOString().replace(/[:.]/g, '-')}`;
    renameSync(dataDir, movedAside);
  }
  const staging = `${dataDir}.restoring`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(dirname(dataDir), { recursive: true });
  mkdirSync(staging, { mode: 0o700 });
  try {
    const ref = await store.restoreLatest(baseBackupTags(database), staging);
    renameSync(ref.dir, dataDir);
    chmodSync(dataDir, 0o700);
    for (const d of PG_DIRS) mkdirSync(join(dataDir, d), { recursive: true, mode: 0o700 });
    if (opts.owner) {
      chownSync(dataDir, opts.owner.uid, opts.owner.gid); // the restore keeps each file's owner; the top directory is new
      for (const d of PG_DIRS) chownSync(join(dataDir, d), opts.owner.uid, opts.owner.gid);
    }
    configureArchiveRecovery(dataDir, walDir);
    if (opts.owner) {
      for (const f of ['recovery.signal', 'postgresql.auto.conf']) chownSync(join(dataDir, f), opts.owner.uid, opts.owner.gid);
    }
    return { target: ref.target, snapshot: ref.snapshot, time: ref.time, restoreMs: ref.restoreMs, movedAside };
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/**
 * Archive recovery: recovery.signal (not standby.signal: at the end of the archive the server
 * ends recovery on a new timeline and accepts writes), restore_command reading the WAL archive,
 * no primary_conninfo. Stale files of the source (postmaster.pid, standby.signal) are removed.
 */
export function configureArchiveRecovery(dataDir: string, walDir: string): void {
  for (const f of ['standby.signal', 'postmaster.pid', 'postmaster.opts']) rmSync(join(dataDir, f), { force: true });
  const auto = join(dataDir, 'postgresql.auto.conf');
  let text = '';
  try {
    text = readFileSync(auto, 'utf8');
  } catch {
    // created below
  }
  const keep = text.split('\n').filter((l) => !/^\s*(primary_conninfo|primary_slot_name|restore_command|recovery_target\w*|synchronous_standby_names)\s*=/.test(l) && l !== '');
  keep.push(`restore_command = '${restoreCommand(walDir).replace(/'/g, "''")}'`);
  keep.push("recovery_target_timeline = 'latest'");
  keep.push("synchronous_standby_names = ''");
  writeFileSync(auto, `${keep.join('\n')}\n`, { mode: 0o600 });
  writeFileSync(join(dataDir, 'recovery.signal'), '', { mode: 0o600 });
}

/** Whether a data directory still looks startable (not removed, control file present). */
export function dataDirIntact(dataDir: string): boolean {
  try {
    return statSync(join(dataDir, 'global', 'pg_control')).size > 0 && existsSync(join(dataDir, 'PG_VERSION'));
  } catch {
    return false;
  }
}
