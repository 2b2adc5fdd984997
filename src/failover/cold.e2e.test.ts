// Cold standby end to end (`bulwark up`, real PostgreSQL 15, the proxy's write listener, a
// two-target backup plan): rows are written, a base backup is taken into both targets, more rows
// are written and their WAL archived (pg_switch_wal), then the primary's machine is lost (every
// process in its data directory SIGKILLed, the data directory and the WAL archive removed). Bulwark builds a new
// primary on the spare node from the base backup plus the archived WAL, writes work again
// through the same listener, and every row from before the last archived segment is there. The
// WAL archive directory is lost too: its content comes back from the pg-wal snapshots Bulwark
// uploads into the plan's targets every wal_upload_interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, waitFor } from '../testing/helpers.js';
import { startEtcd } from '../coord/etcd.testkit.js';
import { startPlane, type DbStatusBody } from './e2e.testkit.js';
import { PG_BIN, pgFixture, postmasterPid, withClient } from './pg.testkit.js';
import { PgCtl } from './pgctl.js';

interface ColdStatus extends DbStatusBody {
  cold?: { last_archived_wal?: string; newest_base_backup?: string; last_base_backup?: { ok: boolean }; last_wal_upload?: { up_to?: string } };
  history: Array<DbStatusBody['history'][number] & { message: string; detect_ms: number | null; promote_ms: number | null }>;
}

async function coldPlane(coordination?: Record<string, unknown>) {
  const fx = await pgFixture(2);
  writeFileSync(join(fx.dir, 'backup-password'), 'cold-standby-test-password\n');
  mkdirSync(join(fx.dir, 'app'));
  const plane = await startPlane({
    fixture: fx,
    ...(coordination ? { coordination } : {}),
    database: { standby: 'cold', restore_from: 'pgbase', wal_archive: join(fx.dir, 'wal'), base_backup_interval: '1h', archive_timeout: '60s', wal_upload_interval: '1s' },
    extra: {
      backups: {
        pgbase: {
          paths: [join(fx.dir, 'app')],
          password_file: join(fx.dir, 'backup-password'),
          targets: [
            { name: 'disk-a', repo: join(fx.dir, 'repo-a'), media: 'hdd' },
            { name: 'disk-b', repo: join(fx.dir, 'repo-b'), media: 'ssd' },
          ],
        },
      },
    },
  }).catch((err: unknown) => {
    fx.cleanup();
    throw err;
  });
  const status = async (): Promise<ColdStatus> => (await plane.status()) as ColdStatus;
  /** SIGKILL of every process of the node and removal of its data directory. */
  const loseMachine = (i: number): void => {
    const n = fx.nodes[i]!;
    new PgCtl({ name: n.name, host: n.host, port: n.port, dataDir: n.data_dir }, { binDir: PG_BIN, osUser: 'postgres', superuser: 'postgres', logFile: join(fx.dir, 'kill.log') }).killAll();
    rmSync(n.data_dir, { recursive: true, force: true });
  };
  return { fx, plane, status, loseMachine };
}

