// Owns `prune` (under an exclusive lock): find the blobs every snapshot still needs, copy the live
// blobs of mostly-unused packs into new packs, write one new index covering every kept blob, delete
// the old index files, then delete the packs nothing references (including unindexed packs left by
// crashed backups, once their headers show no snapshot needs them). Each step leaves every live
// blob indexed in an existing pack. Damage is never a reason to delete: a pack whose header does
// not open is kept, and so is the last (damaged) copy of a live blob.
import { createHash } from 'node:crypto';
import { BulwarkError } from '../core/errors.js';
import { filePath } from './backend.js';
import { aad } from './crypto.js';
import { encodeHeader, encodeIndex, FLAG_DAMAGED, type BlobEntry, type IndexPack } from './format.js';
import { buildIndex, damageMarks, entryKey, listPacks, readAllIndexFiles, scanUnindexed } from './repoindex.js';
import { readSnapshots } from './snapshots.js';
import type { Repository } from './repository.js';
import type { TreeNode } from './types.js';

export interface PruneOptions {
  dryRun?: boolean;
  /** repack a pack when the unused share of its bytes is above this (default 0.5) */
  repackAbove?: number;
  onLog?: (line: string) => void;
  /** throws when the exclusive lock was lost: checked before every deletion */
  assertHeld?: () => void;
}

export interface PruneResult {
  packsDeleted: number;
  packsRepacked: number;
  packsWritten: number;
  bytesFreed: number;
  blobsKept: number;
  blobsRemoved: number;
  indexFilesReplaced: number;
}

