// Owns the worker-thread half of the backup pipeline: read a file, cut it into FastCDC chunks,
// SHA-256 each chunk and compress it when that pays. Results go back to the main thread in order,
// which derives each repository's ids and encrypts (see archiver.ts). Back pressure: the worker
// stops reading while more than MAX_UNACKED bytes are waiting in the main thread.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { Chunker, type ChunkerParams } from './chunker.js';
import { BLOB_DATA } from './format.js';
import { prepare } from './prepare.js';

export type WorkerRequest = { t: 'init'; chunker: ChunkerParams } | { t: 'job'; job: number; path: string } | { t: 'ack'; bytes: number };
export type WorkerReply =
  | { t: 'chunk'; job: number; sha: Uint8Array; rawLength: number; payload: Uint8Array; compressed: boolean }
  | { t: 'done'; job: number; size: number }
  | { t: 'error'; job: number; code: string; message: string };

const MAX_UNACKED = 8 * 1024 * 1024;

if (parentPort) {
  const port = parentPort;
  let chunker: Chunker | undefined;
  const queue: { job: number; path: string }[] = [];
  let unacked = 0;
  let wake: (() => void) | undefined;
  let running = false;
  let shared: Buffer | undefined;

  const waitAck = (): Promise<void> => new Promise((r) => (wake = r));

  const send = (m: WorkerReply, transfer?: ArrayBuffer[]): void => port.postMessage(m, transfer ?? []);

  async function runJob(job: number, path: string): Promise<void> {
    const c = chunker as Chunker;
    const max = c.params.max;
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      send({ t: 'error', job, code: e.code ?? 'EIO', message: e.message });
      return;
    }
    try {
      fstatSync(fd);
      shared ??= Buffer.allocUnsafe(2 * max);
      const buf = shared;
      let start = 0;
      let end = 0;
      let eof = false;
      let total = 0;
      for (;;) {
        if (!eof && end - start < max) {
          if (start > 0) {
            buf.copy(buf, 0, start, end);
            end -= start;
            start = 0;
          }
          while (end < buf.length) {
            const n = readSync(fd, buf, end, buf.length - end, null);
            if (n === 0) {
              eof = true;
              break;
            }
            end += n;
          }
        }
        if (start === end && eof) break;
        const cut = c.cut(buf, start, end, eof);
        if (cut < 0) throw new Error('chunker asked for more data at a full buffer');
        const piece = buf.subarray(start, cut);
        const p = prepare(BLOB_DATA, piece);
        // A buffer of our own to transfer (not copy) to the main thread: buf is reused.
        const own = p.payload.byteOffset === 0 && p.payload.byteLength === p.payload.buffer.byteLength && p.compressed;
        const payload = own ? p.payload : new Uint8Array(p.compressed ? p.payload : piece);
        total += piece.length;
        unacked += payload.length;
        const sha = new Uint8Array(p.sha);
        send({ t: 'chunk', job, sha, rawLength: p.rawLength, payload, compressed: p.compressed }, [payload.buffer as ArrayBuffer]);
        start = cut;
        while (unacked > MAX_UNACKED) await waitAck();
      }
      send({ t: 'done', job, size: total });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      send({ t: 'error', job, code: e.code ?? 'EIO', message: e.message });
    } finally {
      closeSync(fd);
    }
  }

  async function drain(): Promise<void> {
    if (running) return;
    running = true;
    while (queue.length) {
      const j = queue.shift() as { job: number; path: string };
      await runJob(j.job, j.path);
    }
    running = false;
  }

  port.on('message', (m: WorkerRequest) => {
    if (m.t === 'init') chunker = new Chunker(m.chunker);
    else if (m.t === 'ack') {
      unacked -= m.bytes;
      if (unacked <= MAX_UNACKED && wake) {
        const w = wake;
        wake = undefined;
        w();
      }
    } else {
      queue.push({ job: m.job, path: m.path });
      void drain();
    }
  });
}
