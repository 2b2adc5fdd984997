// The engine end to end through its API, on real files in temp dirs: round trip of every file kind
// (bytes and metadata, run as root so owners are tested), excludes, incremental reuse, damage
// found by check --read-data and named, prune after forget, and locks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, lstatSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { hostname } from 'node:os';
import { createHash } from 'node:crypto';
import { scratchDir } from '../testing/helpers.js';
import { LocalBackend } from './backends/local.js';
import * as engine from './engine.js';
import { isStale, RepoLock } from './lock.js';
import { diffTrees, listTree, makeTree, prng } from './testkit.js';

process.env['BULWARK_SCRYPT_N'] = '1024';
const PW = 'correct horse';

async function newRepo(dir: string, packSize?: number): Promise<engine.Repository> {
  return engine.initRepository(new LocalBackend(join(dir, 'repo')), PW, packSize ? { packSize } : {});
}

test('round trip: every file kind restores byte for byte with its metadata; excludes; incremental reuse', async () => {
  const { dir, cleanup } = scratchDir('bulwark-engine-');
  try {
    const src = join(dir, 'data');
    makeTree(src);
    const repo = await newRepo(dir);
    const first = await engine.createSnapshot([repo], [src], { excludes: ['*.tmp'], tags: ['t1'] });
    assert.deepEqual(first.errors, []);
    assert.equal(first.summary.filesUnchanged, 0);

    const out = join(dir, 'out');
    const r = await engine.restore(repo, 'latest', { target: out, verify: true });
    assert.deepEqual(r.errors, []);
    const want = listTree(src);
    want.delete('cache/junk.tmp');
    const got = listTree(join(out, 'data'));
    // the cache dir's mtime changed when junk.tmp was created after it; it is restored as recorded
    assert.deepEqual(diffTrees(want, got), []);
    assert.equal(existsSync(join(out, 'data/cache/junk.tmp')), false, 'excluded file not restored');
    const a = lstatSync(join(out, 'data/hard-a'));
    const b = lstatSync(join(out, 'data/src/hard-b'));
    assert.equal(a.ino, b.ino, 'hard links restored as one inode');
    assert.equal(a.nlink, 2);
    const sparse = statSync(join(out, 'data/sparse.img'));
    assert.equal(sparse.size, 12 * 1024 * 1024);
    assert.ok(sparse.blocks * 512 < 6 * 1024 * 1024, `sparse file restored with holes (${sparse.blocks * 512} bytes allocated)`);
    if (process.getuid?.() === 0) assert.equal(lstatSync(join(out, 'data/secret.key')).uid, 1234);

    // Unchanged: nothing is read again. One changed file: only it is read.
    const second = await engine.createSnapshot([repo], [src], { excludes: ['*.tmp'] });
    assert.equal(second.summary.filesNew, 0);
    assert.equal(second.summary.bytesRead, 0);
    assert.equal(second.summary.filesUnchanged, first.summary.files);
    appendFileSync(join(src, 'src/readme.md'), 'changed\n');
    const third = await engine.createSnapshot([repo], [src], { excludes: ['*.tmp'] });
    assert.equal(third.summary.filesNew, 1);
    assert.equal(third.summary.bytesRead, statSync(join(src, 'src/readme.md')).size);
    const snaps = await repo.listSnapshots();
    assert.equal(snaps.length, 3);
    assert.equal(snaps[2]?.parent, snaps[1]?.id);
    assert.deepEqual(snaps[0]?.tags, ['t1']);
    assert.equal(snaps[0]?.host, hostname());
    assert.deepEqual(snaps[0]?.paths, [src]);
    // --include restores a subset only
    const sub = join(dir, 'sub');
    const r2 = await engine.restore(repo, snaps[2]?.id.slice(0, 8) as string, { target: sub, include: [join(src, 'src/lib')] });
    assert.deepEqual(r2.errors, []);
    assert.deepEqual(readdirSync(join(sub, 'data')), ['src']);
    assert.deepEqual(readdirSync(join(sub, 'data/src')), ['lib']);
    assert.equal(readdirSync(join(sub, 'data/src/lib')).length, 20);
    const check = await engine.check(repo, { readData: true });
    assert.deepEqual(check.errors, []);
  } finally {
    cleanup();
  }
});

