// Owns the immutability wrapper: every file written through it (except lock files, which are
// coordination and must stay removable) asks the storage to refuse deletion for `lockMs`
// (S3 Object Lock retention, vault retention). Storage without locks ignores the request.
import type { Clock } from '../../core/clock.js';
import type { Backend, FileInfo, FileType, Handle, WriteOptions } from '../backend.js';

export class RetainBackend implements Backend {
  readonly location: string;
  readonly #inner: Backend;
  readonly #lockMs: number;
  readonly #clock: Clock;

  constructor(inner: Backend, lockMs: number, clock: Clock) {
    this.#inner = inner;
    this.location = inner.location;
    this.#lockMs = lockMs;
    this.#clock = clock;
  }

  create(): Promise<void> {
    return this.#inner.create();
  }
  stat(h: Handle): Promise<FileInfo> {
    return this.#inner.stat(h);
  }
  list(type: FileType): AsyncIterable<FileInfo> {
    return this.#inner.list(type);
  }
  read(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    return this.#inner.read(h, offset, length);
  }
  write(h: Handle, data: Buffer, opts: WriteOptions = {}): Promise<void> {
    if (h.type === 'locks') return this.#inner.write(h, data, opts);
    const retainUntil = Math.max(opts.retainUntil ?? 0, this.#clock.now() + this.#lockMs);
    return this.#inner.write(h, data, { ...opts, retainUntil });
  }
  remove(h: Handle): Promise<void> {
    return this.#inner.remove(h);
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
}
