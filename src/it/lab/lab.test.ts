// The lab's self-test: its hosts really reach each other, its faults really do what they say
// (partitions both ways and one way, host death, pauses, etcd member and quorum loss), and its
// teardown really leaves nothing behind. Every check is paired with the case where it must fail.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createLab, listNamespaces, removeStale, startLabEtcd, startPostgres, type Lab, type LabHost, type LabProcess } from './index.js';
import { alive, hasCommand, ip } from './netns.js';

const PORT = 7000;
let lab: Lab;
const servers = new Map<string, LabProcess>();

before(async () => {
  lab = await createLab({ hosts: ['h1', 'h2', 'h3'], clients: ['c1'] });
});

after(async () => {
  await lab?.teardown();
});

const h = (n: string): LabHost => lab.host(n);

async function reach(from: string, to: string): Promise<boolean> {
  // generous: a loaded machine may be slow to answer; a cut path never answers at all
  const r = await h(from).tcp(h(to).address, PORT, 2000);
  return r.ok && r['data'] === 'hello\n';
}

async function serveAll(): Promise<void> {
  for (const host of lab.hosts()) {
    if (!servers.get(host.name)?.running) servers.set(host.name, await host.serve(PORT));
  }
}

/** Every ordered pair of distinct hosts and whether it connects. */
async function matrix(): Promise<Record<string, boolean>> {
  const names = lab.hosts().map((x) => x.name);
  const pairs = names.flatMap((a) => names.filter((b) => b !== a).map((b) => [a, b] as const));
  const results = await Promise.all(pairs.map(([a, b]) => reach(a, b)));
  return Object.fromEntries(pairs.map(([a, b], i) => [`${a}->${b}`, results[i] as boolean]));
}

test('hosts reach each other over TCP on their own addresses, and only there', async () => {
  await serveAll();
  const m = await matrix();
  assert.deepEqual(Object.entries(m).filter(([, ok]) => !ok), [], `unreachable pairs: ${JSON.stringify(m)}`);
  assert.equal(h('h2').address, `198.18.${lab.id}.2`);
  assert.equal(h('c1').address, `198.18.${lab.id}.101`);
  // the check can fail: a port nobody listens on is refused
  const refused = await h('c1').tcp(h('h1').address, PORT + 1, 800);
  assert.equal(refused.ok, false);
  assert.equal(refused.error, 'ECONNREFUSED');
  // nothing of the lab in the root namespace: no lab address, no veth, no bridge
  const rootLinks = ip(['-o', 'link']);
  const rootAddrs = ip(['-o', 'addr']);
  assert.doesNotMatch(rootAddrs, new RegExp(`198\\.18\\.${lab.id}\\.`));
  assert.doesNotMatch(rootLinks, /\bv-h1\b|\bv-c1\b/);
  // but they exist where they should
  assert.match(ip(['-n', lab.switchNs, '-o', 'link']), /v-h1@/);
  assert.match(ip(['-n', h('h1').ns, '-o', 'addr']), new RegExp(`inet 198\\.18\\.${lab.id}\\.1/24`));
  // and no route out of a host: an address outside the lab subnet is unreachable from inside
  const out = await h('h1').tcp('198.19.200.1', PORT, 800);
  assert.equal(out.ok, false);
  assert.equal(out.error, 'ENETUNREACH');
});

test('a partition blocks exactly the cut (both ways), and heal restores every path', async () => {
  await serveAll();
  lab.partition(['h1'], ['h2', 'h3']);
  const m = await matrix();
  const expected: Record<string, boolean> = {};
  for (const k of Object.keys(m)) {
    const [a, b] = k.split('->');
    expected[k] = !((a === 'h1' && b !== 'c1') || (b === 'h1' && a !== 'c1'));
  }
  assert.deepEqual(m, expected);
  assert.match(lab.rules('h1'), /198\.18\.\d+\.2/);
  lab.heal();
  const healed = await matrix();
  assert.deepEqual(Object.entries(healed).filter(([, ok]) => !ok), [], `still cut after heal: ${JSON.stringify(healed)}`);
  assert.doesNotMatch(lab.rules('h1'), /198\.18\.\d+\.2/);
});

async function udpArrives(from: string, to: string, tag: string): Promise<boolean> {
  const srv = servers.get(to);
  assert.ok(srv?.running);
  const line = `udp ${h(from).address} ${tag}`;
  const sent = await h(from).udp(h(to).address, PORT, tag);
  assert.equal(sent.ok, true, JSON.stringify(sent));
  try {
    await srv.waitForLine(new RegExp(`^${line.replace(/\./g, '\\.')}$`), 2000);
    return true;
  } catch {
    return false;
  }
}

