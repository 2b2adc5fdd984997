// Owns node state for every backend of every configured service: schedules probes (interval,
// faster while a node is changing state, jitter), accepts pushed heartbeats on
// POST /v1/heartbeat/:service/:node, runs each node's NodeMachine, and publishes every transition
// as 'health.transition' and records it in health_transitions. Reload keeps node state.
import { Counter, Gauge, Histogram } from 'prom-client';
import type { Timer } from '../core/clock.js';
import type { BulwarkConfig, ServiceConfig } from '../core/config/schema.js';
import { BulwarkError, describeError } from '../core/errors.js';
import type { Route, Subsystem, SubsystemDeps } from '../core/subsystem.js';
import { NodeMachine, type MachineOptions, type Transition } from './machine.js';
import { runProbe, type ProbeSpec, type Prober } from './probes.js';

export { NodeMachine } from './machine.js';
export type { Transition, MachineOptions } from './machine.js';

interface NodeEntry {
  readonly service: string;
  readonly node: string;
  address: string;
  spec: ProbeSpec | undefined;
  interval: number;
  fastInterval: number;
  jitter: number;
  machine: NodeMachine;
  probeTimer: Timer | undefined;
  hbTimer: Timer | undefined;
  probing: boolean;
  lastCheck: number | undefined;
  lastDetail: string;
  /** Bumped on removal/reconfigure so a probe in flight does not reschedule a stale loop. */
  generation: number;
}

export interface HealthOptions {
  /** Replaces probe I/O (tests that inject probe results). */
  prober?: Prober;
  /** Random source in [0, 1) for jitter. */
  random?: () => number;
}

const HEARTBEAT_STATUS = new Set(['up', 'down']);

function probeSpec(svc: ServiceConfig): ProbeSpec | undefined {
  const h = svc.health;
  if (!h) return undefined;
  if (h.exec) return { exec: h.exec, timeout: h.timeout };
  if (h.http) return { http: h.http, timeout: h.timeout };
  if (h.tcp || svc.protocol === 'tcp') return { tcp: {}, timeout: h.timeout };
  return { http: { path: '/health', expect: 200 }, timeout: h.timeout };
}

function machineOptions(svc: ServiceConfig): MachineOptions {
  return { pull: svc.health !== undefined, rise: svc.health?.rise ?? 2, fall: svc.health?.fall ?? 2, heartbeatTtl: svc.heartbeat?.ttl };
}

export class Health implements Subsystem {
  readonly name = 'health';
  readonly #deps: SubsystemDeps;
  readonly #prober: Prober;
  readonly #random: () => number;
  readonly #nodes = new Map<string, NodeEntry>();
  #config: BulwarkConfig;
  #running = false;
  readonly #probes: Counter<'service' | 'node' | 'result'>;
  readonly #transitions: Counter<'service' | 'node' | 'to'>;
  readonly #detection: Histogram<'service'>;

  constructor(deps: SubsystemDeps, opts: HealthOptions = {}) {
    this.#deps = deps;
    this.#config = deps.config;
    this.#prober = opts.prober ?? runProbe;
    this.#random = opts.random ?? Math.random;
    const registers = [deps.metrics];
    this.#probes = new Counter({ name: 'bulwark_health_probes_total', help: 'Health probes run, by result (ok, fail)', labelNames: ['service', 'node', 'result'], registers });
    this.#transitions = new Counter({ name: 'bulwark_health_transitions_total', help: 'Node health transitions, by target state', labelNames: ['service', 'node', 'to'], registers });
    this.#detection = new Histogram({
      name: 'bulwark_health_detection_seconds',
      help: 'Time from the first failing evidence (probe or missed heartbeat deadline) to the node being marked down',
      labelNames: ['service'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    });
    new Gauge({
      name: 'bulwark_health_node_up',
      help: 'Node health: 1 up, 0 down, -1 unknown',
      labelNames: ['service', 'node'],
      registers,
      collect: () => {
        const g = deps.metrics.getSingleMetric('bulwark_health_node_up') as Gauge<'service' | 'node'>;
        g.reset();
        for (const n of this.#nodes.values()) g.set({ service: n.service, node: n.node }, n.machine.state === 'up' ? 1 : n.machine.state === 'down' ? 0 : -1);
      },
    });
    this.#sync(deps.config);
  }

