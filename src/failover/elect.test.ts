import { test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyState, followAction, mayTakeFreeLease, type FreeLeaseInput, type LocalNodeFacts, type NodeView, type SharedDbState } from './elect.js';

const NODES = ['pg-1', 'pg-2', 'pg-3'];
const fresh = (node: string): LocalNodeFacts => ({ node, initialized: false, standbyConfigured: false, running: false, primary: false });
const standby = (node: string): LocalNodeFacts => ({ node, initialized: true, standbyConfigured: true, running: true, primary: false });
const view = (node: string, lsn: string | undefined, o: Partial<NodeView> = {}): NodeView => ({ node, reachable: true, inRecovery: true, lsn, streamed: true, ...o });
const state = (o: Partial<SharedDbState>): SharedDbState => ({ ...emptyState(), primary: 'pg-1', epoch: 1, writes: 'open', blocked_reason: undefined, updated_at: 1000, ...o });
const input = (me: LocalNodeFacts, o: Partial<FreeLeaseInput>): FreeLeaseInput => ({ me, nodes: NODES, state: undefined, views: [], synchronous: false, maxLagBytes: 16 * 1024 * 1024, now: 2000, ...o });

test('a fresh cluster is initialized by the first node only, and never over a node that holds data', () => {
  assert.deepEqual(mayTakeFreeLease(input(fresh('pg-1'), {})).take, true);
  assert.equal(mayTakeFreeLease(input(fresh('pg-2'), {})).take, false);
  // the first node is empty but pg-2 already runs as a primary (etcd's data was lost): pg-2 adopts, pg-1 waits
  const views = [view('pg-1', undefined, { reachable: false }), view('pg-2', '0/5000000', { inRecovery: false })];
  assert.equal(mayTakeFreeLease(input(fresh('pg-1'), { views })).take, false);
  const adopt = mayTakeFreeLease(input({ ...standby('pg-2'), standbyConfigured: false, primary: true }, { views }));
  assert.equal(adopt.take && adopt.as, 'adopt');
});

test('the recorded primary\'s member adopts the lease of a running primary (a restart is not a failover); a fenced one does not', () => {
  const s = state({});
  const me = { node: 'pg-1', initialized: true, standbyConfigured: false, running: true, primary: true };
  const d = mayTakeFreeLease(input(me, { state: s, views: [view('pg-1', '0/9', { inRecovery: false }), view('pg-2', '0/9')] }));
  assert.equal(d.take && d.as, 'adopt');
  const fenced = mayTakeFreeLease(input({ ...me, standbyConfigured: true, running: false, primary: false }, { state: s, views: [view('pg-1', undefined, { reachable: false })] }));
  assert.equal(fenced.take, false);
});

test('takeover: only the best candidate takes the free lease; a live primary is never competed with', () => {
  const s = state({ primary_lsn: '0/3000000' });
  const views = [view('pg-1', undefined, { reachable: false, inRecovery: undefined }), view('pg-2', '0/3000000'), view('pg-3', '0/2FFFF00')];
  const two = mayTakeFreeLease(input(standby('pg-2'), { state: s, views }));
  assert.equal(two.take && two.as, 'takeover');
  const three = mayTakeFreeLease(input(standby('pg-3'), { state: s, views }));
  assert.equal(three.take, false);
  assert.match(three.reason, /pg-2 is the better candidate/);
  // the primary still answers (its instance restarts): nobody takes over
  const alive = [view('pg-1', '0/3000000', { inRecovery: false }), view('pg-2', '0/3000000'), view('pg-3', '0/3000000')];
  assert.equal(mayTakeFreeLease(input(standby('pg-2'), { state: s, views: alive })).take, false);
});

