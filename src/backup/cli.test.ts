// The backup verbs through the built CLI, as child processes: wrong password, bad flags, unreadable
// files (exit 3), SIGKILL in the middle of a backup, and two concurrent backups into one repository.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { exited, runCli, scratchDir, startCli, waitFor } from '../testing/helpers.js';
import { LocalBackend } from './backends/local.js';
import { initRepository } from './engine.js';
import { diffTrees, listTree, prng } from './testkit.js';

const ENV = { BULWARK_PASSWORD: 'pw-1', BULWARK_SCRYPT_N: '1024' };
process.env['BULWARK_SCRYPT_N'] = '1024';

function noStack(s: string): void {
  assert.doesNotMatch(s, /\n\s+at .+:\d+:\d+/, `stack trace printed:\n${s}`);
}

test('cli: init, create, snapshots --json, restore --verify; wrong password is exit 1 with a clear message', async () => {
  const { dir, cleanup } = scratchDir('bulwark-cli-');
  try {
    const repo = join(dir, 'repo');
    const src = join(dir, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'a.txt'), 'hello\n'.repeat(1000));
    assert.equal((await runCli(['backup', 'init', '--repo', repo], { env: ENV })).code, 0);
    const again = await runCli(['backup', 'init', '--repo', repo], { env: ENV });
    assert.equal(again.code, 1);
    assert.match(again.stderr, /BULWARK_REPO_EXISTS/);
    const c = await runCli(['backup', 'create', '--repo', repo, '--tag', 'daily', '--json', src], { env: ENV });
    assert.equal(c.code, 0, c.stderr);
    const summary = JSON.parse(c.stdout.trim().split('\n').at(-1) as string) as { type: string; snapshot: string; files: number };
    assert.equal(summary.type, 'summary');
    assert.equal(summary.files, 1);
    const s = await runCli(['backup', 'snapshots', '--repo', repo, '--json'], { env: ENV });
    const snaps = JSON.parse(s.stdout) as { id: string; tags: string[]; paths: string[] }[];
    assert.equal(snaps.length, 1);
    assert.deepEqual(snaps[0]?.tags, ['daily']);
    assert.equal(snaps[0]?.id, summary.snapshot);

    const wrong = await runCli(['backup', 'snapshots', '--repo', repo], { env: { ...ENV, BULWARK_PASSWORD: 'nope' } });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /BULWARK_REPO_PASSWORD: wrong password/);
    noStack(wrong.stderr);
    const none = await runCli(['backup', 'snapshots', '--repo', repo], { env: { ...ENV, BULWARK_PASSWORD: '' } });
    assert.equal(none.code, 2);
    assert.match(none.stderr, /BULWARK_REPO_NO_PASSWORD/);
    // --password-file works; key add lets a second password in; key list shows both
    writeFileSync(join(dir, 'pw'), 'pw-1\n');
    writeFileSync(join(dir, 'pw2'), 'second password\n');
    const add = await runCli(['backup', 'key', 'add', '--repo', repo, '--password-file', join(dir, 'pw'), '--new-password-file', join(dir, 'pw2')], { env: { BULWARK_SCRYPT_N: '1024' } });
    assert.equal(add.code, 0, add.stderr);
    const keys = await runCli(['backup', 'key', 'list', '--repo', repo, '--password-file', join(dir, 'pw2'), '--json'], { env: { BULWARK_SCRYPT_N: '1024' } });
    assert.equal((JSON.parse(keys.stdout) as unknown[]).length, 2);

    const out = join(dir, 'out');
    const r = await runCli(['backup', 'restore', '--repo', repo, 'latest', '--target', out, '--verify'], { env: ENV });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(out, 'src/a.txt'), 'utf8'), 'hello\n'.repeat(1000));
    const noMatch = await runCli(['backup', 'restore', '--repo', repo, 'latest', '--target', join(dir, 'x'), '--include', '/not/there'], { env: ENV });
    assert.equal(noMatch.code, 2);
    assert.match(noMatch.stderr, /nothing in snapshot .* matches --include/);
    const missing = await runCli(['backup', 'restore', '--repo', repo, 'abcdef12', '--target', out], { env: ENV });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /BULWARK_BACKUP_SNAPSHOT_NOT_FOUND/);
    const nope = await runCli(['backup', 'snapshots', '--repo', join(dir, 'nothing-here')], { env: ENV });
    assert.equal(nope.code, 1);
    assert.match(nope.stderr, /BULWARK_REPO_NOT_FOUND/);
  } finally {
    cleanup();
  }
});

