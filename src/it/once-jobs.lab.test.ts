// Work that must happen once moves when its host dies, in the namespace lab (three hosts, a
// three-member etcd, a Bulwark instance per host): a plan scheduled every two seconds runs only on
// the holder of its job lease; when the holder's host dies (link cut, every process SIGKILLed)
// another instance takes the schedule over and runs it, and the dead one ran nothing after.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { BULWARK_BIN, createLab, startLabEtcd, type LabProcess } from './lab/index.js';

const API = 7070;

interface Plans { plans: Array<{ plan: string; scheduled_here?: boolean; targets: Array<{ target: string; lastSuccess?: number }> }> }

test('a scheduled plan runs only on its lease holder, and moves to another host when the holder\'s host dies', async (t) => {
  const lab = await createLab({ hosts: ['h1', 'h2', 'h3'], clients: ['c1'] });
  t.after(() => lab.teardown());
  const etcd = await startLabEtcd(lab);
  const hosts = lab.hosts('host');
  const dir = join(lab.dir, 'once');
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'data', 'f'), randomBytes(10_000));
  writeFileSync(join(dir, 'pw'), 'backup-password\n', { mode: 0o600 });
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, randomBytes(24).toString('hex') + '\n', { mode: 0o600 });
  const file = join(dir, 'bulwark.yaml');
  writeFileSync(
    file,
    stringify({
      cluster: { name: 'lab', instances: hosts.map((h, i) => ({ name: `bw-${i + 1}`, api: `${h.address}:${API}`, zone: String.fromCharCode(97 + i) })) },
      api: { token_file: tokenFile },
      state_dir: join(dir, 'state'),
      coordination: { kind: 'etcd', endpoints: etcd.endpoints, lease_ttl: '2s' },
      // the repository stands for shared storage every host reaches (one filesystem in the lab)
      backups: { app: { paths: ['./data'], password_file: 'pw', schedule: '*/2 * * * * *', targets: [{ name: 'shared', repo: './repo', media: 'nas' }] } },
    }),
  );
  const procs: LabProcess[] = hosts.map((h, i) => h.spawn(process.execPath, [BULWARK_BIN, 'up', '-c', file, '--instance', `bw-${i + 1}`], { name: `bw-${i + 1}`, logFile: join(dir, `bw-${i + 1}.log`) }));
  const c1 = lab.host('c1');
  const plans = async (i: number): Promise<Plans | undefined> => {
    const r = await c1.http(`http://${(hosts[i] as { address: string }).address}:${API}/v1/backups`, { tokenFile });
    return r.ok && r.status === 200 ? (r.body as Plans) : undefined;
  };
  const view = async (): Promise<Array<{ here: boolean; last: number | undefined } | undefined>> =>
    (await Promise.all([0, 1, 2].map(plans))).map((p) => (p ? { here: p.plans[0]?.scheduled_here === true, last: p.plans[0]?.targets[0]?.lastSuccess } : undefined));
  const waitFor = async <T>(fn: () => Promise<T | undefined>, what: string, ms = 60_000): Promise<T> => {
    const until = Date.now() + ms;
    for (;;) {
      const v = await fn();
      if (v !== undefined) return v;
      const dead = procs.find((p, i) => !p.running && !lab.host(`h${i + 1}`).dead);
      if (dead) throw new Error(`an instance exited: ${dead.tail().slice(-2000)}`);
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(await view())}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  };

  const holder = await waitFor(async () => {
    const v = await view();
    const i = v.findIndex((x) => x?.here && x.last !== undefined);
    return i >= 0 && v.filter((x) => x?.here).length === 1 ? i : undefined;
  }, 'one holder that ran the plan');
  const before = await view();
  for (const [i, x] of before.entries()) if (i !== holder) assert.equal(x?.last, undefined, `bw-${i + 1} (not the holder) ran nothing`);

  await lab.host(`h${holder + 1}`).kill();
  const killedAt = Date.now();
  const next = await waitFor(async () => {
    const v = await view();
    const i = v.findIndex((x, j) => j !== holder && x?.here && x.last !== undefined && x.last > killedAt - 1000);
    return i >= 0 ? i : undefined;
  }, 'another instance takes the schedule over and runs it');
  assert.notEqual(next, holder);
  const after = await view();
  assert.equal(after.filter((x) => x?.here).length, 1, 'one holder among the survivors');
  for (const [i, x] of after.entries()) if (i !== holder && i !== next) assert.equal(x?.last, undefined, `bw-${i + 1} ran nothing`);
  await Promise.all(procs.filter((_, i) => i !== holder).map((p) => p.stop(10_000)));
});
