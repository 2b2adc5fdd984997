// Tests the vault server and its client Backend over real sockets: the shared suite (plain HTTP
// and TLS), append-only refusals for client and admin tokens, retention locks, and the errors for
// bad tokens and an unreachable vault.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeClock } from '../../core/clock.js';
import { freePort, scratchDir } from '../../testing/helpers.js';
import { backendSuite } from '../backend.suite.js';
import { VaultServer } from '../vault/server.js';
import { mayDelete } from '../vault/policy.js';
import { VaultBackend } from './vault.js';

const ADMIN = 'admin-token-0123456789abcdef';
const CLIENT = 'client-token-0123456789abcdef';
const OTHER = 'other-token-0123456789abcdef';
const tokens = [
  { name: 'admin', token: ADMIN, role: 'admin' as const },
  { name: 'laptop', token: CLIENT, role: 'client' as const, repos: ['laptop'] },
  { name: 'other', token: OTHER, role: 'client' as const, repos: ['other'] },
];

async function startVault(opts: { appendOnly: boolean; retentionMs?: number; tls?: { cert: Buffer; key: Buffer }; clock?: FakeClock }) {
  const { dir, cleanup } = scratchDir('bulwark-vault-');
  const server = new VaultServer({ root: dir, tokens, appendOnly: opts.appendOnly, retentionMs: opts.retentionMs ?? 0, tls: opts.tls, validateUploads: false, ...(opts.clock ? { clock: opts.clock } : {}) });
  const addr = await server.listen('127.0.0.1:0');
  const port = Number(addr.split(':').pop());
  return {
    dir,
    server,
    port,
    client: (token: string, name = 'laptop', ca?: Buffer) => new VaultBackend({ host: '127.0.0.1', port, name, token, ...(opts.tls ? { tls: { ca } } : {}) }),
    stop: async () => {
      await server.close();
      cleanup();
    },
  };
}

backendSuite('vault (http, client token)', async () => {
  const v = await startVault({ appendOnly: false });
  return { backend: v.client(CLIENT), cleanup: v.stop };
});

