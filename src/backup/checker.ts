// Owns `check`: structure and index consistency (every index file authentic, every indexed pack
// present with the right size, every snapshot and tree readable, every referenced chunk indexed),
// and with readData the bytes: every selected pack re-hashed, its header and every blob decrypted
// and its id re-derived. Damage is reported by pack, and attributed to the snapshot files it hits.
// A pack no index lists is read by its header: referenced blobs there mean a lost index (an
// error, `repair index`), none mean an interrupted backup (a warning, prune removes it).
import { randomInt } from 'node:crypto';
import { filePath } from './backend.js';
import { aad, sha256 } from './crypto.js';
import { decodeHeader, FLAG_DAMAGED, type BlobEntry } from './format.js';
import { buildIndex, damageMarks, entryKey, listPacks, readAllIndexFiles, scanUnindexed } from './repoindex.js';
import type { Repository } from './repository.js';
import { readSnapshots } from './snapshots.js';
import type { TreeNode } from './types.js';

export interface CheckOptions {
  readData?: boolean;
  /** 0 < subset <= 1: the share of packs to read */
  subset?: number;
  onProgress?: (p: { packs: number; totalPacks: number }) => void;
}

export interface DamagedPack {
  pack: string;
  file: string;
  problems: string[];
  damagedBlobs: number;
  /** snapshot files that need a damaged blob of this pack */
  files: { snapshot: string; path: string }[];
}

export interface CheckReport {
  ok: boolean;
  errors: string[];
  warnings: string[];
  snapshots: number;
  packs: number;
  packsRead: number;
  blobs: number;
  damagedPacks: DamagedPack[];
}

