#!/usr/bin/env node
// Host death under write load, three hosts: Bulwark (cluster mode) vs Patroni (Debian's 3.0.2,
// default settings), in one run, in the same lab namespaces, on the same three-member etcd.
//
// The lab (src/it/lab): hosts h1, h2, h3 and a client c1 as network namespaces on a private
// bridge; an etcd member on each host (heartbeat 100 ms, election timeout 1000 ms); a PostgreSQL
// node on each host, managed by Bulwark (one `bulwark up --instance bw-N` per host) or by Patroni
// (one Patroni per host). The writers (src/it/lab/writers.ts) run in c1: 4 clients, each
// inserting unique rows every 10 ms through any of the three hosts (Bulwark: each instance's
// write listener; Patroni: each PostgreSQL, moving on from replicas that refuse writes).
// Each run: wait for a healthy cluster (a primary, both standbys streaming), start the writers,
// kill the primary's HOST (link cut, then every process in it SIGKILLed: PostgreSQL, the agent
// and the etcd member, which may be etcd's leader), wait until writes flow again, stop the
// writers, check the history (src/it/lab/checker.ts) against the final primary's table, then
// revive the host and restart what it runs (etcd member, agent) before the next run.
// Printed per side: write downtime p50/p99 (the longest gap between acknowledged writes around
// the kill), time from the kill to the end of that gap, acknowledged writes lost,
// split brain count, failed runs.
//
// Usage: npm run build && node bench/cluster-failover.mjs [--runs 3] [--no-bulwark] [--no-patroni]
//        [--patroni-sync] [--clients 4] [--recovery-timeout 120]
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { LabBulwark, PG_PORT, WRITE_PORT, createLab, startLabEtcd, underLoad } from '../dist/it/lab/index.js';

const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'no-bulwark': { type: 'boolean', default: false },
    'no-patroni': { type: 'boolean', default: false },
    'patroni-sync': { type: 'boolean', default: false },
    clients: { type: 'string', default: '4' },
    'recovery-timeout': { type: 'string', default: '120' },
  },
});
const RUNS = Number(opt.runs);
const CLIENTS = Number(opt.clients);
const RECOVERY_MS = Number(opt['recovery-timeout']) * 1000;
const PG_BIN = '/usr/lib/postgresql/15/bin';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log(...a);
const POSTGRES = { uid: Number(execFileSync('id', ['-u', 'postgres'])), gid: Number(execFileSync('id', ['-g', 'postgres'])) };
/** The same speed settings on both sides (a host death here keeps the page cache, so fsync off hides nothing). */
const PG_SETTINGS = { shared_buffers: '16MB', fsync: 'off', max_connections: 60, wal_keep_size: '64MB' };

async function until(what, timeoutMs, fn, interval = 300) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out (${timeoutMs} ms) waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(interval);
  }
}

function pct(xs, p) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

/** Which lab host holds etcd's leadership (`etcdctl endpoint status -w simple`: 5th field). */
async function etcdLeaderHost(lab, etcd) {
  const r = await etcd.ctl(['endpoint', 'status', '-w', 'simple'], { timeoutS: 1 });
  for (const line of r.stdout.split('\n')) {
    const f = line.split(',').map((x) => x.trim());
    if (f[4] === 'true') return lab.hosts('host').find((h) => f[0] === `http://${h.address}:2379`)?.name;
  }
  return undefined;
}

/**
 * One run: writers on, the primary's host killed, writers until writes flow again, verdict
 * (underLoad). `side` supplies: ready() -> { primaryHost, address, port } once healthy;
 * createTable(ready, name); finalPrimary(killedHost) -> { address, port }; revive(hostName).
 */
