import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backend, Pool, type Balance, type PoolOptions } from './pool.js';

const T0 = 1_000_000;
const passive = { enabled: true, consecutiveFailures: 2, count5xx: false, baseEjection: 1000, maxEjection: 8000, maxEjectedShare: 0.5 };

function pool(opts: Partial<PoolOptions> & { backends: Array<[string, number?, boolean?]> }, random?: () => number): Pool {
  const p = new Pool({ mode: 'active-active', balance: 'round-robin', failbackDelay: 5000, slowStart: 0, passive, ...opts }, random);
  for (const [name, weight = 1, standby = false] of opts.backends) p.add(new Backend(name, `127.0.0.1:1`, '127.0.0.1', 1, weight, standby, T0, undefined));
  return p;
}

function counts(p: Pool, n: number, now = T0, exclude = 0): Record<string, number> {
  const c: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const b = p.pick(now, exclude);
    const k = b?.name ?? 'none';
    c[k] = (c[k] ?? 0) + 1;
  }
  return c;
}

test('round-robin follows weights smoothly and skips down backends', () => {
  const p = pool({ backends: [['a', 1], ['b', 2], ['c', 1]] });
  assert.deepEqual(counts(p, 400), { a: 100, b: 200, c: 100 });
  const seq = Array.from({ length: 4 }, () => p.pick(T0)?.name).join('');
  assert.equal(seq.length, 4);
  assert.notEqual(seq[0], seq[1], 'smooth: never the same backend twice in a row at these weights');
  p.setHealth(p.find('b') as Backend, 'down', T0);
  assert.deepEqual(counts(p, 100), { a: 50, c: 50 });
  p.setHealth(p.find('a') as Backend, 'down', T0);
  p.setHealth(p.find('c') as Backend, 'down', T0);
  assert.equal(p.pick(T0), undefined, 'nothing usable');
});

test('least-request prefers the backend with fewer requests in flight; exclusion masks skip tried backends', () => {
  const p = pool({ balance: 'least-request', backends: [['a'], ['b'], ['c']] });
  (p.find('a') as Backend).inFlight = 5;
  (p.find('b') as Backend).inFlight = 1;
  (p.find('c') as Backend).inFlight = 3;
  assert.equal(p.pick(T0)?.name, 'b');
  assert.equal(p.pick(T0, 1 << (p.find('b') as Backend).index)?.name, 'c');
  assert.equal(p.pick(T0, 0b111), undefined);
});

test('random-two picks the less loaded of two distinct random choices', () => {
  let i = 0;
  const seq = [0.0, 0.99, 0.5, 0.0];
  const p = pool({ balance: 'random-two' as Balance, backends: [['a'], ['b'], ['c']] }, () => seq[i++ % seq.length] as number);
  (p.find('a') as Backend).inFlight = 9;
  (p.find('c') as Backend).inFlight = 0;
  // first choice index 0 (a), second floor(0.99*2)=1 -> shifted past a -> index 2 (c): c is less loaded
  assert.equal(p.pick(T0)?.name, 'c');
  const q = pool({ balance: 'random-two', backends: [['a'], ['b'], ['c']] });
  const c = counts(q, 3000);
  assert.ok((c['a'] ?? 0) > 0 && (c['b'] ?? 0) > 0 && (c['c'] ?? 0) > 0, JSON.stringify(c));
});

test('active-passive: standby idle while a primary is usable, takes over at once, fails back only after the damping', () => {
  const p = pool({ mode: 'active-passive', failbackDelay: 5000, backends: [['primary'], ['standby', 1, true]] });
  const primary = p.find('primary') as Backend;
  assert.deepEqual(counts(p, 50, T0), { primary: 50 });
  p.setHealth(primary, 'down', T0 + 10);
  assert.deepEqual(counts(p, 50, T0 + 10), { standby: 50 });
  p.setHealth(primary, 'up', T0 + 1000);
  p.touch(T0 + 1000);
  assert.deepEqual(counts(p, 20, T0 + 1000), { standby: 20 }, 'no failback before the damping period');
  assert.deepEqual(counts(p, 20, T0 + 5999), { standby: 20 });
  assert.deepEqual(counts(p, 20, T0 + 6000), { primary: 20 }, 'failback once the primary has been up for failback_delay');
  // A flapping primary restarts the damping.
  p.setHealth(primary, 'down', T0 + 7000);
  assert.equal(p.pick(T0 + 7000)?.name, 'standby');
  p.setHealth(primary, 'up', T0 + 7100);
  assert.equal(p.pick(T0 + 7100)?.name, 'standby');
  p.setHealth(primary, 'down', T0 + 7200);
  assert.equal(p.pick(T0 + 7200)?.name, 'standby');
  p.setHealth(primary, 'up', T0 + 7300);
  assert.equal(p.pick(T0 + 12_200)?.name, 'standby', 'damping counts from the last return, not the first');
  assert.equal(p.pick(T0 + 12_300)?.name, 'primary');
  // A retry that excluded the primary may go to the standby.
  assert.equal(p.pick(T0 + 12_400, 1 << primary.index)?.name, 'standby');
});

