// Owns `repair` (restic's repair index|packs|snapshots are the anchor, docs/backup-format.md
// "Damage and repair"):
//   index      rebuild the index from the pack headers (the ground truth), keeping damage marks;
//              then remove the old index files (on append-only storage they stay; the new one
//              covers them).
//   packs      read packs, verify every blob, and mark the copies that fail (an index file of
//              FLAG_DAMAGED entries; additive, so it works on append-only storage): they are never
//              deduplicated onto again, and the next backup stores them again from the source.
//   snapshots  rewrite each snapshot that references missing or damaged data: a lost chunk becomes
//              a run of zeros of the same length (the file keeps its size and every good byte), a
//              lost directory listing an empty directory; the new snapshot records what was lost.
import { isBulwarkError } from '../core/errors.js';
import { filePath } from './backend.js';
import { sha256 } from './crypto.js';
import { BLOB_DATA, FLAG_DAMAGED, type BlobEntry, type IndexPack } from './format.js';
import { damageMarks, entryKey, listPacks, readAllIndexFiles, readPackHeader, writeDamageMarks, writeIndexFile, CorruptFile } from './repoindex.js';
import type { Repository } from './repository.js';
import { prepare, prepareTree } from './sink.js';
import { readSnapshots } from './snapshots.js';
import type { RepairRecord, Tree, TreeNode } from './types.js';

export interface RepairIndexResult {
  packs: number;
  blobs: number;
  indexFilesRemoved: number;
  indexFilesKept: string[];
  /** packs whose header does not open: their listings in readable index files are kept */
  unreadablePacks: string[];
}

export async function repairIndex(repo: Repository, opts: { onLog?: (l: string) => void; assertHeld?: () => void } = {}): Promise<RepairIndexResult> {
  const log = opts.onLog ?? (() => undefined);
  const { files, damaged } = await readAllIndexFiles(repo);
  for (const d of damaged) log(`${d.file}: ${d.message} (replaced)`);
  const marks = damageMarks(files);
  const listed = new Map<string, IndexPack>();
  for (const f of files) for (const p of f.packs) if (!listed.has(p.id)) listed.set(p.id, p);
  const onDisk = await listPacks(repo.backend);
  const out: IndexPack[] = [];
  const res: RepairIndexResult = { packs: 0, blobs: 0, indexFilesRemoved: 0, indexFilesKept: [], unreadablePacks: [] };
  for (const [id, size] of onDisk) {
    let entries: BlobEntry[];
    try {
      entries = await readPackHeader(repo, id, size);
    } catch (err) {
      if (!(err instanceof CorruptFile)) throw err;
      res.unreadablePacks.push(filePath({ type: 'data', name: id }));
      log(`${err.message}: its blobs are kept as the old index listed them`);
      const old = listed.get(id);
      if (!old) continue;
      entries = old.entries;
    }
    out.push({ id, size, entries: entries.map((e) => (marks.has(entryKey(id, e)) ? { ...e, flags: e.flags | FLAG_DAMAGED } : { ...e, flags: e.flags & ~FLAG_DAMAGED })) });
    res.packs++;
    res.blobs += entries.length;
  }
  if (out.length) await writeIndexFile(repo, out);
  for (const name of [...files.map((f) => f.name), ...damaged.map((d) => d.file.slice('index/'.length))]) {
    opts.assertHeld?.();
    try {
      await repo.backend.remove({ type: 'index', name });
      res.indexFilesRemoved++;
    } catch (err) {
      if (!(isBulwarkError(err) && err.code === 'BULWARK_BACKEND_REFUSED')) throw err;
      res.indexFilesKept.push(`index/${name}`);
    }
  }
  if (res.indexFilesKept.length) log(`${res.indexFilesKept.length} old index file(s) could not be removed (append-only storage); the new index covers them`);
  log(`index rebuilt from ${res.packs} pack headers: ${res.blobs} blobs`);
  await repo.loadIndex();
  return res;
}

export interface RepairPacksResult {
  packsRead: number;
  blobsMarked: number;
  packs: { pack: string; blobs: number; reason: string }[];
}

