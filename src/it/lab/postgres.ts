// Owns a plain PostgreSQL 15 server inside a lab host, run as the postgres user
// (`runuser -u postgres --`), listening on the host's address, its data dir under the lab's
// scratch dir (owned by postgres), trust authentication for the lab subnet only. For the
// harness self-test and benchmarks; Bulwark and Patroni manage their own PostgreSQL.
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LabHost } from './lab.js';
import type { LabProcess } from './proc.js';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export interface LabPostgres {
  host: LabHost;
  port: number;
  dataDir: string;
  proc: LabProcess;
  /** Starts the server again (after a kill of the host or of the process), same data. */
  restart(): Promise<void>;
}

export async function startPostgres(host: LabHost, opts: { name?: string; port?: number; settings?: Record<string, string> } = {}): Promise<LabPostgres> {
  if (!existsSync(join(PG_BIN, 'postgres'))) throw new Error(`PostgreSQL 15 is not installed (${PG_BIN}/postgres missing): run scripts/install-deps.sh`);
  const name = opts.name ?? 'pg';
  const port = opts.port ?? 5432;
  const home = host.dir(name, { owner: 'postgres' });
  const dataDir = join(home, 'data');
  const init = await host.exec(join(PG_BIN, 'initdb'), ['-D', dataDir, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--locale=C'], { user: 'postgres', timeoutMs: 120_000 });
  if (init.code !== 0) throw new Error(`initdb on ${host.name} failed: ${init.stderr}`);
  appendFileSync(join(dataDir, 'pg_hba.conf'), `host all all 198.18.${host.lab.id}.0/24 trust\nhost replication all 198.18.${host.lab.id}.0/24 trust\n`);
  const settings = { shared_buffers: '16MB', fsync: 'off', max_connections: '40', ...opts.settings };
  const args = ['-D', dataDir, '-c', `listen_addresses=${host.address}`, '-c', `port=${port}`, '-c', `unix_socket_directories=${home}`, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
  const pgServer: LabPostgres = {
    host,
    port,
    dataDir,
    proc: undefined as unknown as LabProcess,
    restart: async () => {
      pgServer.proc = host.spawn(join(PG_BIN, 'postgres'), args, { user: 'postgres', name: `postgres:${name}`, logFile: join(home, 'postgres.log') });
      await waitReady(host, port, pgServer.proc);
    },
  };
  await pgServer.restart();
  return pgServer;
}

async function waitReady(host: LabHost, port: number, proc: LabProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await host.exec(join(PG_BIN, 'pg_isready'), ['-h', host.address, '-p', String(port), '-t', '1']);
    if (r.code === 0) return;
    if (!proc.running) throw new Error(`postgres on ${host.name} exited: ${proc.tail()}`);
    if (Date.now() > deadline) throw new Error(`postgres on ${host.name} not ready within 30 s: ${proc.tail()}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}
