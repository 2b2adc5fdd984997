// Tests of the one view of the cluster on a real etcd (loopback): several instances of one config
// (in-process Daemons with their API servers, and `bulwark up --instance` child processes),
// GET /v1/status and /v1/events on any instance showing every instance, a peer that does not
// answer shown as unreachable without hiding the others, ?scope=local, and `bulwark status`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiServer } from '../api/server.js';
import { loadInstanceConfig } from '../core/config/load.js';
import { silentLogger } from '../core/logger.js';
import type { Subsystem } from '../core/subsystem.js';
import { startEtcd, type TestEtcd } from '../coord/etcd.testkit.js';
import { exited, freePort, runCli, scratchDir, startCli, waitFor } from '../testing/helpers.js';
import { Daemon, type ClusterStatus } from '../app/daemon.js';

const TOKEN = 'cluster-view-test-token';
process.env['BULWARK_TEST_CLUSTER_TOKEN'] = TOKEN;
const auth = { authorization: `Bearer ${TOKEN}` };

async function writeConfig(dir: string, etcd: TestEtcd, names: string[]): Promise<{ file: string; apis: Record<string, string> }> {
  const apis: Record<string, string> = {};
  for (const n of names) apis[n] = `127.0.0.1:${await freePort()}`;
  const file = join(dir, 'bulwark.yaml');
  writeFileSync(
    file,
    `cluster:
  name: test
  instances:
${names.map((n, i) => `    - { name: ${n}, api: ${apis[n]}, zone: z${i + 1} }`).join('\n')}
api: { token_env: BULWARK_TEST_CLUSTER_TOKEN }
state_dir: ${join(dir, 'var')}
coordination: { kind: etcd, endpoints: [${etcd.endpoint}], prefix: /view-test, lease_ttl: 2s }
`,
  );
  return { file, apis };
}

/** A subsystem whose one status row names the instance it runs in. */
function rowSubsystem(instance: string): Subsystem {
  return {
    name: 'probe',
    start: async () => undefined,
    stop: async () => undefined,
    status: () => ({ columns: ['instance', 'value'], rows: [{ instance, value: `row-of-${instance}` }] }),
  };
}

async function startInstance(file: string, name: string): Promise<{ daemon: Daemon; api: ApiServer; stop: () => Promise<void> }> {
  const loaded = loadInstanceConfig(file, name);
  const daemon = new Daemon(loaded, { logger: silentLogger(), factories: [() => rowSubsystem(name)] });
  await daemon.start();
  const api = new ApiServer(daemon, { listen: loaded.config.api.listen, token: TOKEN, logger: silentLogger() });
  await api.listen();
  return {
    daemon,
    api,
    stop: async () => {
      await api.close();
      await daemon.stop();
    },
  };
}

async function getJson<T>(api: string, path: string): Promise<T> {
  const r = await fetch(`http://${api}${path}`, { headers: auth });
  assert.equal(r.status, 200, await r.clone().text());
  return (await r.json()) as T;
}

