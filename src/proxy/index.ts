// Owns the failover proxy subsystem: one listener per configured service (HTTP or TCP) in front
// of a pool of backends, plus the database listeners that follow 'db.topology'. It never probes:
// backend health comes from 'health.transition' events, and its own passive outlier detection
// ejects backends that fail on live traffic ('proxy.outlier'). Every finished request or
// connection is published as 'proxy.request' for SLIs. Reload keeps listeners, connections and
// backend state; removed backends drain. Each service's lifecycle is services.ts's, the database
// listeners databases.ts's, the outlier accounting outliers.ts's; this module wires them.
import { availableParallelism } from 'node:os';
import type { Timer } from '../core/clock.js';
import type { BulwarkConfig } from '../core/config/schema.js';
import type { Subsystem, SubsystemDeps } from '../core/subsystem.js';
import { DatabaseListeners } from './databases.js';
import { checkListeners } from './listen.js';
import { Outliers } from './outliers.js';
import type { Backend } from './pool.js';
import { ServiceRuntime, type ServiceHooks } from './services.js';
import { registerProxyMetrics } from './stats.js';
import { WorkerGroup } from './workers/group.js';

export { Pool, Backend } from './pool.js';
export { checkListeners } from './listen.js';

export class Proxy implements Subsystem {
  readonly name = 'proxy';
  readonly #deps: SubsystemDeps;
  readonly #services = new Map<string, ServiceRuntime>();
  readonly #dbs = new Map<string, DatabaseListeners>();
  readonly #unsubscribe: Array<() => void> = [];
  readonly #timers = new Set<Timer>();
  readonly #outliers: Outliers;
  readonly #hooks: ServiceHooks;
  /** Set when proxy.workers is above 1: the services then run in worker processes, #services is the daemon's view. */
  #group: WorkerGroup | undefined;
  #config: BulwarkConfig;

