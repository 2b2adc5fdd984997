// Owns `restore`: plan every file of a snapshot (or of --include subsets), then read each needed
// pack once, decrypt and decompress its blobs and write them at their offsets; all-zero chunks are
// left as holes (sparse files come back sparse). Metadata last (dirs deepest first). --verify
// re-reads what was written and compares chunk hashes. Salvage: a damaged or missing chunk is a
// hole, every good chunk is still written, and the file is renamed with DAMAGED_SUFFIX (unless
// keepDamaged) and listed with its lost byte ranges.
import { close as fsClose, constants, ftruncate as fsFtruncate, open as fsOpen, write as fsWrite, closeSync, linkSync, renameSync, lutimesSync, mkdirSync, openSync, readSync, rmSync, symlinkSync, utimesSync,  lchownSync, chmodSync, chownSync, lstatSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { BulwarkError } from '../core/errors.js';
import { filePath } from './backend.js';
import { sha256 } from './crypto.js';
import type { Repository } from './repository.js';
import type { SnapshotInfo, TreeNode } from './types.js';

export interface RestoreOptions {
  target: string;
  include?: string[];
  verify?: boolean;
  /** keep a file with lost byte ranges under its own name (default: renamed with DAMAGED_SUFFIX) */
  keepDamaged?: boolean;
  onProgress?: (p: { files: number; bytes: number; totalFiles: number; totalBytes: number }) => void;
}

export interface RestoreResult {
  files: number;
  dirs: number;
  bytes: number;
  errors: { path: string; message: string }[];
  verified: number;
  /** files restored with holes where their data is damaged or missing: [start, end) byte ranges */
  damaged: { path: string; restoredAs: string; lost: [number, number][]; reason: string }[];
}

/** Suffix of a restored file with lost byte ranges (unless --keep-damaged). */
export const DAMAGED_SUFFIX = '.damaged';

interface FileItem {
  path: string;
  node: TreeNode;
  failed?: string;
  /** byte ranges whose chunk is damaged or missing (left as holes); the first reason */
  lost?: [number, number][];
  lostWhy?: string;
  created?: boolean;
}

function addLost(f: FileItem, start: number, end: number, why: string): void {
  f.lostWhy ??= why;
  (f.lost ??= []).push([start, end]);
}

function mergeRanges(r: [number, number][]): [number, number][] {
  const s = [...r].sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const x of s) {
    const last = out.at(-1);
    if (last && x[0] <= last[1]) last[1] = Math.max(last[1], x[1]);
    else out.push([x[0], x[1]]);
  }
  return out;
}

interface Target {
  file: number;
  pos: number;
  len: number;
}

interface PackBlob {
  id: Buffer;
  offset: number;
  length: number;
  flags: number;
  targets: Target[];
}

function times(node: TreeNode): number {
  const ns = BigInt(node.mtime);
  return Number(ns / 1_000_000_000n) + Number(ns % 1_000_000_000n) / 1e9;
}

/** Normalises --include values to snapshot-relative paths ("name/sub/file"). */
export function includeMatcher(snap: SnapshotInfo, include: readonly string[] | undefined): (rel: string, isDir: boolean) => 'yes' | 'ancestor' | 'no' {
  if (!include || include.length === 0) return () => 'yes';
  const rels = include.map((inc) => {
    let r = inc;
    for (const p of snap.paths) {
      const base = p.split('/').filter(Boolean).at(-1) ?? '/';
      if (r === p || r.startsWith(`${p}/`)) r = base + r.slice(p.length);
    }
    return r.replace(/^\/+/, '').replace(/\/+$/, '');
  });
  return (rel) => {
    for (const r of rels) if (rel === r || rel.startsWith(`${r}/`)) return 'yes';
    for (const r of rels) if (r.startsWith(`${rel}/`)) return 'ancestor';
    return 'no';
  };
}

const ZERO = Buffer.alloc(4 * 1024 * 1024);

function isZero(b: Buffer): boolean {
  for (let at = 0; at < b.length; at += ZERO.length) {
    const n = Math.min(ZERO.length, b.length - at);
    if (!b.subarray(at, at + n).equals(ZERO.subarray(0, n))) return false;
  }
  return true;
}

const BLOCK = 4096;

/** Writes buf at pos, skipping 4 KiB blocks of zeros (the file was created at full size: they stay holes). */
async function writeSparse(fd: number, buf: Buffer, pos: number): Promise<void> {
  let runStart = -1;
  const flush = async (end: number): Promise<void> => {
    let w = runStart;
    runStart = -1;
    while (w < end) w += (await fsp.write(fd, buf, w, end - w, pos + w)).bytesWritten;
  };
  for (let at = 0; at < buf.length; at += BLOCK) {
    const end = Math.min(buf.length, at + BLOCK);
    const zero = buf.subarray(at, end).equals(ZERO.subarray(0, end - at));
    if (!zero && runStart < 0) runStart = at;
    else if (zero && runStart >= 0) await flush(at);
  }
  if (runStart >= 0) await flush(buf.length);
}

