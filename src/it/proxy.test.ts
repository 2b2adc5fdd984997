// The failover proxy and health checking end to end, with real sockets on loopback: backends are
// real processes (SIGKILL) or in-process servers, the control plane runs health + proxy on a real
// SQLite state store, and clients talk HTTP/TCP through the proxy. Outcomes are asserted, never
// durations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer as createHttpServer, type Server } from 'node:http';
import { connect, createServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import parsePrometheus from 'parse-prometheus-text-format';
import { waitFor } from '../testing/helpers.js';
import { get, killHard, spawnBackend, startPlane, steadyLoad, type ChildBackend } from './proxy-kit.js';

function httpBackend(name: string, opts: { health?: () => number; port?: number } = {}): Promise<{ server: Server; address: string; hits: () => number }> {
  let hits = 0;
  const server = createHttpServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(opts.health ? opts.health() : 200).end();
      return;
    }
    hits++;
    req.resume();
    req.on('end', () => res.end(name));
  });
  return new Promise((resolve) => server.listen(opts.port ?? 0, '127.0.0.1', () => resolve({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits })));
}

function closeHttp(s: Server): Promise<void> {
  return new Promise((r) => {
    s.close(() => r());
    s.closeAllConnections();
  });
}

function rows(plane: { daemon: { status(): { subsystems: Record<string, unknown> } } }): Array<Record<string, unknown>> {
  return (plane.daemon.status().subsystems['proxy'] as { rows: Array<Record<string, unknown>> }).rows;
}

test('SIGKILL one of three backends under steady load: zero failed requests, it leaves rotation, and rejoins after rise passes', async () => {
  const backends: ChildBackend[] = await Promise.all(['b1', 'b2', 'b3'].map((n) => spawnBackend(n)));
  const plane = await startPlane({
    services: {
      web: {
        listen: '127.0.0.1:0',
        balance: 'round-robin',
        backends: backends.map((b) => ({ name: b.name, address: b.address })),
        health: { http: { path: '/health' }, interval: '200ms', timeout: '1s', rise: 3, fall: 2 },
        retries: 2,
        timeouts: { connect: '500ms', response: '5s' },
      },
    },
  });
  let load: ReturnType<typeof steadyLoad> | undefined;
  let revived: ChildBackend | undefined;
  try {
    const addr = plane.proxyAddress('web');
    await waitFor(() => plane.seen('health.transition').filter((t) => t.to === 'up').length === 3, { what: 'all three up' });
    load = steadyLoad(addr, 4);
    const served = (name: string, from = 0): number => load!.outcomes.slice(from).filter((o) => o.backend === name).length;
    await waitFor(() => ['b1', 'b2', 'b3'].every((n) => served(n) >= 20), { what: 'traffic on every backend' });
    const victim = backends[1] as ChildBackend;
    await killHard(victim);
    await waitFor(() => plane.seen('health.transition').some((t) => t.node === 'b2' && t.to === 'down'), { what: 'b2 marked down' });
    const mark = load.outcomes.length;
    await waitFor(() => load!.outcomes.length >= mark + 200, { what: 'more traffic after b2 went down' });
    assert.equal(served('b2', mark), 0, 'b2 served nothing after it was marked down');
    const row = rows(plane).find((r) => r['backend'] === 'b2');
    assert.equal(row?.['state'], 'down');

    revived = await spawnBackend('b2', victim.port);
    await waitFor(() => plane.seen('health.transition').some((t) => t.node === 'b2' && t.from === 'down' && t.to === 'up'), { what: 'b2 back up', timeoutMs: 15_000 });
    const up = plane.seen('health.transition').find((t) => t.node === 'b2' && t.from === 'down' && t.to === 'up');
    assert.match(up?.reason ?? '', /3 consecutive probes passed/);
    const mark2 = load.outcomes.length;
    await waitFor(() => served('b2', mark2) >= 10, { what: 'b2 serving again' });
    await load.stop();
    const failed = load.outcomes.filter((o) => !o.ok);
    assert.deepEqual(failed.slice(0, 5), [], `client-visible failures: ${failed.length} of ${load.outcomes.length}`);
    assert.ok(load.outcomes.length > 300);
    // Every finished request was published for the SLIs, and all of them were ok.
    const events = plane.seen('proxy.request').filter((e) => e.service === 'web');
    assert.ok(events.length >= load.outcomes.length, `${events.length} proxy.request events for ${load.outcomes.length} requests`);
    assert.equal(events.filter((e) => !e.ok).length, 0);
    assert.ok(events.every((e) => e.latency_ms >= 0 && e.status === 200));
    // The transitions are in the state store.
    const stored = (plane.daemon as unknown as { recentEvents(n: number): Array<{ kind: string; subject: string }> }).recentEvents(200).filter((e) => e.kind === 'health.transition' && e.subject === 'web/b2');
    assert.ok(stored.length >= 2);
  } finally {
    await load?.stop();
    await plane.stop();
    await Promise.all([...backends, ...(revived ? [revived] : [])].map(killHard));
  }
});

