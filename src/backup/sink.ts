// Owns writing new blobs into one repository: the BlobSink interface the archiver fans out to, and
// RepoSink, which seals blobs into packs (data and trees apart), writes them with bounded
// concurrency and names them in an index file every few packs (docs/backup-format.md "Packs").
import { createHash } from 'node:crypto';
import { prepare, type PreparedBlob } from './prepare.js';
import { encodeTree } from './treecodec.js';
import { aad, SEAL_OVERHEAD } from './crypto.js';
import { BLOB_DATA, BLOB_TREE, encodeHeader, encodeIndex, FLAG_ZSTD, type BlobEntry, type BlobType, type IndexPack } from './format.js';
import type { Repository } from './repository.js';
import type { Tree } from './types.js';

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

export { prepare, type PreparedBlob };
