// Tests of scheduled plans in cluster mode on a real etcd (loopback): two instances with their own
// state stores schedule the same plan, and only the holder of the plan's job lease runs it; a
// graceful stop hands the schedule over; a plan pinned with `instance:` runs only there.
// Outside cluster mode the local timers of subsystem.test.ts apply unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { systemClock } from '../../core/clock.js';
import { configSchema } from '../../core/config/schema.js';
import { EventBus, type BulwarkEvents } from '../../core/events.js';
import { createLogger } from '../../core/logger.js';
import { EtcdCoordination, Membership } from '../../coord/index.js';
import { startEtcd, type TestEtcd } from '../../coord/etcd.testkit.js';
import { SqliteStore } from '../../store/sqlite.js';
import { scratchDir, waitFor } from '../../testing/helpers.js';
import { PlansSubsystem } from './subsystem.js';

interface Inst {
  name: string;
  sub: PlansSubsystem;
  runs: Array<BulwarkEvents['backup.run']>;
  stop: () => Promise<void>;
}

async function instance(etcd: TestEtcd, dir: string, name: string, pinned?: string): Promise<Inst> {
  const coordination = new EtcdCoordination({ endpoints: [etcd.endpoint], prefix: '/plans-cluster', ttlMs: 2000, identity: name, clock: systemClock });
  const member = new Membership({ kv: coordination.kv, clock: systemClock, everyMs: 60_000, health: () => ({ subsystems: 1, errors: [] }), self: { name, api: '127.0.0.1:1', version: 't', started_at: 0, pid: 0 } });
  await member.start();
  const store = SqliteStore.open(':memory:');
  const config = configSchema.parse({
    backups: {
      app: {
        paths: ['./data'],
        password_file: 'pw',
        schedule: '* * * * * *', // every second
        ...(pinned ? { instance: pinned } : {}),
        targets: [{ name: 'disk', repo: './repo', media: 'hdd' }],
      },
    },
  });
  const events = new EventBus();
  const runs: Inst['runs'] = [];
  events.on('backup.run', (e) => runs.push(e));
  const sub = new PlansSubsystem({ config, baseDir: dir, events, logger: createLogger({ level: 'fatal' }), clock: systemClock, metrics: new Registry(), store, coordination, instance: { name, api: '127.0.0.1:1' } }, dir);
  await sub.start();
  return {
    name,
    sub,
    runs,
    stop: async () => {
      await sub.stop();
      await member.stop();
      await coordination.close();
      store.close();
    },
  };
}

function setup(): { dir: string; cleanup: () => void } {
  const s = scratchDir('bulwark-plans-cluster-');
  mkdirSync(join(s.dir, 'data'));
  writeFileSync(join(s.dir, 'data', 'f'), 'hello');
  writeFileSync(join(s.dir, 'pw'), 'pw');
  return s;
}

test('plans in cluster mode: only the job lease holder runs the schedule; a graceful stop hands it to the other instance', async (t) => {
  const etcd = await startEtcd();
  const { dir, cleanup } = setup();
  t.after(async () => {
    await etcd.stop();
    cleanup();
  });
  const a = await instance(etcd, dir, 'bw-1');
  const b = await instance(etcd, dir, 'bw-2');
  const gone = new Set<Inst>();
  t.after(async () => {
    if (!gone.has(a)) await a.stop();
    if (!gone.has(b)) await b.stop();
  });
  await waitFor(() => a.runs.length + b.runs.length >= 2, { timeoutMs: 30_000, what: 'two scheduled runs' });
  const [first, second] = a.runs.length > 0 ? [a, b] : [b, a];
  assert.equal(second.runs.length, 0, 'the instance without the lease ran nothing');
  assert.equal((first.sub.status() as { plans: Array<{ scheduled_here: boolean }> }).plans[0]?.scheduled_here, true);
  assert.equal((second.sub.status() as { plans: Array<{ scheduled_here: boolean }> }).plans[0]?.scheduled_here, false);
  assert.equal((first.sub.status() as { rows: Array<{ scheduled: string }> }).rows[0]?.scheduled, 'here');
  assert.equal((second.sub.status() as { rows: Array<{ scheduled: string }> }).rows[0]?.scheduled, 'elsewhere');
  await first.stop();
  gone.add(first);
  const handedOverAt = Date.now();
  const before = first.runs.length;
  await waitFor(() => second.runs.length >= 1, { timeoutMs: 30_000, what: 'the other instance takes the schedule over' });
  assert.equal(first.runs.length, before, 'the stopped instance runs nothing more');
  assert.ok(first.runs.every((r) => r.at <= handedOverAt) && second.runs.every((r) => r.at >= handedOverAt), 'runs never overlapped between the two');
});

test('plans in cluster mode: a plan pinned to an instance runs only there, even when another instance starts first', async (t) => {
  const etcd = await startEtcd();
  const { dir, cleanup } = setup();
  t.after(async () => {
    await etcd.stop();
    cleanup();
  });
  const a = await instance(etcd, dir, 'bw-1', 'bw-2');
  t.after(() => a.stop());
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(a.runs.length, 0, 'bw-1 never runs a plan pinned to bw-2');
  const b = await instance(etcd, dir, 'bw-2', 'bw-2');
  t.after(() => b.stop());
  await waitFor(() => b.runs.length >= 1, { timeoutMs: 30_000, what: 'bw-2 runs its plan' });
  assert.equal(a.runs.length, 0);
});