async function oneRun(lab, etcd, side, i) {
  const ready = await side.ready();
  const table = `run_${side.short}_${i}`;
  await side.createTable(ready, table);
  await sleep(500);
  const etcdLeader = await etcdLeaderHost(lab, etcd);
  let out;
  try {
    const r = await underLoad({
      from: lab.host('c1'),
      targets: side.targets,
      table,
      clients: CLIENTS,
      warmupAcks: 300,
      recoveryAcks: 100,
      recoveryTimeoutMs: RECOVERY_MS,
      fault: () => lab.host(ready.primaryHost).kill(),
      finalPrimary: () => side.finalPrimary(ready.primaryHost),
    });
    const d = r.report.downtime;
    out = {
      run: i + 1,
      killed: ready.primaryHost,
      etcd_leader_killed: etcdLeader === ready.primaryHost,
      recovered: r.recovered,
      downtime_ms: d ? Math.round(d.ms) : NaN,
      back_after_kill_ms: d?.recovered ? Math.round(d.to - r.faultAt) : NaN,
      acked: r.report.acked,
      lost: r.report.lost.length,
      split_brain: r.report.splitBrain.count,
      new_primary: r.finalPrimary.address,
      nodes: r.report.nodes.map((n) => `${n.node}:${n.acks}`).join(' '),
    };
    if (r.report.splitBrain.count > 0) log(`    split brain witness: ${JSON.stringify(r.report.splitBrain.witnesses[0])}`);
  } catch (err) {
    log(`    run failed: ${err.message}`);
    out = { run: i + 1, killed: ready.primaryHost, etcd_leader_killed: etcdLeader === ready.primaryHost, recovered: false, downtime_ms: NaN, back_after_kill_ms: NaN, acked: NaN, lost: NaN, split_brain: NaN };
  }
  log(`  ${side.name} run ${i + 1}/${RUNS}: killed ${out.killed}${out.etcd_leader_killed ? ' (etcd leader)' : ''}; downtime ${out.downtime_ms} ms, writes back ${out.back_after_kill_ms} ms after the kill, ${out.acked} acked, ${out.lost} lost, split brain ${out.split_brain}${out.recovered ? '' : ' — NOT RECOVERED'}`);
  if (!out.recovered) {
    for (const h of lab.hosts('host')) for (const p of h.processes()) log(`    --- ${h.name} ${p.name}\n${p.tail().slice(-1500)}`);
  }
  // the host comes back: its etcd member and its agent restart; the agent rejoins its node
  lab.host(ready.primaryHost).revive();
  etcd.start(ready.primaryHost);
  await side.revive(ready.primaryHost);
  return out;
}

// ------------------------------------------------------------------ Patroni

