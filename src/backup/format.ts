// Owns the binary layouts of pack headers and index files (docs/backup-format.md). Pure logic.
export const BLOB_DATA = 1;
export const BLOB_TREE = 2;
export type BlobType = typeof BLOB_DATA | typeof BLOB_TREE;
export const FLAG_ZSTD = 1;
/** In an index file: this copy of the blob is known damaged (written by `repair packs`); never used. */
export const FLAG_DAMAGED = 2;
export const ENTRY = 46;

export interface BlobEntry {
  type: BlobType;
  flags: number;
  id: Buffer;
  offset: number;
  length: number; // sealed length
  rawLength: number; // plaintext length (before compression)
}

export function encodeEntries(entries: readonly BlobEntry[], out: Buffer, at: number): number {
  for (const e of entries) {
    out[at] = e.type;
    out[at + 1] = e.flags;
    e.id.copy(out, at + 2, 0, 32);
    out.writeUInt32LE(e.offset, at + 34);
    out.writeUInt32LE(e.length, at + 38);
    out.writeUInt32LE(e.rawLength, at + 42);
    at += ENTRY;
  }
  return at;
}

export function decodeEntries(buf: Buffer, at: number, count: number): BlobEntry[] {
  if (at + count * ENTRY > buf.length) throw new Error('entry table truncated');
  const out: BlobEntry[] = [];
  for (let i = 0; i < count; i++, at += ENTRY) {
    const type = buf[at];
    if (type !== BLOB_DATA && type !== BLOB_TREE) throw new Error(`unknown blob type ${String(type)}`);
    out.push({
      type,
      flags: buf[at + 1] as number,
      id: Buffer.from(buf.subarray(at + 2, at + 34)),
      offset: buf.readUInt32LE(at + 34),
      length: buf.readUInt32LE(at + 38),
      rawLength: buf.readUInt32LE(at + 42),
    });
  }
  return out;
}

export function encodeHeader(entries: readonly BlobEntry[]): Buffer {
  const b = Buffer.allocUnsafe(entries.length * ENTRY);
  encodeEntries(entries, b, 0);
  return b;
}

export function decodeHeader(plain: Buffer): BlobEntry[] {
  if (plain.length % ENTRY !== 0) throw new Error('pack header length is not a multiple of the entry size');
  return decodeEntries(plain, 0, plain.length / ENTRY);
}

export interface IndexPack {
  id: string; // hex
  size: number;
  entries: BlobEntry[];
}

const MAGIC = Buffer.from('BWIX');

export function encodeIndex(packs: readonly IndexPack[]): Buffer {
  let size = 8;
  for (const p of packs) size += 40 + p.entries.length * ENTRY;
  const b = Buffer.allocUnsafe(size);
  MAGIC.copy(b, 0);
  b.writeUInt32LE(packs.length, 4);
  let at = 8;
  for (const p of packs) {
    Buffer.from(p.id, 'hex').copy(b, at);
    b.writeUInt32LE(p.size, at + 32);
    b.writeUInt32LE(p.entries.length, at + 36);
    at = encodeEntries(p.entries, b, at + 40);
  }
  return b;
}

export function decodeIndex(b: Buffer): IndexPack[] {
  if (b.length < 8 || !b.subarray(0, 4).equals(MAGIC)) throw new Error('not an index file');
  const n = b.readUInt32LE(4);
  const out: IndexPack[] = [];
  let at = 8;
  for (let i = 0; i < n; i++) {
    if (at + 40 > b.length) throw new Error('index truncated');
    const id = b.subarray(at, at + 32).toString('hex');
    const size = b.readUInt32LE(at + 32);
    const count = b.readUInt32LE(at + 36);
    out.push({ id, size, entries: decodeEntries(b, at + 40, count) });
    at += 40 + count * ENTRY;
  }
  if (at !== b.length) throw new Error('index has trailing bytes');
  return out;
}
