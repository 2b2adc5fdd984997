// Damage and its isolation, end to end on real files (issue #14): each test is named after what
// broke. A lost or damaged index, snapshot, key or pack is reported by name and skipped; prune
// never deletes live data; a lost or damaged blob is never deduplicated onto; restore salvages;
// repair rebuilds the index, marks damage and rewrites snapshots; a full disk aborts promptly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../testing/helpers.js';
import { LocalBackend } from './backends/local.js';
import * as engine from './engine.js';
import { prng } from './testkit.js';

process.env['BULWARK_SCRYPT_N'] = '1024';
const PW = 'correct horse';
type Coded = Error & { code?: string };

function flipByte(path: string, at?: number): void {
  const b = readFileSync(path);
  const i = at ?? Math.floor(b.length / 2);
  b[i] = (b[i] as number) ^ 0x40;
  writeFileSync(path, b);
}

function files(root: string, type: string): string[] {
  return readdirSync(join(root, type)).sort();
}

function packPath(root: string, pack: string): string {
  return join(root, 'data', pack.slice(0, 2), pack);
}

async function open(root: string, pw = PW): Promise<engine.Repository> {
  return engine.openRepository(new LocalBackend(root), pw);
}

/** Index files that list only data blobs (no trees): losing one loses no listing. */
async function dataOnlyIndexFiles(repo: engine.Repository): Promise<string[]> {
  const out: string[] = [];
  for (const f of files(join(repo.backend.location), 'index')) {
    const packs = await repo.readIndexFile(f);
    if (packs.every((p) => p.entries.every((e) => e.type === 1))) out.push(f);
  }
  return out;
}

/** The pack and location holding chunk `i` of the file at `path` (snapshot-relative) of the latest snapshot. */
async function chunkOf(repo: engine.Repository, rel: string, i: number): Promise<{ pack: string; offset: number; length: number; pos: number; len: number }> {
  await repo.loadIndex({ verifyPacks: true });
  const snap = await repo.findSnapshot('latest');
  let tree = await repo.loadTree(snap.tree);
  const parts = rel.split('/');
  for (const p of parts.slice(0, -1)) tree = await repo.loadTree(tree.nodes.find((n) => n.name === p)?.subtree as string);
  const node = tree.nodes.find((n) => n.name === parts.at(-1));
  assert.ok(node?.content && node.sizes && node.content.length > i, `${rel} has more than ${i} chunks`);
  const loc = repo.locate(Buffer.from(node.content[i] as string, 'hex'));
  assert.ok(loc);
  let pos = 0;
  for (let k = 0; k < i; k++) pos += node.sizes[k] as number;
  return { pack: loc.pack, offset: loc.offset, length: loc.length, pos, len: node.sizes[i] as number };
}

function bigSource(dir: string, name: string, seed: number, mib: number): string {
  const src = join(dir, name);
  mkdirSync(join(src, 'sub'), { recursive: true });
  writeFileSync(join(src, 'big.bin'), prng(seed, mib * 1024 * 1024));
  for (let i = 0; i < 20; i++) writeFileSync(join(src, 'sub', `f${i}.txt`), `file ${i} of ${name}\n`.repeat(100 + i));
  return src;
}

async function restoresExactly(repo: engine.Repository, ref: string, src: string, out: string): Promise<void> {
  const r = await engine.restore(repo, ref, { target: out, verify: true });
  assert.deepEqual(r.errors, []);
  const base = src.split('/').at(-1) as string;
  assert.ok(readFileSync(join(out, base, 'big.bin')).equals(readFileSync(join(src, 'big.bin'))));
  for (let i = 0; i < 20; i++) assert.equal(readFileSync(join(out, base, 'sub', `f${i}.txt`), 'utf8'), readFileSync(join(src, 'sub', `f${i}.txt`), 'utf8'));
}

test('prune deleted intact packs holding live data after an index file was lost (check called them "left by an interrupted backup")', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW, { packSize: 512 * 1024 });
    const src = bigSource(dir, 'src', 1, 12);
    await engine.createSnapshot([repo], [src]);
    const lost = (await dataOnlyIndexFiles(repo))[0];
    assert.ok(lost, 'the backup wrote an index file of data packs only');
    rmSync(join(root, 'index', lost));

    const before = await engine.check(await open(root));
    assert.equal(before.ok, false, 'packs holding referenced blobs but indexed nowhere are an error, not a warning');
    assert.ok(before.errors.some((e) => /not indexed/.test(e) && /index file is damaged or missing/.test(e) && /repair index/.test(e)), before.errors.join('\n'));
    assert.ok(!before.warnings.some((w) => /interrupted backup/.test(w)), before.warnings.join('\n'));

    // restore does not need the lost index file: the packs it named are read by their headers
    await restoresExactly(await open(root), 'latest', src, join(dir, 'out-before'));
    const packsBefore = readdirSync(join(root, 'data'), { recursive: true }).length;
    await engine.prune(await open(root));
    assert.equal(readdirSync(join(root, 'data'), { recursive: true }).length, packsBefore, 'prune deleted no pack');
    const after = await open(root);
    assert.deepEqual((await engine.check(after, { readData: true })).errors, []);
    await restoresExactly(after, 'latest', src, join(dir, 'out'));
  } finally {
    cleanup();
  }
});

