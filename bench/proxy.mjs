#!/usr/bin/env node
// Bench: the same wrk load against (1) a backend directly, (2) through Bulwark's proxy (the real
// `bulwark up` process), (3) through HAProxy with an equivalent single-thread config; prints
// requests/s, p50/p99 latency, errors and CPU per request (process CPU time from /proc, user and
// system) of each and the Bulwark/HAProxy ratios. Then, through both: the kill-a-backend scenario
// (three backends, SIGKILL one mid-load, client-visible errors), the stuck-backend scenario (SIGSTOP
// one: client-visible errors and the worst latency, with a 500 ms per-try timeout on both sides),
// and many idle keep-alive connections (memory per connection). Everything on 127.0.0.1.
//
// Usage: npm run build && node bench/proxy.mjs [--duration 5] [--rounds 3] [--connections 50] [--idle 9000] [--only throughput,cores,stuck,idle,tcp,health,kill]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BIN = join(ROOT, 'bin/bulwark.js');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const DURATION = opt('duration', 5);
const ROUNDS = opt('rounds', 3);
const CONNS = opt('connections', 50);
const KILL_DURATION = 8;
const CORES = availableParallelism();
const ONLY = args.includes('--only') ? args[args.indexOf('--only') + 1].split(',') : undefined;
const want = (part) => !ONLY || ONLY.includes(part);
// 9000 by default: HAProxy reserves two descriptors per maxconn and this machine's ulimit -n is 20000.
const IDLE_CONNS = opt('idle', 9000);

for (const tool of ['wrk', 'haproxy']) {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
    console.error(`bench/proxy.mjs needs ${tool} (apt-get install ${tool})`);
    process.exit(1);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'bulwark-bench-proxy-'));
const children = new Set();
const scratch = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

const BACKEND = `
const http = require('node:http');
const srv = http.createServer((req, res) => {
  if (req.url === '/health') { res.end('ok'); return; }
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '12' });
  res.end('hello world\\n');
});
srv.keepAliveTimeout = 65000;
srv.listen(Number(process.argv[1]), '127.0.0.1', () => process.stdout.write('ready\\n'));
`;

function start(cmd, argv, readyText, opts = {}) {
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.on('exit', () => children.delete(child));
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${cmd} did not start: ${out}`)), 15000);
    const check = () => {
      if (readyText === undefined || out.includes(readyText)) {
        clearTimeout(t);
        resolve(child);
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`${cmd} exited ${code}: ${out}`));
    });
    if (readyText === undefined) check();
  });
}

async function waitHttp(port, tries = 200) {
  for (let i = 0; i < tries; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`);
      await r.text();
      if (r.status === 200) return;
    } catch {
      // not yet
    }
    await sleep(50);
  }
  throw new Error(`nothing answers 200 on ${port}`);
}

async function backend(port) {
  return start(process.execPath, ['-e', BACKEND, String(port)], 'ready');
}

function stop(child) {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 3000).unref();
  });
}

/** The pid and its child processes (Bulwark's proxy workers). */
function tree(pid) {
  const r = spawnSync('ps', ['--ppid', String(pid), '-o', 'pid=']);
  return [pid, ...String(r.stdout).split(/\s+/).filter(Boolean).map(Number)];
}

/** CPU seconds [user, system] of a process and its children so far. */
function cpuSplit(pid) {
  let u = 0;
  let s = 0;
  for (const p of tree(pid)) {
    const [a, b] = cpuSplitOne(p);
    u += a;
    s += b;
  }
  return [u, s];
}

/** CPU seconds [user, system] a process has used so far, from /proc (Linux). */
function cpuSplitOne(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return [Number(rest[11]) / 100, Number(rest[12]) / 100]; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return [NaN, NaN];
  }
}

function cpuSeconds(pid) {
  const [u, s] = cpuSplit(pid);
  return u + s;
}

function rssKb(pid) {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return NaN;
  }
}

/** wrk against port, also measuring the CPU the proxy process spent per request (robust to a busy machine). */
async function measured(port, pid) {
  const c0 = pid ? cpuSplit(pid) : [NaN, NaN];
  const r = await wrk(port, DURATION);
  const c1 = pid ? cpuSplit(pid) : [NaN, NaN];
  r.userUs = ((c1[0] - c0[0]) / r.total) * 1e6;
  r.sysUs = ((c1[1] - c0[1]) / r.total) * 1e6;
  r.cpuUs = r.userUs + r.sysUs;
  return r;
}

