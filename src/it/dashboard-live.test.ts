// The dashboard and notifications end to end, in a real Chromium against `bulwark up` with an
// API token: the page loads without the token and asks for it; with the read-only token it shows
// every backend up and disables actions; SIGKILLing a backend turns it red on the open page and
// adds a timeline event without a reload, while a webhook and an SMTP receiver each get exactly
// one notification; with the admin token, an action from the page (a maintenance window) works.
// Screenshots land in var/screenshots/ (or $BULWARK_SCREENSHOT_DIR) for people to look at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { launchChromium } from '../testing/browser.js';
import { exited, freePort, REPO_ROOT, scratchDir, startCli, waitFor } from '../testing/helpers.js';
import { spawnBackend } from './proxy-kit.js';

/** The little of the DOM these page functions touch (they run in the browser; the project has no DOM types). */
interface El {
  textContent: string | null;
  disabled?: boolean;
}
declare const document: { querySelector(sel: string): El | null; getElementById(id: string): El | null };
declare const window: { __noReload?: boolean };

const SHOTS = process.env['BULWARK_SCREENSHOT_DIR'] ?? join(REPO_ROOT, 'var', 'screenshots');

test('a killed backend turns red on the open page, joins the timeline, and notifies a webhook and an SMTP receiver once', async () => {
  mkdirSync(SHOTS, { recursive: true });
  const s = scratchDir();
  const hooks: Array<{ kind: string; subject: string }> = [];
  const hookServer = createServer((req, res) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString('utf8')));
    req.on('end', () => {
      hooks.push(JSON.parse(b) as { kind: string; subject: string });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hookServer.listen(0, '127.0.0.1', () => r()));
  const mails: string[] = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, _session, cb) {
      let d = '';
      stream.on('data', (c: Buffer) => (d += c.toString('utf8')));
      stream.on('end', () => {
        mails.push(d);
        cb();
      });
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
  const b1 = await spawnBackend('b1');
  const b2 = await spawnBackend('b2');
  const apiPort = await freePort();
  const webPort = await freePort();
  writeFileSync(join(s.dir, 'admin.token'), 'admin-token-0123456789\n', { mode: 0o600 });
  writeFileSync(join(s.dir, 'read.token'), 'read-token-0123456789\n', { mode: 0o600 });
  const config = `
api:
  listen: 127.0.0.1:${apiPort}
  token_file: admin.token
  read_token_file: read.token
state_dir: ./state
services:
  web:
    listen: 127.0.0.1:${webPort}
    backends:
      - { name: b1, address: ${b1.address} }
      - { name: b2, address: ${b2.address} }
    health: { http: { path: /health }, interval: 200ms, timeout: 150ms, rise: 1, fall: 2 }
slos:
  web-availability: { service: web, objective: 99% }
notify:
  group_wait: 1s
  channels:
    hook: { type: webhook, url: "http://127.0.0.1:${(hookServer.address() as AddressInfo).port}/bulwark" }
    mail: { type: email, smtp: "127.0.0.1:${(smtp.server.address() as AddressInfo).port}", from: bulwark@example.test, to: [oncall@example.test] }
  routes:
    - { channels: [hook, mail], kinds: ["node.*"] }
`;
  writeFileSync(join(s.dir, 'bulwark.yaml'), config);
  const up = startCli(['up', '-c', join(s.dir, 'bulwark.yaml')]);
  const browser = await launchChromium();
  const base = `http://127.0.0.1:${apiPort}`;
  try {
    await waitFor(async () => (await fetch(`${base}/healthz`).catch(() => undefined))?.ok, { timeoutMs: 30_000, what: `bulwark up (${up.output().stderr})` });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${base}/`);
    await page.waitForSelector('#login:not([hidden])');
    await page.screenshot({ path: join(SHOTS, 'dashboard-sign-in.png') });

    await page.fill('#token', 'wrong-token');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => document.getElementById('login-err')?.textContent?.includes('refused'));

    await page.fill('#token', 'read-token-0123456789');
    await page.click('#login button[type=submit]');
    const pill = (b: string): string => `tr[data-backend="web/${b}"] .pill`;
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'up', pill('b1'), { timeout: 30_000 });
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'up', pill('b2'), { timeout: 30_000 });
    assert.match((await page.textContent('#who')) ?? '', /read-only/);
    assert.equal(await page.evaluate(() => document.querySelector('button[data-action="maintenance"]')?.disabled), true, 'actions are disabled with the read-only token');
    assert.equal(await page.textContent('#overall'), 'all OK');
    await page.evaluate(() => (window.__noReload = true));

    b1.child.kill('SIGKILL');
    await page.waitForFunction((sel) => document.querySelector(sel)?.textContent === 'down', pill('b1'), { timeout: 30_000 });
    assert.match((await page.getAttribute(pill('b1'), 'class')) ?? '', /\bbad\b/, 'down is red');
    await page.waitForSelector('#timeline li[data-kind="health.transition"][data-subject="web/b1"].ev-bad', { timeout: 30_000 });
    assert.equal(await page.evaluate(() => window.__noReload), true, 'no reload happened');
    assert.notEqual(await page.textContent('#overall'), 'all OK');
    await page.screenshot({ path: join(SHOTS, 'dashboard-backend-down.png'), fullPage: true });

    await waitFor(() => hooks.length >= 1 && mails.length >= 1, { timeoutMs: 30_000, what: 'the webhook and the email' });
    // The backend stays down while the probes keep failing: still one notification each.
    const probesBefore = await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer read-token-0123456789' } }).then((r) => r.text());
    await waitFor(async () => {
      const now = await fetch(`${base}/metrics`, { headers: { authorization: 'Bearer read-token-0123456789' } }).then((r) => r.text());
      return now !== probesBefore && (await new Promise((r) => setTimeout(r, 2500, true)));
    }, { what: 'more probes' });
    assert.deepEqual(hooks.map((h) => `${h.kind} ${h.subject}`), ['node.down web/b1']);
    assert.equal(mails.length, 1);
    assert.match(mails[0] as string, /Subject: \[bulwark\] CRITICAL node\.down web\/b1/);

    // The admin token may act from the page.
    await page.click('#signout');
    await page.waitForSelector('#login:not([hidden])');
    await page.fill('#token', 'admin-token-0123456789');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => document.getElementById('who')?.textContent === 'admin token');
    await page.waitForSelector('button[data-action="maintenance"]:not([disabled])');
    await page.selectOption('#mw-duration', '15m');
    await page.fill('#mw-reason', 'from the browser test');
    await page.click('button[data-action="maintenance"]');
    await page.waitForFunction(() => document.getElementById('toast')?.textContent?.includes('done'));
    const mw = (await (await fetch(`${base}/v1/maintenance`, { headers: { authorization: 'Bearer read-token-0123456789' } })).json()) as { windows: Array<{ reason: string }> };
    assert.deepEqual(mw.windows.map((w) => w.reason), ['from the browser test']);
    await page.screenshot({ path: join(SHOTS, 'dashboard-admin.png'), fullPage: true });
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await phone.goto(`${base}/`);
    await phone.waitForSelector('#login:not([hidden])');
    await phone.screenshot({ path: join(SHOTS, 'dashboard-phone.png') });
    assert.deepEqual(pageErrors, []);
  } finally {
    await browser.close();
    up.kill('SIGTERM');
    await exited(up);
    b1.child.kill('SIGKILL');
    b2.child.kill('SIGKILL');
    await new Promise<void>((r) => hookServer.close(() => r()));
    await new Promise<void>((r) => smtp.close(() => r()));
    s.cleanup();
  }
});
