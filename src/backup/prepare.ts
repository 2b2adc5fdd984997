// Owns preparing a blob for storage: its plaintext SHA-256, and zstd compression when it pays.
// Kept apart (small import graph) because every worker thread loads it.
import { createHash } from 'node:crypto';
import { compress as zstdCompress } from 'zstd-napi';
import type { BlobType } from './format.js';

/** A blob ready to store: the plaintext SHA-256, and the payload (zstd-compressed when compressed). */
export interface PreparedBlob {
  type: BlobType;
  sha: Buffer;
  rawLength: number;
  payload: Uint8Array;
  compressed: boolean;
}

/** Compresses when it pays (a probe of the first 64 KiB first). Used by workers and tree writes. */
export function prepare(type: BlobType, data: Uint8Array, sha?: Buffer, level = 3): PreparedBlob {
  const h = sha ?? createHash('sha256').update(data).digest();
  if (data.length >= 128) {
    // Probe four 16 KiB windows spread over the chunk (a chunk may be half media, half zeros).
    let worth = data.length <= 65536;
    for (let w = 0; w < 4 && !worth; w++) {
      const at = Math.floor(((data.length - 16384) * w) / 3);
      if (zstdCompress(data.subarray(at, at + 16384), { compressionLevel: 1 }).length < 16384 * 0.97) worth = true;
    }
    if (worth) {
      const c = zstdCompress(data, { compressionLevel: level });
      if (c.length < data.length * 0.97) return { type, sha: h, rawLength: data.length, payload: c, compressed: true };
    }
  }
  return { type, sha: h, rawLength: data.length, payload: data, compressed: false };
}