test('a backend that accepts and never answers is ejected, and its requests are retried elsewhere within the response timeout', async () => {
  const good = await Promise.all([httpBackend('g1'), httpBackend('g2')]);
  const accepted: Socket[] = [];
  const hang: NetServer = createServer((s) => accepted.push(s)); // accepts, reads nothing, answers nothing
  await new Promise<void>((r) => hang.listen(0, '127.0.0.1', () => r()));
  const hangAddr = `127.0.0.1:${(hang.address() as AddressInfo).port}`;
  const plane = await startPlane({
    services: {
      web: {
        listen: '127.0.0.1:0',
        balance: 'round-robin',
        backends: [{ name: 'hang', address: hangAddr }, ...good.map((g, i) => ({ name: `g${i + 1}`, address: g.address }))],
        health: { http: { path: '/health' }, interval: '300ms', timeout: '1s', rise: 2, fall: 2 },
        passive: { consecutive_failures: 1, base_ejection: '30s' },
        timeouts: { connect: '1s', response: '1s' },
        retries: 2,
      },
    },
  });
  try {
    const addr = plane.proxyAddress('web');
    const agent = new Agent({ keepAlive: true, maxSockets: 3 });
    const results = await Promise.all(Array.from({ length: 30 }, () => get(addr, '/x', agent)));
    agent.destroy();
    assert.deepEqual(results.filter((r) => !r.ok).map((r) => r.error), []);
    assert.ok(results.every((r) => r.backend === 'g1' || r.backend === 'g2'));
    const out = plane.seen('proxy.outlier').find((o) => o.backend === 'hang' && o.ejected);
    assert.ok(out, 'hang ejected on live traffic');
    assert.match(out.reason, /ERESPONSETIMEOUT/);
    await waitFor(() => plane.seen('health.transition').some((t) => t.node === 'hang' && t.to === 'down'), { what: 'hang down by probes too' });
    assert.equal(rows(plane).find((r) => r['backend'] === 'hang')?.['state'], 'down', 'out of rotation (ejected, then down by probes)');
  } finally {
    await plane.stop();
    for (const s of accepted) s.destroy();
    hang.close();
    await Promise.all(good.map((g) => closeHttp(g.server)));
  }
});

test('active-passive: the standby gets nothing while the primary is up, everything once it dies, and traffic returns after failback damping', async () => {
  const primary = await httpBackend('primary');
  const standby = await httpBackend('standby');
  const primaryPort = Number(primary.address.split(':')[1]);
  const plane = await startPlane({
    services: {
      app: {
        listen: '127.0.0.1:0',
        mode: 'active-passive',
        backends: [
          { name: 'primary', address: primary.address },
          { name: 'standby', address: standby.address, standby: true },
        ],
        health: { http: { path: '/health' }, interval: '150ms', timeout: '1s', rise: 2, fall: 2 },
        failback_delay: '2s',
        retries: 1,
      },
    },
  });
  let revived: Awaited<ReturnType<typeof httpBackend>> | undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  try {
    const addr = plane.proxyAddress('app');
    await waitFor(() => plane.seen('health.transition').filter((t) => t.to === 'up').length === 2, { what: 'both up' });
    for (let i = 0; i < 40; i++) assert.equal((await get(addr, '/', agent)).backend, 'primary');
    assert.equal(standby.hits(), 0, 'the standby got no requests while the primary was up');
    await closeHttp(primary.server);
    const failures: string[] = [];
    // Requests keep flowing while the primary dies: connect failures are retried on the standby.
    await waitFor(
      async () => {
        const r = await get(addr, '/', agent);
        if (!r.ok) failures.push(r.error);
        return plane.seen('health.transition').some((t) => t.node === 'primary' && t.to === 'down');
      },
      { what: 'primary down' },
    );
    for (let i = 0; i < 20; i++) assert.equal((await get(addr, '/', agent)).backend, 'standby');
    assert.deepEqual(failures, []);
    revived = await httpBackend('primary', { port: primaryPort });
    await waitFor(() => plane.seen('health.transition').some((t) => t.node === 'primary' && t.from === 'down' && t.to === 'up'), { what: 'primary back up' });
    assert.equal((await get(addr, '/', agent)).backend, 'standby', 'no failback before the damping period (2s)');
    await waitFor(async () => (await get(addr, '/', agent)).backend === 'primary', { what: 'failback to the primary', timeoutMs: 15_000 });
    assert.equal(((plane.daemon.status().subsystems['proxy'] as { tiers: Record<string, string> }).tiers)['app'], 'primary');
  } finally {
    agent.destroy();
    await plane.stop();
    await closeHttp(standby.server);
    if (revived) await closeHttp(revived.server);
  }
});

