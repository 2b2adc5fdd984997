// Owns the database listeners: per configured database a write listener (to the primary) and an
// optional read listener (round-robin over replicas), both following 'db.topology'; their
// lifecycle across reloads, and their rows in status.
import type { Server } from 'node:net';
import type { DatabaseConfig } from '../core/config/schema.js';
import type { SubsystemDeps } from '../core/subsystem.js';
import { closeServer, listenOn } from './listen.js';
import { DbListener } from './tcp.js';

interface Topology {
  primary: { node: string; address: string } | undefined | null;
  replicas: ReadonlyArray<{ node: string; address: string }>;
}

export class DatabaseListeners {
  readonly name: string;
  cfg: DatabaseConfig;
  readonly #deps: Pick<SubsystemDeps, 'events' | 'logger' | 'clock'>;
  readonly #write: DbListener;
  readonly #read: DbListener | undefined;
  readonly #writeServer: Server;
  readonly #readServer: Server | undefined;
  bound = '';
  readBound: string | undefined;
  #primary: string | undefined;

  private constructor(name: string, cfg: DatabaseConfig, deps: Pick<SubsystemDeps, 'events' | 'logger' | 'clock'>) {
    this.name = name;
    this.cfg = cfg;
    this.#deps = deps;
    const onFinished = (ok: boolean, ms: number): void => {
      deps.events.emit('proxy.request', { service: `db:${name}`, backend: undefined, ok, status: undefined, latency_ms: ms, at: deps.clock.now() });
    };
    this.#write = new DbListener(name, 'write', onFinished);
    this.#read = cfg.read_listen ? new DbListener(name, 'read', onFinished) : undefined;
    this.#writeServer = this.#write.server();
    this.#readServer = this.#read?.server();
  }

  static async open(name: string, cfg: DatabaseConfig, deps: Pick<SubsystemDeps, 'events' | 'logger' | 'clock'>): Promise<DatabaseListeners> {
    const db = new DatabaseListeners(name, cfg, deps);
    db.bound = await listenOn(db.#writeServer, cfg.listen, `databases.${name}.listen`);
    if (db.#readServer && cfg.read_listen) db.readBound = await listenOn(db.#readServer, cfg.read_listen, `databases.${name}.read_listen`);
    deps.logger.info({ database: name, listen: db.bound, read_listen: db.readBound }, 'database listener ready (waiting for db.topology)');
    return db;
  }

  /** True when the new config keeps the listeners (else the caller closes and reopens). */
  sameListeners(next: DatabaseConfig): boolean {
    return next.listen === this.cfg.listen && next.read_listen === this.cfg.read_listen;
  }

  topology(t: Topology): void {
    const prev = this.#primary;
    this.#primary = t.primary ? `${t.primary.node}@${t.primary.address}` : undefined;
    this.#write.setTargets(t.primary ? [{ node: t.primary.node, address: t.primary.address }] : []);
    this.#read?.setTargets(t.replicas.map((r) => ({ node: r.node, address: r.address })));
    if (prev !== this.#primary) {
      this.#deps.logger.info({ database: this.name, primary: t.primary?.node ?? null, replicas: t.replicas.length }, 'database routing changed');
    }
  }

  rows(): Array<Record<string, unknown>> {
    const rows: Array<Record<string, unknown>> = [];
    for (const [l, role] of [[this.#write, 'db-primary'], [this.#read, 'db-replica']] as const) {
      if (!l) continue;
      if (l.targets.length === 0) rows.push({ service: `db:${this.name}`, backend: '-', address: '-', state: 'blocked', role, in_flight: 0, requests: l.connections, errors: l.refused });
      for (const t of l.targets) rows.push({ service: `db:${this.name}`, backend: t.node, address: t.address, state: 'up', role, in_flight: l.openConnections(), requests: l.connections, errors: l.refused });
    }
    return rows;
  }

  async close(): Promise<void> {
    this.#write.setTargets([]);
    this.#read?.setTargets([]);
    await Promise.all([closeServer(this.#writeServer), this.#readServer ? closeServer(this.#readServer) : Promise.resolve()]);
  }
}