test('damage: flipping any single byte of a pack is found by check --read-data, naming the pack and the files hit; untouched files still restore', async () => {
  const { dir, cleanup } = scratchDir('bulwark-engine-');
  try {
    const src = join(dir, 'd');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(src);
    // six files of 300 KiB (one chunk each) in packs of ~600 KiB: several packs
    for (let i = 0; i < 6; i++) writeFileSync(join(src, `f${i}`), prng(100 + i, 300 * 1024));
    const repo = await newRepo(dir, 600 * 1024);
    await engine.createSnapshot([repo], [src]);
    const packs: string[] = [];
    for await (const f of repo.backend.list('data')) packs.push(f.name);
    assert.ok(packs.length >= 3, `${packs.length} packs`);
    // the pack holding f0's chunk (data only: trees are written last, into the last pack)
    await repo.loadIndex();
    const pack = repo.locate(createHash('sha256').update(prng(100, 300 * 1024)).digest())?.pack as string;
    assert.ok(pack);
    const path = join(dir, 'repo/data', pack.slice(0, 2), pack);
    const orig = readFileSync(path);
    // positions: first byte, inside the first blob, inside the last blob, the header, the last byte
    const positions = [0, 1000, Math.floor(orig.length / 2), orig.length - 100, orig.length - 1];
    for (let i = 0, x = 12345; i < 15; i++) positions.push((x = (x * 1103515245 + 12345) % 2 ** 31) % orig.length); // and 15 more, spread at random
    for (const pos of positions) {
      const bad = Buffer.from(orig);
      bad[pos] = (bad[pos] as number) ^ 0x01;
      writeFileSync(path, bad);
      const rep = await engine.check(repo, { readData: true });
      assert.equal(rep.ok, false, `flip at ${pos} not detected`);
      const d = rep.damagedPacks.find((p) => p.pack === pack);
      assert.ok(d, `flip at ${pos}: pack ${pack} not named`);
      assert.ok(rep.errors.some((e) => e.includes(pack)), 'the error text names the pack file');
      if (d.damagedBlobs > 0) assert.ok(d.files.length > 0 && d.files.every((f) => /\/d\/f\d$/.test(f.path)), `flip at ${pos}: files hit not named: ${JSON.stringify(d.files)}`);
      else assert.ok(d.problems.some((p) => p.includes('header') || p.includes('SHA-256')));
    }
    // With a blob damaged: the other files restore, the damaged ones are listed.
    const bad = Buffer.from(orig);
    bad[1000] = (bad[1000] as number) ^ 0x80;
    writeFileSync(path, bad);
    const rep = await engine.check(repo, { readData: true });
    const hit = new Set(rep.damagedPacks.flatMap((p) => p.files.map((f) => f.path.split('/').at(-1))));
    assert.ok(hit.size >= 1);
    const out = join(dir, 'out');
    const r = await engine.restore(repo, 'latest', { target: out });
    assert.deepEqual(new Set(r.errors.map((e) => e.path.split('/').at(-1))), hit);
    for (let i = 0; i < 6; i++) {
      if (hit.has(`f${i}`)) continue;
      assert.ok(readFileSync(join(out, 'd', `f${i}`)).equals(prng(100 + i, 300 * 1024)), `f${i} restored intact`);
    }
    // A missing pack is named, with the files it hits, even without --read-data.
    const { renameSync } = await import('node:fs');
    renameSync(path, `${path}.away`);
    const gone = await engine.check(repo);
    const g = gone.damagedPacks.find((p) => p.pack === pack);
    assert.ok(g && g.problems.some((p) => p.startsWith('missing')), 'missing pack named');
    assert.ok(g.files.some((f) => f.path.endsWith('/d/f0')), `files hit by the missing pack: ${JSON.stringify(g.files)}`);
    renameSync(`${path}.away`, path);
    // structure-only check does not read packs, so it passes; a damaged index file is named.
    writeFileSync(path, orig);
    const idx = readdirSync(join(dir, 'repo/index'))[0] as string;
    const ip = join(dir, 'repo/index', idx);
    const ib = readFileSync(ip);
    ib[10] = (ib[10] as number) ^ 1;
    writeFileSync(ip, ib);
    const rep2 = await engine.check(repo);
    assert.ok(rep2.errors.some((e) => e.includes(`index/${idx}`)));
  } finally {
    cleanup();
  }
});

