// Owns running a 3-2-1 plan once: open (or create) every target's repository, snapshot the paths
// ONCE (files read, chunked and hashed once; every blob handed to one sink per target, each
// encrypting with its own keys), then commit a snapshot in each target and read it back. A target
// that fails (unreachable, full, refused) is isolated: its sink turns into a no-op and the others
// go on. The next run gives every target the new snapshot, so it completes what failed.
// Retention is applied per target afterwards, never deleting from an immutable target before its
// lock has expired.
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { type Clock, systemClock } from '../../core/clock.js';
import type { BackupPlanConfig, BackupTargetConfig } from '../../core/config/schema.js';
import { BulwarkError, describeError, isBulwarkError } from '../../core/errors.js';
import type { Backend } from '../backend.js';
import { archive, type ArchiveProgress, initRepository, openRepository, prune, type Repository, type BlobSink, type PreparedBlob, type SnapshotInfo, type SnapshotSummary } from '../engine.js';
import { selectForget, type RetentionPolicy } from '../forget.js';
import { RepoLock } from '../lock.js';
import { listPacks } from '../repoindex.js';
import { openTarget, redactUrl, targetPassword, type OpenTargetOptions } from './targets.js';

export interface TargetError {
  code: string;
  message: string;
  hint?: string | undefined;
}

export interface TargetRunResult {
  target: string;
  location: string;
  ok: boolean;
  /** Snapshot id written to this target. */
  snapshot?: string | undefined;
  /** The repository was created by this run. */
  initialized: boolean;
  /** Bytes this target stored (after dedup, compression, encryption). */
  bytesStored: number;
  durationMs: number;
  error?: TargetError | undefined;
  retention?: { removed: string[]; keptLocked: string[]; pruned: boolean } | undefined;
}

export interface PlanRunResult {
  plan: string;
  ok: boolean;
  startedAt: number;
  finishedAt: number;
  /** Summary of the one snapshot pass (files read once for all targets). */
  summary: SnapshotSummary | undefined;
  /** Files that could not be read (the snapshot is still written, like `backup create`). */
  fileErrors: Array<{ path: string; message: string }>;
  targets: TargetRunResult[];
}

export interface RunPlanOptions extends OpenTargetOptions {
  host?: string;
  onProgress?: (p: ArchiveProgress) => void;
  onTarget?: (r: TargetRunResult) => void;
  /** Called once every target is open and locked, before files are read (progress display, tests). */
  onOpened?: (targets: ReadonlyArray<{ target: string; ok: boolean }>) => Promise<void> | void;
  /** Apply the plan's keep policy after the run (default true when keep is set). */
  retention?: boolean;
  workers?: number;
}

export function toTargetError(err: unknown): TargetError {
  if (isBulwarkError(err)) return { code: err.code, message: err.message, hint: err.hint };
  return { code: 'BULWARK_BACKEND_IO', message: describeError(err) };
}

/** A sink that turns a target's failure into a recorded error instead of failing the whole pass. */
class IsolatingSink implements BlobSink {
  readonly label: string;
  readonly #inner: BlobSink;
  readonly #onFail: (err: unknown) => void;
  failed = false;

  constructor(inner: BlobSink, onFail: (err: unknown) => void) {
    this.#inner = inner;
    this.label = inner.label;
    this.#onFail = onFail;
  }
  get stats(): { blobsAdded: number; bytesStored: number } {
    return this.#inner.stats;
  }
  has(sha: Buffer): boolean {
    return this.failed || this.#inner.has(sha);
  }
  async add(blob: PreparedBlob): Promise<void> {
    if (this.failed) return;
    try {
      await this.#inner.add(blob);
    } catch (err) {
      this.#fail(err);
    }
  }
  async flush(): Promise<void> {
    if (this.failed) return;
    try {
      await this.#inner.flush();
    } catch (err) {
      this.#fail(err);
    }
  }
  #fail(err: unknown): void {
    this.failed = true;
    this.#onFail(err);
  }
}

interface Live {
  cfg: BackupTargetConfig;
  result: TargetRunResult;
  started: number;
  backend?: Backend;
  repo?: Repository;
  lock?: RepoLock | undefined;
  sink?: IsolatingSink;
  parent?: SnapshotInfo | undefined;
}

function samePaths(a: readonly string[], b: readonly string[]): boolean {
  const x = [...a].sort();
  const y = [...b].sort();
  return x.length === y.length && x.every((p, i) => p === y[i]);
}

