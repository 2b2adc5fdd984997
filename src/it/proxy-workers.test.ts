// proxy.workers: the data path in worker processes sharing the listeners, health and ejections
// decided in the daemon and applied by every worker, counters and SLI events summed in the daemon.
// Real processes, real sockets on loopback; synced() is the barrier (every worker has applied what
// the daemon sent and reported its counters), never a sleep.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import parsePrometheus from 'parse-prometheus-text-format';
import { waitFor } from '../testing/helpers.js';
import { get, killHard, spawnBackend, startPlane } from './proxy-kit.js';

function countingBackend(name: string): Promise<{ server: Server; address: string; hits: () => number }> {
  let hits = 0;
  const server = createHttpServer((req, res) => {
    hits++;
    req.resume();
    req.on('end', () => res.end(name));
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits })));
}

function proxyStatus(plane: { daemon: { status(): { subsystems: Record<string, unknown> } } }): { rows: Array<Record<string, unknown>>; workers: { count: number; pids: number[] } } {
  return plane.daemon.status().subsystems['proxy'] as { rows: Array<Record<string, unknown>>; workers: { count: number; pids: number[] } };
}

async function close(s: Server): Promise<void> {
  s.closeAllConnections();
  await new Promise((r) => s.close(r));
}

test('proxy.workers: 2 serves from two worker processes; status, /metrics and proxy.request count every request once', async () => {
  const backends = await Promise.all(['b1', 'b2'].map(countingBackend));
  const plane = await startPlane({ proxy: { workers: 2 }, services: { web: { listen: '127.0.0.1:0', balance: 'round-robin', backends: backends.map((b, i) => ({ name: `b${i + 1}`, address: b.address })) } } });
  try {
    const st = proxyStatus(plane);
    assert.equal(st.workers.count, 2);
    assert.equal(new Set(st.workers.pids).size, 2);
    assert.ok(!st.workers.pids.includes(process.pid), 'the data path is not in the daemon');
    const addr = plane.proxyAddress('web');
    const agent = new Agent({ keepAlive: false });
    const results = await Promise.all(Array.from({ length: 40 }, () => get(addr, '/x', agent)));
    agent.destroy();
    assert.deepEqual(results.filter((r) => !r.ok), []);
    await plane.proxy.synced();
    const rows = proxyStatus(plane).rows;
    assert.equal(rows.reduce((n, r) => n + Number(r['requests']), 0), 40, JSON.stringify(rows));
    assert.equal(backends[0]!.hits() + backends[1]!.hits(), 40);
    assert.equal(Number(rows.find((r) => r['backend'] === 'b1')?.['requests']), backends[0]!.hits(), 'per-backend counts match what the backend saw');
    assert.equal(plane.seen('proxy.request').filter((e) => e.service === 'web' && e.ok && e.status === 200).length, 40);
    const families = parsePrometheus(await (await fetch(`${plane.apiBase}/metrics`)).text()) as Array<{ name: string; metrics: Array<{ labels?: Record<string, string>; value?: string }> }>;
    const total = families.find((f) => f.name === 'bulwark_proxy_requests_total')?.metrics.filter((m) => m.labels?.['code'] === '2xx').reduce((n, m) => n + Number(m.value), 0);
    assert.equal(total, 40);
  } finally {
    await plane.stop();
    await Promise.all(backends.map((b) => close(b.server)));
  }
});

