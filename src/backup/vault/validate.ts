// Owns what the vault can check of an upload without the repository key (pure logic): key files
// must parse as key files (bounded KDF parameters), snapshots, index files and packs are named by
// the SHA-256 of their bytes and have a minimum sealed size, and small file types have a size cap.
// Junk that passes (random bytes under their own hash) is skipped by clients and quarantined by
// the admin (docs/threat-model.md).
import { createHash } from 'node:crypto';
import type { FileType, Handle } from '../backend.js';
import { MAX_KEY_FILE, parseKeyFile } from '../keys.js';

/** Largest accepted body of the types validated whole (undefined: streamed, no cap but --max-body). */
export function uploadLimit(type: FileType): number | undefined {
  switch (type) {
    case 'keys':
      return MAX_KEY_FILE;
    case 'config':
    case 'locks':
      return 64 * 1024;
    case 'snapshots':
      return 16 * 1024 * 1024;
    default:
      return undefined;
  }
}

/** SEAL_OVERHEAD (nonce + tag) and the shortest plaintexts the engine writes. */
const MIN_SEALED: Partial<Record<FileType, number>> = { snapshots: 28 + 64, index: 28 + 8, locks: 28 + 2 };

/** Why the upload is malformed, or undefined when it is acceptable. */
export function validateUpload(h: Handle, body: Buffer): string | undefined {
  const min = MIN_SEALED[h.type];
  if (min !== undefined && body.length < min) return `${body.length} bytes is too short to be a sealed ${h.type} file`;
  if (h.type === 'keys') {
    try {
      parseKeyFile(body, `keys/${h.name}`);
    } catch (err) {
      return (err as Error).message;
    }
  }
  if (h.type === 'snapshots' && createHash('sha256').update(body).digest('hex') !== h.name) return 'its name is not the SHA-256 of its content';
  if (h.type === 'config') {
    try {
      const c = JSON.parse(body.toString('utf8')) as { format?: unknown; version?: unknown; sealed?: unknown };
      if (c.format !== 'bulwark-repository' || typeof c.version !== 'number' || typeof c.sealed !== 'string') return 'not a Bulwark repository config';
    } catch {
      return 'config is not JSON';
    }
  }
  return undefined;
}