export async function pruneRepository(repo: Repository, opts: PruneOptions = {}): Promise<PruneResult> {
  const log = opts.onLog ?? (() => undefined);
  const res: PruneResult = { packsDeleted: 0, packsRepacked: 0, packsWritten: 0, bytesFreed: 0, blobsKept: 0, blobsRemoved: 0, indexFilesReplaced: 0 };
  const { files, damaged: damagedIndex } = await readAllIndexFiles(repo);
  for (const d of damagedIndex) log(`warning: ${d.file}: ${d.message} (its packs are read from their headers)`);
  const oldIndexFiles = [...files.map((f) => f.name), ...damagedIndex.map((d) => d.file.slice('index/'.length))];
  const onDisk = await listPacks(repo.backend);
  // Packs no readable index lists: an interrupted backup's, or those of a lost or damaged index
  // file. Their headers say what they hold; one whose header does not open is never deleted.
  const scan = await scanUnindexed(repo, files, onDisk);
  const unreadable = new Set(scan.damaged.map((d) => d.file.split('/').at(-1) as string));
  for (const d of scan.damaged) log(`warning: ${d.file}: ${d.message}; kept (prune never deletes a pack it cannot read)`);
  const marks = damageMarks(files);
  repo.index = buildIndex(files, { fromHeaders: scan.packs }).index;
  // Every pack's entries. A pack may be listed by several index files with different blobs (a
  // prune interrupted after writing its new index lists only the live ones, the old index all of
  // them): take the union, or a blob whose only listing is in the second file is never counted as
  // used and is dropped.
  const packs = new Map<string, { size: number; entries: BlobEntry[] }>();
  const seenEntries = new Set<string>();
  for (const p of [...files.flatMap((f) => f.packs), ...scan.packs]) {
    let known = packs.get(p.id);
    if (!known) packs.set(p.id, (known = { size: p.size, entries: [] }));
    for (const e of p.entries) {
      const k = entryKey(p.id, e);
      if (seenEntries.has(k)) continue;
      seenEntries.add(k);
      known.entries.push({ ...e, flags: e.flags & ~FLAG_DAMAGED });
    }
  }

  // Live blob ids. A snapshot or tree that cannot be read stops prune: it cannot know what that
  // snapshot references, and deleting what it cannot see is how data is lost.
  const live = new Set<string>();
  const seenTrees = new Set<string>();
  const { snapshots: snaps, damaged: damagedSnaps } = await readSnapshots(repo);
  if (damagedSnaps.length) {
    throw new BulwarkError('BULWARK_REPO_CORRUPT', `prune stopped before deleting anything: ${damagedSnaps.map((d) => d.message).join('; ')}`, {
      hint: 'restore the snapshot file from another copy, or drop it with `bulwark backup repair snapshots --forget` (docs/operations.md)',
    });
  }
  const walk = async (treeSha: string, snap: string): Promise<void> => {
    if (seenTrees.has(treeSha)) return;
    seenTrees.add(treeSha);
    live.add(repo.idFor(Buffer.from(treeSha, 'hex')).toString('hex'));
    let tree;
    try {
      tree = await repo.loadTree(treeSha);
    } catch (err) {
      throw new BulwarkError('BULWARK_REPO_CORRUPT', `prune stopped before deleting anything: snapshot ${snap.slice(0, 8)} has a directory listing that cannot be read: ${(err as Error).message}`, {
        hint: 'run `bulwark backup repair snapshots` (it rewrites the snapshot without what is lost), then prune',
        cause: err,
      });
    }
    for (const n of tree.nodes as TreeNode[]) {
      if (n.type === 'dir' && n.subtree) await walk(n.subtree, snap);
      else for (const c of n.content ?? []) live.add(repo.idFor(Buffer.from(c, 'hex')).toString('hex'));
    }
  };
  for (const s of snaps) await walk(s.tree, s.id);

  // Decide per pack. A live blob is kept at one location: the first good copy in a pack that
  // exists (a blob stored twice must not be kept only in a pack that has gone missing while the
  // good copy is deleted); when only copies known damaged remain, one of them is kept (with its
  // damage mark), so prune never deletes a pack holding a blob a snapshot references.
  const keepAt = new Map<string, string>();
  for (const pass of [false, true]) {
    for (const [id, p] of packs) {
      if (!onDisk.has(id)) continue;
      for (const e of p.entries) {
        const hex = e.id.toString('hex');
        if (live.has(hex) && !keepAt.has(hex) && marks.has(entryKey(id, e)) === pass) keepAt.set(hex, entryKey(id, e));
      }
    }
  }
  const keepPacks: IndexPack[] = [];
  const repack: { id: string; blobs: BlobEntry[] }[] = [];
  const drop: string[] = [];
  for (const [id, p] of packs) {
    const used: BlobEntry[] = [];
    let usedBytes = 0;
    let damagedKept = false;
    for (const e of p.entries) {
      const k = entryKey(id, e);
      if (keepAt.get(e.id.toString('hex')) === k) {
        const bad = marks.has(k);
        damagedKept ||= bad;
        used.push(bad ? { ...e, flags: e.flags | FLAG_DAMAGED } : e);
        usedBytes += e.length;
      } else res.blobsRemoved++;
    }
    res.blobsKept += used.length;
    if (used.length === 0) drop.push(id);
    else if (!damagedKept && 1 - usedBytes / p.size > (opts.repackAbove ?? 0.5)) repack.push({ id, blobs: used });
    else keepPacks.push({ id, size: p.size, entries: used });
  }
  const orphans: string[] = [];
  for (const [name, size] of onDisk) {
    if (packs.has(name) || unreadable.has(name)) continue;
    orphans.push(name);
    res.bytesFreed += size;
  }
  for (const id of drop) res.bytesFreed += onDisk.get(id) ?? 0;
  log(`${snaps.length} snapshots, ${live.size} live blobs; ${drop.length} unused packs, ${repack.length} to repack, ${orphans.length} unindexed packs`);
  if (opts.dryRun) {
    res.packsDeleted = drop.length + orphans.length + repack.length;
    res.packsRepacked = repack.length;
    return res;
  }

  // 1. Repack: copy the sealed live blobs as they are into new packs.
  const newPacks: IndexPack[] = [];
  let bufs: Buffer[] = [];
  let entries: BlobEntry[] = [];
  let size = 0;
  const finish = async (): Promise<void> => {
    if (!entries.length) return;
    const header = repo.seal(encodeHeader(entries), aad('pack-header'));
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32LE(header.length);
    const data = Buffer.concat([...bufs, header, len]);
    const id = createHash('sha256').update(data).digest('hex');
    await repo.backend.write({ type: 'data', name: id }, data);
    newPacks.push({ id, size: data.length, entries });
    res.packsWritten++;
    bufs = [];
    entries = [];
    size = 0;
  };
  for (const r of repack) {
    const raw = await repo.backend.read({ type: 'data', name: r.id });
    for (const e of r.blobs) {
      const sealed = raw.subarray(e.offset, e.offset + e.length);
      repo.openBlob(sealed, e.id, e.flags, filePath({ type: 'data', name: r.id })); // never copy damage silently
      entries.push({ ...e, offset: size });
      bufs.push(Buffer.from(sealed));
      size += e.length;
      if (size >= repo.config.packSize) await finish();
    }
    res.packsRepacked++;
    res.bytesFreed += packs.get(r.id)?.size ?? 0;
  }
  await finish();

  // 2. One new index covering every kept blob; 3. delete the old index files.
  const all = [...keepPacks, ...newPacks];
  if (all.length) await repo.saveSealed('index', encodeIndex(all), 'index');
  // A lost lock means a backup may now be running against the old index: delete nothing.
  const held = opts.assertHeld ?? (() => undefined);
  for (const f of oldIndexFiles) {
    held();
    await repo.backend.remove({ type: 'index', name: f });
  }
  res.indexFilesReplaced = oldIndexFiles.length;
  // 4. Delete packs nothing references any more.
  for (const id of [...drop, ...repack.map((r) => r.id), ...orphans]) {
    held();
    await repo.backend.remove({ type: 'data', name: id });
    res.packsDeleted++;
  }
  await repo.loadIndex();
  return res;
}
