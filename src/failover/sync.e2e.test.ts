// Synchronous mode end to end (`bulwark up`, proxy listener, real PostgreSQL): Bulwark names the
// synchronous standby; after SIGKILL of the primary's postmaster under a steady write load, every
// write the client saw committed is on the new primary; with no_sync_standby: block, writes
// resume once the old primary has rejoined as the new synchronous standby.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, waitFor } from '../testing/helpers.js';
import { allStreaming, startPlane } from './e2e.testkit.js';
import { readdirSync, readFileSync } from 'node:fs';
import { postmasterPid, withClient, WriteLoad } from './pg.testkit.js';

function findProcess(cmdlinePrefix: string): number | undefined {
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').startsWith(cmdlinePrefix)) return Number(e);
    } catch {
      // gone
    }
  }
  return undefined;
}

test('synchronous pair: no acknowledged write is lost when the primary is SIGKILLed, nor in a switchover back', async (t) => {
  const plane = await startPlane({ database: { synchronous: true } });
  try {
    const { fx, listen } = plane;
    await allStreaming(plane);
    const names = await withClient(fx.nodes[0]!.port, async (c) => (await c.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s")).rows[0]?.s);
    assert.equal(names, 'FIRST 1 ("pg-2")', 'Bulwark manages synchronous_standby_names');
    await withClient(listen.port, (c) => c.query('CREATE TABLE load (id int primary key)'), listen.host);

    const load = new WriteLoad(listen.host, listen.port);
    load.start();
    try {
      await load.waitMore(50);
      // Make the standby fall behind: freeze its WAL receiver. An asynchronous primary would keep
      // acknowledging commits the standby never gets (and the failover would lose them); a
      // synchronous one holds every commit until the standby has flushed it.
      const receiver = findProcess('postgres: pg-2: walreceiver');
      assert.ok(receiver, 'pg-2 walreceiver process found');
      process.kill(receiver, 'SIGSTOP');
      const ackedBeforeFreeze = load.acked.length;
      await new Promise((r) => setTimeout(r, 1000));
      t.diagnostic(`writes acknowledged while the standby was frozen: ${load.acked.length - ackedBeforeFreeze}`);
      process.kill(postmasterPid(fx.nodes[0]!.data_dir) ?? 0, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      process.kill(receiver, 'SIGCONT');
      await waitFor(async () => (await plane.status()).primary === 'pg-2', { timeoutMs: 30_000, what: 'pg-2 promoted' });
      await load.waitMore(30, 60_000);
    } finally {
      await load.stop();
    }
    t.diagnostic(`client-observed write gap: ${load.maxGapMs} ms (includes the old primary's rejoin: writes wait for a synchronous standby)`);
    const ids = await withClient(fx.nodes[1]!.port, async (c) => new Set((await c.query<{ id: number }>('SELECT id FROM load')).rows.map((r) => r.id)));
    const missing = load.acked.filter((id) => !ids.has(id));
    assert.deepEqual(missing, [], 'acknowledged writes missing on the new primary');
    const s = await allStreaming(plane);
    assert.equal(s.primary, 'pg-2');
    const names2 = await withClient(fx.nodes[1]!.port, async (c) => (await c.query<{ s: string }>("SELECT current_setting('synchronous_standby_names') AS s")).rows[0]?.s);
    assert.equal(names2, 'FIRST 1 ("pg-1")', 'the rejoined old primary is the new synchronous standby');

    // a synchronous switchover back under load loses nothing either
    const load2 = new WriteLoad(listen.host, listen.port, 'load2');
    await withClient(listen.port, (c) => c.query('CREATE TABLE load2 (id int primary key)'), listen.host);
    load2.start();
    try {
      await load2.waitMore(30);
      const sw = await runCli(['db', 'switchover', 'main', '--to', 'pg-1', '-c', plane.configFile], { timeoutMs: 120_000 });
      assert.equal(sw.code, 0, sw.stderr);
      assert.match(sw.stdout, /pg-2 -> pg-1/);
      await load2.waitMore(30, 60_000);
    } finally {
      await load2.stop();
    }
    const ids2 = await withClient(fx.nodes[0]!.port, async (c) => new Set((await c.query<{ id: number }>('SELECT id FROM load2')).rows.map((r) => r.id)));
    assert.deepEqual(load2.acked.filter((id) => !ids2.has(id)), []);
    assert.equal((await allStreaming(plane)).primary, 'pg-1');
  } finally {
    await plane.stop();
  }
});
