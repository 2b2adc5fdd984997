// With etcd coordination (a real etcd on loopback): while etcd is unreachable the instance loses
// the leader lease and no promotion happens even though the primary is dead; once etcd answers
// again the instance takes the lease and fails over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../testing/helpers.js';
import { startEtcd } from '../coord/etcd.testkit.js';
import { allStreaming, startPlane } from './e2e.testkit.js';
import { postmasterPid, withClient } from './pg.testkit.js';

test('etcd unreachable: the lease is lost and the standby is not promoted; etcd back: failover', async () => {
  const etcd = await startEtcd();
  try {
    const plane = await startPlane({ coordination: { kind: 'etcd', endpoints: [etcd.endpoint], lease_ttl: '2s' } });
    try {
      const { fx } = plane;
      await allStreaming(plane);
      assert.equal((await plane.status()).leader, true);
      await etcd.kill();
      await waitFor(async () => (await plane.status()).leader === false, { timeoutMs: 10_000, what: 'lease lost after etcd went away' });

      process.kill(postmasterPid(fx.nodes[0]!.data_dir) ?? 0, 'SIGKILL');
      // Several failover rounds' worth of time (probe 300 ms x fall 2) with the primary dead:
      await new Promise((r) => setTimeout(r, 4000));
      const s = await plane.status();
      assert.equal(s.primary, 'pg-1', 'no role change without the lease');
      assert.equal(s.writes, 'blocked');
      assert.equal(s.history.length, 0);
      assert.equal(await withClient(fx.nodes[1]!.port, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r), true, 'pg-2 must still be a standby');

      await etcd.start();
      await waitFor(async () => (await plane.status()).primary === 'pg-2', { timeoutMs: 30_000, what: 'failover once the lease is held again' });
      assert.equal(await withClient(fx.nodes[1]!.port, async (c) => (await c.query('SELECT pg_is_in_recovery() AS r')).rows[0].r), false);
    } finally {
      await plane.stop();
    }
  } finally {
    await etcd.stop();
  }
});

test('two instances on one etcd: the standby instance takes over the lease when the leader dies, then fails over', async () => {
  const etcd = await startEtcd();
  const coordination = { kind: 'etcd', endpoints: [etcd.endpoint], lease_ttl: '2s' };
  let a: Awaited<ReturnType<typeof startPlane>> | undefined;
  let b: Awaited<ReturnType<typeof startPlane>> | undefined;
  try {
    a = await startPlane({ coordination: { ...coordination, instance: 'a' }, name: 'a' });
    await allStreaming(a);
    b = await startPlane({ coordination: { ...coordination, instance: 'b' }, name: 'b', fixture: a.fx });
    const sb = await b.status();
    assert.equal(sb.leader, false, 'only one instance leads');
    assert.equal(sb.primary, 'pg-1', 'the other routes to the observed primary');
    const fx = a.fx;

    await a.kill(); // the leading control plane dies (its PostgreSQL nodes keep running)
    await waitFor(async () => (await b!.status()).leader, { timeoutMs: 15_000, what: 'instance b takes the lease' });
    await withClient(b.listen.port, (c) => c.query('CREATE TABLE t (id int); INSERT INTO t VALUES (1)'), b.listen.host);

    process.kill(postmasterPid(fx.nodes[0]!.data_dir) ?? 0, 'SIGKILL');
    await waitFor(async () => (await b!.status()).primary === 'pg-2', { timeoutMs: 30_000, what: 'instance b fails over' });
    await waitFor(() => withClient(b!.listen.port, async (c) => (await c.query('INSERT INTO t VALUES (2)')).rowCount === 1, b!.listen.host), { timeoutMs: 15_000, what: 'writes through instance b' });
    assert.equal(await withClient(fx.nodes[1]!.port, async (c) => (await c.query('SELECT count(*)::int AS n FROM t')).rows[0].n), 2);
  } finally {
    await b?.stop();
    await a?.stop();
    a?.fx.cleanup();
    await etcd.stop();
  }
});
