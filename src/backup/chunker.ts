// Owns content-defined chunking: FastCDC with a gear hash and normalized chunking. The gear table
// comes from a fixed PRNG seed, so chunk boundaries are the same in every repository (the 3-2-1
// fan-out depends on it; the privacy trade-off is in docs/threat-model.md). Pure logic, no I/O.

export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
  seed: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = { min: 512 * 1024, avg: 1024 * 1024, max: 4 * 1024 * 1024, seed: 0 };

function gearTable(seed: number): Int32Array {
  // splitmix32: deterministic, well mixed. Int32Array (not Uint32Array): loads stay small integers
  // for V8, which keeps the hot loop in integer arithmetic (a Uint32Array made it 10x slower).
  const t = new Int32Array(256);
  let s = (seed ^ 0x9e3779b9) >>> 0;
  for (let i = 0; i < 256; i++) {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    t[i] = z ^ (z >>> 16);
  }
  return t;
}

/** A mask of `bits` one-bits in the top of a 32-bit word (the bits that see the widest window). */
function topMask(bits: number): number {
  return bits >= 32 ? -1 : -1 << (32 - bits);
}

export class Chunker {
  readonly params: ChunkerParams;
  readonly #gear: Int32Array;
  readonly #maskS: number;
  readonly #maskL: number;

  constructor(params: ChunkerParams = DEFAULT_CHUNKER) {
    if (!(params.min > 0 && params.min <= params.avg && params.avg <= params.max)) throw new Error('chunker: need 0 < min <= avg <= max');
    this.params = params;
    this.#gear = gearTable(params.seed);
    const bits = Math.round(Math.log2(params.avg));
    this.#maskS = topMask(bits + 2);
    this.#maskL = topMask(bits - 2);
  }

  /**
   * The end (exclusive) of the chunk starting at `start` in buf[start, end). Returns -1 when more
   * data is needed (the caller must supply at least `max` bytes after start unless at EOF).
   */
  cut(buf: Uint8Array, start: number, end: number, eof: boolean): number {
    const { min, avg, max } = this.params;
    const n = end - start;
    if (n <= min) return eof ? end : -1;
    const gear = this.#gear;
    const maskS = this.#maskS;
    const maskL = this.#maskL;
    const normal = Math.min(end, start + avg);
    const limit = Math.min(end, start + max);
    let h = 0;
    let i = start + min;
    for (; i < normal; i++) {
      h = ((h << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((h & maskS) === 0) return i + 1;
    }
    for (; i < limit; i++) {
      h = ((h << 1) + (gear[buf[i] as number] as number)) | 0;
      if ((h & maskL) === 0) return i + 1;
    }
    if (limit === start + max) return limit;
    return eof ? end : -1;
  }
}
