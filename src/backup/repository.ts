// Owns one open repository: keys and config, sealed files (index, snapshots), the in-memory
// index, reading blobs, and the RepoSink that packs new blobs (docs/backup-format.md).
import { createHash, randomBytes } from 'node:crypto';
import { decompress as zstdDecompress } from 'zstd-napi';
import { prepare, type PreparedBlob } from './prepare.js';
import { decodeTree, encodeTree } from './treecodec.js';
import { BulwarkError } from '../core/errors.js';
import { filePath, isNotFound, type Backend, type FileType } from './backend.js';
import { DEFAULT_CHUNKER, type ChunkerParams } from './chunker.js';
import { aad, AuthError, blobId, makeKeyFile, newMasterKey, open, openKeyFile, seal, sealInto, SEAL_OVERHEAD, sha256, type KeyFile, type MasterKey } from './crypto.js';
import { BLOB_DATA, BLOB_TREE, decodeHeader, decodeIndex, encodeHeader, encodeIndex, FLAG_ZSTD, type BlobEntry, type BlobType, type IndexPack } from './format.js';
import { MemIndex, type Location } from './memindex.js';
import type { Snapshot, SnapshotInfo, Tree } from './types.js';

export const FORMAT_VERSION = 1;

export interface RepoConfig {
  id: string;
  created: string;
  chunker: ChunkerParams;
  packSize: number;
}

/**
 * Where an archiver puts blobs: one per repository. A 3-2-1 plan gives the archiver several sinks;
 * each derives its own ids and encrypts with its own keys.
 */
export interface BlobSink {
  readonly label: string;
  /** True when the repository already stores (or is storing) the blob with this plaintext SHA-256. */
  has(sha: Buffer): boolean;
  /**
   * Stores a blob (no-op when already present). May wait for pack writes (back pressure).
   * `payload` is only valid until the returned promise settles (it may live in a shared ring
   * buffer): a sink that keeps it must copy it.
   */
  add(blob: PreparedBlob): Promise<void>;
  /** Makes everything added durable: packs written, then an index file naming them. */
  flush(): Promise<void>;
  readonly stats: { blobsAdded: number; bytesStored: number };
}

export function corrupt(what: string, cause?: unknown): BulwarkError {
  return new BulwarkError('BULWARK_REPO_CORRUPT', what, {
    hint: 'run `bulwark backup check --read-data` to see every damaged file; restore from another copy',
    ...(cause === undefined ? {} : { cause }),
  });
}

export function passwordFromEnv(): string | undefined {
  const p = process.env['BULWARK_PASSWORD'];
  return p === undefined || p === '' ? undefined : p;
}

async function listNames(b: Backend, t: FileType): Promise<{ name: string; size: number }[]> {
  const out: { name: string; size: number }[] = [];
  for await (const f of b.list(t)) out.push(f);
  return out;
}

export class Repository {
  readonly backend: Backend;
  readonly config: RepoConfig;
  readonly keyName: string;
  readonly #key: MasterKey;
  index = new MemIndex();
  /** Index files loaded by loadIndex(). */
  indexFiles: string[] = [];

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
    const keyName = randomBytes(16).toString('hex');
    await backend.write({ type: 'keys', name: keyName }, Buffer.from(JSON.stringify(await makeKeyFile(password, key))));
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
    let head: { format?: string; version?: number; sealed?: string };
    try {
      head = JSON.parse(raw.toString('utf8')) as typeof head;
    } catch (err) {
      throw corrupt(`${backend.location}: config is not valid JSON`, err);
    }
    if (head.format !== 'bulwark-repository') throw corrupt(`${backend.location}: config is not a Bulwark repository config`);
    if (head.version !== FORMAT_VERSION) throw new BulwarkError('BULWARK_REPO_VERSION', `${backend.location}: repository format version ${String(head.version)}; this Bulwark reads version ${FORMAT_VERSION}`);
    const keys = await listNames(backend, 'keys');
    if (keys.length === 0) throw corrupt(`${backend.location}: the repository has no key files (keys/ is empty)`);
    let found: { key: MasterKey; name: string } | undefined;
    for (const k of keys.sort((a, b) => a.name.localeCompare(b.name))) {
      let kf: KeyFile;
      try {
        kf = JSON.parse((await backend.read({ type: 'keys', name: k.name })).toString('utf8')) as KeyFile;
      } catch {
        continue; // an unreadable key file is reported by check; try the others
      }
      try {
        found = { key: await openKeyFile(password, kf), name: k.name };
        break;
      } catch (err) {
        if (!(err instanceof AuthError)) throw err;
      }
    }
    if (!found) throw new BulwarkError('BULWARK_REPO_PASSWORD', `wrong password: it opens none of the ${keys.length} key(s) of ${backend.location}`, { hint: 'set BULWARK_PASSWORD or --password-file to a password added with `bulwark backup key add`' });
    let config: RepoConfig;
    try {
      config = JSON.parse(open(found.key.encKey, Buffer.from(head.sealed ?? '', 'base64'), aad('config')).toString('utf8')) as RepoConfig;
    } catch (err) {
      throw corrupt(`${backend.location}: config fails authentication`, err);
    }
    return new Repository(backend, found.key, found.name, config);
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

