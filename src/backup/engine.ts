// Owns the backup engine's public API. The CLI (src/cli/commands/backup.ts) and 3-2-1 plans call
// only this module (plus backends/index.ts and the types it re-exports). It emits no events and
// knows nothing of the daemon.
//
// API:
//   openBackend(url)                              -> Backend     (path, file://, registered schemes)
//   initRepository(backend, password, opts?)      -> Repository  (BULWARK_REPO_EXISTS if present)
//   openRepository(backend, password)             -> Repository  (BULWARK_REPO_PASSWORD on a wrong one)
//   createSnapshot(repos[], paths, opts)          -> { snapshots[], summary, errors }
//       reads every file once and stores it into every repository (one BlobSink each), under a
//       shared lock per repository; incremental against each path set's latest snapshot.
//   archive({ sinks, ... })                       lower level: fan out into custom BlobSinks
//   repo.listSnapshots() / repo.findSnapshot(ref) -> SnapshotInfo
//   restore(repo, ref, opts)                      -> RestoreResult (errors listed, not thrown)
//   check(repo, opts)                             -> CheckReport
//   forget(repo, policy, { now, dryRun })         -> ForgetDecision[]  (selection: forget.ts, pure)
//   prune(repo, opts)                             -> PruneResult (exclusive lock)
//   repairIndex(repo) / repairPacks(repo) / repairSnapshots(repo, { forget })   (repair.ts)
//   repo.problems                                 files skipped because damaged (index, snapshot, key)
import { hostname, userInfo } from 'node:os';
import { resolve } from 'node:path';
import type { Backend } from './backend.js';
import { archive, type ArchiveProgress } from './archiver.js';
import { checkRepository, type CheckOptions, type CheckReport } from './checker.js';
import { selectForget, type ForgetDecision, type RetentionPolicy } from './forget.js';
import { RepoLock } from './lock.js';
import { pruneRepository, type PruneOptions, type PruneResult } from './prune.js';
import { repairIndex as repairIndexImpl, repairPacks as repairPacksImpl, repairSnapshots as repairSnapshotsImpl, type RepairIndexResult, type RepairPacksResult, type RepairSnapshotsResult } from './repair.js';
import { Repository } from './repository.js';
import { restoreSnapshot, type RestoreOptions, type RestoreResult } from './restorer.js';
import type { SnapshotInfo, SnapshotSummary } from './types.js';

export { openBackend, registerBackend } from './backends/index.js';
export { archive, type ArchiveProgress } from './archiver.js';
export { Repository } from './repository.js';
export type { BlobSink, PreparedBlob } from './sink.js';
export type { CheckReport, DamagedPack } from './checker.js';
export type { ForgetDecision, RetentionPolicy } from './forget.js';
export type { PruneResult } from './prune.js';
export type { RepairIndexResult, RepairPacksResult, RepairSnapshotsResult } from './repair.js';
export { DAMAGED_SUFFIX, type RestoreResult } from './restorer.js';
export type { RepairRecord, Snapshot, SnapshotInfo, SnapshotSummary, Tree, TreeNode } from './types.js';

export function initRepository(backend: Backend, password: string, opts: { packSize?: number } = {}): Promise<Repository> {
  return Repository.init(backend, password, opts);
}

export function openRepository(backend: Backend, password: string): Promise<Repository> {
  return Repository.open(backend, password);
}

export interface CreateOptions {
  tags?: string[];
  excludes?: string[];
  host?: string;
  /** skip the parent lookup: read every file */
  full?: boolean;
  now?: () => Date;
  onProgress?: (p: ArchiveProgress) => void;
  onError?: (path: string, message: string) => void;
  workers?: number;
}

export interface CreateResult {
  snapshots: { repo: string; id: string }[];
  summary: SnapshotSummary;
  errors: { path: string; message: string }[];
  /** damage seen and worked around: packs the index lists that are gone (their blobs stored again), damaged files skipped */
  warnings: string[];
}

function samePaths(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().every((p, i) => p === [...b].sort()[i]);
}