// Regression: --read-data-subset 50% was divided by 100 twice and read 0.5% of the packs (one).
test('cli: check --read-data-subset N% reads that share of the packs', async () => {
  const { dir, cleanup } = scratchDir('bulwark-cli-');
  try {
    const repo = join(dir, 'repo');
    assert.equal((await runCli(['backup', 'init', '--repo', repo], { env: ENV })).code, 0);
    for (let i = 0; i < 4; i++) {
      const src = join(dir, `src-${i}`);
      mkdirSync(src);
      writeFileSync(join(src, 'f.bin'), randomBytes(64 * 1024));
      assert.equal((await runCli(['backup', 'create', '--repo', repo, src], { env: ENV })).code, 0);
    }
    const r = await runCli(['backup', 'check', '--repo', repo, '--read-data-subset', '50%', '--json'], { env: ENV });
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout) as { packs: number; packsRead: number };
    assert.ok(rep.packs >= 4, `expected several packs, got ${rep.packs}`);
    assert.equal(rep.packsRead, Math.ceil(rep.packs * 0.5));
  } finally {
    cleanup();
  }
});

test('cli: bad flags are exit 2', async () => {
  const { dir, cleanup } = scratchDir('bulwark-cli-');
  try {
    const repo = join(dir, 'repo');
    assert.equal((await runCli(['backup', 'init', '--repo', repo], { env: ENV })).code, 0);
    const f = await runCli(['backup', 'forget', '--repo', repo], { env: ENV });
    assert.equal(f.code, 2);
    assert.match(f.stderr, /at least one --keep/);
    assert.equal((await runCli(['backup', 'forget', '--repo', repo, '--keep-last', 'x'], { env: ENV })).code, 2);
    assert.equal((await runCli(['backup', 'forget', '--repo', repo, '--keep-within', '3 weeks'], { env: ENV })).code, 2);
    assert.equal((await runCli(['backup', 'check', '--repo', repo, '--read-data-subset', 'lots'], { env: ENV })).code, 2);
    assert.equal((await runCli(['backup', 'create', '--repo', repo], { env: ENV })).code, 2);
    assert.equal((await runCli(['backup', 'create', '--repo', repo, join(dir, 'missing')], { env: ENV })).code, 2);
    assert.equal((await runCli(['backup', 'create', '--repo', 'gopher://x/y', dir], { env: ENV })).code, 2);
    assert.equal((await runCli(['backup', 'restore', '--repo', repo, 'latest'], { env: ENV })).code, 2);
  } finally {
    cleanup();
  }
});

test('cli: an unreadable file is reported and counted, the rest is saved, exit 3', async () => {
  const { dir, cleanup } = scratchDir('bulwark-cli-');
  try {
    const repo = join(dir, 'repo');
    const src = join(dir, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'ok.txt'), 'fine');
    assert.equal((await runCli(['backup', 'init', '--repo', repo], { env: ENV })).code, 0);
    // /proc/self/mem is a regular file whose first page cannot be read (EIO), even as root.
    const c = await runCli(['backup', 'create', '--repo', repo, '--json', src, '/proc/self/mem'], { env: ENV });
    assert.equal(c.code, 3, c.stderr);
    assert.match(c.stdout, /"type":"error","path":"\/proc\/self\/mem"/);
    assert.match(c.stderr, /BULWARK_BACKUP_PARTIAL: 1 file\(s\) could not be read/);
    const summary = JSON.parse(c.stdout.trim().split('\n').at(-1) as string) as { errors: number; files: number };
    assert.equal(summary.errors, 1);
    assert.equal(summary.files, 1);
    const out = join(dir, 'out');
    assert.equal((await runCli(['backup', 'restore', '--repo', repo, 'latest', '--target', out], { env: ENV })).code, 0);
    assert.equal(readFileSync(join(out, 'src/ok.txt'), 'utf8'), 'fine');
  } finally {
    cleanup();
  }
});

