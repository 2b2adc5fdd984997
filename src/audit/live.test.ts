// Tests of the single-point-of-failure audit from live cluster state: each rule says ok in the
// redundant case and not ok in the case where it must (one live instance, instances on one host,
// one zone, etcd under three members or unreachable, a database whose live nodes share a host or
// a zone or have one live instance, a service whose backends share a zone), and gatherLive on
// real etcd (one member and three members on loopback, members registered as session keys).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../core/clock.js';
import { configSchema, type BulwarkConfig } from '../core/config/schema.js';
import { EtcdCoordination, Membership } from '../coord/index.js';
import { startEtcd } from '../coord/etcd.testkit.js';
import { startEtcdCluster } from '../coord/etcd-cluster.testkit.js';
import { auditLive, gatherLive, type LiveState } from './live.js';

function config(opts: { zones?: [string, string, string]; hosts?: [string, string, string]; backendZones?: [string, string] } = {}): BulwarkConfig {
  const hosts = opts.hosts ?? ['10.0.0.1', '10.0.0.2', '10.0.0.3'];
  const zones = opts.zones ?? ['a', 'b', 'c'];
  return configSchema.parse({
    cluster: { name: 'prod', instances: hosts.map((h, i) => ({ name: `bw-${i + 1}`, api: `${h}:7070`, zone: zones[i] })) },
    coordination: { kind: 'etcd', endpoints: ['http://10.0.0.1:2379'] },
    databases: {
      main: {
        engine: 'postgres',
        listen: '0.0.0.0:6432',
        nodes: [
          { name: 'pg-1', instance: 'bw-1', host: hosts[0], port: 5432, data_dir: '/d1' },
          { name: 'pg-2', instance: 'bw-2', host: hosts[1], port: 5432, data_dir: '/d2' },
        ],
      },
    },
    services: {
      web: {
        listen: '0.0.0.0:8080',
        backends: [
          { name: 'w1', address: '10.0.1.1:80', zone: opts.backendZones?.[0] ?? 'a' },
          { name: 'w2', address: '10.0.1.2:80', zone: opts.backendZones?.[1] ?? 'b' },
        ],
      },
    },
  });
}

function state(c: BulwarkConfig, up: string[], etcd: LiveState['etcd'] = { members: 3, started: 3, names: ['e1', 'e2', 'e3'] }): LiveState {
  return { instances: (c.cluster?.instances ?? []).map((i) => ({ name: i.name, host: i.api.split(':')[0] as string, zone: i.zone, up: up.includes(i.name) })), etcd };
}

const subjects = (f: ReturnType<typeof auditLive>) => f.map((x) => `${x.severity} ${x.subject}`);

test('live audit: three live instances on three hosts and zones, a database across two, etcd of three: no finding', () => {
  const c = config();
  assert.deepEqual(auditLive(c, state(c, ['bw-1', 'bw-2', 'bw-3'])), []);
});

test('live audit: one live instance is a violation, and its database has no live standby', () => {
  const c = config();
  const f = auditLive(c, state(c, ['bw-1']));
  assert.deepEqual(subjects(f), ['violation cluster.instances', 'violation databases.main']);
  assert.match(f[0]?.problem ?? '', /a single live instance \(bw-1 of 3\)/);
  assert.match(f[1]?.problem ?? '', /only pg-1 has a live instance beside it/);
});

test('live audit: live instances all on one host is a violation; all in one zone a warning', () => {
  const sameHost = config({ hosts: ['10.0.0.1', '10.0.0.1', '10.0.0.1'] });
  const f = auditLive(sameHost, state(sameHost, ['bw-1', 'bw-2', 'bw-3']));
  assert.ok(subjects(f).includes('violation cluster.instances'), subjects(f).join());
  assert.match(f.find((x) => x.subject === 'cluster.instances')?.problem ?? '', /runs on 10\.0\.0\.1/);
  const oneZone = config({ zones: ['a', 'a', 'a'] });
  const z = auditLive(oneZone, state(oneZone, ['bw-1', 'bw-2', 'bw-3']));
  assert.ok(subjects(z).includes('warning cluster.instances'), subjects(z).join());
});

test('live audit: a database whose live nodes are on one host or in one zone is a violation', () => {
  const host = config({ hosts: ['10.0.0.1', '10.0.0.1', '10.0.0.3'] });
  assert.deepEqual(subjects(auditLive(host, state(host, ['bw-1', 'bw-2', 'bw-3']))), ['violation databases.main']);
  assert.match(auditLive(host, state(host, ['bw-1', 'bw-2', 'bw-3']))[0]?.problem ?? '', /on host 10\.0\.0\.1/);
  const zone = config({ zones: ['a', 'a', 'c'] });
  const f = auditLive(zone, state(zone, ['bw-1', 'bw-2', 'bw-3']));
  assert.deepEqual(subjects(f), ['violation databases.main']);
  assert.match(f[0]?.problem ?? '', /in zone a/);
});

test('live audit: a service whose backends are all in one zone is a violation', () => {
  const c = config({ backendZones: ['a', 'a'] });
  const f = auditLive(c, state(c, ['bw-1', 'bw-2', 'bw-3']));
  assert.deepEqual(subjects(f), ['violation services.web']);
});

