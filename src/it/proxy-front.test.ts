// The HTTP front end's own decisions, end to end on loopback: requests it must refuse never reach
// or blame a backend, error bodies name no backend, a paused (SIGSTOPped) backend is left after one
// per-try timeout and ejected, and a backend that sends its head and then hangs has what it sent
// forwarded before the connection closes at the idle timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer as createHttpServer, request, type Server } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { waitFor } from '../testing/helpers.js';
import { get, killHard, spawnBackend, startPlane } from './proxy-kit.js';

function rows(plane: { daemon: { status(): { subsystems: Record<string, unknown> } } }): Array<Record<string, unknown>> {
  return (plane.daemon.status().subsystems['proxy'] as { rows: Array<Record<string, unknown>> }).rows;
}

function raw(address: string, bytes: string): Promise<string> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const s = connect({ host, port: Number(port) });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => resolve(got));
    s.write(bytes);
    setTimeout(() => s.end(), 200);
  });
}

function countingBackend(name: string): Promise<{ server: Server; address: string; hits: () => number }> {
  let hits = 0;
  const server = createHttpServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => res.end(name));
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits })));
}

test('regression: requests with two Host headers were 502s counted as backend failures that ejected healthy backends; now 400s no backend sees', async () => {
  const backends = await Promise.all(['b1', 'b2', 'b3', 'b4'].map(countingBackend));
  const plane = await startPlane({
    services: { web: { listen: '127.0.0.1:0', balance: 'round-robin', backends: backends.map((b, i) => ({ name: `b${i + 1}`, address: b.address })), passive: { consecutive_failures: 3 } } },
  });
  try {
    const addr = plane.proxyAddress('web');
    for (let i = 0; i < 12; i++) {
      const res = await raw(addr, 'GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n');
      assert.match(res, /^HTTP\/1\.1 400 /, `request ${i}: ${res}`);
    }
    assert.deepEqual(
      backends.map((b) => b.hits()),
      [0, 0, 0, 0],
      'no backend saw a refused request',
    );
    assert.deepEqual(
      rows(plane).map((r) => r['errors']),
      [0, 0, 0, 0],
      'no backend was blamed',
    );
    assert.equal(plane.seen('proxy.outlier').length, 0, 'nothing was ejected');
    // The same request with one Host goes through.
    const ok = await raw(addr, 'GET / HTTP/1.1\r\nHost: a.test\r\nconnection: close\r\n\r\n');
    assert.match(ok, /^HTTP\/1\.1 200 /);
    assert.equal(
      backends.reduce((n, b) => n + b.hits(), 0),
      1,
    );
  } finally {
    await plane.stop();
    for (const b of backends) {
      b.server.closeAllConnections();
      await new Promise((r) => b.server.close(r));
    }
  }
});

test('a 502 names no backend and no internal error code (the detail stays in the logs)', async () => {
  const dead = await spawnBackend('deadbackend');
  await killHard(dead);
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'deadbackend', address: dead.address }], retries: 0 } } });
  try {
    const agent = new Agent({ keepAlive: true });
    const r = await get(plane.proxyAddress('web'), '/', agent);
    agent.destroy();
    assert.equal(r.status, 502);
    assert.doesNotMatch(r.error, /deadbackend|ECONN|127\.0\.0\.1/);
    assert.equal(r.error, 'Bad Gateway\n');
    assert.equal(Number(rows(plane)[0]?.['errors']), 1, 'the failure was counted against the backend');
  } finally {
    await plane.stop();
  }
});

