// Owns retry with exponential backoff as a wrapper around any Backend (restic's backend/retry):
// transient failures (unreachable, other I/O) are retried with jittered, capped backoff; answers
// that will not change (not found, exists, bad credentials, refused, full) are returned at once.
// A write retried after an ambiguous failure that finds the file already there counts as done
// when the stored bytes equal what was meant to be written.
import { type Clock, systemClock } from '../../core/clock.js';
import { BulwarkError } from '../../core/errors.js';
import { checkHandle, type Backend, type FileInfo, type FileType, type Handle, type WriteOptions } from '../backend.js';

export interface RetryOptions {
  /** Attempts in all (first try included); default 5. */
  attempts?: number;
  /** First delay (ms); doubles each retry; default 500. */
  baseDelayMs?: number;
  /** Largest delay (ms); default 30 s. */
  maxDelayMs?: number;
  clock?: Clock;
  /** Random source in [0, 1) for jitter (tests pass a fixed one). */
  random?: () => number;
  onRetry?: (info: { op: string; attempt: number; delayMs: number; error: unknown }) => void;
}

const TRANSIENT = new Set(['BULWARK_BACKEND_UNREACHABLE', 'BULWARK_BACKEND_IO']);

/** Is this failure worth another attempt? */
export function isTransient(err: unknown): boolean {
  if (err instanceof BulwarkError) return TRANSIENT.has(err.code);
  return true; // unknown errors (a bug in a driver, a reset) get retried too
}

/** The delay before retry number `retry` (1-based): full jitter over an exponential, capped. */
export function backoffDelay(retry: number, base: number, max: number, random: () => number): number {
  const ceiling = Math.min(max, base * 2 ** (retry - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

export class RetryBackend implements Backend {
  readonly location: string;
  readonly #inner: Backend;
  readonly #attempts: number;
  readonly #base: number;
  readonly #max: number;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #onRetry: RetryOptions['onRetry'];

  constructor(inner: Backend, opts: RetryOptions = {}) {
    this.#inner = inner;
    this.location = inner.location;
    this.#attempts = Math.max(1, opts.attempts ?? 5);
    this.#base = opts.baseDelayMs ?? 500;
    this.#max = opts.maxDelayMs ?? 30_000;
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? Math.random;
    this.#onRetry = opts.onRetry;
  }

  get inner(): Backend {
    return this.#inner;
  }

  async #run<T>(op: string, fn: (attempt: number) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn(attempt);
      } catch (err) {
        if (attempt >= this.#attempts || !isTransient(err)) throw err;
        const delayMs = backoffDelay(attempt, this.#base, this.#max, this.#random);
        this.#onRetry?.({ op, attempt, delayMs, error: err });
        await this.#clock.sleep(delayMs);
      }
    }
  }

  create(): Promise<void> {
    return this.#run('create', () => this.#inner.create());
  }

  stat(h: Handle): Promise<FileInfo> {
    return this.#run('stat', () => this.#inner.stat(h));
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    // A listing is retried from the start: collect it first so a failure mid-way repeats nothing to the caller.
    const files = await this.#run(`list ${type}`, async () => {
      const out: FileInfo[] = [];
      for await (const f of this.#inner.list(type)) out.push(f);
      return out;
    });
    yield* files;
  }

  read(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    return this.#run('read', () => this.#inner.read(h, offset, length));
  }

  async write(h: Handle, data: Buffer, opts?: WriteOptions): Promise<void> {
    checkHandle(h); // a bad name is a bug, never worth a retry
    return this.#run('write', async (attempt) => {
      try {
        await this.#inner.write(h, data, opts);
      } catch (err) {
        // An earlier attempt may have landed before its answer was lost: same bytes = success.
        if (attempt > 1 && err instanceof BulwarkError && err.code === 'BULWARK_BACKEND_EXISTS') {
          const stored = await this.#inner.read(h);
          if (stored.equals(data)) return;
        }
        throw err;
      }
    });
  }

  remove(h: Handle): Promise<void> {
    return this.#run('remove', () => this.#inner.remove(h));
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}
