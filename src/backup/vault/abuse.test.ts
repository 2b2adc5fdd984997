// The vault against a hostile client token (issue #14), over real sockets on loopback: junk
// snapshot and key uploads, retention far in the future, whole-body buffering, and uploads with
// no limit. Each test is named after what broke.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir, waitFor } from '../../testing/helpers.js';
import { VaultBackend } from '../backends/vault.js';
import * as engine from '../engine.js';
import { loadTokens, VaultServer } from './server.js';
import type { VaultToken } from './policy.js';

process.env['BULWARK_SCRYPT_N'] = '1024';
const ADMIN = 'admin-token-0123456789abcdef';
const CLIENT = 'client-token-0123456789abcdef';
type Coded = Error & { code?: string };

async function vault(dir: string, opts: { retentionMs?: number; client?: Partial<VaultToken> } = {}) {
  const tokens: VaultToken[] = [
    { name: 'admin', token: ADMIN, role: 'admin' },
    { name: 'laptop', token: CLIENT, role: 'client', ...opts.client },
  ];
  const server = new VaultServer({ root: join(dir, 'vault'), tokens, appendOnly: true, retentionMs: opts.retentionMs ?? 86_400_000 });
  const port = Number((await server.listen('127.0.0.1:0')).split(':').pop());
  return { server, port, backend: (token: string) => new VaultBackend({ host: '127.0.0.1', port, name: 'r', token }) };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('a client token locked everyone out with 100 random bytes uploaded as snapshots/<sha256>: the others still list and restore, and the admin can quarantine the junk inside its retention', async () => {
  const { dir, cleanup } = scratchDir('bulwark-vault-abuse-');
  const v = await vault(dir);
  try {
    const src = join(dir, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'a.txt'), 'precious\n'.repeat(1000));
    const client = v.backend(CLIENT);
    const repo = await engine.initRepository(client, 'pw');
    const good = (await engine.createSnapshot([repo], [src])).snapshots[0]?.id as string;
    const junk = randomBytes(100);
    await client.write({ type: 'snapshots', name: sha(junk) }, junk); // passes the framing checks the vault can make
    await assert.rejects(client.write({ type: 'snapshots', name: sha(randomBytes(10)) }, randomBytes(10)), (e: Coded) => e.code === 'BULWARK_BACKEND_REFUSED');
    for (const token of [CLIENT, ADMIN]) {
      const r = await engine.openRepository(v.backend(token), 'pw');
      assert.deepEqual((await r.listSnapshots()).map((s) => s.id), [good]);
      assert.ok(r.problems.has(`snapshots/${sha(junk)}`), 'the junk is named');
      const out = join(dir, `out-${token.slice(0, 5)}`);
      assert.deepEqual((await engine.restore(r, 'latest', { target: out })).errors, []);
      assert.equal(readFileSync(join(out, 'src/a.txt'), 'utf8'), 'precious\n'.repeat(1000));
    }
    const admin = v.backend(ADMIN);
    await assert.rejects(admin.remove({ type: 'snapshots', name: sha(junk) }), (e: Coded) => e.code === 'BULWARK_BACKEND_REFUSED', 'still under retention');
    const q = (method: string, token: string) => fetch(`http://127.0.0.1:${v.port}/v1/repos/r/snapshots/${sha(junk)}?quarantine`, { method, headers: { authorization: `Bearer ${token}` } });
    assert.equal((await q('POST', CLIENT)).status, 403, 'a client token cannot quarantine');
    assert.equal((await q('POST', ADMIN)).status, 200);
    const r = await engine.openRepository(v.backend(CLIENT), 'pw');
    assert.deepEqual((await r.listSnapshots()).map((s) => s.id), [good]);
    assert.equal(r.problems.size, 0);
    const moved = readdirSync(join(dir, 'vault/r/.vault-quarantine/snapshots'));
    assert.equal(moved.length, 1, 'moved aside, not deleted');
    assert.ok(readFileSync(join(dir, 'vault/r/.vault-quarantine/snapshots', moved[0] as string)).equals(junk));
  } finally {
    await v.server.close();
    cleanup();
  }
});

