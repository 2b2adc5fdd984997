// PgCluster against real PostgreSQL 15 on loopback, driven directly (no proxy): bootstrap of a
// primary and a streaming standby, failover after SIGKILL of the primary's postmaster with the
// old primary fenced and rejoined as a standby, and a planned switchover that loses nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../core/clock.js';
import { configSchema } from '../core/config/schema.js';
import { EventBus, type BulwarkEvents } from '../core/events.js';
import { silentLogger } from '../core/logger.js';
import { SqliteStore } from '../store/sqlite.js';
import { LocalCoordination } from '../coord/local.js';
import { PgCluster } from './cluster.js';
import { PG_BIN, pgFixture, postmasterPid, withClient } from './pg.testkit.js';
import { PgCtl } from './pgctl.js';
import { waitFor } from '../testing/helpers.js';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

const sink = { role: () => undefined, lag: () => undefined, failover: () => undefined, downtime: () => undefined };

async function setup(extra: Record<string, unknown> = {}) {
  const fx = await pgFixture(2);
  const config = configSchema.parse({ state_dir: fx.dir, databases: { main: fx.database({ listen: '127.0.0.1:0', ...extra }) } });
  const store = SqliteStore.open(':memory:');
  const events = new EventBus();
  const topo: Array<BulwarkEvents['db.topology']> = [];
  events.on('db.topology', (e) => topo.push(e));
  const audits: Array<BulwarkEvents['audit.event']> = [];
  events.on('audit.event', (e) => audits.push(e));
  const coord = new LocalCoordination({ identity: 'test', clock: systemClock });
  const make = (): PgCluster => new PgCluster({ name: 'main', config: config.databases['main']!, stateDir: fx.dir, baseDir: fx.dir, lease: coord.lease('db/main'), events, logger: silentLogger(), clock: systemClock, store, metrics: sink });
  const made: PgCluster[] = [make()];
  const cluster = made[0]!;
  const cleanup = async (): Promise<void> => {
    for (const c of made) await c.stop().catch(() => undefined);
    await coord.close();
    store.close();
    fx.cleanup();
  };
  /** A second PgCluster over the same state store: Bulwark restarted. */
  const restart = (): PgCluster => {
    const c = make();
    made.push(c);
    return c;
  };
  return { fx, cluster, store, topo, audits, cleanup, restart };
}

const lastTopo = (t: Array<BulwarkEvents['db.topology']>) => t[t.length - 1];

test('failover: SIGKILL of the primary postmaster promotes the standby; the old primary rejoins as a standby; a dead standby is restarted', async () => {
  const { fx, cluster, topo, audits, store, cleanup, restart } = await setup();
  try {
    await cluster.start();
    const [n1, n2] = fx.nodes as [(typeof fx.nodes)[0], (typeof fx.nodes)[0]];
    await waitFor(() => lastTopo(topo)?.primary?.node === 'pg-1' && lastTopo(topo)?.replicas.some((r) => r.node === 'pg-2'), { timeoutMs: 30_000, what: 'pg-1 primary with pg-2 streaming' });
    await withClient(n1.port, (c) => c.query('CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 100)'));
    await waitFor(() => withClient(n2.port, async (c) => (await c.query('SELECT count(*)::int AS n FROM t')).rows[0].n === 100), { timeoutMs: 10_000, what: 'rows replicated' });

    const pid = postmasterPid(n1.data_dir);
    assert.ok(pid, 'pg-1 postmaster runs');
    process.kill(pid, 'SIGKILL');

    await waitFor(() => lastTopo(topo)?.primary?.node === 'pg-2', { timeoutMs: 30_000, what: 'pg-2 published as primary' });
    await withClient(n2.port, (c) => c.query('INSERT INTO t VALUES (101)'));
    assert.equal(await withClient(n2.port, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r), false);

    // the old primary comes back as a standby of pg-2, and sees the write made after failover
    await waitFor(() => cluster.status().nodes.find((n) => n.node === 'pg-1')?.role === 'standby' && cluster.status().nodes.find((n) => n.node === 'pg-1')?.streaming === 'yes', { timeoutMs: 60_000, what: 'pg-1 rejoined as a streaming standby' });
    assert.equal(await withClient(n1.port, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r), true);
    await waitFor(() => withClient(n1.port, async (c) => (await c.query('SELECT count(*)::int AS n FROM t')).rows[0].n === 101), { timeoutMs: 10_000, what: 'pg-1 replays the new primary' });

    // a standby whose postmaster dies is restarted as a standby (no failover, no rewind)
    process.kill(postmasterPid(n1.data_dir) ?? 0, 'SIGKILL');
    await waitFor(() => audits.some((a) => a.kind === 'db.restart'), { timeoutMs: 20_000, what: 'standby restarted' });
    await waitFor(() => cluster.status().nodes.find((n) => n.node === 'pg-1')?.streaming === 'yes', { timeoutMs: 20_000, what: 'pg-1 streaming again' });
    assert.equal(lastTopo(topo)?.primary?.node, 'pg-2');

    const rows = store.all<{ kind: string; ok: number; old_primary: string; new_primary: string; write_downtime_ms: number | null }>('SELECT * FROM db_failovers');
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.old_primary, 'pg-1');
    assert.equal(rows[0]?.new_primary, 'pg-2');
    await waitFor(() => store.get<{ w: number | null }>('SELECT write_downtime_ms AS w FROM db_failovers')?.w != null, { what: 'write downtime recorded' });
    assert.ok(audits.some((a) => a.kind === 'db.failover'));
    assert.ok(audits.some((a) => a.kind === 'db.rejoin'));

    // Bulwark restarts (nodes stopped with it): the recorded roles hold, pg-2 stays primary
    await cluster.stop();
    assert.equal(postmasterPid(n1.data_dir), undefined);
    assert.equal(postmasterPid(n2.data_dir), undefined);
    const again = restart();
    await again.start();
    await waitFor(() => lastTopo(topo)?.primary?.node === 'pg-2' && lastTopo(topo)?.replicas.some((r) => r.node === 'pg-1'), { timeoutMs: 30_000, what: 'pg-2 primary and pg-1 streaming after restart' });
    assert.equal(await withClient(n2.port, async (c) => (await c.query('SELECT count(*)::int AS n FROM t')).rows[0].n), 101);
  } finally {
    await cleanup();
  }
});