test('check: a pack left by an interrupted backup (its blobs referenced by no snapshot) is still a warning that prune removes', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW, { packSize: 512 * 1024 });
    const src = bigSource(dir, 'src', 2, 3);
    await engine.createSnapshot([repo], [src]);
    // a second backup whose snapshot and index were never written (interrupted): its packs stay
    const indexBefore = new Set(files(root, 'index'));
    const snapsBefore = new Set(files(root, 'snapshots'));
    writeFileSync(join(src, 'new.bin'), prng(99, 2 * 1024 * 1024));
    await engine.createSnapshot([repo], [src]);
    for (const f of files(root, 'index')) if (!indexBefore.has(f)) rmSync(join(root, 'index', f));
    for (const f of files(root, 'snapshots')) if (!snapsBefore.has(f)) rmSync(join(root, 'snapshots', f));
    const rep = await engine.check(await open(root));
    assert.equal(rep.ok, true, rep.errors.join('\n'));
    assert.ok(rep.warnings.some((w) => /interrupted backup/.test(w)));
    const pr = await engine.prune(await open(root));
    assert.ok(pr.packsDeleted > 0);
    assert.deepEqual((await engine.check(await open(root), { readData: true })).errors, []);
    assert.equal((await engine.check(await open(root))).warnings.length, 0);
  } finally {
    cleanup();
  }
});

test('a lost pack was silently referenced again: create and create --full stored 0 B and their snapshots lacked its blobs', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW, { packSize: 512 * 1024 });
    const src = bigSource(dir, 'src', 3, 6);
    await engine.createSnapshot([repo], [src]);
    const c = await chunkOf(repo, 'src/big.bin', 2);
    rmSync(packPath(root, c.pack));
    const again = await engine.createSnapshot([await open(root)], [src]);
    assert.ok(again.summary.bytesStored > 0, 'the lost blobs were stored again');
    await restoresExactly(await open(root), 'latest', src, join(dir, 'out1'));
    rmSync(packPath(root, (await chunkOf(await open(root), 'src/big.bin', 2)).pack));
    const full = await engine.createSnapshot([await open(root)], [src], { full: true });
    assert.ok(full.summary.bytesStored > 0);
    await restoresExactly(await open(root), 'latest', src, join(dir, 'out2'));
  } finally {
    cleanup();
  }
});

test('a damaged blob was deduplicated onto by later backups: after repair packs the next backup stores it again and the newest snapshot restores exactly', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW, { packSize: 512 * 1024 });
    const src = bigSource(dir, 'src', 4, 6);
    await engine.createSnapshot([repo], [src]);
    const c = await chunkOf(repo, 'src/big.bin', 2);
    flipByte(packPath(root, c.pack), c.offset + Math.floor(c.length / 2));
    const rep = await engine.check(await open(root), { readData: true });
    assert.equal(rep.ok, false);
    const marked = await engine.repairPacks(await open(root));
    assert.ok(marked.blobsMarked >= 1, JSON.stringify(marked));
    const next = await engine.createSnapshot([await open(root)], [src]);
    assert.ok(next.summary.bytesStored > 0, 'the damaged blob was stored again');
    await restoresExactly(await open(root), 'latest', src, join(dir, 'out'));
    // the older snapshot references the same blob id: whole again too
    const snaps = await (await open(root)).listSnapshots();
    await restoresExactly(await open(root), (snaps[0] as engine.SnapshotInfo).id, src, join(dir, 'out-old'));
  } finally {
    cleanup();
  }
});

