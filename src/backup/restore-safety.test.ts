// Restore of a hostile snapshot (someone with the password, or a compromised backup host, wrote
// trees by hand): names with '..' or '/', and two nodes with one name (a symlink beside a file
// of the same name), must never create, modify or re-permission anything outside --target.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../testing/helpers.js';
import { LocalBackend } from './backends/local.js';
import * as engine from './engine.js';
import { prepare, prepareTree } from './sink.js';
import { BLOB_DATA } from './format.js';
import type { TreeNode } from './types.js';

process.env['BULWARK_SCRYPT_N'] = '1024';
const PW = 'correct horse';

const base = { mode: 0o644, uid: 0, gid: 0, mtime: '1600000000000000000', size: 0, inode: 1, dev: 1, links: 1 };

test('restore: a snapshot with "..", "/" or duplicate names writes nothing outside --target and reports each bad entry', async () => {
  const { dir, cleanup } = scratchDir('bulwark-restore-safety-');
  try {
    const repo = await engine.initRepository(new LocalBackend(join(dir, 'repo')), PW);
    const sink = repo.sink();
    const data = prepare(BLOB_DATA, Buffer.from('pwned\n'));
    await sink.add(data);
    const content = [data.sha.toString('hex')];
    const file = (name: string): TreeNode => ({ ...base, name, type: 'file', size: 6, content, sizes: [6] });
    // a directory named ".." holding "escaped-dir"
    const sub = prepareTree({ nodes: [file('escaped-dir')] });
    await sink.add(sub);
    // a file "victim" that is a symlink to a file outside the target, with a file node of the same name
    // (its chmod would follow the symlink)
    const victim = join(dir, 'victim');
    writeFileSync(victim, 'keep\n');
    chmodSync(victim, 0o600);
    const rootTree = prepareTree({
      nodes: [
        { ...base, name: '..', type: 'dir', mode: 0o755, subtree: sub.sha.toString('hex') },
        file('../escaped-file'),
        file('a/../../escaped-slash'),
        { ...file('v'), mode: 0o4777 },
        { ...base, name: 'v', type: 'symlink', target: victim },
        file('ok'),
      ],
    });
    await sink.add(rootTree);
    await sink.flush();
    await repo.saveSnapshot({ version: 1, time: new Date().toISOString(), host: 'h', user: 'u', paths: ['/x'], tags: [], tree: rootTree.sha.toString('hex'), parent: null, summary: { files: 0, dirs: 0, bytes: 0, filesNew: 0, filesUnchanged: 0, bytesRead: 0, blobsAdded: 0, bytesStored: 0, errors: 0, skipped: 0, durationMs: 0 } });

    const target = join(dir, 'out', 'target');
    mkdirSync(target, { recursive: true });
    const r = await engine.restore(repo, 'latest', { target });
    assert.equal(existsSync(join(dir, 'out', 'escaped-dir')), false, 'a ".." directory was written outside the target');
    assert.equal(existsSync(join(dir, 'out', 'escaped-file')), false, 'a "../" name was written outside the target');
    assert.equal(existsSync(join(dir, 'escaped-slash')), false, 'a name with "/" was written outside the target');
    assert.equal(statSync(victim).mode & 0o7777, 0o600, 'metadata of a same-named node was applied through a symlink outside the target');
    assert.ok(existsSync(join(target, 'ok')), 'the good entry is still restored');
    for (const bad of ['..', '../escaped-file', 'a/../../escaped-slash', 'v']) {
      assert.ok(r.errors.some((e) => e.message.includes(JSON.stringify(bad))), `error names ${bad}: ${JSON.stringify(r.errors)}`);
    }
  } finally {
    cleanup();
  }
});

test('restore: a directory of the snapshot that is a symlink in --target is replaced, never written through', async () => {
  const { dir, cleanup } = scratchDir('bulwark-restore-safety-');
  try {
    const src = join(dir, 'data');
    mkdirSync(join(src, 'etc'), { recursive: true });
    writeFileSync(join(src, 'etc', 'passwd'), 'from the snapshot\n');
    const repo = await engine.initRepository(new LocalBackend(join(dir, 'repo')), PW);
    await engine.createSnapshot([repo], [src]);
    const outside = join(dir, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'passwd'), 'outside\n');
    const target = join(dir, 'out');
    mkdirSync(join(target, 'data'), { recursive: true });
    symlinkSync(outside, join(target, 'data', 'etc')); // left by an earlier restore, or planted
    const r = await engine.restore(repo, 'latest', { target });
    assert.deepEqual(r.errors, []);
    assert.equal(readFileSync(join(outside, 'passwd'), 'utf8'), 'outside\n', 'restore wrote through a symlink outside the target');
    assert.ok(lstatSync(join(target, 'data', 'etc')).isDirectory());
    assert.equal(readFileSync(join(target, 'data', 'etc', 'passwd'), 'utf8'), 'from the snapshot\n');
  } finally {
    cleanup();
  }
});

test('backup: a file whose length differs from what lstat said (here a /proc file: lstat says 0) is recorded at the length read, and restores with --verify', async () => {
  const { dir, cleanup } = scratchDir('bulwark-restore-safety-');
  try {
    const repo = await engine.initRepository(new LocalBackend(join(dir, 'repo')), PW);
    const res = await engine.createSnapshot([repo], ['/proc/self/mountinfo']);
    assert.deepEqual(res.errors, []);
    const target = join(dir, 'out');
    const r = await engine.restore(repo, 'latest', { target, verify: true });
    assert.deepEqual(r.errors, []);
    assert.ok(statSync(join(target, 'mountinfo')).size > 0);
  } finally {
    cleanup();
  }
});

test('restore: a hard link to a file that failed to restore is reported, not silently linked to the broken file', async () => {
  const { dir, cleanup } = scratchDir('bulwark-restore-safety-');
  try {
    const repo = await engine.initRepository(new LocalBackend(join(dir, 'repo')), PW);
    const sink = repo.sink();
    const data = prepare(BLOB_DATA, Buffer.from('stored'));
    await sink.add(data);
    const data2 = prepare(BLOB_DATA, Buffer.from('second'));
    await sink.add(data2);
    // first chunk written (so the file gets created), second fails (its recorded length is wrong)
    const linked = (name: string): TreeNode => ({ ...base, name, type: 'file', size: 11, inode: 77, links: 2, content: [data.sha.toString('hex'), data2.sha.toString('hex')], sizes: [6, 5] });
    const rootTree = prepareTree({ nodes: [linked('a'), linked('b')] });
    await sink.add(rootTree);
    await sink.flush();
    await repo.saveSnapshot({ version: 1, time: new Date().toISOString(), host: 'h', user: 'u', paths: ['/x'], tags: [], tree: rootTree.sha.toString('hex'), parent: null, summary: { files: 0, dirs: 0, bytes: 0, filesNew: 0, filesUnchanged: 0, bytesRead: 0, blobsAdded: 0, bytesStored: 0, errors: 0, skipped: 0, durationMs: 0 } });
    const target = join(dir, 'out');
    const r = await engine.restore(repo, 'latest', { target });
    const paths = r.errors.map((e) => e.path).sort();
    assert.deepEqual(paths, [join(target, 'a'), join(target, 'b')], JSON.stringify(r.errors));
  } finally {
    cleanup();
  }
});
