// Owns repository locks (docs/backup-format.md "Locks"): shared for backups, exclusive for prune;
// refreshed while held (a new file, then the old one deleted: never rewritten); stale locks of dead
// processes (same host: pid gone; other host: not refreshed within STALE_MS) removed on sight.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { BulwarkError } from '../core/errors.js';
import { isNotFound } from './backend.js';
import type { Repository } from './repository.js';

export type LockKind = 'shared' | 'exclusive';

export interface LockInfo {
  host: string;
  pid: number;
  kind: LockKind;
  time: string;
  op: string;
}

export const REFRESH_MS = 60_000;
export const STALE_MS = 5 * 60_000;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Pure: is a lock stale as seen from this host at `now`? */
export function isStale(l: LockInfo, now: number, thisHost: string, alive: (pid: number) => boolean = pidAlive): boolean {
  if (l.host === thisHost && l.pid !== process.pid && !alive(l.pid)) return true;
  return now - Date.parse(l.time) > STALE_MS;
}

export class RepoLock {
  readonly #repo: Repository;
  readonly #kind: LockKind;
  readonly #op: string;
  #name = '';
  #timer: NodeJS.Timeout | undefined;
  #lost: string | undefined;
  #refreshing: Promise<void> = Promise.resolve();

  private constructor(repo: Repository, kind: LockKind, op: string) {
    this.#repo = repo;
    this.#kind = kind;
    this.#op = op;
  }

  static async acquire(repo: Repository, kind: LockKind, op: string): Promise<RepoLock> {
    const l = new RepoLock(repo, kind, op);
    await l.#write();
    const conflict = await l.#conflicts();
    if (conflict) {
      await repo.backend.remove({ type: 'locks', name: l.#name });
      throw new BulwarkError('BULWARK_REPO_LOCKED', `${repo.backend.location} is locked: ${conflict.kind} lock by pid ${conflict.pid} on ${conflict.host} (${conflict.op}, since ${conflict.time})`, {
        hint: kind === 'exclusive' ? 'wait for running backups to finish, then run it again' : 'wait for prune to finish, then run it again',
      });
    }
    l.#timer = setInterval(() => l.#refresh(), REFRESH_MS);
    l.#timer.unref();
    return l;
  }

  async #write(): Promise<void> {
    const info: LockInfo = { host: hostname(), pid: process.pid, kind: this.#kind, time: new Date().toISOString(), op: this.#op };
    const name = randomBytes(16).toString('hex');
    await this.#repo.saveSealed('locks', Buffer.from(JSON.stringify(info)), 'lock', name);
    this.#name = name;
  }

  async #conflicts(): Promise<LockInfo | undefined> {
    const host = hostname();
    // A lock that vanished between the listing and its read was most likely refreshed (its
    // holder wrote a new file, then deleted the old one): list again, or we miss a live holder.
    let locks = await readLocks(this.#repo);
    for (let i = 0; i < 10 && locks.some((l) => l.vanished && l.name !== this.#name); i++) locks = await readLocks(this.#repo);
    for (const { name, info, vanished } of locks) {
      if (name === this.#name) continue;
      if (vanished && this.#kind === 'exclusive') return { host: 'unknown', pid: 0, kind: 'shared', time: new Date().toISOString(), op: 'a lock that keeps being replaced' };
      if (!info) continue;
      if (isStale(info, Date.now(), host)) {
        await this.#repo.backend.remove({ type: 'locks', name });
        continue;
      }
      if (this.#kind === 'exclusive' || info.kind === 'exclusive') return info;
    }
    return undefined;
  }

  #refresh(): void {
    this.#refreshing = this.#refreshing.then(async () => {
      const old = this.#name;
      try {
        await this.#repo.backend.stat({ type: 'locks', name: old });
      } catch {
        this.#lost = `lock ${old} disappeared (removed as stale by another process?)`;
        return;
      }
      try {
        await this.#write();
        await this.#repo.backend.remove({ type: 'locks', name: old });
      } catch (err) {
        this.#lost = `lock refresh failed: ${(err as Error).message}`;
      }
    });
  }

  /** Throws when the lock was lost: the caller must not commit (write a snapshot / delete data). */
  assertHeld(): void {
    if (this.#lost) throw new BulwarkError('BULWARK_REPO_LOCKED', `lost the repository lock: ${this.#lost}`);
  }

  async release(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#refreshing;
    await this.#repo.backend.remove({ type: 'locks', name: this.#name });
  }
}

export async function readLocks(repo: Repository): Promise<{ name: string; info: LockInfo | undefined; vanished?: boolean }[]> {
  const out: { name: string; info: LockInfo | undefined; vanished?: boolean }[] = [];
  for await (const f of repo.backend.list('locks')) {
    try {
      out.push({ name: f.name, info: JSON.parse((await repo.loadSealed('locks', f.name, 'lock')).toString('utf8')) as LockInfo });
    } catch (err) {
      // damaged: not a holder we can honour; vanished: deleted since the listing (released, or refreshed under a new name)
      out.push({ name: f.name, info: undefined, ...(isNotFound(err) ? { vanished: true } : {}) });
    }
  }
  return out;
}
