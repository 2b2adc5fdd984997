// Owns test helpers for the backup engine (used only by *.test.ts): a source tree with every file
// kind the engine must keep, and a deep comparison of two trees (bytes and metadata).
import { chmodSync, chownSync, lchownSync, closeSync, linkSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, lutimesSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';

/** Deterministic pseudo-random bytes (incompressible). */
export function prng(seed: number, n: number): Buffer {
  const words = new Uint32Array(Math.ceil(n / 4));
  let s = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s >>> 0;
  }
  return Buffer.from(words.buffer, 0, n);
}

/** A tree with regular, empty, large, sparse and hard-linked files, symlinks, empty dirs, odd modes and owners. */
export function makeTree(root: string): void {
  mkdirSync(join(root, 'src/lib'), { recursive: true });
  mkdirSync(join(root, 'empty-dir'), { recursive: true });
  mkdirSync(join(root, 'cache'), { recursive: true });
  for (let i = 0; i < 20; i++) writeFileSync(join(root, 'src/lib', `mod${i}.ts`), `export const v${i} = ${i};\n`.repeat(50 + i));
  writeFileSync(join(root, 'src/readme.md'), '# hello\n');
  writeFileSync(join(root, 'empty-file'), '');
  writeFileSync(join(root, 'cache/junk.tmp'), 'excluded');
  writeFileSync(join(root, 'big.bin'), prng(7, 5 * 1024 * 1024 + 123));
  writeFileSync(join(root, 'text.log'), 'line of a compressible log file\n'.repeat(100_000));
  // sparse: 12 MiB with data at 0 and 8 MiB, holes elsewhere
  const fd = openSync(join(root, 'sparse.img'), 'w');
  writeSync(fd, Buffer.from('start of a sparse file'), 0, 22, 0);
  writeSync(fd, prng(3, 4096), 0, 4096, 8 * 1024 * 1024);
  ftruncateSync(fd, 12 * 1024 * 1024);
  closeSync(fd);
  writeFileSync(join(root, 'hard-a'), 'shared by two names\n');
  linkSync(join(root, 'hard-a'), join(root, 'src/hard-b'));
  symlinkSync('src/readme.md', join(root, 'link-rel'));
  symlinkSync('/nonexistent/target', join(root, 'link-dangling'));
  writeFileSync(join(root, 'secret.key'), 'private');
  chmodSync(join(root, 'secret.key'), 0o600);
  writeFileSync(join(root, 'tool.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(root, 'tool.sh'), 0o4755);
  chmodSync(join(root, 'empty-dir'), 0o1777);
  if (process.getuid?.() === 0) {
    chownSync(join(root, 'secret.key'), 1234, 5678);
    chownSync(join(root, 'empty-dir'), 4321, 8765);
    lchownSync(join(root, 'link-rel'), 1111, 2222);
  }
  const t = new Date('2021-03-04T05:06:07.123Z');
  utimesSync(join(root, 'src/readme.md'), t, t);
  utimesSync(join(root, 'empty-dir'), t, t);
  lutimesSync(join(root, 'link-rel'), t, t);
}


export interface Entry {
  path: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  hash?: string;
  target?: string;
  links: number;
  blocks: number;
  ino: number;
}

/** Every entry under root (relative paths), with metadata and a content hash. */
export function listTree(root: string): Map<string, Entry> {
  const out = new Map<string, Entry>();
  const walk = (rel: string): void => {
    const p = rel ? join(root, rel) : root;
    const st = lstatSync(p);
    const e: Entry = { path: rel, type: st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : 'file', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtimeMs: st.mtimeMs, size: st.isFile() ? st.size : 0, links: st.nlink, blocks: st.blocks, ino: st.ino };
    if (st.isFile()) e.hash = createHash('sha256').update(readFileSync(p)).digest('hex');
    if (st.isSymbolicLink()) e.target = readlinkSync(p);
    if (rel) out.set(rel, e);
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return out;
}

/** Differences between two trees (empty when identical in bytes and metadata). */
export function diffTrees(a: Map<string, Entry>, b: Map<string, Entry>, opts: { ignoreDirMtimeOf?: string[] } = {}): string[] {
  const diffs: string[] = [];
  for (const [k, x] of a) {
    const y = b.get(k);
    if (!y) {
      diffs.push(`${k}: missing`);
      continue;
    }
    for (const f of ['type', 'mode', 'uid', 'gid', 'size', 'hash', 'target'] as const) if (x[f] !== y[f]) diffs.push(`${k}: ${f} ${String(x[f])} != ${String(y[f])}`);
    if (!(x.type === 'dir' && opts.ignoreDirMtimeOf?.includes(k)) && Math.abs(x.mtimeMs - y.mtimeMs) > 0.002) diffs.push(`${k}: mtime ${x.mtimeMs} != ${y.mtimeMs}`);
  }
  for (const k of b.keys()) if (!a.has(k)) diffs.push(`${k}: unexpected`);
  return diffs;
}