test('/health returning 500 takes a node out after exactly `fall` probes; an isolated failure every 20th probe (5%) takes nothing out', async () => {
  let failing = false;
  let served500 = 0;
  let healthCalls = 0;
  const sick = await httpBackend('sick', {
    health: () => {
      if (!failing) return 200;
      served500++;
      return 500;
    },
  });
  const flaky = await httpBackend('flaky', { health: () => (++healthCalls % 20 === 0 ? 500 : 200) });
  const plane = await startPlane({
    services: {
      web: {
        listen: '127.0.0.1:0',
        backends: [
          { name: 'sick', address: sick.address },
          { name: 'flaky', address: flaky.address },
        ],
        health: { http: { path: '/health', expect: 200 }, interval: '20ms', fast_interval: '20ms', timeout: '3s', rise: 2, fall: 3 },
      },
    },
  });
  try {
    await waitFor(() => plane.seen('health.transition').filter((t) => t.to === 'up').length === 2, { what: 'both up' });
    let countAtDown = -1;
    plane.daemon.events.on('health.transition', (t) => {
      if (t.node === 'sick' && t.to === 'down') countAtDown = served500;
    });
    failing = true;
    await waitFor(() => countAtDown >= 0, { what: 'sick down' });
    assert.equal(countAtDown, 3, 'down after exactly fall=3 failed probes');
    const t = plane.seen('health.transition').find((x) => x.node === 'sick' && x.to === 'down');
    assert.match(t?.reason ?? '', /http 500 from \/health \(expected 200\)/);
    await waitFor(() => healthCalls >= 200, { what: '200 probes of the flaky node', timeoutMs: 30_000 });
    assert.deepEqual(
      plane.seen('health.transition').filter((x) => x.node === 'flaky').map((x) => x.to),
      ['up'],
      'the flaky node never left rotation',
    );
  } finally {
    await plane.stop();
    await closeHttp(sick.server);
    await closeHttp(flaky.server);
  }
});