/** Verifies the packs (all, or those whose id starts with one of `only`) and marks every copy that fails. */
export async function repairPacks(repo: Repository, opts: { only?: string[]; onLog?: (l: string) => void } = {}): Promise<RepairPacksResult> {
  const log = opts.onLog ?? (() => undefined);
  const { files } = await readAllIndexFiles(repo);
  const marks = damageMarks(files);
  const onDisk = await listPacks(repo.backend);
  const byPack = new Map<string, { size: number; entries: BlobEntry[] }>();
  for (const f of files) {
    for (const p of f.packs) {
      let k = byPack.get(p.id);
      if (!k) byPack.set(p.id, (k = { size: p.size, entries: [] }));
      for (const e of p.entries) if (!(e.flags & FLAG_DAMAGED) && !k.entries.some((x) => x.offset === e.offset && x.id.equals(e.id))) k.entries.push(e);
    }
  }
  const res: RepairPacksResult = { packsRead: 0, blobsMarked: 0, packs: [] };
  const bad = new Map<string, { size: number; entries: BlobEntry[] }>();
  for (const [id, p] of byPack) {
    if (opts.only && !opts.only.some((o) => id.startsWith(o))) continue;
    if (!onDisk.has(id)) continue; // missing: a backup that verifies packs stores its blobs again
    let raw: Buffer | undefined;
    let reason = 'blob fails authentication or does not match its id';
    try {
      raw = await repo.backend.read({ type: 'data', name: id });
    } catch (err) {
      if (!isBulwarkError(err) || err.code === 'BULWARK_BACKEND_UNREACHABLE' || err.code === 'BULWARK_BACKEND_AUTH') throw err;
      reason = `pack unreadable: ${err.message}`;
    }
    res.packsRead++;
    const failed: BlobEntry[] = [];
    for (const e of p.entries) {
      if (marks.has(entryKey(id, e))) continue;
      if (!raw) {
        failed.push(e);
        continue;
      }
      try {
        const plain = repo.openBlob(raw.subarray(e.offset, e.offset + e.length), e.id, e.flags, filePath({ type: 'data', name: id }));
        if (plain.length !== e.rawLength || !repo.idFor(sha256(plain)).equals(e.id)) throw new Error('mismatch');
      } catch {
        failed.push(e);
      }
    }
    if (failed.length) {
      bad.set(id, { size: p.size, entries: failed });
      res.packs.push({ pack: filePath({ type: 'data', name: id }), blobs: failed.length, reason });
      res.blobsMarked += failed.length;
      log(`${filePath({ type: 'data', name: id })}: ${failed.length} blob(s) marked damaged (${reason})`);
    }
  }
  await writeDamageMarks(repo, bad);
  await repo.loadIndex();
  return res;
}

export interface RewrittenSnapshot {
  original: string;
  id: string | undefined;
  files: { path: string; lost: [number, number][] }[];
  dirs: string[];
}

export interface RepairSnapshotsResult {
  rewritten: RewrittenSnapshot[];
  forgotten: string[];
  /** snapshot files that cannot be read at all (removed with forget) */
  unreadable: string[];
}

