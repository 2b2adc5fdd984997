// `bulwark audit` in cluster mode reports from live cluster state: with two live instances on two
// hosts and zones and a three-member etcd it passes; with one instance down, or a one-member
// etcd, it exits 1 naming the single point of failure.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../core/clock.js';
import { EtcdCoordination, Membership } from '../coord/index.js';
import { startEtcd } from '../coord/etcd.testkit.js';
import { startEtcdCluster } from '../coord/etcd-cluster.testkit.js';
import { freePort, runCli, scratchDir } from '../testing/helpers.js';

async function setup(endpoints: string[]): Promise<{ file: string; cleanup: () => void; up: (name: string) => Promise<() => Promise<void>> }> {
  const { dir, cleanup } = scratchDir();
  const apis = { 'bw-1': `127.0.0.1:${await freePort()}`, 'bw-2': `127.0.0.2:${await freePort()}` };
  const file = join(dir, 'bulwark.yaml');
  writeFileSync(
    file,
    `cluster:
  name: prod
  instances:
    - { name: bw-1, api: ${apis['bw-1']}, zone: a }
    - { name: bw-2, api: ${apis['bw-2']}, zone: b }
state_dir: ${join(dir, 'var')}
coordination: { kind: etcd, endpoints: [${endpoints.join(', ')}], prefix: /audit-cli }
`,
  );
  const up = async (name: string): Promise<() => Promise<void>> => {
    const coord = new EtcdCoordination({ endpoints, prefix: '/audit-cli', ttlMs: 2000, identity: name, clock: systemClock });
    const m = new Membership({ kv: coord.kv, clock: systemClock, everyMs: 60_000, health: () => ({ subsystems: 0, errors: [] }), self: { name, api: apis[name as 'bw-1'], version: 't', started_at: 0, pid: 0 } });
    await m.start();
    return async () => {
      await m.stop();
      await coord.close();
    };
  };
  return { file, cleanup, up };
}

test('bulwark audit (cluster): two live instances on two hosts and zones over a three-member etcd pass; one instance down fails', async (t) => {
  const etcd = await startEtcdCluster(3);
  const s = await setup(etcd.endpoints);
  t.after(async () => {
    await etcd.stop();
    s.cleanup();
  });
  const down1 = await s.up('bw-1');
  const down2 = await s.up('bw-2');
  const ok = await runCli(['audit', '-c', s.file]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /live cluster prod: 2 of 2 instance\(s\) live \(bw-1, bw-2\); etcd has 3 member\(s\)/);
  assert.match(ok.stdout, /single points of failure: none/);
  await down2();
  const bad = await runCli(['audit', '-c', s.file, '--json']);
  assert.equal(bad.code, 1);
  const out = JSON.parse(bad.stdout) as { ok: boolean; spof: Array<{ subject: string; severity: string; problem: string }>; live: { instances: Array<{ name: string; up: boolean }> } };
  assert.equal(out.ok, false);
  assert.deepEqual(out.live.instances.map((i) => [i.name, i.up]), [['bw-1', true], ['bw-2', false]]);
  assert.ok(out.spof.some((f) => f.subject === 'cluster.instances' && f.severity === 'violation' && /a single live instance \(bw-1 of 2\)/.test(f.problem)), JSON.stringify(out.spof));
  await down1();
});

test('bulwark audit (cluster): a one-member etcd is a single point of failure', async (t) => {
  const etcd = await startEtcd();
  const s = await setup([etcd.endpoint]);
  t.after(async () => {
    await etcd.stop();
    s.cleanup();
  });
  const d1 = await s.up('bw-1');
  const d2 = await s.up('bw-2');
  t.after(async () => {
    await d1();
    await d2();
  });
  const r = await runCli(['audit', '-c', s.file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /control-plane\s+coordination\s+VIOLATION\s+etcd has 1 member\(s\)/);
  assert.match(r.stderr, /single point\(s\) of failure: coordination/);
});
