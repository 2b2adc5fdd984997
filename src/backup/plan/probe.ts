// Owns probing what each target of a plan holds right now, from the repositories themselves
// (for `bulwark audit --probe`: an audit from a machine without the plan's history): the newest
// snapshot of the plan's paths, read back (decrypted, root tree loaded) to count as verified.
import type { BackupPlanConfig } from '../../core/config/schema.js';
import type { Clock } from '../../core/clock.js';
import { resolve } from 'node:path';
import { openRepository } from '../engine.js';
import type { Backend } from '../backend.js';
import { toTargetError, type TargetError } from './run.js';
import { openTarget, targetPassword } from './targets.js';

export interface TargetProbe {
  target: string;
  /** Time of the newest snapshot of the plan's paths that reads back, ms since epoch. */
  newest: number | undefined;
  snapshots: number;
  error?: TargetError | undefined;
}

export async function probePlan(name: string, plan: BackupPlanConfig, opts: { baseDir: string; clock: Clock }): Promise<TargetProbe[]> {
  const paths = plan.paths.map((p) => resolve(opts.baseDir, p)).sort();
  return Promise.all(
    plan.targets.map(async (t): Promise<TargetProbe> => {
      let backend: Backend | undefined;
      try {
        const password = targetPassword(name, plan, t, opts.baseDir);
        backend = await openTarget(name, t, { ...opts, retry: { attempts: 2, baseDelayMs: 200 } });
        const repo = await openRepository(backend, password);
        const snaps = (await repo.listSnapshots()).filter((s) => [...s.paths].sort().join('\0') === paths.join('\0'));
        const newest = snaps.at(-1);
        if (newest) {
          await repo.loadIndex();
          await repo.loadTree(newest.tree);
        }
        return { target: t.name, newest: newest ? Date.parse(newest.time) : undefined, snapshots: snaps.length };
      } catch (err) {
        return { target: t.name, newest: undefined, snapshots: 0, error: toTargetError(err) };
      } finally {
        await backend?.close().catch(() => undefined);
      }
    }),
  );
}
