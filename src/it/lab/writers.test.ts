// The writers program and the checker end to end on real PostgreSQL in lab hosts: one server
// and no fault is clean; two independent writable servers (two primaries by construction) and a
// host death must be reported as split brain and as lost acknowledged writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { check, createLab, readRows, runWriters, startPostgres, type Lab, type RowKey } from './index.js';

let lab: Lab;

before(async () => {
  lab = await createLab({ hosts: ['h1', 'h2'], clients: ['c1'] });
  await Promise.all([startPostgres(lab.host('h1')), startPostgres(lab.host('h2'))]);
});

after(async () => {
  await lab?.teardown();
});

const finalRows = (host: string, table: string): Promise<RowKey[]> => readRows(lab.host('c1'), lab.host(host).address, 5432, table);

test('one primary, no fault: every acknowledged write is there, one node, no split brain', async () => {
  const h2 = lab.host('h2');
  const w = runWriters(lab.host('c1'), { targets: [`${h2.address}:5432`], clients: 3, table: 'clean', create: true });
  await w.waitAcked(150);
  const res = await w.stop();
  const r = check({ writes: res.writes, finalRows: await finalRows('h2', 'clean') });
  assert.ok(r.acked >= 150);
  assert.deepEqual(r.lost, []);
  assert.equal(r.splitBrain.count, 0);
  assert.deepEqual(r.nodes.map((n) => n.node), [`${h2.address}:5432`]);
  assert.equal(r.ok, true);
});

test('two writable servers and a host death: the checker reports split brain and lost acknowledged writes', async () => {
  const [h1, h2] = [lab.host('h1'), lab.host('h2')];
  const w = runWriters(lab.host('c1'), { targets: [`${h1.address}:5432`, `${h2.address}:5432`], clients: 2, table: 'brain', create: true });
  const before = await w.waitAcked(200);
  const killedAt = Date.now();
  await h1.kill();
  await w.waitAcked(before.acked + 200, 30_000);
  const res = await w.stop();
  const r = check({ writes: res.writes, finalRows: await finalRows('h2', 'brain'), faultAt: killedAt });
  assert.deepEqual(r.nodes.map((n) => n.node).sort(), [`${h1.address}:5432`, `${h2.address}:5432`]);
  assert.ok(r.splitBrain.count > 0, 'both servers took writes at the same time');
  assert.ok(r.lost.length > 0, "h1's acknowledged rows are not on h2");
  assert.ok(r.lost.every((x) => x.node === `${h1.address}:5432`));
  assert.equal(r.downtime?.recovered, true);
  // after the kill, only h2 acknowledged
  assert.deepEqual(res.writes.filter((x) => x.ok && x.start > killedAt + 5 && x.node !== `${h2.address}:5432`), []);
  assert.equal(r.ok, false);
  h1.revive();
});
