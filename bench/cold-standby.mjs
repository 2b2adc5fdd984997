#!/usr/bin/env node
// Cold-standby RTO: time from the loss of the primary's machine (every process SIGKILLed, data
// directory removed) to the first write through Bulwark's listener, with the new primary built
// from the latest base backup (restored from a local repository of the restore_from plan) plus
// the archived WAL. Real PostgreSQL 15 on loopback, `bulwark up`.
//
// For each size: load DATA rows into a table, take a base backup (`bulwark db base-backup`), write
// WAL rows more (only the WAL archive holds them), pg_switch_wal and wait until it is archived,
// lose the machine, and time the rebuild. Prints the client-observed RTO and Bulwark's breakdown.
// There is no peer beside it: Patroni and pg_auto_failover have no cold-standby mode (pgBackRest or
// WAL-G restores are manual); the figure to compare against is "someone restores by hand".
//
// Usage: npm run build && node bench/cold-standby.mjs [--sizes 100000,1000000] [--wal-rows 200000]
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startPlane } from '../dist/failover/e2e.testkit.js';
import { PG_BIN, pgFixture, withClient } from '../dist/failover/pg.testkit.js';
import { PgCtl } from '../dist/failover/pgctl.js';
import { runCli, waitFor } from '../dist/testing/helpers.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const SIZES = String(opt('--sizes', '100000,1000000')).split(',').map(Number);
const WAL_ROWS = Number(opt('--wal-rows', '200000'));

async function one(rows) {
  const fx = await pgFixture(2);
  writeFileSync(join(fx.dir, 'pw'), 'bench-password\n');
  mkdirSync(join(fx.dir, 'app'));
  const plane = await startPlane({
    fixture: fx,
    database: { standby: 'cold', restore_from: 'pgbase', wal_archive: join(fx.dir, 'wal'), base_backup_interval: '24h' },
    extra: { backups: { pgbase: { paths: [join(fx.dir, 'app')], password_file: join(fx.dir, 'pw'), targets: [{ name: 'disk', repo: join(fx.dir, 'repo'), media: 'hdd' }] } } },
  });
  try {
    const port = fx.nodes[0].port;
    await withClient(port, (c) => c.query(`CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, ${rows}) g`));
    const size = await withClient(port, async (c) => (await c.query("SELECT pg_database_size('postgres')::bigint AS b")).rows[0].b);
    const t0 = Date.now();
    const bb = await runCli(['db', 'base-backup', 'main', '-c', plane.configFile, '--json'], { timeoutMs: 600_000 });
    if (bb.code !== 0) throw new Error(bb.stderr);
    const baseMs = Date.now() - t0;
    await withClient(port, (c) => c.query(`INSERT INTO big SELECT g, md5(g::text) FROM generate_series(${rows + 1}, ${rows + WAL_ROWS}) g`));
    const seg = await withClient(port, async (c) => (await c.query('SELECT pg_walfile_name(pg_switch_wal()) AS f')).rows[0].f);
    await waitFor(async () => ((await plane.status()).cold?.last_archived_wal ?? '') >= seg, { timeoutMs: 120_000, what: 'archived' });
    const n = fx.nodes[0];
    new PgCtl({ name: n.name, host: n.host, port: n.port, dataDir: n.data_dir }, { binDir: PG_BIN, osUser: 'postgres', superuser: 'postgres', logFile: join(fx.dir, 'k.log') }).killAll();
    const killed = Date.now();
    rmSync(n.data_dir, { recursive: true, force: true });
    await waitFor(
      async () => {
        try {
          await withClient(plane.listen.port, (c) => c.query('INSERT INTO big VALUES (-1, $1)', ['after']), plane.listen.host);
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 600_000, intervalMs: 50, what: 'writes after the cold failover' },
    );
    const rto = Date.now() - killed;
    const count = await withClient(plane.listen.port, async (c) => (await c.query('SELECT count(*)::int AS n FROM big')).rows[0].n, plane.listen.host);
    const rec = (await waitFor(async () => (await plane.status()).history.find((h) => h.kind === 'cold-failover' && h.write_downtime_ms !== null), { timeoutMs: 60_000 }));
    const restoreMs = /restored in (\d+) ms/.exec(rec.message)?.[1];
    return { rows, dbMB: Number(size) / 1e6, baseMs, rto, bulwarkMs: rec.write_downtime_ms, detectMs: rec.detect_ms, restoreMs: Number(restoreMs), recoveryMs: rec.promote_ms, complete: count === rows + WAL_ROWS + 1 };
  } finally {
    await plane.stop();
    fx.cleanup();
  }
}

console.log(`cold-standby RTO (machine loss of the primary -> first write through the listener); WAL rows after the base backup: ${WAL_ROWS}`);
console.log('rows\tdb MB\tbase backup ms\tRTO client ms\tBulwark ms\tdetect ms\trestore ms\tarchive recovery ms\tall rows back');
for (const rows of SIZES) {
  const r = await one(rows);
  console.log(`${r.rows}\t${r.dbMB.toFixed(1)}\t${r.baseMs}\t${r.rto}\t${r.bulwarkMs}\t${r.detectMs}\t${r.restoreMs}\t${r.recoveryMs}\t${r.complete ? 'yes' : 'NO'}`);
}
