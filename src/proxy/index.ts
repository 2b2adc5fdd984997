// Owns the failover proxy subsystem: one listener per configured service (HTTP or TCP) in front
// of a pool of backends, plus the database listeners that follow 'db.topology'. It never probes:
// backend health comes from 'health.transition' events, and its own passive outlier detection
// ejects backends that fail on live traffic ('proxy.outlier'). Every finished request or
// connection is published as 'proxy.request' for SLIs. Reload keeps listeners, connections and
// backend state; removed backends drain.
import type { Server } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import type { Pool as UndiciPool } from 'undici';
import type { Timer } from '../core/clock.js';
import { parseHostPort } from '../core/config/types.js';
import type { BulwarkConfig, DatabaseConfig, ServiceConfig } from '../core/config/schema.js';
import { BulwarkError } from '../core/errors.js';
import type { Subsystem, SubsystemDeps } from '../core/subsystem.js';
import { backendPool, HttpService, type HttpHooks } from './http.js';
import { Backend, Pool, type PoolOptions } from './pool.js';
import { EventHistogram, registerProxyMetrics } from './stats.js';
import { DbListener, TcpService, type TcpHooks } from './tcp.js';

export { Pool, Backend } from './pool.js';

interface ServiceRt {
  readonly name: string;
  cfg: ServiceConfig;
  readonly pool: Pool;
  readonly http: HttpService | undefined;
  readonly tcp: TcpService | undefined;
  server: Server | NetServer;
  listen: string;
  /** The address actually bound (port 0 resolved). */
  bound: string;
}

interface DbRt {
  readonly name: string;
  cfg: DatabaseConfig;
  readonly write: DbListener;
  readonly read: DbListener | undefined;
  writeServer: NetServer;
  readServer: NetServer | undefined;
  bound: string;
  readBound: string | undefined;
  primary: string | undefined;
}

function poolOptions(cfg: ServiceConfig): PoolOptions {
  const p = cfg.passive;
  return {
    mode: cfg.mode,
    balance: cfg.balance,
    failbackDelay: cfg.failback_delay,
    slowStart: cfg.slow_start,
    passive: {
      enabled: true,
      consecutiveFailures: p?.consecutive_failures ?? 3,
      count5xx: p?.count_5xx ?? false,
      baseEjection: p?.base_ejection ?? 5000,
      maxEjection: p?.max_ejection ?? 60_000,
      maxEjectedShare: p?.max_ejected_percent ?? 0.5,
    },
  };
}

function timeoutsOf(cfg: ServiceConfig): { connect: number; response: number; idle: number } {
  return { connect: cfg.timeouts?.connect ?? 1000, response: cfg.timeouts?.response ?? 30_000, idle: cfg.timeouts?.idle ?? 60_000 };
}

function boundAddress(server: NetServer): string {
  const a = server.address() as AddressInfo | null;
  if (!a) return '';
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

async function listenOn(server: NetServer, listen: string, what: string): Promise<string> {
  const hp = parseHostPort(listen);
  if (!hp) throw new BulwarkError('BULWARK_PROXY_CONFIG', `${what}: bad listen address '${listen}'`);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void =>
      reject(
        new BulwarkError('BULWARK_PROXY_LISTEN', `${what}: cannot listen on ${listen}: ${err.code ?? err.message}`, {
          hint: err.code === 'EADDRINUSE' ? 'another process holds that port: stop it or change the listen address' : 'check the listen address',
          cause: err,
        }),
      );
    server.once('error', onError);
    server.listen(hp.port, hp.host, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return boundAddress(server);
}

function closeServer(server: NetServer): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as Server).closeIdleConnections?.();
  });
}

/** Checks what the schema cannot: one listener per address across services and databases. */
export function checkListeners(config: BulwarkConfig): void {
  const seen = new Map<string, string>();
  const claim = (addr: string, who: string): void => {
    if (addr.endsWith(':0')) return;
    const prev = seen.get(addr);
    if (prev) throw new BulwarkError('BULWARK_PROXY_CONFIG', `${who} and ${prev} both listen on ${addr}`, { hint: 'give each service and database its own listen address' });
    seen.set(addr, who);
  };
  for (const [name, s] of Object.entries(config.services)) claim(s.listen, `services.${name}.listen`);
  for (const [name, d] of Object.entries(config.databases)) {
    claim(d.listen, `databases.${name}.listen`);
    if (d.read_listen) claim(d.read_listen, `databases.${name}.read_listen`);
  }
}

