// Integration tests of the built CLI, run as a child process (bin/bulwark.js -> dist/).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import parsePrometheus from 'parse-prometheus-text-format';
import { exited, freePort, runCli, scratchDir, startCli, waitFor } from '../testing/helpers.js';

const CONTRACT = [
  ['up'], ['validate'], ['status'], ['demo'], ['nines'],
  ['backup', 'init'], ['backup', 'create'], ['backup', 'snapshots'], ['backup', 'restore'], ['backup', 'check'],
  ['backup', 'forget'], ['backup', 'prune'], ['backup', 'copy'], ['backup', 'plan', 'run'], ['backup', 'drill'],
  ['vault', 'serve'], ['db', 'status'], ['db', 'switchover'], ['slo', 'report'], ['audit'],
];

test('--help lists every command of the contract, and each has its own --help', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  for (const [first] of CONTRACT) assert.match(top.stdout, new RegExp(`^\\s+${first}\\b`, 'm'), `${first} missing from --help`);
  for (const cmd of CONTRACT) {
    const r = await runCli([...cmd, '--help']);
    assert.equal(r.code, 0, `bulwark ${cmd.join(' ')} --help exited ${String(r.code)}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: bulwark/);
  }
});

test('unknown commands and flags exit 2', async () => {
  assert.equal((await runCli(['frobnicate'])).code, 2);
  const r = await runCli(['nines', '--bogus']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown option '--bogus'/);
});

test('bulwark nines reproduces the standard table', async () => {
  const expect: Record<string, [string, string, string]> = {
    '99': ['3.65 days', '7.31 h', '1.68 h'],
    '99.9': ['8.77 h', '43.8 min', '10.1 min'],
    '99.99%': ['52.6 min', '4.38 min', '1.01 min'],
    '99.999': ['5.26 min', '26.3 s', '6.05 s'],
  };
  for (const [a, [year, month, week]] of Object.entries(expect)) {
    const r = await runCli(['nines', a]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^year\\s+${year}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^month\\s+${month}$`, 'm'));
    assert.match(r.stdout, new RegExp(`^week\\s+${week}$`, 'm'));
  }
});

test('bulwark nines --downtime goes the other way, with --json', async () => {
  const r = await runCli(['nines', '--downtime', '43.83m/month', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { availability: number; downtime_ms: { year: number } };
  assert.ok(Math.abs(j.availability - 0.999) < 1e-5);
  const bad = await runCli(['nines', '--downtime', '5 minutes']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /expected a duration like 500ms or 2s, got '5 minutes'/);
  assert.equal((await runCli(['nines'])).code, 2);
  assert.equal((await runCli(['nines', '101'])).code, 2);
});

test('bulwark validate: exit 0 for a good file, 1 with file:line:column for each mistake', async () => {
  const { dir, cleanup } = scratchDir();
  try {
    const file = join(dir, 'bulwark.yaml');
    const good = 'state_dir: ./var\nservices:\n  web:\n    listen: 127.0.0.1:8080\n    backends: [{ name: a, address: 127.0.0.1:9001 }]\n    health: { tcp: {}, interval: 1s }\n';
    writeFileSync(file, good);
    const ok = await runCli(['validate', '-c', file]);
    assert.equal(ok.code, 0, ok.stderr);

    writeFileSync(file, good.replace('interval: 1s', 'intervall: 1s'));
    let r = await runCli(['validate', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${file}:6:24: services\\.web\\.health\\.intervall: unknown key 'intervall'`));

    writeFileSync(file, good.replace('interval: 1s', 'interval: 2 seconds'));
    r = await runCli(['validate', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${file}:6:34: services\\.web\\.health\\.interval: expected a duration like 500ms or 2s, got '2 seconds'`));

    writeFileSync(file, `api: { listen: 127.0.0.1:7070, token_file: ./nope }\n${good}`);
    r = await runCli(['validate', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`${file}:1:44: api\\.token_file: cannot read secret file ${join(dir, 'nope')}`));

    r = await runCli(['validate', '-c', file, '--json']);
    assert.equal(r.code, 1);
    const j = JSON.parse(r.stdout) as { ok: boolean; problems: Array<{ line: number; path: string }> };
    assert.equal(j.ok, false);
    assert.deepEqual(j.problems.map((p) => [p.line, p.path]), [[1, 'api.token_file']]);

    r = await runCli(['validate', '-c', join(dir, 'missing.yaml')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /BULWARK_CONFIG_NOT_FOUND/);
  } finally {
    cleanup();
  }
});

test('bulwark up serves status, events and Prometheus metrics; SIGTERM exits 0', async () => {
  const { dir, cleanup } = scratchDir();
  const port = await freePort();
  const file = join(dir, 'bulwark.yaml');
  writeFileSync(file, `api: { listen: 127.0.0.1:${port} }\nstate_dir: ${join(dir, 'var')}\n`);
  const child = startCli(['up', '-c', file]);
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/healthz`)).ok, { timeoutMs: 15_000, what: 'the API' });
    const status = (await (await fetch(`${base}/v1/status`)).json()) as { version: string; subsystems: object };
    assert.equal(typeof status.version, 'string');
    const text = await (await fetch(`${base}/metrics`)).text();
    const families = parsePrometheus(text);
    assert.ok(families.some((f) => f.name === 'bulwark_build_info'), 'bulwark_build_info missing');
    assert.ok(families.length > 5);
    const cli = await runCli(['status', '--api', base, '--json']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal((JSON.parse(cli.stdout) as { version: string }).version, status.version);
    const events = (await (await fetch(`${base}/v1/events`)).json()) as { events: Array<{ kind: string }> };
    assert.ok(events.events.some((e) => e.kind === 'daemon.start'));

    child.kill('SIGTERM');
    const { code } = await exited(child);
    assert.equal(code, 0, child.output().stderr);
    const logs = child.output().stderr.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; level: number });
    assert.ok(logs.some((l) => l.msg === 'stopped'), 'structured JSON logs end with "stopped"');
  } finally {
    child.kill('SIGKILL');
    cleanup();
  }
});

test('output into a closed pipe ends quietly (no EPIPE stack trace)', async () => {
  const { spawn } = await import('node:child_process');
  const { BIN } = await import('../testing/helpers.js');
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader is gone before the CLI writes: its write fails with EPIPE
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /EPIPE|Error/);
});

test('bulwark status says clearly when no daemon is running', async () => {
  const port = await freePort();
  const r = await runCli(['status', '--api', `http://127.0.0.1:${port}`]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /BULWARK_API_UNREACHABLE: cannot reach the Bulwark daemon/);
});

test('bulwark up with a token file requires the token; status reads it from the config', async () => {
  const { dir, cleanup } = scratchDir();
  const port = await freePort();
  writeFileSync(join(dir, 'token'), 'a-long-random-token\n', { mode: 0o600 });
  const file = join(dir, 'bulwark.yaml');
  writeFileSync(file, `api: { listen: 127.0.0.1:${port}, token_file: ./token }\nstate_dir: ${join(dir, 'var')}\n`);
  const child = startCli(['up', '-c', file]);
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await fetch(`${base}/healthz`)).ok, { timeoutMs: 15_000, what: 'the API' });
    assert.equal((await fetch(`${base}/v1/status`)).status, 401);
    const noToken = await runCli(['status', '--api', base], { env: { BULWARK_API_TOKEN: '' } });
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /BULWARK_API_UNAUTHORIZED/);
    const withConfig = await runCli(['status', '-c', file, '--json']);
    assert.equal(withConfig.code, 0, withConfig.stderr);
    assert.ok(!child.output().stderr.includes('a-long-random-token'), 'the token never reaches the logs');
  } finally {
    child.kill('SIGTERM');
    await exited(child);
    cleanup();
  }
});

