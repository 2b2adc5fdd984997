// Tests the SFTP Backend against a real OpenSSH sshd on a loopback port: the shared suite, and the
// errors for an unreachable host, a refused key, a wrong host key, and a server that dies.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { freePort, scratchDir } from '../../testing/helpers.js';
import { backendSuite } from '../backend.suite.js';
import { SftpBackend, sftpFromUrl } from './sftp.js';
import { startSshd, type Sshd } from './sshd.testkit.js';

describe('sftp against a real sshd', () => {
  let sshd: Sshd;
  before(async () => {
    sshd = await startSshd();
  });
  after(async () => {
    await sshd?.stop();
  });

  const make = (extra: Partial<ConstructorParameters<typeof SftpBackend>[0]> = {}, sub = 'repo'): SftpBackend =>
    new SftpBackend({ host: '127.0.0.1', port: sshd.port, username: sshd.user, path: join(sshd.dataDir, sub), privateKey: sshd.clientKey, hostKeySha256: sshd.hostKeySha256, ...extra });

  backendSuite('sftp', async () => ({ backend: make({}, `suite-${randomBytes(4).toString('hex')}`), cleanup: async () => {} }));

  test('a key the server does not authorize is BULWARK_BACKEND_AUTH with a hint', async () => {
    const { dir, cleanup } = scratchDir('bulwark-key-');
    try {
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
      const b = make({ privateKey: readFileSync(join(dir, 'k')) });
      await assert.rejects(b.create(), (e: Error & { code?: string; hint?: string }) => e.code === 'BULWARK_BACKEND_AUTH' && /authorized_keys/.test(e.hint ?? ''));
      await b.close();
    } finally {
      cleanup();
    }
  });

  test('a host key that does not match host_key is refused as BULWARK_BACKEND_AUTH', async () => {
    const b = make({ hostKeySha256: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' });
    await assert.rejects(b.stat({ type: 'config', name: 'config' }), { code: 'BULWARK_BACKEND_AUTH' });
    await b.close();
  });

  test('writes land as exactly one complete file on the server disk, with no temp file left', async () => {
    const b = make({}, 'ondisk');
    await b.create();
    const name = `cd${randomBytes(31).toString('hex')}`;
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await b.write({ type: 'data', name }, data);
    assert.ok(readFileSync(join(sshd.dataDir, 'ondisk', 'data', 'cd', name)).equals(data));
    const left = execFileSync('ls', ['-A', join(sshd.dataDir, 'ondisk', 'data', 'cd')]).toString().trim().split('\n');
    assert.deepEqual(left, [name]);
    await b.close();
  });

  test('the server dying mid-session fails operations as BULWARK_BACKEND_UNREACHABLE, and the backend reconnects once it is back', async () => {
    const b = make({}, 'dies');
    await b.create();
    await b.write({ type: 'keys', name: 'k1' }, Buffer.from('one'));
    await sshd.kill();
    await assert.rejects(b.write({ type: 'keys', name: 'k2' }, Buffer.from('two')), { code: 'BULWARK_BACKEND_UNREACHABLE' });
    await sshd.restart();
    await b.write({ type: 'keys', name: 'k2' }, Buffer.from('two'));
    assert.equal((await b.read({ type: 'keys', name: 'k1' })).toString(), 'one');
    await b.close();
  });
});

test('sftp: a server that hangs (stopped, connection open) fails the operation as BULWARK_BACKEND_UNREACHABLE after opTimeoutMs', async () => {
  const sshd = await startSshd();
  const b = new SftpBackend({ host: '127.0.0.1', port: sshd.port, username: sshd.user, path: join(sshd.dataDir, 'hang'), privateKey: sshd.clientKey, opTimeoutMs: 1000 });
  try {
    await b.create();
    sshd.freeze();
    await assert.rejects(b.write({ type: 'keys', name: 'k' }, Buffer.from('x')), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_UNREACHABLE' && /no answer within 1000 ms/.test(e.message));
  } finally {
    sshd.thaw();
    await b.close();
    await sshd.stop();
  }
});

test('sftp: nothing listening is BULWARK_BACKEND_UNREACHABLE naming the host', async () => {
  const port = await freePort();
  const b = new SftpBackend({ host: '127.0.0.1', port, username: 'nobody', path: '/tmp/x', password: 'x' });
  await assert.rejects(b.create(), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_UNREACHABLE' && e.message.includes(`127.0.0.1:${port}`) && /ECONNREFUSED/.test(e.message));
  await b.close();
});

test('sftp: a password in the repository URL is refused (it would sit in argv and shell history)', () => {
  assert.throws(() => sftpFromUrl(new URL('sftp://backup:hunter2@127.0.0.1:22/srv/repo'), {}, () => Buffer.alloc(0)), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'BULWARK_BACKEND_URL');
    assert.doesNotMatch(e.message, /hunter2/);
    return true;
  });
});

test('sftp: a repository URL without host_key is refused (the server\'s identity would go unchecked: any host key accepted)', () => {
  assert.throws(() => sftpFromUrl(new URL('sftp://backup@127.0.0.1:22/srv/repo?key=/k'), {}, () => Buffer.alloc(0)), (e: Error & { code?: string; hint?: string }) => {
    assert.equal(e.code, 'BULWARK_BACKEND_URL');
    assert.match(e.message, /host_key/);
    assert.match(e.hint ?? '', /ssh-keygen -lf/);
    return true;
  });
  const ok = sftpFromUrl(new URL('sftp://backup@127.0.0.1:22/srv/repo?host_key=SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'), {}, () => Buffer.alloc(0));
  assert.equal(ok.location, 'sftp://backup@127.0.0.1:22/srv/repo');
});
