// The write checker on hand-built histories: lost acknowledged writes, indeterminate writes,
// downtime around a fault, and split brain (with the histories that must and must not count).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { check, longestGap, splitBrain, type WriteRecord } from './checker.js';

let seq = 0;
/** A write by `client` to `node`, sent at `start`, acknowledged at `end` (or failed when node is undefined). */
function w(client: number, start: number, end: number, node?: string): WriteRecord {
  return { client, seq: ++seq, start, end, ok: node !== undefined, node, error: node === undefined ? 'timeout' : undefined };
}
const rows = (ws: WriteRecord[]): Array<{ client: number; seq: number }> => ws.map((x) => ({ client: x.client, seq: x.seq }));

/** Two clients writing to A every 10 ms until 1000, nothing until 3000, then to B until 4000. */
function failoverHistory(): WriteRecord[] {
  const ws: WriteRecord[] = [];
  for (let t = 0; t < 1000; t += 10) ws.push(w(1, t, t + 2, 'A'), w(2, t + 5, t + 7, 'A'));
  ws.push(w(1, 1000, 2000), w(2, 1005, 2005)); // in flight at the fault, timed out
  for (let t = 3000; t < 4000; t += 10) ws.push(w(1, t, t + 2, 'B'), w(2, t + 5, t + 7, 'B'));
  return ws;
}

test('a clean failover: nothing lost, no split brain, downtime is the gap across the fault', () => {
  const ws = failoverHistory();
  const r = check({ writes: ws, finalRows: rows(ws.filter((x) => x.ok)), faultAt: 1000 });
  assert.equal(r.ok, true);
  assert.deepEqual(r.lost, []);
  assert.equal(r.splitBrain.count, 0);
  assert.equal(r.downtime?.from, 997);
  assert.equal(r.downtime?.to, 3002);
  assert.equal(r.downtime?.ms, 2005);
  assert.equal(r.downtime?.recovered, true);
  assert.equal(r.downtime?.recoveredAfterMs, 2002);
  assert.deepEqual(r.nodes.map((n) => [n.node, n.acks]), [['A', 200], ['B', 200]]);
  assert.equal(r.failed, 2);
});

test('an acknowledged write missing on the final primary is lost; a failed one present is only indeterminate', () => {
  const ws = failoverHistory();
  const acked = ws.filter((x) => x.ok);
  const missing = acked[150] as WriteRecord;
  const failed = ws.filter((x) => !x.ok);
  const r = check({ writes: ws, finalRows: rows([...acked.filter((x) => x !== missing), failed[0] as WriteRecord]), faultAt: 1000 });
  assert.equal(r.ok, false);
  assert.deepEqual(r.lost, [missing]);
  assert.equal(r.failedButPresent, 1);
  assert.deepEqual(r.unknown, []);
});

test('a row no writer attempted is reported as unknown and fails the check', () => {
  const ws = failoverHistory();
  const r = check({ writes: ws, finalRows: [...rows(ws.filter((x) => x.ok)), { client: 9, seq: 1 }] });
  assert.deepEqual(r.unknown, [{ client: 9, seq: 1 }]);
  assert.equal(r.ok, false);
});

test('split brain: the old primary acknowledges a write that began after the new one acknowledged', () => {
  const ws = failoverHistory();
  // A (the old primary) still takes a write that started at 3500, after B's acks from 3002 on
  const late = w(3, 3500, 3510, 'A');
  ws.push(late);
  const r = check({ writes: ws, finalRows: rows(ws.filter((x) => x.ok)), faultAt: 1000 });
  assert.equal(r.splitBrain.count, 1);
  assert.equal(r.ok, false);
  const wit = r.splitBrain.witnesses[0];
  assert.equal(wit?.node, 'A');
  assert.equal(wit?.newer, 'B');
  assert.equal(wit?.newerAck, 3002);
  assert.equal(wit?.write, late);
});

test('split brain: two nodes alternating count the old node\'s writes after the new one took over', () => {
  // A and B acknowledge strictly sequential writes alternately; B's first ack (3) is after A's (1)
  const ws = [w(1, 0, 1, 'A'), w(2, 2, 3, 'B'), w(1, 4, 5, 'A'), w(2, 6, 7, 'B'), w(1, 8, 9, 'A')];
  const r = splitBrain(ws);
  // A's writes at 4 and 8 began after B's ack at 3; B, the newer node, is never the one counted
  assert.deepEqual(r.witnesses.map((x) => [x.node, x.newer, x.write.start]), [['A', 'B', 4], ['A', 'B', 8]]);
  assert.equal(r.count, 2);
});

test('split brain with three nodes: each superseded write counted once', () => {
  const ws = [w(1, 0, 1, 'A'), w(1, 10, 11, 'B'), w(1, 20, 21, 'C'), w(2, 30, 31, 'A'), w(3, 40, 41, 'B')];
  const r = splitBrain(ws);
  assert.deepEqual(r.witnesses.map((x) => [x.node, x.write.start]), [['A', 30], ['B', 40]]);
});

test('no split brain from a late ack: a write that began before the new primary\'s first ack may have committed first', () => {
  const ws = failoverHistory();
  // sent to A at 990 (before the fault and before B's first ack at 3002), acknowledged at 3100
  ws.push(w(3, 990, 3100, 'A'));
  assert.equal(splitBrain(ws).count, 0);
});

test('no split brain when the intervals cannot be ordered: B\'s only write overlaps A\'s first', () => {
  // B's write began before A's first ack, so B is not known to come after A
  const ws = [w(1, 10, 20, 'A'), w(2, 0, 500, 'B'), w(1, 600, 610, 'A')];
  assert.equal(splitBrain(ws).count, 0);
});

test('a failback (A, B, then A again) matches the pattern: histories must hold one failover each (documented)', () => {
  const ws = [w(1, 0, 1, 'A'), w(1, 10, 11, 'B'), w(1, 20, 21, 'A')];
  assert.equal(splitBrain(ws).count, 1);
});

test('downtime without recovery runs to the end of the history and says so', () => {
  const ws = [w(1, 0, 1, 'A'), w(1, 10, 11, 'A'), w(1, 20, 1020)];
  const g = longestGap(ws, { faultAt: 15, endedAt: 5000 });
  assert.deepEqual(g, { ms: 4989, from: 11, to: 5000, recovered: false });
});

test('downtime ignores gaps that closed before the fault, and a fault before the first ack starts the gap', () => {
  // a 500 ms hiccup before the fault, then a 200 ms gap across it
  const ws = [w(1, 0, 1, 'A'), w(1, 500, 501, 'A'), w(1, 510, 511, 'A'), w(1, 700, 711, 'B'), w(1, 720, 721, 'B')];
  assert.equal(longestGap(ws)?.ms, 500);
  const g = longestGap(ws, { faultAt: 600 });
  assert.equal(g?.ms, 200);
  assert.equal(g?.recoveredAfterMs, 111);
  const early = longestGap([w(1, 100, 300, 'B'), w(1, 300, 310, 'B')], { faultAt: 0 });
  assert.deepEqual(early, { ms: 300, from: 0, to: 300, recovered: true, recoveredAfterMs: 300 });
});
