// Tests `bulwark backup copy` through the CLI: snapshots copied from a local repository into a
// vault-served one (different password) restore byte for byte there; a second copy skips them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, scratchDir } from '../../testing/helpers.js';
import { VaultServer } from '../vault/server.js';

test('backup copy: local -> vault, restorable from the copy alone; re-running skips what is there', { timeout: 90_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-copy-');
  const token = 'client-token-0123456789abcdef';
  const server = new VaultServer({ root: join(dir, 'vault'), tokens: [{ name: 'c', token, role: 'client' }], appendOnly: true, retentionMs: 0 });
  try {
    const addr = await server.listen('127.0.0.1:0');
    mkdirSync(join(dir, 'src'));
    const payload = randomBytes(300_000);
    writeFileSync(join(dir, 'src', 'a.bin'), payload);
    writeFileSync(join(dir, 'to-pw'), 'another password');
    const env = { BULWARK_PASSWORD: 'source password', BULWARK_VAULT_TOKEN: token, BULWARK_SCRYPT_N: '1024' };
    const repo = join(dir, 'repo');
    for (const args of [['init', '--repo', repo], ['create', '--repo', repo, join(dir, 'src')]]) {
      const r = await runCli(['backup', ...args], { env });
      assert.equal(r.code, 0, r.stderr);
    }
    const to = `vault://${addr}/copy`;
    const c1 = await runCli(['backup', 'copy', '--from', repo, '--to', to, '--to-password-file', join(dir, 'to-pw'), '--json'], { env });
    assert.equal(c1.code, 0, c1.stderr);
    assert.equal((JSON.parse(c1.stdout) as { copied: unknown[] }).copied.length, 1);
    const c2 = await runCli(['backup', 'copy', '--from', repo, '--to', to, '--to-password-file', join(dir, 'to-pw'), '--json'], { env });
    assert.equal(c2.code, 0, c2.stderr);
    assert.deepEqual((JSON.parse(c2.stdout) as { copied: unknown[]; skipped: string[] }).copied, []);
    const out = join(dir, 'out');
    const r = await runCli(['backup', 'restore', '--repo', to, '--password-file', join(dir, 'to-pw'), 'latest', '--target', out, '--verify'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(readFileSync(join(out, 'src', 'a.bin')).equals(payload));
  } finally {
    await server.close();
    cleanup();
  }
});
