// Cluster mode on loopback: three instances (three `bulwark up --instance` processes), a node
// beside each, one etcd. Bootstrap, one view from every instance, writes through every listener,
// and the faults that need no network namespaces: a host death (instance, watchdog and
// PostgreSQL killed at once) under synchronous writes, a graceful rolling restart, a paused
// instance. The same faults with real network partitions run in src/it/lab.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../testing/helpers.js';
import { startEtcd } from '../coord/etcd.testkit.js';
import { checkWrites, clusterReady, MultiWriter, startMulti } from './multi.testkit.js';
import { withClient } from './pg.testkit.js';

test('cluster mode: three instances bootstrap one primary and two streaming standbys; every instance shows the whole cluster and routes writes to the primary', async () => {
  const etcd = await startEtcd();
  const plane = await startMulti({ etcd: [etcd.endpoint] });
  try {
    const s0 = await clusterReady(plane, 0);
    assert.equal(s0.primary, 'pg-1', 'a fresh cluster starts on the first node');
    for (let i = 0; i < 3; i++) {
      const s = await clusterReady(plane, i);
      assert.equal(s.primary, 'pg-1');
      assert.equal(s.leader_instance, 'bw-1');
      assert.equal(s.rows.length, 3);
      assert.deepEqual(s.rows.map((r) => r.instance), ['bw-1', 'bw-2', 'bw-3']);
      assert.equal(s.leader, i === 0);
    }
    const inst = plane.instances;
    await withClient(inst[0]!.listen, (c) => c.query('CREATE TABLE load (id int PRIMARY KEY)'));
    for (const x of inst) {
      const node = await withClient(x.listen, async (c) => (await c.query<{ n: string }>("INSERT INTO load VALUES ((SELECT coalesce(max(id), 0) + 1 FROM load)) RETURNING current_setting('cluster_name') AS n")).rows[0]?.n);
      assert.equal(node, 'pg-1', `${x.name}'s write listener must reach the primary`);
      const rnode = await waitFor(() => withClient(x.readListen, async (c) => (await c.query<{ n: string; r: boolean }>("SELECT current_setting('cluster_name') AS n, pg_is_in_recovery() AS r")).rows[0]), { timeoutMs: 10_000 });
      assert.equal(rnode.r, true, `${x.name}'s read listener must reach a standby`);
      // reads prefer the instance's own zone (bw-2 is in z2 beside pg-2); bw-1's zone has only the primary
      if (x.name !== 'bw-1') assert.equal(rnode.n, x.name.replace('bw-', 'pg-'), `${x.name} reads from its own zone`);
    }
  } finally {
    await plane.cleanup();
    await etcd.stop();
  }
});

test('cluster mode, synchronous: the primary\'s host dies under writes through every listener; a synchronous standby takes over, 0 acknowledged writes lost, never two primaries; the host comes back and rejoins', async () => {
  const etcd = await startEtcd();
  const plane = await startMulti({ etcd: [etcd.endpoint], database: { synchronous: true } });
  const writer = new MultiWriter(() => plane.instances.filter((x) => x.running()).map((x) => x.listen));
  try {
    await clusterReady(plane, 0);
    await withClient(plane.instances[0]!.listen, (c) => c.query('CREATE TABLE load (id int PRIMARY KEY)'));
    writer.start(3);
    await writer.waitMore(100);
    const killedAt = Date.now();
    await plane.killHost(0);
    const s = await waitFor(async () => {
      const x = await plane.status(1);
      return x.primary && x.primary !== 'pg-1' && x.writes === 'open' ? x : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200, what: () => `a new primary\n${plane.instances.slice(1).map((x) => x.output().slice(-2500)).join('\n---\n')}` });
    await writer.waitMore(100, 60_000);
    const back = writer.acked.find((a) => a.at > killedAt && a.node !== 'pg-1');
    assert.ok(back, 'writes came back on the new primary');
    await writer.stop();
    // every acknowledged write is on the final primary
    const primary = s.primary as string;
    const port = plane.fx.nodes.find((x) => x.name === primary)!.port;
    const rows = await withClient(port, async (c) => new Set((await c.query<{ id: number }>('SELECT id FROM load')).rows.map((r) => r.id)));
    const lost = writer.acked.filter((a) => !rows.has(a.id));
    assert.equal(lost.length, 0, `acknowledged writes lost: ${lost.slice(0, 5).map((x) => x.id).join(', ')}`);
    // never two primaries: once the new primary acknowledged a write, the old one acknowledged none that started later
    const firstNew = writer.acked.find((a) => a.node === primary && a.at > killedAt);
    assert.ok(firstNew);
    assert.equal(writer.acked.filter((a) => a.node === 'pg-1' && a.at > firstNew.at).length, 0, 'pg-1 acknowledged writes after the new primary did');
    // the failover is in the history every instance shows
    const h2 = (await plane.status(2)).history.find((x) => x.kind === 'failover');
    assert.equal(h2?.new_primary, primary);
    // the dead host comes back: its instance rewinds pg-1 and makes it a standby of the new primary
    await plane.start(0);
    await waitFor(async () => {
      const x = await plane.status(0);
      return x.primary === primary && x.rows.find((r) => r.node === 'pg-1')?.role === 'standby' && x.rows.find((r) => r.node === 'pg-1')?.streaming === 'yes';
    }, { timeoutMs: 60_000, intervalMs: 200, what: () => `pg-1 to rejoin as a standby\n${plane.instances.map((x) => x.output().slice(-3000)).join('\n---\n')}` });
  } finally {
    await writer.stop();
    await plane.cleanup();
    await etcd.stop();
  }
});

