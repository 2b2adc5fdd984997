import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../core/clock.js';
import { EventBus, type BulwarkEvents } from '../core/events.js';
import { createLogger } from '../core/logger.js';
import { Registry } from 'prom-client';
import type { BulwarkConfig } from '../core/config/schema.js';
import { configSchema } from '../core/config/schema.js';
import type { StateStore, SubsystemDeps } from '../core/subsystem.js';
import { NodeMachine } from './machine.js';
import { Health } from './index.js';
import type { ProbeResult } from './probes.js';

const T0 = 1_000_000;

test('rise/fall hysteresis: unknown -> up after rise passes, up -> down after fall failures, isolated failures do nothing', () => {
  const m = new NodeMachine({ pull: true, rise: 2, fall: 3, heartbeatTtl: undefined }, T0);
  assert.equal(m.state, 'unknown');
  assert.equal(m.probe(true, 'ok', T0 + 1), undefined);
  const up = m.probe(true, 'ok', T0 + 2);
  assert.equal(up?.from, 'unknown');
  assert.equal(up?.to, 'up');
  assert.equal(m.probe(false, 'http 500', T0 + 3), undefined);
  assert.equal(m.probe(false, 'http 500', T0 + 4), undefined);
  assert.equal(m.probe(true, 'ok', T0 + 5), undefined, 'a success resets the failure streak');
  assert.equal(m.state, 'up');
  assert.equal(m.probe(false, 'a', T0 + 6), undefined);
  assert.equal(m.changing, true, 'a node with a failure streak is changing state');
  assert.equal(m.probe(false, 'b', T0 + 7), undefined);
  const down = m.probe(false, 'http 500 from /health (expected 200)', T0 + 8);
  assert.equal(down?.to, 'down');
  assert.equal(down?.failingSince, T0 + 6, 'detection time starts at the first failure of the streak');
  assert.match(down?.reason ?? '', /3 consecutive probes failed \(http 500/);
  assert.equal(m.changing, false);
  assert.equal(m.probe(true, 'ok', T0 + 9), undefined, 'one pass is not enough to rise');
  assert.equal(m.probe(true, 'ok', T0 + 10)?.to, 'up');
});

/** A deterministic PRNG (mulberry32) so the 5% failure pattern is reproducible. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a |= 0;
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('5% random probe failures over 2000 probes cause no down transition with fall: 3', () => {
  for (const seed of [1, 2, 3]) {
    const rnd = mulberry32(seed);
    const m = new NodeMachine({ pull: true, rise: 2, fall: 3, heartbeatTtl: undefined }, T0);
    let failures = 0;
    const transitions: string[] = [];
    for (let i = 0; i < 2000; i++) {
      const ok = rnd() >= 0.05;
      if (!ok) failures++;
      const t = m.probe(ok, ok ? 'ok' : 'random failure', T0 + i);
      if (t) transitions.push(t.to);
    }
    assert.ok(failures > 50, `the sequence has failures (${failures})`);
    assert.deepEqual(transitions, ['up'], `seed ${seed}: only the initial rise`);
  }
});

test('heartbeat TTL: no beat within the TTL marks down; a beat brings it back; either source down means down', () => {
  const m = new NodeMachine({ pull: true, rise: 1, fall: 1, heartbeatTtl: 3000 }, T0);
  assert.equal(m.probe(true, 'ok', T0 + 10), undefined, 'probe up, heartbeat unknown: still unknown');
  assert.equal(m.heartbeat('up', '', T0 + 100)?.to, 'up');
  assert.equal(m.tick(T0 + 3100), undefined, 'exactly at the deadline is not late');
  const late = m.tick(T0 + 3101);
  assert.equal(late?.to, 'down');
  assert.match(late?.reason ?? '', /heartbeat late by 3001 ms \(TTL 3000 ms\)/);
  assert.equal(m.probe(true, 'ok', T0 + 3200), undefined, 'probes passing do not override a late heartbeat');
  assert.equal(m.heartbeat('up', '', T0 + 3300)?.to, 'up');
  assert.equal(m.heartbeat('down', 'maintenance', T0 + 3400)?.to, 'down');
  assert.equal(m.heartbeat('up', '', T0 + 3500)?.to, 'up');
  assert.equal(m.probe(false, 'ECONNREFUSED', T0 + 3600)?.to, 'down', 'probe down wins over a fresh heartbeat');
});

test('configure() keeps state and streaks across a reload', () => {
  const m = new NodeMachine({ pull: true, rise: 2, fall: 2, heartbeatTtl: undefined }, T0);
  m.probe(true, 'ok', T0);
  m.probe(true, 'ok', T0 + 1);
  assert.equal(m.state, 'up');
  assert.equal(m.configure({ pull: true, rise: 5, fall: 5, heartbeatTtl: undefined }, T0 + 2), undefined);
  assert.equal(m.state, 'up');
});

class MemoryStore implements StateStore {
  rows: unknown[][] = [];
  run(_sql: string, ...params: unknown[]): { changes: number; lastInsertRowid: number } {
    this.rows.push(params);
    return { changes: 1, lastInsertRowid: this.rows.length };
  }
  all<T>(): T[] {
    return [];
  }
  get<T>(): T | undefined {
    return undefined;
  }
  transaction<T>(fn: () => T): T {
    return fn();
  }
}

function deps(config: BulwarkConfig, clock: FakeClock, store: StateStore): SubsystemDeps {
  return { config, baseDir: process.cwd(), events: new EventBus(), logger: createLogger({ level: 'silent' }), clock, metrics: new Registry(), store };
}

test('scheduler (FakeClock): probes at the interval, faster while changing, records transitions, heartbeat expiry marks down', async () => {
  const clock = new FakeClock(T0);
  // The in-memory store stands in for SQLite here only to observe the INSERTs without disk; the real store is used in health.test.ts.
  const store = new MemoryStore();
  const config = configSchema.parse({
    services: {
      web: {
        listen: '127.0.0.1:0',
        backends: [{ name: 'a', address: '127.0.0.1:1' }],
        health: { tcp: {}, interval: '1s', fast_interval: '200ms', jitter: 0, rise: 2, fall: 2 },
        heartbeat: { ttl: '3s' },
      },
    },
  });
  const results: boolean[] = [];
  const probeTimes: number[] = [];
  let next = true;
  const d = deps(config, clock, store);
  const seen: Array<BulwarkEvents['health.transition']> = [];
  d.events.on('health.transition', (t) => seen.push(t));
  const h = new Health(d, {
    random: () => 0,
    prober: async (): Promise<ProbeResult> => {
      probeTimes.push(clock.now());
      results.push(next);
      return { ok: next, detail: next ? 'tcp connect' : 'tcp ECONNREFUSED' };
    },
  });
  await h.start();
  const step = async (ms: number): Promise<void> => {
    for (let i = 0; i < ms; i += 50) {
      clock.advance(50);
      await new Promise((r) => setImmediate(r));
    }
  };
  await step(1000);
  // First probe at 0, second after the fast interval (a pass while unknown is "changing"), then normal interval.
  assert.deepEqual(probeTimes.map((t) => t - T0), [0, 200]);
  const beat = (): Promise<unknown> => (h.routes()[0] as unknown as { handle: (c: unknown) => Promise<unknown> }).handle({ params: { service: 'web', node: 'a' }, body: async () => undefined });
  assert.equal(h.state('web', 'a'), 'unknown', 'probes pass but no heartbeat yet');
  await beat();
  assert.equal(h.state('web', 'a'), 'up');
  next = false;
  await step(1600);
  assert.equal(h.state('web', 'a'), 'down');
  const gaps = probeTimes.slice(1).map((t, i) => t - (probeTimes[i] as number));
  assert.ok(gaps.includes(1000) && gaps.includes(200), `intervals used: ${gaps.join(',')}`);
  next = true;
  await beat();
  await step(1200);
  assert.equal(h.state('web', 'a'), 'up', 'rises again after rise passes (heartbeat fresh)');
  await step(2000);
  assert.equal(h.state('web', 'a'), 'down', 'no heartbeat for more than the 3s TTL');
  assert.match(seen.at(-1)?.reason ?? '', /heartbeat late/);
  assert.deepEqual(
    seen.map((t) => t.to),
    ['up', 'down', 'up', 'down'],
  );
  assert.equal(store.rows.length, 4, 'every transition recorded');
  await h.stop();
  assert.equal(clock.pending, 0, 'stop cancels every timer');
});
