// Cold standby with a single node, driven through PgCluster and the real backup-engine adapter
// (this test lives in app/ because it joins failover/ and backup/, which may not import each
// other). Real PostgreSQL 15 and a real local repository:
// - the postmaster is SIGKILLed but its data directory is intact: it is restarted in place and
//   nothing is lost, not even commits whose WAL was never archived;
// - a failing archive_command (archive directory unwritable) is reported, and clears;
// - the data directory is then corrupted (pg_control removed) and everything killed: the node is
//   rebuilt in its own data directory from the base backup plus the archived WAL, the remains
//   are moved aside (not deleted), and every row before the last archived segment is there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { systemClock } from '../core/clock.js';
import { configSchema } from '../core/config/schema.js';
import { EventBus, type BulwarkEvents } from '../core/events.js';
import { silentLogger } from '../core/logger.js';
import { SqliteStore } from '../store/sqlite.js';
import { LocalCoordination } from '../coord/local.js';
import { PgCluster } from '../failover/cluster.js';
import { pgFixture, postmasterPid, withClient } from '../failover/pg.testkit.js';
import { waitFor } from '../testing/helpers.js';
import { planBaseBackups } from './pgbackups.js';

const sink = { role: () => undefined, lag: () => undefined, failover: () => undefined, downtime: () => undefined };

test('cold standby, one node: a crash restarts in place losing nothing; a corrupted data directory is rebuilt from the base backup plus archived WAL', async (t) => {
  const fx = await pgFixture(1);
  writeFileSync(join(fx.dir, 'pw'), 'secret-for-cold-test\n');
  mkdirSync(join(fx.dir, 'app'));
  const config = configSchema.parse({
    state_dir: join(fx.dir, 'var'),
    databases: { main: fx.database({ listen: '127.0.0.1:0', standby: 'cold', restore_from: 'pgbase', wal_archive: join(fx.dir, 'wal'), base_backup_interval: '1h', wal_upload_interval: '1s' }) },
    backups: { pgbase: { paths: [join(fx.dir, 'app')], password_file: join(fx.dir, 'pw'), targets: [{ name: 'local', repo: join(fx.dir, 'repo'), media: 'hdd' }] } },
  });
  const store = SqliteStore.open(':memory:');
  const events = new EventBus();
  const topo: Array<BulwarkEvents['db.topology']> = [];
  events.on('db.topology', (e) => topo.push(e));
  const audits: Array<BulwarkEvents['audit.event']> = [];
  events.on('audit.event', (e) => audits.push(e));
  const coord = new LocalCoordination({ identity: 'test', clock: systemClock });
  const cluster = new PgCluster({
    name: 'main', config: config.databases['main']!, stateDir: join(fx.dir, 'var'), baseDir: fx.dir, lease: coord.lease('db/main'), events, logger: silentLogger(), clock: systemClock, store, metrics: sink,
    baseBackups: planBaseBackups(config, fx.dir)('pgbase'),
  });
  const node = fx.nodes[0]!;
  const count = (): Promise<number> => withClient(node.port, async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM t')).rows[0]!.n);
  try {
    await cluster.start();
    await waitFor(() => topo.at(-1)?.primary?.node === 'pg-1', { timeoutMs: 30_000, what: 'pg-1 primary' });
    await waitFor(() => cluster.status().cold?.last_base_backup?.ok === true, { timeoutMs: 60_000, what: 'the initial base backup' });
    await withClient(node.port, (c) => c.query('CREATE TABLE t (id int primary key); INSERT INTO t SELECT generate_series(1, 100)'));

    // 1. crash with the data directory intact: restart in place, nothing lost (no WAL was archived for these rows)
    process.kill(postmasterPid(node.data_dir) ?? 0, 'SIGKILL');
    await waitFor(() => audits.some((a) => a.kind === 'db.restart'), { timeoutMs: 30_000, what: 'restart in place' });
    await waitFor(() => topo.at(-1)?.primary?.node === 'pg-1', { timeoutMs: 30_000, what: 'pg-1 primary again' });
    assert.equal(await count(), 100);
    assert.equal(audits.filter((a) => a.kind === 'db.cold-failover').length, 0, 'no rebuild when the data directory is intact');

    // a failing archive_command is noticed (pg_stat_archiver) and reported, and clears once archiving works again
    chmodSync(join(fx.dir, 'wal'), 0o000);
    await withClient(node.port, (c) => c.query('SELECT pg_switch_wal()'));
    await waitFor(() => cluster.status().cold?.archiver?.failing === true, { timeoutMs: 30_000, what: 'archive failure reported' });
    assert.ok(audits.some((a) => a.kind === 'db.wal_archive.failing'));
    chmodSync(join(fx.dir, 'wal'), 0o700);
    await waitFor(() => cluster.status().cold?.archiver?.failing === false, { timeoutMs: 60_000, what: 'archiving works again' });

    // 2. rows archived, then the data directory corrupted and everything killed: rebuilt from backup + WAL
    await withClient(node.port, (c) => c.query('INSERT INTO t SELECT generate_series(101, 200)'));
    const seg = await withClient(node.port, async (c) => (await c.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f')).rows[0]!.f);
    await waitFor(() => (cluster.status().cold?.last_archived_wal ?? '') >= seg, { timeoutMs: 30_000, what: `segment ${seg} archived` });
    const pid = postmasterPid(node.data_dir);
    rmSync(join(node.data_dir, 'global', 'pg_control'));
    process.kill(pid ?? 0, 'SIGKILL');
    const rec = await waitFor(() => audits.find((a) => a.kind === 'db.cold-failover'), { timeoutMs: 60_000, what: 'the cold rebuild' });
    t.diagnostic(rec.message);
    assert.equal((rec.data as { ok?: boolean } | undefined)?.ok, true, rec.message);
    assert.doesNotMatch(rec.message, /WAL file\(s\)/, 'an intact WAL archive is used as it is (no restore of the pg-wal snapshot)');
    await waitFor(() => topo.at(-1)?.primary?.node === 'pg-1', { timeoutMs: 30_000, what: 'pg-1 primary after the rebuild' });
    assert.equal(await count(), 200, 'every row before the last archived segment');
    assert.equal(await withClient(node.port, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r), false);
    await withClient(node.port, (c) => c.query('INSERT INTO t VALUES (201)'));
    const aside = readdirSync(dirname(node.data_dir)).filter((n) => n.startsWith('pg-1.replaced-'));
    assert.equal(aside.length, 1, 'the corrupted data directory was moved aside, not deleted');
    assert.ok(existsSync(join(dirname(node.data_dir), aside[0]!, 'PG_VERSION')));
    assert.ok(existsSync(join(node.data_dir, 'PG_VERSION')));
    const rows = store.all<{ kind: string; ok: number; write_downtime_ms: number | null }>("SELECT kind, ok, write_downtime_ms FROM db_failovers WHERE kind = 'cold-failover'");
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.ok, 1);
    const rto = await waitFor(() => store.get<{ w: number | null }>("SELECT write_downtime_ms AS w FROM db_failovers WHERE kind = 'cold-failover'")?.w, { timeoutMs: 20_000, what: 'RTO recorded' });
    t.diagnostic(`cold rebuild in place, RTO (last good observation to first commit): ${rto} ms`);
  } finally {
    await cluster.stop().catch(() => undefined);
    await coord.close();
    store.close();
    fx.cleanup();
  }
});