test('heartbeats: a node whose heartbeat is late by more than the TTL goes down; malformed or unknown heartbeats get a 4xx', async () => {
  const b = await httpBackend('hb');
  const plane = await startPlane({
    services: {
      web: { listen: '127.0.0.1:0', backends: [{ name: 'hb', address: b.address }], heartbeat: { ttl: '400ms' } },
      other: { listen: '127.0.0.1:0', backends: [{ name: 'x', address: b.address }], health: { tcp: {} } },
    },
  });
  try {
    const post = (path: string, body?: string): Promise<Response> =>
      fetch(`${plane.apiBase}${path}`, body === undefined ? { method: 'POST' } : { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    const ok = await post('/v1/heartbeat/web/hb', '{"status":"up"}');
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { state: string }).state, 'up');
    const cases: Array<[string, string | undefined, number, string]> = [
      ['/v1/heartbeat/web/hb', '{not json', 400, 'BULWARK_API_BAD_REQUEST'],
      ['/v1/heartbeat/web/hb', '[1,2]', 400, 'BULWARK_HEALTH_BAD_HEARTBEAT'],
      ['/v1/heartbeat/web/hb', '{"status":"sideways"}', 400, 'BULWARK_HEALTH_BAD_HEARTBEAT'],
      ['/v1/heartbeat/web/hb', '{"colour":"up"}', 400, 'BULWARK_HEALTH_BAD_HEARTBEAT'],
      ['/v1/heartbeat/web/nope', undefined, 404, 'BULWARK_HEALTH_UNKNOWN_NODE'],
      ['/v1/heartbeat/nope/hb', undefined, 404, 'BULWARK_HEALTH_UNKNOWN_NODE'],
      ['/v1/heartbeat/other/x', undefined, 409, 'BULWARK_HEALTH_NO_HEARTBEAT'],
    ];
    for (const [path, body, status, code] of cases) {
      const r = await post(path, body);
      assert.equal(r.status, status, `${path} ${body ?? ''}`);
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, code);
    }
    assert.equal((await fetch(`${plane.apiBase}/v1/heartbeat/web/hb`)).status, 405);
    // Stop beating: the TTL expires and the node goes down.
    await waitFor(() => plane.seen('health.transition').some((t) => t.node === 'hb' && t.to === 'down'), { what: 'heartbeat expiry' });
    assert.match(plane.seen('health.transition').find((t) => t.node === 'hb' && t.to === 'down')?.reason ?? '', /heartbeat late by \d+ ms \(TTL 400 ms\)/);
    assert.equal(rows(plane).find((r) => r['backend'] === 'hb')?.['state'], 'down');
    assert.equal((await post('/v1/heartbeat/web/hb')).status, 200);
    assert.equal(plane.seen('health.transition').at(-1)?.to, 'up');
  } finally {
    await plane.stop();
    await closeHttp(b.server);
  }
});

test('HTTP details: X-Forwarded-For, a streamed 2 MB POST body, a never-sent POST retried on another backend, 503 with nothing up', async () => {
  const live = await spawnBackend('live');
  const dead = await spawnBackend('dead');
  await killHard(dead);
  const plane = await startPlane({
    services: {
      web: {
        listen: '127.0.0.1:0',
        balance: 'round-robin',
        backends: [
          { name: 'dead', address: dead.address },
          { name: 'live', address: live.address },
        ],
        passive: { consecutive_failures: 100 },
        retries: 1,
      },
    },
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const addr = plane.proxyAddress('web');
    const body = Buffer.alloc(2 * 1024 * 1024, 7);
    for (let i = 0; i < 4; i++) {
      const r = await get(addr, '/upload', agent, { method: 'POST', body });
      assert.equal(r.status, 200, r.error);
      assert.equal(r.headers['x-backend'], 'live');
      assert.equal(r.headers['x-got-bytes'], String(body.length));
      assert.equal(r.headers['x-saw-xff'], '127.0.0.1');
    }
    const deadRow = rows(plane).find((r) => r['backend'] === 'dead');
    assert.ok(Number(deadRow?.['errors']) >= 1, 'the POSTs that hit the dead backend failed to connect and were retried');
    await killHard(live);
    const r = await get(addr, '/x', agent);
    assert.equal(r.status, 502);
    plane.daemon.events.emit('health.transition', { service: 'web', node: 'live', from: 'up', to: 'down', reason: 'test', at: Date.now() });
    plane.daemon.events.emit('health.transition', { service: 'web', node: 'dead', from: 'up', to: 'down', reason: 'test', at: Date.now() });
    const none = await get(addr, '/x', agent);
    assert.equal(none.status, 503);
    assert.match(none.error, /no healthy backend/);
  } finally {
    agent.destroy();
    await plane.stop();
    await killHard(live);
  }
});

function echoServer(tag: string): Promise<{ server: NetServer; address: string; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.on('data', (d) => s.write(`${tag}:${d.toString()}`));
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, sockets })));
}

function tcpClient(address: string): Promise<{ sock: Socket; ask: (s: string) => Promise<string>; closed: Promise<void> }> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port: Number(port) }, () => {
      const closed = new Promise<void>((r) => sock.once('close', () => r()));
      resolve({
        sock,
        closed,
        ask: (s) =>
          new Promise((res, rej) => {
            sock.once('data', (d) => res(d.toString()));
            sock.once('close', () => rej(new Error('closed')));
            sock.write(s);
          }),
      });
    });
    sock.once('error', reject);
  });
}