test('a SIGSTOPped backend costs a GET one per-try timeout: the request is answered by another backend and the paused one is ejected', async () => {
  const backends = await Promise.all(['s1', 's2', 's3'].map((n) => spawnBackend(n)));
  const plane = await startPlane({
    services: {
      web: {
        listen: '127.0.0.1:0',
        balance: 'round-robin',
        backends: backends.map((b) => ({ name: b.name, address: b.address })),
        passive: { consecutive_failures: 2, base_ejection: '30s' },
        timeouts: { per_try: '1s', response: '20s' },
        retries: 2,
      },
    },
  });
  const stopped = backends[0]!;
  try {
    const addr = plane.proxyAddress('web');
    const agent = new Agent({ keepAlive: true, maxSockets: 6 });
    // Warm keep-alive connections to every backend, then pause one.
    const warm = await Promise.all(Array.from({ length: 12 }, () => get(addr, '/w', agent)));
    assert.ok(warm.every((r) => r.ok));
    stopped.child.kill('SIGSTOP');
    const results = await Promise.all(Array.from({ length: 30 }, () => get(addr, '/x', agent)));
    agent.destroy();
    assert.deepEqual(results.filter((r) => !r.ok).map((r) => `${r.status} ${r.error}`), []);
    assert.ok(results.every((r) => r.backend === 's2' || r.backend === 's3'), 'every answer came from a running backend');
    const ejected = plane.seen('proxy.outlier').find((o) => o.backend === 's1' && o.ejected);
    assert.ok(ejected, `s1 ejected by passive detection (outliers ${JSON.stringify(plane.seen('proxy.outlier'))}, rows ${JSON.stringify(rows(plane))})`);
    assert.match(ejected.reason, /ERESPONSETIMEOUT/);
    assert.equal(rows(plane).find((r) => r['backend'] === 's1')?.['state'], 'ejected');
    assert.ok(Number(rows(plane).find((r) => r['backend'] === 's1')?.['errors']) >= 2);
  } finally {
    stopped.child.kill('SIGCONT');
    await plane.stop();
    await Promise.all(backends.map(killHard));
  }
});

test('a POST is not retried after its per-try timeout (it may have been processed): the client gets 504', async () => {
  const accepted: Socket[] = [];
  const hang = createServer((s) => {
    accepted.push(s);
    s.resume();
  });
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()));
  const other = await countingBackend('other');
  const plane = await startPlane({
    services: {
      web: {
        listen: '127.0.0.1:0',
        balance: 'round-robin',
        backends: [
          { name: 'hang', address: `127.0.0.1:${(hang.address() as AddressInfo).port}` },
          { name: 'other', address: other.address },
        ],
        timeouts: { per_try: '2s', response: '20s' },
        passive: { consecutive_failures: 100 },
      },
    },
  });
  try {
    const addr = plane.proxyAddress('web');
    const agent = new Agent({ keepAlive: false });
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(addr, '/p', agent, { method: 'POST', body: Buffer.from('x') })).status);
    agent.destroy();
    assert.deepEqual([...statuses].sort(), [200, 200, 504, 504], `round-robin: half the POSTs met the hanging backend (${statuses.join(',')})`);
  } finally {
    await plane.stop();
    for (const s of accepted) s.destroy();
    hang.close();
    other.server.closeAllConnections();
    await new Promise((r) => other.server.close(r));
  }
});

test('a backend that sends its head and part of the body, then hangs: the client gets what was sent, then the connection closes at the idle timeout', async () => {
  const accepted: Socket[] = [];
  const half = createServer((s) => {
    accepted.push(s);
    s.on('data', () => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => half.listen(0, '127.0.0.1', () => r()));
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'half', address: `127.0.0.1:${(half.address() as AddressInfo).port}` }], timeouts: { idle: '300ms' } } } });
  try {
    const [host, port] = plane.proxyAddress('web').split(':') as [string, string];
    const got = await new Promise<{ status: number; body: string; complete: boolean }>((resolve, reject) => {
      const req = request({ host, port: Number(port), path: '/' }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('close', () => resolve({ status: res.statusCode ?? 0, body, complete: res.complete }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.deepEqual(got, { status: 200, body: 'abc', complete: false });
    await waitFor(() => plane.seen('proxy.request').some((e) => e.service === 'web' && !e.ok), { what: 'the cut response counted as failed' });
  } finally {
    await plane.stop();
    for (const s of accepted) s.destroy();
    half.close();
  }
});