export class Proxy implements Subsystem {
  readonly name = 'proxy';
  readonly #deps: SubsystemDeps;
  readonly #services = new Map<string, ServiceRt>();
  readonly #dbs = new Map<string, DbRt>();
  readonly #unsubscribe: Array<() => void> = [];
  readonly #timers = new Set<Timer>();
  readonly #draining = new Set<{ rt: ServiceRt; b: Backend }>();
  readonly #detection = new EventHistogram('bulwark_proxy_ejection_detection_seconds');
  readonly #outliers = new Map<string, { ejected: number; capped: number }>();
  #config: BulwarkConfig;

  constructor(deps: SubsystemDeps) {
    this.#deps = deps;
    this.#config = deps.config;
    checkListeners(deps.config);
    registerProxyMetrics(
      deps.metrics,
      {
        each: (fn) => {
          for (const rt of this.#services.values()) for (const b of rt.pool.backends) fn(rt.name, b, rt.pool.role(b));
        },
      },
      {
        ejectionSeconds: () => this.#detection.samples(),
        outliers: () => {
          const out: Array<{ labels: Record<string, string>; value: number }> = [];
          for (const [service, o] of this.#outliers) {
            out.push({ labels: { service, result: 'ejected' }, value: o.ejected }, { labels: { service, result: 'capped' }, value: o.capped });
          }
          return out;
        },
      },
    );
  }

  async start(): Promise<void> {
    this.#unsubscribe.push(
      this.#deps.events.on('health.transition', (t) => {
        const rt = this.#services.get(t.service);
        const b = rt?.pool.find(t.node);
        if (!rt || !b) return;
        const now = this.#deps.clock.now();
        rt.pool.setHealth(b, t.to, now);
        rt.pool.touch(now);
        if (t.to === 'up') rt.pool.healed(b, now);
        if (t.to === 'down' && rt.tcp && rt.cfg.close_on_down) {
          const n = rt.tcp.closeAll(b);
          if (n > 0) this.#deps.logger.info({ service: rt.name, backend: b.name, closed: n }, 'closed open connections of a backend marked down');
        }
        if (rt.cfg.mode === 'active-passive' && t.to === 'up') this.#later(rt.cfg.failback_delay + 1, () => rt.pool.touch(this.#deps.clock.now()));
      }),
      this.#deps.events.on('db.topology', (t) => {
        const db = this.#dbs.get(t.database);
        if (!db) return;
        const prev = db.primary;
        db.primary = t.primary ? `${t.primary.node}@${t.primary.address}` : undefined;
        db.write.setTargets(t.primary ? [{ node: t.primary.node, address: t.primary.address }] : []);
        db.read?.setTargets(t.replicas.map((r) => ({ node: r.node, address: r.address })));
        if (prev !== db.primary) {
          this.#deps.logger.info({ database: t.database, primary: t.primary?.node ?? null, replicas: t.replicas.length }, 'database routing changed');
        }
      }),
    );
    try {
      for (const [name, cfg] of Object.entries(this.#config.services)) await this.#addService(name, cfg);
      for (const [name, cfg] of Object.entries(this.#config.databases)) await this.#addDatabase(name, cfg);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    for (const t of this.#timers) t.cancel();
    this.#timers.clear();
    const closing: Array<Promise<void>> = [];
    for (const rt of this.#services.values()) closing.push(this.#closeService(rt, 3000));
    for (const db of this.#dbs.values()) closing.push(this.#closeDatabase(db));
    await Promise.all(closing);
    this.#services.clear();
    this.#dbs.clear();
  }

  async reload(config: BulwarkConfig): Promise<void> {
    checkListeners(config);
    this.#config = config;
    for (const [name, rt] of [...this.#services]) {
      const next = config.services[name];
      if (!next || next.protocol !== rt.cfg.protocol) {
        this.#services.delete(name);
        void this.#closeService(rt, rt.cfg.drain_timeout);
      }
    }
    for (const [name, cfg] of Object.entries(config.services)) {
      const rt = this.#services.get(name);
      if (!rt) await this.#addService(name, cfg);
      else await this.#updateService(rt, cfg);
    }
    for (const [name, db] of [...this.#dbs]) {
      const next = config.databases[name];
      if (!next || next.listen !== db.cfg.listen || next.read_listen !== db.cfg.read_listen) {
        this.#dbs.delete(name);
        await this.#closeDatabase(db);
      } else {
        db.cfg = next;
      }
    }
    for (const [name, cfg] of Object.entries(config.databases)) if (!this.#dbs.has(name)) await this.#addDatabase(name, cfg);
  }

  /** The address a service or database listener is bound to (port 0 resolved), for tests and the demo. */
  address(name: string): string | undefined {
    return this.#services.get(name)?.bound ?? this.#dbs.get(name)?.bound;
  }

  readAddress(database: string): string | undefined {
    return this.#dbs.get(database)?.readBound;
  }

  status(): unknown {
    const now = this.#deps.clock.now();
    const rows: Array<Record<string, unknown>> = [];
    for (const rt of this.#services.values()) {
      for (const b of rt.pool.backends) {
        rows.push({
          service: rt.name,
          backend: b.name,
          address: b.address,
          state: b.draining ? 'draining' : b.health === 'down' ? 'down' : b.ejected(now) ? 'ejected' : b.health,
          role: rt.pool.role(b),
          in_flight: b.inFlight,
          requests: b.requests,
          errors: b.errors,
        });
      }
    }
    for (const db of this.#dbs.values()) {
      for (const [l, role] of [[db.write, 'db-primary'], [db.read, 'db-replica']] as const) {
        if (!l) continue;
        if (l.targets.length === 0) rows.push({ service: `db:${db.name}`, backend: '-', address: '-', state: 'blocked', role, in_flight: 0, requests: l.connections, errors: l.refused });
        for (const t of l.targets) rows.push({ service: `db:${db.name}`, backend: t.node, address: t.address, state: 'up', role, in_flight: l.openConnections(), requests: l.connections, errors: l.refused });
      }
    }
    const listeners: Record<string, string> = {};
    for (const rt of this.#services.values()) listeners[rt.name] = rt.bound;
    for (const db of this.#dbs.values()) {
      listeners[`db:${db.name}`] = db.bound;
      if (db.readBound) listeners[`db:${db.name}:read`] = db.readBound;
    }
    return {
      rows,
      columns: ['service', 'backend', 'address', 'state', 'role', 'in_flight', 'requests', 'errors'],
      listeners,
      tiers: Object.fromEntries([...this.#services.values()].filter((r) => r.cfg.mode === 'active-passive').map((r) => [r.name, r.pool.tier])),
    };
  }

  #later(ms: number, fn: () => void): void {
    const t = this.#deps.clock.setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, ms);
    this.#timers.add(t);
  }

  #newBackend(rt: { cfg: ServiceConfig }, bc: ServiceConfig['backends'][number]): Backend {
    const hp = parseHostPort(bc.address) as { host: string; port: number };
    const b = new Backend(bc.name, bc.address, hp.host, hp.port, bc.weight, bc.standby, this.#deps.clock.now());
    b.zone = bc.zone;
    if (rt.cfg.protocol === 'http') b.io = backendPool(b, timeoutsOf(rt.cfg));
    return b;
  }

  async #addService(name: string, cfg: ServiceConfig): Promise<void> {
    const pool = new Pool(poolOptions(cfg));
    pool.localZone = this.#deps.instance?.zone; // cluster mode: active-active prefers this instance's zone
    const partial = { cfg };
    for (const bc of cfg.backends) pool.add(this.#newBackend(partial, bc));
    const now = (): number => this.#deps.clock.now();
    let rt: ServiceRt;
    if (cfg.protocol === 'http') {
      const hooks: HttpHooks = {
        now,
        finished: (b, status, ok, ms) => this.#finished(name, b, status, ok, ms),
        failed: (b, reason) => this.#failed(rt, b, reason),
        succeeded: (b) => pool.success(b),
      };
      const http = new HttpService(name, pool, hooks, { timeouts: timeoutsOf(cfg), retries: cfg.retries, count5xx: cfg.passive?.count_5xx ?? false });
      rt = { name, cfg, pool, http, tcp: undefined, server: http.server(), listen: cfg.listen, bound: '' };
    } else {
      const hooks: TcpHooks = {
        now,
        finished: (b, ok, ms) => this.#finished(name, b, undefined, ok, ms),
        failed: (b, reason) => this.#failed(rt, b, reason),
        succeeded: (b) => pool.success(b),
      };
      const t = timeoutsOf(cfg);
      const tcp = new TcpService(name, pool, hooks, { connectTimeout: t.connect, idleTimeout: cfg.timeouts?.idle ?? 0, retries: cfg.retries });
      rt = { name, cfg, pool, http: undefined, tcp, server: tcp.server(), listen: cfg.listen, bound: '' };
    }
    rt.bound = await listenOn(rt.server, cfg.listen, `services.${name}`);
    this.#services.set(name, rt);
    this.#deps.logger.info({ service: name, listen: rt.bound, protocol: cfg.protocol, backends: cfg.backends.length }, 'proxy listening');
  }

  async #updateService(rt: ServiceRt, cfg: ServiceConfig): Promise<void> {
    const old = rt.cfg;
    const timeoutsChanged = JSON.stringify(timeoutsOf(old)) !== JSON.stringify(timeoutsOf(cfg));
    rt.cfg = cfg;
    rt.pool.options = poolOptions(cfg);
    if (rt.http) {
      rt.http.timeouts = timeoutsOf(cfg);
      rt.http.retries = cfg.retries;
      rt.http.count5xx = cfg.passive?.count_5xx ?? false;
    }
    if (rt.tcp) {
      rt.tcp.connectTimeout = timeoutsOf(cfg).connect;
      rt.tcp.idleTimeout = cfg.timeouts?.idle ?? 0;
      rt.tcp.retries = cfg.retries;
    }
    const wanted = new Map(cfg.backends.map((b) => [b.name, b]));
    for (const b of [...rt.pool.backends]) {
      const bc = wanted.get(b.name);
      if (!bc) {
        this.#drain(rt, b);
        continue;
      }
      // Re-added while still draining (removed by an earlier reload): back in rotation, the drain is cancelled.
      if (b.draining) b.draining = false;
      b.weight = bc.weight;
      b.standby = bc.standby;
      b.zone = bc.zone;
      const moved = bc.address !== b.address;
      if (moved) {
        const hp = parseHostPort(bc.address) as { host: string; port: number };
        b.address = bc.address;
        b.host = hp.host;
        b.port = hp.port;
      }
      if (rt.http && (moved || timeoutsChanged)) {
        // A new connection pool; the old one finishes its requests in flight, then closes.
        const oldPool = b.io as UndiciPool | undefined;
        b.io = backendPool(b, timeoutsOf(cfg));
        void oldPool?.close().catch(() => undefined);
      }
    }
    for (const bc of cfg.backends) if (!rt.pool.find(bc.name)) rt.pool.add(this.#newBackend(rt, bc));
    if (cfg.listen !== old.listen) {
      const oldServer = rt.server;
      rt.server = rt.http ? rt.http.server() : (rt.tcp as TcpService).server();
      rt.bound = await listenOn(rt.server, cfg.listen, `services.${rt.name}`);
      rt.listen = cfg.listen;
      void closeServer(oldServer);
    }
    if (rt.http) (rt.server as Server).keepAliveTimeout = rt.http.timeouts.idle;
  }

  /** Takes b out of rotation and removes it once its in-flight work ends (or drain_timeout passes). */
  #drain(rt: ServiceRt, b: Backend): void {
    b.draining = true;
    const entry = { rt, b };
    this.#draining.add(entry);
    const deadline = this.#deps.clock.now() + rt.cfg.drain_timeout;
    const check = (): void => {
      if (!b.draining) {
        this.#draining.delete(entry);
        return;
      }
      if (b.inFlight > 0 && this.#deps.clock.now() < deadline) {
        this.#later(100, check);
        return;
      }
      this.#draining.delete(entry);
      rt.pool.remove(b);
      if (rt.http) void (b.io as UndiciPool | undefined)?.destroy().catch(() => undefined);
      else rt.tcp?.closeAll(b);
    };
    check();
  }

  async #closeService(rt: ServiceRt, waitMs: number): Promise<void> {
    const closed = closeServer(rt.server);
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline && rt.pool.backends.some((b) => b.inFlight > 0)) await new Promise((r) => setTimeout(r, 20));
    (rt.server as Server).closeAllConnections?.();
    if (rt.http) for (const s of rt.http.upgraded) s.destroy();
    for (const b of rt.pool.backends) {
      if (rt.http) void (b.io as UndiciPool | undefined)?.destroy().catch(() => undefined);
      else rt.tcp?.closeAll(b);
    }
    await closed;
  }

  async #addDatabase(name: string, cfg: DatabaseConfig): Promise<void> {
    const onFinished = (ok: boolean, ms: number): void => {
      this.#deps.events.emit('proxy.request', { service: `db:${name}`, backend: undefined, ok, status: undefined, latency_ms: ms, at: this.#deps.clock.now() });
    };
    const write = new DbListener(name, 'write', onFinished);
    const read = cfg.read_listen ? new DbListener(name, 'read', onFinished) : undefined;
    const db: DbRt = { name, cfg, write, read, writeServer: write.server(), readServer: read?.server(), bound: '', readBound: undefined, primary: undefined };
    db.bound = await listenOn(db.writeServer, cfg.listen, `databases.${name}.listen`);
    if (db.readServer && cfg.read_listen) db.readBound = await listenOn(db.readServer, cfg.read_listen, `databases.${name}.read_listen`);
    this.#dbs.set(name, db);
    this.#deps.logger.info({ database: name, listen: db.bound, read_listen: db.readBound }, 'database listener ready (waiting for db.topology)');
  }

  async #closeDatabase(db: DbRt): Promise<void> {
    db.write.setTargets([]);
    db.read?.setTargets([]);
    await Promise.all([closeServer(db.writeServer), db.readServer ? closeServer(db.readServer) : Promise.resolve()]);
  }

  #finished(service: string, b: Backend | undefined, status: number | undefined, ok: boolean, ms: number): void {
    if (b) {
      const cls = status === undefined ? (ok ? 2 : 0) : status >= 100 && status < 600 ? Math.floor(status / 100) : 0;
      b.codes[cls] = (b.codes[cls] ?? 0) + 1;
      b.latency.observe(ms / 1000);
    }
    this.#deps.events.emit('proxy.request', { service, backend: b?.name, ok, status, latency_ms: ms, at: this.#deps.clock.now() });
  }

  #failed(rt: ServiceRt, b: Backend, reason: string): void {
    const now = this.#deps.clock.now();
    const d = rt.pool.failure(b, reason, now);
    if (!d) return;
    let o = this.#outliers.get(rt.name);
    if (!o) {
      o = { ejected: 0, capped: 0 };
      this.#outliers.set(rt.name, o);
    }
    if (d.capped) {
      o.capped++;
      this.#deps.logger.error({ service: rt.name, backend: b.name, reason: d.reason }, 'OUTLIER EJECTION REFUSED: too much of the pool is already ejected; the backend keeps taking traffic');
      this.#deps.events.emit('audit.event', { kind: 'proxy.outlier.capped', subject: `${rt.name}/${b.name}`, message: d.reason, at: now });
      return;
    }
    o.ejected++;
    this.#detection.observe(rt.name, d.detectionMs / 1000);
    this.#deps.logger.warn({ service: rt.name, backend: b.name, reason: d.reason, until: new Date(d.until).toISOString() }, 'backend ejected on live-traffic failures');
    this.#deps.events.emit('proxy.outlier', { service: rt.name, backend: b.name, ejected: true, reason: d.reason, until: d.until, at: now });
    this.#later(d.until - now, () => {
      this.#deps.events.emit('proxy.outlier', { service: rt.name, backend: b.name, ejected: false, reason: 'ejection period ended', until: undefined, at: this.#deps.clock.now() });
    });
  }
}

/** The daemon's factory: undefined when no service or database is configured. */
export function createProxy(deps: SubsystemDeps): Subsystem | undefined {
  if (Object.keys(deps.config.services).length === 0 && Object.keys(deps.config.databases).length === 0) return undefined;
  return new Proxy(deps);
}
