// Owns failover's part of `bulwark demo`: a two-node PostgreSQL pair (synchronous, hot standby)
// in the demo's scratch dir, with the write listener on 127.0.0.1:6432 and the read listener on
// 127.0.0.1:6433 (free ports when those are taken). The daemon's failover subsystem creates and
// starts the nodes; stop() kills anything left in their data directories. Skipped, with a log
// line, when PostgreSQL 15 is not installed.
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../core/logger.js';
import { PgCtl } from './pgctl.js';

const BIN = '/usr/lib/postgresql/15/bin';

/** The shape app/demo.ts expects of a demo part (declared here: a subsystem does not import app/). */
export interface FailoverDemoPart {
  readonly name: string;
  start(ctx: { dir: string; logger: Logger }): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

function portOr(preferred: number): Promise<number> {
  const tryPort = (p: number): Promise<number | undefined> =>
    new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen(p, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => resolve(port));
      });
    });
  return tryPort(preferred).then((p) => p ?? tryPort(0).then((q) => q as number));
}

export function failoverDemoPart(): FailoverDemoPart {
  const ctls: PgCtl[] = [];
  return {
    name: 'postgres-pair',
    async start(ctx) {
      if (!existsSync(join(BIN, 'postgres'))) {
        ctx.logger.warn({ bin_dir: BIN }, 'demo: PostgreSQL 15 is not installed; the PostgreSQL pair is left out');
        return {};
      }
      chmodSync(ctx.dir, 0o711); // the postgres user must reach the data directories below
      const root = join(ctx.dir, 'pg');
      mkdirSync(root, { recursive: true, mode: 0o711 });
      const nodes = [];
      for (const [i, preferred] of [[1, 5433], [2, 5434]] as const) {
        const port = await portOr(preferred);
        const node = { name: `pg-${i}`, host: '127.0.0.1', port, data_dir: join(root, `pg-${i}`) };
        nodes.push(node);
        ctls.push(new PgCtl({ name: node.name, host: node.host, port, dataDir: node.data_dir }, { binDir: BIN, osUser: 'postgres', superuser: 'postgres', logFile: '/dev/null' }));
      }
      const listen = `127.0.0.1:${await portOr(6432)}`;
      const readListen = `127.0.0.1:${await portOr(6433)}`;
      ctx.logger.info({ listen, read_listen: readListen, nodes: nodes.map((n) => `${n.name}@${n.port}`) }, 'demo: PostgreSQL pair (psql -h 127.0.0.1 -p PORT -U postgres)');
      return {
        databases: {
          main: {
            engine: 'postgres',
            listen,
            read_listen: readListen,
            standby: 'hot',
            synchronous: true,
            settings: { shared_buffers: '16MB', max_connections: 40 },
            nodes,
          },
        },
      };
    },
    async stop() {
      for (const c of ctls) c.killAll();
    },
  };
}
