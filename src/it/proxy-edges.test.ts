// Regression tests (real sockets on loopback) for proxy edge cases found in review: TCP half-close,
// X-Forwarded-* spoofing on upgrade requests, and headers named in Connection (hop-by-hop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createHttpServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { startPlane } from './proxy-kit.js';

function listen(server: Server | ReturnType<typeof createServer>): Promise<string> {
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(`127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

test('TCP service: a client that half-closes (sends FIN) still gets the reply the backend sends after reading to the end', async () => {
  // The backend reads the whole request (until the client's FIN), then answers and closes: like
  // `nc -N`, a Redis or HTTP/1.0 client that shuts down its write side and waits for the answer.
  const sockets = new Set<Socket>();
  const backend = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('end', () => setTimeout(() => s.end(`reply:${got.toUpperCase()}`), 50));
  });
  const addr = await listen(backend);
  const plane = await startPlane({ services: { kv: { protocol: 'tcp', listen: '127.0.0.1:0', backends: [{ name: 'k', address: addr }] } } });
  try {
    const [host, port] = plane.proxyAddress('kv').split(':') as [string, string];
    for (let i = 0; i < 2; i++) {
      const reply = await new Promise<string>((resolve, reject) => {
        const c = connect({ host, port: Number(port), allowHalfOpen: true }, () => c.end(`hello${i}`));
        let out = '';
        c.on('data', (d: Buffer) => (out += d.toString()));
        c.on('close', () => resolve(out));
        c.on('error', reject);
      });
      assert.equal(reply, `reply:HELLO${i}`);
    }
  } finally {
    await plane.stop();
    for (const s of sockets) s.destroy();
    await new Promise((r) => backend.close(r));
  }
});

async function upgradeThrough(proxy: string, headers: Record<string, string>): Promise<IncomingHttpHeaders> {
  const [host, port] = proxy.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const req = request({ host, port: Number(port), path: '/ws', headers: { connection: 'Upgrade', upgrade: 'echo', ...headers } });
    req.on('upgrade', (res, s: Socket) => {
      s.destroy();
      resolve(JSON.parse(String(res.headers['x-seen'])) as IncomingHttpHeaders);
    });
    req.on('response', (r) => reject(new Error(`got ${r.statusCode} instead of an upgrade`)));
    req.on('error', reject);
    req.end();
  });
}

test('upgrade requests: a client cannot spoof X-Forwarded-Proto or X-Forwarded-Host, and the backend gets X-Forwarded-Host', async () => {
  const tunnels: Socket[] = [];
  const ws = createHttpServer((_req, res) => res.end('plain'));
  ws.on('upgrade', (req, socket: Socket) => {
    tunnels.push(socket);
    const seen = JSON.stringify({ proto: req.headersDistinct['x-forwarded-proto'], host: req.headersDistinct['x-forwarded-host'] });
    socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nX-Seen: ${seen}\r\n\r\n`);
  });
  const wsAddr = await listen(ws);
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'ws', address: wsAddr }] } } });
  try {
    const proxy = plane.proxyAddress('web');
    const seen = await upgradeThrough(proxy, { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', host: 'app.example' });
    assert.deepEqual(seen, { proto: ['http'], host: ['app.example'] });
  } finally {
    await plane.stop();
    for (const t of tunnels) t.destroy();
    ws.closeAllConnections();
    await new Promise((r) => ws.close(r));
  }
});

test('HTTP: headers named in the Connection header are hop-by-hop and not forwarded (request and response)', async () => {
  const backend = createHttpServer((req, res) => {
    res.setHeader('x-saw-hop', String(req.headers['x-hop'] ?? 'none'));
    res.setHeader('connection', 'keep-alive, x-res-hop');
    res.setHeader('x-res-hop', 'leak');
    res.end('ok');
  });
  const addr = await listen(backend);
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'b', address: addr }] } } });
  try {
    const [host, port] = plane.proxyAddress('web').split(':') as [string, string];
    const res = await new Promise<{ status: number; headers: IncomingHttpHeaders }>((resolve, reject) => {
      const req = request({ host, port: Number(port), path: '/', headers: { connection: 'X-Hop', 'x-hop': 'secret' } }, (r) => {
        r.resume();
        r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-saw-hop'], 'none');
    assert.equal(res.headers['x-res-hop'], undefined);
  } finally {
    await plane.stop();
    backend.closeAllConnections();
    await new Promise((r) => backend.close(r));
  }
});

test('HTTP: a GET that meets a kept-alive connection the backend just closed is retried on a fresh connection, even with a single backend', async () => {
  // The backend answers the first request of each connection and drops the connection when a second
  // one arrives on it: what a client sees when a backend's idle timeout closes the socket just as
  // the proxy reuses it. The backend is healthy; the client must not see an error.
  const sockets = new Set<Socket>();
  let connections = 0;
  const backend = createServer((s) => {
    connections++;
    sockets.add(s);
    s.on('error', () => undefined);
    let served = false;
    s.on('data', () => {
      if (served) {
        s.destroy();
        return;
      }
      served = true;
      s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok');
    });
  });
  const addr = await listen(backend);
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'only', address: addr }] } } });
  try {
    const [host, port] = plane.proxyAddress('web').split(':') as [string, string];
    for (let i = 0; i < 3; i++) {
      const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host, port: Number(port), path: `/r${i}` }, (r) => {
          let body = '';
          r.on('data', (d: Buffer) => (body += d.toString()));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
      assert.deepEqual(res, { status: 200, body: 'ok' }, `request ${i}`);
    }
    assert.ok(connections >= 3, `each request after the first needed a fresh connection (saw ${connections})`);
  } finally {
    await plane.stop();
    for (const s of sockets) s.destroy();
    await new Promise((r) => backend.close(r));
  }
});

