#!/usr/bin/env node
// Failover write downtime: Bulwark vs Patroni (Debian's package, etcd, Patroni's default
// settings), in one run, on this machine, real PostgreSQL 15 on loopback.
//
// For each run a client writes one row every 10 ms; the primary is killed with SIGKILL; the
// write downtime is the time from the kill to the end of the longest gap between acknowledged
// writes (so a write an orphaned backend acknowledges just after the kill does not end it).
//   Bulwark: `bulwark up` with a two-node pair; the client writes through databases.main.listen;
//            the primary's postmaster is SIGKILLed (Bulwark runs elsewhere and survives).
//   Patroni: two Patroni members on one etcd; the client connects to whichever node accepts
//            writes (libpq-style multi-host, checking pg_is_in_recovery) — no HAProxy in front,
//            which only helps Patroni. Two scenarios:
//            node loss  = SIGKILL of the primary's Patroni AND its postmaster (the machine died),
//            pg crash   = SIGKILL of the postmaster only (Patroni restarts it in place).
//
// Usage: npm run build && node bench/failover.mjs [--runs N] [--patroni-runs N] [--no-patroni]
import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { allStreaming, startPlane } from '../dist/failover/e2e.testkit.js';
import { freePort, postmasterPid } from '../dist/failover/pg.testkit.js';
import { startEtcd } from '../dist/coord/etcd.testkit.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const RUNS = opt('--runs', 5);
const PATRONI_RUNS = opt('--patroni-runs', 2);
const WITH_PATRONI = !args.includes('--no-patroni');
const WITH_BULWARK = !args.includes('--no-bulwark');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Ctrl-C or SIGTERM: stop whatever this run started (etcd, Patroni, PostgreSQL, bulwark up).
const cleanups = new Set();
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    for (const fn of [...cleanups].reverse()) await Promise.resolve().then(fn).catch(() => undefined);
    process.exit(130);
  });
}

/** Writes a row every 10 ms to whichever of `targets` accepts writes; records ack times. */
class Load {
  acks = [];
  errors = [];
  #stop = false;
  #done;
  constructor(targets) {
    this.targets = targets;
  }
  start() {
    this.#done = this.#run();
  }
  async #connect() {
    for (const t of this.targets) {
      const c = new pg.Client({ host: t.host, port: t.port, user: 'postgres', password: 'bench', database: 'postgres', connectionTimeoutMillis: 1000, query_timeout: 5000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        if (this.targets.length > 1) {
          const r = await c.query('SELECT pg_is_in_recovery() AS r');
          if (r.rows[0].r) {
            await c.end();
            continue;
          }
        }
        return c;
      } catch {
        await c.end().catch(() => undefined);
      }
    }
    return undefined;
  }
  async #run() {
    let c;
    let id = 0;
    while (!this.#stop) {
      try {
        c ??= await this.#connect();
        if (!c) {
          await sleep(50);
          continue;
        }
        id++;
        await c.query('INSERT INTO load (id) VALUES ($1)', [id]);
        this.acks.push(Date.now());
        await sleep(10);
      } catch (err) {
        this.errors.push(err.message);
        if (this.errors.length > 50) this.errors.shift();
        await c?.end().catch(() => undefined);
        c = undefined;
        await sleep(50);
      }
    }
    await c?.end().catch(() => undefined);
  }
  /**
   * Waits for 20 acknowledged writes after the kill, then returns the end of the longest gap
   * between consecutive acknowledged writes around the kill, minus the kill time. (A write can
   * still be acknowledged by an orphaned backend of the dead postmaster right after the kill;
   * that does not end the downtime.)
   */
  async downtimeAfter(t, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const after = this.acks.filter((x) => x > t);
      if (after.length >= 20) break;
      if (Date.now() > deadline) return NaN;
      await sleep(20);
    }
    const window = this.acks.filter((x) => x >= t - 2000);
    let best = 0;
    let end = NaN;
    for (let i = 1; i < window.length; i++) {
      const gap = window[i] - window[i - 1];
      if (window[i] > t && gap > best) {
        best = gap;
        end = window[i];
      }
    }
    return end - t;
  }
  async stop() {
    this.#stop = true;
    await this.#done;
  }
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

// ------------------------------------------------------------------ Bulwark