test('a one-way partition drops packets in one direction only', async () => {
  await serveAll();
  assert.equal(await udpArrives('h1', 'h2', 'before'), true);
  lab.partition(['h1'], ['h2'], { oneWay: true });
  try {
    assert.equal(await udpArrives('h1', 'h2', 'cut'), false, 'h1 -> h2 must be dropped');
    assert.equal(await udpArrives('h2', 'h1', 'open'), true, 'h2 -> h1 must still be delivered');
    assert.equal(await udpArrives('h1', 'h3', 'other'), true, 'h1 -> h3 is not part of the partition');
    // TCP needs both directions: no connection either way
    assert.equal(await reach('h1', 'h2'), false);
  } finally {
    lab.heal();
  }
  assert.equal(await udpArrives('h1', 'h2', 'healed'), true);
});

test('kill: every process of the host dies (tracked or not) and its address answers nothing', async () => {
  await serveAll();
  const host = h('h3');
  // a process the lab tracks, and one it does not (a background grandchild of a shell)
  const sh = host.spawn('sh', ['-c', 'sleep 1000 & echo started; wait'], { name: 'sh' });
  await sh.waitForLine(/^started$/);
  const before = host.pids();
  assert.ok(before.length >= 3, `expected serve, sh and sleep in h3: ${before.join(',')}`);
  assert.equal(await reach('c1', 'h3'), true);
  await host.kill();
  assert.equal(sh.exitInfo?.signal, 'SIGKILL');
  assert.equal(servers.get('h3')?.exitInfo?.signal, 'SIGKILL');
  assert.deepEqual(host.pids(), []);
  assert.deepEqual(before.filter(alive), []);
  // a dead host answers nothing (no RST): the connect times out
  const dead = await h('c1').tcp(host.address, PORT, 800);
  assert.equal(dead.ok, false);
  assert.equal(dead.error, 'timeout');
  // other hosts are untouched
  assert.equal(await reach('c1', 'h2'), true);
  host.revive();
  servers.set('h3', await host.serve(PORT));
  assert.equal(await reach('c1', 'h3'), true);
});

test('pause stops one process (connections are accepted by the kernel, never answered); resume continues it', async () => {
  await serveAll();
  const srv = servers.get('h2') as LabProcess;
  h('h2').pause(srv);
  try {
    const r = await h('c1').tcp(h('h2').address, PORT, 800);
    assert.equal(r.ok, false);
    assert.equal(r.error, 'timeout');
  } finally {
    h('h2').resume(srv);
  }
  assert.equal(await reach('c1', 'h2'), true);
});

test('the iptables backend cuts the same way as nft', { skip: !hasCommand('iptables') && 'iptables is not installed' }, async () => {
  const other = await createLab({ hosts: ['a', 'b'], clients: ['c'], firewall: 'iptables' });
  try {
    const srv = await Promise.all(other.hosts().map((x) => x.serve(PORT)));
    assert.equal(srv.length, 3);
    const ok = async (from: string, to: string): Promise<boolean> => (await other.host(from).tcp(other.host(to).address, PORT, 2000)).ok;
    assert.equal(await ok('a', 'b'), true);
    other.partition(['a'], ['b']);
    assert.deepEqual([await ok('a', 'b'), await ok('b', 'a'), await ok('c', 'a'), await ok('c', 'b')], [false, false, true, true]);
    assert.match(other.rules('b'), /-A INPUT -s 198\.18\.\d+\.1\/32 -j DROP/);
    other.heal();
    assert.deepEqual([await ok('a', 'b'), await ok('b', 'a')], [true, true]);
  } finally {
    await other.teardown();
  }
  assert.deepEqual(other.leftovers(), []);
});

test('etcd: three members; one lost keeps writes working, quorum lost refuses them, restarts heal', async () => {
  const etcd = await startLabEtcd(lab);
  assert.deepEqual(etcd.endpoints, [1, 2, 3].map((i) => `http://198.18.${lab.id}.${i}:2379`));
  // a put that may wait for an election (about the election timeout) before it goes through
  const put = async (k: string, endpoints = etcd.endpoints): Promise<boolean> => {
    const w = await etcd.writable({ endpoints, withinMs: 15_000 });
    return w.ok && (await etcd.ctl(['put', k, 'v'], { endpoints })).ok;
  };
  assert.equal(await put('/t/all'), true);
  await etcd.kill('h3');
  assert.equal(await put('/t/one-lost'), true, 'two of three members are a quorum');
  const get = await etcd.ctl(['get', '/t/one-lost', '--print-value-only']);
  assert.equal(get.stdout.trim(), 'v');
  const killed = await etcd.killMajority('h1');
  assert.deepEqual(killed.sort(), ['h2', 'h3']);
  const refused = await etcd.writable({ endpoints: [etcd.member('h1').endpoint], withinMs: 3000 });
  assert.equal(refused.ok, false, 'one of three members must refuse a write');
  etcd.start('h2');
  await etcd.waitHealthy({ hosts: ['h1', 'h2'] });
  assert.equal(await put('/t/quorum-back'), true);
  // a host death takes its member with it (link cut and process killed), the rest carries on
  etcd.start('h3');
  await etcd.waitHealthy({ hosts: ['h1', 'h2', 'h3'] });
  await h('h1').kill();
  assert.equal(etcd.member('h1').proc?.running, false);
  assert.equal(await put('/t/host-dead', [etcd.member('h2').endpoint, etcd.member('h3').endpoint]), true);
  h('h1').revive();
  etcd.start('h1');
  await etcd.waitHealthy({ hosts: ['h1', 'h2', 'h3'] });
  const back = await etcd.ctl(['get', '/t/host-dead', '--print-value-only'], { endpoints: [etcd.member('h1').endpoint] });
  assert.equal(back.stdout.trim(), 'v');
  for (const host of ['h1', 'h2', 'h3']) await etcd.kill(host);
});