const fsp = {
  write: promisify(fsWrite) as (fd: number, buf: Buffer, off: number, len: number, pos: number) => Promise<{ bytesWritten: number }>,
  close: promisify(fsClose) as (fd: number) => Promise<void>,
  open: promisify(fsOpen) as (path: string, flags: number, mode: number) => Promise<number>,
  ftruncate: promisify(fsFtruncate) as (fd: number, len: number) => Promise<void>,
};

/** Creates a file (replacing whatever was there, never following a symlink) at its final size. */
async function createAtSize(path: string, size: number): Promise<number> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  let fd: number;
  try {
    fd = await fsp.open(path, flags, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    rmSync(path, { force: true, recursive: true });
    fd = await fsp.open(path, flags, 0o600);
  }
  if (size > 0) await fsp.ftruncate(fd, size);
  return fd;
}

export async function restoreSnapshot(repo: Repository, snap: SnapshotInfo, opts: RestoreOptions): Promise<RestoreResult> {
  const match = includeMatcher(snap, opts.include);
  const res: RestoreResult = { files: 0, dirs: 0, bytes: 0, errors: [], verified: 0, damaged: [] };
  const root = opts.target;
  mkdirSync(root, { recursive: true });
  const dirs: { path: string; node: TreeNode; depth: number }[] = [];
  const files: FileItem[] = [];
  const links: { path: string; node: TreeNode }[] = [];
  const hardlinks: { path: string; first: number }[] = [];
  const byInode = new Map<string, number>();
  const packs = new Map<string, PackBlob[]>();
  const packBlobs = new Map<string, PackBlob>();
  let totalBytes = 0;
  const fail = (path: string, message: string): void => {
    res.errors.push({ path, message });
  };

  const walk = async (treeSha: string, rel: string, depth: number): Promise<void> => {
    let tree;
    try {
      tree = await repo.loadTree(treeSha);
    } catch (err) {
      fail(join(root, rel), `directory listing unreadable: ${(err as Error).message}`);
      return;
    }
    const seen = new Set<string>();
    for (const node of tree.nodes) {
      // A hostile tree must not reach outside the target: a name is one path component, and a
      // name appears once per directory (a symlink beside a same-named file would otherwise take
      // that file's chmod/chown/utimes, following the link).
      const name = node.name as unknown;
      if (typeof name !== 'string' || name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0') || seen.has(name)) {
        fail(join(root, rel), `snapshot entry ${JSON.stringify(name)} ${typeof name === 'string' && seen.has(name) ? 'appears twice in one directory' : 'is not a valid file name'}: skipped (the snapshot is damaged or was forged)`);
        continue;
      }
      seen.add(name);
      const r = rel ? `${rel}/${node.name}` : node.name;
      const m = match(r, node.type === 'dir');
      if (m === 'no') continue;
      const path = join(root, r);
      if (node.type === 'dir') {
        // Whatever is there and not a directory (a symlink above all: writing through it would
        // land outside the target) is replaced.
        try {
          if (!lstatSync(path).isDirectory()) rmSync(path, { force: true });
        } catch {
          /* nothing there */
        }
        mkdirSync(path, { recursive: true });
        dirs.push({ path, node, depth });
        res.dirs++;
        if (node.subtree) await walk(node.subtree, r, depth + 1);
        continue;
      }
      if (m === 'ancestor') continue;
      if (node.type === 'symlink') {
        links.push({ path, node });
        continue;
      }
      if (node.links > 1) {
        const key = `${node.dev}:${node.inode}`;
        const first = byInode.get(key);
        if (first !== undefined) {
          hardlinks.push({ path, first });
          continue;
        }
        byInode.set(key, files.length);
      }
      const fi = files.length;
      files.push({ path, node });
      totalBytes += node.size;
      let pos = 0;
      const content = node.content ?? [];
      const sizes = node.sizes ?? [];
      for (let i = 0; i < content.length; i++) {
        const len = sizes[i] ?? 0;
        const id = repo.idFor(Buffer.from(content[i] as string, 'hex'));
        const key = id.toString('hex');
        let pb = packBlobs.get(key);
        if (!pb) {
          const loc = repo.index.get(id);
          if (!loc) {
            addLost(files[fi] as FileItem, pos, pos + len, `chunk ${i} (${key.slice(0, 16)}) is missing from the repository (or known damaged)`);
            pos += len;
            continue;
          }
          pb = { id, offset: loc.offset, length: loc.length, flags: loc.flags, targets: [] };
          packBlobs.set(key, pb);
          let list = packs.get(loc.pack);
          if (!list) packs.set(loc.pack, (list = []));
          list.push(pb);
        }
        pb.targets.push({ file: fi, pos, len });
        pos += len;
      }
    }
  };
  await walk(snap.tree, '', 0);
  if (opts.include?.length && files.length + dirs.length + links.length + hardlinks.length === 0) {
    throw new BulwarkError('BULWARK_CLI_USAGE', `nothing in snapshot ${snap.id.slice(0, 8)} matches --include ${opts.include.join(' ')}`, {
      hint: `use paths as backed up (${snap.paths.join(', ')}) or relative to the snapshot root (${snap.paths.map((p) => p.split('/').filter(Boolean).at(-1) ?? '/').join(', ')})`,
    });
  }

  // Files are created on their first chunk (exclusive create, at full size: holes everywhere),
  // written with asynchronous writes (the thread pool writes while this thread decrypts the next
  // blobs), and closed after their last chunk.
  const remaining = new Int32Array(files.length);
  for (const bl of packBlobs.values()) for (const t of bl.targets) remaining[t.file] = (remaining[t.file] as number) + 1;
  const fds = new Map<number, Promise<number>>();
  const openFile = (fi: number): Promise<number> => {
    let p = fds.get(fi);
    if (!p) {
      const f = files[fi] as FileItem;
      f.created = true;
      p = createAtSize(f.path, f.node.size);
      fds.set(fi, p);
    }
    return p;
  };
  const finishFile = async (fi: number): Promise<void> => {
    const p = fds.get(fi);
    fds.delete(fi);
    if (p) await p.then((fd) => fsp.close(fd), () => undefined);
  };
  const writes = new Set<Promise<void>>();
  const MAX_WRITES = 16;
  const track = async (p: Promise<void>): Promise<void> => {
    writes.add(p);
    void p.finally(() => writes.delete(p));
    while (writes.size >= MAX_WRITES) await Promise.race(writes);
  };
  // Writes still in flight per file: a file is closed only after every write to it has settled
  // (closing earlier would fail them with EBADF, or worse, send them to a file that reused the fd).
  const inflight = new Map<number, Set<Promise<void>>>();
  const target = (t: Target, plain: Buffer | undefined, failure: string | undefined): Promise<void> => {
    const f = files[t.file] as FileItem;
    const last = (remaining[t.file] = (remaining[t.file] as number) - 1) === 0;
    const write = (async () => {
      try {
        // A damaged chunk is a hole; every good chunk around it is still written (salvage).
        if (failure) addLost(f, t.pos, t.pos + t.len, failure);
        if (!f.failed && plain) {
          const fd = await openFile(t.file);
          if (!isZero(plain)) await writeSparse(fd, plain, t.pos);
          res.bytes += t.len;
        }
      } catch (err) {
        f.failed ??= (err as Error).message;
      }
    })();
    let pending = inflight.get(t.file);
    if (!pending) inflight.set(t.file, (pending = new Set()));
    pending.add(write);
    if (!last) {
      void write.finally(() => pending.delete(write));
      return write;
    }
    const all = [...pending];
    inflight.delete(t.file);
    return Promise.all(all).then(() => finishFile(t.file));
  };

  const readPack = (pack: string, list: PackBlob[]): Promise<{ base: number; buf: Buffer }> => {
    let lo = Infinity;
    let hi = 0;
    for (const b of list) {
      lo = Math.min(lo, b.offset);
      hi = Math.max(hi, b.offset + b.length);
    }
    return repo.backend.read({ type: 'data', name: pack }, lo, hi - lo).then((buf) => ({ base: lo, buf }));
  };

  const order = [...packs.entries()];
  let next: Promise<{ base: number; buf: Buffer }> | undefined = order[0] ? readPack(order[0][0], order[0][1]) : undefined;
  let done = 0;
  for (let i = 0; i < order.length; i++) {
    const [pack, list] = order[i] as [string, PackBlob[]];
    const cur = next as Promise<{ base: number; buf: Buffer }>;
    next = order[i + 1] ? readPack(order[i + 1]![0], order[i + 1]![1]) : undefined;
    next?.catch(() => undefined);
    let got: { base: number; buf: Buffer } | undefined;
    let packErr: string | undefined;
    try {
      got = await cur;
    } catch (err) {
      packErr = `pack ${filePath({ type: 'data', name: pack })} unreadable: ${(err as Error).message}`;
    }
    list.sort((a, b) => a.offset - b.offset);
    for (const b of list) {
      let plain: Buffer | undefined;
      let failure = packErr;
      if (got) {
        try {
          plain = repo.openBlob(got.buf.subarray(b.offset - got.base, b.offset - got.base + b.length), b.id, b.flags, filePath({ type: 'data', name: pack }));
        } catch (err) {
          failure = (err as Error).message;
        }
      }
      for (const t of b.targets) {
        const bad = plain && plain.length !== t.len ? `chunk length ${plain.length} differs from the recorded ${t.len}` : failure;
        await track(target(t, bad ? undefined : plain, bad));
      }
    }
    done++;
    opts.onProgress?.({ files: Math.round((files.length * done) / order.length), bytes: res.bytes, totalFiles: files.length, totalBytes });
  }
  await Promise.all(writes);
  // Files without chunks (empty files, or whose chunks were all missing from the index).
  for (let fi = 0; fi < files.length; fi++) {
    const f = files[fi] as FileItem;
    if (fds.has(fi)) await finishFile(fi);
    if (!f.failed && ((f.node.content ?? []).length === 0 || (f.lost && !f.created))) {
      try {
        await fsp.close(await createAtSize(f.path, f.node.size));
      } catch (err) {
        f.failed = (err as Error).message;
      }
    }
  }

  for (const f of files) {
    if (f.failed || !f.lost) continue;
    const lost = mergeRanges(f.lost);
    let restoredAs = f.path;
    if (!opts.keepDamaged) {
      restoredAs = f.path + DAMAGED_SUFFIX;
      try {
        rmSync(restoredAs, { force: true, recursive: true });
        renameSync(f.path, restoredAs);
      } catch (err) {
        f.failed = `restored with holes, but could not be renamed to ${restoredAs}: ${(err as Error).message}`;
        continue;
      }
    }
    const bytes = lost.reduce((n, [a, b]) => n + b - a, 0);
    res.damaged.push({ path: f.path, restoredAs, lost, reason: f.lostWhy ?? 'damaged' });
    res.errors.push({ path: f.path, message: `${bytes} bytes lost in ${lost.length} range(s) [${lost.map(([a, b]) => `${a}-${b}`).join(', ')}] (${f.lostWhy ?? 'damaged'}); every other byte restored, holes where the data was${restoredAs === f.path ? '' : `, as ${restoredAs}`}` });
  }

  for (const h of hardlinks) {
    const first = files[h.first] as FileItem;
    if (first.lost) {
      fail(h.path, `hard link to ${first.path}, which restored with lost byte ranges`);
      continue;
    }
    if (first.failed) {
      fail(h.path, `hard link to ${first.path}, which did not restore: ${first.failed}`);
      continue;
    }
    try {
      rmSync(h.path, { force: true });
      linkSync(first.path, h.path);
    } catch (err) {
      fail(h.path, (err as Error).message);
    }
  }
  for (const l of links) {
    try {
      rmSync(l.path, { force: true });
      symlinkSync(l.node.target ?? '', l.path);
    } catch (err) {
      fail(l.path, (err as Error).message);
    }
  }

  const root0 = process.getuid?.() === 0;
  const meta = (path: string, node: TreeNode, link: boolean): void => {
    try {
      if (link) {
        if (root0) lchownSync(path, node.uid, node.gid);
        lutimesSync(path, times(node), times(node));
      } else {
        if (root0) chownSync(path, node.uid, node.gid);
        chmodSync(path, node.mode);
        utimesSync(path, times(node), times(node));
      }
    } catch (err) {
      fail(path, `metadata: ${(err as Error).message}`);
    }
  };
  for (const f of files) {
    if (f.failed) {
      fail(f.path, f.failed);
      continue;
    }
    if (f.lost) {
      meta(res.damaged.find((d) => d.path === f.path)?.restoredAs ?? f.path, f.node, false);
      continue;
    }
    res.files++;
    meta(f.path, f.node, false);
  }
  for (const l of links) meta(l.path, l.node, true);

  if (opts.verify) {
    const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
    for (const f of files) {
      if (f.failed || f.lost) continue;
      try {
        if (lstatSync(f.path).size !== f.node.size) throw new Error(`size ${lstatSync(f.path).size}, expected ${f.node.size}`);
        const fd = openSync(f.path, 'r');
        try {
          const content = f.node.content ?? [];
          const sizes = f.node.sizes ?? [];
          let pos = 0;
          for (let i = 0; i < content.length; i++) {
            const len = sizes[i] as number;
            const b = len <= buf.length ? buf.subarray(0, len) : Buffer.allocUnsafe(len);
            let got = 0;
            while (got < len) {
              const n = readSync(fd, b, got, len - got, pos + got);
              if (n === 0) break;
              got += n;
            }
            if (got !== len || sha256(b).toString('hex') !== content[i]) throw new Error(`chunk ${i} at offset ${pos} does not match the snapshot`);
            pos += len;
          }
        } finally {
          closeSync(fd);
        }
        res.verified++;
      } catch (err) {
        fail(f.path, `verify: ${(err as Error).message}`);
      }
    }
  }

  dirs.sort((a, b) => b.depth - a.depth);
  for (const d of dirs) meta(d.path, d.node, false);
  void dirname;
  return res;
}