test('TCP service: splices bytes, closes open connections of a backend marked down, new connections go to a healthy one', async () => {
  const a = await echoServer('a');
  const b = await echoServer('b');
  const plane = await startPlane({
    services: {
      pg: {
        protocol: 'tcp',
        listen: '127.0.0.1:0',
        balance: 'round-robin',
        backends: [
          { name: 'a', address: a.address },
          { name: 'b', address: b.address },
        ],
        close_on_down: true,
      },
    },
  });
  try {
    const addr = plane.proxyAddress('pg');
    const c1 = await tcpClient(addr);
    const first = await c1.ask('hello');
    const onA = first.startsWith('a:');
    assert.match(first, /^[ab]:hello$/);
    plane.daemon.events.emit('health.transition', { service: 'pg', node: onA ? 'a' : 'b', from: 'up', to: 'down', reason: 'test', at: Date.now() });
    await c1.closed;
    for (let i = 0; i < 4; i++) {
      const c = await tcpClient(addr);
      assert.equal(await c.ask('again'), `${onA ? 'b' : 'a'}:again`);
      c.sock.destroy();
    }
  } finally {
    await plane.stop();
    a.server.close();
    b.server.close();
    for (const s of [...a.sockets, ...b.sockets]) s.destroy();
  }
});

test('database listeners follow db.topology: writes to the primary, reads round-robin over replicas, primary change closes old connections, no primary refuses', async () => {
  const [n1, n2, n3] = await Promise.all([echoServer('pg-1'), echoServer('pg-2'), echoServer('pg-3')]);
  const plane = await startPlane({
    databases: {
      main: {
        engine: 'postgres',
        listen: '127.0.0.1:0',
        read_listen: '127.0.0.1:0',
        nodes: [
          { name: 'pg-1', port: 1, data_dir: '/nonexistent/1' },
          { name: 'pg-2', port: 2, data_dir: '/nonexistent/2' },
        ],
      },
    },
  });
  try {
    const status = plane.daemon.status().subsystems['proxy'] as { listeners: Record<string, string> };
    const w = status.listeners['db:main'] as string;
    const r = status.listeners['db:main:read'] as string;
    const before = await tcpClient(w);
    await before.closed; // no topology yet: writes are refused
    const topo = (primary: string | undefined, replicas: string[]): void =>
      plane.daemon.events.emit('db.topology', {
        database: 'main',
        primary: primary ? { node: primary, address: { 'pg-1': n1.address, 'pg-2': n2.address, 'pg-3': n3.address }[primary] as string } : undefined,
        replicas: replicas.map((n) => ({ node: n, address: { 'pg-1': n1.address, 'pg-2': n2.address, 'pg-3': n3.address }[n] as string, lag_bytes: 0 })),
        at: Date.now(),
      });
    topo('pg-1', ['pg-2', 'pg-3']);
    const c1 = await tcpClient(w);
    assert.equal(await c1.ask('select 1'), 'pg-1:select 1');
    const reads = new Set<string>();
    for (let i = 0; i < 4; i++) {
      const c = await tcpClient(r);
      reads.add((await c.ask('q')).split(':')[0] as string);
      c.sock.destroy();
    }
    assert.deepEqual([...reads].sort(), ['pg-2', 'pg-3']);
    topo('pg-2', ['pg-3']);
    await c1.closed; // the old primary's connection is closed so the client reconnects
    const c2 = await tcpClient(w);
    assert.equal(await c2.ask('select 2'), 'pg-2:select 2');
    topo('pg-2', []); // same primary: its connections stay open
    assert.equal(await c2.ask('still'), 'pg-2:still');
    topo(undefined, []);
    await c2.closed;
    const refused = await tcpClient(w);
    await refused.closed;
  } finally {
    await plane.stop();
    for (const n of [n1, n2, n3]) {
      n.server.close();
      for (const s of n.sockets) s.destroy();
    }
  }
});