export async function checkRepository(repo: Repository, opts: CheckOptions = {}): Promise<CheckReport> {
  const rep: CheckReport = { ok: true, errors: [], warnings: [], snapshots: 0, packs: 0, packsRead: 0, blobs: 0, damagedPacks: [] };
  const packEntries = new Map<string, { size: number; entries: BlobEntry[] }>();
  // Key files that did not validate when the repository was opened (another key opened it).
  for (const [file, message] of repo.problems) if (file.startsWith('keys/')) rep.errors.push(message.startsWith(file) ? message : `${file}: ${message}`);
  const { files, damaged: damagedIndex } = await readAllIndexFiles(repo);
  for (const d of damagedIndex) rep.errors.push(`${d.file}: ${d.message}`);
  const marks = damageMarks(files);
  for (const f of files) {
    for (const p of f.packs) {
      const known = packEntries.get(p.id);
      if (known && known.size !== p.size) rep.errors.push(`${filePath({ type: 'index', name: f.name })}: pack ${p.id.slice(0, 16)} listed with size ${p.size}, elsewhere ${known.size}`);
      if (!known) packEntries.set(p.id, { size: p.size, entries: p.entries.filter((e) => !(e.flags & FLAG_DAMAGED)) });
      else for (const e of p.entries) if (!(e.flags & FLAG_DAMAGED) && !known.entries.some((x) => x.offset === e.offset && x.id.equals(e.id))) known.entries.push(e);
    }
  }
  const onDisk = await listPacks(repo.backend);
  rep.packs = onDisk.size;
  // Packs no readable index lists: read their headers to tell "left by an interrupted backup"
  // (nothing references them) from "unindexed because an index file is damaged or missing".
  const scan = await scanUnindexed(repo, files, onDisk);
  for (const d of scan.damaged) rep.errors.push(`${d.file} is not indexed and ${d.message.replace(/^\S+: /, '')}; prune keeps it`);
  const unindexed = new Map(scan.packs.map((p) => [p.id, p]));
  const idx = buildIndex(files, { fromHeaders: scan.packs }).index;
  for (const p of scan.packs) packEntries.set(p.id, { size: p.size, entries: p.entries });
  repo.index = idx;
  rep.blobs = idx.size;
  let knownDamaged = 0;
  for (const k of marks) if (onDisk.has(k.split(':')[0] as string)) knownDamaged++;
  if (knownDamaged) rep.warnings.push(`${knownDamaged} blob copies are marked damaged (by \`repair packs\`): never used; a backup stores them again, prune drops them once unneeded`);
  // Blobs known to be unreadable, by the pack that should hold them (named with the files they hit).
  const damagedIds = new Set<string>();
  const damaged = new Map<string, DamagedPack>();
  for (const [id, p] of packEntries) {
    const size = onDisk.get(id);
    if (size === undefined) {
      for (const e of p.entries) damagedIds.add(e.id.toString('hex'));
      damaged.set(id, { pack: id, file: filePath({ type: 'data', name: id }), problems: [`missing (the index lists ${p.entries.length} blobs in it)`], damagedBlobs: p.entries.length, files: [] });
    } else if (size !== p.size) rep.errors.push(`${filePath({ type: 'data', name: id })} has size ${size}, the index says ${p.size}`);
  }

  // Data: re-hash packs, decrypt every blob.
  if (opts.readData) {
    let ids = [...packEntries.keys()].filter((id) => onDisk.has(id));
    if (opts.subset !== undefined && opts.subset < 1) {
      const n = Math.max(1, Math.ceil(ids.length * opts.subset));
      for (let i = ids.length - 1; i > 0; i--) {
        const j = randomInt(i + 1);
        [ids[i], ids[j]] = [ids[j] as string, ids[i] as string];
      }
      ids = ids.slice(0, n);
    }
    let done = 0;
    for (const id of ids) {
      const p = packEntries.get(id) as { size: number; entries: BlobEntry[] };
      const file = filePath({ type: 'data', name: id });
      const problems: string[] = [];
      let bad = 0;
      let raw: Buffer | undefined;
      try {
        raw = await repo.backend.read({ type: 'data', name: id });
      } catch (err) {
        problems.push(`unreadable: ${(err as Error).message}`);
      }
      if (raw) {
        const known = [...marks].some((k) => k.startsWith(`${id}:`)); // its marked damage explains a mismatch
        if (!known && sha256(raw).toString('hex') !== id) problems.push('content does not match its name (SHA-256)');
        try {
          const hl = raw.readUInt32LE(raw.length - 4);
          const header = decodeHeader(repo.open(raw.subarray(raw.length - 4 - hl, raw.length - 4), aad('pack-header')));
          // The header lists every blob written; the index may list fewer (prune drops unused ones).
          const inHeader = new Set(header.map((e) => `${e.id.toString('hex')}:${e.offset}:${e.length}`));
          const missing = p.entries.filter((e) => !inHeader.has(`${e.id.toString('hex')}:${e.offset}:${e.length}`)).length;
          if (missing) problems.push(`${missing} indexed blobs are not in the pack header`);
        } catch {
          problems.push('header damaged (the index still locates its blobs)');
        }
        for (const e of p.entries) {
          if (marks.has(entryKey(id, e))) continue; // known damaged: reported above
          try {
            const plain = repo.openBlob(raw.subarray(e.offset, e.offset + e.length), e.id, e.flags, file);
            if (plain.length !== e.rawLength || !repo.idFor(sha256(plain)).equals(e.id)) throw new Error('plaintext does not match its id');
          } catch {
            bad++;
            damagedIds.add(e.id.toString('hex'));
          }
        }
        if (bad) problems.push(`${bad} of ${p.entries.length} blobs fail verification`);
      } else {
        for (const e of p.entries) damagedIds.add(e.id.toString('hex'));
        bad = p.entries.length;
      }
      if (problems.length) damaged.set(id, { pack: id, file, problems, damagedBlobs: bad, files: [] });
      rep.packsRead++;
      opts.onProgress?.({ packs: ++done, totalPacks: ids.length });
    }
  }

  // Snapshots and trees.
  const { snapshots: snaps, damaged: damagedSnaps } = await readSnapshots(repo);
  for (const d of damagedSnaps) rep.errors.push(`${d.file}: ${d.message}`);
  rep.snapshots = snaps.length;
  const treesOk = new Set<string>();
  const referenced = new Set<string>();
  const hit = (id: Buffer, snap: string, path: string): void => {
    const hex = id.toString('hex');
    if (!damagedIds.has(hex)) return;
    const loc = idx.get(id);
    const d = loc ? damaged.get(loc.pack) : undefined;
    if (d && !d.files.some((f) => f.snapshot === snap && f.path === path)) d.files.push({ snapshot: snap, path });
  };
  for (const s of snaps) {
    const short = s.id.slice(0, 8);
    const walk = async (treeSha: string, path: string): Promise<void> => {
      if (damagedIds.size === 0 && treesOk.has(treeSha)) return;
      const tid = repo.idFor(Buffer.from(treeSha, 'hex'));
      referenced.add(tid.toString('hex'));
      if (damagedIds.has(tid.toString('hex'))) {
        hit(tid, short, `${path || '/'} (directory listing)`);
        rep.errors.push(`snapshot ${short}: the listing of ${path || '/'} is in a damaged blob`);
        return;
      }
      let nodes: TreeNode[];
      try {
        nodes = (await repo.loadTree(treeSha)).nodes;
      } catch (err) {
        rep.errors.push(`snapshot ${short}: directory ${path || '/'}: ${(err as Error).message}`);
        return;
      }
      const seenBefore = treesOk.has(treeSha);
      for (const n of nodes) {
        const p = `${path}/${n.name}`;
        if (n.type === 'dir' && n.subtree) await walk(n.subtree, p);
        else if (n.type === 'file') {
          for (const c of n.content ?? []) {
            const id = repo.idFor(Buffer.from(c, 'hex'));
            referenced.add(id.toString('hex'));
            if (!idx.has(id)) {
              if (!seenBefore) rep.errors.push(`snapshot ${short}: ${p}: chunk ${c.slice(0, 16)} is missing (in no readable index or pack header, or known damaged)`);
            } else hit(id, short, p);
          }
        }
      }
      treesOk.add(treeSha);
    };
    await walk(s.tree, '');
  }

  for (const p of unindexed.values()) {
    const file = filePath({ type: 'data', name: p.id });
    // needed: referenced, and this is the copy in use (the index has no other; header packs come last)
    const needed = p.entries.filter((e) => referenced.has(e.id.toString('hex')) && idx.get(e.id)?.pack === p.id).length;
    if (needed) rep.errors.push(`${file} is not indexed, yet holds ${needed} blob(s) that snapshots reference: an index file is damaged or missing; run \`bulwark backup repair index\` (prune keeps it)`);
    else rep.warnings.push(`${file} is not indexed (left by an interrupted backup: no snapshot references its ${p.entries.length} blobs); prune removes it`);
  }
  for (const d of damaged.values()) {
    rep.damagedPacks.push(d);
    rep.errors.push(`${d.file} is damaged: ${d.problems.join('; ')}${d.files.length ? `; files hit: ${d.files.map((f) => `${f.snapshot}:${f.path}`).join(', ')}` : '; no snapshot file needs its damaged blobs'}`);
  }
  rep.ok = rep.errors.length === 0;
  return rep;
}
