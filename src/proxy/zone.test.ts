// Tests of zone preference in the pool's choice (cluster mode): active-active picks among the
// backends of this instance's zone while one is usable, with every balancer; it falls back to
// other zones when they are all down, ejected, or already tried by a retry; without a local zone,
// or in active-passive mode, zones change nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backend, Pool, type Balance, type PoolOptions } from './pool.js';

const T0 = 1_000_000;
const passive = { enabled: true, consecutiveFailures: 2, count5xx: false, baseEjection: 1000, maxEjection: 8000, maxEjectedShare: 0.5 };

function pool(backends: Array<[name: string, zone: string | undefined, standby?: boolean]>, opts: Partial<PoolOptions> = {}, localZone?: string): Pool {
  let seed = 7;
  const random = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  const p = new Pool({ mode: 'active-active', balance: 'round-robin', failbackDelay: 5000, slowStart: 0, passive, ...opts }, random);
  for (const [name, zone, standby = false] of backends) {
    const b = new Backend(name, '127.0.0.1:1', '127.0.0.1', 1, 1, standby, T0, undefined);
    b.zone = zone;
    p.add(b);
  }
  p.localZone = localZone;
  return p;
}

function counts(p: Pool, n: number, exclude = 0): Record<string, number> {
  const c: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const k = p.pick(T0, exclude)?.name ?? 'none';
    c[k] = (c[k] ?? 0) + 1;
  }
  return c;
}

const THREE: Array<[string, string | undefined]> = [['a1', 'a'], ['b1', 'b'], ['a2', 'a'], ['x', undefined]];

for (const balance of ['round-robin', 'least-request', 'random-two'] as Balance[]) {
  test(`zones (${balance}): the local zone's backends take all traffic while one is usable`, () => {
    const p = pool(THREE, { balance }, 'a');
    const c = counts(p, 200);
    assert.deepEqual(Object.keys(c).sort(), ['a1', 'a2'], JSON.stringify(c));
    assert.ok((c['a1'] ?? 0) > 40 && (c['a2'] ?? 0) > 40, `both local backends share: ${JSON.stringify(c)}`);
  });

  test(`zones (${balance}): with the local zone down, other zones take the traffic`, () => {
    const p = pool(THREE, { balance }, 'a');
    p.setHealth(p.find('a1') as Backend, 'down', T0);
    assert.deepEqual(Object.keys(counts(p, 50)), ['a2']);
    p.setHealth(p.find('a2') as Backend, 'down', T0);
    assert.deepEqual(Object.keys(counts(p, 100)).sort(), ['b1', 'x']);
  });
}

test('zones: a retry that already tried every local backend goes to another zone', () => {
  const p = pool(THREE, {}, 'a');
  const tried = (1 << (p.find('a1') as Backend).index) | (1 << (p.find('a2') as Backend).index);
  assert.deepEqual(Object.keys(counts(p, 20, tried)).sort(), ['b1', 'x']);
});

test('zones: an ejected local backend is skipped like a down one', () => {
  const p = pool([['a1', 'a'], ['b1', 'b']], {}, 'a');
  (p.find('a1') as Backend).ejectedUntil = T0 + 1000;
  assert.deepEqual(counts(p, 10), { b1: 10 });
});

test('zones: no local zone (outside cluster mode, or an instance without zone) spreads over every backend', () => {
  const p = pool(THREE);
  assert.deepEqual(counts(p, 400), { a1: 100, b1: 100, a2: 100, x: 100 });
});

test('zones: a local zone without backends spreads over every backend', () => {
  const p = pool(THREE, {}, 'c');
  assert.deepEqual(counts(p, 400), { a1: 100, b1: 100, a2: 100, x: 100 });
});

test('zones: active-passive ignores zones (the primary tier keeps all traffic even in another zone)', () => {
  const p = pool([['primary', 'b'], ['standby', 'a', true]], { mode: 'active-passive' }, 'a');
  assert.deepEqual(counts(p, 10), { primary: 10 });
});