test('synchronous mode: only a standby recorded as holding every acknowledged commit may take over, however much WAL others have', () => {
  const s = state({ sync_nodes: ['pg-3'], primary_lsn: '0/3000000' });
  const views = [view('pg-1', undefined, { reachable: false }), view('pg-2', '0/3000100'), view('pg-3', '0/3000000')];
  assert.equal(mayTakeFreeLease(input(standby('pg-2'), { state: s, views, synchronous: true })).take, false);
  assert.equal(mayTakeFreeLease(input(standby('pg-3'), { state: s, views, synchronous: true })).take, true);
  // the safe standby is gone as well: no promotion anywhere
  const gone = [view('pg-1', undefined, { reachable: false }), view('pg-2', '0/3000100'), view('pg-3', undefined, { reachable: false })];
  const d = mayTakeFreeLease(input(standby('pg-2'), { state: s, views: gone, synchronous: true }));
  assert.equal(d.take, false);
  assert.match(d.reason, /only pg-3 holds every acknowledged commit/);
});

test('a standby fed only by a base backup stream (never streamed as a replica) is not a candidate (regression: counted as caught up)', () => {
  const s = state({ primary_lsn: '0/3000000' });
  const views = [view('pg-1', undefined, { reachable: false }), view('pg-2', '0/3000000', { streamed: false })];
  const d = mayTakeFreeLease(input(standby('pg-2'), { state: s, views }));
  assert.equal(d.take, false);
});

test('asynchronous mode bounds the loss by max_lag_on_failover', () => {
  const s = state({ primary_lsn: '0/9000000' });
  const views = [view('pg-1', undefined, { reachable: false }), view('pg-2', '0/1000000')];
  const d = mayTakeFreeLease(input(standby('pg-2'), { state: s, views }));
  assert.equal(d.take, false);
  assert.match(d.reason, /more than max_lag_on_failover/);
});

test('a planned handover names the one member that may take the lease, until it times out', () => {
  const s = state({ handover_to: 'pg-3', updated_at: 1000, primary_lsn: '0/3' });
  const views = [view('pg-1', undefined, { reachable: false }), view('pg-2', '0/3'), view('pg-3', '0/3')];
  assert.equal(mayTakeFreeLease(input(standby('pg-2'), { state: s, views })).take, false);
  const d = mayTakeFreeLease(input(standby('pg-3'), { state: s, views }));
  assert.equal(d.take && d.as, 'handover');
  // 15 s later without a leader: back to a normal election (pg-2 sorts first among equals)
  const late = mayTakeFreeLease(input(standby('pg-2'), { state: s, views, now: 1000 + 16_000 }));
  assert.equal(late.take && late.as, 'takeover');
});

test('followers: a second primary is fenced; empty nodes clone; fenced former primaries rewind; standbys repoint', () => {
  const s = state({ primary: 'pg-2' });
  const base = { following: 'pg-2', fenced: false, state: s, leaderExists: true, primaryReachable: true };
  assert.equal(followAction({ ...base, me: { node: 'pg-1', initialized: true, standbyConfigured: false, running: true, primary: true } }).do, 'fence');
  assert.equal(followAction({ ...base, me: fresh('pg-3') }).do, 'clone');
  assert.equal(followAction({ ...base, fenced: true, me: { ...standby('pg-1'), running: false } }).do, 'rewind');
  assert.equal(followAction({ ...base, me: { node: 'pg-1', initialized: true, standbyConfigured: false, running: false, primary: false } }).do, 'rewind');
  assert.equal(followAction({ ...base, me: { ...standby('pg-3'), running: false } }).do, 'start');
  assert.equal(followAction({ ...base, following: 'pg-1', me: standby('pg-3') }).do, 'repoint');
  assert.equal(followAction({ ...base, me: standby('pg-3') }).do, 'nothing');
  // nothing is done against a primary that does not answer (a clone or rewind needs it)
  assert.equal(followAction({ ...base, primaryReachable: false, me: fresh('pg-3') }).do, 'nothing');
  // without a leader, a running primary is left alone here (the election decides)
  assert.equal(followAction({ ...base, leaderExists: false, me: { node: 'pg-1', initialized: true, standbyConfigured: false, running: true, primary: true } }).do, 'nothing');
});
