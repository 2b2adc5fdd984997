// The grouper: a flapping node sends one message per group interval, not one per flap; a blip
// that resolved before anyone was told sends nothing; a resolution follows a sent firing; a
// still-firing incident is repeated after repeat_interval; an unchanged state is not re-sent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../core/clock.js';
import { Grouper, type Notification } from './grouper.js';
import { fromHealth, type Incident } from './incidents.js';

const TIMES = { group_wait: 5000, group_interval: 60_000, repeat_interval: 4 * 3600_000 };

function setup(): { clock: FakeClock; g: Grouper; sent: Notification[]; node: (to: 'up' | 'down', from?: 'up' | 'down') => void } {
  const clock = new FakeClock();
  const sent: Notification[] = [];
  const g = new Grouper(clock, TIMES, (n) => sent.push(n));
  const node = (to: 'up' | 'down', from: 'up' | 'down' = to === 'up' ? 'down' : 'up'): void => {
    g.add(fromHealth({ service: 'web', node: 'b1', from, to, reason: 'probe', at: clock.now() }) as Incident);
  };
  return { clock, g, sent, node };
}

test('a node that flaps twenty times within the group interval sends two messages, not forty', () => {
  const { clock, sent, node } = setup();
  node('down');
  clock.advance(5000);
  assert.equal(sent.length, 1, 'the first down is sent after group_wait');
  assert.equal(sent[0]?.incident.kind, 'node.down');
  for (let i = 0; i < 20; i++) {
    clock.advance(1000);
    node('up');
    clock.advance(1000);
    node('down');
  }
  assert.equal(sent.length, 1, 'nothing more within the group interval');
  clock.advance(60_000);
  // It ended down, as the last message said: nothing new to say.
  assert.equal(sent.length, 1);
  node('up');
  clock.advance(60_000);
  assert.equal(sent.length, 2);
  assert.equal(sent[1]?.incident.kind, 'node.up');
  assert.equal(sent[1]?.incident.state, 'resolved');
});

test('a flap that ends in another state than the last message is summarised in one message', () => {
  const { clock, sent, node } = setup();
  node('down');
  clock.advance(5000);
  node('up');
  node('down');
  node('up');
  clock.advance(60_000);
  assert.equal(sent.length, 2);
  assert.equal(sent[1]?.count, 3);
  assert.deepEqual(sent[1]?.kinds, ['node.up', 'node.down', 'node.up']);
});

test('a blip that resolves within group_wait notifies no one', () => {
  const { clock, sent, node } = setup();
  node('down');
  clock.advance(1000);
  node('up');
  clock.advance(10_000);
  assert.equal(sent.length, 0);
});

test('a resolution of an incident never sent is dropped; one of a sent incident is delivered', () => {
  const { clock, sent, node } = setup();
  node('up');
  clock.advance(10_000);
  assert.equal(sent.length, 0, 'node.up with no node.down before it');
  node('down');
  clock.advance(5000);
  node('up');
  clock.advance(60_000);
  assert.deepEqual(sent.map((n) => n.incident.kind), ['node.down', 'node.up']);
});

test('a still-firing incident is sent again after repeat_interval, and not after it resolved', () => {
  const { clock, sent, node } = setup();
  node('down');
  clock.advance(5000);
  clock.advance(TIMES.repeat_interval);
  assert.equal(sent.length, 2);
  assert.equal(sent[1]?.repeat, true);
  node('up');
  clock.advance(60_000);
  assert.equal(sent.length, 3);
  clock.advance(TIMES.repeat_interval * 2);
  assert.equal(sent.length, 3, 'no reminder of a resolved incident');
});

test('one-shot incidents (failovers) are each sent, batched within the group interval, never repeated', () => {
  const clock = new FakeClock();
  const sent: Notification[] = [];
  const g = new Grouper(clock, TIMES, (n) => sent.push(n));
  const failover = (): Incident => ({ kind: 'db.failover', severity: 'critical', state: 'firing', subject: 'main', key: 'db.failover:main', one_shot: true, message: 'failover', at: clock.now() });
  g.add(failover());
  clock.advance(5000);
  g.add(failover());
  g.add(failover());
  clock.advance(60_000);
  assert.equal(sent.length, 2);
  assert.equal(sent[1]?.count, 2);
  clock.advance(TIMES.repeat_interval * 2);
  assert.equal(sent.length, 2);
});

test('different keys are grouped apart', () => {
  const clock = new FakeClock();
  const sent: Notification[] = [];
  const g = new Grouper(clock, TIMES, (n) => sent.push(n));
  g.add(fromHealth({ service: 'web', node: 'b1', from: 'up', to: 'down', reason: 'x', at: 0 }) as Incident);
  g.add(fromHealth({ service: 'web', node: 'b2', from: 'up', to: 'down', reason: 'x', at: 0 }) as Incident);
  clock.advance(5000);
  assert.deepEqual(sent.map((n) => n.incident.subject).sort(), ['web/b1', 'web/b2']);
});
