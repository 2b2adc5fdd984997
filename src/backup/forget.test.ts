// Retention selection (pure), driven by a FakeClock: snapshots are "taken" as the clock advances.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../core/clock.js';
import { policyIsEmpty, selectForget, type ForgetCandidate } from './forget.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** One snapshot every `every` ms for `count` steps, advancing the fake clock. */
function history(clock: FakeClock, every: number, count: number, host = 'h', paths = ['/data']): ForgetCandidate[] {
  const out: ForgetCandidate[] = [];
  for (let i = 0; i < count; i++) {
    out.push({ id: `s${String(i).padStart(4, '0')}`, time: new Date(clock.now()).toISOString(), host, paths });
    clock.advance(every);
  }
  return out;
}

const kept = (d: ReturnType<typeof selectForget>): string[] => d.filter((x) => x.keep).map((x) => x.id).sort();

test('forget: keep-last N keeps exactly the N newest', () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const snaps = history(clock, HOUR, 10);
  const d = selectForget(snaps, { last: 3 }, new Date(clock.now()));
  assert.deepEqual(kept(d), ['s0007', 's0008', 's0009']);
  assert.equal(d.filter((x) => !x.keep).length, 7);
  assert.ok(d.filter((x) => !x.keep).every((x) => x.reasons.includes('matches no keep rule')));
});

test('forget: keep-daily keeps the newest snapshot of each of the N newest days', () => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 0, 30));
  const snaps = history(clock, 6 * HOUR, 20); // 4 per day, 5 days
  const d = selectForget(snaps, { daily: 3 }, new Date(clock.now()));
  // days 2026-01-05, 04, 03: the last of each day is index 19, 15, 11
  assert.deepEqual(kept(d), ['s0011', 's0015', 's0019']);
  assert.deepEqual(d.find((x) => x.id === 's0019')?.reasons, ['daily 2026-01-05']);
});

test('forget: hourly, weekly, monthly and yearly buckets combine and each snapshot says why it stays', () => {
  const clock = new FakeClock(Date.UTC(2024, 0, 1, 12));
  const snaps = history(clock, DAY, 800);
  const d = selectForget(snaps, { last: 1, weekly: 2, monthly: 3, yearly: 3 }, new Date(clock.now()));
  const newest = snaps.at(-1)?.id as string;
  const reasons = d.find((x) => x.id === newest)?.reasons ?? [];
  assert.ok(reasons.includes('last'));
  assert.ok(reasons.some((r) => r.startsWith('weekly')));
  assert.ok(reasons.some((r) => r.startsWith('monthly')));
  assert.ok(reasons.some((r) => r.startsWith('yearly')));
  // weekly: 2 (newest, and the last of the previous ISO week); monthly: 3 month-ends (one is newest);
  // yearly: 3 (newest + last of 2025 + last of 2024). Distinct snapshots:
  const k = kept(d);
  const byTime = new Map(snaps.map((s) => [s.id, s.time]));
  assert.ok(k.includes(snaps.find((s) => s.time.startsWith('2024-12-31'))?.id as string), 'last of 2024 kept (yearly)');
  assert.ok(k.includes(snaps.find((s) => s.time.startsWith('2025-12-31'))?.id as string), 'last of 2025 kept (yearly)');
  for (const id of k) assert.ok(byTime.get(id));
  assert.ok(k.length <= 1 + 2 + 3 + 3);
  assert.ok(k.length >= 5);
});

test('forget: keep-within keeps everything younger than the duration, measured from the clock', () => {
  const clock = new FakeClock(Date.UTC(2026, 5, 1));
  const snaps = history(clock, HOUR, 48);
  clock.advance(2 * HOUR); // now = 2h after the last one was due
  const d = selectForget(snaps, { withinMs: 12 * HOUR }, new Date(clock.now()));
  // the newest snapshot was taken 3h before now; 12h covers 10 snapshots (3h..12h old)
  assert.equal(kept(d).length, 10);
  assert.ok(d.filter((x) => x.keep).every((x) => x.reasons.includes('within')));
});

test('forget: groups by host and paths; each group keeps its own newest', () => {
  const clock = new FakeClock();
  const a = history(clock, HOUR, 3, 'a').map((s) => ({ ...s, id: `a${s.id}` }));
  const b = history(clock, HOUR, 3, 'b').map((s) => ({ ...s, id: `b${s.id}` }));
  const d = selectForget([...a, ...b], { last: 1 }, new Date(clock.now()));
  assert.deepEqual(kept(d), ['as0002', 'bs0002']);
});

test('forget: an empty policy is recognised (the CLI refuses it rather than forgetting everything)', () => {
  assert.equal(policyIsEmpty({}), true);
  assert.equal(policyIsEmpty({ last: 0 }), true);
  assert.equal(policyIsEmpty({ daily: 1 }), false);
});
