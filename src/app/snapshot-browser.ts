// Owns browsing backups from the API (the dashboard's Backrest-like snapshot browser): the
// snapshots of a plan target, the entries of a directory in one of them, and one file restored
// out of it as a download. Reads through the backup engine's public face and the plan's own
// target settings (passwords, credentials); never writes to a repository. The file download is a
// POST: it needs the admin token and passes the API's cross-origin checks.
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Clock } from '../core/clock.js';
import type { BulwarkConfig, BackupPlanConfig, BackupTargetConfig } from '../core/config/schema.js';
import { BulwarkError } from '../core/errors.js';
import type { Route } from '../core/subsystem.js';
import { openRepository, restore, type Repository, type TreeNode } from '../backup/engine.js';
import { openTarget, targetPassword } from '../backup/plan/targets.js';

export interface BrowserDeps {
  config: () => { config: BulwarkConfig; baseDir: string };
  clock: Clock;
}

function target(config: BulwarkConfig, planName: string, targetName: string): { plan: BackupPlanConfig; t: BackupTargetConfig } {
  const plan = config.backups[planName];
  if (!plan) throw new BulwarkError('BULWARK_PLAN_UNKNOWN', `no backup plan named '${planName}'`, { httpStatus: 404, hint: `configured: ${Object.keys(config.backups).join(', ') || '(none)'}` });
  const t = plan.targets.find((x) => x.name === targetName);
  if (!t) throw new BulwarkError('BULWARK_PLAN_UNKNOWN', `plan '${planName}' has no target '${targetName}'`, { httpStatus: 404, hint: `targets: ${plan.targets.map((x) => x.name).join(', ')}` });
  return { plan, t };
}

/** A snapshot-relative path ("docs/sub/file"): no empty, "." or ".." parts. */
export function relPath(p: unknown): string[] {
  if (p === undefined || p === null || p === '' || p === '/') return [];
  if (typeof p !== 'string' || p.length > 4096) throw new BulwarkError('BULWARK_API_BAD_REQUEST', 'path: expected a path inside the snapshot like docs/report.txt', { httpStatus: 400 });
  const parts = p.split('/').filter(Boolean);
  if (parts.some((x) => x === '.' || x === '..' || x.includes('\0'))) throw new BulwarkError('BULWARK_API_BAD_REQUEST', `path: '${p}' has . or .. in it`, { httpStatus: 400 });
  return parts;
}

async function withRepo<T>(d: BrowserDeps, planName: string, targetName: string, fn: (repo: Repository) => Promise<T>): Promise<T> {
  const { config, baseDir } = d.config();
  const { plan, t } = target(config, planName, targetName);
  const password = targetPassword(planName, plan, t, baseDir);
  const backend = await openTarget(planName, t, { baseDir, clock: d.clock, retry: { attempts: 2, baseDelayMs: 200 } });
  try {
    const repo = await openRepository(backend, password);
    await repo.loadIndex();
    return await fn(repo);
  } finally {
    await backend.close().catch(() => undefined);
  }
}

/** The node at parts under a snapshot's root tree, or a 404. */
async function walk(repo: Repository, rootTree: string, parts: string[]): Promise<{ node: TreeNode | undefined; tree: string | undefined }> {
  let tree: string | undefined = rootTree;
  let node: TreeNode | undefined;
  for (const name of parts) {
    if (tree === undefined) throw new BulwarkError('BULWARK_API_BAD_REQUEST', `not a directory: ${name}`, { httpStatus: 404 });
    node = (await repo.loadTree(tree)).nodes.find((n) => n.name === name);
    if (!node) throw new BulwarkError('BULWARK_API_BAD_REQUEST', `no '${parts.join('/')}' in the snapshot`, { httpStatus: 404 });
    tree = node.type === 'dir' ? node.subtree : undefined;
  }
  return { node, tree };
}

function mtimeIso(ns: string): string | null {
  const ms = Number(BigInt(ns) / 1_000_000n);
  return Number.isFinite(ms) && ms >= 0 && ms < 253402300800000 ? new Date(ms).toISOString() : null;
}

export function snapshotRoutes(d: BrowserDeps): Route[] {
  const base = '/v1/backups/:plan/targets/:target/snapshots';
  return [
    {
      method: 'GET',
      path: base,
      handle: ({ params }) =>
        withRepo(d, params['plan'] ?? '', params['target'] ?? '', async (repo) => ({
          plan: params['plan'],
          target: params['target'],
          snapshots: (await repo.listSnapshots())
            .reverse()
            .map((s) => ({ id: s.id, short_id: s.id.slice(0, 8), time: s.time, host: s.host, paths: s.paths, tags: s.tags, files: s.summary.files, bytes: s.summary.bytes, errors: s.summary.errors })),
        })),
    },
    {
      method: 'GET',
      path: `${base}/:id/tree`,
      handle: ({ params, url }) =>
        withRepo(d, params['plan'] ?? '', params['target'] ?? '', async (repo) => {
          const snap = await repo.findSnapshot(params['id'] ?? '');
          const parts = relPath(url.searchParams.get('path'));
          const { tree } = await walk(repo, snap.tree, parts);
          if (tree === undefined) throw new BulwarkError('BULWARK_API_BAD_REQUEST', `'${parts.join('/')}' is a file, not a directory`, { httpStatus: 400, hint: 'download it with POST …/restore-file' });
          const nodes = (await repo.loadTree(tree)).nodes;
          return {
            snapshot: snap.id,
            path: parts.join('/'),
            entries: nodes
              .map((n) => ({ name: n.name, path: [...parts, n.name].join('/'), type: n.type, size: n.type === 'file' ? n.size : null, mtime: mtimeIso(n.mtime) }))
              .sort((a, b) => (a.type === 'dir') === (b.type === 'dir') ? a.name.localeCompare(b.name) : a.type === 'dir' ? -1 : 1),
          };
        }),
    },
    {
      method: 'POST',
      path: `${base}/:id/restore-file`,
      handle: async ({ params, body, res }) => {
        const b = (await body()) as { path?: unknown } | undefined;
        const parts = relPath(b?.path);
        if (parts.length === 0) throw new BulwarkError('BULWARK_API_BAD_REQUEST', 'restore-file needs {"path": "FILE inside the snapshot"}', { httpStatus: 400 });
        const scratch = await mkdtemp(join(tmpdir(), 'bulwark-restore-file-'));
        try {
          const file = await withRepo(d, params['plan'] ?? '', params['target'] ?? '', async (repo) => {
            const snap = await repo.findSnapshot(params['id'] ?? '');
            const { node } = await walk(repo, snap.tree, parts);
            if (node?.type !== 'file') throw new BulwarkError('BULWARK_API_BAD_REQUEST', `'${parts.join('/')}' is not a regular file`, { httpStatus: 400 });
            await restore(repo, snap.id, { target: scratch, include: [parts.join('/')], verify: true });
            return join(scratch, ...parts);
          });
          const st = await stat(file);
          const name = (parts.at(-1) as string).replace(/[^\w.-]/g, '_');
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(st.size), 'content-disposition': `attachment; filename="${name}"`, 'cache-control': 'no-store' });
          await new Promise<void>((resolve, reject) => {
            const rs = createReadStream(file);
            rs.on('error', reject);
            res.on('close', () => resolve());
            rs.pipe(res);
          });
          return undefined;
        } finally {
          await rm(scratch, { recursive: true, force: true });
        }
      },
    },
  ];
}