test('live audit: etcd under three members is a violation; unstarted members a warning; unreachable etcd a violation', () => {
  const c = config();
  const all = ['bw-1', 'bw-2', 'bw-3'];
  assert.deepEqual(subjects(auditLive(c, state(c, all, { members: 1, started: 1, names: ['e1'] }))), ['violation coordination']);
  assert.deepEqual(subjects(auditLive(c, state(c, all, { members: 3, started: 2, names: ['e1', 'e2', ''] }))), ['warning coordination']);
  assert.deepEqual(subjects(auditLive(c, state(c, all, { error: 'no answer' }))), ['violation coordination']);
  assert.deepEqual(subjects(auditLive(c, { ...state(c, all), membersError: 'etcd down' })), ['violation cluster.instances', 'violation databases.main']);
});

async function register(coord: EtcdCoordination, name: string, api: string): Promise<Membership> {
  const m = new Membership({ kv: coord.kv, clock: systemClock, everyMs: 60_000, health: () => ({ subsystems: 0, errors: [] }), self: { name, api, version: 't', started_at: 0, pid: 0 } });
  await m.start();
  return m;
}

test('gatherLive on a one-member etcd: the live members are read and the single etcd member is a violation', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const c = config();
  const coord = new EtcdCoordination({ endpoints: [etcd.endpoint], prefix: '/audit-live', ttlMs: 2000, identity: 'bw-1', clock: systemClock });
  t.after(() => coord.close());
  await register(coord, 'bw-1', '10.0.0.1:7070');
  const s = await gatherLive(c, coord);
  assert.deepEqual(s.instances.map((i) => [i.name, i.up]), [['bw-1', true], ['bw-2', false], ['bw-3', false]]);
  assert.deepEqual(s.etcd, { members: 1, started: 1, names: ['test'] });
  assert.ok(subjects(auditLive(c, s)).includes('violation coordination'));
});

test('gatherLive on a three-member etcd with every instance live: no finding', async (t) => {
  const cluster = await startEtcdCluster(3);
  t.after(() => cluster.stop());
  const c = config();
  const coords = ['bw-1', 'bw-2', 'bw-3'].map((n) => new EtcdCoordination({ endpoints: cluster.endpoints, prefix: '/audit-live', ttlMs: 2000, identity: n, clock: systemClock }));
  t.after(async () => {
    for (const x of coords) await x.close();
  });
  for (const [i, x] of coords.entries()) await register(x, `bw-${i + 1}`, `10.0.0.${i + 1}:7070`);
  const s = await gatherLive(c, coords[0] as EtcdCoordination);
  assert.equal('members' in s.etcd && s.etcd.members, 3);
  assert.deepEqual(auditLive(c, s), []);
});

test('audit subsystem (cluster mode): GET /v1/audit reports the live single points of failure and records them once as events', async (t) => {
  const { Registry } = await import('prom-client');
  const { EventBus } = await import('../core/events.js');
  const { createLogger } = await import('../core/logger.js');
  const { SqliteStore } = await import('../store/sqlite.js');
  const { createAudit, AuditSubsystem } = await import('./subsystem.js');
  const cluster = await startEtcdCluster(3);
  t.after(() => cluster.stop());
  const c = configSchema.parse({
    cluster: { name: 'prod', instances: [{ name: 'bw-1', api: '127.0.0.1:7071', zone: 'a' }, { name: 'bw-2', api: '127.0.0.2:7072', zone: 'b' }] },
    coordination: { kind: 'etcd', endpoints: cluster.endpoints },
  });
  const coords = ['bw-1', 'bw-2'].map((n) => new EtcdCoordination({ endpoints: cluster.endpoints, prefix: '/audit-sub', ttlMs: 2000, identity: n, clock: systemClock }));
  t.after(async () => {
    for (const x of coords) await x.close();
  });
  const m1 = await register(coords[0] as EtcdCoordination, 'bw-1', '127.0.0.1:7071');
  const events = new EventBus();
  const seen: string[] = [];
  events.on('audit.event', (e) => seen.push(`${e.kind} ${e.subject}`));
  const deps = { config: c, baseDir: process.cwd(), events, logger: createLogger({ level: 'fatal' }), clock: systemClock, metrics: new Registry(), store: SqliteStore.open(':memory:'), instance: { name: 'bw-1', api: '127.0.0.1:7071' }, coordination: coords[0] };
  const sub = createAudit(deps);
  assert.ok(sub instanceof AuditSubsystem, 'in cluster mode the audit runs even without backup plans');
  assert.equal(createAudit({ ...deps, instance: undefined }), undefined, 'outside cluster mode, without plans, no audit');
  await sub.start();
  t.after(() => sub.stop());
  const route = sub.routes().find((r) => r.path === '/v1/audit');
  const ask = async () => (await route?.handle({} as never)) as { ok: boolean; spof: Array<{ subject: string; severity: string; problem: string }> };
  const one = await ask();
  assert.equal(one.ok, false);
  assert.ok(one.spof.some((f) => f.subject === 'cluster.instances' && /a single live instance \(bw-1 of 2\)/.test(f.problem)), JSON.stringify(one.spof));
  await ask();
  assert.deepEqual(seen.filter((s) => s === 'audit.spof.violation cluster.instances'), ['audit.spof.violation cluster.instances'], 'recorded once, not at every evaluation');
  const m2 = await register(coords[1] as EtcdCoordination, 'bw-2', '127.0.0.2:7072');
  const two = await ask();
  assert.deepEqual(two.spof.filter((f) => f.severity === 'violation'), []);
  assert.equal(two.ok, true);
  assert.ok(seen.includes('audit.spof.resolved cluster.instances'));
  assert.match(await deps.metrics.metrics(), /bulwark_audit_spof_violations 0/);
  await m1.stop();
  await m2.stop();
});
