import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from './clock.js';
import { EventBus } from './events.js';

test('FakeClock fires due timers in time order and only when advanced', () => {
  const c = new FakeClock(1000);
  const fired: string[] = [];
  c.setTimeout(() => fired.push('b'), 200);
  c.setTimeout(() => fired.push('a'), 100);
  const t = c.setTimeout(() => fired.push('cancelled'), 150);
  t.cancel();
  c.advance(99);
  assert.deepEqual(fired, []);
  c.advance(1);
  assert.deepEqual(fired, ['a']);
  assert.equal(c.now(), 1100);
  c.advance(500);
  assert.deepEqual(fired, ['a', 'b']);
  assert.equal(c.now(), 1600);
  assert.equal(c.pending, 0);
});

test('FakeClock timers scheduled by timers run within the same advance', () => {
  const c = new FakeClock(0);
  const at: number[] = [];
  const tick = (): void => {
    at.push(c.now());
    if (at.length < 5) c.setTimeout(tick, 10);
  };
  c.setTimeout(tick, 10);
  c.advance(100);
  assert.deepEqual(at, [10, 20, 30, 40, 50]);
});

test('EventBus delivers typed payloads and isolates a failing listener', () => {
  const errors: string[] = [];
  const bus = new EventBus((event) => errors.push(event));
  const seen: string[] = [];
  bus.on('config.reloaded', () => {
    throw new Error('boom');
  });
  const off = bus.on('config.reloaded', (e) => seen.push(String(e.at)));
  bus.emit('config.reloaded', { at: 5 });
  off();
  bus.emit('config.reloaded', { at: 6 });
  assert.deepEqual(seen, ['5']);
  assert.deepEqual(errors, ['config.reloaded', 'config.reloaded']);
});
