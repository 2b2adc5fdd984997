// The WAL archive as PostgreSQL's archive_command and restore_command use it, through the real
// program they run (walcmd.js, a child process): a segment is stored atomically, re-archiving the
// same bytes succeeds, different bytes under an existing name are refused, and fetching a file
// that is not archived exits 1 (so recovery ends there).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../testing/helpers.js';
import { archiveCommand, fetchWal, isWalName, lastArchivedSegment, pushWal, restoreCommand, walCommandScript } from './wal.js';

const SEG = '000000010000000000000003';

function walcmd(...args: string[]): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [walCommandScript(), ...args], { encoding: 'utf8' });
  return { code: r.status, stderr: r.stderr };
}

test('walcmd push/fetch: atomic store, identical re-archive accepted, different content refused, missing file exits 1', () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-wal-'));
  try {
    const arch = join(dir, 'archive');
    mkdirSync(arch);
    const src = join(dir, 'seg');
    writeFileSync(src, Buffer.alloc(64 * 1024, 7));
    assert.equal(walcmd('push', arch, src, SEG).code, 0);
    assert.deepEqual(readdirSync(arch), [SEG], 'only the segment: no temp file left behind');
    assert.ok(readFileSync(join(arch, SEG)).equals(readFileSync(src)));
    // PostgreSQL may archive the same segment again after a crash: accepted
    assert.equal(walcmd('push', arch, src, SEG).code, 0);
    assert.equal(pushWal(arch, src, SEG), 'identical');
    // different bytes under the same name: refused, the archived copy is untouched
    const other = join(dir, 'other');
    writeFileSync(other, Buffer.alloc(64 * 1024, 8));
    const refused = walcmd('push', arch, other, SEG);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /already exists with different content/);
    assert.ok(readFileSync(join(arch, SEG)).equals(readFileSync(src)));
    // a name that is not a WAL file is refused (no path tricks through %f)
    assert.equal(walcmd('push', arch, src, '../escape').code, 1);
    assert.equal(existsSync(join(dir, 'escape')), false);
    // fetch: present -> 0 and the bytes; absent -> 1 (end of the archive for recovery)
    const out = join(dir, 'restored');
    assert.equal(walcmd('fetch', arch, SEG, out).code, 0);
    assert.ok(readFileSync(out).equals(readFileSync(src)));
    assert.equal(walcmd('fetch', arch, '000000010000000000000004', join(dir, 'x')).code, 1);
    assert.equal(walcmd('fetch', arch, '00000002.history', join(dir, 'x')).code, 1);
    assert.equal(fetchWal(arch, 'RECOVERYHISTORY', join(dir, 'x')), false);
    assert.equal(walcmd('bogus', arch).code, 2);
    assert.equal(lastArchivedSegment(arch), SEG);
    assert.equal(lastArchivedSegment(join(dir, 'none')), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('WAL names and the archive/restore commands PostgreSQL is given', () => {
  for (const n of [SEG, '00000002.history', `${SEG}.partial`, `${SEG}.00000028.backup`]) assert.ok(isWalName(n), n);
  for (const n of ['', '../x', `${SEG}/..`, 'RECOVERYXLOG', '00000002.HISTORY']) assert.ok(!isWalName(n), n);
  assert.equal(archiveCommand("/w a'l", '/usr/bin/node', '/x/walcmd.js'), `'/usr/bin/node' '/x/walcmd.js' push '/w a'"'"'l' %p %f`);
  assert.equal(restoreCommand('/wal', '/usr/bin/node', '/x/walcmd.js'), `'/usr/bin/node' '/x/walcmd.js' fetch '/wal' %f %p`);
});

test('bulwark db wal-push / wal-fetch: the same archive by hand, with registry error codes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-wal-cli-'));
  try {
    const arch = join(dir, 'archive');
    mkdirSync(arch);
    writeFileSync(join(dir, 'a'), 'first');
    writeFileSync(join(dir, 'b'), 'second');
    assert.equal((await runCli(['db', 'wal-push', arch, join(dir, 'a'), SEG])).code, 0);
    assert.equal((await runCli(['db', 'wal-push', arch, join(dir, 'a'), SEG])).code, 0, 'identical re-archive');
    const bad = await runCli(['db', 'wal-push', arch, join(dir, 'b'), SEG]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /BULWARK_DB_WAL_ARCHIVE.*already exists with different content/);
    assert.equal((await runCli(['db', 'wal-fetch', arch, SEG, join(dir, 'out')])).code, 0);
    assert.equal(readFileSync(join(dir, 'out'), 'utf8'), 'first');
    assert.equal((await runCli(['db', 'wal-fetch', arch, '000000010000000000000009', join(dir, 'out2')])).code, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