async function benchBulwark(runs) {
  const plane = await startPlane();
  cleanups.add(plane.stop);
  const out = [];
  try {
    const { listen } = plane;
    await allStreaming(plane);
    const c = new pg.Client({ host: listen.host, port: listen.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    await c.query('CREATE TABLE load (id int)');
    await c.end();
    const load = new Load([listen]);
    load.start();
    try {
      for (let i = 0; i < runs; i++) {
        const s = await allStreaming(plane, 120_000);
        await sleep(500);
        const primary = plane.fx.nodes.find((n) => n.name === s.primary);
        const pid = postmasterPid(primary.data_dir);
        const killedAt = Date.now();
        process.kill(pid, 'SIGKILL');
        const ms = await load.downtimeAfter(killedAt, 120_000);
        out.push(ms);
        console.log(`  bulwark run ${i + 1}/${runs}: ${s.primary} killed, writes back after ${ms} ms`);
      }
    } finally {
      await load.stop();
    }
  } finally {
    cleanups.delete(plane.stop);
    await plane.stop();
  }
  return out;
}

// ------------------------------------------------------------------ Patroni

const POSTGRES_UID = Number(execFileSync('id', ['-u', 'postgres']).toString());
const POSTGRES_GID = Number(execFileSync('id', ['-g', 'postgres']).toString());

async function patroniCluster(etcdEndpoint) {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-patroni-'));
  chmodSync(dir, 0o755);
  const members = [];
  for (const name of ['p1', 'p2']) {
    const home = join(dir, name);
    mkdirSync(home, { mode: 0o700 });
    chownSync(home, POSTGRES_UID, POSTGRES_GID);
    const pgPort = await freePort();
    const restPort = await freePort();
    const conf = {
      scope: 'bench',
      name,
      restapi: { listen: `127.0.0.1:${restPort}`, connect_address: `127.0.0.1:${restPort}` },
      etcd3: { hosts: [etcdEndpoint.replace(/^http:\/\//, '')] },
      bootstrap: {
        // Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10, maximum_lag_on_failover 1MB) are not overridden
        dcs: { postgresql: { use_pg_rewind: true, parameters: { wal_log_hints: 'on', shared_buffers: '16MB', fsync: 'off', max_connections: 40 } } },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
        pg_hba: ['host replication replicator 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 trust'],
      },
      postgresql: {
        listen: `127.0.0.1:${pgPort}`,
        connect_address: `127.0.0.1:${pgPort}`,
        data_dir: join(home, 'data'),
        bin_dir: '/usr/lib/postgresql/15/bin',
        pgpass: join(home, 'pgpass'),
        authentication: { superuser: { username: 'postgres', password: 'bench' }, replication: { username: 'replicator', password: 'bench' }, rewind: { username: 'postgres', password: 'bench' } },
        parameters: { unix_socket_directories: home },
      },
    };
    const file = join(home, 'patroni.yml');
    writeFileSync(file, stringify(conf));
    chownSync(file, POSTGRES_UID, POSTGRES_GID);
    members.push({ name, home, file, pgPort, restPort, child: undefined, log: '' });
  }
  const startMember = (m) => {
    m.child = spawn('runuser', ['-u', 'postgres', '--', '/usr/bin/patroni', m.file], { stdio: ['ignore', 'pipe', 'pipe'], cwd: m.home });
    const keep = (d) => (m.log = (m.log + d.toString()).slice(-6000));
    m.child.stdout.on('data', keep);
    m.child.stderr.on('data', keep);
  };
  const role = async (m) => {
    try {
      const r = await fetch(`http://127.0.0.1:${m.restPort}/patroni`, { signal: AbortSignal.timeout(1000) });
      const j = await r.json();
      return { role: j.role, state: j.state, location: j.xlog?.location, replayed: j.xlog?.replayed_location, received: j.xlog?.received_location };
    } catch {
      return undefined;
    }
  };
  const stop = () => {
    for (const m of members) {
      try {
        m.child?.kill('SIGKILL');
      } catch {
        // gone
      }
      // the runuser wrapper does not forward SIGKILL: kill patroni and postgres by working directory
      killCwd(m.home);
      killCwd(join(m.home, 'data'));
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { members, startMember, role, stop };
}

function killCwd(path) {
  let n = 0;
  for (const e of execFileSync('ls', ['/proc']).toString().split('\n')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (execFileSync('readlink', [`/proc/${e}/cwd`]).toString().trim() === path) {
        process.kill(Number(e), 'SIGKILL');
        n++;
      }
    } catch {
      // gone
    }
  }
  return n;
}

function patroniPid(m) {
  for (const e of execFileSync('ls', ['/proc']).toString().split('\n')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = execFileSync('cat', [`/proc/${e}/cmdline`]).toString();
      if (cmd.includes('patroni') && cmd.includes(m.file) && !cmd.startsWith('runuser')) return Number(e);
    } catch {
      // gone
    }
  }
  return undefined;
}

async function waitPatroni(cl, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const roles = await Promise.all(cl.members.map((m) => cl.role(m)));
    const leader = roles.findIndex((r) => r && (r.role === 'master' || r.role === 'primary') && r.state === 'running');
    // every replica running AND caught up (replayed WAL up to the leader's position): a kill
    // before that would measure a replica that was never in sync
    const replicaOk = roles.every((r, i) => i === leader || (r && r.role === 'replica' && r.state === 'running' && leader >= 0 && (r.replayed ?? -1) >= (roles[leader].location ?? Infinity) - 1024 * 1024));
    if (leader >= 0 && replicaOk) return cl.members[leader];
    if (Date.now() > deadline) throw new Error(`patroni cluster not healthy within ${timeoutMs} ms: ${JSON.stringify(roles)}\n${cl.members.map((m) => m.log.slice(-1500)).join('\n---\n')}`);
    await sleep(500);
  }
}

/** The leader streams to the replica and the replica has the load table: only then is a kill a failover test. */
async function patroniReady(cl, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leader = await waitPatroni(cl, Math.max(1000, deadline - Date.now()));
    const replica = cl.members.find((m) => m !== leader);
    const q = async (port, sql) => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: 'bench', database: 'postgres', connectionTimeoutMillis: 1000, query_timeout: 2000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        return (await c.query(sql)).rows[0];
      } catch {
        return undefined;
      } finally {
        await c.end().catch(() => undefined);
      }
    };
    const streaming = await q(leader.pgPort, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'");
    const table = await q(replica.pgPort, "SELECT to_regclass('public.load') IS NOT NULL AS ok");
    if (streaming?.n === 1 && table?.ok) return leader;
    if (Date.now() > deadline) throw new Error('patroni replica never streamed the load table');
    await sleep(500);
  }
}

async function benchPatroni(runs, scenario) {
  const etcd = await startEtcd();
  cleanups.add(etcd.stop);
  const cl = await patroniCluster(etcd.endpoint);
  cleanups.add(cl.stop);
  const out = [];
  try {
    cl.startMember(cl.members[0]);
    await sleep(3000);
    cl.startMember(cl.members[1]);
    let leader = await waitPatroni(cl, 120_000);
    const targets = cl.members.map((m) => ({ host: '127.0.0.1', port: m.pgPort }));
    const c = new pg.Client({ host: '127.0.0.1', port: leader.pgPort, user: 'postgres', password: 'bench', database: 'postgres' });
    await c.connect();
    await c.query('CREATE TABLE load (id int)');
    await c.end();
    const load = new Load(targets);
    load.start();
    try {
      for (let i = 0; i < runs; i++) {
        leader = await patroniReady(cl, 180_000);
        await sleep(1000);
        const pid = postmasterPid(join(leader.home, 'data'));
        const killedAt = Date.now();
        if (scenario === 'node loss') {
          const ppid = patroniPid(leader);
          if (ppid) process.kill(ppid, 'SIGKILL');
        }
        process.kill(pid, 'SIGKILL');
        const ms = await load.downtimeAfter(killedAt, 180_000);
        out.push(ms);
        console.log(`  patroni (${scenario}) run ${i + 1}/${runs}: ${leader.name} killed, writes back after ${ms} ms`);
        if (!Number.isFinite(ms)) {
          console.log(`  (writes did not come back; last client errors: ${load.errors.slice(-3).join(' | ')})`);
          for (const m of cl.members) console.log(`  --- ${m.name} log tail ---\n${m.log.slice(-2500)}`);
        }
        if (scenario === 'node loss') {
          // the "machine" comes back: restart its Patroni, which rejoins it as a replica
          cl.startMember(leader);
        }
      }
    } finally {
      await load.stop();
    }
  } finally {
    cleanups.delete(cl.stop);
    cleanups.delete(etcd.stop);
    cl.stop();
    await etcd.stop();
  }
  return out;
}

// ------------------------------------------------------------------ main

function line(name, xs) {
  const ok = xs.filter((x) => Number.isFinite(x));
  return { name, runs: xs.length, p50_ms: pct(ok, 50), p99_ms: pct(ok, 99), max_ms: Math.max(...ok), failed: xs.length - ok.length };
}

const results = [];
console.log(`Bulwark: ${RUNS} failovers (postmaster SIGKILL, write load through the Bulwark listener)`);
if (WITH_BULWARK) results.push(line('bulwark (postmaster SIGKILL)', await benchBulwark(RUNS)));
if (WITH_PATRONI) {
  if (!existsSync('/usr/bin/patroni')) {
    console.log('Patroni is not installed (apt-get install -y patroni): skipping the peer');
  } else {
    console.log(`Patroni ${execFileSync('/usr/bin/patroni', ['--version']).toString().trim()}: ${PATRONI_RUNS} runs per scenario, default settings (ttl 30 s, loop_wait 10 s)`);
    results.push(line('patroni (node loss: patroni + postmaster SIGKILL)', await benchPatroni(PATRONI_RUNS, 'node loss')));
    results.push(line('patroni (postmaster SIGKILL only)', await benchPatroni(PATRONI_RUNS, 'pg crash')));
  }
}
console.log('\nwrite downtime (kill -> writes flowing again)');
console.table(results);
const b = WITH_BULWARK ? results[0] : undefined;
for (const r of b ? results.slice(1) : []) {
  console.log(`${r.name}: p50 ${(r.p50_ms / b.p50_ms).toFixed(1)}x, p99 ${(r.p99_ms / b.p99_ms).toFixed(1)}x Bulwark's`);
}