test('outlier ejection: consecutive failures eject with exponential backoff; a success resets the streak', () => {
  const p = pool({ backends: [['a'], ['b'], ['c'], ['d']] });
  const a = p.find('a') as Backend;
  assert.equal(p.failure(a, 'ECONNREFUSED', T0), undefined);
  p.success(a);
  assert.equal(p.failure(a, 'ECONNREFUSED', T0 + 1), undefined, 'streak reset by the success');
  const d1 = p.failure(a, 'ECONNREFUSED', T0 + 5);
  assert.equal(d1?.ejected, true);
  assert.equal(d1?.until, T0 + 5 + 1000);
  assert.equal(d1?.detectionMs, 4);
  assert.equal(a.usable(T0 + 500), false);
  assert.equal(a.usable(T0 + 1005), true, 'returns when the ejection ends');
  p.failure(a, 'ECONNRESET', T0 + 2000);
  assert.equal(p.failure(a, 'ECONNRESET', T0 + 2001)?.until, T0 + 2001 + 2000, 'second ejection doubles');
  p.failure(a, 'x', T0 + 5000);
  p.failure(a, 'x', T0 + 5001);
  p.failure(a, 'x', T0 + 10_000);
  assert.equal(p.failure(a, 'x', T0 + 10_001)?.until, T0 + 10_001 + 8000, 'capped at max_ejection');
});

test('outlier ejection never takes more than max_ejected_percent of the pool and says so', () => {
  const p = pool({ backends: [['a'], ['b'], ['c'], ['d']] });
  const [a, b, c] = ['a', 'b', 'c'].map((n) => p.find(n) as Backend) as [Backend, Backend, Backend];
  p.failure(a, 'x', T0);
  assert.equal(p.failure(a, 'x', T0)?.ejected, true);
  p.failure(b, 'x', T0);
  assert.equal(p.failure(b, 'x', T0)?.ejected, true);
  p.failure(c, 'x', T0);
  const refused = p.failure(c, 'x', T0);
  assert.equal(refused?.ejected, false);
  assert.equal(refused?.capped, true);
  assert.match(refused?.reason ?? '', /2 of 4 backends already ejected/);
  assert.equal(c.usable(T0), true);
});

test('slow start ramps a returning backend from 10% of its weight', () => {
  const p = pool({ balance: 'round-robin', slowStart: 10_000, backends: [['a'], ['b']] });
  const a = p.find('a') as Backend;
  const b = p.find('b') as Backend;
  b.upSince = T0 - 20_000;
  p.setHealth(a, 'down', T0);
  p.setHealth(a, 'up', T0);
  const early = counts(p, 1100, T0 + 1);
  assert.ok((early['a'] ?? 0) < 150, `a gets ~10% right after returning: ${JSON.stringify(early)}`);
  const later = counts(p, 1000, T0 + 20_000);
  assert.deepEqual(later, { a: 500, b: 500 });
});

test('draining backends take no new requests', () => {
  const p = pool({ backends: [['a'], ['b']] });
  (p.find('a') as Backend).draining = true;
  assert.deepEqual(counts(p, 10), { b: 10 });
});

test('outlier ejection: the backoff is forgotten after a backend has stayed in rotation longer than max_ejection (health never marked it down)', () => {
  const p = pool({ backends: [['a'], ['b'], ['c'], ['d']] });
  const a = p.find('a') as Backend;
  p.failure(a, 'x', T0);
  assert.equal(p.failure(a, 'x', T0)?.until, T0 + 1000);
  p.failure(a, 'x', T0 + 2000);
  assert.equal(p.failure(a, 'x', T0 + 2000)?.until, T0 + 2000 + 2000, 'a relapse soon after doubles');
  // An hour of good service later (no health transition in between), a new incident starts from base_ejection.
  const later = T0 + 3_600_000;
  p.failure(a, 'x', later);
  assert.equal(p.failure(a, 'x', later)?.until, later + 1000);
});