test('upgrade requests: a backend that accepts and never answers the upgrade is given up on after the response timeout (504)', async () => {
  const sockets = new Set<Socket>();
  const silent = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  const addr = await listen(silent);
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'mute', address: addr }], timeouts: { response: 300 } } } });
  try {
    const [host, port] = plane.proxyAddress('web').split(':') as [string, string];
    const outcome = await new Promise<string>((resolve) => {
      const req = request({ host, port: Number(port), path: '/ws', headers: { connection: 'Upgrade', upgrade: 'echo' } });
      const guard = setTimeout(() => {
        req.destroy();
        resolve('no answer after 10 s');
      }, 10_000);
      req.on('response', (r) => {
        clearTimeout(guard);
        r.resume();
        resolve(`status ${r.statusCode}`);
      });
      req.on('upgrade', (_r, s: Socket) => {
        clearTimeout(guard);
        s.destroy();
        resolve('upgraded');
      });
      req.on('error', (err) => {
        clearTimeout(guard);
        resolve(`error ${err.message}`);
      });
      req.end();
    });
    assert.equal(outcome, 'status 504');
    const st = plane.daemon.status().subsystems['proxy'] as { rows: Array<{ backend: string; in_flight: number }> };
    assert.equal(st.rows.find((r) => r.backend === 'mute')?.in_flight, 0);
  } finally {
    await plane.stop();
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('heartbeats: a known node of a service without heartbeat: (and without health:) gets 409 BULWARK_HEALTH_NO_HEARTBEAT, not 404', async () => {
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'b', address: '127.0.0.1:9' }] } } });
  try {
    const res = await fetch(`${plane.apiBase}/v1/heartbeat/web/b`, { method: 'POST' });
    const body = (await res.json()) as { error?: { code?: string }; code?: string };
    assert.equal(res.status, 409);
    assert.match(JSON.stringify(body), /BULWARK_HEALTH_NO_HEARTBEAT/);
    const unknown = await fetch(`${plane.apiBase}/v1/heartbeat/web/nope`, { method: 'POST' });
    await unknown.text();
    assert.equal(unknown.status, 404);
  } finally {
    await plane.stop();
  }
});

test('reload: a backend removed and re-added while it still drains takes traffic again (it was left draining, then dropped)', async () => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  let got = 0;
  const b = createHttpServer((_req, res) => {
    got++;
    if (got === 1) void held.then(() => res.end('b'));
    else res.end('b');
  });
  const bAddr = await listen(b);
  const other = createHttpServer((_req, res) => res.end('other'));
  const otherAddr = await listen(other);
  const svc = (backends: Array<{ name: string; address: string }>): Record<string, unknown> => ({ web: { listen: '127.0.0.1:0', backends, drain_timeout: '30s' } });
  const plane = await startPlane({ services: svc([{ name: 'b', address: bAddr }]) });
  const { configSchema } = await import('../core/config/schema.js');
  const reload = async (backends: Array<{ name: string; address: string }>): Promise<void> => {
    const cfg = plane.daemon.config;
    await plane.daemon.reload({ config: configSchema.parse({ api: cfg.api, state_dir: cfg.state_dir, services: svc(backends) }), file: 'reload.yaml', baseDir: '.' });
  };
  const fetchText = async (addr: string): Promise<string> => (await fetch(`http://${addr}/`)).text();
  try {
    const addr = plane.proxyAddress('web');
    const inflight = fetchText(addr);
    while (got === 0) await new Promise((r) => setTimeout(r, 10));
    await reload([{ name: 'other', address: otherAddr }]);
    await reload([{ name: 'b', address: bAddr }]);
    release();
    assert.equal(await inflight, 'b');
    await new Promise((r) => setTimeout(r, 300)); // past the drain check (every 100 ms)
    const st = plane.daemon.status().subsystems['proxy'] as { rows: Array<{ backend: string; state: string }> };
    assert.deepEqual(st.rows.map((r) => [r.backend, r.state]), [['b', 'unknown']]);
    assert.equal(await fetchText(addr), 'b');
  } finally {
    await plane.stop();
    for (const s of [b, other]) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }
});

test('upgrade requests: a client that sends its request and closes before the backend connection is up is not left hanging in a tunnel', async () => {
  const sockets = new Set<Socket>();
  const backend = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
  });
  const addr = await listen(backend);
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'b', address: addr }], timeouts: { response: 60_000 } } } });
  const inFlight = (): number => (plane.daemon.status().subsystems['proxy'] as { rows: Array<{ in_flight: number }> }).rows[0]?.in_flight ?? -1;
  try {
    const [host, port] = plane.proxyAddress('web').split(':') as [string, string];
    for (let i = 0; i < 5; i++) {
      const outcome = await new Promise<string>((resolve) => {
        const c = connect({ host, port: Number(port) }, () => c.end('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n'));
        const guard = setTimeout(() => {
          c.destroy();
          resolve('still open after 5 s');
        }, 5000);
        c.on('error', () => undefined);
        c.on('close', () => {
          clearTimeout(guard);
          resolve('closed');
        });
      });
      assert.equal(outcome, 'closed', `attempt ${i}`);
    }
    for (let i = 0; i < 50 && inFlight() !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(inFlight(), 0);
  } finally {
    await plane.stop();
    for (const s of sockets) s.destroy();
    await new Promise((r) => backend.close(r));
  }
});