test('a client token uploaded a copy of the key file with "N":3 and every later open failed with a RangeError: the vault refuses it', async () => {
  const { dir, cleanup } = scratchDir('bulwark-vault-abuse-');
  const v = await vault(dir);
  try {
    const client = v.backend(CLIENT);
    const repo = await engine.initRepository(client, 'pw');
    const kf = (await client.read({ type: 'keys', name: repo.keyName })).toString('utf8');
    for (const bad of [kf.replace(/"N":\d+/, '"N":3'), kf.replace(/"N":\d+/, '"N":1e400'), 'not json', '{"version":1}']) {
      await assert.rejects(client.write({ type: 'keys', name: randomBytes(16).toString('hex') }, Buffer.from(bad)), (e: Coded) => e.code === 'BULWARK_BACKEND_REFUSED' && /refused/.test(e.message), bad.slice(0, 40));
    }
    assert.equal((await engine.openRepository(v.backend(ADMIN), 'pw')).keyName, repo.keyName);
    await repo.addKey('second'); // a well-formed key is still accepted
  } finally {
    await v.server.close();
    cleanup();
  }
});

test('the vault accepted X-Bulwark-Retain-Until in the year 5138 (data nobody may delete): past --max-retention it is refused', async () => {
  const { dir, cleanup } = scratchDir('bulwark-vault-abuse-');
  const v = await vault(dir);
  try {
    const data = randomBytes(1000);
    const client = v.backend(CLIENT);
    await client.create();
    await assert.rejects(client.write({ type: 'data', name: sha(data) }, data, { retainUntil: Date.UTC(5138, 0, 1) }), (e: Coded) => e.code === 'BULWARK_BACKEND_REFUSED' && /max-retention/.test(e.message));
    assert.equal(existsSync(join(dir, 'vault/r/data', sha(data).slice(0, 2), sha(data))), false);
    await client.write({ type: 'data', name: sha(data) }, data, { retainUntil: Date.now() + 30 * 86_400_000 });
    // a pack whose name is not the hash of its content is refused
    await assert.rejects(client.write({ type: 'data', name: 'ab'.repeat(32) }, data), (e: Coded) => e.code === 'BULWARK_BACKEND_REFUSED');
  } finally {
    await v.server.close();
    cleanup();
  }
});

/** A PUT whose body is sent in two halves; resolves the response once `second()` sent the rest. */
function halfPut(port: number, path: string, body: Buffer): { sent: Promise<void>; finish: () => void; response: Promise<number> } {
  let finish = (): void => undefined;
  let sentHalf = (): void => undefined;
  const sent = new Promise<void>((r) => (sentHalf = r));
  const response = new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'PUT', path, headers: { authorization: `Bearer ${CLIENT}`, 'content-length': body.length } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.write(body.subarray(0, body.length / 2), () => sentHalf());
    finish = () => req.end(body.subarray(body.length / 2));
  });
  return { sent, finish, response };
}

test('the vault buffered whole upload bodies in memory (a 900 MB PUT took 1.86 GB): bodies now stream to disk as they arrive', async () => {
  const { dir, cleanup } = scratchDir('bulwark-vault-abuse-');
  const v = await vault(dir);
  try {
    await v.backend(CLIENT).create();
    const body = randomBytes(16 * 1024 * 1024);
    const name = sha(body);
    const put = halfPut(v.port, `/v1/repos/r/data/${name}`, body);
    await put.sent;
    const dataDir = join(dir, 'vault/r/data', name.slice(0, 2));
    // half the body is on the vault's disk (in a temporary file) before the rest is sent
    await waitFor(() => readdirSync(dataDir).some((f) => f.startsWith('.tmp-') && statSync(join(dataDir, f)).size > 0), { timeoutMs: 30_000, what: 'the first half on disk' });
    put.finish();
    assert.equal(await put.response, 201);
    assert.ok(readFileSync(join(dataDir, name)).equals(body));
    assert.deepEqual(readdirSync(dataDir).filter((f) => f.startsWith('.tmp-')), []);
  } finally {
    await v.server.close();
    cleanup();
  }
});

