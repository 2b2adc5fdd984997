// Owns each configured service's lifecycle: its pool of backends (with the protocol's per-backend
// state), its listener, the reload diff (settings, backends added, moved, re-weighted or removed
// and drained, a new listen address), health transitions applied to the pool, closing, and the
// service's status rows.
import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import { parseHostPort } from '../core/config/types.js';
import type { ServiceConfig } from '../core/config/schema.js';
import type { NodeHealth } from '../core/events.js';
import type { HttpTimeouts } from './h1/exchange.js';
import { HttpService, upstreamPool, type HttpBackend } from './h1/service.js';
import { closeServer, listenOn } from './listen.js';
import { Backend, Pool, type PoolOptions } from './pool.js';
import { TcpService, type TcpBackend } from './tcp.js';

/** What a service reports to the subsystem (events, outlier accounting, timers). */
export interface ServiceHooks {
  now(): number;
  later(ms: number, fn: () => void): void;
  finished(service: string, b: Backend<unknown> | undefined, status: number | undefined, ok: boolean, ms: number): void;
  failed(service: string, pool: Pool<Backend<unknown>>, b: Backend<unknown>, reason: string, detail: string): void;
  /** A success on live traffic (only needed where the outlier streak is kept elsewhere: workers). */
  succeeded?(service: string, b: Backend<unknown>): void;
  log(level: 'info' | 'warn', fields: Record<string, unknown>, msg: string): void;
  /** Cluster mode: this instance's zone (active-active prefers its backends). */
  readonly localZone?: string | undefined;
}