export function retentionPolicy(keep: BackupPlanConfig['keep']): RetentionPolicy | undefined {
  if (!keep) return undefined;
  const p: RetentionPolicy = {};
  if (keep.last !== undefined) p.last = keep.last;
  if (keep.hourly !== undefined) p.hourly = keep.hourly;
  if (keep.daily !== undefined) p.daily = keep.daily;
  if (keep.weekly !== undefined) p.weekly = keep.weekly;
  if (keep.monthly !== undefined) p.monthly = keep.monthly;
  if (keep.yearly !== undefined) p.yearly = keep.yearly;
  if (keep.within !== undefined) p.withinMs = keep.within;
  return p;
}

/** Pure: which forget decisions may be carried out on a target (immutable ones keep locked snapshots). */
export function removableSnapshots(decisions: ReadonlyArray<{ id: string; time: string; keep: boolean }>, immutableMs: number | false, now: number): { remove: string[]; keptLocked: string[] } {
  const remove: string[] = [];
  const keptLocked: string[] = [];
  for (const d of decisions) {
    if (d.keep) continue;
    if (immutableMs !== false && Date.parse(d.time) + immutableMs > now) keptLocked.push(d.id);
    else remove.push(d.id);
  }
  return { remove, keptLocked };
}

export async function runPlan(name: string, plan: BackupPlanConfig, opts: RunPlanOptions): Promise<PlanRunResult> {
  const clock: Clock = opts.clock ?? systemClock;
  const startedAt = clock.now();
  const host = opts.host ?? hostname();
  const paths = plan.paths.map((p) => resolve(opts.baseDir, p));
  const live: Live[] = plan.targets.map((cfg) => ({
    cfg,
    started: clock.now(),
    result: { target: cfg.name, location: redactUrl(cfg.repo), ok: false, initialized: false, bytesStored: 0, durationMs: 0 },
  }));
  const fail = (l: Live, err: unknown): void => {
    if (l.result.error) return;
    l.result.ok = false;
    l.result.error = toTargetError(err);
  };

  // 1. Open every target independently.
  await Promise.all(
    live.map(async (l) => {
      try {
        const password = targetPassword(name, plan, l.cfg, opts.baseDir);
        l.backend = await openTarget(name, l.cfg, opts);
        l.result.location = l.backend.location;
        try {
          l.repo = await openRepository(l.backend, password);
        } catch (err) {
          if (!(isBulwarkError(err) && err.code === 'BULWARK_REPO_NOT_FOUND')) throw err;
          l.repo = await initRepository(l.backend, password);
          l.result.initialized = true;
        }
        l.lock = await RepoLock.acquire(l.repo, 'shared', `plan ${name}`);
        // verifyPacks: blobs of packs gone from the storage (or marked damaged) are stored again.
        await l.repo.loadIndex({ verifyPacks: true });
        const snaps = await l.repo.listSnapshots();
        l.parent = snaps.filter((s) => s.host === host && samePaths(s.paths, paths)).at(-1);
      } catch (err) {
        fail(l, err);
      }
    }),
  );

  await opts.onOpened?.(live.map((l) => ({ target: l.cfg.name, ok: !l.result.error })));
  const healthy = live.filter((l) => !l.result.error && l.repo);
  let summary: SnapshotSummary | undefined;
  let fileErrors: Array<{ path: string; message: string }> = [];
  try {
    if (healthy.length > 0) {
      // 2. One pass over the files, fanned out to every healthy target.
      for (const l of healthy) l.sink = new IsolatingSink((l.repo as Repository).sink(), (err) => fail(l, err));
      const first = healthy.find((l) => l.parent) ?? healthy[0];
      const firstRepo = first?.repo as Repository;
      const res = await archive({
        paths,
        sinks: healthy.map((l) => l.sink as IsolatingSink),
        chunker: firstRepo.config.chunker,
        excludes: plan.exclude,
        ...(first?.parent ? { parent: { tree: first.parent.tree, load: (sha: string) => firstRepo.loadTree(sha) } } : {}),
        ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        ...(opts.workers ? { workers: opts.workers } : {}),
      });
      summary = res.summary;
      fileErrors = res.errors;
      const time = new Date(clock.now()).toISOString();
      // 3. Commit a snapshot per target, and read it back (decrypt it, load its root tree).
      await Promise.all(
        healthy.map(async (l) => {
          if (l.result.error) return;
          try {
            const repo = l.repo as Repository;
            (l.lock as RepoLock).assertHeld();
            const id = await repo.saveSnapshot({ version: 1, time, host, user: process.env['USER'] ?? 'unknown', paths, tags: plan.tags, tree: res.tree, parent: l.parent?.id ?? null, summary: res.summary });
            const back = await repo.findSnapshot(id);
            await repo.loadTree(back.tree);
            l.result.snapshot = id;
            // Never "ok" while the new snapshot references data known damaged or missing.
            const unavailable = await unavailableBlobs(repo, back.tree);
            if (unavailable > 0) {
              throw new BulwarkError('BULWARK_REPO_CORRUPT', `snapshot ${id.slice(0, 8)} references ${unavailable} blob(s) that are missing or known damaged`, {
                hint: 'run `bulwark backup check --read-data` on this target, then `bulwark backup repair snapshots` (docs/operations.md)',
              });
            }
            l.result.ok = true;
            l.result.bytesStored = l.sink?.stats.bytesStored ?? 0;
          } catch (err) {
            fail(l, err);
          }
        }),
      );
    }
  } catch (err) {
    // A failure of the pass itself (a path that does not exist) fails every target the same way.
    for (const l of healthy) fail(l, err);
    if (isBulwarkError(err) && err.code === 'BULWARK_BACKUP_PATH') {
      await release(live);
      throw err;
    }
  }

  // 4. Retention per target, after a successful run.
  const policy = opts.retention === false ? undefined : retentionPolicy(plan.keep);
  for (const l of live) {
    if (l.result.ok && policy && l.repo) {
      try {
        l.result.retention = await applyRetention(l.repo, l.lock, policy, l.cfg.immutable, clock.now());
      } catch (err) {
        l.result.retention = { removed: [], keptLocked: [], pruned: false };
        l.result.error = { ...toTargetError(err), message: `retention failed (the snapshot itself is safe): ${toTargetError(err).message}` };
      }
    }
  }
  await release(live);
  for (const l of live) {
    l.result.durationMs = clock.now() - l.started;
    opts.onTarget?.(l.result);
  }
  const targets = live.map((l) => l.result);
  return { plan: name, ok: targets.every((t) => t.ok), startedAt, finishedAt: clock.now(), summary, fileErrors, targets };
}

