// Owns the proxy's worker processes (proxy.workers above 1), from the daemon's side: forks them
// through node:cluster so they share each service's listening socket (the kernel hands each new
// connection to one of them), sends them config, health transitions and outlier decisions, takes
// back their failures and successes (the daemon's pools decide ejections), their counters (summed
// into the daemon's backends, so status and /metrics show all workers) and their SLI rows
// (re-emitted as 'proxy.request'). A worker that dies is replaced; its counters are kept.
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import type { ServiceConfig } from '../../core/config/schema.js';
import type { NodeHealth } from '../../core/events.js';
import { BulwarkError } from '../../core/errors.js';
import type { Backend } from '../pool.js';
import { addInto, applySum, type FromWorker, type ToWorker } from './protocol.js';

export interface GroupHooks {
  backend(service: string, name: string): Backend<unknown> | undefined;
  /** Every (service, backend) of the daemon's view. */
  each(fn: (service: string, b: Backend<unknown>) => void): void;
  failed(service: string, b: Backend<unknown>, reason: string, detail: string): void;
  succeeded(service: string, b: Backend<unknown>): void;
  request(service: string, backend: string | undefined, ok: boolean, status: number | undefined, latencyMs: number, at: number): void;
  log(level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, msg: string): void;
  /** Cluster mode: this instance's zone, handed to the workers (their pools prefer it). */
  readonly localZone?: string | undefined;
}

interface Member {
  worker: Worker;
  stats: Record<string, Record<string, number[]>>;
}

export class WorkerGroup {
  readonly size: number;
  readonly #hooks: GroupHooks;
  readonly #members = new Map<number, Member>();
  /** Counters of workers that exited, per service and backend. */
  readonly #retired = new Map<string, number[]>();
  #services: Record<string, ServiceConfig> = {};
  #stopping = false;
  #pings = new Map<number, { left: Set<number>; done: () => void }>();
  #nextPing = 1;
  bound: Record<string, string> = {};

  constructor(size: number, hooks: GroupHooks) {
    this.size = size;
    this.#hooks = hooks;
  }

