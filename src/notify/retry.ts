// Owns retrying a delivery: a few attempts with exponential backoff (200 ms, 400 ms, ... capped at
// 5 s), stopping early on an error marked permanent (a 4xx answer other than 429).
import type { Clock } from '../core/clock.js';

export class PermanentError extends Error {}

export async function withRetries<T>(clock: Clock, attempts: number, fn: (attempt: number) => Promise<T>): Promise<T> {
  let last: unknown;
  for (let a = 1; a <= attempts; a++) {
    try {
      return await fn(a);
    } catch (err) {
      last = err;
      if (err instanceof PermanentError || a === attempts) break;
      await clock.sleep(Math.min(5000, 200 * 2 ** (a - 1)));
    }
  }
  throw last;
}