test('/metrics parses as Prometheus text and has the proxy and health families', async () => {
  const b = await httpBackend('m1');
  const plane = await startPlane({
    services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'm1', address: b.address }], health: { http: { path: '/health' }, interval: '100ms' } } },
  });
  try {
    const agent = new Agent({ keepAlive: true });
    for (let i = 0; i < 5; i++) assert.equal((await get(plane.proxyAddress('web'), '/', agent)).status, 200);
    agent.destroy();
    await waitFor(() => plane.seen('health.transition').length > 0, { what: 'a probe result' });
    const text = await (await fetch(`${plane.apiBase}/metrics`)).text();
    const families = new Map(parsePrometheus(text).map((f) => [f.name, f]));
    for (const [name, type] of [
      ['bulwark_proxy_requests_total', 'COUNTER'],
      ['bulwark_proxy_errors_total', 'COUNTER'],
      ['bulwark_proxy_retries_total', 'COUNTER'],
      ['bulwark_proxy_in_flight', 'GAUGE'],
      ['bulwark_proxy_backend_up', 'GAUGE'],
      ['bulwark_proxy_request_duration_seconds', 'HISTOGRAM'],
      ['bulwark_proxy_ejection_detection_seconds', 'HISTOGRAM'],
      ['bulwark_proxy_outlier_ejections_total', 'COUNTER'],
      ['bulwark_health_probes_total', 'COUNTER'],
      ['bulwark_health_transitions_total', 'COUNTER'],
      ['bulwark_health_node_up', 'GAUGE'],
      ['bulwark_health_detection_seconds', 'HISTOGRAM'],
    ] as const) {
      assert.equal(families.get(name)?.type, type, `${name} missing or not a ${type}`);
    }
    const fam = families.get('bulwark_proxy_requests_total');
    const reqs = fam?.metrics.find((m) => m.labels?.['code'] === '2xx' && m.labels?.['backend'] === 'm1');
    assert.equal(reqs?.value, '5', JSON.stringify(fam));
    // (this parser keeps a histogram's buckets but drops its labels)
    const hist = families.get('bulwark_proxy_request_duration_seconds')?.metrics[0];
    assert.equal(hist?.buckets?.['+Inf'], '5');
    assert.match(text, /^bulwark_proxy_request_duration_seconds_count\{service="web",backend="m1"\} 5$/m);
  } finally {
    await plane.stop();
    await closeHttp(b.server);
  }
});