test('cluster view: any instance shows every member and each instance\'s rows; an instance that is not running is gone and unreachable', async (t) => {
  const etcd = await startEtcd();
  const { dir, cleanup } = scratchDir();
  t.after(async () => {
    await etcd.stop();
    cleanup();
  });
  const { file, apis } = await writeConfig(dir, etcd, ['bw-1', 'bw-2', 'bw-3']);
  const a = await startInstance(file, 'bw-1');
  t.after(() => a.stop());
  const b = await startInstance(file, 'bw-2');
  t.after(() => b.stop());

  for (const [me, other] of [['bw-1', 'bw-2'], ['bw-2', 'bw-1']] as const) {
    const s = await getJson<ClusterStatus>(apis[me] as string, '/v1/status');
    assert.equal(s.cluster.self, me);
    assert.deepEqual(
      s.cluster.members.map((m) => [m.name, m.state, m.reachable, m.zone]),
      [['bw-1', 'up', true, 'z1'], ['bw-2', 'up', true, 'z2'], ['bw-3', 'gone', false, 'z3']],
    );
    assert.deepEqual((s.subsystems['probe'] as { rows: Array<{ value: string }> }).rows[0]?.value, `row-of-${me}`);
    const peer = s.cluster.instances[other];
    assert.equal(peer?.state, 'up');
    assert.equal(((peer?.status as ClusterStatus).subsystems['probe'] as { rows: Array<{ value: string }> }).rows[0]?.value, `row-of-${other}`);
    const gone = s.cluster.instances['bw-3'];
    assert.equal(gone?.state, 'unreachable');
    assert.equal(gone?.error?.code, 'BULWARK_CLUSTER_REMOTE');
    assert.match(gone?.error?.message ?? '', new RegExp(`instance at ${apis['bw-3']} is unreachable`));
  }

  // scope=local: only this instance, no fan-out (a peer asked with it never asks its peers)
  const local = await getJson<Record<string, unknown>>(apis['bw-1'] as string, '/v1/status?scope=local');
  assert.equal(local['cluster'], undefined);
  assert.equal(local['instance'], 'bw-1');
  assert.equal((await fetch(`http://${apis['bw-1']}/v1/status?scope=everything`, { headers: auth })).status, 400);

  // events: both instances' start events, each tagged with its instance; bw-3 listed as unreachable
  const ev = await getJson<{ events: Array<{ kind: string; instance: string }>; unreachable: Array<{ instance: string }> }>(apis['bw-2'] as string, '/v1/events?limit=20');
  assert.deepEqual([...new Set(ev.events.filter((e) => e.kind === 'daemon.start').map((e) => e.instance))].sort(), ['bw-1', 'bw-2']);
  assert.deepEqual(ev.unreachable.map((u) => u.instance), ['bw-3']);
  const evLocal = await getJson<{ events: Array<{ instance: string }> }>(apis['bw-2'] as string, '/v1/events?scope=local');
  assert.ok(evLocal.events.length > 0 && evLocal.events.every((e) => e.instance === 'bw-2'));

  // `bulwark status` prints the members first, then every instance's sections
  const cli = await runCli(['status', '-c', file, '--instance', 'bw-2'], { env: { BULWARK_TEST_CLUSTER_TOKEN: TOKEN } });
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^cluster test: 3 instance\(s\), 2 up in etcd, 1 unreachable; answered by bw-2/);
  assert.match(cli.stdout, /members\nINSTANCE\s+API\s+ZONE\s+MEMBER\s+API_REACHABLE/);
  assert.match(cli.stdout, /bw-2 \(this\)\s+127\.0\.0\.1:\d+\s+z2\s+up\s+yes/);
  assert.match(cli.stdout, /bw-3\s+127\.0\.0\.1:\d+\s+z3\s+gone\s+NO/);
  assert.ok(cli.stdout.indexOf('members') < cli.stdout.indexOf('=== instance bw-1'));
  assert.match(cli.stdout, /=== instance bw-1, zone z1 ===\n\nprobe\nINSTANCE\s+VALUE\nbw-1\s+row-of-bw-1/);
  assert.match(cli.stdout, /=== instance bw-3, zone z3 ===\nUNREACHABLE: instance at 127\.0\.0\.1:\d+ is unreachable/);

  // a graceful stop removes the member at once
  await b.stop();
  const after = await getJson<ClusterStatus>(apis['bw-1'] as string, '/v1/status');
  assert.deepEqual(after.cluster.members.map((m) => [m.name, m.state, m.reachable]), [['bw-1', 'up', true], ['bw-2', 'gone', false], ['bw-3', 'gone', false]]);
});

test('cluster view: a peer that hangs is unreachable after the short timeout, and the others are still shown', async (t) => {
  const etcd = await startEtcd();
  const { dir, cleanup } = scratchDir();
  t.after(async () => {
    await etcd.stop();
    cleanup();
  });
  const { file, apis } = await writeConfig(dir, etcd, ['bw-1', 'bw-2']);
  // bw-2's address accepts connections and never answers (a paused or half-dead instance)
  const { createServer } = await import('node:net');
  const sockets: Array<import('node:net').Socket> = [];
  const hang = createServer((s) => sockets.push(s));
  const [host, port] = (apis['bw-2'] as string).split(':') as [string, string];
  await new Promise<void>((r) => hang.listen(Number(port), host, () => r()));
  t.after(() => {
    for (const s of sockets) s.destroy();
    hang.close();
  });
  const a = await startInstance(file, 'bw-1');
  t.after(() => a.stop());
  const s = await getJson<ClusterStatus>(apis['bw-1'] as string, '/v1/status');
  assert.equal(s.cluster.instances['bw-2']?.state, 'unreachable');
  assert.match(s.cluster.instances['bw-2']?.error?.message ?? '', /no answer within 1000 ms/);
  assert.deepEqual(s.cluster.members.map((m) => [m.name, m.reachable]), [['bw-1', true], ['bw-2', false]]);
  assert.equal((s.subsystems['probe'] as { rows: Array<{ value: string }> }).rows[0]?.value, 'row-of-bw-1');
});