test('cli: SIGKILL in the middle of a backup leaves a repository check passes; the next backup completes and reuses stored data', async () => {
  const { dir, cleanup } = scratchDir('bulwark-cli-');
  try {
    const repo = join(dir, 'repo');
    const src = join(dir, 'src');
    mkdirSync(src);
    for (let i = 0; i < 24; i++) writeFileSync(join(src, `f${i}`), prng(i + 1, 1024 * 1024));
    await initRepository(new LocalBackend(repo), ENV.BULWARK_PASSWORD, { packSize: 1024 * 1024 });
    // Slow pack writes down (test knob) so the kill surely lands mid-way.
    const child = startCli(['backup', 'create', '--repo', repo, '--json', src], { env: { ...ENV, BULWARK_TEST_PACK_DELAY_MS: '150' } });
    await waitFor(() => readdirSync(join(repo, 'index')).filter((n) => !n.startsWith('.')).length >= 1, { timeoutMs: 30_000, what: 'a first index file' });
    child.kill('SIGKILL');
    const ex = await exited(child);
    assert.equal(ex.signal, 'SIGKILL');
    assert.equal(readdirSync(join(repo, 'snapshots')).length, 0, 'killed before the snapshot was written');
    const chk = await runCli(['backup', 'check', '--repo', repo, '--read-data'], { env: ENV });
    assert.equal(chk.code, 0, chk.stdout + chk.stderr);
    const c = await runCli(['backup', 'create', '--repo', repo, '--json', src], { env: ENV });
    assert.equal(c.code, 0, c.stderr);
    const s = JSON.parse(c.stdout.trim().split('\n').at(-1) as string) as { bytesStored: number; bytes: number };
    assert.ok(s.bytesStored < s.bytes - 3 * 1024 * 1024, `stored ${s.bytesStored} of ${s.bytes}: indexed data was not reused`);
    const chk2 = await runCli(['backup', 'check', '--repo', repo, '--read-data'], { env: ENV });
    assert.equal(chk2.code, 0, chk2.stdout + chk2.stderr);
    const out = join(dir, 'out');
    assert.equal((await runCli(['backup', 'restore', '--repo', repo, 'latest', '--target', out, '--verify'], { env: ENV })).code, 0);
    assert.deepEqual(diffTrees(listTree(src), listTree(join(out, 'src'))), []);
    // prune drops the unindexed leftovers of the killed run; check stays clean
    assert.equal((await runCli(['backup', 'prune', '--repo', repo], { env: ENV })).code, 0);
    const chk3 = await runCli(['backup', 'check', '--repo', repo], { env: ENV });
    assert.equal(chk3.code, 0);
    assert.doesNotMatch(chk3.stdout, /warning/);
  } finally {
    cleanup();
  }
});

