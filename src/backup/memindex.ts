// Owns the in-memory blob index: blob id -> (pack, offset, sealed length, type, flags), kept in
// packed typed arrays with an open-addressing hash table (about 50 bytes per blob, no per-blob
// objects). Pure data structure.
import type { BlobType } from './format.js';

export interface Location {
  pack: string; // pack id hex
  offset: number;
  length: number;
  type: BlobType;
  flags: number;
}

const EMPTY = -1;

export class MemIndex {
  #ids: Uint8Array;
  #pack: Uint32Array;
  #offset: Uint32Array;
  #meta: Uint32Array; // length (bits 0-27) | flags << 28 (bits 28-29) | (type-1) << 30
  #count = 0;
  #slots: Int32Array;
  #mask: number;
  readonly #packIds: string[] = [];
  readonly #packNo = new Map<string, number>();

  constructor(expected = 1024) {
    const cap = Math.max(16, expected);
    this.#ids = new Uint8Array(cap * 32);
    this.#pack = new Uint32Array(cap);
    this.#offset = new Uint32Array(cap);
    this.#meta = new Uint32Array(cap);
    const size = pow2(Math.ceil((cap * 4) / 3) + 1);
    this.#slots = new Int32Array(size).fill(EMPTY);
    this.#mask = size - 1;
  }

  get size(): number {
    return this.#count;
  }

  /** Bytes held by the arrays (for the memory figure in the bench). */
  get bytes(): number {
    return this.#ids.byteLength + this.#pack.byteLength + this.#offset.byteLength + this.#meta.byteLength + this.#slots.byteLength;
  }

  #find(id: Uint8Array): number {
    let s = ((id[0] as number) | ((id[1] as number) << 8) | ((id[2] as number) << 16) | ((id[3] as number) << 24)) & this.#mask;
    for (;;) {
      const e = this.#slots[s] as number;
      if (e === EMPTY) return -1 - s;
      const base = e * 32;
      let eq = true;
      for (let i = 0; i < 32; i++) {
        if (this.#ids[base + i] !== id[i]) {
          eq = false;
          break;
        }
      }
      if (eq) return e;
      s = (s + 1) & this.#mask;
    }
  }

  has(id: Uint8Array): boolean {
    return this.#find(id) >= 0;
  }

  get(id: Uint8Array): Location | undefined {
    const e = this.#find(id);
    if (e < 0) return undefined;
    const m = this.#meta[e] as number;
    return { pack: this.#packIds[this.#pack[e] as number] as string, offset: this.#offset[e] as number, length: m & 0x0fffffff, flags: (m >>> 28) & 3, type: ((m >>> 30) + 1) as BlobType };
  }

  /** Adds a location; a blob already present keeps its first location (any copy is valid). */
  add(id: Uint8Array, loc: Location): void {
    if (loc.length > 0x0fffffff) throw new Error('blob too large for the index');
    const f = this.#find(id);
    if (f >= 0) return;
    if (this.#count >= this.#pack.length) this.#grow();
    if ((this.#count + 1) * 4 > this.#slots.length * 3) this.#rehash(this.#slots.length * 2);
    let pn = this.#packNo.get(loc.pack);
    if (pn === undefined) {
      pn = this.#packIds.length;
      this.#packIds.push(loc.pack);
      this.#packNo.set(loc.pack, pn);
    }
    const e = this.#count++;
    this.#ids.set(id.subarray(0, 32), e * 32);
    this.#pack[e] = pn;
    this.#offset[e] = loc.offset;
    this.#meta[e] = (loc.length | (loc.flags << 28) | ((loc.type - 1) << 30)) >>> 0;
    this.#insertSlot(e);
  }

  #insertSlot(e: number): void {
    const id = this.#ids;
    const b = e * 32;
    let s = ((id[b] as number) | ((id[b + 1] as number) << 8) | ((id[b + 2] as number) << 16) | ((id[b + 3] as number) << 24)) & this.#mask;
    while (this.#slots[s] !== EMPTY) s = (s + 1) & this.#mask;
    this.#slots[s] = e;
  }

  #grow(): void {
    const cap = Math.ceil(this.#pack.length * 1.5);
    const ids = new Uint8Array(cap * 32);
    ids.set(this.#ids);
    this.#ids = ids;
    const grow = (old: Uint32Array): Uint32Array => {
      const a = new Uint32Array(cap);
      a.set(old);
      return a;
    };
    this.#pack = grow(this.#pack);
    this.#offset = grow(this.#offset);
    this.#meta = grow(this.#meta);
  }

  #rehash(size: number): void {
    this.#slots = new Int32Array(size).fill(EMPTY);
    this.#mask = size - 1;
    for (let e = 0; e < this.#count; e++) this.#insertSlot(e);
  }

  /** Every pack id that holds at least one indexed blob. */
  packs(): string[] {
    return [...this.#packIds];
  }
}

function pow2(n: number): number {
  let p = 16;
  while (p < n) p *= 2;
  return p;
}