export function poolOptions(cfg: ServiceConfig): PoolOptions {
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

export function timeoutsOf(cfg: ServiceConfig): HttpTimeouts {
  const response = cfg.timeouts?.response ?? 30_000;
  const perTry = cfg.timeouts?.per_try;
  // Without per_try, response bounds each attempt (as it always did); with it, per_try bounds each attempt and response all of them.
  return { connect: cfg.timeouts?.connect ?? 1000, response: perTry === undefined ? Infinity : response, perTry: Math.min(perTry ?? response, response), idle: cfg.timeouts?.idle ?? 60_000 };
}

type Proto = { kind: 'http'; svc: HttpService; pool: Pool<HttpBackend> } | { kind: 'tcp'; svc: TcpService; pool: Pool<TcpBackend> };

export class ServiceRuntime {
  readonly name: string;
  cfg: ServiceConfig;
  readonly #p: Proto;
  readonly #hooks: ServiceHooks;
  #server: Server;
  #listening = false;
  bound = '';

  private constructor(name: string, cfg: ServiceConfig, hooks: ServiceHooks) {
    this.name = name;
    this.cfg = cfg;
    this.#hooks = hooks;
    const now = hooks.now;
    if (cfg.protocol === 'http') {
      const pool = new Pool<HttpBackend>(poolOptions(cfg));
      const svc = new HttpService(
        name,
        pool,
        {
          now,
          finished: (b, status, ok, ms) => hooks.finished(name, b, status, ok, ms),
          failed: (b, reason, detail) => hooks.failed(name, pool as Pool<Backend<unknown>>, b, reason, detail),
          succeeded: (b) => {
            pool.success(b);
            hooks.succeeded?.(name, b);
          },
        },
        { timeouts: timeoutsOf(cfg), retries: cfg.retries, count5xx: cfg.passive?.count_5xx ?? false },
      );
      pool.localZone = hooks.localZone;
      this.#p = { kind: 'http', svc, pool };
      for (const bc of cfg.backends) pool.add(this.#httpBackend(bc));
      this.#server = svc.server();
    } else {
      const pool = new Pool<TcpBackend>(poolOptions(cfg));
      const t = timeoutsOf(cfg);
      const svc = new TcpService(
        name,
        pool,
        {
          now,
          finished: (b, ok, ms) => hooks.finished(name, b, undefined, ok, ms),
          failed: (b, reason, detail) => hooks.failed(name, pool as Pool<Backend<unknown>>, b, reason, detail),
          succeeded: (b) => {
            pool.success(b);
            hooks.succeeded?.(name, b);
          },
        },
        { connectTimeout: t.connect, idleTimeout: cfg.timeouts?.idle ?? 0, retries: cfg.retries },
      );
      pool.localZone = hooks.localZone;
      this.#p = { kind: 'tcp', svc, pool };
      for (const bc of cfg.backends) pool.add(this.#tcpBackend(bc));
      this.#server = svc.server();
    }
  }

  static async open(name: string, cfg: ServiceConfig, hooks: ServiceHooks): Promise<ServiceRuntime> {
    const rt = new ServiceRuntime(name, cfg, hooks);
    rt.bound = await listenOn(rt.#server, cfg.listen, `services.${name}`);
    rt.#listening = true;
    hooks.log('info', { service: name, listen: rt.bound, protocol: cfg.protocol, backends: cfg.backends.length }, 'proxy listening');
    return rt;
  }

  /** The service's pools and backend state without a listener: the daemon's view when workers carry the traffic. */
  static shadow(name: string, cfg: ServiceConfig, hooks: ServiceHooks): ServiceRuntime {
    return new ServiceRuntime(name, cfg, hooks);
  }

  get pool(): Pool<Backend<unknown>> {
    return this.#p.pool as Pool<Backend<unknown>>;
  }

  #httpBackend(bc: ServiceConfig['backends'][number]): HttpBackend {
    const hp = parseHostPort(bc.address) as { host: string; port: number };
    const b: HttpBackend = new Backend(bc.name, bc.address, hp.host, hp.port, bc.weight, bc.standby, this.#hooks.now(), upstreamPool(hp, timeoutsOf(this.cfg)));
    b.zone = bc.zone;
    return b;
  }

  #tcpBackend(bc: ServiceConfig['backends'][number]): TcpBackend {
    const hp = parseHostPort(bc.address) as { host: string; port: number };
    const b: TcpBackend = new Backend(bc.name, bc.address, hp.host, hp.port, bc.weight, bc.standby, this.#hooks.now(), new Set<Socket>());
    b.zone = bc.zone;
    return b;
  }

  /** A health transition of one of this service's backends. */
  health(node: string, to: NodeHealth): void {
    const pool = this.pool;
    const b = pool.find(node);
    if (!b) return;
    const now = this.#hooks.now();
    pool.setHealth(b, to, now);
    pool.touch(now);
    if (to === 'up') pool.healed(b, now);
    if (to === 'down' && this.#p.kind === 'tcp' && this.cfg.close_on_down) {
      const n = this.#p.svc.closeAll(b as TcpBackend);
      if (n > 0) this.#hooks.log('info', { service: this.name, backend: b.name, closed: n }, 'closed open connections of a backend marked down');
    }
    if (this.cfg.mode === 'active-passive' && to === 'up') this.#hooks.later(this.cfg.failback_delay + 1, () => pool.touch(this.#hooks.now()));
  }

  /** Applies a reloaded config of the same protocol. */
  async update(cfg: ServiceConfig): Promise<void> {
    const old = this.cfg;
    const timeoutsChanged = JSON.stringify(timeoutsOf(old)) !== JSON.stringify(timeoutsOf(cfg));
    this.cfg = cfg;
    const p = this.#p;
    p.pool.options = poolOptions(cfg);
    if (p.kind === 'http') {
      p.svc.timeouts = timeoutsOf(cfg);
      p.svc.retries = cfg.retries;
      p.svc.count5xx = cfg.passive?.count_5xx ?? false;
    } else {
      p.svc.connectTimeout = timeoutsOf(cfg).connect;
      p.svc.idleTimeout = cfg.timeouts?.idle ?? 0;
      p.svc.retries = cfg.retries;
    }
    const wanted = new Map(cfg.backends.map((b) => [b.name, b]));
    for (const b of [...p.pool.backends]) {
      const bc = wanted.get(b.name);
      if (!bc) {
        this.#drain(b);
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
      if (p.kind === 'http' && (moved || timeoutsChanged)) {
        // A new connection pool; the old one finishes its requests in flight, then closes.
        const hb = b as HttpBackend;
        const oldPool = hb.io;
        hb.io = upstreamPool(hb, timeoutsOf(cfg));
        oldPool.close();
      }
    }
    for (const bc of cfg.backends) {
      if (p.pool.find(bc.name)) continue;
      if (p.kind === 'http') p.pool.add(this.#httpBackend(bc));
      else p.pool.add(this.#tcpBackend(bc));
    }
    if (cfg.listen !== old.listen && this.#listening) {
      const oldServer = this.#server;
      this.#server = p.svc.server();
      this.bound = await listenOn(this.#server, cfg.listen, `services.${this.name}`);
      void closeServer(oldServer);
    }
  }

  /** Takes b out of rotation and removes it once its in-flight work ends (or drain_timeout passes). */
  #drain(b: Backend<unknown>): void {
    b.draining = true;
    const deadline = this.#hooks.now() + this.cfg.drain_timeout;
    const check = (): void => {
      if (!b.draining) return;
      if (b.inFlight > 0 && this.#hooks.now() < deadline) {
        this.#hooks.later(100, check);
        return;
      }
      this.pool.remove(b);
      this.#release(b);
    };
    check();
  }

  #release(b: Backend<unknown>): void {
    if (this.#p.kind === 'http') (b as HttpBackend).io.destroy();
    else this.#p.svc.closeAll(b as TcpBackend);
  }

  /** Stops accepting, waits up to waitMs for requests in flight, then closes everything. */
  async close(waitMs: number): Promise<void> {
    const closed = this.#listening ? closeServer(this.#server) : Promise.resolve();
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline && this.pool.backends.some((b) => b.inFlight > 0)) await new Promise((r) => setTimeout(r, 20));
    if (this.#p.kind === 'http') this.#p.svc.closeAll();
    for (const b of this.pool.backends) this.#release(b);
    await closed;
  }

  rows(now: number): Array<Record<string, unknown>> {
    const pool = this.pool;
    return pool.backends.map((b) => ({
      service: this.name,
      backend: b.name,
      address: b.address,
      state: b.draining ? 'draining' : b.health === 'down' ? 'down' : b.ejected(now) ? 'ejected' : b.health,
      role: pool.role(b),
      in_flight: b.inFlight,
      requests: b.requests,
      errors: b.errors,
    }));
  }
}
