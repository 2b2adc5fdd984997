// Owns `create`: walking the paths, incremental reuse against a parent snapshot, driving the
// worker pool (chunk + hash + compress) and handing each prepared blob to every BlobSink (one per
// repository), then building trees bottom-up. It knows nothing about keys or packs: sinks do.
import { lstatSync, promises as fs, readdirSync, readlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { BulwarkError } from '../core/errors.js';
import type { ChunkerParams } from './chunker.js';
import { ExcludeMatcher } from './glob.js';
import { BLOB_DATA } from './format.js';
import { prepareTree, type BlobSink, type PreparedBlob } from './sink.js';
import type { SnapshotSummary, Tree, TreeNode } from './types.js';
import type { WorkerReply, WorkerRequest } from './worker.js';

export interface ArchiveProgress {
  files: number;
  bytes: number;
  totalFiles: number;
  totalBytes: number;
  scanDone: boolean;
  errors: number;
  current: string;
}

export interface ArchiveOptions {
  paths: string[];
  sinks: BlobSink[];
  chunker: ChunkerParams;
  excludes?: string[];
  /** The parent snapshot's root tree and a way to load its trees (from the first sink's repository). */
  parent?: { tree: string; load(sha: string): Promise<Tree> };
  workers?: number;
  onProgress?: (p: ArchiveProgress) => void;
  onError?: (path: string, message: string) => void;
}

export interface ArchiveResult {
  tree: string;
  summary: SnapshotSummary;
  errors: { path: string; message: string }[];
}

interface Job {
  onChunk: (c: PreparedBlob) => Promise<void>;
  chain: Promise<void>;
  resolve: (size: number) => void;
  reject: (e: Error & { code?: string }) => void;
  worker: number;
}

/** Payload slots per worker (each `chunker.max` bytes): the most chunks in flight per worker. */
const SLOTS = 4;

/** The worker pool: one job = one file, processed in order by one worker. */
export class ChunkPool {
  readonly #workers: Worker[] = [];
  readonly #load: number[] = [];
  readonly #jobs = new Map<number, Job>();
  #next = 1;

  readonly #n: number;
  readonly #chunker: ChunkerParams;
  #dead: (Error & { fatal: true }) | undefined;
  readonly #rings: SharedArrayBuffer[] = [];
  #closing = false;

  /** Workers start on the first file to read (an unchanged backup starts none). */
  constructor(n: number, chunker: ChunkerParams) {
    this.#n = n;
    this.#chunker = chunker;
  }

  #start(): void {
    const { n, chunker } = { n: this.#n, chunker: this.#chunker };
    for (let i = 0; i < n; i++) {
      const w = new Worker(new URL('./worker.js', import.meta.url));
      w.on('message', (m: WorkerReply) => this.#onMessage(i, m));
      const died = (err: Error): void => {
        this.#dead ??= Object.assign(new Error(`a backup worker thread died: ${err.message}`), { fatal: true as const });
        for (const [id, j] of this.#jobs) {
          if (j.worker !== i) continue;
          this.#jobs.delete(id);
          j.reject(this.#dead);
        }
      };
      w.on('error', died);
      w.on('exit', (code) => {
        if (!this.#closing) died(new Error(`exit code ${code}`));
      });
      const ring = new SharedArrayBuffer(SLOTS * chunker.max);
      this.#rings.push(ring);
      w.postMessage({ t: 'init', chunker, ring, slots: SLOTS } satisfies WorkerRequest);
      this.#workers.push(w);
      this.#load.push(0);
    }
  }

  #onMessage(wi: number, m: WorkerReply): void {
    const j = this.#jobs.get(m.job);
    if (!j) return;
    const w = this.#workers[wi] as Worker;
    if (m.t === 'chunk') {
      const ring = this.#rings[wi] as SharedArrayBuffer;
      const payload = new Uint8Array(ring, m.slot * (ring.byteLength / SLOTS), m.length); // valid until acked
      const blob: PreparedBlob = { type: BLOB_DATA, sha: Buffer.from(m.sha.buffer, m.sha.byteOffset, m.sha.byteLength), rawLength: m.rawLength, payload, compressed: m.compressed };
      const ack = (): void => w.postMessage({ t: 'ack', slot: m.slot } satisfies WorkerRequest);
      // Every slot is acked, also once the job has failed: a worker waiting for a free slot would
      // otherwise wait forever (a backup hung on a full disk). A failed job is cancelled.
      j.chain = j.chain.then(
        async () => {
          try {
            await j.onChunk(blob);
          } catch (err) {
            w.postMessage({ t: 'cancel', job: m.job } satisfies WorkerRequest);
            throw err;
          } finally {
            ack();
          }
        },
        (err: unknown) => {
          ack();
          throw err;
        },
      );
      j.chain.catch(() => undefined); // reported through 'done'/'error', or moot once the backup aborted
      return;
    }
    this.#jobs.delete(m.job);
    this.#load[wi] = (this.#load[wi] as number) - 1;
    if (m.t === 'done') j.chain.then(() => j.resolve(m.size), j.reject);
    else
      j.chain.then(
        () => j.reject(Object.assign(new Error(m.message), { code: m.code })),
        j.reject,
      );
  }

  /** Chunks a file; onChunk is called for each chunk in order (and awaited). Resolves with the size read. */
  chunkFile(path: string, onChunk: (c: PreparedBlob) => Promise<void>): Promise<number> {
    if (this.#workers.length === 0) this.#start();
    if (this.#dead) return Promise.reject(this.#dead);
    let wi = 0;
    for (let i = 1; i < this.#load.length; i++) if ((this.#load[i] as number) < (this.#load[wi] as number)) wi = i;
    const job = this.#next++;
    this.#load[wi] = (this.#load[wi] as number) + 1;
    return new Promise<number>((resolve, reject) => {
      this.#jobs.set(job, { onChunk, chain: Promise.resolve(), resolve, reject, worker: wi });
      (this.#workers[wi] as Worker).postMessage({ t: 'job', job, path } satisfies WorkerRequest);
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  #head = 0;
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((r) => this.#waiting.push(r));
  }
  release(): void {
    if (this.#head < this.#waiting.length) {
      const w = this.#waiting[this.#head++] as () => void;
      if (this.#head > 1024 && this.#head * 2 > this.#waiting.length) {
        this.#waiting = this.#waiting.slice(this.#head);
        this.#head = 0;
      }
      w();
    } else this.#free++;
  }
}

function emptySummary(): SnapshotSummary {
  return { files: 0, dirs: 0, bytes: 0, filesNew: 0, filesUnchanged: 0, bytesRead: 0, blobsAdded: 0, bytesStored: 0, errors: 0, skipped: 0, durationMs: 0 };
}

type BigStats = import('node:fs').BigIntStats;

function nodeFrom(name: string, st: BigStats, type: TreeNode['type']): TreeNode {
  return {
    name,
    type,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: st.mtimeNs.toString(),
    size: type === 'file' ? Number(st.size) : 0,
    inode: Number(st.ino),
    dev: Number(st.dev),
    links: Number(st.nlink),
  };
}

/** Backs up paths into every sink; returns the root tree hash and a summary. */
export async function archive(opts: ArchiveOptions): Promise<ArchiveResult> {
  const started = Date.now();
  const summary = emptySummary();
  const errors: { path: string; message: string }[] = [];
  const ex = new ExcludeMatcher(opts.excludes ?? []);
  const sinks = opts.sinks;
  const progress: ArchiveProgress = { files: 0, bytes: 0, totalFiles: 0, totalBytes: 0, scanDone: false, errors: 0, current: '' };
  const report = (): void => opts.onProgress?.(progress);
  const fail = (path: string, err: unknown): void => {
    const e = err as NodeJS.ErrnoException;
    const message = e.code ? `${e.code}: ${e.message}` : String(e.message ?? err);
    errors.push({ path, message });
    summary.errors++;
    progress.errors++;
    opts.onError?.(path, message);
  };

  const roots: { abs: string; name: string; st: BigStats }[] = [];
  const seen = new Set<string>();
  for (const p of opts.paths) {
    let st: BigStats;
    try {
      st = await fs.lstat(p, { bigint: true });
    } catch (err) {
      throw new BulwarkError('BULWARK_BACKUP_PATH', `cannot back up ${p}: ${(err as Error).message}`, { hint: 'pass paths that exist' });
    }
    const name = basename(p) || '/';
    if (seen.has(name)) throw new BulwarkError('BULWARK_BACKUP_PATH', `two paths share the base name '${name}'`, { hint: 'back them up in separate snapshots, or back up their common parent' });
    seen.add(name);
    roots.push({ abs: p, name, st });
  }

  // A concurrent scan for totals (progress bar ETA), only when someone watches progress.
  const scan = (async () => {
    if (!opts.onProgress) return;
    const walk = async (abs: string, name: string): Promise<void> => {
      if (ex.excluded(abs, name)) return;
      let st;
      try {
        st = await fs.lstat(abs);
      } catch {
        return;
      }
      if (st.isDirectory()) {
        let names: string[] = [];
        try {
          names = await fs.readdir(abs);
        } catch {
          return;
        }
        for (const n of names) await walk(join(abs, n), n);
      } else if (st.isFile()) {
        progress.totalFiles++;
        progress.totalBytes += st.size;
      }
    };
    for (const r of roots) await walk(r.abs, r.name);
    progress.scanDone = true;
  })();

  const workers = opts.workers ?? Math.max(1, Math.min(availableParallelism(), 4));
  const pool = new ChunkPool(workers, opts.chunker);
  const sem = new Semaphore(workers * 16);
  const hardlinks = new Map<string, Promise<{ content: string[]; sizes: number[] } | undefined>>();
  const ticker = setInterval(report, 250);
  ticker.unref();

  // The first storage error aborts the whole backup promptly: no file is read after it.
  let aborted: unknown;
  const store = async (b: PreparedBlob): Promise<void> => {
    if (aborted !== undefined) throw aborted;
    for (const s of sinks) if (!s.has(b.sha)) await s.add(b);
  };

  const storeTree = async (t: Tree): Promise<string> => {
    const b = prepareTree(t);
    await store(b);
    return b.sha.toString('hex');
  };

  const allStored = (content: readonly string[]): boolean => {
    for (const hex of content) {
      const sha = Buffer.from(hex, 'hex');
      for (const s of sinks) if (!s.has(sha)) return false;
    }
    return true;
  };

  const readFile = async (abs: string): Promise<{ content: string[]; sizes: number[] } | undefined> => {
    const content: string[] = [];
    const sizes: number[] = [];
    let storageError: unknown;
    if (aborted !== undefined) throw aborted;
    try {
      const size = await pool.chunkFile(abs, async (b) => {
        content.push(b.sha.toString('hex'));
        sizes.push(b.rawLength);
        progress.bytes += b.rawLength;
        try {
          await store(b);
        } catch (err) {
          storageError ??= err;
          throw err;
        }
      });
      summary.bytesRead += size;
      return { content, sizes };
    } catch (err) {
      if (storageError !== undefined) {
        aborted ??= storageError;
        throw storageError; // the repository failed: abort the backup
      }
      if ((err as { fatal?: boolean }).fatal) throw err; // the worker pool failed: abort too
      fail(abs, err); // the file could not be read: count it, go on
      return undefined;
    }
  };

  const fileNode = async (abs: string, node: TreeNode, st: BigStats, prev: TreeNode | undefined): Promise<TreeNode | undefined> => {
    summary.files++;
    summary.bytes += node.size;
    progress.current = abs;
    if (prev && prev.type === 'file' && prev.size === node.size && prev.mtime === node.mtime && prev.inode === node.inode && prev.content && prev.sizes && allStored(prev.content)) {
      summary.filesUnchanged++;
      progress.files++;
      progress.bytes += node.size;
      return { ...node, content: prev.content, sizes: prev.sizes };
    }
    let got: Promise<{ content: string[]; sizes: number[] } | undefined>;
    if (node.links > 1) {
      const key = `${st.dev}:${st.ino}`;
      const known = hardlinks.get(key);
      if (known) got = known;
      else hardlinks.set(key, (got = readFile(abs)));
    } else got = readFile(abs);
    const r = await got;
    progress.files++;
    if (!r) {
      summary.files--;
      summary.bytes -= node.size;
      return undefined;
    }
    summary.filesNew++;
    // The size is what was read, not what lstat said before: a file that grew or shrank meanwhile
    // would otherwise restore with a zero tail or fail --verify.
    let size = 0;
    for (const n of r.sizes) size += n;
    summary.bytes += size - node.size;
    return { ...node, size, content: r.content, sizes: r.sizes };
  };

  /** Walks a directory (dispatching its files) and resolves once the walk is done; `tree` completes later. */
  const saveDir = async (abs: string, prevSubtree: string | undefined): Promise<{ tree: Promise<string> }> => {
    summary.dirs++;
    let dirents: import('node:fs').Dirent[];
    try {
      dirents = readdirSync(abs, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    } catch (err) {
      fail(abs, err);
      return { tree: storeTree({ nodes: [] }) };
    }
    let prev: Map<string, TreeNode> | undefined;
    if (prevSubtree && opts.parent) {
      try {
        prev = new Map((await opts.parent.load(prevSubtree)).nodes.map((n) => [n.name, n]));
      } catch {
        prev = undefined; // parent unreadable: back up everything again
      }
    }
    const pending: Promise<TreeNode | undefined>[] = [];
    for (const d of dirents) {
      if (aborted !== undefined) throw aborted;
      const name = d.name;
      const child = join(abs, name);
      if (ex.excluded(child, name)) continue;
      // Subdirectories are walked one at a time, depth first (only the trees on the current path
      // are held); their files, and this directory's files, complete concurrently.
      let p: Promise<TreeNode | undefined>;
      if (d.isDirectory()) p = (await saveEntry(child, name, prev?.get(name))).node;
      else {
        // At most `sem` entries in flight: the walk waits here, so it never runs far ahead.
        await sem.acquire();
        p = saveEntry(child, name, prev?.get(name)).then((r) => r.node);
        void p.then(
          () => sem.release(),
          () => sem.release(),
        );
      }
      p.catch(() => undefined); // observed by Promise.all below; avoid an early unhandled rejection
      pending.push(p);
    }
    return { tree: Promise.all(pending).then((nodes) => storeTree({ nodes: nodes.filter((n): n is TreeNode => n !== undefined) })) };
  };

  const saveEntry = async (abs: string, name: string, prev: TreeNode | undefined, given?: BigStats): Promise<{ node: Promise<TreeNode | undefined> }> => {
    let st: BigStats;
    try {
      // Synchronous: a cached lstat takes microseconds; the promise round trip cost far more.
      st = given ?? lstatSync(abs, { bigint: true });
    } catch (err) {
      fail(abs, err);
      return { node: Promise.resolve(undefined) };
    }
    if (st.isDirectory()) {
      const node = nodeFrom(name, st, 'dir');
      const walked = await saveDir(abs, prev?.type === 'dir' ? prev.subtree : undefined);
      return { node: walked.tree.then((sha) => ({ ...node, subtree: sha })) };
    }
    if (st.isSymbolicLink()) {
      const node = nodeFrom(name, st, 'symlink');
      try {
        node.target = readlinkSync(abs);
      } catch (err) {
        fail(abs, err);
        return { node: Promise.resolve(undefined) };
      }
      return { node: Promise.resolve(node) };
    }
    if (st.isFile()) return { node: fileNode(abs, nodeFrom(name, st, 'file'), st, prev) };
    summary.skipped++;
    return { node: Promise.resolve(undefined) };
  };

  let tree: string;
  try {
    let prevRoot: Map<string, TreeNode> | undefined;
    if (opts.parent) {
      try {
        prevRoot = new Map((await opts.parent.load(opts.parent.tree)).nodes.map((n) => [n.name, n]));
      } catch {
        prevRoot = undefined;
      }
    }
    const nodes: TreeNode[] = [];
    const rootNodes: Promise<TreeNode | undefined>[] = [];
    for (const r of roots) {
      const p = (await saveEntry(r.abs, r.name, prevRoot?.get(r.name), r.st)).node;
      p.catch(() => undefined);
      rootNodes.push(p);
    }
    for (const n of await Promise.all(rootNodes)) if (n) nodes.push(n);
    nodes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    tree = await storeTree({ nodes });
    for (const s of sinks) await s.flush();
  } finally {
    clearInterval(ticker);
    await pool.close();
    await scan.catch(() => undefined);
  }
  report();
  summary.blobsAdded = sinks[0]?.stats.blobsAdded ?? 0;
  summary.bytesStored = sinks[0]?.stats.bytesStored ?? 0;
  summary.durationMs = Date.now() - started;
  return { tree, summary, errors };
}