test('cli: two concurrent backups into one repository both succeed and both restore', async () => {
  const { dir, cleanup } = scratchDir('bulwark-cli-');
  try {
    const repo = join(dir, 'repo');
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    mkdirSync(a);
    mkdirSync(b);
    for (let i = 0; i < 4; i++) {
      writeFileSync(join(a, `x${i}`), prng(10 + i, 700 * 1024));
      writeFileSync(join(b, `y${i}`), prng(20 + i, 700 * 1024));
    }
    writeFileSync(join(a, 'same'), prng(5, 900 * 1024)); // stored by both: deduplicated or duplicated, never lost
    writeFileSync(join(b, 'same'), prng(5, 900 * 1024));
    await initRepository(new LocalBackend(repo), ENV.BULWARK_PASSWORD, { packSize: 512 * 1024 });
    const [ra, rb] = await Promise.all([runCli(['backup', 'create', '--repo', repo, a], { env: ENV }), runCli(['backup', 'create', '--repo', repo, b], { env: ENV })]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    const snaps = JSON.parse((await runCli(['backup', 'snapshots', '--repo', repo, '--json'], { env: ENV })).stdout) as { id: string; paths: string[] }[];
    assert.equal(snaps.length, 2);
    for (const s of snaps) {
      const out = join(dir, `out-${s.id.slice(0, 8)}`);
      const r = await runCli(['backup', 'restore', '--repo', repo, s.id, '--target', out, '--verify'], { env: ENV });
      assert.equal(r.code, 0, r.stderr);
      const p = s.paths[0] as string;
      const name = p.split('/').at(-1) as string;
      assert.deepEqual(diffTrees(listTree(p), listTree(join(out, name))), []);
    }
    assert.equal((await runCli(['backup', 'check', '--repo', repo, '--read-data'], { env: ENV })).code, 0);
  } finally {
    cleanup();
  }
});

// Regression (issue 14): one damaged snapshot made `snapshots` and `restore` of every other
// snapshot exit BULWARK_REPO_CORRUPT, and a key file with "N":3 printed a RangeError stack.
test('cli: a damaged snapshot and a hostile key file are named and skipped; repair snapshots|index|packs, then check --read-data passes', async () => {
  const { dir, cleanup } = scratchDir('bulwark-cli-');
  try {
    const repo = join(dir, 'repo');
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    mkdirSync(a);
    mkdirSync(b);
    writeFileSync(join(a, 'x'), prng(1, 300 * 1024));
    writeFileSync(join(b, 'y'), prng(2, 3 * 1024 * 1024));
    await initRepository(new LocalBackend(repo), ENV.BULWARK_PASSWORD, { packSize: 512 * 1024 });
    const ca = await runCli(['backup', 'create', '--repo', repo, '--json', a], { env: ENV });
    const sa = (JSON.parse(ca.stdout.trim().split('\n').at(-1) as string) as { snapshot: string }).snapshot;
    assert.equal((await runCli(['backup', 'create', '--repo', repo, b], { env: ENV })).code, 0);
    const sp = join(repo, 'snapshots', sa);
    const raw = readFileSync(sp);
    raw[40] = (raw[40] as number) ^ 1;
    writeFileSync(sp, raw);
    const kname = readdirSync(join(repo, 'keys'))[0] as string;
    const kf = readFileSync(join(repo, 'keys', kname), 'utf8');
    writeFileSync(join(repo, 'keys', 'ffff0000ffff0000ffff0000ffff0000'), kf.replace(/"N":\d+/, '"N":3'));

    const s = await runCli(['backup', 'snapshots', '--repo', repo, '--json'], { env: ENV });
    assert.equal(s.code, 0, s.stderr);
    noStack(s.stderr);
    assert.equal((JSON.parse(s.stdout) as unknown[]).length, 1);
    assert.match(s.stderr, new RegExp(`warning: skipped damaged snapshots/${sa}`));
    assert.match(s.stderr, /warning: skipped damaged keys\/ffff0000ffff0000ffff0000ffff0000: .*scrypt N 3/);
    const out = join(dir, 'out');
    const r = await runCli(['backup', 'restore', '--repo', repo, 'latest', '--target', out, '--verify'], { env: ENV });
    assert.equal(r.code, 0, r.stderr);
    const ra = await runCli(['backup', 'restore', '--repo', repo, sa.slice(0, 8), '--target', join(dir, 'o2')], { env: ENV });
    assert.equal(ra.code, 1);
    assert.match(ra.stderr, /BULWARK_REPO_CORRUPT/);
    noStack(ra.stderr);

    // lose one pack of b: check fails, repair snapshots rewrites b and drops the unreadable a
    const data = readdirSync(join(repo, 'data'), { recursive: true }).map(String).filter((f) => f.includes('/'));
    const big = data.map((f) => join(repo, 'data', f)).sort((x, y) => readFileSync(y).length - readFileSync(x).length)[0] as string;
    rmSync(big);
    // restore salvages: exit 1, the file renamed .damaged with its lost ranges (--keep-damaged keeps the name)
    const o3 = join(dir, 'o3');
    const rd = await runCli(['backup', 'restore', '--repo', repo, 'latest', '--target', o3, '--json'], { env: ENV });
    assert.equal(rd.code, 1, rd.stderr);
    noStack(rd.stderr);
    const rdj = JSON.parse(rd.stdout) as { damaged: { path: string; restoredAs: string; lost: number[][] }[] };
    assert.equal(rdj.damaged[0]?.restoredAs, join(o3, 'b/y.damaged'));
    assert.ok((rdj.damaged[0]?.lost.length ?? 0) > 0);
    assert.equal(readFileSync(join(o3, 'b/y.damaged')).length, 3 * 1024 * 1024);
    const o4 = join(dir, 'o4');
    assert.equal((await runCli(['backup', 'restore', '--repo', repo, 'latest', '--target', o4, '--keep-damaged'], { env: ENV })).code, 1);
    assert.equal(readFileSync(join(o4, 'b/y')).length, 3 * 1024 * 1024);
    const chk = await runCli(['backup', 'check', '--repo', repo], { env: ENV });
    assert.equal(chk.code, 1);
    const rs = await runCli(['backup', 'repair', 'snapshots', '--repo', repo, '--forget', '--json'], { env: ENV });
    assert.equal(rs.code, 0, rs.stderr);
    const rsj = JSON.parse(rs.stdout) as { rewritten: { files: { path: string; lost: number[][] }[] }[]; forgotten: string[] };
    assert.equal(rsj.rewritten.length, 1);
    assert.equal(rsj.rewritten[0]?.files[0]?.path, 'b/y');
    assert.ok(rsj.forgotten.includes(sa));
    const ri = await runCli(['backup', 'repair', 'index', '--repo', repo, '--json'], { env: ENV });
    assert.equal(ri.code, 0, ri.stderr);
    const rp = await runCli(['backup', 'repair', 'packs', '--repo', repo, '--json'], { env: ENV });
    assert.equal(rp.code, 0, rp.stderr);
    assert.equal((JSON.parse(rp.stdout) as { blobsMarked: number }).blobsMarked, 0);
    assert.equal((await runCli(['backup', 'prune', '--repo', repo], { env: ENV })).code, 0);
    const stillBad = await runCli(['backup', 'check', '--repo', repo], { env: ENV });
    assert.equal(stillBad.code, 1, 'check reports the damaged key file');
    assert.match(stillBad.stderr, /keys\/ffff0000ffff0000ffff0000ffff0000/);
    const kr = await runCli(['backup', 'key', 'remove', '--repo', repo, 'ffff0000'], { env: ENV });
    assert.equal(kr.code, 0, kr.stderr);
    const chk2 = await runCli(['backup', 'check', '--repo', repo, '--read-data'], { env: ENV });
    assert.equal(chk2.code, 0, chk2.stdout + chk2.stderr);
    const bad = await runCli(['backup', 'repair', 'nonsense', '--repo', repo], { env: ENV });
    assert.equal(bad.code, 2);
  } finally {
    cleanup();
  }
});
