// Owns the worker-thread half of the backup pipeline: read a file, cut it into FastCDC chunks,
// SHA-256 each chunk and compress it when that pays. Results go back to the main thread in order,
// which derives each repository's ids and encrypts (see archiver.ts). Payloads travel through a
// ring of slots in a SharedArrayBuffer (no allocation per chunk); the main thread acks a slot once
// every sink has sealed it. Back pressure: the worker waits for a free slot.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { Chunker, type ChunkerParams } from './chunker.js';
import { BLOB_DATA } from './format.js';
import { prepare } from './prepare.js';

export type WorkerRequest = { t: 'init'; chunker: ChunkerParams; ring: SharedArrayBuffer; slots: number } | { t: 'job'; job: number; path: string } | { t: 'ack'; slot: number } | { t: 'cancel'; job: number };
export type WorkerReply =
  | { t: 'chunk'; job: number; sha: Uint8Array; rawLength: number; slot: number; length: number; compressed: boolean }
  | { t: 'done'; job: number; size: number }
  | { t: 'error'; job: number; code: string; message: string };

if (parentPort) {
  const port = parentPort;
  let chunker: Chunker | undefined;
  const queue: { job: number; path: string }[] = [];
  let ring: Uint8Array | undefined;
  let slotSize = 0;
  const free: number[] = [];
  let wake: (() => void) | undefined;
  let running = false;
  let shared: Buffer | undefined;
  const cancelled = new Set<number>();

  const takeSlot = async (): Promise<number> => {
    while (free.length === 0) await new Promise<void>((r) => (wake = r));
    return free.pop() as number;
  };

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
        total += piece.length;
        if (cancelled.has(job)) throw Object.assign(new Error('cancelled: the backup stopped'), { code: 'ECANCELED' });
        const slot = await takeSlot();
        (ring as Uint8Array).set(p.payload, slot * slotSize);
        send({ t: 'chunk', job, sha: new Uint8Array(p.sha), rawLength: p.rawLength, slot, length: p.payload.length, compressed: p.compressed });
        start = cut;
      }
      cancelled.delete(job);
      send({ t: 'done', job, size: total });
    } catch (err) {
      cancelled.delete(job);
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
    if (m.t === 'init') {
      chunker = new Chunker(m.chunker);
      ring = new Uint8Array(m.ring);
      slotSize = m.ring.byteLength / m.slots;
      for (let i = 0; i < m.slots; i++) free.push(i);
    } else if (m.t === 'ack') {
      free.push(m.slot);
      if (wake) {
        const w = wake;
        wake = undefined;
        w();
      }
    } else if (m.t === 'cancel') {
      cancelled.add(m.job);
    } else {
      queue.push({ job: m.job, path: m.path });
      void drain();
    }
  });
}
