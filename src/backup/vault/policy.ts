// Owns the vault's access rules as pure logic: who may read, write and delete what, given the
// token's role, the append-only mode and the retention lock. No I/O; the server asks these.
import type { FileType } from '../backend.js';

export type Role = 'admin' | 'client';

export interface VaultToken {
  readonly name: string;
  readonly token: string;
  readonly role: Role;
  /** Repositories this token may use; undefined = all (admin tokens always reach all). */
  readonly repos?: readonly string[] | undefined;
  /** PUTs in flight at once (default 32 for clients, 64 for the admin) */
  readonly maxUploads?: number;
  /** bytes accepted per UTC day (default unlimited) */
  readonly maxBytesPerDay?: number;
}

export interface DeleteQuestion {
  readonly appendOnly: boolean;
  readonly role: Role;
  readonly type: FileType;
  /** When the file was written (ms since epoch). */
  readonly writtenAt: number;
  /** Per-file lock the writer asked for (ms since epoch), if any. */
  readonly retainUntil: number | undefined;
  /** The server-wide retention lock (ms); 0 = none. */
  readonly retentionMs: number;
  readonly now: number;
}

export type Decision = { allowed: true } | { allowed: false; reason: string };

/** When the file's lock expires: the later of the server retention and the writer's retainUntil. */
export function lockedUntil(q: Pick<DeleteQuestion, 'writtenAt' | 'retainUntil' | 'retentionMs'>): number {
  return Math.max(q.retentionMs > 0 ? q.writtenAt + q.retentionMs : 0, q.retainUntil ?? 0);
}

/**
 * May this delete proceed?
 * - Lock files are the repository's coordination, not data: any token may remove them.
 * - A file under a lock (server retention or the writer's retainUntil) is never deleted, by anyone.
 * - In append-only mode only the admin token deletes, and only files past their lock.
 */
export function mayDelete(q: DeleteQuestion): Decision {
  if (q.type === 'locks') return { allowed: true };
  const until = lockedUntil(q);
  if (q.now < until) {
    return { allowed: false, reason: `file is under a retention lock until ${new Date(until).toISOString()}` };
  }
  if (q.appendOnly && q.role !== 'admin') {
    return { allowed: false, reason: 'the vault is append-only: deletes need the admin token (and a file past its retention lock)' };
  }
  return { allowed: true };
}

/** May this token use this repository at all? */
export function mayUse(t: VaultToken, repo: string): boolean {
  return t.role === 'admin' || t.repos === undefined || t.repos.includes(repo);
}