function patroniSide(lab, etcd) {
  const hosts = lab.hosts('host');
  const PORT = 5442;
  const REST = 8008;
  const members = hosts.map((h) => {
    const home = h.dir('patroni', { owner: 'postgres' });
    const file = join(home, 'patroni.yml');
    const conf = {
      scope: 'bench',
      name: `p-${h.name}`,
      restapi: { listen: `${h.address}:${REST}`, connect_address: `${h.address}:${REST}` },
      etcd3: { hosts: etcd.endpoints.map((e) => e.replace(/^http:\/\//, '')) },
      bootstrap: {
        // Patroni's defaults (ttl 30, loop_wait 10, retry_timeout 10, maximum_lag_on_failover 1 MB,
        // asynchronous replication) are not overridden; --patroni-sync turns on synchronous_mode
        dcs: {
          ...(opt['patroni-sync'] ? { synchronous_mode: true } : {}),
          postgresql: { use_pg_rewind: true, parameters: { wal_log_hints: 'on', ...PG_SETTINGS } },
        },
        initdb: [{ encoding: 'UTF8' }, { locale: 'C' }],
        pg_hba: ['local all all trust', `host replication replicator 198.18.${lab.id}.0/24 trust`, `host all all 198.18.${lab.id}.0/24 trust`],
      },
      postgresql: {
        listen: `${h.address}:${PORT}`,
        connect_address: `${h.address}:${PORT}`,
        data_dir: join(home, 'data'),
        bin_dir: PG_BIN,
        pgpass: join(home, 'pgpass'),
        authentication: {
          superuser: { username: 'postgres', password: 'bench' },
          replication: { username: 'replicator', password: 'bench' },
          rewind: { username: 'postgres', password: 'bench' },
        },
        parameters: { unix_socket_directories: home },
      },
    };
    writeFileSync(file, stringify(conf));
    chownSync(file, POSTGRES.uid, POSTGRES.gid);
    return { host: h, home, file, proc: undefined };
  });
  const start = (m) => {
    m.proc = m.host.spawn('/usr/bin/patroni', [m.file], { user: 'postgres', cwd: m.home, name: `patroni-${m.host.name}`, logFile: join(m.home, 'patroni.log') });
  };
  const role = async (m) => {
    if (m.host.dead) return undefined;
    const r = await lab.host('c1').http(`http://${m.host.address}:${REST}/patroni`);
    return r.ok && typeof r.body === 'object' ? r.body : undefined;
  };
  const isLeader = (r) => r && (r.role === 'master' || r.role === 'primary') && r.state === 'running';
  const side = {
    name: 'patroni',
    short: 'patroni',
    targets: hosts.map((h) => `${h.address}:${PORT}`),
    sqlOpts: {},
    async boot() {
      start(members[0]);
      await until('the first Patroni member to lead', 120_000, async () => isLeader(await role(members[0])), 500);
      for (const m of members.slice(1)) start(m);
    },
    async ready() {
      return until('a Patroni leader with two streaming replicas', 240_000, async () => {
        const roles = await Promise.all(members.map(role));
        const li = roles.findIndex(isLeader);
        if (li < 0) return false;
        const leader = members[li];
        if (!roles.every((r, i) => i === li || (r && r.role === 'replica' && r.state === 'running'))) return false;
        const s = await lab.host('c1').sql(leader.host.address, PORT, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'");
        return s.ok && s.rows[0].n === members.length - 1 ? { primaryHost: leader.host.name, address: leader.host.address, port: PORT } : false;
      }, 1000);
    },
    async createTable(ready, table) {
      const c1 = lab.host('c1');
      const r = await c1.sql(ready.address, PORT, `CREATE TABLE ${table} (client int NOT NULL, seq int NOT NULL, node text, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (client, seq))`);
      if (!r.ok) throw new Error(`create ${table}: ${r.error}`);
      // replicated to every replica before the load starts
      await until(`${table} on every replica`, 30_000, async () => {
        const rs = await Promise.all(members.map((m) => c1.sql(m.host.address, PORT, `SELECT to_regclass('public.${table}') IS NOT NULL AS ok`)));
        return rs.every((x) => x.ok && x.rows[0].ok);
      });
    },
    async finalPrimary(killed) {
      const m = await until('the new Patroni leader', 60_000, async () => {
        for (const x of members) if (x.host.name !== killed && isLeader(await role(x))) return x;
        return false;
      }, 500);
      return { address: m.host.address, port: PORT };
    },
    async revive(hostName) {
      const m = members.find((x) => x.host.name === hostName);
      start(m);
    },
    async stop() {
      await Promise.all(members.map((m) => m.proc?.stop(10_000)));
      for (const m of members) await m.host.exec(join(PG_BIN, 'pg_ctl'), ['stop', '-m', 'immediate', '-D', join(m.home, 'data')], { user: 'postgres' });
    },
  };
  return side;
}

// ------------------------------------------------------------------ Bulwark

// The cluster-mode config (the issue #10 contract) and the status shape live in
// src/it/lab/bulwark.ts (clusterConfig, readDbStatus): the only place to adjust.
function bulwarkSide(lab, etcd) {
  const bw = new LabBulwark(lab, etcd, { settings: PG_SETTINGS, synchronous: true, leaseTtl: '2s' });
  const c1 = lab.host('c1');
  const side = {
    name: 'bulwark',
    short: 'bulwark',
    targets: bw.writeTargets,
    sqlOpts: {},
    async boot() {
      bw.startAll();
      await bw.waitUp(90_000).catch((err) => {
        throw new Error(`Bulwark cluster mode did not come up: ${err.message}`);
      });
    },
    async ready() {
      return until('a Bulwark primary with two streaming standbys', 240_000, async () => {
        const primary = await bw.primary();
        const x = primary && bw.instance(primary);
        if (!x || x.host.dead) return false;
        const s = await c1.sql(x.host.address, PG_PORT, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'");
        return s.ok && s.rows[0].n === bw.instances.length - 1 ? { primaryHost: x.host.name, address: x.host.address, port: PG_PORT } : false;
      }, 1000);
    },
    async createTable(_ready, table) {
      // through a write listener, as any client would
      const r = await c1.sql(bw.instances[0].host.address, WRITE_PORT, `CREATE TABLE ${table} (client int NOT NULL, seq int NOT NULL, node text, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (client, seq))`);
      if (!r.ok) throw new Error(`create ${table}: ${r.error}`);
    },
    async finalPrimary(killed) {
      const x = await until('the new Bulwark primary', 60_000, async () => {
        const p = await bw.primary(killed);
        const i = p && bw.instance(p);
        return i && i.host.name !== killed ? i : false;
      }, 500);
      return { address: x.host.address, port: PG_PORT };
    },
    async revive(hostName) {
      bw.start(hostName);
    },
    stop: () => bw.stop(),
  };
  return side;
}

// ------------------------------------------------------------------ main

function summary(name, runs) {
  const ok = runs.filter((r) => r.recovered);
  return {
    name,
    runs: runs.length,
    'downtime p50 ms': pct(ok.map((r) => r.downtime_ms), 50),
    'downtime p99 ms': pct(ok.map((r) => r.downtime_ms), 99),
    'max ms': ok.length ? Math.max(...ok.map((r) => r.downtime_ms)) : NaN,
    'back after kill p50 ms': pct(ok.map((r) => r.back_after_kill_ms), 50),
    'acked lost': runs.reduce((a, r) => a + r.lost, 0),
    'split brain': runs.reduce((a, r) => a + r.split_brain, 0),
    'not recovered': runs.length - ok.length,
  };
}

async function bench(lab, etcd, side) {
  const runs = [];
  try {
    await side.boot();
    for (let i = 0; i < RUNS; i++) {
      runs.push(await oneRun(lab, etcd, side, i));
      await etcd.waitHealthy({ timeoutMs: 60_000 });
    }
  } finally {
    await side.stop();
  }
  return runs;
}

const lab = await createLab({ hosts: ['h1', 'h2', 'h3'], clients: ['c1'] });
const results = {};
try {
  const etcd = await startLabEtcd(lab);
  log(`lab ${lab.id}: hosts ${lab.hosts('host').map((h) => `${h.name}=${h.address}`).join(' ')}, client c1=${lab.host('c1').address}; etcd ${etcd.endpoints.length} members (heartbeat 100 ms, election 1000 ms)`);
  if (!opt['no-bulwark']) {
    log(`Bulwark (cluster mode, synchronous, lease_ttl 2s): ${RUNS} host kills`);
    try {
      results.bulwark = await bench(lab, etcd, bulwarkSide(lab, etcd));
    } catch (err) {
      log(`  Bulwark half failed: ${err.message.slice(0, 3000)}`);
    }
  }
  if (!opt['no-patroni']) {
    if (!existsSync('/usr/bin/patroni')) log('Patroni is not installed (apt-get install -y patroni): skipping it');
    else {
      const version = execFileSync('/usr/bin/patroni', ['--version']).toString().trim();
      log(`${version} (ttl 30 s, loop_wait 10 s, retry_timeout 10 s${opt['patroni-sync'] ? ', synchronous_mode on' : ', asynchronous (default)'}): ${RUNS} host kills`);
      try {
        results.patroni = await bench(lab, etcd, patroniSide(lab, etcd));
      } catch (err) {
        log(`  Patroni half failed: ${err.message.slice(0, 3000)}`);
      }
    }
  }
} finally {
  await lab.teardown();
}
const rows = Object.entries(results).map(([k, v]) => summary(k === 'patroni' && opt['patroni-sync'] ? 'patroni (synchronous_mode)' : k, v));
log('\nwrite downtime after a host death (longest gap between acknowledged writes around the kill)');
console.table(rows);
mkdirSync(new URL('./out/', import.meta.url), { recursive: true });
const outFile = new URL(`./out/cluster-failover-${new Date().toISOString().replace(/[:.]/g, '-')}.json`, import.meta.url);
writeFileSync(outFile, JSON.stringify({ runs: RUNS, clients: CLIENTS, results, summary: rows }, null, 2));
log(`runs written to ${fileURLToPath(outFile)}`);
const [b, p] = [rows.find((r) => r.name === 'bulwark'), rows.find((r) => r.name.startsWith('patroni'))];
if (b && p && b['downtime p50 ms'] > 0) log(`Patroni/Bulwark: p50 ${(p['downtime p50 ms'] / b['downtime p50 ms']).toFixed(1)}x, p99 ${(p['downtime p99 ms'] / b['downtime p99 ms']).toFixed(1)}x`);
