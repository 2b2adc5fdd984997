// The snapshot browser through `bulwark up`'s API: a plan run lands a snapshot; the API lists it,
// lists a directory in it, and restores one file as a download byte for byte; the download needs
// the admin token (the read-only token may browse, not restore), refuses paths with "..", and
// answers 404 for what is not there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { readFileSync } from 'node:fs';
import { launchChromium } from '../testing/browser.js';
import { exited, freePort, REPO_ROOT, scratchDir, startCli, waitFor } from '../testing/helpers.js';

const SHOTS = process.env['BULWARK_SCREENSHOT_DIR'] ?? join(REPO_ROOT, 'var', 'screenshots');

test('snapshot browser: list, browse, download one file; admin only for the download', { timeout: 120_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-browse-');
  mkdirSync(join(dir, 'data', 'sub'), { recursive: true });
  const content = randomBytes(300_000);
  writeFileSync(join(dir, 'data', 'sub', 'report.bin'), content);
  writeFileSync(join(dir, 'data', 'top.txt'), 'hello\n');
  writeFileSync(join(dir, 'pw'), 'pw');
  writeFileSync(join(dir, 'admin'), 'admin-token-123');
  writeFileSync(join(dir, 'read'), 'read-token-123');
  const port = await freePort();
  writeFileSync(
    join(dir, 'bulwark.yaml'),
    stringify({
      api: { listen: `127.0.0.1:${port}`, token_file: 'admin', read_token_file: 'read' },
      state_dir: './var',
      backups: { app: { paths: ['./data'], password_file: 'pw', targets: [{ name: 'disk', repo: './r-disk', media: 'hdd' }] } },
    }),
  );
  const up = startCli(['up', '-c', join(dir, 'bulwark.yaml')], { cwd: dir, env: { BULWARK_LOG_LEVEL: 'warn' } });
  const api = `http://127.0.0.1:${port}`;
  const admin = { authorization: 'Bearer admin-token-123', 'content-type': 'application/json' };
  const read = { authorization: 'Bearer read-token-123', 'content-type': 'application/json' };
  try {
    await waitFor(async () => (await fetch(`${api}/healthz`)).ok, { timeoutMs: 30_000, what: `the daemon (${up.output().stderr})` });
    assert.equal((await fetch(`${api}/v1/backups/app/run`, { method: 'POST', headers: admin })).status, 200);
    type Snaps = { snapshots: Array<{ id: string; files: number }> };
    const snaps = await waitFor(async () => {
      const r = await fetch(`${api}/v1/backups/app/targets/disk/snapshots`, { headers: read });
      const b = (await r.json()) as Snaps;
      return r.ok && b.snapshots.length > 0 ? b : undefined;
    }, { timeoutMs: 60_000, what: 'a snapshot' });
    const id = (snaps.snapshots[0] as { id: string }).id;
    type Tree = { entries: Array<{ name: string; type: string; size: number | null; path: string }> };
    const rootRes = await fetch(`${api}/v1/backups/app/targets/disk/snapshots/${id}/tree`, { headers: read });
    const root = (await rootRes.json()) as Tree;
    assert.equal(rootRes.status, 200, JSON.stringify(root));
    assert.deepEqual(root.entries.map((e) => [e.name, e.type]), [['data', 'dir']]);
    const data = (await (await fetch(`${api}/v1/backups/app/targets/disk/snapshots/${id}/tree?path=data`, { headers: read })).json()) as Tree;
    assert.deepEqual(data.entries.map((e) => [e.name, e.type]), [['sub', 'dir'], ['top.txt', 'file']], 'directories first');
    const sub = (await (await fetch(`${api}/v1/backups/app/targets/disk/snapshots/${id.slice(0, 8)}/tree?path=data/sub`, { headers: read })).json()) as Tree;
    assert.deepEqual(sub.entries.map((e) => [e.path, e.size]), [['data/sub/report.bin', content.length]]);

    const url = `${api}/v1/backups/app/targets/disk/snapshots/${id}/restore-file`;
    const denied = await fetch(url, { method: 'POST', headers: read, body: JSON.stringify({ path: 'data/sub/report.bin' }) });
    assert.equal(denied.status, 403, 'the read-only token cannot restore');
    const got = await fetch(url, { method: 'POST', headers: admin, body: JSON.stringify({ path: 'data/sub/report.bin' }) });
    assert.equal(got.status, 200);
    assert.match(got.headers.get('content-disposition') ?? '', /attachment; filename="report.bin"/);
    assert.ok(Buffer.from(await got.arrayBuffer()).equals(content), 'the same bytes');
    assert.equal((await fetch(url, { method: 'POST', headers: admin, body: JSON.stringify({ path: 'data/../../etc/passwd' }) })).status, 400);
    assert.equal((await fetch(url, { method: 'POST', headers: admin, body: JSON.stringify({ path: 'data/nope' }) })).status, 404);
    assert.equal((await fetch(url, { method: 'POST', headers: admin, body: JSON.stringify({ path: 'data/sub' }) })).status, 400, 'a directory');
    assert.equal((await fetch(`${api}/v1/backups/app/targets/nope/snapshots`, { headers: read })).status, 404);

    // The same from the page, in Chromium: browse to the file and download it.
    const browser = await launchChromium();
    try {
      mkdirSync(SHOTS, { recursive: true });
      const page = await browser.newPage({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
      await page.goto(`${api}/`);
      await page.fill('#token', 'admin-token-123');
      await page.click('#login button[type=submit]');
      await page.click('button[data-action="browse"][data-target="disk"]');
      await page.click('#browser button[data-action="browse-dir"][data-path="data"]');
      await page.click('#browser button[data-action="browse-dir"][data-path="data/sub"]');
      await page.waitForSelector('#browser tr[data-entry="data/sub/report.bin"]');
      await page.screenshot({ path: join(SHOTS, 'dashboard-snapshot-browser.png'), fullPage: true });
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#browser button[data-action="download"][data-path="data/sub/report.bin"]')]);
      assert.equal(dl.suggestedFilename(), 'report.bin');
      const saved = join(dir, 'downloaded.bin');
      await dl.saveAs(saved);
      assert.ok(readFileSync(saved).equals(content), 'the page downloads the same bytes');
    } finally {
      await browser.close();
    }
  } finally {
    up.kill('SIGTERM');
    await exited(up);
    cleanup();
  }
});