  async start(): Promise<void> {
    this.#running = true;
    for (const n of this.#nodes.values()) this.#arm(n, true);
  }

  async stop(): Promise<void> {
    this.#running = false;
    for (const n of this.#nodes.values()) this.#disarm(n);
  }

  async reload(config: BulwarkConfig): Promise<void> {
    this.#config = config;
    this.#sync(config);
    if (this.#running) for (const n of this.#nodes.values()) if (!n.probeTimer && !n.probing && !n.hbTimer) this.#arm(n, true);
  }

  /** The current state of one node ('unknown' when not tracked). */
  state(service: string, node: string): string {
    return this.#nodes.get(`${service}/${node}`)?.machine.state ?? 'unknown';
  }

  status(): unknown {
    const rows = [...this.#nodes.values()].map((n) => {
      const s = n.machine.snapshot();
      return {
        service: n.service,
        node: n.node,
        address: n.address,
        state: s.state,
        since: new Date(s.since).toISOString(),
        probe: s.pull,
        heartbeat: s.heartbeat,
        streak: s.ok_streak > 0 ? `+${s.ok_streak}` : s.fail_streak > 0 ? `-${s.fail_streak}` : '0',
        last: s.last_reason,
      };
    });
    return { rows, columns: ['service', 'node', 'address', 'state', 'since', 'probe', 'heartbeat', 'streak', 'last'] };
  }

  routes(): Route[] {
    return [
      {
        method: 'POST',
        path: '/v1/heartbeat/:service/:node',
        handle: async (ctx) => {
          const service = ctx.params['service'] ?? '';
          const node = ctx.params['node'] ?? '';
          const entry = this.#nodes.get(`${service}/${node}`);
          const svc = this.#config.services[service];
          if (!svc) {
            throw new BulwarkError('BULWARK_HEALTH_UNKNOWN_NODE', `no service named '${service}' in the config`, {
              httpStatus: 404,
              hint: `known services: ${Object.keys(this.#config.services).join(', ') || '(none)'}`,
            });
          }
          if (!svc.backends.some((b) => b.name === node)) {
            throw new BulwarkError('BULWARK_HEALTH_UNKNOWN_NODE', `service '${service}' has no backend named '${node}'`, {
              httpStatus: 404,
              hint: `backends of ${service}: ${svc.backends.map((b) => b.name).join(', ')}`,
            });
          }
          if (!svc.heartbeat) {
            throw new BulwarkError('BULWARK_HEALTH_NO_HEARTBEAT', `service '${service}' does not accept heartbeats`, {
              httpStatus: 409,
              hint: `add heartbeat: { ttl: 3s } to services.${service} in the config`,
            });
          }
          if (!entry) throw new BulwarkError('BULWARK_HEALTH_UNKNOWN_NODE', `node '${node}' of service '${service}' is not tracked yet (config reloading?)`, { httpStatus: 404 });
          const body = await ctx.body();
          let status: 'up' | 'down' = 'up';
          let message = '';
          if (body !== undefined) {
            if (body === null || typeof body !== 'object' || Array.isArray(body)) {
              throw new BulwarkError('BULWARK_HEALTH_BAD_HEARTBEAT', 'a heartbeat body must be a JSON object like {"status":"up"}', { httpStatus: 400 });
            }
            const b = body as Record<string, unknown>;
            for (const k of Object.keys(b)) {
              if (k !== 'status' && k !== 'message') {
                throw new BulwarkError('BULWARK_HEALTH_BAD_HEARTBEAT', `unknown heartbeat field '${k}'`, { httpStatus: 400, hint: 'allowed fields: status ("up" or "down"), message (text)' });
              }
            }
            if (b['status'] !== undefined) {
              if (typeof b['status'] !== 'string' || !HEARTBEAT_STATUS.has(b['status'])) {
                throw new BulwarkError('BULWARK_HEALTH_BAD_HEARTBEAT', `heartbeat status must be "up" or "down", got ${JSON.stringify(b['status'])}`, { httpStatus: 400 });
              }
              status = b['status'] as 'up' | 'down';
            }
            if (b['message'] !== undefined) {
              if (typeof b['message'] !== 'string' || b['message'].length > 500) {
                throw new BulwarkError('BULWARK_HEALTH_BAD_HEARTBEAT', 'heartbeat message must be a string of at most 500 characters', { httpStatus: 400 });
              }
              message = b['message'];
            }
          }
          const now = this.#deps.clock.now();
          this.#publish(entry, entry.machine.heartbeat(status, message, now));
          this.#armHeartbeat(entry);
          return { service, node, state: entry.machine.state, ttl_ms: svc.heartbeat.ttl };
        },
      },
    ];
  }

  /** Brings the node table in line with the config, keeping machines of nodes that stay. */
  #sync(config: BulwarkConfig): void {
    const seen = new Set<string>();
    const now = this.#deps.clock.now();
    for (const [service, svc] of Object.entries(config.services)) {
      if (!svc.health && !svc.heartbeat) continue;
      const opts = machineOptions(svc);
      const spec = probeSpec(svc);
      const interval = svc.health?.interval ?? 1000;
      for (const b of svc.backends) {
        const key = `${service}/${b.name}`;
        seen.add(key);
        const existing = this.#nodes.get(key);
        if (existing) {
          const oldInterval = existing.interval;
          const oldSpec = JSON.stringify(existing.spec);
          existing.address = b.address;
          existing.spec = spec;
          existing.interval = interval;
          existing.fastInterval = svc.health?.fast_interval ?? Math.max(50, Math.floor(interval / 2));
          existing.jitter = svc.health?.jitter ?? 0.1;
          this.#publish(existing, existing.machine.configure(opts, now));
          if (this.#running && (oldInterval !== interval || oldSpec !== JSON.stringify(spec))) {
            this.#disarm(existing);
            this.#arm(existing, true);
          } else if (this.#running) {
            this.#armHeartbeat(existing);
          }
          continue;
        }
        this.#nodes.set(key, {
          service,
          node: b.name,
          address: b.address,
          spec,
          interval,
          fastInterval: svc.health?.fast_interval ?? Math.max(50, Math.floor(interval / 2)),
          jitter: svc.health?.jitter ?? 0.1,
          machine: new NodeMachine(opts, now),
          probeTimer: undefined,
          hbTimer: undefined,
          probing: false,
          lastCheck: undefined,
          lastDetail: '',
          generation: 0,
        });
      }
    }
    for (const [key, n] of this.#nodes) {
      if (!seen.has(key)) {
        this.#disarm(n);
        this.#nodes.delete(key);
      }
    }
  }

  #disarm(n: NodeEntry): void {
    n.generation++;
    n.probeTimer?.cancel();
    n.probeTimer = undefined;
    n.hbTimer?.cancel();
    n.hbTimer = undefined;
    n.probing = false;
  }

  #arm(n: NodeEntry, first: boolean): void {
    if (!this.#running) return;
    if (n.spec) {
      // The first probe goes out soon, spread over a fraction of the interval so nodes do not align.
      const delay = first ? Math.floor(this.#random() * Math.min(n.interval, 200)) : this.#nextDelay(n);
      const gen = n.generation;
      n.probeTimer = this.#deps.clock.setTimeout(() => void this.#probe(n, gen), delay);
    }
    this.#armHeartbeat(n);
  }

  #nextDelay(n: NodeEntry): number {
    const base = n.machine.changing ? Math.min(n.fastInterval, n.interval) : n.interval;
    const j = n.jitter * base;
    return Math.max(1, Math.round(base - j + this.#random() * 2 * j));
  }

  #armHeartbeat(n: NodeEntry): void {
    n.hbTimer?.cancel();
    n.hbTimer = undefined;
    if (!this.#running) return;
    const deadline = n.machine.heartbeatDeadline();
    if (deadline === undefined) return;
    const gen = n.generation;
    n.hbTimer = this.#deps.clock.setTimeout(
      () => {
        if (gen !== n.generation) return;
        n.hbTimer = undefined;
        this.#publish(n, n.machine.tick(this.#deps.clock.now()));
        this.#armHeartbeat(n);
      },
      Math.max(0, deadline - this.#deps.clock.now()) + 1,
    );
  }

  async #probe(n: NodeEntry, gen: number): Promise<void> {
    n.probeTimer = undefined;
    if (gen !== n.generation || !n.spec) return;
    n.probing = true;
    const startedAt = this.#deps.clock.now();
    let result;
    try {
      result = await this.#prober({ service: n.service, node: n.node, address: n.address }, n.spec);
    } catch (err) {
      result = { ok: false, detail: `probe failed: ${describeError(err)}` };
    }
    if (gen !== n.generation) return;
    n.probing = false;
    const now = this.#deps.clock.now();
    n.lastCheck = now;
    n.lastDetail = result.detail;
    this.#probes.inc({ service: n.service, node: n.node, result: result.ok ? 'ok' : 'fail' });
    this.#publish(n, n.machine.probe(result.ok, result.detail, now));
    if (this.#running && gen === n.generation) {
      // The interval runs from probe start to probe start (a slow probe does not stretch it).
      n.probeTimer = this.#deps.clock.setTimeout(() => void this.#probe(n, gen), Math.max(1, this.#nextDelay(n) - (now - startedAt)));
    }
  }

  #publish(n: NodeEntry, t: Transition | undefined): void {
    if (!t) return;
    this.#transitions.inc({ service: n.service, node: n.node, to: t.to });
    if (t.to === 'down' && t.failingSince !== undefined) this.#detection.observe({ service: n.service }, Math.max(0, t.at - t.failingSince) / 1000);
    try {
      this.#deps.store.run('INSERT INTO health_transitions (at, service, node, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?, ?)', t.at, n.service, n.node, t.from, t.to, t.reason);
    } catch (err) {
      this.#deps.logger.error({ err: describeError(err), service: n.service, node: n.node }, 'could not record a health transition');
    }
    const level = t.to === 'down' ? 'warn' : 'info';
    this.#deps.logger[level]({ service: n.service, node: n.node, from: t.from, to: t.to, reason: t.reason }, 'node health changed');
    this.#deps.events.emit('health.transition', { service: n.service, node: n.node, from: t.from, to: t.to, reason: t.reason, at: t.at });
    this.#deps.events.emit('audit.event', { kind: 'health.transition', subject: `${n.service}/${n.node}`, message: `${t.from} -> ${t.to}: ${t.reason}`, at: t.at });
  }
}

/** The daemon's factory: undefined when no service is configured. */
export function createHealth(deps: SubsystemDeps, opts?: HealthOptions): Subsystem | undefined {
  if (Object.keys(deps.config.services).length === 0) return undefined;
  return new Health(deps, opts);
}
