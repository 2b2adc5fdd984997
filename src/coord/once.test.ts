// Tests of once-only scheduled work: the pure slot decision, and the scheduler on a real etcd
// (loopback) with several instances: only the lease holder runs a slot, a slot interrupted by
// its runner's death runs again on the next holder, a slot another live instance is running is
// left to it, a gap while no one held the lease is caught up once (not once per missed slot), an
// ineligible instance never runs the job, and a graceful stop hands the job over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../core/clock.js';
import { waitFor } from '../testing/helpers.js';
import { EtcdCoordination } from './etcd.js';
import { startEtcd, type TestEtcd } from './etcd.testkit.js';
import { Membership } from './members.js';
import { decideSlot, OnceScheduler, parseSlotRecord, type OnceTask, type SlotRecord } from './once.js';

const rec = (slot: number, state: SlotRecord['state'], by: string): SlotRecord => ({ slot, state, by, at: 0 });

test('decideSlot: a first record is a baseline (nothing old is run); no due slot, nothing', () => {
  assert.deepEqual(decideSlot(undefined, 100, 'a', new Set(), false), { action: 'baseline', slot: 100 });
  assert.deepEqual(decideSlot(undefined, undefined, 'a', new Set(), false), { action: 'none' });
});

test('decideSlot: a done slot is not run again; a newer due slot is', () => {
  assert.deepEqual(decideSlot(rec(100, 'done', 'b'), 100, 'a', new Set(), false), { action: 'none' });
  assert.deepEqual(decideSlot(rec(100, 'done', 'b'), 200, 'a', new Set(), false), { action: 'run', slot: 200, why: 'due' });
});

test('decideSlot: a slot started by a live instance is left to it; by a dead one it is run again', () => {
  assert.equal(decideSlot(rec(100, 'started', 'b'), 100, 'a', new Set(['a', 'b']), false).action, 'wait');
  assert.deepEqual(decideSlot(rec(100, 'started', 'b'), 100, 'a', new Set(['a']), false), { action: 'run', slot: 100, why: 'interrupted' });
  // started by this instance before it restarted: run again
  assert.deepEqual(decideSlot(rec(100, 'started', 'a'), 100, 'a', new Set(['a']), false), { action: 'run', slot: 100, why: 'interrupted' });
  // an interrupted old slot and a newer one due: one run, of the newer slot
  assert.deepEqual(decideSlot(rec(100, 'started', 'b'), 300, 'a', new Set(['a']), false), { action: 'run', slot: 300, why: 'catch-up' });
});

test('decideSlot: nothing while this instance is running the job', () => {
  assert.deepEqual(decideSlot(rec(100, 'done', 'a'), 200, 'a', new Set(), true), { action: 'none' });
});

test('parseSlotRecord: garbage is no record', () => {
  assert.equal(parseSlotRecord('{"slot":"x"}'), undefined);
  assert.equal(parseSlotRecord('nope'), undefined);
  assert.equal(parseSlotRecord(undefined), undefined);
  assert.deepEqual(parseSlotRecord(JSON.stringify(rec(5, 'done', 'a'))), rec(5, 'done', 'a'));
});

/** Slots the test moves by hand: latest() is the newest slot released so far. */
class Slots {
  released: number[] = [];
  latest = (now: number): number | undefined => this.released.filter((s) => s <= now).at(-1);
  next = (now: number): number => now + 60_000;
  release(slot: number): void {
    this.released.push(slot);
  }
}

interface Instance {
  name: string;
  coord: EtcdCoordination;
  member: Membership;
  sched: OnceScheduler;
  runs: Array<{ slot: number; why: string }>;
  /** Resolves the run in flight (tests hold runs open to stand for a long job). */
  finish: () => void;
}

async function instance(etcd: TestEtcd, name: string, slots: Slots, opts: { eligible?: boolean; hold?: boolean } = {}): Promise<Instance> {
  const coord = new EtcdCoordination({ endpoints: [etcd.endpoint], prefix: '/once-test', ttlMs: 2000, identity: name, clock: systemClock });
  const member = new Membership({ kv: coord.kv, clock: systemClock, everyMs: 60_000, health: () => ({ subsystems: 0, errors: [] }), self: { name, api: '127.0.0.1:1', version: 't', started_at: 0, pid: 0 } });
  await member.start();
  const runs: Instance['runs'] = [];
  let release: () => void = () => undefined;
  const task: OnceTask = {
    key: 'jobs/plan/app/backup',
    latest: slots.latest,
    next: slots.next,
    busy: () => false,
    run: (slot, why) => {
      runs.push({ slot, why });
      if (!opts.hold) return Promise.resolve();
      return new Promise<void>((r) => (release = r));
    },
  };
  const sched = new OnceScheduler({ coordination: coord, leaseName: 'job/plan/app', clock: systemClock, tasks: [task], eligible: opts.eligible ?? true, pollMs: 100 });
  const inst: Instance = { name, coord, member, sched, runs, finish: () => release() };
  return inst;
}

async function record(i: Instance): Promise<SlotRecord | undefined> {
  return parseSlotRecord(await i.coord.kv.get('jobs/plan/app/backup'));
}

