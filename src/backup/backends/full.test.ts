// A full disk is a clear BULWARK_BACKEND_FULL for the local disk, the vault (its server's disk)
// and SFTP (the sshd's disk), and leaves no partial file. The disk is a real 2 MiB tmpfs mounted
// for the test (needs root, as the rest of the backend tests: sshd on loopback).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../../testing/helpers.js';
import { VaultServer } from '../vault/server.js';
import { LocalBackend } from './local.js';
import { SftpBackend } from './sftp.js';
import { startSshd, type Sshd } from './sshd.testkit.js';
import { VaultBackend } from './vault.js';

let mnt: string;
let scratch: { dir: string; cleanup: () => void };
before(() => {
  scratch = scratchDir('bulwark-full-');
  mnt = join(scratch.dir, 'tiny');
  mkdirSync(mnt);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mnt]);
});
after(() => {
  try {
    execFileSync('umount', [mnt]);
  } finally {
    scratch.cleanup();
  }
});

function dataFiles(root: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync(join(root, 'data'))) for (const f of readdirSync(join(root, 'data', d))) out.push(f);
  return out;
}

test('full disk: local backend', async () => {
  const b = new LocalBackend(join(mnt, 'local'));
  await b.create();
  await assert.rejects(b.write({ type: 'data', name: 'ab'.repeat(32) }, randomBytes(3 * 1024 * 1024)), { code: 'BULWARK_BACKEND_FULL' });
  assert.deepEqual(dataFiles(join(mnt, 'local')), []);
});

test('full disk: the vault server\'s disk, seen by its client', async () => {
  const token = 'client-token-0123456789abcdef';
  const server = new VaultServer({ root: join(mnt, 'vault'), tokens: [{ name: 'c', token, role: 'client' }], appendOnly: true, retentionMs: 0, validateUploads: false });
  const addr = await server.listen('127.0.0.1:0');
  const b = new VaultBackend({ host: '127.0.0.1', port: Number(addr.split(':').pop()), name: 'r', token });
  try {
    await b.create();
    await assert.rejects(b.write({ type: 'data', name: 'cd'.repeat(32) }, randomBytes(3 * 1024 * 1024)), { code: 'BULWARK_BACKEND_FULL' });
    assert.deepEqual(dataFiles(join(mnt, 'vault', 'r')), []);
  } finally {
    await b.close();
    await server.close();
  }
});

test('full disk: the SFTP server\'s disk (detected with statvfs@openssh.com)', async () => {
  let sshd: Sshd | undefined;
  try {
    sshd = await startSshd();
    const b = new SftpBackend({ host: '127.0.0.1', port: sshd.port, username: sshd.user, path: join(mnt, 'sftp'), privateKey: sshd.clientKey });
    await b.create();
    await assert.rejects(b.write({ type: 'data', name: 'ef'.repeat(32) }, randomBytes(3 * 1024 * 1024)), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_FULL' && /disk is full/.test(e.message));
    assert.deepEqual(dataFiles(join(mnt, 'sftp')), []);
    await b.close();
  } finally {
    await sshd?.stop();
  }
});
