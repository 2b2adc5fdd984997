// Tests of SLOs across instances: ClusterSums adds the peers' request SLIs (and never their time
// slices), pulled rows replace rather than add (a pull is idempotent), the puller pages and
// resumes after a peer was away, and on a real etcd two SLO subsystems count each other's
// traffic, only the job/slo lease holder fires alerts, and the next holder carries an open alert
// on without firing it again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { systemClock } from '../core/clock.js';
import { configSchema } from '../core/config/schema.js';
import { EventBus, type BulwarkEvents } from '../core/events.js';
import { createLogger } from '../core/logger.js';
import type { RouteContext } from '../core/subsystem.js';
import { EtcdCoordination } from '../coord/index.js';
import { startEtcd } from '../coord/etcd.testkit.js';
import { SqliteStore } from '../store/sqlite.js';
import { ClusterSums, countsAcrossInstances, SliPuller, type SliPeers } from './cluster.js';
import { HOUR_MS, MINUTE_MS } from './math.js';
import { KEYS, peerKey, SloRepo } from './repo.js';
import { SloSubsystem } from './subsystem.js';

const T0 = Date.UTC(2026, 5, 1, 12, 0);

test('ClusterSums: request SLIs add every peer\'s copied rows; time slices (probes, observed) stay this instance\'s', () => {
  const repo = new SloRepo(SqliteStore.open(':memory:'));
  repo.write([{ key: 'avail:web', bucket_start: T0, good: 9, total: 10 }, { key: KEYS.probe('web'), bucket_start: T0, good: 60_000, total: 60_000 }], [{ service: 'web', bucket_start: T0, le: 100, count: 4 }]);
  repo.replacePeerRows('bw-2', [{ key: 'avail:web', bucket_start: T0, bucket_ms: MINUTE_MS, good: 5, total: 20 }, { key: KEYS.probe('web'), bucket_start: T0, bucket_ms: MINUTE_MS, good: 0, total: 60_000 }], [{ service: 'web', bucket_start: T0, bucket_ms: MINUTE_MS, le: 100, count: 6 }]);
  const sums = new ClusterSums(repo, repo, () => ['bw-2']);
  const r = { start: T0, end: T0 + MINUTE_MS };
  assert.deepEqual(sums.sum({ key: 'avail:web' }, r), { good: 14, total: 30 });
  assert.deepEqual(sums.sum({ service: 'web', threshold: 100 }, r), { good: 10, total: 10 });
  assert.deepEqual(sums.sum({ key: KEYS.probe('web') }, r), { good: 60_000, total: 60_000 }, 'the peer\'s probe time is not added');
  assert.equal(countsAcrossInstances({ key: KEYS.observed }), false);
  // without ClusterSums the peer's traffic is not counted
  assert.deepEqual(repo.sum({ key: 'avail:web' }, r), { good: 9, total: 10 });
});

test('replacePeerRows: pulling the same rows twice does not count them twice; a grown minute replaces; an hourly row replaces its hour', () => {
  const repo = new SloRepo(SqliteStore.open(':memory:'));
  const row = (bucket_start: number, good: number, total: number, bucket_ms = MINUTE_MS) => ({ key: 'avail:web', bucket_start, bucket_ms, good, total });
  repo.replacePeerRows('p', [row(T0, 1, 2), row(T0 + MINUTE_MS, 3, 3)], []);
  repo.replacePeerRows('p', [row(T0, 1, 2), row(T0 + MINUTE_MS, 3, 3)], []);
  const key = { key: peerKey('p', 'avail:web') };
  const hour = { start: T0, end: T0 + HOUR_MS };
  assert.deepEqual(repo.sum(key, hour), { good: 4, total: 5 });
  repo.replacePeerRows('p', [row(T0 + MINUTE_MS, 5, 6)], []);
  assert.deepEqual(repo.sum(key, hour), { good: 6, total: 8 });
  repo.replacePeerRows('p', [row(T0, 7, 9, HOUR_MS)], []);
  assert.deepEqual(repo.sum(key, hour), { good: 7, total: 9 });
  repo.replacePeerRows('p', [row(T0 + 2 * MINUTE_MS, 1, 1)], []);
  assert.deepEqual(repo.sum(key, hour), { good: 7, total: 9 }, 'a minute of an hour already compacted here is not added');
  assert.equal(repo.peerCursor('p'), T0);
  assert.equal(repo.peerCursor('other'), undefined);
});