  constructor(deps: SubsystemDeps) {
    this.#deps = deps;
    this.#config = deps.config;
    checkListeners(deps.config);
    const later = (ms: number, fn: () => void): void => this.#later(ms, fn);
    this.#outliers = new Outliers(deps, later);
    this.#hooks = {
      now: () => deps.clock.now(),
      later,
      finished: (service, b, status, ok, ms) => this.#finished(service, b, status, ok, ms),
      failed: (service, pool, b, reason, detail) => this.#outliers.failed(service, pool, b, reason, detail),
      log: (level, fields, msg) => deps.logger[level](fields, msg),
      localZone: deps.instance?.zone, // cluster mode: active-active prefers this instance's zone
    };
    registerProxyMetrics(
      deps.metrics,
      {
        each: (fn) => {
          for (const rt of this.#services.values()) for (const b of rt.pool.backends) fn(rt.name, b, rt.pool.role(b));
        },
      },
      { ejectionSeconds: () => this.#outliers.detection.samples(), outliers: () => this.#outliers.samples() },
    );
  }

  async start(): Promise<void> {
    this.#unsubscribe.push(
      this.#deps.events.on('health.transition', (t) => {
        this.#services.get(t.service)?.health(t.node, t.to);
        this.#group?.health(t.service, t.node, t.to);
      }),
      this.#deps.events.on('db.topology', (t) => this.#dbs.get(t.database)?.topology(t)),
    );
    try {
      const n = workerCount(this.#config);
      if (n > 1) await this.#startWorkers(n);
      else for (const [name, cfg] of Object.entries(this.#config.services)) this.#services.set(name, await ServiceRuntime.open(name, cfg, this.#hooks));
      for (const [name, cfg] of Object.entries(this.#config.databases)) this.#dbs.set(name, await DatabaseListeners.open(name, cfg, this.#deps));
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Workers: the daemon keeps each service's pools (health, ejections, draining, summed counters) without a listener. */
  async #startWorkers(n: number): Promise<void> {
    for (const [name, cfg] of Object.entries(this.#config.services)) this.#services.set(name, ServiceRuntime.shadow(name, cfg, this.#hooks));
    const group = new WorkerGroup(n, {
      backend: (service, name) => this.#services.get(service)?.pool.find(name),
      each: (fn) => {
        for (const rt of this.#services.values()) for (const b of rt.pool.backends) fn(rt.name, b);
      },
      failed: (service, b, reason, detail) => {
        const rt = this.#services.get(service);
        if (!rt) return;
        const d = this.#outliers.failed(service, rt.pool, b, reason, detail);
        if (d?.ejected) this.#group?.eject(service, b.name, b.ejectedUntil, b.upSince);
      },
      succeeded: (service, b) => this.#services.get(service)?.pool.success(b),
      request: (service, backend, ok, status, ms, at) => this.#deps.events.emit('proxy.request', { service, backend, ok, status, latency_ms: ms, at }),
      log: (level, fields, msg) => this.#deps.logger[level](fields, msg),
      localZone: this.#deps.instance?.zone,
    });
    this.#group = group;
    await group.start(this.#config.services);
    for (const rt of this.#services.values()) rt.bound = group.bound[rt.name] ?? '';
    this.#deps.logger.info({ workers: n, pids: group.pids, listeners: group.bound }, 'proxy listening in worker processes');
  }

  /** Resolves once every worker has applied every change sent so far and reported its counters (no-op without workers). */
  synced(): Promise<void> {
    return this.#group?.synced() ?? Promise.resolve();
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#group?.stop();
    this.#group = undefined;
    for (const t of this.#timers) t.cancel();
    this.#timers.clear();
    const closing: Array<Promise<void>> = [];
    for (const rt of this.#services.values()) closing.push(rt.close(3000));
    for (const db of this.#dbs.values()) closing.push(db.close());
    await Promise.all(closing);
    this.#services.clear();
    this.#dbs.clear();
  }

  async reload(config: BulwarkConfig): Promise<void> {
    checkListeners(config);
    // Workers: fresh in-flight counts first, so a removed backend with requests in a worker drains here too.
    await this.#group?.synced();
    this.#config = config;
    for (const [name, rt] of [...this.#services]) {
      const next = config.services[name];
      if (!next || next.protocol !== rt.cfg.protocol) {
        this.#services.delete(name);
        void rt.close(rt.cfg.drain_timeout);
      }
    }
    const group = this.#group;
    if (group && workerCount(config) !== group.size) this.#deps.logger.warn({ workers: group.size }, 'proxy.workers changes on restart, not on reload');
    for (const [name, cfg] of Object.entries(config.services)) {
      const rt = this.#services.get(name);
      if (!rt) this.#services.set(name, group ? ServiceRuntime.shadow(name, cfg, this.#hooks) : await ServiceRuntime.open(name, cfg, this.#hooks));
      else await rt.update(cfg);
    }
    if (group) {
      group.configure(config.services);
      await group.synced();
      for (const rt of this.#services.values()) rt.bound = group.bound[rt.name] ?? rt.bound;
    }
    for (const [name, db] of [...this.#dbs]) {
      const next = config.databases[name];
      if (!next || !db.sameListeners(next)) {
        this.#dbs.delete(name);
        await db.close();
      } else {
        db.cfg = next;
      }
    }
    for (const [name, cfg] of Object.entries(config.databases)) if (!this.#dbs.has(name)) this.#dbs.set(name, await DatabaseListeners.open(name, cfg, this.#deps));
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
    for (const rt of this.#services.values()) rows.push(...rt.rows(now));
    for (const db of this.#dbs.values()) rows.push(...db.rows());
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
      workers: this.#group ? { count: this.#group.size, pids: this.#group.pids } : { count: 1, pids: [process.pid] },
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

  #finished(service: string, b: Backend<unknown> | undefined, status: number | undefined, ok: boolean, ms: number): void {
    if (b) {
      const cls = status === undefined ? (ok ? 2 : 0) : status >= 100 && status < 600 ? Math.floor(status / 100) : 0;
      b.codes[cls] = (b.codes[cls] ?? 0) + 1;
      b.latency.observe(ms / 1000);
    }
    this.#deps.events.emit('proxy.request', { service, backend: b?.name, ok, status, latency_ms: ms, at: this.#deps.clock.now() });
  }
}

/** proxy.workers resolved: auto is one per core. */
export function workerCount(config: BulwarkConfig): number {
  const w = config.proxy.workers;
  return w === 'auto' ? availableParallelism() : w;
}

/** The daemon's factory: undefined when no service or database is configured. */
export function createProxy(deps: SubsystemDeps): Subsystem | undefined {
  if (Object.keys(deps.config.services).length === 0 && Object.keys(deps.config.databases).length === 0) return undefined;
  return new Proxy(deps);
}
