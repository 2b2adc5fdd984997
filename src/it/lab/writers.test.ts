// The writers program and the checker end to end on real PostgreSQL in lab hosts: one server
// and no fault is clean; two independent writable servers (two primaries by construction) and a
// host death must be reported as split brain and as lost acknowledged writes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { check, createLab, readRows, runWriters, startPostgres, underLoad, type Lab, type RowKey } from './index.js';

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
  const r = await underLoad({
    from: lab.host('c1'),
    targets: [`${h1.address}:5432`, `${h2.address}:5432`],
    table: 'brain',
    create: true,
    clients: 2,
    warmupAcks: 200,
    recoveryAcks: 200,
    recoveryTimeoutMs: 30_000,
    fault: () => h1.kill(),
    finalPrimary: async () => ({ address: h2.address, port: 5432 }),
  });
  assert.equal(r.recovered, true);
  assert.deepEqual(r.report.nodes.map((n) => n.node).sort(), [`${h1.address}:5432`, `${h2.address}:5432`]);
  assert.ok(r.report.splitBrain.count > 0, 'both servers took writes at the same time');
  assert.ok(r.report.lost.length > 0, "h1's acknowledged rows are not on h2");
  assert.ok(r.report.lost.every((x) => x.node === `${h1.address}:5432`));
  // after the kill, only h2 acknowledged
  assert.deepEqual(r.result.writes.filter((x) => x.ok && x.start > r.faultAt + 5 && x.node !== `${h2.address}:5432`), []);
  assert.equal(r.report.ok, false);
  h1.revive();
});