test('cluster view: a killed `bulwark up --instance` process turns unreachable at once and gone within a lease TTL', async (t) => {
  const etcd = await startEtcd();
  const { dir, cleanup } = scratchDir();
  t.after(async () => {
    await etcd.stop();
    cleanup();
  });
  const { file, apis } = await writeConfig(dir, etcd, ['bw-1', 'bw-2']);
  const env = { BULWARK_TEST_CLUSTER_TOKEN: TOKEN };
  const one = startCli(['up', '-c', file, '--instance', 'bw-1'], { env });
  const two = startCli(['up', '-c', file, '--instance', 'bw-2'], { env });
  t.after(() => {
    one.kill('SIGKILL');
    two.kill('SIGKILL');
  });
  const members = async (): Promise<ClusterStatus['cluster']['members']> => (await getJson<ClusterStatus>(apis['bw-1'] as string, '/v1/status')).cluster.members;
  await waitFor(async () => (await members()).every((m) => m.state === 'up' && m.reachable), { timeoutMs: 20_000, what: 'both instances up' });
  two.kill('SIGKILL');
  await exited(two);
  const right = await members();
  assert.equal(right[1]?.reachable, false, 'a dead API is unreachable at once');
  await waitFor(async () => (await members())[1]?.state === 'gone', { timeoutMs: 10_000, what: 'bw-2 gone from etcd after its session expired' });
  const s = await getJson<ClusterStatus>(apis['bw-1'] as string, '/v1/status');
  assert.equal(s.cluster.members[0]?.state, 'up');
  assert.equal(s.cluster.instances['bw-2']?.state, 'unreachable');
  one.kill('SIGTERM');
  assert.equal((await exited(one)).code, 0, one.output().stderr);
});

test('cluster view: the dashboard on any instance shows the members and every instance, an unreachable one marked', async (t) => {
  const { launchChromium } = await import('../testing/browser.js');
  const etcd = await startEtcd();
  const { dir, cleanup } = scratchDir();
  t.after(async () => {
    await etcd.stop();
    cleanup();
  });
  const { file, apis } = await writeConfig(dir, etcd, ['bw-1', 'bw-2', 'bw-3']);
  const a = await startInstance(file, 'bw-1');
  t.after(() => a.stop());
  const b = await startInstance(file, 'bw-2');
  t.after(() => b.stop());
  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await browser.newPage();
  await page.setExtraHTTPHeaders(auth); // the page's API calls carry the token
  await page.route('**/v1/events/stream**', (r) => r.abort()); // an open event stream would hold the API's graceful close
  await page.goto(`http://${apis['bw-2']}/`);
  page.on('pageerror', (e) => console.error('pageerror', e));
  await page.waitForSelector('section[data-cluster] table');
  const instances = await page.$$eval('div[data-instance]', (els) => els.map((e) => e.getAttribute('data-instance')));
  assert.deepEqual(instances, ['bw-1', 'bw-2', 'bw-3']);
  assert.match((await page.textContent('div[data-instance="bw-1"]')) ?? '', /row-of-bw-1/);
  assert.match((await page.textContent('div[data-instance="bw-2"]')) ?? '', /row-of-bw-2/);
  assert.match((await page.textContent('div[data-instance="bw-3"]')) ?? '', /unreachable: instance at 127\.0\.0\.1:\d+ is unreachable/);
  assert.match((await page.textContent('section[data-cluster]')) ?? '', /bw-3\s*127\.0\.0\.1:\d+\s*z3\s*gone/);
});
