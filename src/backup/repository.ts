// Owns one open repository: its config and master key (opened by trying every key file, keys.ts),
// sealing and opening with that key, the in-memory index (loaded by repoindex.ts with damaged
// index files skipped and reported), reading blobs and trees, and the damage seen so far
// (`problems`: every file skipped because it is damaged, by name). Snapshots: snapshots.ts;
// writing new blobs: sink.ts; locks: lock.ts. restic's internal/repository is the model.
import { randomBytes } from 'node:crypto';
import { decompress as zstdDecompress } from 'zstd-napi';
import { decodeTree } from './treecodec.js';
import { BulwarkError } from '../core/errors.js';
import { filePath, isNotFound, type Backend } from './backend.js';
import { DEFAULT_CHUNKER, type ChunkerParams } from './chunker.js';
import { aad, blobId, newMasterKey, open, seal, sealInto, sha256, type MasterKey } from './crypto.js';
import { BLOB_TREE, FLAG_ZSTD, type IndexPack } from './format.js';
import { findKey, listKeys, removeKey, writeKey, type KeyListing } from './keys.js';
import { MemIndex, type Location } from './memindex.js';
import { buildIndex, CorruptFile, listPacks, readAllIndexFiles, readIndexFile, readSealed, scanUnindexed, type Damage } from './repoindex.js';
import { RepoSink } from './sink.js';
import { pickSnapshot, readSnapshots, writeSnapshot } from './snapshots.js';
import type { Snapshot, SnapshotInfo, Tree } from './types.js';

export const FORMAT_VERSION = 1;

export interface RepoConfig {
  id: string;
  created: string;
  chunker: ChunkerParams;
  packSize: number;
}

export function corrupt(what: string, cause?: unknown): BulwarkError {
  return new BulwarkError('BULWARK_REPO_CORRUPT', what, {
    hint: 'run `bulwark backup check --read-data` to see every damaged file; `bulwark backup repair` fixes what it can (docs/operations.md)',
    ...(cause === undefined ? {} : { cause }),
  });
}

export function passwordFromEnv(): string | undefined {
  const p = process.env['BULWARK_PASSWORD'];
  return p === undefined || p === '' ? undefined : p;
}

/** Checks a decrypted config: every field the engine relies on, in range. */
function validConfig(v: unknown, where: string): RepoConfig {
  const c = v as Record<string, unknown>;
  const ch = (c?.['chunker'] ?? {}) as Record<string, unknown>;
  const int = (x: unknown, lo: number, hi: number): boolean => typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;
  const ok =
    typeof c === 'object' && c !== null && typeof c['id'] === 'string' && typeof c['created'] === 'string' &&
    int(c['packSize'], 4096, 1 << 30) && int(ch['min'], 64, 64 << 20) && int(ch['avg'], 64, 64 << 20) && int(ch['max'], 64, 64 << 20) && int(ch['seed'], 0, 0xffffffff) &&
    (ch['min'] as number) <= (ch['avg'] as number) && (ch['avg'] as number) <= (ch['max'] as number);
  if (!ok) throw corrupt(`${where}: config has missing or out-of-range values (id, chunker, packSize)`);
  return c as unknown as RepoConfig;
}

export class Repository {
  readonly backend: Backend;
  readonly config: RepoConfig;
  readonly keyName: string;
  readonly #key: MasterKey;
  index = new MemIndex();
  /** Readable index files loaded by loadIndex(). */
  indexFiles: string[] = [];
  /** Packs the index lists that are not on storage (filled by loadIndex({ verifyPacks })): pack -> blob count. */
  missingPacks = new Map<string, number>();
  /** Files skipped because they are damaged (index, snapshot, key, pack header), by file. */
  readonly problems = new Map<string, string>();

  private constructor(backend: Backend, key: MasterKey, keyName: string, config: RepoConfig) {
    this.backend = backend;
    this.#key = key;
    this.keyName = keyName;
    this.config = config;
  }

