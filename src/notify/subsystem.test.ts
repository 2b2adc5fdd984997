// The notify subsystem on a real bus with a real webhook receiver: a backend that goes down and
// flaps sends one message; a failed delivery is a notify.failed event and counted; notify.* events
// never notify (no loop).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { FakeClock } from '../core/clock.js';
import { configSchema } from '../core/config/schema.js';
import { EventBus } from '../core/events.js';
import { silentLogger } from '../core/logger.js';
import type { StateStore } from '../core/subsystem.js';
import { freePort, waitFor } from '../testing/helpers.js';
import { createNotify } from './subsystem.js';

const noStore = {} as StateStore;

test('a backend that goes down and flaps sends one webhook message; a dead receiver gives notify.failed', async () => {
  const bodies: string[] = [];
  const server = createServer((req, res) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString('utf8')));
    req.on('end', () => {
      bodies.push(b);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  const dead = `http://127.0.0.1:${await freePort()}/`;
  const config = configSchema.parse({
    notify: {
      channels: { hook: { type: 'webhook', url }, dead: { type: 'webhook', url: dead, attempts: 1 } },
      routes: [{ channels: ['hook'], kinds: ['node.*'] }, { channels: ['dead'], kinds: ['backup.*'] }],
      group_wait: '5s',
      group_interval: '1m',
    },
  });
  const clock = new FakeClock();
  const events = new EventBus();
  const audit: Array<{ kind: string; message: string }> = [];
  events.on('audit.event', (e) => audit.push(e));
  const metrics = new Registry();
  const n = createNotify({ config, baseDir: '.', events, logger: silentLogger(), clock, metrics, store: noStore });
  assert.ok(n);
  await n.start();
  try {
    const t = (from: 'up' | 'down', to: 'up' | 'down'): void => events.emit('health.transition', { service: 'web', node: 'b1', from, to, reason: 'probe failed', at: clock.now() });
    t('up', 'down');
    t('down', 'up');
    t('up', 'down');
    clock.advance(5000);
    await waitFor(() => bodies.length === 1 || undefined, { what: 'the webhook message' });
    for (let i = 0; i < 10; i++) {
      t('down', 'up');
      t('up', 'down');
    }
    clock.advance(120_000);
    events.emit('audit.event', { kind: 'notify.failed', subject: 'x', message: 'm', at: clock.now() });
    events.emit('backup.run', { plan: 'p', target: 't', kind: 'backup', ok: false, snapshot: undefined, bytes: 0, duration_ms: 1, message: 'disk full', at: clock.now() });
    clock.advance(5000);
    await waitFor(() => audit.find((e) => e.kind === 'notify.failed' && e.message.includes('backup.failed')), { what: 'notify.failed' });
    assert.equal(bodies.length, 1, 'one message for the flapping backend');
    const doc = JSON.parse(bodies[0] as string) as { kind: string; count: number };
    assert.equal(doc.kind, 'node.down');
    assert.equal(doc.count, 3);
    assert.ok(audit.some((e) => e.kind === 'notify.sent'));
    const text = await metrics.metrics();
    assert.match(text, /bulwark_notifications_total\{channel="hook",result="ok"\} 1/);
    assert.match(text, /bulwark_notifications_total\{channel="dead",result="failed"\} 1/);
  } finally {
    await n.stop();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('a backend ejected on live errors and then marked down by its probes is one message (node.down), not two', async () => {
  const sent: Array<{ kind: string; subject: string }> = [];
  const server = createServer((req, res) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString('utf8')));
    req.on('end', () => {
      sent.push(JSON.parse(b) as { kind: string; subject: string });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const config = configSchema.parse({ notify: { channels: { hook: { type: 'webhook', url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` } }, routes: [{ channels: ['hook'] }] } });
  const clock = new FakeClock();
  const events = new EventBus();
  const n = createNotify({ config, baseDir: '.', events, logger: silentLogger(), clock, metrics: new Registry(), store: noStore });
  assert.ok(n);
  await n.start();
  try {
    events.emit('proxy.outlier', { service: 'web', backend: 'b1', ejected: true, reason: '3 consecutive failures', until: clock.now() + 5000, at: clock.now() });
    clock.advance(1000);
    events.emit('health.transition', { service: 'web', node: 'b1', from: 'up', to: 'down', reason: 'probe failed', at: clock.now() });
    events.emit('proxy.outlier', { service: 'web', backend: 'b1', ejected: false, reason: 'ejection period ended', until: undefined, at: clock.now() });
    clock.advance(10_000);
    // Control: another backend's ejection alone is still sent.
    events.emit('proxy.outlier', { service: 'web', backend: 'b2', ejected: true, reason: '3 consecutive failures', until: clock.now() + 5000, at: clock.now() });
    clock.advance(10_000);
    await waitFor(() => sent.length >= 2 || undefined, { what: 'two messages' });
    assert.deepEqual(sent.map((s) => `${s.kind} ${s.subject}`).sort(), ['backend.ejected web/b2', 'node.down web/b1']);
  } finally {
    await n.stop();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('no notify section, or no channels: no subsystem', () => {
  const base = { baseDir: '.', events: new EventBus(), logger: silentLogger(), clock: new FakeClock(), metrics: new Registry(), store: noStore };
  assert.equal(createNotify({ ...base, config: configSchema.parse({}) }), undefined);
  assert.equal(createNotify({ ...base, config: configSchema.parse({ notify: {} }) }), undefined);
  assert.throws(() => configSchema.parse({ notify: { channels: {}, routes: [{ channels: ['nope'] }] } }), /no channel named 'nope'/);
});