test('cold standby: machine loss of the primary -> a new primary from the base backup plus archived WAL, writes through the same listener', async (t) => {
  const { fx, plane, status, loseMachine } = await coldPlane();
  try {
    const { listen } = plane;
    const s0 = await status();
    assert.equal(s0.primary, 'pg-1');
    assert.equal(postmasterPid(fx.nodes[1]!.data_dir), undefined, 'the cold spare runs nothing');
    // the first base backup is taken at start, since the plan had none
    await waitFor(async () => (await status()).cold?.last_base_backup?.ok === true, { timeoutMs: 60_000, what: `the initial base backup\n${plane.output().slice(-2000)}` });

    const insert = (from: number, to: number): Promise<unknown> => withClient(listen.port, (c) => c.query(`INSERT INTO rows_t SELECT generate_series(${from}, ${to})`), listen.host);
    await withClient(listen.port, (c) => c.query('CREATE TABLE rows_t (id int primary key)'), listen.host);
    await insert(1, 1000);
    // a base backup on demand, through the CLI and the daemon's API
    const bb = await runCli(['db', 'base-backup', 'main', '-c', plane.configFile, '--json'], { timeoutMs: 120_000 });
    assert.equal(bb.code, 0, bb.stderr);
    const bbr = JSON.parse(bb.stdout) as { ok: boolean; targets: Array<{ target: string; ok: boolean; snapshot?: string }> };
    assert.equal(bbr.ok, true);
    assert.deepEqual(bbr.targets.map((x) => [x.target, x.ok]), [['disk-a', true], ['disk-b', true]]);

    // rows only the archived WAL holds (after the base backup)
    await insert(1001, 2000);
    const seg = await withClient(fx.nodes[0]!.port, async (c) => (await c.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f')).rows[0]!.f);
    await waitFor(async () => ((await status()).cold?.last_archived_wal ?? '') >= seg, { timeoutMs: 30_000, what: `segment ${seg} archived` });
    // ... and uploaded into the plan's targets (wal_upload_interval), since the WAL archive's disk is lost too below
    await waitFor(async () => ((await status()).cold?.last_wal_upload?.up_to ?? '') >= seg, { timeoutMs: 30_000, what: `segment ${seg} uploaded to the plan` });
    // and a few rows whose WAL is not archived yet: cold standby may lose these (that is its RPO)
    await insert(2001, 2010);

    // machine loss: every process of pg-1 killed, its data directory gone
    rmSync(join(fx.dir, 'wal'), { recursive: true, force: true }); // the WAL archive's disk is lost too: WAL comes back from the plan
    const killedAt = Date.now();
    loseMachine(0);

    // writes work again through the same listener, on the rebuilt primary
    await waitFor(
      async () => {
        try {
          await withClient(listen.port, (c) => c.query('INSERT INTO rows_t VALUES (100000)'), listen.host);
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 90_000, intervalMs: 100, what: `a write through the listener after the cold failover\n${plane.output().slice(-3000)}` },
    );
    const clientRto = Date.now() - killedAt;
    const s1 = await status();
    assert.equal(s1.primary, 'pg-2');
    assert.equal(await withClient(fx.nodes[1]!.port, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r), false);
    assert.equal(s1.rows.find((r) => r.node === 'pg-1')?.role, 'fenced', 'the lost primary is fenced, never a second primary');

    const ids = await withClient(listen.port, async (c) => new Set((await c.query<{ id: number }>('SELECT id FROM rows_t')).rows.map((r) => r.id)), listen.host);
    for (let i = 1; i <= 2000; i++) assert.ok(ids.has(i), `row ${i} (before the last archived segment) is missing`);
    const lostUnarchived = [...Array(10).keys()].map((k) => 2001 + k).filter((i) => !ids.has(i)).length;

    const rec = (await waitFor(async () => (await status()).history.find((h) => h.kind === 'cold-failover' && h.ok && h.write_downtime_ms !== null), { timeoutMs: 30_000, what: 'the cold failover recorded with its RTO' }))!;
    assert.equal(rec.old_primary, 'pg-1');
    assert.equal(rec.new_primary, 'pg-2');
    assert.match(rec.message, /built pg-2 from base backup [0-9a-f]{8} .*target disk-a.* plus archived WAL up to [0-9A-F]{24}; \d+ WAL file\(s\) recovered into the archive from snapshot [0-9a-f]{8} .*; recovery ended at [0-9A-F]+\/[0-9A-F]+ on timeline 2/);
    t.diagnostic(`cold standby RTO: client-observed ${clientRto} ms (kill to first write through the listener); Bulwark-measured ${rec.write_downtime_ms} ms (detect ${rec.detect_ms} ms, archive recovery ${rec.promote_ms} ms)`);
    t.diagnostic(`rows written after the last archived segment and lost: ${lostUnarchived} of 10 (RPO: unarchived WAL)`);
    t.diagnostic(rec.message);
    const metrics = await (await fetch(`${plane.api}/metrics`)).text();
    assert.match(metrics, /bulwark_db_failovers_total\{database="main",kind="cold-failover",result="ok"\} 1/);

    // the new primary archives too, and a fresh base backup is taken on the new timeline
    await withClient(fx.nodes[1]!.port, (c) => c.query('INSERT INTO rows_t VALUES (100001)'));
    await withClient(fx.nodes[1]!.port, (c) => c.query('SELECT pg_switch_wal()'));
    await waitFor(async () => /^00000002/.test((await status()).cold?.last_archived_wal ?? ''), { timeoutMs: 30_000, what: 'the new primary archiving on timeline 2' });
    await waitFor(async () => (await status()).cold?.last_base_backup?.ok === true && (await status()).cold?.newest_base_backup !== undefined && Date.parse((await status()).cold?.newest_base_backup ?? '') >= killedAt, { timeoutMs: 60_000, what: 'a fresh base backup after the cold failover' });
    const st = await runCli(['db', 'status', 'main', '-c', plane.configFile]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /primary pg-2/);
    assert.match(st.stdout, /cold-failover/);
    assert.match(st.stdout, /cold standby: restore_from pgbase, newest base backup 20\d\d-.*last archived WAL 00000002/);
  } finally {
    await plane.stop();
    fx.cleanup();
  }
});

test('cold standby with etcd unreachable: no rebuild without the lease; etcd back: the new primary is built', async () => {
  const etcd = await startEtcd();
  try {
    const { fx, plane, status, loseMachine } = await coldPlane({ kind: 'etcd', endpoints: [etcd.endpoint], lease_ttl: '2s' });
    try {
      await waitFor(async () => (await status()).cold?.last_base_backup?.ok === true, { timeoutMs: 60_000, what: 'the initial base backup' });
      await withClient(fx.nodes[0]!.port, (c) => c.query('CREATE TABLE x (id int); INSERT INTO x VALUES (1)'));
      const seg = await withClient(fx.nodes[0]!.port, async (c) => (await c.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f')).rows[0]!.f);
      await waitFor(async () => ((await status()).cold?.last_archived_wal ?? '') >= seg, { timeoutMs: 30_000, what: `segment ${seg} archived` });
      await etcd.kill();
      await waitFor(async () => (await status()).leader === false, { timeoutMs: 10_000, what: 'lease lost after etcd went away' });
      loseMachine(0);
      // many rounds (probe 300 ms x fall 2) with the primary gone: nothing may be built or started
      await new Promise((r) => setTimeout(r, 4000));
      const s = await status();
      assert.equal(s.primary, 'pg-1', 'no role change without the lease');
      assert.equal(s.writes, 'blocked');
      assert.equal(s.history.length, 0);
      assert.equal(existsSync(fx.nodes[1]!.data_dir), false, 'nothing restored into the spare without the lease');
      assert.equal(postmasterPid(fx.nodes[1]!.data_dir), undefined);

      await etcd.start();
      await waitFor(async () => (await status()).primary === 'pg-2' && (await status()).writes === 'open', { timeoutMs: 60_000, what: `the cold rebuild once the lease is held again\n${plane.output().slice(-2000)}` });
      assert.equal(await withClient(plane.listen.port, async (c) => (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM x')).rows[0]!.n, plane.listen.host), 1);
    } finally {
      await plane.stop();
      fx.cleanup();
    }
  } finally {
    await etcd.stop();
  }
});