/**
 * Blobs a snapshot's tree references that have no usable copy: not in the index (missing, or
 * marked damaged), or in a pack that is not on the storage now (it may have gone during the run).
 */
async function unavailableBlobs(repo: Repository, root: string): Promise<number> {
  const onDisk = await listPacks(repo.backend);
  const seen = new Set<string>();
  let missing = 0;
  const walk = async (sha: string): Promise<void> => {
    if (seen.has(sha)) return;
    seen.add(sha);
    const loc = repo.locate(Buffer.from(sha, 'hex'));
    if (!loc || !onDisk.has(loc.pack)) {
      missing++;
      return;
    }
    const tree = await repo.loadTree(sha);
    for (const n of tree.nodes) {
      if (n.type === 'dir' && n.subtree) await walk(n.subtree);
      else
        for (const c of n.content ?? []) {
          const at = repo.locate(Buffer.from(c, 'hex'));
          if (!at || !onDisk.has(at.pack)) missing++;
        }
    }
  };
  await walk(root);
  return missing;
}

async function release(live: Live[]): Promise<void> {
  for (const l of live) {
    await l.lock?.release().catch(() => undefined);
    l.lock = undefined;
    await l.backend?.close().catch(() => undefined);
  }
}

/** Forgets by the keep policy (skipping snapshots still under the immutability lock), then prunes mutable targets. */
async function applyRetention(repo: Repository, lock: RepoLock | undefined, policy: RetentionPolicy, immutable: number | false, now: number): Promise<{ removed: string[]; keptLocked: string[]; pruned: boolean }> {
  const snaps = await repo.listSnapshots();
  const decisions = selectForget(snaps, policy, new Date(now));
  const { remove, keptLocked } = removableSnapshots(decisions, immutable, now);
  lock?.assertHeld();
  for (const id of remove) await repo.backend.remove({ type: 'snapshots', name: id });
  let pruned = false;
  if (remove.length > 0 && immutable === false) {
    // prune takes the exclusive lock: drop our shared one first
    await lock?.release();
    await prune(repo);
    pruned = true;
  }
  return { removed: remove, keptLocked, pruned };
}

/** A failed plan run as an error (exit 1) naming each failed target. */
export function planRunError(r: PlanRunResult): BulwarkError {
  const failed = r.targets.filter((t) => !t.ok);
  return new BulwarkError('BULWARK_PLAN_TARGET_FAILED', `plan '${r.plan}': ${failed.length} of ${r.targets.length} target(s) failed; the others hold the new snapshot`, {
    details: failed.map((t) => `${t.target} (${t.location}): ${t.error?.code ?? ''} ${t.error?.message ?? ''}`.trim()),
    hint: 'fix the cause and run the plan again: the next run lands the snapshot in every target',
  });
}