  /** Writes a sealed file named by the SHA-256 of its stored bytes. */
  async saveSealed(type: 'index' | 'snapshots' | 'locks', plain: Buffer, what: string, name?: string): Promise<string> {
    const sealed = this.seal(plain, aad(what));
    const n = name ?? sha256(sealed).toString('hex');
    await this.backend.write({ type, name: n }, sealed);
    return n;
  }

  /** Reads a sealed file, checking its name (hash) and authentication. */
  async loadSealed(type: 'index' | 'snapshots' | 'locks', name: string, what: string): Promise<Buffer> {
    const raw = await this.backend.read({ type, name });
    if (type !== 'locks' && sha256(raw).toString('hex') !== name) throw corrupt(`${filePath({ type, name })} is damaged (its SHA-256 does not match its name)`);
    try {
      return this.open(raw, aad(what));
    } catch (err) {
      throw corrupt(`${filePath({ type, name })} fails authentication`, err);
    }
  }

  async readIndexFile(name: string): Promise<IndexPack[]> {
    const plain = await this.loadSealed('index', name, 'index');
    try {
      return decodeIndex(plain);
    } catch (err) {
      throw corrupt(`${filePath({ type: 'index', name })} is malformed: ${(err as Error).message}`, err);
    }
  }

  /** Loads every index file into the in-memory index. */
  async loadIndex(): Promise<void> {
    const files = await listNames(this.backend, 'index');
    const parsed: IndexPack[][] = [];
    let count = 0;
    for (const f of files) {
      const packs = await this.readIndexFile(f.name);
      for (const p of packs) count += p.entries.length;
      parsed.push(packs);
    }
    const idx = new MemIndex(count + 1024);
    for (const packs of parsed) for (const p of packs) for (const e of p.entries) idx.add(e.id, { pack: p.id, offset: e.offset, length: e.length, type: e.type, flags: e.flags });
    this.index = idx;
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

  async listSnapshots(): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [];
    for (const f of await listNames(this.backend, 'snapshots')) {
      const s = JSON.parse((await this.loadSealed('snapshots', f.name, 'snapshot')).toString('utf8')) as Snapshot;
      out.push({ ...s, id: f.name });
    }
    return out.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
  }

  async saveSnapshot(s: Snapshot): Promise<string> {
    return this.saveSealed('snapshots', Buffer.from(JSON.stringify(s)), 'snapshot');
  }

  /** 'latest' or an id prefix. */
  async findSnapshot(ref: string): Promise<SnapshotInfo> {
    const all = await this.listSnapshots();
    if (ref === 'latest') {
      const s = all.at(-1);
      if (!s) throw new BulwarkError('BULWARK_BACKUP_SNAPSHOT_NOT_FOUND', `the repository at ${this.backend.location} has no snapshots`);
      return s;
    }
    const m = all.filter((s) => s.id.startsWith(ref.toLowerCase()));
    if (m.length !== 1 || ref.length < 4) {
      throw new BulwarkError('BULWARK_BACKUP_SNAPSHOT_NOT_FOUND', m.length > 1 ? `snapshot id '${ref}' is ambiguous (${m.length} match)` : `no snapshot '${ref}' in ${this.backend.location}`, { hint: '`bulwark backup snapshots` lists them' });
    }
    return m[0] as SnapshotInfo;
  }

