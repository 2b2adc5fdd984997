// Owns the adapter that gives failover/ (cold standby) the backup engine without failover
// importing backup/: base-backup snapshots of a PostgreSQL data directory into every target of a
// plan (each target its own repository, created when missing, like a plan run), and restoring the
// newest one from the first target that can deliver it. Composition-root glue only.
import { rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { BulwarkConfig } from '../core/config/schema.js';
import { BulwarkError, describeError, isBulwarkError } from '../core/errors.js';
import { createSnapshot, initRepository, openRepository, restore, type Repository, type SnapshotInfo } from '../backup/engine.js';
import { openTarget, targetPassword } from '../backup/plan/targets.js';
import type { BaseBackupStore, BaseBackupStoreFactory } from '../failover/cold.js';

export function planBaseBackups(config: BulwarkConfig, baseDir: string): BaseBackupStoreFactory {
  return (planName) => {
    const plan = config.backups[planName];
    if (!plan) {
      throw new BulwarkError('BULWARK_DB_COLD_CONFIG', `no backup plan named '${planName}' (databases.*.restore_from)`, { hint: 'name a plan under backups:' });
    }
    // opening (or creating) a repository one call at a time: a base backup and a WAL upload must
    // not race to create one. The operations themselves run concurrently (shared repository
    // locks), so a restore during a cold failover never waits for an upload in progress.
    let queue: Promise<unknown> = Promise.resolve();
    const serial = <T>(fn: () => Promise<T>): Promise<T> => {
      const run = queue.then(fn, fn);
      queue = run.catch(() => undefined);
      return run;
    };
    const withRepo = async <T>(t: (typeof plan.targets)[number], create: boolean, fn: (repo: Repository) => Promise<T>): Promise<T> => {
      const backend = await openTarget(planName, t, { baseDir });
      try {
        const password = targetPassword(planName, plan, t, baseDir);
        const repo = await serial(async (): Promise<Repository> => {
          try {
            return await openRepository(backend, password);
          } catch (err) {
            if (!create || !(isBulwarkError(err) && err.code === 'BULWARK_REPO_NOT_FOUND')) throw err;
            try {
              return await initRepository(backend, password);
            } catch (e) {
              // created meanwhile (by a plan run): open it
              if (!(isBulwarkError(e) && e.code === 'BULWARK_REPO_EXISTS')) throw e;
              return await openRepository(backend, password);
            }
          }
        });
        return await fn(repo);
      } finally {
        await backend.close().catch(() => undefined);
      }
    };
    const newest = (snaps: SnapshotInfo[], tags: string[]): SnapshotInfo | undefined =>
      snaps.filter((s) => tags.every((tag) => s.tags.includes(tag))).sort((a, b) => Date.parse(a.time) - Date.parse(b.time)).at(-1);
    const store: BaseBackupStore = {
      async save(dir, tags, opts = {}) {
        const out: Awaited<ReturnType<BaseBackupStore['save']>> = { targets: [], files: 0, bytes: 0 };
        for (const t of plan.targets) {
          try {
            const r = await withRepo(t, true, (repo) => createSnapshot([repo], [dir], { tags, ...(opts.excludes ? { excludes: opts.excludes } : {}) }));
            out.files = r.summary.files;
            out.bytes = r.summary.bytesRead;
            if (r.errors.length > 0) throw new Error(`unreadable files in the base backup: ${r.errors.slice(0, 3).map((e) => `${e.path}: ${e.message}`).join('; ')}`);
            out.targets.push({ target: t.name, ok: true, snapshot: r.snapshots[0]?.id });
          } catch (err) {
            out.targets.push({ target: t.name, ok: false, error: describeError(err) });
          }
        }
        return out;
      },
      async latest(tags) {
        let best: { target: string; snap: SnapshotInfo } | undefined;
        for (const t of plan.targets) {
          try {
            const s = await withRepo(t, false, async (repo) => newest(await repo.listSnapshots(), tags));
            if (s && (!best || Date.parse(s.time) > Date.parse(best.snap.time))) best = { target: t.name, snap: s };
          } catch {
            // an unreachable target has none to offer
          }
        }
        return best ? { target: best.target, snapshot: best.snap.id, time: best.snap.time } : undefined;
      },
      async restoreLatest(tags, into, opts = {}) {
        const failures: string[] = [];
        for (const t of plan.targets) {
          try {
            return await withRepo(t, false, async (repo) => {
              const snap = newest(await repo.listSnapshots(), tags);
              if (!snap) throw new Error('no base backup snapshot');
              const started = Date.now();
              const r = await restore(repo, snap.id, { target: into });
              if (r.errors.length > 0 && !opts.partial) throw new Error(`restore errors: ${r.errors.slice(0, 3).map((e) => `${e.path}: ${e.message}`).join('; ')}`);
              for (const e of r.errors) rmSync(e.path, { force: true });
              return { target: t.name, snapshot: snap.id, time: snap.time, dir: join(into, basename(snap.paths[0] ?? 'x')), restoreMs: Date.now() - started, failed: r.errors.map((e) => e.path) };
            });
          } catch (err) {
            failures.push(`${t.name}: ${describeError(err)}`);
          }
        }
        throw new BulwarkError('BULWARK_DB_COLD_RESTORE', `no target of plan '${planName}' could restore a base backup (tags ${tags.join(', ')})`, {
          details: failures,
          hint: 'take a base backup (`bulwark db base-backup NAME`) and check the plan\'s targets',
        });
      },
    };
    return store;
  };
}
