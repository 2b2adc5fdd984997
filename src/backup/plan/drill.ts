// Owns restore drills (RTO): restore a target's latest snapshot, or a deterministic sample of its
// files, into a scratch directory; the restore re-reads every written byte and compares it with
// the snapshot's chunk hashes; the time and rate are the measured RTO. The scratch copy is removed.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { restore, type Repository, type SnapshotInfo } from '../engine.js';

export interface DrillResult {
  ok: boolean;
  snapshot: string;
  snapshotTime: string;
  files: number;
  verifiedFiles: number;
  bytes: number;
  durationMs: number;
  bytesPerSec: number;
  sampled: boolean;
  errors: Array<{ path: string; message: string }>;
}

/** Pure: is this file in a drill sample of `share`? Deterministic per snapshot, so reruns agree. */
export function inSample(snapshotId: string, path: string, share: number): boolean {
  if (share >= 1) return true;
  const h = createHash('sha256').update(snapshotId).update('\0').update(path).digest();
  return h.readUInt32BE(0) / 2 ** 32 < share;
}

async function filePaths(repo: Repository, snap: SnapshotInfo): Promise<string[]> {
  const out: string[] = [];
  const walk = async (tree: string, prefix: string): Promise<void> => {
    for (const n of (await repo.loadTree(tree)).nodes) {
      const p = prefix ? `${prefix}/${n.name}` : n.name;
      if (n.type === 'dir' && n.subtree) await walk(n.subtree, p);
      else if (n.type === 'file') out.push(p);
    }
  };
  await walk(snap.tree, '');
  return out;
}

export async function drillRepository(repo: Repository, opts: { clock: Clock; sample?: number | undefined; scratchParent?: string }): Promise<DrillResult> {
  await repo.loadIndex();
  const snap = await repo.findSnapshot('latest');
  let include: string[] | undefined;
  const share = opts.sample ?? 1;
  if (share < 1) {
    const all = await filePaths(repo, snap);
    include = all.filter((p) => inSample(snap.id, p, share));
    if (include.length === 0 && all.length > 0) include = [all.sort()[0] as string];
  }
  const dir = mkdtempSync(join(opts.scratchParent ?? tmpdir(), 'bulwark-drill-'));
  const started = opts.clock.now();
  try {
    const r = await restore(repo, snap.id, { target: dir, verify: true, ...(include ? { include } : {}) });
    const durationMs = Math.max(1, opts.clock.now() - started);
    return {
      ok: r.errors.length === 0 && r.verified === r.files,
      snapshot: snap.id,
      snapshotTime: snap.time,
      files: r.files,
      verifiedFiles: r.verified,
      bytes: r.bytes,
      durationMs,
      bytesPerSec: (r.bytes * 1000) / durationMs,
      sampled: include !== undefined,
      errors: r.errors,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