test('one damaged snapshot made every other snapshot unlistable and unrestorable (and blocked create and forget)', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW);
    const a = bigSource(dir, 'a', 5, 1);
    const b = bigSource(dir, 'b', 6, 1);
    const sa = (await engine.createSnapshot([repo], [a])).snapshots[0]?.id as string;
    const sb = (await engine.createSnapshot([repo], [b])).snapshots[0]?.id as string;
    flipByte(join(root, 'snapshots', sa));
    const r = await open(root);
    const list = await r.listSnapshots();
    assert.deepEqual(list.map((s) => s.id), [sb]);
    assert.ok([...r.problems.keys()].includes(`snapshots/${sa}`), 'the damaged snapshot is named');
    await restoresExactly(r, sb, b, join(dir, 'out'));
    await assert.rejects(engine.restore(await open(root), sa.slice(0, 8), { target: join(dir, 'x') }), (e: Coded) => e.code === 'BULWARK_REPO_CORRUPT' && e.message.includes(sa));
    await engine.createSnapshot([await open(root)], [b]);
    const decisions = await engine.forget(await open(root), { last: 1 });
    assert.equal(decisions.filter((d) => !d.keep).length, 1);
    assert.ok(existsSync(join(root, 'snapshots', sa)), 'forget leaves a snapshot it cannot read alone');
  } finally {
    cleanup();
  }
});

test('one flipped byte in an index file made restore, create, forget and prune fail with BULWARK_REPO_CORRUPT', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW, { packSize: 512 * 1024 });
    const src = bigSource(dir, 'src', 7, 3);
    await engine.createSnapshot([repo], [src]);
    for (const f of files(root, 'index')) flipByte(join(root, 'index', f));
    const r = await open(root);
    await restoresExactly(r, 'latest', src, join(dir, 'out'));
    assert.ok([...r.problems.keys()].some((f) => f.startsWith('index/')), 'the damaged index file is named');
    const rep = await engine.check(await open(root));
    assert.ok(rep.errors.some((e) => /^index\//.test(e)), rep.errors.join('\n'));
    assert.ok(rep.errors.some((e) => /index file is damaged or missing/.test(e)));
    await engine.createSnapshot([await open(root)], [src]);
    await engine.forget(await open(root), { last: 1 });
    await engine.repairIndex(await open(root));
    assert.deepEqual((await engine.check(await open(root), { readData: true })).errors, []);
    await engine.prune(await open(root));
    await restoresExactly(await open(root), 'latest', src, join(dir, 'out2'));
  } finally {
    cleanup();
  }
});

test('key files with N of 1025, 3, -1, "x" or 1e400 crashed opening (RangeError) instead of being skipped by name', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW);
    const other = await repo.addKey('other password');
    const path = join(root, 'keys', other);
    const good = readFileSync(path, 'utf8');
    for (const n of ['1025', '3', '-1', '"x"', '1e400', '1048577']) {
      writeFileSync(path, good.replace(/"N":\d+/, `"N":${n}`));
      const r = await open(root);
      assert.equal(r.keyName, repo.keyName, `N=${n}: the good key still opens`);
      assert.ok(r.problems.get(`keys/${other}`)?.includes('scrypt N'), `N=${n}: the bad key file is named`);
      assert.ok((await engine.check(r)).errors.some((e) => e.startsWith(`keys/${other}`)), `N=${n}: check reports the damaged key file`);
      await assert.rejects(open(root, 'other password'), (e: Coded) => e.code === 'BULWARK_REPO_CORRUPT' && e.message.includes(`keys/${other}`), `N=${n}`);
    }
  } finally {
    cleanup();
  }
});

test('a flipped byte in a key file\'s data said "wrong password" instead of naming the damaged key file', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW);
    const path = join(root, 'keys', repo.keyName);
    const kf = JSON.parse(readFileSync(path, 'utf8')) as { data: string };
    const raw = Buffer.from(kf.data, 'base64');
    raw[10] = (raw[10] as number) ^ 1;
    writeFileSync(path, JSON.stringify({ ...kf, data: raw.toString('base64') }));
    await assert.rejects(open(root), (e: Coded) => e.code === 'BULWARK_REPO_CORRUPT' && e.message.includes(`keys/${repo.keyName}`) && /damaged/.test(e.message));
    // a wrong password on an intact repository is still a wrong password
    const other = join(dir, 'repo2');
    await engine.initRepository(new LocalBackend(other), PW);
    await assert.rejects(open(other, 'nope'), (e: Coded) => e.code === 'BULWARK_REPO_PASSWORD');
  } finally {
    cleanup();
  }
});

