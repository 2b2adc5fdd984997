// End to end through the whole control plane (`bulwark up` with the default subsystems) and the
// proxy's database listener: under a steady write load, SIGKILL the primary's postmaster; writes
// succeed again through the same listener, the write downtime is measured (by the client and by
// Bulwark), the old primary rejoins as a standby; then a planned switchover back loses nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, waitFor } from '../testing/helpers.js';
import { allStreaming, startPlane } from './e2e.testkit.js';
import { postmasterPid, withClient, WriteLoad } from './pg.testkit.js';

test('asynchronous pair: failover after SIGKILL under write load, rejoin, then a switchover that loses nothing', async (t) => {
  const plane = await startPlane();
  try {
    const { fx, listen } = plane;
    const s0 = await allStreaming(plane);
    assert.equal(s0.primary, 'pg-1');
    await withClient(listen.port, (c) => c.query('CREATE TABLE load (id int primary key, at timestamptz default now())'), listen.host);

    const load = new WriteLoad(listen.host, listen.port);
    let fromId = Number.POSITIVE_INFINITY;
    load.start();
    try {
      await load.waitMore(30);
      const pid = postmasterPid(fx.nodes[0]!.data_dir);
      assert.ok(pid);
      process.kill(pid, 'SIGKILL');
      const killedAt = Date.now();
      const before = load.acked.length;
      await waitFor(async () => (await plane.status()).primary === 'pg-2', { timeoutMs: 30_000, what: 'pg-2 promoted' });
      await load.waitMore(30, 30_000);
      assert.ok(load.acked.length > before, 'writes succeed again through the same listener');
      t.diagnostic(`client-observed write gap around the failover: ${load.maxGapMs} ms (killed ${killedAt - load.gapStartedAt} ms into the gap)`);

      // Bulwark measured and reported it too
      const s1 = await waitFor(async () => {
        const s = await plane.status();
        return s.history.find((h) => h.kind === 'failover' && h.write_downtime_ms !== null) ? s : undefined;
      }, { what: 'failover recorded with its write downtime' });
      const rec = s1.history.find((h) => h.kind === 'failover');
      assert.equal(rec?.old_primary, 'pg-1');
      assert.equal(rec?.new_primary, 'pg-2');
      t.diagnostic(`Bulwark-measured write downtime: ${rec?.write_downtime_ms} ms`);
      const metrics = await (await fetch(`${plane.api}/metrics`)).text();
      assert.match(metrics, /bulwark_db_failovers_total\{database="main",kind="failover",result="ok"\} 1/);
      assert.match(metrics, /bulwark_db_write_downtime_seconds_count\{database="main",kind="failover"\} 1/);

      // the old primary rejoins as a standby (never as a second primary)
      await allStreaming(plane);
      assert.equal(await withClient(fx.nodes[0]!.port, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r), true);

      // planned switchover back to pg-1 under the same load: nothing acknowledged is lost
      fromId = load.acked[load.acked.length - 1] ?? 0;
      const sw = await runCli(['db', 'switchover', 'main', '--to', 'pg-1', '-c', plane.configFile, '--json'], { timeoutMs: 120_000 });
      assert.equal(sw.code, 0, sw.stderr);
      const swr = JSON.parse(sw.stdout) as { old_primary: string; new_primary: string; write_downtime_ms: number };
      assert.equal(swr.new_primary, 'pg-1');
      t.diagnostic(`switchover write downtime (Bulwark): ${swr.write_downtime_ms} ms`);
      await load.waitMore(30, 30_000);
    } finally {
      await load.stop();
    }
    const s2 = await allStreaming(plane);
    assert.equal(s2.primary, 'pg-1', 'after the switchover pg-1 is primary and pg-2 streams from it');
    const ids = await withClient(listen.port, async (c) => new Set((await c.query<{ id: number }>('SELECT id FROM load')).rows.map((r) => r.id)), listen.host);
    // asynchronous mode may lose the last writes of a crash, never those of a switchover: every
    // write acknowledged from just before the switchover on is on the new primary
    const sinceSwitchover = load.acked.filter((id) => id >= fromId);
    assert.ok(sinceSwitchover.length >= 30);
    for (const id of sinceSwitchover) assert.ok(ids.has(id), `write ${id} acknowledged around the switchover is missing`);
    const lostInCrash = load.acked.filter((id) => id < fromId && !ids.has(id)).length;
    t.diagnostic(`asynchronous mode: ${lostInCrash} acknowledged writes lost in the crash failover (allowed without synchronous: true)`);

    const st = await runCli(['db', 'status', 'main', '-c', plane.configFile]);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /primary pg-1/);
    assert.match(st.stdout, /switchover/);

    // bad input gets a registry code and a non-zero exit
    const unknown = await runCli(['db', 'status', 'nosuch', '-c', plane.configFile]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /BULWARK_DB_UNKNOWN.*nosuch/);
    const already = await runCli(['db', 'switchover', 'main', '--to', 'pg-1', '-c', plane.configFile]);
    assert.equal(already.code, 1);
    assert.match(already.stderr, /BULWARK_DB_SWITCHOVER: pg-1 is already the primary/);
    const noNode = await runCli(['db', 'switchover', 'main', '--to', 'pg-9', '-c', plane.configFile]);
    assert.equal(noNode.code, 2);
    assert.match(noNode.stderr, /BULWARK_DB_UNKNOWN/);
  } finally {
    await plane.stop();
  }
});