test('forget + prune: removes what no snapshot needs, repacks, and every kept snapshot still restores', async () => {
  const { dir, cleanup } = scratchDir('bulwark-engine-');
  try {
    const src = join(dir, 'd');
    const { mkdirSync, rmSync } = await import('node:fs');
    mkdirSync(src);
    const repo = await newRepo(dir, 512 * 1024);
    for (let round = 0; round < 3; round++) {
      rmSync(join(src, `r${round - 1}`), { force: true });
      writeFileSync(join(src, `r${round}`), prng(round + 1, 700 * 1024));
      writeFileSync(join(src, 'keep'), prng(99, 200 * 1024));
      await engine.createSnapshot([repo], [src]);
    }
    const sizeOf = async (): Promise<number> => {
      let n = 0;
      for await (const f of repo.backend.list('data')) n += f.size;
      return n;
    };
    const before = await sizeOf();
    const dry = await engine.forget(repo, { last: 1 }, { dryRun: true });
    assert.equal(dry.filter((d) => !d.keep).length, 2);
    assert.equal((await repo.listSnapshots()).length, 3, 'dry run removes nothing');
    await engine.forget(repo, { last: 1 });
    assert.equal((await repo.listSnapshots()).length, 1);
    const pr = await engine.prune(repo);
    assert.ok(pr.packsDeleted > 0);
    const after = await sizeOf();
    assert.ok(after < before * 0.6, `repository shrank from ${before} to ${after}`);
    const rep = await engine.check(repo, { readData: true });
    assert.deepEqual(rep.errors, []);
    assert.deepEqual(rep.warnings, []);
    const out = join(dir, 'out');
    const r = await engine.restore(repo, 'latest', { target: out, verify: true });
    assert.deepEqual(r.errors, []);
    assert.ok(readFileSync(join(out, 'd/r2')).equals(prng(3, 700 * 1024)));
    assert.ok(readFileSync(join(out, 'd/keep')).equals(prng(99, 200 * 1024)));
  } finally {
    cleanup();
  }
});

test('locks: prune is refused while a backup holds a shared lock; a dead process lock is recovered', async () => {
  const { dir, cleanup } = scratchDir('bulwark-engine-');
  try {
    const repo = await newRepo(dir);
    const shared = await RepoLock.acquire(repo, 'shared', 'backup');
    const other = await RepoLock.acquire(repo, 'shared', 'backup'); // shared locks coexist
    await assert.rejects(engine.prune(repo), (e: Error & { code?: string }) => e.code === 'BULWARK_REPO_LOCKED' && /shared lock by pid/.test(e.message));
    await shared.release();
    await other.release();
    // A lock left by a dead process on this host: written as pid 2^22-1 (not running).
    await repo.saveSealed('locks', Buffer.from(JSON.stringify({ host: hostname(), pid: 4194303, kind: 'shared', time: new Date().toISOString(), op: 'backup' })), 'lock', 'deadbeef'.repeat(4));
    const pr = await engine.prune(repo);
    assert.equal(pr.packsDeleted, 0);
    assert.deepEqual(readdirSync(join(dir, 'repo/locks')), []);
    // check takes a shared lock: refused while prune holds the exclusive one, unless noLock.
    const pruning = await RepoLock.acquire(repo, 'exclusive', 'prune');
    await assert.rejects(engine.check(repo), (e: Error & { code?: string }) => e.code === 'BULWARK_REPO_LOCKED' && /exclusive lock by pid/.test(e.message));
    assert.equal((await engine.check(repo, { noLock: true })).ok, true);
    await pruning.release();
    assert.equal((await engine.check(repo)).ok, true);
    assert.deepEqual(readdirSync(join(dir, 'repo/locks')), [], 'check released its lock');
  } finally {
    cleanup();
  }
});

test('full disk: a backup that runs out of space fails with BULWARK_BACKEND_FULL, writes no snapshot, and the repository stays usable', async () => {
  const { dir, cleanup } = scratchDir('bulwark-engine-');
  const { mkdirSync } = await import('node:fs');
  const { execFileSync } = await import('node:child_process');
  const mnt = join(dir, 'small');
  mkdirSync(mnt);
  // A real 3 MiB tmpfs (root can mount here; this is the real ENOSPC path, no mock).
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]);
  try {
    const src = join(dir, 'src');
    mkdirSync(src);
    for (let i = 0; i < 6; i++) writeFileSync(join(src, `big${i}`), prng(300 + i, 1024 * 1024));
    const repo = await engine.initRepository(new LocalBackend(join(mnt, 'repo')), PW, { packSize: 512 * 1024 });
    await assert.rejects(engine.createSnapshot([repo], [src]), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_FULL');
    assert.equal((await repo.listSnapshots()).length, 0);
    assert.deepEqual(readdirSync(join(mnt, 'repo/locks')), [], 'the lock was released');
    const rep = await engine.check(repo, { readData: true });
    assert.deepEqual(rep.errors, []);
    // after pruning the leftovers, a small backup fits and restores
    await engine.prune(repo);
    const small = join(dir, 'small-src');
    mkdirSync(small);
    writeFileSync(join(small, 'note'), 'fits');
    await engine.createSnapshot([repo], [small]);
    const out = join(dir, 'out');
    assert.deepEqual((await engine.restore(repo, 'latest', { target: out })).errors, []);
    assert.equal(readFileSync(join(out, 'small-src/note'), 'utf8'), 'fits');
  } finally {
    execFileSync('umount', [mnt]);
    cleanup();
  }
});