describe('vault over TLS', () => {
  const { dir, cleanup } = scratchDir('bulwark-vault-tls-');
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const tls = { cert: readFileSync(cert), key: readFileSync(key) };
  backendSuite('vault (https)', async () => {
    const v = await startVault({ appendOnly: true, tls });
    return { backend: v.client(CLIENT, 'laptop', tls.cert), cleanup: v.stop };
  });
  test('a client that does not trust the certificate gets a clear TLS error', async () => {
    const v = await startVault({ appendOnly: true, tls });
    const b = v.client(CLIENT);
    try {
      await assert.rejects(b.create(), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_AUTH' && /TLS/.test(e.message));
    } finally {
      await b.close();
      await v.stop();
    }
  });
  after(cleanup);
});

describe('vault append-only mode', () => {
  let v: Awaited<ReturnType<typeof startVault>>;
  let client: VaultBackend;
  let admin: VaultBackend;
  before(async () => {
    v = await startVault({ appendOnly: true, retentionMs: 0 });
    client = v.client(CLIENT);
    admin = v.client(ADMIN);
    await client.create();
  });
  after(async () => {
    await client.close();
    await admin.close();
    await v.stop();
  });

  test('a client token cannot delete data, index, snapshot or key files', async () => {
    for (const type of ['data', 'index', 'snapshots', 'keys'] as const) {
      const name = randomBytes(32).toString('hex');
      await client.write({ type, name }, Buffer.from('precious'));
      await assert.rejects(client.remove({ type, name }), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_REFUSED' && /append-only/.test(e.message));
      assert.equal((await client.read({ type, name })).toString(), 'precious');
    }
  });

  test('nobody can overwrite a file, not even the admin token', async () => {
    const name = randomBytes(32).toString('hex');
    await client.write({ type: 'snapshots', name }, Buffer.from('original'));
    await assert.rejects(client.write({ type: 'snapshots', name }, Buffer.from('ransomware')), { code: 'BULWARK_BACKEND_EXISTS' });
    await assert.rejects(admin.write({ type: 'snapshots', name }, Buffer.from('ransomware')), { code: 'BULWARK_BACKEND_EXISTS' });
    assert.equal((await admin.read({ type: 'snapshots', name })).toString(), 'original');
  });

  test('lock files stay removable by clients (they are coordination, not data)', async () => {
    const name = randomBytes(32).toString('hex');
    await client.write({ type: 'locks', name }, Buffer.from('{}'));
    await client.remove({ type: 'locks', name });
    await assert.rejects(client.stat({ type: 'locks', name }), { code: 'BULWARK_BACKEND_NOT_FOUND' });
  });

  test('the admin token deletes a file with no lock', async () => {
    const name = randomBytes(32).toString('hex');
    await client.write({ type: 'data', name }, Buffer.from('old'));
    await admin.remove({ type: 'data', name });
    await assert.rejects(client.stat({ type: 'data', name }), { code: 'BULWARK_BACKEND_NOT_FOUND' });
  });

  test('a file written with retainUntil is refused to the admin token until the lock expires', async () => {
    const name = randomBytes(32).toString('hex');
    await client.write({ type: 'data', name }, Buffer.from('locked'), { retainUntil: Date.now() + 3_600_000 });
    await assert.rejects(admin.remove({ type: 'data', name }), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_REFUSED' && /retention lock/.test(e.message));
    assert.equal((await admin.read({ type: 'data', name })).toString(), 'locked');
  });
});

test('vault retention: deletable by the admin token only once the server retention has passed', async () => {
  const clock = new FakeClock(Date.now());
  const v = await startVault({ appendOnly: true, retentionMs: 30 * 86_400_000, clock });
  const client = v.client(CLIENT);
  const admin = v.client(ADMIN);
  try {
    await client.create();
    const name = randomBytes(32).toString('hex');
    await client.write({ type: 'data', name }, Buffer.from('x'));
    await assert.rejects(admin.remove({ type: 'data', name }), { code: 'BULWARK_BACKEND_REFUSED' });
    clock.advance(31 * 86_400_000);
    await assert.rejects(client.remove({ type: 'data', name }), { code: 'BULWARK_BACKEND_REFUSED' });
    await admin.remove({ type: 'data', name });
    await assert.rejects(admin.stat({ type: 'data', name }), { code: 'BULWARK_BACKEND_NOT_FOUND' });
  } finally {
    await client.close();
    await admin.close();
    await v.stop();
  }
});

test('vault tokens: a wrong token is BULWARK_BACKEND_AUTH; a client token cannot reach another client\'s repository', async () => {
  const v = await startVault({ appendOnly: true });
  const bad = v.client('not-a-token-at-all-000000');
  const other = v.client(OTHER, 'laptop');
  try {
    await assert.rejects(bad.create(), (e: Error & { code?: string; hint?: string }) => e.code === 'BULWARK_BACKEND_AUTH' && /token/.test(e.hint ?? ''));
    await assert.rejects(other.list('snapshots')[Symbol.asyncIterator]().next(), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_AUTH' && /may not use repository 'laptop'/.test(e.message));
  } finally {
    await bad.close();
    await other.close();
    await v.stop();
  }
});

test('vault: /healthz answers without a token; requests without one are 401; a malformed name is 400', async () => {
  const v = await startVault({ appendOnly: true });
  try {
    const base = `http://127.0.0.1:${v.port}`;
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const noToken = await fetch(`${base}/v1/repos/laptop/keys/`);
    assert.equal(noToken.status, 401);
    assert.equal(((await noToken.json()) as { code: string }).code, 'BULWARK_BACKEND_AUTH');
    const bad = await fetch(`${base}/v1/repos/laptop/keys/%E0%A4%A`, { headers: { authorization: `Bearer ${CLIENT}` } });
    assert.equal(bad.status, 400);
    const escape = await fetch(`${base}/v1/repos/laptop/keys/..%2F..%2Fetc`, { headers: { authorization: `Bearer ${CLIENT}` } });
    assert.equal(escape.status, 400);
  } finally {
    await v.stop();
  }
});

test('vault: a vault that is not running is BULWARK_BACKEND_UNREACHABLE', async () => {
  const port = await freePort();
  const b = new VaultBackend({ host: '127.0.0.1', port, name: 'x', token: CLIENT });
  try {
    await assert.rejects(b.create(), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_UNREACHABLE' && /ECONNREFUSED/.test(e.message));
  } finally {
    await b.close();
  }
});

test('vault: a stored file is exactly the bytes sent, in the repository layout on the server disk', async () => {
  const v = await startVault({ appendOnly: true });
  const b = v.client(CLIENT);
  try {
    await b.create();
    const name = `ab${randomBytes(31).toString('hex')}`;
    const data = randomBytes(5000);
    await b.write({ type: 'data', name }, data);
    assert.ok(readFileSync(join(v.dir, 'laptop', 'data', 'ab', name)).equals(data));
  } finally {
    await b.close();
    await v.stop();
  }
});

test('vault policy: pure delete rules', () => {
  const base = { appendOnly: true, type: 'data' as const, writtenAt: 0, retainUntil: undefined, retentionMs: 1000, now: 500 };
  assert.equal(mayDelete({ ...base, role: 'admin' }).allowed, false);
  assert.equal(mayDelete({ ...base, role: 'admin', now: 1000 }).allowed, true);
  assert.equal(mayDelete({ ...base, role: 'client', now: 5000 }).allowed, false);
  assert.equal(mayDelete({ ...base, appendOnly: false, role: 'client', now: 5000 }).allowed, true);
  assert.equal(mayDelete({ ...base, appendOnly: false, role: 'admin', now: 5000, retainUntil: 6000 }).allowed, false);
  assert.equal(mayDelete({ ...base, role: 'client', type: 'locks' }).allowed, true);
});

test('vault: an error answer never names the server\'s filesystem paths (the vault root appears twice in a local error)', async () => {
  const v = await startVault({ appendOnly: true });
  const b = v.client(CLIENT);
  try {
    await b.create();
    const res = await fetch(`http://127.0.0.1:${v.port}/v1/repos/laptop/snapshots/${randomBytes(32).toString('hex')}`, { headers: { authorization: `Bearer ${CLIENT}` } });
    assert.equal(res.status, 404);
    const body = (await res.json()) as { code: string; message: string };
    assert.equal(body.code, 'BULWARK_BACKEND_NOT_FOUND');
    assert.ok(!body.message.includes(v.dir), `the answer leaks the vault root: ${body.message}`);
  } finally {
    await b.close();
    await v.stop();
  }
});

test('vault: a Range past the end of the file is clamped to the file (the server never sizes a buffer from the client\'s range)', async () => {
  const v = await startVault({ appendOnly: true });
  const b = v.client(CLIENT);
  try {
    await b.create();
    const name = randomBytes(32).toString('hex');
    await b.write({ type: 'snapshots', name }, Buffer.from('hello'));
    const get = (range: string) => fetch(`http://127.0.0.1:${v.port}/v1/repos/laptop/snapshots/${name}`, { headers: { authorization: `Bearer ${CLIENT}`, range } });
    const huge = await get('bytes=1-1099511627775');
    assert.equal(huge.status, 206);
    assert.equal(Buffer.from(await huge.arrayBuffer()).toString(), 'ello');
    const past = await get('bytes=9-20');
    assert.equal(past.status, 416);
    await past.body?.cancel();
    const reversed = await get('bytes=3-1');
    assert.equal(reversed.status, 416);
    await reversed.body?.cancel();
    // the client backend still reads exact ranges and reports a short one
    assert.equal((await b.read({ type: 'snapshots', name }, 1, 3)).toString(), 'ell');
    await assert.rejects(b.read({ type: 'snapshots', name }, 2, 10), { code: 'BULWARK_BACKEND_IO' });
    assert.equal((await b.read({ type: 'snapshots', name }, 5)).length, 0);
    assert.equal((await b.read({ type: 'snapshots', name }, 9)).length, 0);
  } finally {
    await b.close();
    await v.stop();
  }
});

test('vault: a write that failed after recording its lock does not cap the lock of the write that later lands (the later, longer lock holds)', async () => {
  const clock = new FakeClock(Date.now());
  const v = await startVault({ appendOnly: true, clock });
  const client = v.client(CLIENT);
  const admin = v.client(ADMIN);
  try {
    await client.create();
    const h = { type: 'snapshots' as const, name: randomBytes(32).toString('hex') };
    const snaps = join(v.dir, 'laptop', 'snapshots');
    // The first attempt fails on the server's disk (its directory is not a directory), after the lock was recorded.
    rmSync(snaps, { recursive: true });
    writeFileSync(snaps, 'not a directory');
    await assert.rejects(client.write(h, Buffer.from('snap'), { retainUntil: clock.now() + 3_600_000 }));
    rmSync(snaps);
    mkdirSync(snaps);
    // The run that lands it a day later asks for a lock a day later.
    clock.advance(86_400_000);
    await client.write(h, Buffer.from('snap'), { retainUntil: clock.now() + 3_600_000 });
    clock.advance(60_000);
    await assert.rejects(admin.remove(h), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_REFUSED' && /retention lock/.test(e.message));
    assert.equal((await admin.read(h)).toString(), 'snap');
  } finally {
    await client.close();
    await admin.close();
    await v.stop();
  }
});

test('vault: a lock side file that does not parse keeps the file locked (fail closed), it does not unlock it', async () => {
  const v = await startVault({ appendOnly: true });
  const client = v.client(CLIENT);
  const admin = v.client(ADMIN);
  try {
    await client.create();
    const h = { type: 'snapshots' as const, name: randomBytes(32).toString('hex') };
    await client.write(h, Buffer.from('snap'), { retainUntil: Date.now() + 3_600_000 });
    writeFileSync(join(v.dir, 'laptop', '.vault-retain', `snapshots_${h.name}`), 'garbage'); // a damaged side file
    await assert.rejects(admin.remove(h), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_REFUSED');
    assert.equal((await admin.read(h)).toString(), 'snap');
  } finally {
    await client.close();
    await admin.close();
    await v.stop();
  }
});
