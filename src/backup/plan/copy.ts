// Owns copying snapshots between repositories (`bulwark backup copy`): every tree and chunk a
// snapshot needs that the destination lacks is read (decrypted) from the source and stored through
// the destination's own sink (its keys, its ids), then the snapshot is saved there. A snapshot the
// destination already holds (same time, host, paths and root tree) is skipped, so a copy that was
// interrupted is simply run again.
import type { Tree } from '../engine.js';
import { BLOB_DATA, BLOB_TREE } from '../format.js';
import { RepoLock } from '../lock.js';
import type { Repository } from '../repository.js';
import { prepare } from '../sink.js';
import { decodeTree } from '../treecodec.js';

export interface CopyResult {
  copied: Array<{ from: string; to: string; blobs: number; bytes: number }>;
  skipped: string[];
}

export async function copySnapshots(src: Repository, dst: Repository, refs: readonly string[]): Promise<CopyResult> {
  const locks = [await RepoLock.acquire(src, 'shared', 'copy'), await RepoLock.acquire(dst, 'shared', 'copy')];
  try {
    await src.loadIndex();
    await dst.loadIndex();
    const all = await src.listSnapshots();
    const wanted = refs.length === 0 ? all : await Promise.all(refs.map((r) => src.findSnapshot(r)));
    const have = await dst.listSnapshots();
    const key = (s: { time: string; host: string; paths: readonly string[]; tree: string }): string => `${s.time}\0${s.host}\0${[...s.paths].sort().join('\0')}\0${s.tree}`;
    const present = new Set(have.map(key));
    const out: CopyResult = { copied: [], skipped: [] };
    for (const snap of wanted) {
      if (present.has(key(snap))) {
        out.skipped.push(snap.id);
        continue;
      }
      const sink = dst.sink();
      let blobs = 0;
      let bytes = 0;
      const seen = new Set<string>();
      const put = async (hex: string, type: typeof BLOB_DATA | typeof BLOB_TREE): Promise<Buffer | undefined> => {
        const sha = Buffer.from(hex, 'hex');
        if (type === BLOB_DATA && (seen.has(hex) || sink.has(sha))) return undefined;
        seen.add(hex);
        const plain = await src.loadBlobById(src.idFor(sha));
        if (!sink.has(sha)) {
          await sink.add(prepare(type, plain, sha));
          blobs++;
          bytes += plain.length;
        }
        return plain;
      };
      const walk = async (treeHex: string): Promise<void> => {
        if (seen.has(treeHex)) return;
        const plain = (await put(treeHex, BLOB_TREE)) as Buffer;
        const tree: Tree = decodeTree(plain);
        for (const n of tree.nodes) {
          if (n.type === 'dir' && n.subtree) await walk(n.subtree);
          else if (n.type === 'file') for (const c of n.content ?? []) await put(c, BLOB_DATA);
        }
      };
      await walk(snap.tree);
      await sink.flush();
      for (const l of locks) l.assertHeld();
      const { id: _id, ...body } = snap;
      const to = await dst.saveSnapshot({ ...body, parent: null });
      present.add(key(snap));
      out.copied.push({ from: snap.id, to, blobs, bytes });
    }
    return out;
  } finally {
    for (const l of locks) await l.release().catch(() => undefined);
  }
}