function toMs(s) {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

function wrk(port, seconds, onStart, conns = CONNS) {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t1', `-c${conns}`, `-d${seconds}s`, '--latency', '--timeout', '5s', `http://127.0.0.1:${port}/`], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    onStart?.();
    child.on('error', reject);
    child.on('exit', () => {
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
      const p50 = toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? '');
      const p99 = toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? '');
      const max = toMs(/Latency\s+\S+\s+\S+\s+(\S+)/.exec(out)?.[1] ?? '');
      const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
      const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
      const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const socketErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
      resolve({ rps, p50, p99, max, total, errors: non2xx + socketErrors, non2xx, socketErrors, raw: out });
    });
  });
}

function bulwarkConfig(listen, apiPort, backends, health, perTry, workers = 1) {
  const lines = [
    `proxy: { workers: ${workers} }`,
    `api: { listen: 127.0.0.1:${apiPort} }`,
    `state_dir: ${join(dir, `var-${listen}`)}`,
    `log: { level: warn }`,
    `services:`,
    `  web:`,
    `    listen: 127.0.0.1:${listen}`,
    `    balance: round-robin`,
    `    retries: 2`,
    `    backends:`,
    ...backends.map((p, i) => `      - { name: b${i + 1}, address: 127.0.0.1:${p} }`),
  ];
  if (health) lines.push(`    health: { http: { path: /health }, interval: 1s, timeout: 500ms, rise: 2, fall: 2 }`);
  if (perTry) lines.push(`    timeouts: { per_try: ${perTry}ms }`);
  const file = join(dir, `bulwark-${listen}.yaml`);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

function haproxyConfig(listen, backends, health, perTry, threads = 1) {
  // "Equivalent": one thread, keep-alive to the backends, round-robin; health checks with
  // HAProxy's defaults (inter 2s, fall 3, rise 2) when health is on. No redispatch: HAProxy's default.
  const file = join(dir, `haproxy-${listen}.cfg`);
  writeFileSync(
    file,
    `global
  nbthread ${threads}
  maxconn ${IDLE_CONNS + 500}
defaults
  mode http
  maxconn ${IDLE_CONNS + 500}
  timeout connect 1s
  timeout client 60s
  timeout server ${perTry ? `${perTry}ms` : '30s'}
  option http-keep-alive
  http-reuse safe
${perTry ? '  retries 2\n  option redispatch 1\n  retry-on conn-failure empty-response response-timeout\n' : ''}
frontend fe
  bind 127.0.0.1:${listen}
  default_backend be
backend be
  balance roundrobin
${health ? '  option httpchk GET /health\n' : ''}${backends.map((p, i) => `  server b${i + 1} 127.0.0.1:${p}${health ? ' check' : ''}`).join('\n')}
`,
  );
  return file;
}

async function startBulwark(listen, backends, health, perTry, workers = 1) {
  const apiPort = await freePort();
  const file = bulwarkConfig(listen, apiPort, backends, health, perTry, workers);
  const child = await start(process.execPath, [BIN, 'up', '-c', file], undefined);
  await waitHttp(listen);
  return child;
}

async function startHaproxy(listen, backends, health, perTry, threads = 1) {
  const file = haproxyConfig(listen, backends, health, perTry, threads);
  const child = await start('haproxy', ['-f', file, '-db'], undefined);
  const died = new Promise((_, reject) => child.once('exit', (code) => reject(new Error(`haproxy exited ${code} (run haproxy -c -f ${file})`))));
  await Promise.race([waitHttp(listen), died]);
  return child;
}

const fmt = (r) =>
  `${r.rps.toFixed(0).padStart(8)} req/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   errors ${r.errors}   cpu ${r.cpuUs.toFixed(1)} us/req (user ${r.userUs.toFixed(1)}, sys ${r.sysUs.toFixed(1)})   (runs: ${r.all.join(', ')} req/s; cpu ${r.allCpu.join(', ')} us/req)`;

function median(runs) {
  const sorted = [...runs].sort((a, b) => a.rps - b.rps);
  const m = sorted[Math.floor(sorted.length / 2)];
  const cpu = runs.map((r) => r.cpuUs).sort((a, b) => a - b);
  const byCpu = [...runs].sort((a, b) => a.cpuUs - b.cpuUs)[Math.floor(runs.length / 2)];
  const p99 = runs.map((r) => r.p99).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  return { ...m, p99, errors: runs.reduce((a, r) => a + r.errors, 0), all: runs.map((r) => Math.round(r.rps)), allCpu: runs.map((r) => r.cpuUs.toFixed(1)), cpuUs: cpu[Math.floor(cpu.length / 2)], userUs: byCpu.userUs, sysUs: byCpu.sysUs };
}

async function throughput(cores = 1) {
  const bport = await freePort();
  const b = await backend(bport);
  const runs = { direct: [], bulwark: [], haproxy: [] };
  let bul;
  let ha;
  try {
    await waitHttp(bport);
    const bw = await freePort();
    bul = await startBulwark(bw, [bport], false, undefined, cores);
    const hp = await freePort();
    ha = await startHaproxy(hp, [bport], false, undefined, cores);
    await wrk(bw, 3); // warm-up (JIT, keep-alive pool)
    await wrk(hp, 1);
    // Interleaved rounds, median reported: the machine is shared, so one run can be unlucky.
    for (let round = 0; round < ROUNDS; round++) {
      runs.direct.push(await measured(bport, b.pid));
      runs.bulwark.push(await measured(bw, bul.pid));
      runs.haproxy.push(await measured(hp, ha.pid));
    }
  } finally {
    await stop(bul);
    await stop(ha);
    await stop(b);
  }
  // Per-round ratios (each round runs Bulwark and HAProxy back to back): robust to the load of a shared machine changing between rounds.
  const paired = runs.bulwark.map((r, i) => r.cpuUs / runs.haproxy[i].cpuUs).sort((a, b) => a - b);
  return { direct: median(runs.direct), bulwark: median(runs.bulwark), haproxy: median(runs.haproxy), cpuRatio: paired[Math.floor(paired.length / 2)], cpuRatios: paired };
}

async function killScenario(kind) {
  const ports = [await freePort(), await freePort(), await freePort()];
  const bs = [];
  for (const p of ports) bs.push(await backend(p));
  const lp = await freePort();
  const proxy = kind === 'bulwark' ? await startBulwark(lp, ports, true) : await startHaproxy(lp, ports, true);
  try {
    await sleep(2500); // let health checks see every backend up
    const r = await wrk(lp, KILL_DURATION, () => {
      setTimeout(() => bs[1].kill('SIGKILL'), 2000);
    });
    return r;
  } finally {
    await stop(proxy);
    for (const b of bs) await stop(b);
  }
}

async function stuckScenario(kind) {
  const ports = [await freePort(), await freePort(), await freePort()];
  const bs = [];
  for (const p of ports) bs.push(await backend(p));
  const lp = await freePort();
  const proxy = kind === 'bulwark' ? await startBulwark(lp, ports, false, 500) : await startHaproxy(lp, ports, false, 500);
  try {
    const r = await wrk(lp, KILL_DURATION, () => {
      setTimeout(() => bs[1].kill('SIGSTOP'), 2000);
    });
    return r;
  } finally {
    bs[1].kill('SIGCONT');
    await stop(proxy);
    for (const b of bs) await stop(b);
  }
}

/** Opens n keep-alive connections, one request on each, and keeps them open idle; returns a closer. */
async function idleClients(port, n) {
  const { connect } = await import('node:net');
  const socks = [];
  let answered = 0;
  let failed = 0;
  await new Promise((resolve) => {
    let pending = n;
    const one = () => {
      const s = connect({ host: '127.0.0.1', port });
      socks.push(s);
      let got = '';
      const finish = (ok) => {
        if (ok) answered++;
        else failed++;
        if (--pending === 0) resolve();
      };
      s.on('error', () => finish(false));
      s.on('data', (d) => {
        got += d;
        if (got.includes('hello world')) {
          got = '';
          finish(true);
        }
      });
      s.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n');
    };
    // In batches, so the listen backlog is not the thing measured.
    let opened = 0;
    const batch = () => {
      for (let i = 0; i < 500 && opened < n; i++, opened++) one();
      if (opened < n) setTimeout(batch, 20);
    };
    batch();
  });
  return { answered, failed, close: () => socks.forEach((s) => s.destroy()) };
}

async function idleScenario() {
  const bport = await freePort();
  const b = await backend(bport);
  const out = {};
  try {
    for (const kind of ['bulwark', 'haproxy']) {
      const lp = await freePort();
      const proxy = kind === 'bulwark' ? await startBulwark(lp, [bport], false) : await startHaproxy(lp, [bport], false);
      try {
        await wrk(lp, 1, undefined, 10);
        await sleep(500);
        const rss0 = rssKb(proxy.pid);
        const cpu0 = cpuSeconds(proxy.pid);
        const c = await idleClients(lp, IDLE_CONNS);
        await sleep(1000);
        const rss1 = rssKb(proxy.pid);
        const cpu1 = cpuSeconds(proxy.pid);
        c.close();
        out[kind] = { answered: c.answered, failed: c.failed, kbPerConn: (rss1 - rss0) / IDLE_CONNS, rssMb: rss1 / 1024, cpuMsPerConn: ((cpu1 - cpu0) * 1000) / IDLE_CONNS };
      } finally {
        await stop(proxy);
      }
    }
  } finally {
    await stop(b);
  }
  return out;
}

const PG = '/usr/lib/postgresql/15/bin';

/** A scratch PostgreSQL (run as the postgres user) with a pgbench scale-1 database; undefined when unavailable. */
async function startPostgres() {
  if (spawnSync('sh', ['-c', `test -x ${PG}/pgbench && id postgres`]).status !== 0) return undefined;
  // Its own scratch directory: the postgres user cannot enter the bench's (mode 700, root's).
  const pgroot = mkdtempSync(join(tmpdir(), 'bulwark-bench-pg-'));
  scratch.push(pgroot);
  const pgdir = join(pgroot, 'data');
  const port = await freePort();
  const as = (argv) => spawnSync('runuser', ['-u', 'postgres', '--', ...argv], { encoding: 'utf8' });
  spawnSync('chown', ['postgres', pgroot]);
  if (as([`${PG}/initdb`, '-D', pgdir, '-A', 'trust', '-U', 'postgres']).status !== 0) return undefined;
  const child = spawn('runuser', ['-u', 'postgres', '--', `${PG}/postgres`, '-D', pgdir, '-p', String(port), '-k', pgdir, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=50'], { stdio: 'ignore' });
  children.add(child);
  for (let i = 0; i < 100 && as([`${PG}/pg_isready`, '-h', '127.0.0.1', '-p', String(port)]).status !== 0; i++) await sleep(100);
  if (as([`${PG}/pgbench`, '-i', '-s', '1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres']).status !== 0) return undefined;
  return { child, port, as, dir: pgdir };
}

async function waitTcp(port, tries = 300) {
  const { connect } = await import('node:net');
  for (let i = 0; i < tries; i++) {
    const ok = await new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`nothing listens on ${port}`);
}

function pgbench(pg, port, seconds) {
  const r = pg.as([`${PG}/pgbench`, '-S', '-n', '-c', '10', '-j', '1', '-T', String(seconds), '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', 'postgres']);
  const tps = Number(/tps = ([\d.]+)/.exec(r.stdout)?.[1] ?? NaN);
  const tx = Number(/number of transactions actually processed: (\d+)/.exec(r.stdout)?.[1] ?? NaN);
  return { tps, tx, failed: r.status !== 0 };
}

/** pgbench -S through a TCP service vs HAProxy mode tcp vs direct (transactions/s and proxy CPU per transaction). */
async function tcpScenario() {
  const pg = await startPostgres();
  if (!pg) return undefined;
  const bl = await freePort();
  const api = await freePort();
  const bfile = join(dir, 'bulwark-tcp.yaml');
  writeFileSync(bfile, `api: { listen: 127.0.0.1:${api} }\nstate_dir: ${join(dir, 'var-tcp')}\nlog: { level: warn }\nservices:\n  pg:\n    protocol: tcp\n    listen: 127.0.0.1:${bl}\n    backends:\n      - { name: pg1, address: 127.0.0.1:${pg.port} }\n`);
  const hl = await freePort();
  const hfile = join(dir, 'haproxy-tcp.cfg');
  writeFileSync(hfile, `global\n  nbthread 1\ndefaults\n  mode tcp\n  timeout connect 1s\n  timeout client 60s\n  timeout server 60s\nfrontend fe\n  bind 127.0.0.1:${hl}\n  default_backend be\nbackend be\n  server pg1 127.0.0.1:${pg.port}\n`);
  const bul = await start(process.execPath, [BIN, 'up', '-c', bfile], undefined);
  const ha = await start('haproxy', ['-f', hfile, '-db'], undefined);
  await waitTcp(bl);
  await waitTcp(hl);
  const out = { direct: [], bulwark: [], haproxy: [] };
  try {
    for (let round = 0; round < ROUNDS; round++) {
      out.direct.push(pgbench(pg, pg.port, DURATION));
      for (const [kind, port, pid] of [['bulwark', bl, bul.pid], ['haproxy', hl, ha.pid]]) {
        const c0 = cpuSeconds(pid);
        const r = pgbench(pg, port, DURATION);
        r.cpuUs = ((cpuSeconds(pid) - c0) / r.tx) * 1e6;
        out[kind].push(r);
      }
    }
  } finally {
    await stop(bul);
    await stop(ha);
    pg.as([`${PG}/pg_ctl`, '-D', pg.dir, 'stop', '-m', 'fast']);
    pg.child.kill('SIGKILL');
  }
  const med = (runs, key) => [...runs].map((r) => r[key]).sort((a, b) => a - b)[Math.floor(runs.length / 2)];
  return Object.fromEntries(Object.entries(out).map(([k, runs]) => [k, { tps: med(runs, 'tps'), cpuUs: runs[0]?.cpuUs === undefined ? NaN : med(runs, 'cpuUs'), failed: runs.some((r) => r.failed) }]));
}

/** Health checking 100 backends (one process listening on 100 ports), interval 1s: CPU per second of each proxy while idle. */
async function healthScenario() {
  const ports = [];
  for (let i = 0; i < 100; i++) ports.push(await freePort());
  const many = await start(process.execPath, ['-e', `const http=require('node:http');for(const p of process.argv.slice(1).map(Number))http.createServer((q,s)=>s.end('ok')).listen(p,'127.0.0.1');console.log('ready')`, ...ports.map(String)], 'ready');
  const out = {};
  try {
    for (const kind of ['bulwark', 'haproxy']) {
      const lp = await freePort();
      const proxy = kind === 'bulwark' ? await startBulwark(lp, ports, true) : await startHaproxy(lp, ports, true);
      try {
        await sleep(3000);
        const c0 = cpuSeconds(proxy.pid);
        await sleep(10_000);
        out[kind] = ((cpuSeconds(proxy.pid) - c0) / 10) * 1000; // ms of CPU per second
      } finally {
        await stop(proxy);
      }
    }
  } finally {
    await stop(many);
  }
  return out;
}

try {
  console.log(`bench/proxy.mjs: wrk -t1 -c${CONNS} -d${DURATION}s x ${ROUNDS} interleaved rounds (median shown), 12-byte responses, node ${process.version}, HAProxy nbthread 1`);
  if (want('throughput')) {
  const t = await throughput();
  console.log('\nthroughput (one Node.js backend process behind each)');
  console.log(`  direct   ${fmt(t.direct)}`);
  console.log(`  bulwark  ${fmt(t.bulwark)}`);
  console.log(`  haproxy  ${fmt(t.haproxy)}`);
  console.log(`  ratio bulwark/haproxy: ${(t.bulwark.rps / t.haproxy.rps).toFixed(2)}x requests/s (median runs)`);
  console.log(`  CPU per request, bulwark/haproxy: median of per-round ratios ${t.cpuRatio.toFixed(2)}x (rounds: ${t.cpuRatios.map((x) => x.toFixed(2)).join(', ')}), of medians ${(t.bulwark.cpuUs / t.haproxy.cpuUs).toFixed(2)}x (goal <= 1.25x; single-core throughput when CPU-bound: ${(1e6 / t.bulwark.cpuUs).toFixed(0)} vs ${(1e6 / t.haproxy.cpuUs).toFixed(0)} req/s per core)`);
  console.log(`  p99 bulwark/haproxy: ${(t.bulwark.p99 / t.haproxy.p99).toFixed(2)}x`);
  }
  if (CORES > 1 && want('cores')) {
    const a = await throughput(CORES);
    console.log(`\nall cores: Bulwark proxy.workers: ${CORES} vs HAProxy nbthread ${CORES} (CPU summed over the daemon and its workers)`);
    console.log(`  direct   ${fmt(a.direct)}`);
    console.log(`  bulwark  ${fmt(a.bulwark)}`);
    console.log(`  haproxy  ${fmt(a.haproxy)}`);
    console.log(`  ratio bulwark/haproxy: ${(a.bulwark.rps / a.haproxy.rps).toFixed(2)}x requests/s, ${a.cpuRatio.toFixed(2)}x CPU per request (median of per-round ratios), ${(a.bulwark.p99 / a.haproxy.p99).toFixed(2)}x p99`);
  }
  if (want('stuck')) {
  console.log(`\nstuck backend: SIGSTOP one of three 2s into a ${KILL_DURATION}s run (per-try 500 ms on both: Bulwark timeouts.per_try, HAProxy timeout server + retry-on response-timeout + redispatch)`);
  for (const kind of ['bulwark', 'haproxy']) {
    const r = await stuckScenario(kind);
    console.log(`  ${kind.padEnd(8)} ${r.total} requests, client-visible errors ${r.errors} (non-2xx ${r.non2xx}, socket ${r.socketErrors}), worst latency ${r.max.toFixed(0)} ms, p99 ${r.p99.toFixed(2)} ms`);
  }
  }
  if (want('idle')) {
  console.log(`\n${IDLE_CONNS} idle keep-alive client connections (one request each, then held open)`);
  const idle = await idleScenario();
  for (const [kind, r] of Object.entries(idle)) {
    console.log(`  ${kind.padEnd(8)} answered ${r.answered}, failed ${r.failed}, memory ${r.kbPerConn.toFixed(1)} KB per connection (RSS ${r.rssMb.toFixed(0)} MB), CPU ${(r.cpuMsPerConn * 1000).toFixed(0)} us per connection opened`);
  }
  }
  if (want('tcp')) {
  const tcp = await tcpScenario();
  if (!tcp) console.log('\nTCP mode: skipped (needs PostgreSQL 15 with pgbench and a postgres user)');
  else {
    console.log(`\nTCP mode: pgbench -S -c 10 (PostgreSQL 15) through a protocol: tcp service, HAProxy mode tcp (nbthread 1), and direct`);
    for (const [kind, r] of Object.entries(tcp)) console.log(`  ${kind.padEnd(8)} ${r.tps.toFixed(0)} tps${Number.isNaN(r.cpuUs) ? '' : `   proxy cpu ${r.cpuUs.toFixed(1)} us/transaction`}${r.failed ? '   (pgbench failed)' : ''}`);
    console.log(`  CPU per transaction, bulwark/haproxy: ${(tcp.bulwark.cpuUs / tcp.haproxy.cpuUs).toFixed(2)}x`);
  }
  }
  if (want('health')) {
  console.log('\nhealth checking 100 backends (HTTP probe every 1s; HAProxy: option httpchk, inter 2s default), idle');
  const hc = await healthScenario();
  for (const [kind, ms] of Object.entries(hc)) {
    const probesPerSecond = kind === 'bulwark' ? 100 : 50;
    console.log(`  ${kind.padEnd(8)} ${ms.toFixed(1)} ms of CPU per second, ${((ms * 1000) / probesPerSecond).toFixed(0)} us per probe`);
  }
  }
  if (want('kill')) {
  console.log(`\nkill one of three backends 2s into a ${KILL_DURATION}s run (health checks on; HAProxy with its defaults)`);
  const kb = await killScenario('bulwark');
  console.log(`  bulwark  ${kb.total} requests, client-visible errors ${kb.errors} (non-2xx ${kb.non2xx}, socket ${kb.socketErrors})`);
  const kh = await killScenario('haproxy');
  console.log(`  haproxy  ${kh.total} requests, client-visible errors ${kh.errors} (non-2xx ${kh.non2xx}, socket ${kh.socketErrors})`);
  }
} finally {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
}