test('restore did not salvage: after one damaged chunk the rest of the file was zeros, good chunks after it were not written, and the file kept its real name', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW, { packSize: 512 * 1024 });
    const src = bigSource(dir, 'src', 8, 8);
    await engine.createSnapshot([repo], [src]);
    const c = await chunkOf(repo, 'src/big.bin', 2);
    flipByte(packPath(root, c.pack), c.offset + Math.floor(c.length / 2));
    const want = readFileSync(join(src, 'big.bin'));

    const out = join(dir, 'out');
    const r = await engine.restore(await open(root), 'latest', { target: out });
    assert.equal(existsSync(join(out, 'src/big.bin')), false, 'a damaged file is not left under its real name');
    const got = readFileSync(join(out, 'src/big.bin.damaged'));
    assert.equal(got.length, want.length);
    assert.ok(got.subarray(0, c.pos).equals(want.subarray(0, c.pos)), 'chunks before the damage restored');
    assert.ok(got.subarray(c.pos + c.len).equals(want.subarray(c.pos + c.len)), 'chunks after the damage restored');
    assert.ok(got.subarray(c.pos, c.pos + c.len).equals(Buffer.alloc(c.len)), 'a hole where the damaged chunk was');
    const d = r.damaged.find((x) => x.path === join(out, 'src/big.bin'));
    assert.deepEqual(d?.lost, [[c.pos, c.pos + c.len]]);
    assert.equal(d?.restoredAs, join(out, 'src/big.bin.damaged'));
    assert.ok(r.errors.some((e) => e.path === join(out, 'src/big.bin')));
    for (let i = 0; i < 20; i++) assert.ok(existsSync(join(out, 'src/sub', `f${i}.txt`)));

    const keep = join(dir, 'keep');
    const k = await engine.restore(await open(root), 'latest', { target: keep, keepDamaged: true });
    assert.equal(statSync(join(keep, 'src/big.bin')).size, want.length);
    assert.equal(existsSync(join(keep, 'src/big.bin.damaged')), false);
    assert.deepEqual(k.damaged[0]?.lost, [[c.pos, c.pos + c.len]]);
  } finally {
    cleanup();
  }
});

test('repair snapshots: a snapshot whose data blobs are lost is rewritten, says which files lost which bytes, and check --read-data passes after it (--forget drops the original)', async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  try {
    const root = join(dir, 'repo');
    const repo = await engine.initRepository(new LocalBackend(root), PW, { packSize: 512 * 1024 });
    const src = bigSource(dir, 'src', 9, 6);
    const orig = (await engine.createSnapshot([repo], [src])).snapshots[0]?.id as string;
    const c = await chunkOf(repo, 'src/big.bin', 1);
    rmSync(packPath(root, c.pack));
    assert.equal((await engine.check(await open(root))).ok, false);
    const res = await engine.repairSnapshots(await open(root), { forget: true });
    assert.equal(res.rewritten.length, 1);
    const rw = res.rewritten[0] as (typeof res.rewritten)[number];
    assert.equal(rw.original, orig);
    assert.ok(rw.files.some((f) => f.path === 'src/big.bin' && f.lost.some(([a, b]) => a <= c.pos && b >= c.pos + c.len)), JSON.stringify(rw.files));
    assert.equal(existsSync(join(root, 'snapshots', orig)), false, '--forget removed the broken original');
    await engine.prune(await open(root));
    const after = await open(root);
    assert.deepEqual((await engine.check(after, { readData: true })).errors, []);
    const snap = await after.findSnapshot('latest');
    assert.ok(snap.repaired?.files.some((f) => f.path === 'src/big.bin'), 'the snapshot says what it lost');
    const out = join(dir, 'out');
    const r = await engine.restore(after, 'latest', { target: out, verify: true });
    assert.deepEqual(r.errors, []);
    assert.equal(readFileSync(join(out, 'src/sub/f3.txt'), 'utf8'), readFileSync(join(src, 'sub/f3.txt'), 'utf8'));
  } finally {
    cleanup();
  }
});

test('create hung forever on a full disk (the worker waited for acks that never came): it aborts with BULWARK_BACKEND_FULL, releases the lock, and check passes', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-damage-');
  const mnt = join(dir, 'small');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', mnt]);
  try {
    const src = join(dir, 'src');
    mkdirSync(src);
    // one big file of many chunks: the disk fills while the worker still has chunks of it to send
    // (with other files in flight, one of them failing ended the backup and hid the hang)
    writeFileSync(join(src, 'huge.bin'), prng(11, 40 * 1024 * 1024));
    for (let run = 0; run < 3; run++) {
      const root = join(mnt, `repo${run}`);
      const repo = await engine.initRepository(new LocalBackend(root), PW, { packSize: 256 * 1024 });
      await assert.rejects(engine.createSnapshot([repo], [src], { workers: 2 }), (e: Coded) => e.code === 'BULWARK_BACKEND_FULL');
      assert.deepEqual(readdirSync(join(root, 'locks')), [], 'the lock was released');
      assert.deepEqual((await engine.check(repo)).errors, []);
      rmSync(root, { recursive: true, force: true });
    }
  } finally {
    execFileSync('umount', [mnt]);
    cleanup();
  }
});
