// End-to-end through the built CLI: `vault serve` (append-only, retention) as the offsite copy,
// `backup plan run`, `plan verify`, `backup drill`, `plan status`, and `audit` passing on a
// compliant plan and failing, saying why, when the offsite target is removed, when every target
// shares one medium, and when the last verification found an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify } from 'yaml';
import { exited, runCli, scratchDir, startCli, waitFor } from '../../testing/helpers.js';

test('plans through the CLI: run, verify, drill, status and the 3-2-1-1-0 audit', { timeout: 120_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-plan-cli-');
  const adminToken = randomBytes(16).toString('hex');
  const clientToken = randomBytes(16).toString('hex');
  writeFileSync(join(dir, 'tokens.yaml'), stringify({ admin: adminToken, clients: [{ name: 'app-host', token: clientToken, repos: ['app'] }] }));
  writeFileSync(join(dir, 'client-token'), clientToken);
  writeFileSync(join(dir, 'pw'), 'plan password');
  mkdirSync(join(dir, 'data', 'sub'), { recursive: true });
  writeFileSync(join(dir, 'data', 'a.bin'), randomBytes(500_000));
  writeFileSync(join(dir, 'data', 'sub', 'b.txt'), 'bulwark\n'.repeat(1000));
  const vault = startCli(['vault', 'serve', '--root', join(dir, 'vault'), '--listen', '127.0.0.1:0', '--tokens', join(dir, 'tokens.yaml'), '--append-only', '--retention', '30d']);
  try {
    const addr = await waitFor(() => /vault listening on http:\/\/(\S+)/.exec(vault.output().stdout)?.[1], { what: `vault to listen (stderr: ${vault.output().stderr})` });
    const targets = [
      { name: 'disk', repo: './repo-disk', media: 'hdd' },
      { name: 'ssd', repo: './repo-ssd', media: 'ssd' },
      { name: 'offsite', repo: `vault://${addr}/app`, media: 'vault', offsite: true, immutable: '30d', token_file: 'client-token' },
    ];
    const write = (file: string, t: unknown[]): string => {
      writeFileSync(join(dir, file), stringify({ state_dir: join(dir, 'var'), backups: { app: { paths: ['./data'], password_file: 'pw', rpo: '1h', targets: t } } }));
      return join(dir, file);
    };
    const cfg = write('bulwark.yaml', targets);

    const run = await runCli(['backup', 'plan', 'run', 'app', '-c', cfg]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /disk\s+ok/);
    assert.match(run.stdout, /offsite\s+ok/);
    // the offsite copy landed in the vault's repository directory
    assert.ok(readdirSync(join(dir, 'vault', 'app', 'snapshots')).length === 1);

    const verify = await runCli(['backup', 'plan', 'verify', 'app', '-c', cfg]);
    assert.equal(verify.code, 0, verify.stderr);

    const drill = await runCli(['backup', 'drill', 'app', '-c', cfg, '--target', 'offsite', '--json']);
    assert.equal(drill.code, 0, drill.stderr);
    const d = JSON.parse(drill.stdout) as Array<{ ok: boolean; result: { files: number; verifiedFiles: number; bytes: number } }>;
    assert.equal(d[0]?.ok, true);
    assert.equal(d[0]?.result.verifiedFiles, 2);
    assert.equal(d[0]?.result.bytes, 500_000 + 8000);

    const status = await runCli(['backup', 'plan', 'status', 'app', '-c', cfg, '--json']);
    assert.equal(status.code, 0, status.stderr);
    const st = JSON.parse(status.stdout) as Array<{ rpoBreached: boolean; targets: Array<{ target: string; rtoMs?: number; lastCheckOk?: boolean }> }>;
    assert.equal(st[0]?.rpoBreached, false);
    assert.equal(typeof st[0]?.targets.find((t) => t.target === 'offsite')?.rtoMs, 'number');

    const pass = await runCli(['audit', '-c', cfg]);
    assert.equal(pass.code, 0, pass.stdout + pass.stderr);
    assert.match(pass.stdout, /plan app: PASS/);

    // From a machine without the history (another state_dir): only --probe sees the copies.
    const other = join(dir, 'elsewhere.yaml');
    writeFileSync(other, readFileSync(cfg, 'utf8').replace(join(dir, 'var'), join(dir, 'var-elsewhere')));
    const blind = await runCli(['audit', '-c', other]);
    assert.equal(blind.code, 1);
    assert.match(blind.stdout, /holds no verified snapshot yet/);
    const probed = await runCli(['audit', '-c', other, '--probe']);
    assert.equal(probed.code, 0, probed.stdout + probed.stderr);

    const noOffsite = await runCli(['audit', '-c', write('no-offsite.yaml', targets.slice(0, 2))]);
    assert.equal(noOffsite.code, 1);
    assert.match(noOffsite.stdout, /1 offsite\s+>= 1\s+0\s+VIOLATION\s+no target is offsite/);
    assert.match(noOffsite.stderr, /BULWARK_AUDIT_VIOLATION/);

    const oneMedium = await runCli(['audit', '-c', write('one-medium.yaml', targets.map((t) => ({ ...t, media: 'hdd' }))), '--json']);
    assert.equal(oneMedium.code, 1);
    const om = JSON.parse(oneMedium.stdout) as { ok: boolean; plans: Array<{ rules: Array<{ rule: string; ok: boolean; fix: string }> }> };
    assert.equal(om.ok, false);
    assert.match(om.plans[0]?.rules.find((r) => r.rule === 'media')?.fix ?? '', /same medium \(hdd\)/);

    // Damage one pack of the disk target: its verification fails, and the audit says so.
    const dataDir = join(dir, 'repo-disk', 'data');
    const fan = readdirSync(dataDir).find((f) => readdirSync(join(dataDir, f)).length > 0) as string;
    const pack = join(dataDir, fan, readdirSync(join(dataDir, fan))[0] as string);
    const bytes = readFileSync(pack);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = (bytes[at] as number) ^ 0x01;
    writeFileSync(pack, bytes);
    const bad = await runCli(['backup', 'plan', 'verify', 'app', '-c', cfg, '--target', 'disk']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /BULWARK_PLAN_TARGET_FAILED/);
    assert.match(bad.stderr, /is damaged/);
    const failed = await runCli(['audit', '-c', cfg]);
    assert.equal(failed.code, 1);
    assert.match(failed.stdout, /0 errors\s+0\s+[1-9]\d*\s+VIOLATION\s+disk: last verification found/);
  } finally {
    vault.kill('SIGTERM');
    await exited(vault);
    cleanup();
  }
});