test('cluster mode: a rolling restart of every instance (graceful stop, start) keeps writes flowing and fails nothing over', async () => {
  const etcd = await startEtcd();
  const plane = await startMulti({ etcd: [etcd.endpoint], database: { synchronous: true }, leaseTtl: '4s' });
  const writer = new MultiWriter(() => plane.instances.filter((x) => x.running()).map((x) => x.listen));
  try {
    for (let i = 0; i < 3; i++) await clusterReady(plane, i);
    await withClient(plane.instances[0]!.listen, (c) => c.query('CREATE TABLE load (id int PRIMARY KEY)'));
    writer.start(2);
    await writer.waitMore(50);
    for (let i = 0; i < 3; i++) {
      const before = writer.acked.length;
      await plane.stop(i);
      await writer.waitMore(20, 20_000); // writes flow while instance i is down
      assert.ok(writer.acked.length > before);
      await plane.start(i);
      await clusterReady(plane, i);
    }
    await writer.waitMore(50);
    await writer.stop();
    const s = await plane.status(1);
    assert.equal(s.primary, 'pg-1', 'the primary never changed');
    assert.deepEqual(s.history.filter((h) => h.kind === 'failover'), [], 'a rolling restart is not a failover');
    const { lost, split } = await checkWrites(writer, { name: 'pg-1', port: plane.fx.nodes[0]!.port });
    assert.deepEqual(lost, []);
    assert.deepEqual(split, []);
  } finally {
    await writer.stop();
    await plane.cleanup();
    await etcd.stop();
  }
});

test('cluster mode: an instance paused (SIGSTOP) past its lease: its watchdog fences the primary before the lease can move, a standby takes over, never two primaries', async () => {
  const etcd = await startEtcd();
  const plane = await startMulti({ etcd: [etcd.endpoint], database: { synchronous: true } });
  const writer = new MultiWriter(() => plane.instances.slice(1).map((x) => x.listen));
  try {
    for (let i = 0; i < 3; i++) await clusterReady(plane, i);
    await withClient(plane.instances[1]!.listen, (c) => c.query('CREATE TABLE load (id int PRIMARY KEY)'));
    writer.start(2);
    await writer.waitMore(50);
    const pausedAt = Date.now();
    plane.pause(0);
    const s = await waitFor(async () => {
      const x = await plane.status(1);
      return x.primary && x.primary !== 'pg-1' && x.writes === 'open' ? x : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200, what: () => `a new primary while bw-1 is paused\n${plane.instances.slice(1).map((x) => x.output().slice(-2500)).join('\n---\n')}` });
    await writer.waitMore(50);
    // the paused primary was fenced by its watchdog: it takes no connections at all now
    await assert.rejects(withClient(plane.fx.nodes[0]!.port, (c) => c.query('SELECT 1')), 'pg-1 must be fenced while its instance is paused');
    plane.resume(0);
    await writer.stop();
    const primary = plane.fx.nodes.find((x) => x.name === s.primary)!;
    const { lost, split } = await checkWrites(writer, { name: primary.name, port: primary.port }, pausedAt);
    assert.deepEqual(lost, [], 'synchronous mode loses no acknowledged write');
    assert.deepEqual(split, [], 'no write was acknowledged by the old primary after the new one took writes');
    // bw-1 wakes up, finds another leader and rejoins its node as a standby
    await waitFor(async () => (await plane.status(0)).rows.find((r) => r.node === 'pg-1')?.streaming === 'yes', { timeoutMs: 60_000, intervalMs: 200, what: () => `pg-1 to rejoin\n${plane.instances[0]!.output().slice(-3000)}` });
  } finally {
    plane.resume(0);
    await writer.stop();
    await plane.cleanup();
    await etcd.stop();
  }
});

