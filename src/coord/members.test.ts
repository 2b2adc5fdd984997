// Tests of cluster membership on a real etcd (loopback): registration as session keys, the
// joined view (up, gone, unlisted), removal at a graceful stop, the summary refresh, etcd away
// (every member 'unknown' with the reason), and the in-process KV outside cluster mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../core/clock.js';
import { waitFor } from '../testing/helpers.js';
import { EtcdCoordination } from './etcd.js';
import { startEtcd } from './etcd.testkit.js';
import { LocalCoordination } from './local.js';
import { joinMembers, listMembers, Membership, type MemberHealth } from './members.js';

const CONFIGURED = [
  { name: 'bw-1', api: '127.0.0.1:7071', zone: 'a' },
  { name: 'bw-2', api: '127.0.0.1:7072', zone: 'b' },
  { name: 'bw-3', api: '127.0.0.1:7073', zone: 'c' },
];

function member(coord: { kv: EtcdCoordination['kv'] }, name: string, health: () => MemberHealth = () => ({ subsystems: 2, errors: [] }), everyMs = 60_000): Membership {
  const c = CONFIGURED.find((x) => x.name === name) ?? { name, api: '127.0.0.1:7079', zone: 'z' };
  return new Membership({ kv: coord.kv, clock: systemClock, everyMs, health, self: { name, api: c.api, zone: c.zone, version: 'test', started_at: 1, pid: process.pid } });
}

test('members on etcd: registered instances are up, the others gone; a graceful stop makes its instance gone at once', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const mk = (id: string) => new EtcdCoordination({ endpoints: [etcd.endpoint], prefix: '/bw-members', ttlMs: 2000, identity: id, clock: systemClock });
  const c1 = mk('bw-1');
  const c2 = mk('bw-2');
  t.after(async () => {
    await c1.close();
    await c2.close();
  });
  const m1 = member(c1, 'bw-1');
  const m2 = member(c2, 'bw-2');
  await m1.start();
  await m2.start();
  const r = await listMembers(c1.kv, CONFIGURED);
  assert.equal(r.error, undefined);
  assert.deepEqual(r.members.map((m) => [m.name, m.state, m.zone]), [['bw-1', 'up', 'a'], ['bw-2', 'up', 'b'], ['bw-3', 'gone', 'c']]);
  assert.equal(r.members[1]?.record?.pid, process.pid);
  assert.deepEqual(r.members[1]?.record?.health, { subsystems: 2, errors: [] });
  await m2.stop();
  const after = await listMembers(c1.kv, CONFIGURED);
  assert.deepEqual(after.members.map((m) => m.state), ['up', 'gone', 'gone']);
  await m1.stop();
});

test('members on etcd: the key of an instance whose session ends (closed without deregistering) vanishes', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const c1 = new EtcdCoordination({ endpoints: [etcd.endpoint], prefix: '/bw-members', ttlMs: 2000, identity: 'bw-1', clock: systemClock });
  const c2 = new EtcdCoordination({ endpoints: [etcd.endpoint], prefix: '/bw-members', ttlMs: 2000, identity: 'bw-2', clock: systemClock });
  t.after(() => c1.close());
  await member(c1, 'bw-1').start();
  await member(c2, 'bw-2').start();
  assert.equal((await listMembers(c1.kv, CONFIGURED)).members[1]?.state, 'up');
  await c2.close(); // the session lease is revoked: what etcd does ~1 TTL after a dead instance stops renewing
  const r = await listMembers(c1.kv, CONFIGURED);
  assert.equal(r.members[1]?.state, 'gone');
});

test('members: the refresh publishes the current health summary', async (t) => {
  const coord = new LocalCoordination({ identity: 'bw-1', clock: systemClock });
  t.after(() => coord.close());
  let errors: string[] = [];
  const m = member(coord, 'bw-1', () => ({ subsystems: 3, errors }), 30);
  await m.start();
  assert.deepEqual((await listMembers(coord.kv, CONFIGURED)).members[0]?.record?.health.errors, []);
  errors = ['proxy'];
  await waitFor(async () => (await listMembers(coord.kv, CONFIGURED)).members[0]?.record?.health.errors[0] === 'proxy', { what: 'refreshed summary' });
  await m.stop();
  assert.equal((await listMembers(coord.kv, CONFIGURED)).members[0]?.state, 'gone');
});

test('members: etcd unreachable makes every member unknown (never up) and says why', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const c = new EtcdCoordination({ endpoints: [etcd.endpoint], prefix: '/bw-members', ttlMs: 2000, identity: 'bw-1', clock: systemClock });
  t.after(() => c.close());
  await member(c, 'bw-1').start();
  assert.equal((await listMembers(c.kv, CONFIGURED)).members[0]?.state, 'up');
  await etcd.kill();
  const r = await listMembers(c.kv, CONFIGURED);
  assert.deepEqual(r.members.map((m) => m.state), ['unknown', 'unknown', 'unknown']);
  assert.match(r.error ?? '', /etcd at .* cannot be reached/);
});

test('members: a live key of an instance not under cluster.instances is listed as unlisted', () => {
  const rec = { name: 'old', api: '127.0.0.1:7070', zone: undefined, version: 'x', started_at: 0, pid: 1, updated_at: 0, health: { subsystems: 0, errors: [] } };
  const v = joinMembers(CONFIGURED.slice(0, 1), new Map([['old', rec]]));
  assert.deepEqual(v.map((m) => [m.name, m.state, m.unlisted ?? false]), [['bw-1', 'gone', false], ['old', 'up', true]]);
});