test('PostgreSQL runs inside a host as postgres, answers on the host address, and dies with the host', async () => {
  const server = await startPostgres(h('h2'));
  const r = await h('c1').sql(h('h2').address, 5432, 'SELECT host(inet_server_addr()) AS addr, current_user AS u');
  assert.equal(r.ok, true, r.error);
  assert.deepEqual(r.rows, [{ addr: h('h2').address, u: 'postgres' }]);
  const owner = spawnSync('stat', ['-c', '%U', server.dataDir], { encoding: 'utf8' }).stdout.trim();
  assert.equal(owner, 'postgres');
  await h('h2').kill();
  assert.equal(server.proc.running, false);
  const after = await h('c1').sql(h('h2').address, 5432, 'SELECT 1');
  assert.equal(after.ok, false);
  h('h2').revive();
  await server.restart();
  const again = await h('c1').sql(h('h2').address, 5432, 'SELECT 1 AS one');
  assert.deepEqual(again.rows, [{ one: 1 }]);
});

test('a stale namespace of a dead run is removed; teardown leaves no namespace, veth or process', async () => {
  // a namespace named like a lab of a process that is gone, with a process inside it
  const dead = spawnSync('true').pid as number;
  const stale = `bwl${dead}-1-x`;
  ip(['netns', 'add', stale]);
  const sleeper = spawnSync('sh', ['-c', `ip netns exec ${stale} sleep 1000 >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' });
  const sleeperPid = Number(sleeper.stdout.trim());
  assert.ok(alive(sleeperPid));
  assert.ok(listNamespaces().includes(stale));
  const removed = removeStale();
  assert.ok(removed.includes(stale), `not removed: ${removed.join(',')}`);
  assert.ok(!listNamespaces().includes(stale));
  for (let i = 0; i < 50 && alive(sleeperPid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(alive(sleeperPid), false);
  // the live lab is never taken for stale
  assert.deepEqual(lab.leftovers().sort(), [...lab.namespaces].sort());

  await serveAll();
  const pids = lab.hosts().flatMap((x) => x.pids());
  assert.ok(pids.length >= 4, 'the lab runs processes before teardown');
  const mine = [...lab.namespaces];
  await lab.teardown();
  assert.deepEqual(lab.leftovers(), []);
  assert.deepEqual(listNamespaces().filter((n) => mine.includes(n) || n.startsWith(`bwl${process.pid}-`)), []);
  for (let i = 0; i < 50 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(pids.filter(alive), []);
  assert.doesNotMatch(ip(['-o', 'link']), /\bv-h\d\b|\bv-c1\b/);
});

/** Runs a child process that makes a lab, starts a sleeper in it, and then ends as `how` says. */
async function childLab(how: 'SIGTERM' | 'SIGINT' | 'exit' | 'throw'): Promise<{ namespaces: string[]; pids: number[]; code: number | null; signal: string | null }> {
  const script = `
    import { createLab } from ${JSON.stringify(new URL('./index.js', import.meta.url).href)};
    const lab = await createLab({ hosts: ['a'], clients: ['b'] });
    const p = lab.host('a').spawn('sleep', ['1000']);
    console.log(JSON.stringify({ namespaces: lab.namespaces, pids: [p.pid] }));
    if (${JSON.stringify(how)} === 'exit') process.exit(3);
    if (${JSON.stringify(how)} === 'throw') throw new Error('a test failed');
    setInterval(() => {}, 1000);
  `;
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const first = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0] as string);
    });
    child.once('exit', () => resolve(out.split('\n')[0] ?? ''));
    child.once('error', reject);
  });
  const info = JSON.parse(first) as { namespaces: string[]; pids: number[] };
  if (how === 'SIGTERM' || how === 'SIGINT') child.kill(how);
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve([child.exitCode, child.signalCode]);
    else child.once('exit', (c, s) => resolve([c, s]));
  });
  return { ...info, code, signal };
}

for (const how of ['SIGTERM', 'SIGINT', 'exit', 'throw'] as const) {
  test(`a process that made a lab and ends by ${how} leaves no namespace or process behind`, async () => {
    const r = await childLab(how);
    assert.equal(r.namespaces.length, 3, 'the child made a switch, a host and a client');
    assert.notEqual(r.code, 0, 'the child did not end normally');
    for (let i = 0; i < 50 && r.pids.some(alive); i++) await new Promise((res) => setTimeout(res, 20));
    assert.deepEqual(listNamespaces().filter((n) => r.namespaces.includes(n)), []);
    assert.deepEqual(r.pids.filter(alive), []);
  });
}
