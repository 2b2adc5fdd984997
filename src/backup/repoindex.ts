// Owns the repository's index on storage (docs/backup-format.md "Index", "Damage"): reading every
// index file with a damaged one reported and skipped (never the whole repository unusable),
// damage marks (index entries flagged FLAG_DAMAGED: a copy known bad, never deduplicated onto),
// reading pack headers (the ground truth of what a pack holds), and building the in-memory index
// from all of it. restic's internal/index is the model.
import { filePath, type Backend } from './backend.js';
import { aad, sha256 } from './crypto.js';
import { decodeHeader, decodeIndex, encodeIndex, FLAG_DAMAGED, type BlobEntry, type IndexPack } from './format.js';
import { MemIndex } from './memindex.js';

/** What reading sealed files needs (the Repository). */
export interface Opener {
  readonly backend: Backend;
  open(sealed: Uint8Array, what: Uint8Array): Buffer;
  seal(plain: Uint8Array, what: Uint8Array): Buffer;
}

export interface IndexFile {
  name: string;
  packs: IndexPack[];
}

export interface Damage {
  /** repository-relative path of the damaged file */
  file: string;
  message: string;
}

export class CorruptFile extends Error {}

/** Opens a sealed file, checking its name (the SHA-256 of its bytes) and its authentication. */
export async function readSealed(r: Opener, type: 'index' | 'snapshots' | 'locks', name: string, what: string): Promise<Buffer> {
  const raw = await r.backend.read({ type, name });
  if (type !== 'locks' && sha256(raw).toString('hex') !== name) throw new CorruptFile(`${filePath({ type, name })} is damaged (its SHA-256 does not match its name)`);
  try {
    return r.open(raw, aad(what));
  } catch {
    throw new CorruptFile(`${filePath({ type, name })} fails authentication (damaged, or not written with this repository's key)`);
  }
}

export async function readIndexFile(r: Opener, name: string): Promise<IndexPack[]> {
  const plain = await readSealed(r, 'index', name, 'index');
  try {
    return decodeIndex(plain);
  } catch (err) {
    throw new CorruptFile(`${filePath({ type: 'index', name })} is malformed: ${(err as Error).message}`);
  }
}

/** Every index file; one that cannot be read (damaged, forged, truncated) is listed in `damaged`. Backend errors still throw. */
export async function readAllIndexFiles(r: Opener): Promise<{ files: IndexFile[]; damaged: Damage[] }> {
  const files: IndexFile[] = [];
  const damaged: Damage[] = [];
  const names: string[] = [];
  for await (const f of r.backend.list('index')) names.push(f.name);
  for (const name of names.sort()) {
    try {
      files.push({ name, packs: await readIndexFile(r, name) });
    } catch (err) {
      if (!(err instanceof CorruptFile)) throw err;
      damaged.push({ file: filePath({ type: 'index', name }), message: err.message });
    }
  }
  return { files, damaged };
}

/** Reads a pack's header (its last 4 bytes give the header length). Throws CorruptFile when it does not open. */
export async function readPackHeader(r: Opener, pack: string, size: number): Promise<BlobEntry[]> {
  const file = filePath({ type: 'data', name: pack });
  if (size < 4 + 28) throw new CorruptFile(`${file} is too short to be a pack (${size} bytes)`);
  const len = (await r.backend.read({ type: 'data', name: pack }, size - 4, 4)).readUInt32LE(0);
  if (len < 28 || len > size - 4) throw new CorruptFile(`${file}: header length ${len} does not fit the pack`);
  const sealed = await r.backend.read({ type: 'data', name: pack }, size - 4 - len, len);
  let entries: BlobEntry[];
  try {
    entries = decodeHeader(r.open(sealed, aad('pack-header')));
  } catch {
    throw new CorruptFile(`${file}: its header is damaged (fails authentication or does not decode)`);
  }
  for (const e of entries) if (e.offset + e.length > size - 4 - len) throw new CorruptFile(`${file}: its header lists a blob past the end of the data`);
  return entries;
}