test('keys: a second password opens the repository; the key in use and the last key cannot be removed', async () => {
  const { dir, cleanup } = scratchDir('bulwark-engine-');
  try {
    const repo = await newRepo(dir);
    const second = await repo.addKey('second password');
    const again = await engine.openRepository(new LocalBackend(join(dir, 'repo')), 'second password');
    assert.equal(again.config.id, repo.config.id);
    assert.equal(again.keyName, second);
    await assert.rejects(again.removeKey(second), (e: Error & { code?: string }) => e.code === 'BULWARK_REPO_KEY');
    assert.equal(await again.removeKey(repo.keyName.slice(0, 8)), repo.keyName);
    await assert.rejects(engine.openRepository(new LocalBackend(join(dir, 'repo')), PW), (e: Error & { code?: string }) => e.code === 'BULWARK_REPO_PASSWORD');
    await assert.rejects(again.removeKey(second), (e: Error & { code?: string }) => e.code === 'BULWARK_REPO_KEY');
    assert.equal((await again.listKeys()).length, 1);
  } finally {
    cleanup();
  }
});

test('locks: staleness rules (pure): dead pid on this host, or not refreshed for 5 minutes elsewhere', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  const at = (msAgo: number): string => new Date(now - msAgo).toISOString();
  const alive = (pid: number): boolean => pid === 42;
  assert.equal(isStale({ host: 'me', pid: 7, kind: 'shared', time: at(1000), op: 'backup' }, now, 'me', alive), true, 'dead pid here');
  assert.equal(isStale({ host: 'me', pid: 42, kind: 'shared', time: at(1000), op: 'backup' }, now, 'me', alive), false, 'live pid here');
  assert.equal(isStale({ host: 'other', pid: 7, kind: 'exclusive', time: at(4 * 60_000), op: 'prune' }, now, 'me', alive), false, 'recent, other host');
  assert.equal(isStale({ host: 'other', pid: 7, kind: 'exclusive', time: at(6 * 60_000), op: 'prune' }, now, 'me', alive), true, 'not refreshed for 6 minutes');
});

test('check --read-data-subset reads only that share of the packs', async () => {
  const { dir, cleanup } = scratchDir('bulwark-engine-');
  try {
    const src = join(dir, 'd');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(src);
    for (let i = 0; i < 8; i++) writeFileSync(join(src, `f${i}`), prng(700 + i, 300 * 1024));
    const repo = await newRepo(dir, 600 * 1024);
    await engine.createSnapshot([repo], [src]);
    const all = await engine.check(repo, { readData: true });
    const half = await engine.check(repo, { readData: true, subset: 0.5 });
    assert.equal(half.packsRead, Math.ceil(all.packsRead * 0.5));
    assert.ok(half.ok);
  } finally {
    cleanup();
  }
});

// Regression: restore closed a file as soon as its last chunk was handled; when that chunk was all
// zeros (nothing to write) earlier writes to the file were still in flight and failed with EBADF
// (seen restoring PostgreSQL WAL segments, which end in zeros).
test('restore: files ending in zero chunks restore whole (a file is closed only after all its writes)', async () => {
  const { dir, cleanup } = scratchDir('bulwark-engine-');
  try {
    const src = join(dir, 'data');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(src);
    for (let i = 0; i < 2; i++) {
      // Like a WAL segment: 2 MiB of 4 KiB blocks alternating data and zeros (many small sparse
      // writes, one after the other), then 14 MiB of zeros (chunks with nothing to write).
      const body = Buffer.alloc(16 * 1024 * 1024);
      const data = prng(7 + i, 1024 * 1024);
      for (let b = 0; b < 256; b++) data.copy(body, b * 8192, b * 4096, b * 4096 + 4096);
      writeFileSync(join(src, `wal-${i}`), body);
    }
    const repo = await newRepo(dir);
    await engine.createSnapshot([repo], [src], {});
    for (let round = 0; round < 3; round++) {
      const out = join(dir, `out-${round}`);
      const r = await engine.restore(repo, 'latest', { target: out, verify: true });
      assert.deepEqual(r.errors, []);
      for (let i = 0; i < 2; i++) {
        const want = createHash('sha256').update(readFileSync(join(src, `wal-${i}`))).digest('hex');
        const got = createHash('sha256').update(readFileSync(join(out, 'data', `wal-${i}`))).digest('hex');
        assert.equal(got, want, `wal-${i} restored whole`);
      }
    }
  } finally {
    cleanup();
  }
});