test('plan CLI: an unknown plan is BULWARK_PLAN_UNKNOWN (exit 2) listing the configured ones', async () => {
  const { dir, cleanup } = scratchDir('bulwark-plan-cli-');
  try {
    writeFileSync(join(dir, 'c.yaml'), stringify({ state_dir: join(dir, 'var'), backups: { app: { paths: ['.'], targets: [{ name: 'd', repo: './r', media: 'hdd' }] } } }));
    const r = await runCli(['backup', 'plan', 'run', 'nope', '-c', join(dir, 'c.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /BULWARK_PLAN_UNKNOWN: no backup plan named 'nope'/);
    assert.match(r.stderr, /configured plans: app/);
  } finally {
    cleanup();
  }
});

test('vault serve: a malformed tokens file is BULWARK_VAULT_TOKENS naming the problem', async () => {
  const { dir, cleanup } = scratchDir('bulwark-vault-cli-');
  try {
    writeFileSync(join(dir, 't.yaml'), 'admin: short\n');
    const r = await runCli(['vault', 'serve', '--root', join(dir, 'v'), '--listen', '127.0.0.1:0', '--tokens', join(dir, 't.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /BULWARK_VAULT_TOKENS: .*admin: the admin token must be at least 16 characters/);
  } finally {
    cleanup();
  }
});
