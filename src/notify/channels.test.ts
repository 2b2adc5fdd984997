// Every channel against a real receiver on loopback: a local HTTP server (webhook: body, HMAC
// signature, retries on 500, no retry on 400), a command hook (stdin, environment, arguments,
// failure on a non-zero exit), a local SMTP server (smtp-server) and Debian's Alertmanager (the
// alert is active, then resolved).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { createHmac } from 'node:crypto';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { systemClock } from '../core/clock.js';
import { BulwarkError } from '../core/errors.js';
import { notifySchema } from '../core/config/notify-schema.js';
import { freePort, scratchDir, waitFor } from '../testing/helpers.js';
import { buildChannel } from './channels.js';
import { toDocument, type NotificationDocument } from './message.js';
import type { Incident } from './incidents.js';

const incident: Incident = { kind: 'node.down', severity: 'critical', state: 'firing', subject: 'web/b1', key: 'node:web/b1', one_shot: false, message: 'web/b1 is down: connection refused', at: Date.UTC(2026, 0, 1) };
const doc = (over: Partial<Incident> = {}): NotificationDocument => toDocument({ incident: { ...incident, ...over }, count: 1, kinds: [incident.kind], first_at: incident.at, repeat: false });
const channelCfg = (c: unknown) => notifySchema.parse({ channels: { x: c } }).channels['x'] as NonNullable<ReturnType<typeof notifySchema.parse>['channels'][string]>;

async function receiver(answer: (n: number) => number): Promise<{ url: string; got: Array<{ headers: IncomingMessage['headers']; body: string }>; close: () => Promise<void> }> {
  const got: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.writeHead(answer(got.length)).end('answer');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got, close: () => new Promise((r) => server.close(() => r())) };
}

test('webhook: the JSON document arrives signed with HMAC-SHA256 of the body under the configured secret', async () => {
  const s = scratchDir();
  const rx = await receiver(() => 204);
  try {
    writeFileSync(join(s.dir, 'secret'), 'k3y\n');
    const ch = buildChannel('x', channelCfg({ type: 'webhook', url: rx.url, secret_file: 'secret' }), { clock: systemClock, baseDir: s.dir });
    const d = doc();
    await ch.send(d, incident.key);
    assert.equal(rx.got.length, 1);
    const { headers, body } = rx.got[0] as { headers: IncomingMessage['headers']; body: string };
    assert.equal(headers['x-bulwark-signature-256'], `sha256=${createHmac('sha256', 'k3y').update(body).digest('hex')}`);
    assert.notEqual(headers['x-bulwark-signature-256'], `sha256=${createHmac('sha256', 'other').update(body).digest('hex')}`);
    assert.equal(headers['x-bulwark-event'], 'node.down');
    const parsed = JSON.parse(body) as NotificationDocument;
    assert.equal(parsed.kind, 'node.down');
    assert.equal(parsed.subject, 'web/b1');
    assert.equal(parsed.at, '2026-01-01T00:00:00.000Z');
  } finally {
    await rx.close();
    s.cleanup();
  }
});