test('warm standbys, three nodes: failover promotes one, repoints the other to it, and the old primary rejoins', async () => {
  const fx = await pgFixture(3);
  const config = configSchema.parse({ state_dir: fx.dir, databases: { main: fx.database({ listen: '127.0.0.1:0', standby: 'warm' }) } });
  const store = SqliteStore.open(':memory:');
  const events = new EventBus();
  const topo: Array<BulwarkEvents['db.topology']> = [];
  events.on('db.topology', (e) => topo.push(e));
  const coord = new LocalCoordination({ identity: 'test', clock: systemClock });
  const cluster = new PgCluster({ name: 'main', config: config.databases['main']!, stateDir: fx.dir, baseDir: fx.dir, lease: coord.lease('db/main'), events, logger: silentLogger(), clock: systemClock, store, metrics: sink });
  try {
    await cluster.start();
    const byName = (n: string) => fx.nodes.find((x) => x.name === n)!;
    const replicasOf = (name: string) => withClient(byName(name).port, async (c) => (await c.query<{ application_name: string }>("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")).rows.map((r) => r.application_name).sort());
    await waitFor(async () => lastTopo(topo)?.primary?.node === 'pg-1' && (await replicasOf('pg-1')).join() === 'pg-2,pg-3', { timeoutMs: 30_000, what: 'pg-1 with two streaming warm standbys' });
    assert.deepEqual(lastTopo(topo)?.replicas, [], 'warm standbys serve no reads');
    await assert.rejects(withClient(byName('pg-2').port, (c) => c.query('SELECT 1')), 'a warm standby takes no connections');
    await withClient(byName('pg-1').port, (c) => c.query('CREATE TABLE t (id int); INSERT INTO t VALUES (1)'));

    process.kill(postmasterPid(byName('pg-1').data_dir) ?? 0, 'SIGKILL');
    const newPrimary = (await waitFor(() => (lastTopo(topo)?.primary?.node ?? 'pg-1') !== 'pg-1' && lastTopo(topo)?.primary?.node, { timeoutMs: 30_000, what: 'a warm standby promoted' })) as string;
    const other = newPrimary === 'pg-2' ? 'pg-3' : 'pg-2';
    // the other standby follows the new primary, and the old primary rejoins it too
    await waitFor(async () => (await replicasOf(newPrimary)).join() === ['pg-1', other].sort().join(), { timeoutMs: 60_000, what: `pg-1 and ${other} streaming from ${newPrimary}` });
    assert.equal(await withClient(byName(newPrimary).port, async (c) => (await c.query('SELECT count(*)::int AS n FROM t')).rows[0].n), 1);
  } finally {
    await cluster.stop().catch(() => undefined);
    await coord.close();
    store.close();
    fx.cleanup();
  }
});

