// Prune must stop before deleting anything once its exclusive lock is lost (docs/backup-format.md
// "Locks": the operation fails before it commits anything). The lock is lost here the way it is
// in life: another process removes it as stale, and the next refresh (timer mocked: 60 s) finds
// it gone. The backend is the real local one, wrapped only to pause at prune's index write.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../testing/helpers.js';
import { LocalBackend } from './backends/local.js';
import type { FileInfo, FileType, Handle } from './backend.js';
import * as engine from './engine.js';
import { REFRESH_MS, RepoLock } from './lock.js';
import { prng } from './testkit.js';
import { prepare, prepareTree } from './sink.js';
import { BLOB_DATA } from './format.js';
import { MemIndex } from './memindex.js';

process.env['BULWARK_SCRYPT_N'] = '1024';
const PW = 'correct horse';

class PausingBackend extends LocalBackend {
  onIndexWrite: (() => Promise<void>) | undefined;
  override async write(h: Handle, data: Buffer): Promise<void> {
    if (h.type === 'index' && this.onIndexWrite) {
      const f = this.onIndexWrite;
      this.onIndexWrite = undefined;
      await f();
    }
    return super.write(h, data);
  }
}

test('prune: a lock lost mid-prune stops it before it deletes index files or packs', async () => {
  const { dir, cleanup } = scratchDir('bulwark-prune-lock-');
  try {
    const src = join(dir, 'd');
    mkdirSync(src);
    const backend = new PausingBackend(join(dir, 'repo'));
    const repo = await engine.initRepository(backend, PW, { packSize: 512 * 1024 });
    writeFileSync(join(src, 'a'), prng(1, 700 * 1024));
    await engine.createSnapshot([repo], [src]);
    writeFileSync(join(src, 'a'), prng(2, 700 * 1024));
    await engine.createSnapshot([repo], [src]);
    await engine.forget(repo, { last: 1 });
    const packsBefore = readdirSync(join(dir, 'repo/data'), { recursive: true }).filter((n) => String(n).length > 10).sort();
    const indexBefore = readdirSync(join(dir, 'repo/index')).sort();

    mock.timers.enable({ apis: ['setInterval'] });
    try {
      backend.onIndexWrite = async () => {
        for (const n of readdirSync(join(dir, 'repo/locks'))) rmSync(join(dir, 'repo/locks', n)); // removed as stale by someone else
        mock.timers.tick(REFRESH_MS);
        for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 20)); // let the refresh run (setTimeout is not mocked)
      };
      await assert.rejects(engine.prune(repo), (e: Error & { code?: string }) => e.code === 'BULWARK_REPO_LOCKED' && /lost the repository lock/.test(e.message));
    } finally {
      mock.timers.reset();
    }
    const packsAfter = readdirSync(join(dir, 'repo/data'), { recursive: true }).filter((n) => String(n).length > 10).sort();
    for (const p of packsBefore) assert.ok(packsAfter.includes(p), `pack ${String(p)} was deleted without the lock`);
    for (const f of indexBefore) assert.ok(readdirSync(join(dir, 'repo/index')).includes(f), `index ${f} was deleted without the lock`);
    // the repository is still whole
    const rep = await engine.check(repo, { readData: true });
    assert.deepEqual(rep.errors, []);
  } finally {
    cleanup();
  }
});

/** Simulates a holder refreshing its lock (new file written, old deleted) exactly while another process reads the old one. */
class RefreshingBackend extends LocalBackend {
  refreshOnRead: ((name: string) => Promise<void>) | undefined;
  override async read(h: Handle, offset?: number, length?: number): Promise<Buffer> {
    if (h.type === 'locks' && this.refreshOnRead) {
      const f = this.refreshOnRead;
      this.refreshOnRead = undefined;
      await f(h.name);
    }
    return super.read(h, offset, length);
  }
}

test('locks: a shared lock refreshed between prune listing and reading it still blocks prune', async () => {
  const { dir, cleanup } = scratchDir('bulwark-prune-lock-');
  try {
    const backend = new RefreshingBackend(join(dir, 'repo'));
    const repo = await engine.initRepository(backend, PW);
    const backup = await RepoLock.acquire(repo, 'shared', 'backup');
    try {
      backend.refreshOnRead = async (name) => {
        // what RepoLock's refresh does: a new lock file first, then the old one deleted
        const info = await repo.loadSealed('locks', name, 'lock');
        await repo.saveSealed('locks', info, 'lock', 'feedface'.repeat(4));
        await backend.remove({ type: 'locks', name });
      };
      await assert.rejects(engine.prune(repo), (e: Error & { code?: string }) => e.code === 'BULWARK_REPO_LOCKED' && /shared lock by pid/.test(e.message), 'prune ran beside a running backup');
    } finally {
      await backup.release();
      await backend.remove({ type: 'locks', name: 'feedface'.repeat(4) });
    }
  } finally {
    cleanup();
  }
});