/** Rewrites every snapshot that references missing or damaged data (repo.loadIndex({ verifyPacks }) first). */
export async function repairSnapshots(repo: Repository, opts: { forget?: boolean; dryRun?: boolean; onLog?: (l: string) => void; assertHeld?: () => void } = {}): Promise<RepairSnapshotsResult> {
  const log = opts.onLog ?? (() => undefined);
  const { snapshots, damaged } = await readSnapshots(repo);
  const res: RepairSnapshotsResult = { rewritten: [], forgotten: [], unreadable: damaged.map((d) => d.file) };
  const sink = repo.sink();
  const memo = new Map<string, Promise<{ sha: string; files: RepairRecord['files']; dirs: string[] }>>();
  const zeroSha = new Map<number, string>();
  const zeros = async (len: number): Promise<string> => {
    let sha = zeroSha.get(len);
    if (!sha) {
      const b = prepare(BLOB_DATA, Buffer.alloc(len));
      if (!opts.dryRun && !sink.has(b.sha)) await sink.add(b);
      sha = b.sha.toString('hex');
      zeroSha.set(len, sha);
    }
    return sha;
  };
  const has = (hex: string): boolean => repo.index.has(repo.idFor(Buffer.from(hex, 'hex')));
  const rewrite = (treeSha: string, path: string): Promise<{ sha: string; files: RepairRecord['files']; dirs: string[] }> => {
    const key = `${treeSha}:${path}`;
    let p = memo.get(key);
    if (!p) {
      p = (async () => {
        let tree: Tree;
        try {
          tree = await repo.loadTree(treeSha);
        } catch (err) {
          log(`${path || '/'}: directory listing lost (${(err as Error).message}): kept as an empty directory`);
          const b = prepareTree({ nodes: [] });
          if (!opts.dryRun && !sink.has(b.sha)) await sink.add(b);
          return { sha: b.sha.toString('hex'), files: [], dirs: [path || '/'] };
        }
        const files: RepairRecord['files'] = [];
        const dirs: string[] = [];
        let changed = false;
        const nodes: TreeNode[] = [];
        for (const n of tree.nodes) {
          const rel = path ? `${path}/${n.name}` : n.name;
          if (n.type === 'dir' && n.subtree) {
            const sub = await rewrite(n.subtree, rel);
            files.push(...sub.files);
            dirs.push(...sub.dirs);
            if (sub.sha !== n.subtree) changed = true;
            nodes.push(sub.sha === n.subtree ? n : { ...n, subtree: sub.sha });
          } else if (n.type === 'file' && n.content?.length) {
            const content = [...n.content];
            const lost: [number, number][] = [];
            let pos = 0;
            for (let i = 0; i < content.length; i++) {
              const len = n.sizes?.[i] ?? 0;
              if (!has(content[i] as string)) {
                content[i] = await zeros(len);
                const last = lost.at(-1);
                if (last && last[1] === pos) last[1] = pos + len;
                else lost.push([pos, pos + len]);
              }
              pos += len;
            }
            if (lost.length) {
              changed = true;
              files.push({ path: rel, lost });
              nodes.push({ ...n, content });
            } else nodes.push(n);
          } else nodes.push(n);
        }
        if (!changed) return { sha: treeSha, files, dirs };
        const b = prepareTree({ nodes });
        if (!opts.dryRun && !sink.has(b.sha)) await sink.add(b);
        return { sha: b.sha.toString('hex'), files, dirs };
      })();
      memo.set(key, p);
    }
    return p;
  };
  const pending: { orig: (typeof snapshots)[number]; tree: string; files: RepairRecord['files']; dirs: string[] }[] = [];
  for (const s of snapshots) {
    const r = await rewrite(s.tree, '');
    if (r.sha === s.tree) continue;
    pending.push({ orig: s, tree: r.sha, files: r.files, dirs: r.dirs });
  }
  if (!opts.dryRun) await sink.flush();
  for (const p of pending) {
    let id: string | undefined;
    if (!opts.dryRun) {
      opts.assertHeld?.();
      const { id: origId, ...rest } = p.orig;
      const prev = rest.repaired;
      id = await repo.saveSnapshot({
        ...rest,
        tree: p.tree,
        tags: rest.tags.includes('repaired') ? rest.tags : [...rest.tags, 'repaired'],
        repaired: { time: new Date().toISOString(), original: origId, files: [...(prev?.files ?? []), ...p.files], dirs: [...(prev?.dirs ?? []), ...p.dirs] },
      });
      if (opts.forget) {
        await repo.backend.remove({ type: 'snapshots', name: origId });
        res.forgotten.push(origId);
      }
    }
    res.rewritten.push({ original: p.orig.id, id, files: p.files, dirs: p.dirs });
    log(`snapshot ${p.orig.id.slice(0, 8)}: ${p.files.length} file(s) lost data, ${p.dirs.length} directory listing(s) lost${id ? `; saved as ${id.slice(0, 8)}` : ''}`);
  }
  if (opts.forget && !opts.dryRun) {
    for (const d of damaged) {
      opts.assertHeld?.();
      await repo.backend.remove({ type: 'snapshots', name: d.file.slice('snapshots/'.length) });
      res.forgotten.push(d.file.slice('snapshots/'.length));
      log(`${d.file}: unreadable (${d.message}): removed`);
    }
  } else for (const d of damaged) log(`${d.file}: unreadable (${d.message}); --forget removes it`);
  return res;
}
