// `bulwark status` on any instance shows all three hosts, in the namespace lab (three hosts, a
// three-member etcd, a Bulwark instance per host): every instance lists every member and every
// instance's rows; when a host dies (link cut, every process SIGKILLed) the survivors show it
// unreachable at once and gone once its etcd session expires, and still show each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { BULWARK_BIN, createLab, startLabEtcd, type Lab, type LabProcess } from './lab/index.js';

const API = 7070;
const ECHO = 7100;

interface Member { name: string; state: string; reachable: boolean; zone: string | null }
interface Status { cluster: { self: string; members: Member[]; instances: Record<string, { state: string; status?: { subsystems: Record<string, { rows?: Array<Record<string, unknown>> }> } }> } }

test('bulwark status on any of three hosts shows all three; a dead host is unreachable, then gone, and never hides the others', async (t) => {
  const lab: Lab = await createLab({ hosts: ['h1', 'h2', 'h3'], clients: ['c1'] });
  t.after(() => lab.teardown());
  const etcd = await startLabEtcd(lab);
  const hosts = lab.hosts('host');
  for (const h of hosts) await h.serve(ECHO);
  const dir = join(lab.dir, 'view');
  mkdirSync(dir, { recursive: true });
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
      services: {
        echo: {
          protocol: 'tcp',
          listen: `0.0.0.0:7200`,
          backends: hosts.map((h, i) => ({ name: `echo-${i + 1}`, address: `${h.address}:${ECHO}`, zone: String.fromCharCode(97 + i) })),
          health: { tcp: {}, interval: '500ms', timeout: '300ms' },
        },
      },
    }),
  );
  const procs: LabProcess[] = hosts.map((h, i) => h.spawn(process.execPath, [BULWARK_BIN, 'up', '-c', file, '--instance', `bw-${i + 1}`], { name: `bw-${i + 1}`, logFile: join(dir, `bw-${i + 1}.log`) }));
  const c1 = lab.host('c1');
  const status = async (host: number): Promise<Status | undefined> => {
    const r = await c1.http(`http://${(hosts[host] as { address: string }).address}:${API}/v1/status`, { tokenFile });
    if (r.ok && r.status === 200) return r.body as Status;
    last = JSON.stringify(r).slice(0, 500);
    return undefined;
  };
  let last = '';
  const deadline = Date.now() + 60_000;
  for (;;) {
    const all = await Promise.all([0, 1, 2].map(status));
    if (all.every((s) => s?.cluster.members.every((m) => m.state === 'up' && m.reachable))) break;
    const dead = procs.find((p) => !p.running);
    if (dead) throw new Error(`an instance exited: ${dead.tail().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`the three instances did not all see each other: ${JSON.stringify(all.map((s) => s?.cluster.members))}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  for (const i of [0, 1, 2]) {
    const s = (await status(i)) as Status;
    assert.equal(s.cluster.self, `bw-${i + 1}`);
    assert.deepEqual(s.cluster.members.map((m) => [m.name, m.zone, m.state, m.reachable]), [['bw-1', 'a', 'up', true], ['bw-2', 'b', 'up', true], ['bw-3', 'c', 'up', true]]);
    for (const other of [1, 2, 3].filter((n) => n !== i + 1)) {
      const v = s.cluster.instances[`bw-${other}`];
      assert.equal(v?.state, 'up');
      assert.ok((v?.status?.subsystems['proxy']?.rows ?? []).length === 3, `bw-${other}'s proxy rows are shown by bw-${i + 1}`);
    }
  }
  const cli = await lab.host('h2').exec(process.execPath, [BULWARK_BIN, 'status', '-c', file, '--instance', 'bw-2']);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /^cluster lab: 3 instance\(s\), 3 up in etcd, 0 unreachable; answered by bw-2/);
  for (const [n, z] of [['1', 'a'], ['2', 'b'], ['3', 'c']]) {
    assert.match(cli.stdout, new RegExp(`bw-${n}( \\(this\\))?\\s+198\\.18\\.\\d+\\.${n}:${API}\\s+${z}\\s+up\\s+yes`));
    assert.match(cli.stdout, new RegExp(`=== instance bw-${n}[^\\n]*===\\n\\nhealth`));
  }

  await lab.host('h3').kill();
  const right = await status(0);
  assert.ok(right, `bw-1 answers while h3 is dead: ${last}`);
  assert.equal(right?.cluster.instances['bw-3']?.state, 'unreachable', 'a dead host is unreachable at once');
  assert.deepEqual(right?.cluster.members.slice(0, 2).map((m) => [m.name, m.reachable]), [['bw-1', true], ['bw-2', true]]);
  assert.equal(right?.cluster.instances['bw-2']?.state, 'up', 'the dead host hides no one');
  const until = Date.now() + 20_000;
  for (;;) {
    const s = await status(1);
    if (s?.cluster.members[2]?.state === 'gone') break;
    if (Date.now() > until) throw new Error(`bw-3 never turned gone: ${JSON.stringify(s?.cluster.members)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  await Promise.all(procs.slice(0, 2).map((p) => p.stop(10_000)));
});