  get pids(): number[] {
    return [...this.#members.values()].map((m) => m.worker.process.pid ?? 0);
  }

  async start(services: Record<string, ServiceConfig>): Promise<void> {
    this.#services = services;
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: fileURLToPath(new URL('../worker.js', import.meta.url)), args: [], silent: false });
    await Promise.all(Array.from({ length: this.size }, () => this.#fork()));
  }

  #fork(): Promise<void> {
    const worker = cluster.fork({ BULWARK_PROXY_WORKER: '1', ...(this.#hooks.localZone ? { BULWARK_PROXY_ZONE: this.#hooks.localZone } : {}) });
    const m: Member = { worker, stats: {} };
    this.#members.set(worker.id, m);
    return new Promise((resolve, reject) => {
      let ready = false;
      worker.on('message', (msg: FromWorker) => {
        if (msg.t === 'hello') {
          worker.send({ t: 'config', services: this.#services } satisfies ToWorker);
          return;
        }
        if (msg.t === 'ready' && !ready) {
          ready = true;
          this.bound = msg.bound;
          resolve();
          return;
        }
        if (msg.t === 'error' && !ready) {
          reject(new BulwarkError('BULWARK_PROXY_WORKER', `proxy worker ${worker.process.pid ?? '?'}: ${msg.message}`, { hint: msg.hint ?? 'see the error above, or set proxy.workers: 1' }));
          worker.kill();
          return;
        }
        this.#onMessage(m, msg);
      });
      worker.once('exit', (code, signal) => {
        this.#members.delete(worker.id);
        this.#retire(m);
        for (const [id, p] of this.#pings) {
          p.left.delete(worker.id);
          if (p.left.size === 0) {
            this.#pings.delete(id);
            p.done();
          }
        }
        if (!ready) {
          reject(new BulwarkError('BULWARK_PROXY_WORKER', `proxy worker ${worker.process.pid ?? '?'} exited while starting (${signal ?? code})`, { hint: 'run with proxy.workers: 1 to see the error in the daemon' }));
          return;
        }
        if (this.#stopping) return;
        this.#hooks.log('error', { pid: worker.process.pid, code, signal }, 'proxy worker exited; starting another');
        this.#fork().catch((err: unknown) => this.#hooks.log('error', { err: String(err) }, 'proxy worker could not be replaced'));
      });
    });
  }

  #onMessage(m: Member, msg: FromWorker): void {
    const h = this.#hooks;
    switch (msg.t) {
      case 'failed': {
        const b = h.backend(msg.service, msg.backend);
        if (b) h.failed(msg.service, b, msg.reason, msg.detail);
        return;
      }
      case 'ok': {
        const b = h.backend(msg.service, msg.backend);
        if (b) h.succeeded(msg.service, b);
        return;
      }
      case 'stats':
        m.stats = msg.services;
        this.#sum();
        return;
      case 'sli':
        for (const [service, backend, ok, status, ms, at] of msg.rows) h.request(service, backend === '' ? undefined : backend, ok, status === 0 ? undefined : status, ms, at);
        return;
      case 'ready':
        this.bound = { ...this.bound, ...msg.bound };
        return;
      case 'error':
        h.log('error', { pid: m.worker.process.pid, code: msg.code, hint: msg.hint }, `proxy worker could not apply the config: ${msg.message}`);
        return;
      case 'log':
        h.log(msg.level, { ...msg.fields, pid: m.worker.process.pid }, msg.msg);
        return;
      case 'pong': {
        const p = this.#pings.get(msg.id);
        if (!p) return;
        p.left.delete(m.worker.id);
        if (p.left.size === 0) {
          this.#pings.delete(msg.id);
          p.done();
        }
        return;
      }
    }
  }

  /** The daemon's backends get the sum of every worker's counters (and the retired ones'). */
  #sum(): void {
    this.#hooks.each((service, b) => {
      const snaps: number[][] = [];
      for (const m of this.#members.values()) {
        const s = m.stats[service]?.[b.name];
        if (s) snaps.push(s);
      }
      const r = this.#retired.get(`${service}\u0000${b.name}`);
      if (r) snaps.push(r);
      applySum(b, snaps);
    });
  }

  #retire(m: Member): void {
    for (const [service, per] of Object.entries(m.stats)) {
      for (const [backend, s] of Object.entries(per)) {
        const key = `${service}\u0000${backend}`;
        this.#retired.set(key, addInto(this.#retired.get(key) ?? [], s));
      }
    }
    this.#sum();
  }

  #broadcast(msg: ToWorker): void {
    for (const m of this.#members.values()) if (m.worker.isConnected()) m.worker.send(msg);
  }

  configure(services: Record<string, ServiceConfig>): void {
    this.#services = services;
    this.#broadcast({ t: 'config', services });
  }

  health(service: string, node: string, to: NodeHealth): void {
    this.#broadcast({ t: 'health', service, node, to });
  }

  eject(service: string, backend: string, until: number, upSince: number): void {
    this.#broadcast({ t: 'eject', service, backend, until, upSince });
  }

  /** Resolves once every worker has applied every message sent before, and its counters and SLI rows up to then are in. */
  synced(): Promise<void> {
    const id = this.#nextPing++;
    const left = new Set([...this.#members.values()].filter((m) => m.worker.isConnected()).map((m) => m.worker.id));
    if (left.size === 0) return Promise.resolve();
    return new Promise((done) => {
      this.#pings.set(id, { left, done });
      this.#broadcast({ t: 'ping', id });
    });
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    const exits = [...this.#members.values()].map(
      (m) =>
        new Promise<void>((resolve) => {
          if (m.worker.isDead()) return resolve();
          const t = setTimeout(() => m.worker.process.kill('SIGKILL'), 5000);
          m.worker.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          if (m.worker.isConnected()) m.worker.send({ t: 'stop' } satisfies ToWorker);
          else m.worker.kill();
        }),
    );
    await Promise.all(exits);
  }
}