test('a fenced old primary started by hand is fenced again; when pg_rewind fails the node is cloned again', async () => {
  const { fx, cluster, topo, audits, cleanup } = await setup({ auto_rejoin: false });
  try {
    await cluster.start();
    const [n1, n2] = fx.nodes as [(typeof fx.nodes)[0], (typeof fx.nodes)[0]];
    await waitFor(() => lastTopo(topo)?.replicas.some((r) => r.node === 'pg-2'), { timeoutMs: 30_000, what: 'pg-2 streaming' });
    process.kill(postmasterPid(n1.data_dir) ?? 0, 'SIGKILL');
    await waitFor(() => lastTopo(topo)?.primary?.node === 'pg-2', { timeoutMs: 30_000, what: 'pg-2 promoted' });
    await withClient(n2.port, (c) => c.query('CREATE TABLE after_failover (id int); INSERT INTO after_failover VALUES (7)'));
    // fenced: standby.signal is there, so a manual start could only come up read-only
    assert.ok(existsSync(join(n1.data_dir, 'standby.signal')));
    assert.equal(postmasterPid(n1.data_dir), undefined);
    // someone starts the fenced old primary by hand as a primary (removing standby.signal first):
    // Bulwark fences it again on the next round, and pg-2 stays the only primary
    rmSync(join(n1.data_dir, 'standby.signal'));
    // (pg_ctl may report failure when Bulwark kills the server while it is still starting)
    await new PgCtl({ name: 'pg-1', host: n1.host, port: n1.port, dataDir: n1.data_dir }, { binDir: PG_BIN, osUser: 'postgres', superuser: 'postgres', logFile: join(fx.dir, 'manual.log') }).start().catch(() => undefined);
    await waitFor(() => audits.some((a) => a.kind === 'db.fence'), { timeoutMs: 10_000, what: 'Bulwark fencing the second primary' });
    await waitFor(() => postmasterPid(n1.data_dir) === undefined && existsSync(join(n1.data_dir, 'standby.signal')), { timeoutMs: 10_000, what: 'the second primary fenced' });
    assert.equal(lastTopo(topo)?.primary?.node, 'pg-2');
    assert.ok(audits.some((a) => a.kind === 'db.fence'));
    // break the old primary so that pg_rewind cannot work on it
    rmSync(join(n1.data_dir, 'global', 'pg_control'));
    await cluster.rejoin('pg-1');
    assert.equal(await withClient(n1.port, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r), true);
    await waitFor(() => withClient(n1.port, async (c) => (await c.query('SELECT count(*)::int AS n FROM after_failover')).rows[0].n === 1), { timeoutMs: 10_000, what: 'the clone has the new primary data' });
  } finally {
    await cleanup();
  }
});

/** Runs an INSERT and reports whether it was acknowledged within ms (the connection is dropped otherwise). */
async function commitsWithin(port: number, ms: number): Promise<boolean> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await Promise.race([c.query('INSERT INTO t VALUES (1)').then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  } finally {
    // a client-side give-up: cancelling the wait server-side would commit locally anyway
    (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
  }
}

for (const mode of ['block', 'async'] as const) {
  test(`synchronous mode, no_sync_standby: ${mode}, standby gone: writes ${mode === 'block' ? 'wait' : 'continue without a synchronous copy'}`, async () => {
    const { fx, cluster, topo, cleanup } = await setup({ synchronous: true, no_sync_standby: mode, auto_rejoin: false });
    try {
      await cluster.start();
      const [n1, n2] = fx.nodes as [(typeof fx.nodes)[0], (typeof fx.nodes)[0]];
      await waitFor(() => lastTopo(topo)?.replicas.some((r) => r.node === 'pg-2') && cluster.status().sync_standbys.includes('pg-2'), { timeoutMs: 30_000, what: 'pg-2 synchronous' });
      await withClient(n1.port, (c) => c.query('CREATE TABLE t (id int)'));
      assert.equal(await commitsWithin(n1.port, 5000), true, 'commits work with the synchronous standby up');
      process.kill(postmasterPid(n2.data_dir) ?? 0, 'SIGKILL');
      if (mode === 'block') {
        await new Promise((r) => setTimeout(r, 1500)); // several rounds of the loop
        assert.equal(await commitsWithin(n1.port, 1500), false, 'a commit was acknowledged without a synchronous standby');
        assert.equal(cluster.status().primary, 'pg-1');
      } else {
        // (regression: a commit right after the kill can still be acknowledged by pg-2's walreceiver
        // before it notices its postmaster died; wait for Bulwark to clear the name, then commit)
        await waitFor(async () => (await withClient(n1.port, async (c) => (await c.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s")).rows[0]?.s)) === '', { timeoutMs: 15_000, what: 'synchronous_standby_names cleared' });
        await waitFor(() => commitsWithin(n1.port, 1000), { timeoutMs: 15_000, what: 'commits flowing again without a synchronous standby' });
      }
    } finally {
      await cleanup();
    }
  });
}