test('reload drains a removed backend: its request in flight completes, new requests go to the new backend, then it leaves the table', async () => {
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));
  let slowGot = 0;
  const slow = createHttpServer((req, res) => {
    if (req.url === '/health') return void res.end('ok');
    slowGot++;
    void held.then(() => res.end('slow'));
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', () => r()));
  const fast = await httpBackend('fast');
  const slowAddr = `127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const svc = (backends: Array<{ name: string; address: string }>): Record<string, unknown> => ({ web: { listen: '127.0.0.1:0', backends, drain_timeout: '30s' } });
  const plane = await startPlane({ services: svc([{ name: 'slow', address: slowAddr }]) });
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });
  try {
    const addr = plane.proxyAddress('web');
    const inflight = get(addr, '/a', agent);
    await waitFor(() => slowGot === 1, { what: 'the request reached slow' });
    const { configSchema } = await import('../core/config/schema.js');
    const cfg = plane.daemon.config;
    const next = configSchema.parse({ api: cfg.api, state_dir: cfg.state_dir, services: svc([{ name: 'fast', address: fast.address }]) });
    await plane.daemon.reload({ config: next, file: 'reload.yaml', baseDir: '.' });
    assert.equal(plane.proxyAddress('web'), addr, 'same listener after reload');
    assert.deepEqual(rows(plane).map((r) => [r['backend'], r['state']]), [['slow', 'draining'], ['fast', 'unknown']]);
    for (let i = 0; i < 5; i++) assert.equal((await get(addr, '/b', agent)).backend, 'fast');
    release();
    const r = await inflight;
    assert.equal(r.status, 200);
    assert.equal(r.backend, 'slow');
    await waitFor(() => rows(plane).length === 1, { what: 'slow removed after draining' });
    assert.equal(rows(plane)[0]?.['backend'], 'fast');
  } finally {
    agent.destroy();
    await plane.stop();
    await closeHttp(slow);
    await closeHttp(fast.server);
  }
});

test('proxy.request marks 502 and 503 as not ok', async () => {
  const dead = await spawnBackend('gone');
  await killHard(dead);
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'gone', address: dead.address }], retries: 0, passive: { consecutive_failures: 1, base_ejection: '1m' } } } });
  const agent = new Agent({ keepAlive: true });
  try {
    const addr = plane.proxyAddress('web');
    assert.equal((await get(addr, '/', agent)).status, 502);
    assert.equal((await get(addr, '/', agent)).status, 503, 'ejected after one failure: nothing left to route to');
    const ev = plane.seen('proxy.request');
    assert.deepEqual(ev.map((e) => [e.status, e.ok]), [[502, false], [503, false]]);
    assert.equal(ev[0]?.backend, 'gone');
    assert.equal(ev[1]?.backend, undefined);
  } finally {
    agent.destroy();
    await plane.stop();
  }
});

test('the demo part starts three backends and a services.web config that serves through the proxy', async () => {
  const { prepareDemo } = await import('../app/demo.js');
  const { loadConfig } = await import('../core/config/load.js');
  const { proxyDemoPart } = await import('../proxy/demo.js');
  const { createLogger } = await import('../core/logger.js');
  const logger = createLogger({ level: 'silent' });
  const demo = await prepareDemo({ listen: '127.0.0.1:0', logger, parts: [proxyDemoPart] });
  try {
    const loaded = loadConfig(demo.configFile);
    const web = loaded.config.services['web'];
    assert.ok(web);
    assert.equal(web.backends.length, 3);
    assert.match(web.listen, /^127\.0\.0\.1:\d+$/);
    const plane = await startPlane({ services: { web: { ...web, listen: '127.0.0.1:0', health: { http: { path: '/health' }, interval: '100ms' } } } });
    try {
      await waitFor(() => plane.seen('health.transition').filter((t) => t.to === 'up').length === 3, { what: 'demo backends up' });
      const agent = new Agent({ keepAlive: true });
      const names = new Set<string>();
      for (let i = 0; i < 9; i++) names.add((await get(plane.proxyAddress('web'), '/', agent)).backend.trim());
      agent.destroy();
      assert.deepEqual([...names].sort(), ['hello from web-1', 'hello from web-2', 'hello from web-3']);
    } finally {
      await plane.stop();
    }
  } finally {
    await demo.stop();
  }
});

test('upgrade requests (WebSocket style) are spliced to a backend, with a connect failure retried on another', async () => {
  const dead = await spawnBackend('dead');
  await killHard(dead);
  const ws = createHttpServer((_req, res) => res.end('plain'));
  const tunnels: Socket[] = [];
  ws.on('upgrade', (req, socket: Socket) => {
    tunnels.push(socket);
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\nX-Saw-Xff: ${String(req.headers['x-forwarded-for'])}\r\n\r\n`);
    socket.on('data', (d) => socket.write(`echo:${d.toString()}`));
  });
  await new Promise<void>((r) => ws.listen(0, '127.0.0.1', () => r()));
  const wsAddr = `127.0.0.1:${(ws.address() as AddressInfo).port}`;
  const plane = await startPlane({
    services: { web: { listen: '127.0.0.1:0', balance: 'round-robin', backends: [{ name: 'dead', address: dead.address }, { name: 'ws', address: wsAddr }], passive: { consecutive_failures: 100 }, retries: 1 } },
  });
  try {
    const [host, port] = plane.proxyAddress('web').split(':') as [string, string];
    for (let i = 0; i < 2; i++) {
      const { request } = await import('node:http');
      const { res, socket } = await new Promise<{ res: import('node:http').IncomingMessage; socket: Socket }>((resolve, reject) => {
        const req = request({ host, port: Number(port), path: '/chat', headers: { connection: 'Upgrade', upgrade: 'echo' } });
        req.on('upgrade', (r, s: Socket) => resolve({ res: r, socket: s }));
        req.on('response', (r) => reject(new Error(`got ${r.statusCode} instead of an upgrade`)));
        req.on('error', reject);
        req.end();
      });
      assert.equal(res.statusCode, 101);
      assert.equal(res.headers['x-saw-xff'], '127.0.0.1');
      const reply = await new Promise<string>((resolve) => {
        socket.once('data', (d) => resolve(d.toString()));
        socket.write('ping');
      });
      assert.equal(reply, 'echo:ping');
      socket.destroy();
    }
  } finally {
    await plane.stop();
    for (const t of tunnels) t.destroy();
    await closeHttp(ws);
  }
});