test('webhook: a 500 is retried until the receiver accepts; a 400 fails at once with BULWARK_NOTIFY_FAILED', async () => {
  const flaky = await receiver((n) => (n < 3 ? 500 : 200));
  const bad = await receiver(() => 400);
  try {
    await buildChannel('x', channelCfg({ type: 'webhook', url: flaky.url, attempts: 3 }), { clock: systemClock, baseDir: '.' }).send(doc(), incident.key);
    assert.equal(flaky.got.length, 3);
    const ch = buildChannel('x', channelCfg({ type: 'webhook', url: bad.url, attempts: 3 }), { clock: systemClock, baseDir: '.' });
    await assert.rejects(ch.send(doc(), incident.key), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_NOTIFY_FAILED' && /answered 400/.test(e.message));
    assert.equal(bad.got.length, 1, 'a 400 is not retried');
  } finally {
    await flaky.close();
    await bad.close();
  }
});

test('webhook: a receiver that is not listening fails after every attempt', async () => {
  const port = await freePort();
  const ch = buildChannel('x', channelCfg({ type: 'webhook', url: `http://127.0.0.1:${port}/`, attempts: 2 }), { clock: systemClock, baseDir: '.' });
  await assert.rejects(ch.send(doc(), incident.key), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_NOTIFY_FAILED');
});

test('command hook: the event JSON on stdin, BULWARK_EVENT_* in the environment, kind/state/subject as arguments; a non-zero exit fails', async () => {
  const s = scratchDir();
  try {
    const hook = join(s.dir, 'hook.sh');
    writeFileSync(hook, '#!/bin/sh\ncat > "$OUT.json"\nprintf "%s|%s|%s|%s|%s\\n" "$BULWARK_EVENT_KIND" "$BULWARK_EVENT_SEVERITY" "$1" "$2" "$3" > "$OUT.env"\n[ "$3" = "web/bad" ] && { echo "nope" >&2; exit 3; }\nexit 0\n');
    chmodSync(hook, 0o755);
    const ch = buildChannel('x', channelCfg({ type: 'command', command: [hook], env: { OUT: join(s.dir, 'out') } }), { clock: systemClock, baseDir: s.dir });
    await ch.send(doc(), incident.key);
    assert.equal((JSON.parse(readFileSync(join(s.dir, 'out.json'), 'utf8')) as NotificationDocument).message, incident.message);
    assert.equal(readFileSync(join(s.dir, 'out.env'), 'utf8'), 'node.down|critical|node.down|firing|web/b1\n');
    await assert.rejects(ch.send(doc({ subject: 'web/bad' }), incident.key), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_NOTIFY_FAILED' && /exited 3: nope/.test(e.message));
  } finally {
    s.cleanup();
  }
});

test('email: a local SMTP server receives one message with the incident in the subject and body', async () => {
  const mails: Array<{ from: string; to: string[]; data: string }> = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, cb) {
      let data = '';
      stream.on('data', (c: Buffer) => (data += c.toString('utf8')));
      stream.on('end', () => {
        mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data });
        cb();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.server.address() as AddressInfo).port;
  try {
    const ch = buildChannel('x', channelCfg({ type: 'email', smtp: `127.0.0.1:${port}`, from: 'bulwark@example.test', to: ['oncall@example.test'] }), { clock: systemClock, baseDir: '.' });
    await ch.send(doc(), incident.key);
    assert.equal(mails.length, 1);
    const m = mails[0] as { from: string; to: string[]; data: string };
    assert.equal(m.from, 'bulwark@example.test');
    assert.deepEqual(m.to, ['oncall@example.test']);
    assert.match(m.data, /Subject: \[bulwark\] CRITICAL node\.down web\/b1/);
    assert.match(m.data, /web\/b1 is down: connection refused/);
    const down = buildChannel('x', channelCfg({ type: 'email', smtp: `127.0.0.1:${await freePort()}`, from: 'b@example.test', to: ['o@example.test'], attempts: 1 }), { clock: systemClock, baseDir: '.' });
    await assert.rejects(down.send(doc(), incident.key), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_NOTIFY_FAILED');
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

const ALERTMANAGER = '/usr/bin/prometheus-alertmanager';

test('alertmanager: Debian\'s Alertmanager shows the alert active, then resolved', async (t) => {
  if (!existsSync(ALERTMANAGER)) {
    t.diagnostic('prometheus-alertmanager is missing: run scripts/install-deps.sh');
    assert.fail('prometheus-alertmanager not installed (scripts/install-deps.sh installs it)');
  }
  const s = scratchDir();
  const port = await freePort();
  const cluster = await freePort();
  writeFileSync(join(s.dir, 'am.yml'), 'route:\n  receiver: none\nreceivers:\n  - name: none\n');
  const am = spawn(ALERTMANAGER, [`--config.file=${join(s.dir, 'am.yml')}`, `--storage.path=${s.dir}`, `--web.listen-address=127.0.0.1:${port}`, `--cluster.listen-address=127.0.0.1:${cluster}`, '--cluster.advertise-address=127.0.0.1:' + cluster, '--log.level=warn'], { stdio: 'ignore' });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => (await fetch(`${base}/-/ready`).catch(() => undefined))?.ok, { timeoutMs: 30_000, what: 'alertmanager ready' });
    const ch = buildChannel('x', channelCfg({ type: 'alertmanager', url: base }), { clock: systemClock, baseDir: '.' });
    await ch.send(doc({ at: Date.now() }), incident.key);
    type Alert = { labels: Record<string, string>; status: { state: string }; annotations: Record<string, string> };
    const alerts = async (): Promise<Alert[]> => (await (await fetch(`${base}/api/v2/alerts?active=true&silenced=false&inhibited=false&unprocessed=true`)).json()) as Alert[];
    const active = await waitFor(async () => (await alerts()).find((a) => a.labels['bulwark_key'] === 'node:web/b1'), { what: 'the alert in alertmanager' });
    assert.equal(active.labels['alertname'], 'Bulwark_node');
    assert.equal(active.labels['severity'], 'critical');
    assert.equal(active.annotations['summary'], incident.message);
    await ch.send(doc({ kind: 'node.up', state: 'resolved', message: 'up again', at: Date.now() }), incident.key);
    await waitFor(async () => ((await alerts()).some((a) => a.labels['bulwark_key'] === 'node:web/b1') ? undefined : true), { what: 'the alert resolved' });
    ch.close();
  } finally {
    am.kill('SIGTERM');
    await new Promise((r) => am.once('exit', r));
    s.cleanup();
  }
});