export async function createSnapshot(repos: Repository[], paths: string[], opts: CreateOptions = {}): Promise<CreateResult> {
  const abs = paths.map((p) => resolve(p));
  const host = opts.host ?? hostname();
  const locks: RepoLock[] = [];
  try {
    for (const r of repos) locks.push(await RepoLock.acquire(r, 'shared', 'backup'));
    // The index's packs are checked against a listing of the storage: a blob whose pack is gone
    // (or known damaged) is stored again, never deduplicated onto.
    for (const r of repos) await r.loadIndex({ verifyPacks: true });
    const parents: (SnapshotInfo | undefined)[] = [];
    for (const r of repos) {
      const all = opts.full ? [] : await r.listSnapshots();
      parents.push(all.filter((s) => s.host === host && samePaths(s.paths, abs)).at(-1));
    }
    const first = repos[0] as Repository;
    const p0 = parents[0];
    const res = await archive({
      paths: abs,
      sinks: repos.map((r) => r.sink()),
      chunker: first.config.chunker,
      ...(opts.excludes ? { excludes: opts.excludes } : {}),
      ...(p0 ? { parent: { tree: p0.tree, load: (sha: string) => first.loadTree(sha) } } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.onError ? { onError: opts.onError } : {}),
      ...(opts.workers ? { workers: opts.workers } : {}),
    });
    let user = 'unknown';
    try {
      user = userInfo().username;
    } catch {
      /* no passwd entry */
    }
    const time = (opts.now?.() ?? new Date()).toISOString();
    const out: { repo: string; id: string }[] = [];
    for (let i = 0; i < repos.length; i++) {
      (locks[i] as RepoLock).assertHeld();
      const r = repos[i] as Repository;
      const id = await r.saveSnapshot({ version: 1, time, host, user, paths: abs, tags: opts.tags ?? [], tree: res.tree, parent: parents[i]?.id ?? null, summary: res.summary });
      out.push({ repo: r.backend.location, id });
    }
    const warnings: string[] = [];
    for (const r of repos) {
      const lost = [...r.missingPacks.values()].reduce((a, b) => a + b, 0);
      if (r.missingPacks.size) warnings.push(`${r.backend.location}: ${r.missingPacks.size} pack(s) the index lists are missing (${lost} blobs): whatever this backup still needed of them was stored again; run \`bulwark backup check\``);
      for (const [file, message] of r.problems) warnings.push(`${r.backend.location}: ${file}: ${message}`);
    }
    return { snapshots: out, summary: res.summary, errors: res.errors, warnings };
  } finally {
    for (const l of locks) await l.release().catch(() => undefined);
  }
}

export async function restore(repo: Repository, ref: string, opts: RestoreOptions): Promise<RestoreResult & { snapshot: SnapshotInfo }> {
  // verifyPacks: a blob stored again after its pack was lost is read from the copy that exists.
  // scanUnindexed: packs a lost index file named are read from their headers.
  await repo.loadIndex({ verifyPacks: true, scanUnindexed: true });
  const snap = await repo.findSnapshot(ref);
  return { ...(await restoreSnapshot(repo, snap, opts)), snapshot: snap };
}

/**
 * Checks the repository under a shared lock, so a prune (exclusive) cannot delete packs while they
 * are read and report them missing. `noLock` is for read-only storage, where no lock can be written.
 */
export async function check(repo: Repository, opts: CheckOptions & { noLock?: boolean } = {}): Promise<CheckReport> {
  if (opts.noLock) return checkRepository(repo, opts);
  const lock = await RepoLock.acquire(repo, 'shared', 'check');
  try {
    return await checkRepository(repo, opts);
  } finally {
    await lock.release().catch(() => undefined);
  }
}

export async function forget(repo: Repository, policy: RetentionPolicy, opts: { now?: Date; dryRun?: boolean } = {}): Promise<ForgetDecision[]> {
  const snaps = await repo.listSnapshots();
  const decisions = selectForget(snaps, policy, opts.now ?? new Date());
  if (!opts.dryRun) {
    for (const d of decisions) if (!d.keep) await repo.backend.remove({ type: 'snapshots', name: d.id });
  }
  return decisions;
}

async function withLock<T>(repo: Repository, kind: 'shared' | 'exclusive', op: string, fn: (assertHeld: () => void) => Promise<T>): Promise<T> {
  const lock = await RepoLock.acquire(repo, kind, op);
  try {
    const r = await fn(() => lock.assertHeld());
    lock.assertHeld();
    return r;
  } finally {
    await lock.release().catch(() => undefined);
  }
}

/** Rebuilds the index from the pack headers (exclusive lock: it removes the old index files). */
export function repairIndex(repo: Repository, opts: { onLog?: (l: string) => void } = {}): Promise<RepairIndexResult> {
  return withLock(repo, 'exclusive', 'repair index', (assertHeld) => repairIndexImpl(repo, { ...opts, assertHeld }));
}

/** Verifies packs and marks every damaged blob copy (shared lock: it only adds an index file). */
export function repairPacks(repo: Repository, opts: { only?: string[]; onLog?: (l: string) => void } = {}): Promise<RepairPacksResult> {
  return withLock(repo, 'shared', 'repair packs', () => repairPacksImpl(repo, opts));
}

/** Rewrites snapshots that reference missing or damaged data (shared lock, like a backup). */
export function repairSnapshots(repo: Repository, opts: { forget?: boolean; dryRun?: boolean; onLog?: (l: string) => void } = {}): Promise<RepairSnapshotsResult> {
  return withLock(repo, 'shared', 'repair snapshots', async (assertHeld) => {
    await repo.loadIndex({ verifyPacks: true });
    return repairSnapshotsImpl(repo, { ...opts, assertHeld });
  });
}

export async function prune(repo: Repository, opts: PruneOptions = {}): Promise<PruneResult> {
  const lock = await RepoLock.acquire(repo, 'exclusive', 'prune');
  try {
    const r = await pruneRepository(repo, { ...opts, assertHeld: () => lock.assertHeld() });
    lock.assertHeld();
    return r;
  } finally {
    await lock.release().catch(() => undefined);
  }
}