/** A real local backend that can fail index deletions (a crash inside prune) and list index files in a chosen order (backends list in any order). */
class CrashingBackend extends LocalBackend {
  failIndexRemove = false;
  indexFirst: string | undefined;
  override async remove(h: Handle): Promise<void> {
    if (this.failIndexRemove && h.type === 'index') throw new Error('simulated crash');
    return super.remove(h);
  }
  override async *list(type: FileType): AsyncIterable<FileInfo> {
    const all: FileInfo[] = [];
    for await (const f of super.list(type)) all.push(f);
    if (type === 'index' && this.indexFirst) all.sort((a, b) => (a.name === this.indexFirst ? -1 : b.name === this.indexFirst ? 1 : 0));
    yield* all;
  }
}

test('prune after a prune interrupted before deleting the old index: a pack listed twice with different blobs keeps every live blob', async () => {
  const { dir, cleanup } = scratchDir('bulwark-prune-lock-');
  try {
    const src = join(dir, 'd');
    mkdirSync(src);
    const backend = new CrashingBackend(join(dir, 'repo'));
    const repo = await engine.initRepository(backend, PW);
    writeFileSync(join(src, 'a'), prng(1, 300 * 1024));
    writeFileSync(join(src, 'b'), prng(2, 100 * 1024));
    await engine.createSnapshot([repo], [src]); // one data pack: a, b
    rmSync(join(src, 'b'));
    await engine.createSnapshot([repo], [src]);
    await engine.forget(repo, { last: 1 }); // b is now unused; its pack is kept (mostly live)
    const before = new Set(readdirSync(join(dir, 'repo/index')));
    backend.failIndexRemove = true;
    await assert.rejects(engine.prune(repo), /simulated crash/);
    backend.failIndexRemove = false;
    const written = readdirSync(join(dir, 'repo/index')).filter((n) => !before.has(n));
    assert.equal(written.length, 1, 'the interrupted prune wrote its new index');
    // A backup now finds b indexed (by the old index file) and stores nothing new for it.
    writeFileSync(join(src, 'b'), prng(2, 100 * 1024));
    await engine.createSnapshot([repo], [src]);
    backend.indexFirst = written[0];
    await engine.prune(repo);
    backend.indexFirst = undefined;
    const rep = await engine.check(repo, { readData: true });
    assert.deepEqual(rep.errors, []);
    const r = await engine.restore(repo, 'latest', { target: join(dir, 'out'), verify: true });
    assert.deepEqual(r.errors, []);
  } finally {
    cleanup();
  }
});

test('prune: a blob stored twice whose first indexed copy is in a missing pack keeps the copy that exists', async () => {
  const { dir, cleanup } = scratchDir('bulwark-prune-lock-');
  try {
    const backend = new CrashingBackend(join(dir, 'repo'));
    const repo = await engine.initRepository(backend, PW);
    const chunk = prepare(BLOB_DATA, prng(5, 64 * 1024));
    // two backups stored the same chunk (each its own pack and index file)
    const indexes: string[] = [];
    for (let i = 0; i < 2; i++) {
      const before = new Set(readdirSync(join(dir, 'repo/index')));
      repo.index = new MemIndex(); // a backup that started before the other's index existed
      const sink = repo.sink();
      await sink.add(chunk);
      await sink.flush();
      indexes.push(...readdirSync(join(dir, 'repo/index')).filter((n) => !before.has(n)));
    }
    const treeSink = repo.sink();
    const tree = prepareTree({ nodes: [{ name: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: '0', size: 64 * 1024, inode: 1, dev: 1, links: 1, content: [chunk.sha.toString('hex')], sizes: [64 * 1024] }] });
    await treeSink.add(tree);
    await treeSink.flush();
    await repo.saveSnapshot({ version: 1, time: new Date().toISOString(), host: 'h', user: 'u', paths: ['/x'], tags: [], tree: tree.sha.toString('hex'), parent: null, summary: { files: 0, dirs: 0, bytes: 0, filesNew: 0, filesUnchanged: 0, bytesRead: 0, blobsAdded: 0, bytesStored: 0, errors: 0, skipped: 0, durationMs: 0 } });
    // the first index file's copy is the one the index picks; its pack is lost
    backend.indexFirst = indexes[0];
    await repo.loadIndex();
    const lost = repo.index.get(repo.idFor(chunk.sha))?.pack as string;
    rmSync(join(dir, 'repo/data', lost.slice(0, 2), lost));
    await engine.prune(repo);
    backend.indexFirst = undefined;
    const r = await engine.restore(repo, 'latest', { target: join(dir, 'out'), verify: true });
    assert.deepEqual(r.errors, []);
  } finally {
    cleanup();
  }
});