  /** A sink writing into this repository. */
  sink(opts: { packSize?: number } = {}): RepoSink {
    return new RepoSink(this, opts.packSize ?? this.config.packSize);
  }

  // ---- keys
  async listKeys(): Promise<{ id: string; created: string; host: string; user: string; current: boolean }[]> {
    const out = [];
    for (const k of await listNames(this.backend, 'keys')) {
      try {
        const kf = JSON.parse((await this.backend.read({ type: 'keys', name: k.name })).toString('utf8')) as KeyFile;
        out.push({ id: k.name, created: kf.created, host: kf.host, user: kf.user, current: k.name === this.keyName });
      } catch {
        out.push({ id: k.name, created: '?', host: '?', user: '?', current: false });
      }
    }
    return out.sort((a, b) => a.created.localeCompare(b.created));
  }

  async addKey(password: string): Promise<string> {
    const name = randomBytes(16).toString('hex');
    await this.backend.write({ type: 'keys', name }, Buffer.from(JSON.stringify(await makeKeyFile(password, this.#key))));
    return name;
  }

  async removeKey(prefix: string): Promise<string> {
    const keys = await this.listKeys();
    const m = keys.filter((k) => k.id.startsWith(prefix));
    if (m.length !== 1) throw new BulwarkError('BULWARK_REPO_KEY', m.length ? `key id '${prefix}' is ambiguous` : `no key '${prefix}'`, { hint: '`bulwark backup key list` shows the ids' });
    const k = m[0] as (typeof keys)[number];
    if (k.current) throw new BulwarkError('BULWARK_REPO_KEY', `key ${k.id} is the one this password opened; remove it with another password`);
    if (keys.length === 1) throw new BulwarkError('BULWARK_REPO_KEY', 'refusing to remove the last key');
    await this.backend.remove({ type: 'keys', name: k.id });
    return k.id;
  }
}

export function prepareTree(tree: Tree): PreparedBlob {
  return prepare(BLOB_TREE, encodeTree(tree), undefined, 9);
}

const INDEX_EVERY = 4;
const MAX_INFLIGHT = 2;

/** Packs blobs for one repository; see BlobSink. */
export class RepoSink implements BlobSink {
  readonly label: string;
  readonly stats = { blobsAdded: 0, bytesStored: 0, packsWritten: 0 };
  readonly #repo: Repository;
  readonly #packSize: number;
  /** Data and trees go to separate packs (trees then load from a few small packs). */
  readonly #open: Record<BlobType, { buf: Buffer; entries: BlobEntry[]; size: number }> = { [BLOB_DATA]: { buf: Buffer.allocUnsafe(0), entries: [], size: 0 }, [BLOB_TREE]: { buf: Buffer.allocUnsafe(0), entries: [], size: 0 } };
  readonly #pending = new Set<string>();
  #inflight: Promise<void>[] = [];
  #unindexed: IndexPack[] = [];
  #error: unknown;
  #indexWrites: Promise<void> = Promise.resolve();
  #lastSha: Buffer | undefined;
  #lastId: Buffer | undefined;
  /** Pack buffers whose write finished, for reuse (fewer large allocations, less GC). */
  readonly #pool: Buffer[] = [];

  constructor(repo: Repository, packSize: number) {
    this.#repo = repo;
    this.#packSize = packSize;
    this.label = repo.backend.location;
  }

  #id(sha: Buffer): Buffer {
    if (sha !== this.#lastSha) {
      this.#lastSha = sha;
      this.#lastId = this.#repo.idFor(sha);
    }
    return this.#lastId as Buffer;
  }

  has(sha: Buffer): boolean {
    const id = this.#id(sha);
    return this.#repo.index.has(id) || this.#pending.has(id.toString('hex'));
  }

  async add(b: PreparedBlob): Promise<void> {
    if (this.#error) throw this.#error;
    const id = this.#id(b.sha);
    const hex = id.toString('hex');
    if (this.#repo.index.has(id) || this.#pending.has(hex)) return;
    const need = b.payload.length + SEAL_OVERHEAD;
    const o = this.#open[b.type];
    if (o.size + need > o.buf.length) {
      // Data: a pooled pack buffer, or packSize + one max blob + room for a header. Trees: grow by doubling.
      const first = b.type === BLOB_DATA ? this.#packSize + 4 * 1024 * 1024 + 256 * 1024 : 256 * 1024;
      const want = Math.max(o.size === 0 ? first : o.buf.length * 2, o.size + need);
      const pooled = o.size === 0 && b.type === BLOB_DATA ? this.#pool.pop() : undefined;
      const next = pooled && pooled.length >= want ? pooled : Buffer.allocUnsafe(want);
      o.buf.copy(next, 0, 0, o.size);
      o.buf = next;
    }
    const n = this.#repo.sealInto(b.payload, id, o.buf, o.size);
    o.entries.push({ type: b.type, flags: b.compressed ? FLAG_ZSTD : 0, id, offset: o.size, length: n, rawLength: b.rawLength });
    o.size += n;
    this.#pending.add(hex);
    this.stats.blobsAdded++;
    this.stats.bytesStored += n;
    if (o.size >= this.#packSize) await this.#finishPack(b.type);
  }

  async #finishPack(type: BlobType): Promise<void> {
    const o = this.#open[type];
    if (o.entries.length === 0) return;
    const entries = o.entries;
    const header = this.#repo.seal(encodeHeader(entries), aad('pack-header'));
    let data: Buffer;
    if (o.size + header.length + 4 <= o.buf.length) {
      data = o.buf.subarray(0, o.size + header.length + 4);
      header.copy(data, o.size);
    } else {
      data = Buffer.concat([o.buf.subarray(0, o.size), header, Buffer.alloc(4)]);
    }
    data.writeUInt32LE(header.length, data.length - 4);
    const id = createHash('sha256').update(data).digest('hex');
    const full = o.buf;
    o.buf = Buffer.allocUnsafe(0);
    o.entries = [];
    o.size = 0;
    const delay = Number(process.env['BULWARK_TEST_PACK_DELAY_MS']) || 0; // tests: make a backup slow enough to interrupt
    const write = delay > 0 ? new Promise((r) => setTimeout(r, delay)).then(() => this.#repo.backend.write({ type: 'data', name: id }, data)) : this.#repo.backend.write({ type: 'data', name: id }, data);
    const p = write.then(
      () => {
        for (const e of entries) {
          this.#repo.index.add(e.id, { pack: id, offset: e.offset, length: e.length, type: e.type, flags: e.flags });
          this.#pending.delete(e.id.toString('hex'));
        }
        this.stats.packsWritten++;
        if (type === BLOB_DATA && full.length >= data.length && this.#pool.length < 2) this.#pool.push(full);
        this.#unindexed.push({ id, size: data.length, entries });
        if (this.#unindexed.length >= INDEX_EVERY) this.#writeIndex();
      },
      (err: unknown) => {
        this.#error ??= err;
      },
    );
    this.#inflight.push(p);
    void p.finally(() => (this.#inflight = this.#inflight.filter((x) => x !== p)));
    while (this.#inflight.length >= MAX_INFLIGHT) await Promise.race(this.#inflight);
    if (this.#error) throw this.#error;
  }

  #writeIndex(): void {
    const packs = this.#unindexed;
    this.#unindexed = [];
    if (packs.length === 0) return;
    this.#indexWrites = this.#indexWrites.then(async () => {
      if (this.#error) return;
      try {
        await this.#repo.saveSealed('index', encodeIndex(packs), 'index');
      } catch (err) {
        this.#error ??= err;
      }
    });
  }

  async flush(): Promise<void> {
    if (this.#error) throw this.#error;
    await this.#finishPack(BLOB_DATA);
    await this.#finishPack(BLOB_TREE);
    await Promise.all(this.#inflight);
    if (this.#error) throw this.#error;
    this.#writeIndex();
    await this.#indexWrites;
    if (this.#error) throw this.#error;
  }

  /** Plaintext-hash helper for callers that need a blob's id. */
  idFor(sha: Buffer): Buffer {
    return this.#repo.idFor(sha);
  }
}

export { decodeHeader, prepare, type PreparedBlob };
