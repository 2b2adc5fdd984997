// Owns running a cluster-mode deployment on loopback for failover tests: one config file with a
// `cluster:` of N instances, N PostgreSQL nodes (one beside each instance), one etcd; each
// instance is its own `bulwark up --instance bw-i` process with its own API and listeners. A
// "host death" here is the instance's process, its watchdog and its PostgreSQL killed at once
// (the network-namespace harness in src/it/lab cuts links too). Used only by tests.
import { writeFileSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { exited, freePort, startCli, waitFor } from '../testing/helpers.js';
import { pgFixture, type PgFixture } from './pg.testkit.js';
import { PgCtl } from './pgctl.js';

export interface InstanceRt {
  name: string;
  api: string;
  listen: number;
  readListen: number;
  running(): boolean;
  output(): string;
}

export interface MultiStatus {
  primary: string | undefined;
  leader: boolean;
  leader_instance: string | undefined;
  writes: string;
  sync_standbys: string[];
  rows: Array<{ node: string; role: string; streaming: string; instance: string; member: string }>;
  history: Array<{ kind: string; old_primary: string; new_primary: string; write_downtime_ms: number | null; ok: boolean | number; instance?: string }>;
}

export interface MultiPlane {
  fx: PgFixture;
  configFile: string;
  instances: InstanceRt[];
  status(i: number): Promise<MultiStatus>;
  /** Starts instance i (again). */
  start(i: number): Promise<void>;
  /** SIGTERM (graceful) of instance i. */
  stop(i: number): Promise<void>;
  /** The instance's process only (SIGKILL). */
  killInstance(i: number): Promise<void>;
  /** The host dies: the instance, its watchdog and every process in its node's data directory, at once. */
  killHost(i: number): Promise<void>;
  pause(i: number): void;
  resume(i: number): void;
  cleanup(): Promise<void>;
}

export async function startMulti(opts: { n?: number; etcd: string[]; database?: Record<string, unknown>; leaseTtl?: string } ): Promise<MultiPlane> {
  const n = opts.n ?? 3;
  const fx = await pgFixture(n);
  const instances: Array<InstanceRt & { port: number }> = [];
  for (let i = 1; i <= n; i++) {
    const port = await freePort();
    instances.push({ name: `bw-${i}`, port, api: `http://127.0.0.1:${port}`, listen: await freePort(), readListen: await freePort(), running: () => false, output: () => '' });
  }
  // every instance listens on its own port (one machine); in a real deployment the listen address is the same on every host
  const configFile = join(fx.dir, 'bulwark.yaml');
  const stateDir = join(fx.dir, 'var');
  const children = new Map<number, ReturnType<typeof startCli>>();
  const writeConfig = (i: number): string => {
    const file = join(fx.dir, `bulwark-${i}.yaml`);
    const inst = instances[i] as InstanceRt;
    writeFileSync(
      file,
      stringify({
        cluster: { name: 'test', instances: instances.map((x, k) => ({ name: x.name, api: `127.0.0.1:${x.port}`, zone: `z${k + 1}` })) },
        state_dir: stateDir,
        log: { level: 'info' },
        coordination: { kind: 'etcd', endpoints: opts.etcd, lease_ttl: opts.leaseTtl ?? '2s', prefix: '/bulwark-multi' },
        databases: {
          main: fx.database({
            listen: `127.0.0.1:${inst.listen}`,
            read_listen: `127.0.0.1:${inst.readListen}`,
            nodes: fx.nodes.map((x, k) => ({ ...x, instance: `bw-${k + 1}` })),
            ...opts.database,
          }),
        },
      }),
    );
    return file;
  };
  const start = async (i: number): Promise<void> => {
    const inst = instances[i] as InstanceRt;
    const child = startCli(['up', '-c', writeConfig(i), '--instance', inst.name]);
    children.set(i, child);
    inst.running = () => child.exitCode === null && child.signalCode === null;
    inst.output = () => child.output().stdout + child.output().stderr;
    await waitFor(async () => (await fetch(`${inst.api}/healthz`, { signal: AbortSignal.timeout(1000) })).ok, { timeoutMs: 30_000, what: () => `${inst.name} API\n${inst.output().slice(-2000)}` });
  };
  const kill = async (i: number, sig: NodeJS.Signals): Promise<void> => {
    const c = children.get(i);
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(sig);
    if (sig === 'SIGTERM') {
      const t = setTimeout(() => c.kill('SIGKILL'), 10_000);
      await exited(c);
      clearTimeout(t);
    } else await exited(c);
  };
  const ctl = (i: number): PgCtl => {
    const node = fx.nodes[i] as PgFixture['nodes'][number];
    return new PgCtl({ name: node.name, host: node.host, port: node.port, dataDir: node.data_dir }, { binDir: '/usr/lib/postgresql/15/bin', osUser: 'postgres', superuser: 'postgres', logFile: '/dev/null' });
  };
  const watchdogPids = (i: number): number[] => {
    const dir = join(stateDir, `bw-${i + 1}`, 'failover', 'main', 'watchdog');
    try {
      return readdirSync(dir).filter((f) => f.endsWith('.pid')).map((f) => Number(readFileSync(join(dir, f), 'utf8')));
    } catch {
      return [];
    }
  };
  const plane: MultiPlane = {
    fx,
    configFile,
    instances,
    status: async (i) => {
      const r = await fetch(`${(instances[i] as InstanceRt).api}/v1/db/main`, { signal: AbortSignal.timeout(5000) });
      if (!r.ok) throw new Error(`status ${r.status}: ${await r.text()}`);
      return (await r.json()) as MultiStatus;
    },
    start,
    stop: (i) => kill(i, 'SIGTERM'),
    killInstance: (i) => kill(i, 'SIGKILL'),
    killHost: async (i) => {
      const c = children.get(i);
      c?.kill('SIGKILL');
      for (const pid of watchdogPids(i)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      ctl(i).killAll();
      if (c) await exited(c);
    },
    pause: (i) => children.get(i)?.kill('SIGSTOP'),
    resume: (i) => children.get(i)?.kill('SIGCONT'),
    cleanup: async () => {
      for (const i of children.keys()) {
        children.get(i)?.kill('SIGCONT');
        await kill(i, 'SIGKILL');
        for (const pid of watchdogPids(i)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      fx.cleanup();
    },
  };
  try {
    for (let i = 0; i < n; i++) await start(i);
  } catch (err) {
    await plane.cleanup();
    throw err;
  }
  return plane;
}

/** Waits until instance i sees a primary with writes open and every other node streaming. */
export function clusterReady(plane: MultiPlane, i = 0, timeoutMs = 90_000): Promise<MultiStatus> {
  return waitFor(
    async () => {
      const s = await plane.status(i);
      return s.writes === 'open' && s.primary !== undefined && s.rows.every((r) => r.node === s.primary || (r.role === 'standby' && r.streaming === 'yes')) ? s : undefined;
    },
    { timeoutMs, intervalMs: 200, what: () => `a primary and every standby streaming (as seen by ${plane.instances[i]?.name})\n${plane.instances.map((x) => `--- ${x.name}\n${x.output().slice(-1500)}`).join('\n')}` },
  );
}

/**
 * Writers through the listeners of every instance (a client moves to the next listener when one
 * fails). Every acknowledged id is recorded with the node that took it (cluster_name), so a test
 * can check that nothing acknowledged is lost and that two nodes never took writes at once.
 */
/** Acknowledged writes absent from the node's table, and acknowledgements by another node after `node` first acknowledged one (two primaries). */
export async function checkWrites(w: MultiWriter, node: { name: string; port: number }, after = 0): Promise<{ lost: number[]; split: Array<{ id: number; node: string }> }> {
  const { withClient } = await import('./pg.testkit.js');
  const rows = await withClient(node.port, async (c) => new Set((await c.query<{ id: number }>(`SELECT id FROM ${w.table}`)).rows.map((r) => r.id)));
  const lost = w.acked.filter((a) => !rows.has(a.id)).map((a) => a.id);
  const first = w.acked.find((a) => a.node === node.name && a.at > after);
  const split = first ? w.acked.filter((a) => a.node !== node.name && a.at > first.at).map((a) => ({ id: a.id, node: a.node })) : [];
  return { lost, split };
}

export class MultiWriter {
  readonly acked: Array<{ id: number; node: string; at: number }> = [];
  readonly errors: string[] = [];
  #stop = false;
  #done: Promise<void> | undefined;
  #nextId = 0;

  constructor(readonly ports: () => number[], readonly table = 'load') {}

  start(clients = 2): void {
    this.#done = Promise.all(Array.from({ length: clients }, (_, k) => this.#run(k))).then(() => undefined);
  }

  async #run(k: number): Promise<void> {
    let c: pg.Client | undefined;
    let t = k;
    while (!this.#stop) {
      const ports = this.ports();
      const port = ports[t % ports.length] as number;
      try {
        if (!c) {
          c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000, query_timeout: 3000, keepAlive: true });
          c.on('error', () => undefined);
          await c.connect();
        }
        const id = ++this.#nextId;
        const r = await c.query<{ node: string }>(`INSERT INTO ${this.table} (id) VALUES ($1) RETURNING current_setting('cluster_name') AS node`, [id]);
        this.acked.push({ id, node: r.rows[0]?.node ?? '?', at: Date.now() });
        await new Promise((res) => setTimeout(res, 10));
      } catch (err) {
        this.errors.push((err as Error).message);
        await c?.end().catch(() => undefined);
        c = undefined;
        t++;
        await new Promise((res) => setTimeout(res, 50));
      }
    }
    await c?.end().catch(() => undefined);
  }

  async waitMore(n: number, timeoutMs = 60_000): Promise<void> {
    const target = this.acked.length + n;
    await waitFor(() => this.acked.length >= target, { timeoutMs, intervalMs: 50, what: () => `${n} more acknowledged writes (last errors: ${this.errors.slice(-3).join(' | ')})` });
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}
