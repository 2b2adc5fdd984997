// Owns the writers program, run inside a lab client namespace:
//   node dist/it/lab/writers.js --targets H:P,H:P,... [--clients 4] [--duration 30] [--interval 10]
//                               [--table bwlab_writes] [--create] [--out FILE]
// N clients each insert unique rows (client, seq) through any of the targets (PostgreSQL
// listeners: Bulwark's, or PostgreSQL itself for Patroni). Client i starts on target i mod n; on
// any error it drops the connection and moves to the next target with a fresh one. Every
// attempt gets a new seq (a failed write is indeterminate; it is never retried under the same
// key). Dead hosts are noticed in about a second: connect timeout 1 s, statement_timeout and
// query timeout 1 s, TCP keepalive after 1 s idle. The identity of the node that committed a
// write comes back from the INSERT itself (`RETURNING node`, filled by inet_server_addr():port
// on the server side), so it is the node that took the write, not the one the client dialled.
// Every 200 ms a progress line goes to stderr: `progress {"t":..,"acked":..,"errors":..,
// "last_ack":..,"last_node":..}`. It stops after --duration seconds or on SIGTERM/SIGINT, then
// prints (or writes to --out) the JSON result: { targets, clients, started_at, ended_at, writes }.
// PGUSER/PGPASSWORD/PGDATABASE come from the environment (never argv).
import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import type { WriteRecord } from './checker.js';

const now = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const { values } = parseArgs({
  options: {
    targets: { type: 'string' },
    clients: { type: 'string', default: '4' },
    duration: { type: 'string', default: '30' },
    interval: { type: 'string', default: '10' },
    table: { type: 'string', default: 'bwlab_writes' },
    create: { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});

if (!values.targets) {
  process.stderr.write('usage: writers.js --targets HOST:PORT[,HOST:PORT...] [--clients N] [--duration S] [--interval MS] [--table T] [--create] [--out FILE]\n');
  process.exit(2);
}
const targets = values.targets.split(',').map((t) => {
  const i = t.lastIndexOf(':');
  return { host: t.slice(0, i), port: Number(t.slice(i + 1)), name: t };
});
const table = values.table;
if (!/^[a-z_][a-z0-9_]*$/.test(table)) {
  process.stderr.write(`--table ${table}: use lowercase letters, digits and _\n`);
  process.exit(2);
}
const clients = Number(values.clients);
const interval = Number(values.interval);
const durationMs = Number(values.duration) * 1000;

const writes: WriteRecord[] = [];
let stopping = false;
let errors = 0;
let lastAck = 0;
let lastNode = '';

const INSERT = `INSERT INTO ${table} (client, seq, node) VALUES ($1, $2, coalesce(host(inet_server_addr()) || ':' || inet_server_port(), current_setting('cluster_name'))) RETURNING node`;
const CREATE = `CREATE TABLE IF NOT EXISTS ${table} (client int NOT NULL, seq int NOT NULL, node text, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (client, seq))`;

function connect(t: { host: string; port: number }, client: number): pg.Client {
  const c = new pg.Client({
    host: t.host,
    port: t.port,
    user: process.env['PGUSER'] ?? 'postgres',
    database: process.env['PGDATABASE'] ?? 'postgres',
    connectionTimeoutMillis: 1000,
    query_timeout: 1000,
    statement_timeout: 1000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 1000,
    application_name: `bwlab-writer-${client}`,
  });
  c.on('error', () => undefined);
  return c;
}

/** Drops a connection without waiting for the server (which may be dead). */
function drop(c: pg.Client | undefined): void {
  if (!c) return;
  const stream = (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
  stream?.destroy();
  void c.end().catch(() => undefined);
}

async function runClient(id: number): Promise<void> {
  let ti = id % targets.length;
  let c: pg.Client | undefined;
  let seq = 0;
  let failedInARow = 0;
  while (!stopping) {
    const t = targets[ti] as (typeof targets)[number];
    seq++;
    const rec: WriteRecord = { client: id, seq, start: now(), end: 0, ok: false, target: t.name };
    try {
      if (!c) {
        c = connect(t, id);
        await c.connect();
        if (values.create) await c.query(CREATE);
      }
      const r = await c.query<{ node: string }>(INSERT, [id, seq]);
      rec.end = now();
      rec.ok = true;
      rec.node = r.rows[0]?.node;
      lastAck = rec.end;
      lastNode = rec.node ?? '';
      failedInARow = 0;
      writes.push(rec);
      if (interval > 0) await sleep(interval);
    } catch (err) {
      rec.end = now();
      rec.error = (err as Error).message.slice(0, 200);
      writes.push(rec);
      errors++;
      drop(c);
      c = undefined;
      ti = (ti + 1) % targets.length;
      failedInARow++;
      // every target refused in a row: do not spin
      await sleep(failedInARow >= targets.length ? 100 : 10);
    }
  }
  drop(c);
}

const startedAt = now();
const progress = setInterval(() => {
  const acked = writes.length - errors;
  process.stderr.write(`progress ${JSON.stringify({ t: now(), acked, errors, last_ack: lastAck, last_node: lastNode })}\n`);
}, 200);
const stop = (): void => {
  stopping = true;
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
const timer = setTimeout(stop, durationMs);

await Promise.all(Array.from({ length: clients }, (_, i) => runClient(i)));
clearTimeout(timer);
clearInterval(progress);
const result = { targets: targets.map((t) => t.name), clients, interval_ms: interval, started_at: startedAt, ended_at: now(), writes };
const text = JSON.stringify(result);
if (values.out) writeFileSync(values.out, text);
else process.stdout.write(text + '\n');
process.stderr.write(`done ${JSON.stringify({ writes: writes.length, acked: writes.length - errors, errors })}\n`);
process.exit(0);