test('proxy.workers: 2 — a backend marked down and a backend ejected by the daemon get no request from any worker', async () => {
  const live = await countingBackend('live');
  const down = await countingBackend('down');
  const dead = await spawnBackend('dead');
  await killHard(dead);
  const plane = await startPlane({
    proxy: { workers: 2 },
    services: {
      web: {
        listen: '127.0.0.1:0',
        balance: 'round-robin',
        backends: [
          { name: 'live', address: live.address },
          { name: 'down', address: down.address },
          { name: 'dead', address: dead.address },
        ],
        passive: { consecutive_failures: 1, base_ejection: '60s', max_ejected_percent: 0.5 },
        retries: 2,
      },
    },
  });
  try {
    const addr = plane.proxyAddress('web');
    plane.daemon.events.emit('health.transition', { service: 'web', node: 'down', from: 'unknown', to: 'down', reason: 'test', at: Date.now() });
    await plane.proxy.synced();
    const agent = new Agent({ keepAlive: false });
    // Requests that meet 'dead' fail to connect, are retried on 'live', and get it ejected.
    await waitFor(async () => (await get(addr, '/x', agent)).ok && plane.seen('proxy.outlier').some((o) => o.backend === 'dead' && o.ejected), { what: 'dead ejected' });
    await plane.proxy.synced();
    const deadErrors = Number(proxyStatus(plane).rows.find((r) => r['backend'] === 'dead')?.['errors']);
    assert.ok(deadErrors >= 1);
    const results = await Promise.all(Array.from({ length: 30 }, () => get(addr, '/y', agent)));
    agent.destroy();
    await plane.proxy.synced();
    assert.deepEqual(results.filter((r) => !r.ok), []);
    assert.ok(results.every((r) => r.backend === 'live'));
    assert.equal(down.hits(), 0, 'no worker sent anything to the backend marked down');
    const rows = proxyStatus(plane).rows;
    assert.equal(Number(rows.find((r) => r['backend'] === 'dead')?.['errors']), deadErrors, 'no worker tried the ejected backend again');
    assert.equal(rows.find((r) => r['backend'] === 'dead')?.['state'], 'ejected');
    assert.equal(rows.find((r) => r['backend'] === 'down')?.['state'], 'down');
  } finally {
    await plane.stop();
    await Promise.all([close(live.server), close(down.server)]);
  }
});

test('proxy.workers: 2 — reload drains a removed backend in the worker that holds its request, and the daemon shows it draining until then', async () => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  let slowGot = 0;
  const slow = createHttpServer((_req, res) => {
    slowGot++;
    void held.then(() => res.end('slow'));
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
  const fast = await countingBackend('fast');
  const slowAddr = `127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const svc = (backends: Array<{ name: string; address: string }>): Record<string, unknown> => ({ web: { listen: '127.0.0.1:0', backends, drain_timeout: '30s' } });
  const plane = await startPlane({ proxy: { workers: 2 }, services: svc([{ name: 'slow', address: slowAddr }]) });
  const agent = new Agent({ keepAlive: false });
  try {
    const addr = plane.proxyAddress('web');
    const inflight = get(addr, '/a', agent);
    await waitFor(() => slowGot === 1, { what: 'the request reached slow' });
    const { configSchema } = await import('../core/config/schema.js');
    const cfg = plane.daemon.config;
    const next = configSchema.parse({ api: cfg.api, state_dir: cfg.state_dir, proxy: { workers: 2 }, services: svc([{ name: 'fast', address: fast.address }]) });
    await plane.daemon.reload({ config: next, file: 'reload.yaml', baseDir: '.' });
    assert.equal(plane.proxyAddress('web'), addr, 'same listener after reload');
    assert.deepEqual(
      proxyStatus(plane).rows.map((r) => [r['backend'], r['state'], r['in_flight']]),
      [
        ['slow', 'draining', 1],
        ['fast', 'unknown', 0],
      ],
    );
    for (let i = 0; i < 6; i++) assert.equal((await get(addr, '/b', agent)).backend, 'fast');
    assert.equal(slowGot, 1, 'no worker sent a new request to the draining backend');
    release();
    const r = await inflight;
    assert.equal(r.backend, 'slow');
    await waitFor(() => proxyStatus(plane).rows.length === 1, { what: 'slow removed once no worker has it in flight' });
    agent.destroy();
  } finally {
    await plane.stop();
    await close(slow);
    await close(fast.server);
  }
});
