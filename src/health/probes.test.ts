// Probe I/O against real sockets and real processes on loopback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { execProbe, httpProbe, runProbe, tcpProbe } from './probes.js';

test('http probe: expected status passes, another status fails with the code, body match, refused, timeout', async () => {
  let status = 200;
  const server = createServer((req, res) => {
    if (req.url === '/slow') return; // never answers
    res.writeHead(status).end(`status=${status} host=${req.headers.host ?? ''}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    assert.deepEqual(await httpProbe(addr, { path: '/health', expect: 200 }, 1000), { ok: true, detail: 'http 200' });
    status = 503;
    assert.deepEqual(await httpProbe(addr, { path: '/health', expect: 200 }, 1000), { ok: false, detail: 'http 503 from /health (expected 200)' });
    assert.equal((await httpProbe(addr, { path: '/health', expect: 503 }, 1000)).ok, true);
    status = 200;
    assert.equal((await httpProbe(addr, { path: '/', expect: 200, body: 'status=200' }, 1000)).ok, true);
    const miss = await httpProbe(addr, { path: '/', expect: 200, body: 'READY' }, 1000);
    assert.equal(miss.ok, false);
    assert.match(miss.detail, /does not contain 'READY'/);
    assert.equal((await httpProbe(addr, { path: '/', expect: 200, body: 'host=svc.example', host: 'svc.example' }, 1000)).ok, true);
    assert.deepEqual(await httpProbe(addr, { path: '/slow', expect: 200 }, 200), { ok: false, detail: 'http timeout after 200 ms' });
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
  const refused = await httpProbe(addr, { path: '/', expect: 200 }, 1000);
  assert.deepEqual(refused, { ok: false, detail: 'http ECONNREFUSED' });
});

test('tcp probe: connect passes, refused fails', async () => {
  const socks: Socket[] = [];
  const server = createNetServer((s) => socks.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  assert.deepEqual(await tcpProbe(addr, 1000), { ok: true, detail: 'tcp connect' });
  assert.deepEqual(await runProbe({ service: 's', node: 'n', address: addr }, { tcp: {}, timeout: 1000 }), { ok: true, detail: 'tcp connect' });
  for (const s of socks) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  assert.deepEqual(await tcpProbe(addr, 1000), { ok: false, detail: 'tcp ECONNREFUSED' });
});

test('exec probe: exit 0 passes, a non-zero exit fails with its code and stderr, a hung command times out, env names the node', async () => {
  const target = { service: 'web', node: 'web-1', address: '127.0.0.1:9' };
  assert.deepEqual(await execProbe(target, { command: ['true'] }, 2000), { ok: true, detail: 'exit 0' });
  assert.deepEqual(await execProbe(target, { command: ['sh', '-c', 'echo replica lagging >&2; exit 3'] }, 2000), { ok: false, detail: 'exit 3: replica lagging' });
  assert.equal((await execProbe(target, { command: ['sh', '-c', 'test "$BULWARK_NODE" = web-1 && test "$X" = y'], env: { X: 'y' } }, 2000)).ok, true);
  assert.deepEqual(await execProbe(target, { command: ['sleep', '5'] }, 200), { ok: false, detail: 'exec timeout after 200 ms' });
  assert.match((await execProbe(target, { command: ['/nonexistent/check'] }, 2000)).detail, /ENOENT/);
});

test('exec probe: a passing check that prints a lot (more than 64 KiB on stdout or stderr) still passes', async () => {
  const target = { service: 'web', node: 'web-1', address: '127.0.0.1:9' };
  assert.deepEqual(await execProbe(target, { command: [process.execPath, '-e', "process.stdout.write('x'.repeat(200000)); process.stderr.write('y'.repeat(200000))"] }, 5000), { ok: true, detail: 'exit 0' });
  assert.deepEqual(await execProbe(target, { command: ['sh', '-c', 'head -c 200000 /dev/zero; echo last words >&2; exit 4'] }, 5000), { ok: false, detail: 'exit 4: last words' });
});