export function entryKey(pack: string, e: Pick<BlobEntry, 'id' | 'offset'>): string {
  return `${pack}:${e.id.toString('hex')}:${e.offset}`;
}

/** Damage marks of every index file: the blob copies known bad. */
export function damageMarks(files: readonly IndexFile[]): Set<string> {
  const out = new Set<string>();
  for (const f of files) for (const p of f.packs) for (const e of p.entries) if (e.flags & FLAG_DAMAGED) out.add(entryKey(p.id, e));
  return out;
}

export interface BuildOptions {
  /** packs on storage, by name -> size: entries of packs not there (or of another size) are left out */
  onDisk?: Map<string, number>;
  /** packs read from their headers (not listed by any readable index file) */
  fromHeaders?: IndexPack[];
}

/** The in-memory index: every good copy of every blob (a damage-marked copy, or one in a missing pack, is left out). */
export function buildIndex(files: readonly IndexFile[], opts: BuildOptions = {}): { index: MemIndex; missingPacks: Map<string, number> } {
  const marks = damageMarks(files);
  const all: IndexPack[] = [];
  for (const f of files) all.push(...f.packs);
  if (opts.fromHeaders) all.push(...opts.fromHeaders);
  let count = 0;
  for (const p of all) count += p.entries.length;
  const index = new MemIndex(count + 1024);
  const missingPacks = new Map<string, number>();
  for (const p of all) {
    if (opts.onDisk) {
      const size = opts.onDisk.get(p.id);
      if (size === undefined || size !== p.size) {
        missingPacks.set(p.id, (missingPacks.get(p.id) ?? 0) + p.entries.length);
        continue;
      }
    }
    for (const e of p.entries) {
      if (e.flags & FLAG_DAMAGED || marks.has(entryKey(p.id, e))) continue;
      index.add(e.id, { pack: p.id, offset: e.offset, length: e.length, type: e.type, flags: e.flags });
    }
  }
  return { index, missingPacks };
}

/** Writes an index file marking these copies damaged (additive: works on append-only storage). */
export async function writeDamageMarks(r: Opener, byPack: Map<string, { size: number; entries: BlobEntry[] }>): Promise<string | undefined> {
  const packs: IndexPack[] = [];
  for (const [id, p] of byPack) if (p.entries.length) packs.push({ id, size: p.size, entries: p.entries.map((e) => ({ ...e, flags: e.flags | FLAG_DAMAGED })) });
  if (!packs.length) return undefined;
  return writeIndexFile(r, packs);
}

export async function writeIndexFile(r: Opener, packs: readonly IndexPack[]): Promise<string> {
  const sealed = r.seal(encodeIndex(packs), aad('index'));
  const name = sha256(sealed).toString('hex');
  await r.backend.write({ type: 'index', name }, sealed);
  return name;
}

export async function listPacks(b: Backend): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const f of b.list('data')) out.set(f.name, f.size);
  return out;
}

/** Packs on storage that no readable index file lists, read from their headers; unreadable headers go to `damaged`. */
export async function scanUnindexed(r: Opener, files: readonly IndexFile[], onDisk: Map<string, number>): Promise<{ packs: IndexPack[]; damaged: Damage[] }> {
  const known = new Set<string>();
  for (const f of files) for (const p of f.packs) if (p.entries.some((e) => !(e.flags & FLAG_DAMAGED))) known.add(p.id);
  const packs: IndexPack[] = [];
  const damaged: Damage[] = [];
  for (const [id, size] of onDisk) {
    if (known.has(id)) continue;
    try {
      packs.push({ id, size, entries: await readPackHeader(r, id, size) });
    } catch (err) {
      if (!(err instanceof CorruptFile)) throw err;
      damaged.push({ file: filePath({ type: 'data', name: id }), message: err.message });
    }
  }
  return { packs, damaged };
}