  static async init(backend: Backend, password: string, opts: { packSize?: number; chunker?: ChunkerParams } = {}): Promise<Repository> {
    try {
      await backend.stat({ type: 'config', name: 'config' });
      throw new BulwarkError('BULWARK_REPO_EXISTS', `a repository already exists at ${backend.location}`, { hint: 'use it, or pick another --repo' });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    await backend.create();
    const key = newMasterKey();
    const keyName = await writeKey(backend, password, key);
    const config: RepoConfig = { id: randomBytes(32).toString('hex'), created: new Date().toISOString(), chunker: opts.chunker ?? DEFAULT_CHUNKER, packSize: opts.packSize ?? 16 * 1024 * 1024 };
    const sealed = seal(key.encKey, Buffer.from(JSON.stringify(config)), aad('config'));
    await backend.write({ type: 'config', name: 'config' }, Buffer.from(JSON.stringify({ format: 'bulwark-repository', version: FORMAT_VERSION, sealed: sealed.toString('base64') })));
    return new Repository(backend, key, keyName, config);
  }

  static async open(backend: Backend, password: string): Promise<Repository> {
    let raw: Buffer;
    try {
      raw = await backend.read({ type: 'config', name: 'config' });
    } catch (err) {
      if (isNotFound(err)) throw new BulwarkError('BULWARK_REPO_NOT_FOUND', `no repository at ${backend.location} (no config file)`, { hint: 'check --repo, or create one with `bulwark backup init --repo URL`' });
      throw err;
    }
    let head: { format?: unknown; version?: unknown; sealed?: unknown };
    try {
      head = JSON.parse(raw.toString('utf8')) as typeof head;
    } catch (err) {
      throw corrupt(`${backend.location}: config is not valid JSON`, err);
    }
    if (typeof head !== 'object' || head === null || head.format !== 'bulwark-repository') throw corrupt(`${backend.location}: config is not a Bulwark repository config`);
    if (head.version !== FORMAT_VERSION) throw new BulwarkError('BULWARK_REPO_VERSION', `${backend.location}: repository format version ${String(head.version)}; this Bulwark reads version ${FORMAT_VERSION}`);
    if (typeof head.sealed !== 'string') throw corrupt(`${backend.location}: config has no sealed part`);
    const found = await findKey(backend, password);
    let config: RepoConfig;
    try {
      config = JSON.parse(open(found.key.encKey, Buffer.from(head.sealed, 'base64'), aad('config')).toString('utf8')) as RepoConfig;
    } catch (err) {
      throw corrupt(`${backend.location}: config fails authentication`, err);
    }
    const repo = new Repository(backend, found.key, found.name, validConfig(config, backend.location));
    for (const p of found.problems) repo.problems.set(p.file, p.message);
    return repo;
  }

  idFor(sha: Uint8Array): Buffer {
    return blobId(this.#key.idKey, sha);
  }

  seal(plain: Uint8Array, what: Uint8Array): Buffer {
    return seal(this.#key.encKey, plain, what);
  }

  sealInto(plain: Uint8Array, what: Uint8Array, target: Buffer, at: number): number {
    return sealInto(this.#key.encKey, plain, what, target, at);
  }

  open(sealed: Uint8Array, what: Uint8Array): Buffer {
    return open(this.#key.encKey, sealed, what);
  }

  #noteDamage(d: readonly Damage[]): void {
    for (const x of d) this.problems.set(x.file, x.message);
  }

  /** Writes a sealed file named by the SHA-256 of its stored bytes. */
  async saveSealed(type: 'index' | 'snapshots' | 'locks', plain: Buffer, what: string, name?: string): Promise<string> {
    const sealed = this.seal(plain, aad(what));
    const n = name ?? sha256(sealed).toString('hex');
    await this.backend.write({ type, name: n }, sealed);
    return n;
  }

  /** Reads a sealed file, checking its name (hash) and authentication (BULWARK_REPO_CORRUPT naming it). */
  async loadSealed(type: 'index' | 'snapshots' | 'locks', name: string, what: string): Promise<Buffer> {
    try {
      return await readSealed(this, type, name, what);
    } catch (err) {
      throw err instanceof CorruptFile ? corrupt(err.message, err) : err;
    }
  }

  async readIndexFile(name: string): Promise<IndexPack[]> {
    try {
      return await readIndexFile(this, name);
    } catch (err) {
      throw err instanceof CorruptFile ? corrupt(err.message, err) : err;
    }
  }

  /**
   * Loads every readable index file into the in-memory index. A damaged index file is reported
   * (problems) and skipped, and the packs no readable index lists are then read from their
   * headers, so nothing it named is lost from view (scanUnindexed reads them always: restore does,
   * so a lost index file hides nothing). With verifyPacks, blobs in packs missing from storage are
   * left out (a backup then stores them again instead of deduplicating onto data that is gone).
   */
  async loadIndex(opts: { verifyPacks?: boolean; scanUnindexed?: boolean } = {}): Promise<void> {
    const { files, damaged } = await readAllIndexFiles(this);
    this.#noteDamage(damaged);
    let onDisk: Map<string, number> | undefined;
    let fromHeaders: IndexPack[] | undefined;
    if (damaged.length || opts.verifyPacks || opts.scanUnindexed) onDisk = await listPacks(this.backend);
    if ((damaged.length || opts.scanUnindexed) && onDisk) {
      const scan = await scanUnindexed(this, files, onDisk);
      this.#noteDamage(scan.damaged);
      fromHeaders = scan.packs;
    }
    const built = buildIndex(files, { ...(opts.verifyPacks && onDisk ? { onDisk } : {}), ...(fromHeaders ? { fromHeaders } : {}) });
    this.index = built.index;
    this.missingPacks = built.missingPacks;
    this.indexFiles = files.map((f) => f.name);
  }

  /** Decrypts (and decompresses) a blob from a buffer holding it. */
  openBlob(sealed: Uint8Array, id: Uint8Array, flags: number, where: string): Buffer {
    let plain: Buffer;
    try {
      plain = this.open(sealed, id);
    } catch (err) {
      throw corrupt(`${where}: blob ${Buffer.from(id).toString('hex').slice(0, 16)} fails authentication`, err);
    }
    if (flags & FLAG_ZSTD) {
      try {
        return zstdDecompress(plain);
      } catch (err) {
        throw corrupt(`${where}: blob ${Buffer.from(id).toString('hex').slice(0, 16)} does not decompress`, err);
      }
    }
    return plain;
  }

  /** Tree blobs cluster in a few packs: keep the last two read whole (one read instead of thousands). */
  #treePacks: { pack: string; data: Promise<Buffer> }[] = [];

  async loadBlobById(id: Buffer): Promise<Buffer> {
    const loc = this.index.get(id);
    if (!loc) throw corrupt(`blob ${id.toString('hex').slice(0, 16)} is not in the index (a tree or snapshot refers to missing data)`);
    let raw: Buffer;
    if (loc.type === BLOB_TREE) {
      let hit = this.#treePacks.find((p) => p.pack === loc.pack);
      if (!hit) {
        hit = { pack: loc.pack, data: this.backend.read({ type: 'data', name: loc.pack }) };
        hit.data.catch(() => (this.#treePacks = this.#treePacks.filter((p) => p !== hit)));
        this.#treePacks = [hit, ...this.#treePacks].slice(0, 2);
      }
      const whole = await hit.data;
      raw = whole.subarray(loc.offset, loc.offset + loc.length);
    } else raw = await this.backend.read({ type: 'data', name: loc.pack }, loc.offset, loc.length);
    return this.openBlob(raw, id, loc.flags, filePath({ type: 'data', name: loc.pack }));
  }

  locate(sha: Buffer): Location | undefined {
    return this.index.get(this.idFor(sha));
  }

  async loadTree(shaHex: string): Promise<Tree> {
    const sha = Buffer.from(shaHex, 'hex');
    const plain = await this.loadBlobById(this.idFor(sha));
    if (!sha256(plain).equals(sha)) throw corrupt(`tree ${shaHex.slice(0, 16)} does not match its hash`);
    try {
      return decodeTree(plain);
    } catch (err) {
      throw corrupt(`tree ${shaHex.slice(0, 16)} is malformed: ${(err as Error).message}`, err);
    }
  }

  /** Every readable snapshot, oldest first; damaged ones are skipped and recorded in `problems`. */
  async listSnapshots(): Promise<SnapshotInfo[]> {
    const { snapshots, damaged } = await readSnapshots(this);
    this.#noteDamage(damaged);
    return snapshots;
  }

  /** Snapshot files that could not be read at the last listing. */
  damagedSnapshots(): string[] {
    return [...this.problems.keys()].filter((f) => f.startsWith('snapshots/'));
  }

  async saveSnapshot(s: Snapshot): Promise<string> {
    return writeSnapshot(this, s);
  }

  /** 'latest' or an id prefix. */
  async findSnapshot(ref: string): Promise<SnapshotInfo> {
    const { snapshots, damaged } = await readSnapshots(this);
    this.#noteDamage(damaged);
    return pickSnapshot(snapshots, damaged, ref, this.backend.location);
  }

  /** A sink writing into this repository. */
  sink(opts: { packSize?: number } = {}): RepoSink {
    return new RepoSink(this, opts.packSize ?? this.config.packSize);
  }

  listKeys(): Promise<KeyListing[]> {
    return listKeys(this.backend, this.keyName);
  }

  addKey(password: string): Promise<string> {
    return writeKey(this.backend, password, this.#key);
  }

  removeKey(prefix: string): Promise<string> {
    return removeKey(this.backend, this.keyName, prefix);
  }
}
