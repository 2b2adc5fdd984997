// Owns the stored encoding of tree blobs (docs/backup-format.md "Trees"): compact JSON with the
// field names once per tree and one array per node, defaults left out. Pure logic.
import type { Tree, TreeNode } from './types.js';

const TYPES = { file: 'f', dir: 'd', symlink: 'l' } as const;
const FROM = { f: 'file', d: 'dir', l: 'symlink' } as const;

/** Column order of a stored node. */
const COLS = ['name', 'type', 'mode', 'uid', 'gid', 'mtime', 'size', 'inode', 'dev', 'links', 'content', 'sizes', 'subtree', 'target'] as const;

type Cell = string | number | string[] | number[] | null;

export function encodeTree(t: Tree): Buffer {
  const rows: Cell[][] = t.nodes.map((n) => {
    // sizes of a one-chunk file are implied by its size
    const sizes = n.sizes && !(n.sizes.length === 1 && n.sizes[0] === n.size) ? n.sizes : null;
    const row: Cell[] = [n.name, TYPES[n.type], n.mode, n.uid, n.gid, n.mtime, n.size, n.inode, n.dev, n.links, n.content ?? null, sizes, n.subtree ?? null, n.target ?? null];
    while (row.length > 10 && row[row.length - 1] === null) row.pop();
    return row;
  });
  return Buffer.from(JSON.stringify({ v: 1, c: COLS, n: rows }));
}

export function decodeTree(buf: Buffer): Tree {
  const raw = JSON.parse(buf.toString('utf8')) as { v?: number; c?: string[]; n?: Cell[][] };
  if (raw.v !== 1 || !Array.isArray(raw.n) || !Array.isArray(raw.c)) throw new Error('not a version 1 tree');
  const at = new Map(raw.c.map((c, i) => [c, i]));
  const get = (row: Cell[], k: (typeof COLS)[number]): Cell | undefined => {
    const i = at.get(k);
    return i === undefined ? undefined : (row[i] ?? undefined);
  };
  return {
    nodes: raw.n.map((row) => {
      const type = FROM[get(row, 'type') as keyof typeof FROM];
      if (!type) throw new Error(`unknown node type ${String(get(row, 'type'))}`);
      const n: TreeNode = {
        name: get(row, 'name') as string,
        type,
        mode: get(row, 'mode') as number,
        uid: get(row, 'uid') as number,
        gid: get(row, 'gid') as number,
        mtime: get(row, 'mtime') as string,
        size: get(row, 'size') as number,
        inode: get(row, 'inode') as number,
        dev: get(row, 'dev') as number,
        links: get(row, 'links') as number,
      };
      const content = get(row, 'content') as string[] | undefined;
      if (content) {
        n.content = content;
        n.sizes = (get(row, 'sizes') as number[] | undefined) ?? (content.length === 1 ? [n.size] : []);
      } else if (type === 'file') {
        n.content = [];
        n.sizes = [];
      }
      const subtree = get(row, 'subtree') as string | undefined;
      if (subtree) n.subtree = subtree;
      const target = get(row, 'target') as string | undefined;
      if (target !== undefined) n.target = target;
      return n;
    }),
  };
}
