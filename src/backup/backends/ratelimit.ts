// Owns rate limiting as a wrapper around any Backend: upload and download bandwidth caps (bytes
// per second), each a token bucket that reserves bytes and makes the caller wait for a debt to
// be repaid. The bucket is pure arithmetic on a Clock, tested with a FakeClock.
import { type Clock, systemClock } from '../../core/clock.js';
import type { Backend, FileInfo, FileType, Handle, WriteOptions } from '../backend.js';

/** A token bucket of bytes. reserve(n) returns how long (ms) the caller must wait before using n bytes. */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;

  /** rate in bytes per second; burst = bytes that may pass at once after idling (default one second's worth). */
  constructor(rate: number, clock: Clock, burst = rate) {
    if (!(rate > 0)) throw new RangeError('rate must be positive');
    this.#rate = rate;
    this.#burst = Math.max(1, burst);
    this.#clock = clock;
    this.#tokens = this.#burst;
    this.#last = clock.now();
  }

  reserve(n: number): number {
    const now = this.#clock.now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#rate) / 1000);
    this.#last = now;
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.#rate);
  }
}

export interface RateLimitOptions {
  /** Upload cap in bytes per second (writes). */
  uploadBps?: number | undefined;
  /** Download cap in bytes per second (reads). */
  downloadBps?: number | undefined;
  clock?: Clock;
}

export class RateLimitBackend implements Backend {
  readonly location: string;
  readonly #inner: Backend;
  readonly #up: TokenBucket | undefined;
  readonly #down: TokenBucket | undefined;
  readonly #clock: Clock;

  constructor(inner: Backend, opts: RateLimitOptions) {
    this.#inner = inner;
    this.location = inner.location;
    this.#clock = opts.clock ?? systemClock;
    this.#up = opts.uploadBps ? new TokenBucket(opts.uploadBps, this.#clock) : undefined;
    this.#down = opts.downloadBps ? new TokenBucket(opts.downloadBps, this.#clock) : undefined;
  }

  async #wait(bucket: TokenBucket | undefined, bytes: number): Promise<void> {
    if (!bucket || bytes <= 0) return;
    const ms = bucket.reserve(bytes);
    if (ms > 0) await this.#clock.sleep(ms);
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

  async read(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    // Reserve what we know up front; charge a whole-file read once its size is known.
    if (length !== undefined) {
      await this.#wait(this.#down, length);
      return this.#inner.read(h, offset, length);
    }
    const data = await this.#inner.read(h, offset, length);
    await this.#wait(this.#down, data.length);
    return data;
  }

  async write(h: Handle, data: Buffer, opts?: WriteOptions): Promise<void> {
    await this.#wait(this.#up, data.length);
    return this.#inner.write(h, data, opts);
  }

  remove(h: Handle): Promise<void> {
    return this.#inner.remove(h);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