test('bulwark demo starts on the requested address and Ctrl-C removes its directory', async () => {
  const port = await freePort();
  const child = startCli(['demo', '--listen', `127.0.0.1:${port}`]);
  try {
    const out = await waitFor(() => /config:\s+(\S+)/.exec(child.output().stdout), { timeoutMs: 60_000, what: 'the demo banner' });
    const configFile = out[1] as string;
    assert.match(child.output().stdout, new RegExp(`http://127\\.0\\.0\\.1:${port}/`));
    assert.equal((await fetch(`http://127.0.0.1:${port}/v1/status`)).status, 200);
    const { existsSync } = await import('node:fs');
    assert.ok(existsSync(configFile));
    child.kill('SIGINT');
    const { code } = await exited(child);
    assert.equal(code, 0, child.output().stderr);
    assert.ok(!existsSync(configFile), 'the demo directory is removed on stop');
  } finally {
    child.kill('SIGKILL');
  }
});

test('bulwark audit finds single points of failure in the config and exits 1; a redundant config passes', async () => {
  const { dir, cleanup } = scratchDir();
  try {
    const file = join(dir, 'bulwark.yaml');
    const web = (a: string, b: string) => `services:\n  web:\n    listen: 127.0.0.1:18080\n    backends: [{ name: a, address: "${a}" }, { name: b, address: "${b}" }]\n    health: { tcp: {} }\n`;
    writeFileSync(file, web('127.0.0.1:9001', '127.0.0.1:9002'));
    const bad = await runCli(['audit', '-c', file, '--json']);
    assert.equal(bad.code, 1);
    const j = JSON.parse(bad.stdout) as { ok: boolean; spof: Array<{ subject: string; severity: string }> };
    assert.equal(j.ok, false);
    assert.deepEqual(j.spof.map((f) => [f.subject, f.severity]), [
      ['services.web', 'violation'],
      ['coordination', 'violation'],
    ]);
    writeFileSync(file, `coordination: { kind: etcd, endpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379, http://10.0.0.3:2379] }\n${web('10.0.1.1:80', '10.0.1.2:80')}`);
    const good = await runCli(['audit', '-c', file]);
    assert.equal(good.code, 0, good.stderr);
    assert.match(good.stdout, /single points of failure: none/);
  } finally {
    cleanup();
  }
});
