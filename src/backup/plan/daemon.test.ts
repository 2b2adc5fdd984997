// The plans and the audit inside the real daemon (`bulwark up`), through its HTTP API: a run
// started with POST /v1/backups/:plan/run lands in both targets, GET /v1/backups and
// `bulwark status` show it, the audit turns ok, and /metrics exports the per-target gauges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { exited, freePort, runCli, scratchDir, startCli, waitFor } from '../../testing/helpers.js';
import { VaultServer } from '../vault/server.js';

test('daemon: plan run via the API, status, audit and metrics', { timeout: 120_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-plan-daemon-');
  mkdirSync(join(dir, 'data'));
  writeFileSync(join(dir, 'data', 'f'), randomBytes(200_000));
  writeFileSync(join(dir, 'pw'), 'pw');
  const port = await freePort();
  // The immutable copy sits on a vault (append-only, with retention): a local directory cannot enforce a lock, so the audit would not count it.
  const token = randomBytes(16).toString('hex');
  writeFileSync(join(dir, 'tok'), token);
  const vault = new VaultServer({ root: join(dir, 'vault'), tokens: [{ name: 'c', token, role: 'client' }], appendOnly: true, retentionMs: 86_400_000 });
  const addr = await vault.listen('127.0.0.1:0');
  writeFileSync(
    join(dir, 'bulwark.yaml'),
    stringify({
      api: { listen: `127.0.0.1:${port}` },
      state_dir: './var',
      backups: {
        app: {
          paths: ['./data'],
          password_file: 'pw',
          schedule: '0 3 * * *',
          targets: [
            { name: 'disk', repo: './r-disk', media: 'hdd' },
            { name: 'usb', repo: `vault://${addr}/app`, media: 'usb', offsite: true, immutable: '1d', token_file: 'tok' },
          ],
        },
      },
    }),
  );
  const up = startCli(['up', '-c', join(dir, 'bulwark.yaml')], { cwd: dir, env: { BULWARK_LOG_LEVEL: 'warn' } });
  const api = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => (await fetch(`${api}/healthz`)).ok, { timeoutMs: 30_000, what: `the daemon (${up.output().stderr})` });
    const before = (await (await fetch(`${api}/v1/audit`)).json()) as { ok: boolean };
    assert.equal(before.ok, false);
    const started = await fetch(`${api}/v1/backups/app/run`, { method: 'POST' });
    assert.equal(started.status, 200);
    const status = await waitFor(
      async () => {
        const s = (await (await fetch(`${api}/v1/backups`)).json()) as { plans: Array<{ running: string | null; targets: Array<{ target: string; lastSuccess?: number; lastRunOk?: boolean }> }> };
        const p = s.plans[0];
        return p && p.running === null && p.targets.every((t) => t.lastRunOk !== undefined) ? p : undefined;
      },
      { timeoutMs: 60_000, what: 'the plan run' },
    );
    assert.deepEqual(status.targets.map((t) => [t.target, t.lastRunOk]), [['disk', true], ['usb', true]]);
    const audit = (await (await fetch(`${api}/v1/audit`)).json()) as { ok: boolean; plans: Array<{ copies: number }> };
    assert.equal(audit.ok, true, JSON.stringify(audit));
    assert.equal(audit.plans[0]?.copies, 3);
    const metrics = await (await fetch(`${api}/metrics`)).text();
    assert.match(metrics, /bulwark_backup_last_run_ok\{plan="app",target="usb",media="usb"\} 1/);
    assert.match(metrics, /bulwark_audit_ok\{plan="app"\} 1/);
    const all = (await (await fetch(`${api}/v1/status`)).json()) as { subsystems: Record<string, unknown> };
    assert.ok(all.subsystems['backup-plans'] && all.subsystems['audit']);
    const cli = await runCli(['status', '-c', join(dir, 'bulwark.yaml')], { cwd: dir });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /backup-plans\nPLAN\s+TARGET\s+MEDIA/);
    assert.match(cli.stdout, /app\s+usb\s+usb\s+\d{4}-\d\d-\d\dT/);
    assert.match(cli.stdout, /audit\nPLAN\s+RULE_3_2_1_1_0[^\n]*\napp\s+PASS\s+3\s+2\s+1\s+1\s+0/);
  } finally {
    up.kill('SIGTERM');
    await exited(up);
    await vault.close();
    cleanup();
  }
});