test('a client token had no limit on concurrent uploads or bytes per day: past max_concurrent_uploads it gets 429, past max_bytes_per_day BULWARK_BACKEND_FULL', async () => {
  const { dir, cleanup } = scratchDir('bulwark-vault-abuse-');
  const v = await vault(dir, { client: { maxUploads: 1, maxBytesPerDay: 3 * 1024 * 1024 } });
  try {
    const client = v.backend(CLIENT);
    await client.create();
    const body = randomBytes(2 * 1024 * 1024);
    const held = halfPut(v.port, `/v1/repos/r/data/${sha(body)}`, body);
    await held.sent;
    const other = randomBytes(1000);
    const r = await fetch(`http://127.0.0.1:${v.port}/v1/repos/r/data/${sha(other)}`, { method: 'PUT', headers: { authorization: `Bearer ${CLIENT}` }, body: other });
    assert.equal(r.status, 429);
    held.finish();
    assert.equal(await held.response, 201);
    const more = randomBytes(2 * 1024 * 1024);
    await assert.rejects(client.write({ type: 'data', name: sha(more) }, more), (e: Coded) => e.code === 'BULWARK_BACKEND_FULL' && /quota/.test(e.message));
    await client.write({ type: 'data', name: sha(other) }, other); // small enough for what is left today
    // a restart does not reset the day's count
    await v.server.close();
    const v2 = await vault(dir, { client: { maxUploads: 1, maxBytesPerDay: 3 * 1024 * 1024 } });
    try {
      await assert.rejects(v2.backend(CLIENT).write({ type: 'data', name: sha(more) }, more), (e: Coded) => e.code === 'BULWARK_BACKEND_FULL');
    } finally {
      await v2.server.close();
    }
  } finally {
    await v.server.close();
    cleanup();
  }
});

test('tokens file: per-client max_concurrent_uploads and max_bytes_per_day are read; a bad size is BULWARK_VAULT_TOKENS naming the file', () => {
  const { dir, cleanup } = scratchDir('bulwark-vault-abuse-');
  try {
    const f = join(dir, 'tokens.yaml');
    writeFileSync(f, `admin: ${ADMIN}\nclients:\n  - { name: app, token: ${CLIENT}, repos: [app], max_concurrent_uploads: 4, max_bytes_per_day: 50GiB }\n`);
    const app = loadTokens(f).find((t) => t.name === 'app');
    assert.equal(app?.maxUploads, 4);
    assert.equal(app?.maxBytesPerDay, 50 * 1024 ** 3);
    writeFileSync(f, `admin: ${ADMIN}\nclients:\n  - { name: app, token: ${CLIENT}, max_bytes_per_day: lots }\n`);
    assert.throws(() => loadTokens(f), (e: Coded) => e.code === 'BULWARK_VAULT_TOKENS' && e.message.includes(f));
  } finally {
    cleanup();
  }
});

test('a backup whose uploads the vault stops accepting mid-way (the token\'s daily quota) aborts with the backend\'s code, releases its lock, and check passes', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-vault-abuse-');
  const v = await vault(dir, { client: { maxBytesPerDay: 2 * 1024 * 1024 } });
  try {
    const src = join(dir, 'src');
    mkdirSync(src);
    writeFileSync(join(src, 'big.bin'), randomBytes(12 * 1024 * 1024));
    const repo = await engine.initRepository(v.backend(CLIENT), 'pw', { packSize: 256 * 1024 });
    await assert.rejects(engine.createSnapshot([repo], [src], { workers: 1 }), (e: Coded) => e.code === 'BULWARK_BACKEND_FULL' && /quota/.test(e.message));
    assert.deepEqual(readdirSync(join(dir, 'vault/r/locks')), [], 'the lock was released');
    assert.deepEqual(readdirSync(join(dir, 'vault/r/snapshots')), [], 'no snapshot');
    assert.deepEqual((await engine.check(await engine.openRepository(v.backend(ADMIN), 'pw'))).errors, []);
  } finally {
    await v.server.close();
    cleanup();
  }
});
