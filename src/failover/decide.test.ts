// Pure failover decisions: LSN arithmetic, candidate choice (most WAL, max lag, synchronous
// safety), and how the synchronous standby set follows the standbys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseCandidate, lagBytes, parseLsn, planSync, syncNamesFor } from './decide.js';

test('LSNs parse as 64-bit positions and lag is their difference', () => {
  assert.equal(parseLsn('0/0'), 0n);
  assert.equal(parseLsn('1/0'), 1n << 32n);
  assert.equal(parseLsn('16/B374D848'), (0x16n << 32n) + 0xb374d848n);
  assert.equal(parseLsn('garbage'), undefined);
  assert.equal(lagBytes('0/3000100', '0/3000000'), 256);
  assert.equal(lagBytes('0/3000000', '0/3000100'), 0, 'a standby ahead of the last seen primary position lags 0');
});

const base = { primaryLsn: '0/5000000', synchronous: false, syncNodes: [] as string[], ranAsync: false, maxLagBytes: 16 * 1024 * 1024 };

test('asynchronous: the standby with the most received WAL wins', () => {
  const c = chooseCandidate({ ...base, candidates: [
    { node: 'a', available: true, receivedLsn: '0/4000000' },
    { node: 'b', available: true, receivedLsn: '0/4FFFFFF' },
    { node: 'c', available: false, receivedLsn: '0/5000000' },
  ] });
  assert.equal(c.node, 'b');
});

test('asynchronous: a standby lagging more than max_lag_on_failover is not promoted', () => {
  const c = chooseCandidate({ ...base, maxLagBytes: 1024, candidates: [{ node: 'a', available: true, receivedLsn: '0/4000000' }] });
  assert.equal(c.node, undefined);
  assert.match(c.reason, /max_lag_on_failover/);
});

test('no available standby means no promotion', () => {
  assert.equal(chooseCandidate({ ...base, candidates: [{ node: 'a', available: false, receivedLsn: '0/5000000' }] }).node, undefined);
});

test('synchronous: only the standby holding every acknowledged commit may be promoted, even if another received more WAL', () => {
  const input = { ...base, synchronous: true, syncNodes: ['a'], candidates: [
    { node: 'a', available: true, receivedLsn: '0/4000000' },
    { node: 'b', available: true, receivedLsn: '0/5000000' },
  ] };
  assert.equal(chooseCandidate(input).node, 'a');
  const aGone = chooseCandidate({ ...input, candidates: input.candidates.map((c) => (c.node === 'a' ? { ...c, available: false } : c)) });
  assert.equal(aGone.node, undefined, 'b may lack acknowledged commits');
  assert.match(aGone.reason, /only a holds every acknowledged commit/);
});

test('synchronous with no_sync_standby: async, after running without a sync standby: falls back to most WAL', () => {
  const c = chooseCandidate({ ...base, synchronous: true, syncNodes: [], ranAsync: true, candidates: [{ node: 'b', available: true, receivedLsn: '0/5000000' }] });
  assert.equal(c.node, 'b');
});

test('synchronous_standby_names names exactly one standby, quoted', () => {
  assert.equal(syncNamesFor('pg-2'), 'FIRST 1 ("pg-2")');
  assert.equal(syncNamesFor(undefined), '');
});

const plan = { synchronous: true, noSyncStandby: 'block' as const, standbys: ['b', 'c'] };

test('a newly named synchronous standby joins the safe set only once the primary reports it sync', () => {
  // b is named and streaming but not yet reported sync: the safe set stays as it was
  assert.deepEqual(planSync({ ...plan, named: 'b', streaming: ['b'], reportedSync: [] }, ['a']), { name: 'b', syncNodes: ['a'], async: false });
  // reported: b alone is safe from now on
  assert.deepEqual(planSync({ ...plan, named: 'b', streaming: ['b'], reportedSync: ['b'] }, ['a']), { name: 'b', syncNodes: ['b'], async: false });
});

test('when the named standby stops streaming another streaming one is named (not yet safe)', () => {
  assert.deepEqual(planSync({ ...plan, named: 'b', streaming: ['c'], reportedSync: [] }, ['b']), { name: 'c', syncNodes: ['b'], async: false });
});

test('no_sync_standby: block keeps naming a standby when none streams (writes wait); async clears it', () => {
  assert.deepEqual(planSync({ ...plan, named: 'b', streaming: [], reportedSync: [] }, ['b']), { name: 'b', syncNodes: ['b'], async: false });
  assert.deepEqual(planSync({ ...plan, noSyncStandby: 'async', named: 'b', streaming: [], reportedSync: [] }, ['b']), { name: undefined, syncNodes: [], async: true });
});

test('asynchronous clusters never name a synchronous standby', () => {
  assert.deepEqual(planSync({ ...plan, synchronous: false, named: undefined, streaming: ['b'], reportedSync: [] }, []), { name: undefined, syncNodes: [], async: true });
});