test('once: of two instances only the lease holder runs each slot, once; a new deployment runs nothing old', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const slots = new Slots();
  const now = Date.now();
  slots.release(now - 5000); // a slot before anyone ran: the baseline, not run
  const a = await instance(etcd, 'a', slots);
  const b = await instance(etcd, 'b', slots);
  t.after(async () => {
    await a.sched.stop();
    await b.sched.stop();
    await a.coord.close();
    await b.coord.close();
  });
  a.sched.start();
  b.sched.start();
  await waitFor(async () => (await record(a))?.baseline === true, { what: 'baseline record' });
  for (const s of [now + 1, now + 2, now + 3]) {
    slots.release(s);
    await waitFor(async () => {
      const r = await record(a);
      return r?.slot === s && r.state === 'done';
    }, { what: `slot ${s} done` });
  }
  const all = [...a.runs, ...b.runs];
  assert.deepEqual(all.map((r) => r.slot), [now + 1, now + 2, now + 3], 'each slot ran exactly once, the baseline slot never');
  assert.ok(a.runs.length === 0 || b.runs.length === 0, 'one holder ran them all');
});

test('once: the holder dies mid-run; the next holder runs the interrupted slot again (not lost), once', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const slots = new Slots();
  const now = Date.now();
  slots.release(now - 1000);
  const a = await instance(etcd, 'a', slots, { hold: true });
  t.after(async () => {
    await a.coord.close().catch(() => undefined);
  });
  a.sched.start();
  await waitFor(async () => (await record(a))?.baseline, { what: 'baseline' });
  const b = await instance(etcd, 'b', slots);
  t.after(async () => {
    await b.sched.stop();
    await b.coord.close();
  });
  b.sched.start();
  slots.release(now + 1);
  await waitFor(() => a.runs.length === 1, { what: 'a starts the slot' });
  assert.deepEqual(await record(a), { ...(await record(a)), slot: now + 1, state: 'started', by: 'a' });
  // a dies with the run unfinished: its etcd session (lease and member key) goes away
  await a.coord.close();
  await waitFor(() => b.runs.length === 1, { timeoutMs: 10_000, what: 'b reruns the interrupted slot' });
  assert.deepEqual(b.runs, [{ slot: now + 1, why: 'interrupted' }]);
  await waitFor(async () => (await record(b))?.state === 'done', { what: 'b records it done' });
  assert.equal((await record(b))?.by, 'b');
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(b.runs.length, 1, 'run once, not again');
});

test('once: a slot a live instance is still running is left to it; once that instance is gone the holder runs it', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const slots = new Slots();
  const now = Date.now();
  const b = await instance(etcd, 'b', slots);
  t.after(async () => {
    await b.sched.stop();
    await b.coord.close();
  });
  // a (alive, a member) started the slot and lost the lease meanwhile: the record says so
  const a = await instance(etcd, 'a', slots);
  t.after(() => a.coord.close());
  slots.release(now);
  await b.coord.kv.put('jobs/plan/app/backup', JSON.stringify(rec(now, 'started', 'a')));
  b.sched.start();
  await waitFor(() => b.sched.holder, { what: 'b holds the lease' });
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(b.runs, [], 'b waits for the live runner');
  assert.equal((await record(b))?.state, 'started');
  // once a is gone, b runs it
  await a.member.stop();
  await waitFor(() => b.runs.length === 1, { what: 'b runs the slot a left' });
  assert.deepEqual(b.runs, [{ slot: now, why: 'interrupted' }]);
});

test('once: slots missed while no one held the lease are caught up once, not once per slot', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const slots = new Slots();
  const now = Date.now();
  const a = await instance(etcd, 'a', slots);
  t.after(async () => {
    await a.sched.stop();
    await a.coord.close();
  });
  await a.coord.kv.put('jobs/plan/app/backup', JSON.stringify(rec(now - 10_000, 'done', 'old')));
  for (let i = 9; i >= 0; i--) slots.release(now - i * 1000);
  a.sched.start();
  await waitFor(async () => (await record(a))?.slot === now && (await record(a))?.state === 'done', { what: 'catch-up recorded' });
  await new Promise((r) => setTimeout(r, 400));
  assert.deepEqual(a.runs, [{ slot: now, why: 'due' }]);
});

test('once: an ineligible instance (a plan pinned elsewhere) never takes the lease nor runs; the eligible one does', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const slots = new Slots();
  const now = Date.now();
  slots.release(now - 1);
  const a = await instance(etcd, 'a', slots, { eligible: false });
  a.sched.start();
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(a.sched.holder, false);
  assert.equal(await record(a), undefined, 'no record written by the ineligible instance');
  const b = await instance(etcd, 'b', slots);
  t.after(async () => {
    await a.sched.stop();
    await b.sched.stop();
    await a.coord.close();
    await b.coord.close();
  });
  b.sched.start();
  await waitFor(async () => (await record(b))?.baseline, { what: 'b baselines' });
  slots.release(now + 1);
  await waitFor(() => b.runs.length === 1, { what: 'b runs' });
  assert.deepEqual(a.runs, []);
});

test('once: a graceful stop of the holder hands the job to the other instance at once', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const slots = new Slots();
  const now = Date.now();
  slots.release(now - 1);
  const a = await instance(etcd, 'a', slots);
  a.sched.start();
  await waitFor(() => a.sched.holder, { what: 'a holds' });
  const b = await instance(etcd, 'b', slots);
  t.after(async () => {
    await b.sched.stop();
    await b.coord.close();
  });
  b.sched.start();
  await a.sched.stop();
  await a.coord.close();
  await waitFor(() => b.sched.holder, { timeoutMs: 1500, what: 'b takes over well within a TTL' });
  slots.release(now + 1);
  await waitFor(() => b.runs.length === 1, { what: 'b runs the next slot' });
  assert.deepEqual(a.runs, []);
});