test('cluster mode: etcd lost: the primary stops taking writes within the lease, nothing is promoted anywhere; etcd back: writes resume', async () => {
  const etcd = await startEtcd();
  const plane = await startMulti({ etcd: [etcd.endpoint] });
  try {
    for (let i = 0; i < 3; i++) await clusterReady(plane, i);
    await withClient(plane.instances[0]!.listen, (c) => c.query('CREATE TABLE load (id int PRIMARY KEY); INSERT INTO load VALUES (1)'));
    await etcd.kill();
    // the primary's instance cannot renew: it fences its own primary (no split brain is possible while etcd is away)
    await waitFor(() => withClient(plane.fx.nodes[0]!.port, (c) => c.query('INSERT INTO load VALUES (2)')).then(() => false, () => true), { timeoutMs: 15_000, intervalMs: 200, what: 'pg-1 to stop taking writes' });
    await new Promise((r) => setTimeout(r, 6000)); // three lease TTLs with no etcd
    for (const n of plane.fx.nodes.slice(1)) {
      assert.equal(await withClient(n.port, async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r), true, `${n.name} must not be promoted without etcd`);
    }
    await etcd.start();
    const s = await waitFor(async () => {
      const x = await plane.status(1);
      return x.primary && x.writes === 'open' ? x : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200, what: () => `writes to resume after etcd is back\n${plane.instances.map((x) => x.output().slice(-2000)).join('\n---\n')}` });
    await waitFor(() => withClient(plane.instances[1]!.listen, async (c) => (await c.query('INSERT INTO load VALUES (3)')).rowCount === 1), { timeoutMs: 20_000 });
    const primary = plane.fx.nodes.find((x) => x.name === s.primary)!;
    assert.equal(await withClient(primary.port, async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM load WHERE id = 1')).rows[0]?.n), 1, 'the row written before etcd went away survived');
  } finally {
    await plane.cleanup();
    await etcd.stop();
  }
});

test('cluster mode, warm standbys (no connections): the instances beside them vouch for them, and a host death promotes the one with the most WAL', async () => {
  const etcd = await startEtcd();
  const plane = await startMulti({ etcd: [etcd.endpoint], database: { standby: 'warm' } });
  try {
    for (let i = 0; i < 3; i++) await clusterReady(plane, i);
    await withClient(plane.instances[0]!.listen, (c) => c.query('CREATE TABLE load (id int PRIMARY KEY); INSERT INTO load SELECT generate_series(1, 100)'));
    await new Promise((r) => setTimeout(r, 1500)); // the standbys' flush positions reach the shared state
    await plane.killHost(0);
    const s = await waitFor(async () => {
      const x = await plane.status(2);
      return x.primary && x.primary !== 'pg-1' && x.writes === 'open' ? x : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200, what: () => `a warm standby promoted\n${plane.instances.slice(1).map((x) => x.output().slice(-2500)).join('\n---\n')}` });
    const n = await waitFor(() => withClient(plane.instances[2]!.listen, async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM load')).rows[0]?.n), { timeoutMs: 20_000 });
    assert.equal(n, 100, `the promoted warm standby ${s.primary ?? '?'} has every row`);
  } finally {
    await plane.cleanup();
    await etcd.stop();
  }
});

test('cluster mode: a planned switchover asked of a standby\'s instance moves the primary to another host and loses nothing', async () => {
  const etcd = await startEtcd();
  const plane = await startMulti({ etcd: [etcd.endpoint], database: { synchronous: true } });
  const writer = new MultiWriter(() => plane.instances.map((x) => x.listen));
  try {
    for (let i = 0; i < 3; i++) await clusterReady(plane, i);
    await withClient(plane.instances[0]!.listen, (c) => c.query('CREATE TABLE load (id int PRIMARY KEY)'));
    writer.start(2);
    await writer.waitMore(50);
    const r = await fetch(`${plane.instances[2]!.api}/v1/db/main/switchover`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to: 'pg-3' }), signal: AbortSignal.timeout(90_000) });
    const body = (await r.json()) as { kind?: string; new_primary?: string; error?: unknown };
    assert.equal(r.status, 200, JSON.stringify(body));
    assert.equal(body.new_primary, 'pg-3');
    for (let i = 0; i < 3; i++) await clusterReady(plane, i);
    assert.equal((await plane.status(0)).primary, 'pg-3');
    await writer.waitMore(50);
    await writer.stop();
    const { lost } = await checkWrites(writer, { name: 'pg-3', port: plane.fx.nodes[2]!.port });
    assert.deepEqual(lost, []);
    assert.ok((await plane.status(1)).history.some((h) => h.kind === 'switchover' && h.new_primary === 'pg-3'));
    // a switchover to a node that does not exist is refused with the node list
    const bad = await fetch(`${plane.instances[0]!.api}/v1/db/main/switchover`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to: 'pg-9' }) });
    assert.equal(bad.status, 404);
  } finally {
    await writer.stop();
    await plane.cleanup();
    await etcd.stop();
  }
});
