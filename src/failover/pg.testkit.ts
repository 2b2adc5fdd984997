// Owns test fixtures for real PostgreSQL 15 clusters: a scratch directory postgres can reach,
// free loopback ports, a `databases:` entry for N nodes, a client helper, and cleanup that kills
// every process left in the nodes' data directories even when a test fails. Used only by tests.
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { PgCtl } from './pgctl.js';
import { freePort } from '../testing/helpers.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface PgFixture {
  dir: string;
  nodes: Array<{ name: string; host: string; port: number; data_dir: string }>;
  /** A databases: entry (YAML-ready object). */
  database(extra?: Record<string, unknown>): Record<string, unknown>;
  cleanup(): void;
}

/**
 * N nodes in a fresh scratch dir. Speed settings for tests: small shared_buffers and fsync off.
 * fsync off is safe here because the tests kill PostgreSQL processes, never the machine: the
 * page cache survives a SIGKILL, so durability of acknowledged commits is still what is tested.
 */
export async function pgFixture(n = 2): Promise<PgFixture> {
  if (!existsSync(join(PG_BIN, 'postgres'))) throw new Error(`PostgreSQL 15 is not installed (${PG_BIN}/postgres missing): run scripts/install-deps.sh`);
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-pg-'));
  chmodSync(dir, 0o755); // postgres must traverse it
  const nodes: PgFixture['nodes'] = [];
  for (let i = 1; i <= n; i++) nodes.push({ name: `pg-${i}`, host: '127.0.0.1', port: await freePort(), data_dir: join(dir, `pg-${i}`) });
  return {
    dir,
    nodes,
    database: (extra = {}) => ({
      engine: 'postgres',
      nodes,
      probe_interval: '300ms',
      fall: 2,
      settings: { shared_buffers: '16MB', fsync: 'off', max_connections: 40, wal_keep_size: '64MB' },
      ...extra,
    }),
    cleanup: () => {
      for (const node of nodes) {
        new PgCtl({ name: node.name, host: node.host, port: node.port, dataDir: node.data_dir }, { binDir: PG_BIN, osUser: 'postgres', superuser: 'postgres', logFile: join(dir, 'x.log') }).killAll();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function withClient<T>(port: number, fn: (c: pg.Client) => Promise<T>, host = '127.0.0.1'): Promise<T> {
  const c = new pg.Client({ host, port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 2000, query_timeout: 10_000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** The postmaster pid of a data dir (first line of postmaster.pid). */
export function postmasterPid(dataDir: string): number | undefined {
  return new PgCtl({ name: 'x', host: '127.0.0.1', port: 1, dataDir }, { binDir: PG_BIN, osUser: 'postgres', superuser: 'postgres', logFile: '/dev/null' }).postmasterPid();
}

/**
 * A steady write load: one connection at a time inserting sequence numbers; a failed write
 * drops the connection and reconnects. Records which ids the server acknowledged and the longest
 * gap between two acknowledged writes.
 */
export class WriteLoad {
  readonly acked: number[] = [];
  readonly errors: string[] = [];
  #stop = false;
  #done: Promise<void> | undefined;
  #lastOkAt = 0;
  maxGapMs = 0;
  gapStartedAt = 0;

  constructor(readonly host: string, readonly port: number, readonly table = 'load') {}

  start(): void {
    this.#done = this.#run();
  }

  async #run(): Promise<void> {
    let id = 0;
    let c: pg.Client | undefined;
    while (!this.#stop) {
      try {
        if (!c) {
          c = new pg.Client({ host: this.host, port: this.port, user: 'postgres', database: 'postgres', connectionTimeoutMillis: 1000, query_timeout: 5000 });
          c.on('error', () => undefined);
          await c.connect();
        }
        const next = id + 1;
        await c.query(`INSERT INTO ${this.table} (id) VALUES ($1)`, [next]);
        id = next;
        this.acked.push(next);
        const now = Date.now();
        if (this.#lastOkAt && now - this.#lastOkAt > this.maxGapMs) {
          this.maxGapMs = now - this.#lastOkAt;
          this.gapStartedAt = this.#lastOkAt;
        }
        this.#lastOkAt = now;
        await new Promise((r) => setTimeout(r, 10));
      } catch (err) {
        this.errors.push((err as Error).message);
        await c?.end().catch(() => undefined);
        c = undefined;
        id++; // an id whose outcome is unknown is never reused
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await c?.end().catch(() => undefined);
  }

  /** Resolves once n more writes were acknowledged. */
  async waitMore(n: number, timeoutMs = 60_000): Promise<void> {
    const target = this.acked.length + n;
    const deadline = Date.now() + timeoutMs;
    while (this.acked.length < target) {
      if (Date.now() > deadline) throw new Error(`write load: ${this.acked.length}/${target} acknowledged after ${timeoutMs} ms; last errors: ${this.errors.slice(-3).join(' | ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.#done;
  }
}
