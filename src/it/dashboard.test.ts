// The dashboard in a real Chromium: the page served by the demo renders a section for every
// subsystem the daemon reports, and keeps refreshing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launchChromium } from '../testing/browser.js';
import { exited, freePort, startCli, waitFor } from '../testing/helpers.js';

/** The little of the DOM the page function touches (it runs in the browser; the project has no DOM types). */
declare const document: { getElementById(id: string): { textContent: string | null } | null };

test('the demo dashboard shows every subsystem the status API reports', async () => {
  const port = await freePort();
  const demo = startCli(['demo', '--listen', `127.0.0.1:${port}`]);
  const browser = await launchChromium();
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(() => demo.output().stdout.includes('Bulwark demo is running'), { timeoutMs: 90_000, what: 'the demo' });
    const status = (await (await fetch(`${base}/v1/status`)).json()) as { version: string; subsystems: Record<string, unknown> };
    const page = await browser.newPage();
    await page.goto(`${base}/`);
    // A function, not a string: the page's Content-Security-Policy forbids eval, which string predicates need.
    await page.waitForFunction(() => document.getElementById('meta')?.textContent?.startsWith('version'));
    assert.equal(await page.title(), 'Bulwark');
    assert.match((await page.textContent('#meta')) ?? '', new RegExp(`version ${status.version.replace(/\./g, '\\.')}`));
    const sections = await page.$$eval('section[data-subsystem]', (els) => els.map((e) => e.getAttribute('data-subsystem')));
    assert.deepEqual(sections.sort(), Object.keys(status.subsystems).sort());
    assert.equal(await page.textContent('#err'), '');
    if (process.env['BULWARK_SCREENSHOT']) await page.screenshot({ path: process.env['BULWARK_SCREENSHOT'], fullPage: true });
  } finally {
    await browser.close();
    demo.kill('SIGINT');
    await exited(demo);
  }
});