test('SliPuller: pages through a peer\'s rows, skips what it does not serve, and catches up after the peer was away', async () => {
  const peerRepo = new SloRepo(SqliteStore.open(':memory:'));
  const now = Date.now();
  const t = Math.floor(now / MINUTE_MS) * MINUTE_MS;
  peerRepo.write([{ key: 'avail:web', bucket_start: t - 30 * HOUR_MS, good: 1, total: 1 }, { key: 'avail:web', bucket_start: t, good: 2, total: 3 }, { key: KEYS.observed, bucket_start: t, good: 5, total: 5 }], []);
  peerRepo.replacePeerRows('third', [{ key: 'avail:web', bucket_start: t, bucket_ms: MINUTE_MS, good: 100, total: 100 }], []);
  let up = false;
  const calls: string[] = [];
  const peers: SliPeers = {
    names: () => ['bw-2'],
    get: async (_i, path) => {
      calls.push(path);
      if (!up) throw new Error('connect ECONNREFUSED');
      const u = new URL(path, 'http://x');
      return peerRepo.ownRequestRows(Number(u.searchParams.get('from')), Number(u.searchParams.get('to')));
    },
  };
  const repo = new SloRepo(SqliteStore.open(':memory:'));
  const puller = new SliPuller(repo, peers, systemClock);
  assert.deepEqual(Object.keys(await puller.pull()), ['bw-2'], 'an unreachable peer is reported');
  up = true;
  calls.length = 0;
  assert.deepEqual(await puller.pull(), {});
  assert.equal(calls.length, 3, `one page at the start of 8 days, one at the old row 30 h ago, one at now (empty spans skipped): ${calls.join(' ')}`);
  const r = { start: t - 40 * HOUR_MS, end: t + MINUTE_MS };
  assert.deepEqual(repo.sum({ key: peerKey('bw-2', 'avail:web') }, r), { good: 3, total: 4 });
  assert.deepEqual(repo.sum({ key: peerKey('bw-2', KEYS.observed) }, r), { good: 0, total: 0 }, 'time slices are not pulled');
  assert.deepEqual(repo.sum({ key: peerKey('bw-2', peerKey('third', 'avail:web')) }, r), { good: 0, total: 0 }, 'rows the peer copied from others are not pulled again');
  // caught up: the next pull reads one short page from the cursor
  calls.length = 0;
  await puller.pull();
  assert.equal(calls.length, 1);
});

function sloInstance(name: string, etcdEndpoint: string, peers: () => Map<string, SloSubsystem>) {
  const coordination = new EtcdCoordination({ endpoints: [etcdEndpoint], prefix: '/slo-cluster', ttlMs: 2000, identity: name, clock: systemClock });
  const events = new EventBus();
  const alerts: Array<BulwarkEvents['slo.alert']> = [];
  events.on('slo.alert', (e) => alerts.push(e));
  const store = SqliteStore.open(':memory:');
  const config = configSchema.parse({ slos: { 'web-avail': { service: 'web', objective: '99.9%', window: '30d' } } });
  const sub = new SloSubsystem({
    config,
    baseDir: process.cwd(),
    events,
    logger: createLogger({ level: 'fatal' }),
    clock: systemClock,
    metrics: new Registry(),
    store,
    instance: { name, api: '127.0.0.1:1' },
    coordination,
    peers: {
      names: () => [...peers().keys()].filter((n) => n !== name),
      get: async (peer, path) => {
        const other = peers().get(peer);
        if (!other) throw new Error(`${peer} is down`);
        const route = other.routes().find((r) => r.path === '/v1/internal/sli');
        return route?.handle({ url: new URL(path, 'http://x'), params: {} } as unknown as RouteContext);
      },
    },
  });
  return { name, sub, events, alerts, coordination, store };
}

test('SLOs across instances on etcd: each counts both instances\' traffic; only the lease holder fires; the next holder carries the open alert on', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const live = new Map<string, SloSubsystem>();
  const a = sloInstance('bw-1', etcd.endpoint, () => live);
  const b = sloInstance('bw-2', etcd.endpoint, () => live);
  live.set('bw-1', a.sub);
  live.set('bw-2', b.sub);
  await a.sub.start();
  await b.sub.start();
  t.after(async () => {
    await b.sub.stop();
    await b.coordination.close();
  });
  const req = (ok: boolean) => ({ service: 'web', backend: 'x', ok, status: ok ? 200 : 502, latency_ms: 3, at: Date.now() });
  for (let i = 0; i < 10; i++) a.events.emit('proxy.request', req(true));
  for (let i = 0; i < 30; i++) b.events.emit('proxy.request', req(false));

  const ra = await a.sub.clusterTick(); // a takes job/slo first
  assert.equal(a.sub.evaluatesAlerts, true);
  const rb = await b.sub.clusterTick();
  assert.equal(b.sub.evaluatesAlerts, false);
  // a ticked before b had flushed its minute; now that b has, a counts b's requests too
  const ra2 = await a.sub.clusterTick();
  for (const r of [ra2, rb]) {
    assert.equal(r?.slos[0]?.total, 40, 'both instances\' requests are counted');
    assert.equal(r?.slos[0]?.good, 10);
  }
  assert.ok(ra && (ra.slos[0]?.total ?? 0) >= 10);
  assert.ok(a.alerts.length >= 1 && a.alerts.every((x) => x.state === 'firing'), 'the holder fires on the whole cluster\'s errors');
  assert.deepEqual(b.alerts, [], 'the other instance fires nothing');
  await b.sub.clusterTick();
  const rowsOf = (x: SloSubsystem) => (x.status() as { rows: Array<{ alerts: string }> }).rows;
  assert.equal(rowsOf(b.sub)[0]?.alerts, rowsOf(a.sub)[0]?.alerts, 'the other instance shows the holder\'s open alerts');
  assert.match(rowsOf(b.sub)[0]?.alerts ?? '', /page/);
  const firedByA = a.alerts.length;

  // a stops (lease released); b becomes the holder and carries the open alerts on: no second firing
  await a.sub.stop();
  await a.coordination.close();
  live.delete('bw-1');
  await b.sub.clusterTick();
  assert.equal(b.sub.evaluatesAlerts, true);
  assert.deepEqual(b.alerts, [], 'the next holder does not fire the open alerts again');
  const open = new SloRepo(b.store).openAlerts();
  assert.equal(open.length, firedByA, 'b carries every open alert');
  assert.equal(a.alerts.length, firedByA);
});
