// Owns running the whole control plane for failover end-to-end tests: writes a bulwark.yaml for a
// PostgreSQL fixture, starts the built CLI (`bulwark up`), talks to its API, and stops it (SIGTERM,
// then SIGKILL) before the fixture's nodes are killed and removed. Used only by tests.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { exited, startCli, waitFor } from '../testing/helpers.js';
import { freePort } from '../testing/helpers.js';
import { pgFixture, type PgFixture } from './pg.testkit.js';

export interface Plane {
  fx: PgFixture;
  api: string;
  listen: { host: string; port: number };
  configFile: string;
  status(): Promise<DbStatusBody>;
  output(): string;
  stop(): Promise<void>;
}

export interface DbStatusBody {
  primary: string | undefined;
  leader: boolean;
  writes: string;
  rows: Array<{ node: string; role: string; streaming: string; lag_bytes?: number }>;
  history: Array<{ kind: string; old_primary: string; new_primary: string; write_downtime_ms: number | null; ok: number }>;
}

export async function startPlane(
  opts: { database?: Record<string, unknown>; coordination?: Record<string, unknown>; nodes?: number; fixture?: PgFixture; name?: string; extra?: Record<string, unknown> } = {},
): Promise<Plane & { kill(): Promise<void> }> {
  const owns = opts.fixture === undefined;
  const fx = opts.fixture ?? (await pgFixture(opts.nodes ?? 2));
  const apiPort = await freePort();
  const listenPort = await freePort();
  const readPort = await freePort();
  const configFile = join(fx.dir, `${opts.name ?? 'bulwark'}.yaml`);
  const config = {
    api: { listen: `127.0.0.1:${apiPort}` },
    state_dir: join(fx.dir, `${opts.name ?? 'bulwark'}-var`),
    log: { level: 'info' },
    coordination: opts.coordination ?? { kind: 'local' },
    databases: { main: fx.database({ listen: `127.0.0.1:${listenPort}`, read_listen: `127.0.0.1:${readPort}`, ...opts.database }) },
    ...opts.extra,
  };
  writeFileSync(configFile, stringify(config));
  const child = startCli(['up', '-c', configFile]);
  const api = `http://127.0.0.1:${apiPort}`;
  const plane: Plane & { kill(): Promise<void> } = {
    fx,
    api,
    listen: { host: '127.0.0.1', port: listenPort },
    configFile,
    status: async () => {
      const r = await fetch(`${api}/v1/db/main`, { signal: AbortSignal.timeout(5000) });
      if (!r.ok) throw new Error(`status ${r.status}: ${await r.text()}`);
      return (await r.json()) as DbStatusBody;
    },
    output: () => child.output().stdout + child.output().stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited(child);
        clearTimeout(t);
      }
      if (owns) fx.cleanup();
    },
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGKILL');
      await exited(child);
    },
  };
  try {
    await waitFor(async () => (await plane.status()).writes === 'open', { timeoutMs: 60_000, what: `the daemon to open writes\n${plane.output().slice(-3000)}` });
  } catch (err) {
    await plane.stop();
    throw err;
  }
  return plane;
}

/** Waits until every node but the primary is a streaming standby. */
export async function allStreaming(plane: Plane, timeoutMs = 60_000): Promise<DbStatusBody> {
  return waitFor(
    async () => {
      const s = await plane.status();
      return s.writes === 'open' && s.rows.every((r) => r.node === s.primary || (r.role === 'standby' && r.streaming === 'yes')) ? s : undefined;
    },
    { timeoutMs, what: 'every standby streaming' },
  );
}
