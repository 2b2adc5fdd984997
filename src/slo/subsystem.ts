// Owns the SLO subsystem in the daemon: turns bus events into SLI observations (proxy.request for
// availability and latency, health.transition for probe time slices), flushes them to the store
// every minute, evaluates the burn-rate alert tiers, records and publishes alerts ('slo.alert'),
// delivers them by webhook, keeps maintenance windows, exports metrics, and serves
// GET /v1/slo, GET /v1/slo/alerts and /v1/maintenance. In cluster mode every instance records
// and flushes its own traffic and pulls its peers' request SLIs (cluster.ts), so the report on any
// instance counts every instance's traffic; only the holder of the job/slo lease steps the alert
// state machines and delivers webhooks, and the open alerts live in the KV so that the next
// holder carries them on (no alert fired twice, none left unresolved) when the lease moves.
import { Gauge } from 'prom-client';
import type { BulwarkConfig } from '../core/config/schema.js';
import { BulwarkError, describeError } from '../core/errors.js';
import type { BulwarkEvents, NodeHealth } from '../core/events.js';
import type { Timer } from '../core/clock.js';
import type { Route, Subsystem, SubsystemDeps } from '../core/subsystem.js';
import { parseDuration } from '../core/units.js';
import { publicReport, SloEngine, label, type Report, type SloDefinition } from './engine.js';
import { HOUR_MS, MINUTE_MS, stepAlerts } from './math.js';
import { bucketFor, latencyBounds, MinuteAggregator } from './recorder.js';
import { KEYS, SloRepo, type AlertRow } from './repo.js';
import { SlidingSums } from './sums.js';
import { floorTo } from './windows.js';
import { ClusterSums, SliPuller, type SliPeers } from './cluster.js';
import type { Coordination, LeaderLease } from '../coord/index.js';

/** What the SLO subsystem needs beyond SubsystemDeps in cluster mode (from the composition root). */
export interface SloDeps extends SubsystemDeps {
  readonly coordination?: Coordination | undefined;
  /** The other instances, reachable over their APIs (cluster mode). */
  readonly peers?: SliPeers | undefined;
}

/** The open alerts in the KV, written by the lease holder after each evaluation. */
export const ALERTS_KEY = 'jobs/slo/alerts';
type KvAlert = Pick<AlertRow, 'slo' | 'tier' | 'severity' | 'tier_window' | 'threshold' | 'fired_at' | 'burn_long' | 'burn_short'>;

/** Is a finished request bad for an SLO's availability? Connection failures and timeouts always are. */
export function isBad(e: Pick<BulwarkEvents['proxy.request'], 'ok' | 'status'>, badStatus: ReadonlyArray<'5xx' | '4xx' | number>): boolean {
  if (e.status === undefined) return !e.ok;
  const s = e.status;
  return badStatus.some((b) => (b === '5xx' ? s >= 500 && s <= 599 : b === '4xx' ? s >= 400 && s <= 499 : s === b));
}

export interface WebhookPayload {
  source: 'bulwark';
  slo: string;
  service: string;
  severity: 'page' | 'ticket';
  state: 'firing' | 'resolved';
  window: string;
  threshold: number;
  burn_rate_long: number;
  burn_rate_short: number;
  objective: number;
  budget_remaining: number;
  at: string;
  alert_id: number;
}

type State = 'up' | 'down' | 'unknown';

export interface SloOptions {
  /** Waits (real time, ms) before the webhook's second, third... attempt. Default 1 s, 4 s. */
  webhookRetryDelays?: readonly number[];
}

export class SloSubsystem implements Subsystem {
  readonly name = 'slo';
  readonly #deps: SloDeps;
  /** Cluster mode: the evaluation lease and the peers' SLI puller (undefined outside cluster mode). */
  readonly #cluster: { lease: LeaderLease; puller: SliPuller; coordination: Coordination } | undefined;
  #heldLease = false;
  #pullErrors: Record<string, string> = {};
  /** Cluster mode, not the holder: the open alerts as the holder last published them (slo -> tiers). */
  #sharedFiring: Map<string, number[]> | undefined;
  readonly #repo: SloRepo;
  readonly #engine: SloEngine;
  readonly #agg = new MinuteAggregator();
  #config: BulwarkConfig;
  #unsubscribe: Array<() => void> = [];
  #timer: Timer | undefined;
  #lastCompaction = 0;
  /** slo name -> tier index -> open alert id. */
  #firing = new Map<string, Map<number, number>>();
  /** slo name -> tier index -> when it last resolved (for suppressing duplicate slower alerts). */
  #resolvedAt = new Map<string, Map<number, number>>();
  #nodeStates = new Map<string, Map<string, NodeHealth>>();
  #bounds = new Map<string, number[]>();
  #pending = new Set<Promise<void>>();
  #last: Report | undefined;
  readonly #sums: SlidingSums;
  #lastFlush = -Infinity;
  readonly #retryDelays: readonly number[];
  /** Wakes webhook retries waiting for their next attempt (stop() cuts them short). */
  #sleepers = new Set<() => void>();
  #running = false;
  readonly #gauges: { sli: Gauge; budget: Gauge; burn: Gauge; firing: Gauge };

  constructor(deps: SloDeps, opts: SloOptions = {}) {
    this.#deps = deps;
    this.#retryDelays = opts.webhookRetryDelays ?? [1000, 4000];
    this.#config = deps.config;
    this.#repo = new SloRepo(deps.store);
    // Buckets before the minute of the last flush get no more writes: their sums slide with the window.
    this.#sums = new SlidingSums(this.#repo, () => floorTo(this.#lastFlush, MINUTE_MS));
    const peers = deps.instance && deps.coordination ? deps.peers : undefined;
    this.#cluster = peers && deps.coordination ? { lease: deps.coordination.lease('job/slo'), puller: new SliPuller(this.#repo, peers, deps.clock), coordination: deps.coordination } : undefined;
    this.#engine = new SloEngine(this.#repo, deps.config, peers ? new ClusterSums(this.#sums, this.#repo, () => peers.names()) : this.#sums);
    const gauge = (name: string, help: string, labelNames: string[]): Gauge =>
      (deps.metrics.getSingleMetric(name) as Gauge | undefined) ?? new Gauge({ name, help, labelNames, registers: [deps.metrics] });
    this.#gauges = {
      sli: gauge('bulwark_slo_sli_ratio', 'SLI over the SLO window (good / valid)', ['slo', 'service', 'sli']),
      budget: gauge('bulwark_slo_error_budget_remaining_ratio', 'Share of the error budget left over the SLO window (negative when overspent)', ['slo']),
      burn: gauge('bulwark_slo_burn_rate', 'Error-budget burn rate over a lookback window', ['slo', 'window']),
      firing: gauge('bulwark_slo_alert_firing', 'Alert tiers currently firing', ['slo', 'severity', 'window']),
    };
    this.#computeBounds();
  }

  #computeBounds(): void {
    this.#bounds.clear();
    const thresholds = new Map<string, number[]>();
    for (const d of this.#engine.definitions) {
      if (d.sli !== 'latency' || !d.config.latency) continue;
      thresholds.set(d.config.service, [...(thresholds.get(d.config.service) ?? []), d.config.latency.threshold]);
    }
    for (const [svc, t] of thresholds) this.#bounds.set(svc, latencyBounds(t));
  }

  async start(): Promise<void> {
    const { events, clock } = this.#deps;
    const now = clock.now();
    this.#running = true;
    this.#agg.setState(KEYS.observed, 'up', now);
    for (const a of this.#repo.openAlerts()) {
      const m = this.#firing.get(a.slo) ?? new Map<number, number>();
      m.set(a.tier, a.id);
      this.#firing.set(a.slo, m);
      this.#gauges.firing.set({ slo: a.slo, severity: a.severity, window: a.tier_window }, 1);
    }
    this.#unsubscribe.push(events.on('proxy.request', (e) => this.#onRequest(e)));
    this.#unsubscribe.push(events.on('health.transition', (e) => this.#onHealth(e)));
    this.#schedule();
  }

  #schedule(): void {
    if (!this.#running) return;
    const now = this.#deps.clock.now();
    const next = floorTo(now, MINUTE_MS) + MINUTE_MS;
    this.#timer = this.#deps.clock.setTimeout(() => {
      if (this.#cluster) {
        void this.clusterTick().finally(() => this.#schedule());
        return;
      }
      try {
        this.tick();
      } catch (err) {
        this.#deps.logger.error({ err: describeError(err) }, 'slo evaluation failed');
      }
      this.#schedule();
    }, next - now);
  }

  /**
   * Cluster mode, every minute: flush this instance's observations, pull the peers' request SLIs,
   * then evaluate; only the holder of job/slo steps the alerts (and publishes them to the KV).
   * Never throws.
   */
  async clusterTick(): Promise<Report | undefined> {
    const c = this.#cluster;
    if (!c) return this.tick();
    try {
      this.flush();
      const failed = await c.puller.pull();
      for (const [peer, why] of Object.entries(failed)) {
        if (this.#pullErrors[peer] !== why) this.#deps.logger.warn({ peer, err: why }, 'slo: cannot pull the SLI counts of a peer (they are counted when it answers again)');
      }
      this.#pullErrors = failed;
      const held = await c.lease.acquire().catch(() => false);
      if (held && !this.#heldLease) await this.#adoptAlerts(c);
      this.#heldLease = held;
      if (!this.#running) return undefined;
      if (!held) {
        // Show what the holder says is firing, not this instance's own (stale) alert state.
        const text = await c.coordination.kv.get(ALERTS_KEY).catch(() => undefined);
        const shared = text === undefined ? [] : (JSON.parse(text) as KvAlert[]);
        this.#sharedFiring = new Map();
        for (const a of shared) this.#sharedFiring.set(a.slo, [...(this.#sharedFiring.get(a.slo) ?? []), a.tier]);
        return this.#evaluate(false);
      }
      this.#sharedFiring = undefined;
      const r = this.#evaluate(true);
      await c.coordination.kv.putIfHolder(c.lease, ALERTS_KEY, JSON.stringify(this.#repo.openAlerts().map((a): KvAlert => ({ slo: a.slo, tier: a.tier, severity: a.severity, tier_window: a.tier_window, threshold: a.threshold, fired_at: a.fired_at, burn_long: a.burn_long, burn_short: a.burn_short }))));
      return r;
    } catch (err) {
      this.#deps.logger.error({ err: describeError(err) }, 'slo evaluation failed');
      return undefined;
    }
  }

  /** Whether this instance evaluates the alerts now (always true outside cluster mode). */
  get evaluatesAlerts(): boolean {
    return this.#cluster ? this.#cluster.lease.isHeld() : true;
  }

  /** Becoming the holder: carry on the alerts the previous holder left open, and close those it resolved. */
  async #adoptAlerts(c: { coordination: Coordination }): Promise<void> {
    const text = await c.coordination.kv.get(ALERTS_KEY);
    if (text === undefined) return; // no holder before: this instance's own open alerts stand
    let shared: KvAlert[];
    try {
      shared = JSON.parse(text) as KvAlert[];
    } catch {
      return;
    }
    const now = this.#deps.clock.now();
    const local = this.#repo.openAlerts();
    for (const a of shared) {
      if (local.some((l) => l.slo === a.slo && l.tier === a.tier)) continue;
      const id = this.#repo.recordFiring(a);
      const m = this.#firing.get(a.slo) ?? new Map<number, number>();
      m.set(a.tier, id);
      this.#firing.set(a.slo, m);
      this.#gauges.firing.set({ slo: a.slo, severity: a.severity, window: a.tier_window }, 1);
    }
    for (const l of local) {
      if (shared.some((a) => a.slo === l.slo && a.tier === l.tier)) continue;
      this.#repo.recordResolved(l.id, now);
      this.#firing.get(l.slo)?.delete(l.tier);
      this.#gauges.firing.set({ slo: l.slo, severity: l.severity, window: l.tier_window }, 0);
    }
  }

  #onRequest(e: BulwarkEvents['proxy.request']): void {
    // The proxy names database listeners 'db:NAME'; SLOs name the database.
    const service = e.service.startsWith('db:') && this.#config.databases[e.service.slice(3)] ? e.service.slice(3) : e.service;
    for (const d of this.#engine.definitions) {
      if (d.config.service !== service || d.sli !== 'availability') continue;
      this.#agg.count(KEYS.availability(d.name), !isBad(e, d.config.bad_status), e.at);
    }
    const bounds = this.#bounds.get(service);
    // Latency SLIs count answered requests (a fast failure is an availability problem, not a fast answer).
    if (bounds && e.ok) this.#agg.latency(service, bucketFor(bounds, e.latency_ms), e.at);
  }

  #onHealth(e: BulwarkEvents['health.transition']): void {
    const nodes = this.#nodeStates.get(e.service) ?? new Map<string, NodeHealth>();
    nodes.set(e.node, e.to);
    this.#nodeStates.set(e.service, nodes);
    this.#agg.setState(KEYS.node(e.service, e.node), e.to, e.at);
    const states = [...nodes.values()];
    const svc: State = states.includes('up') ? 'up' : states.includes('down') ? 'down' : 'unknown';
    if (this.#agg.stateOf(KEYS.probe(e.service)) !== svc) this.#agg.setState(KEYS.probe(e.service), svc, e.at);
  }

  /** Writes every observation so far to the store. */
  flush(): void {
    const now = this.#deps.clock.now();
    const d = this.#agg.drain(now);
    this.#repo.write(d.counts, d.latency);
    this.#lastFlush = now;
  }

  /** One evaluation: flush, compute the report, step the alert state machines, update metrics. */
  tick(): Report {
    return this.#evaluate(true);
  }

  #evaluate(alerts: boolean): Report {
    const now = this.#deps.clock.now();
    this.flush();
    if (now - this.#lastCompaction >= HOUR_MS) {
      this.#repo.compact(now);
      this.#sums.invalidate();
      this.#lastCompaction = now;
    }
    const report = this.#engine.report(now);
    this.#last = report;
    for (const r of report.slos) {
      const def = this.#engine.definitions.find((d) => d.name === r.name) as SloDefinition;
      this.#metrics(r);
      if (alerts) this.#alerts(def, r, now);
    }
    return report;
  }

  #metrics(r: Report['slos'][number]): void {
    if (r.value !== null) this.#gauges.sli.set({ slo: r.name, service: r.service, sli: r.sli }, r.value);
    this.#gauges.budget.set({ slo: r.name }, r.budget.remaining_ratio);
    for (const [w, v] of Object.entries(r.burn_rates)) if (v !== null) this.#gauges.burn.set({ slo: r.name, window: w }, v);
  }

  #alerts(def: SloDefinition, r: Report['slos'][number], now: number): void {
    const open = this.#firing.get(def.name) ?? new Map<number, number>();
    this.#firing.set(def.name, open);
    const results = r.tier_results ?? [];
    const resolvedAt = this.#resolvedAt.get(def.name) ?? new Map<number, number>();
    this.#resolvedAt.set(def.name, resolvedAt);
    const step = stepAlerts(results, new Set(open.keys()), resolvedAt, now);
    for (const t of step.transitions) {
      const tier = t.result.tier;
      const window = `${label(tier.long_ms)}/${label(tier.short_ms)}`;
      let id: number;
      if (t.state === 'firing') {
        id = this.#repo.recordFiring({ slo: def.name, tier: t.index, severity: tier.severity, tier_window: window, threshold: t.result.threshold, fired_at: now, burn_long: t.result.burn_long, burn_short: t.result.burn_short });
        open.set(t.index, id);
      } else {
        id = open.get(t.index) as number;
        this.#repo.recordResolved(id, now);
        open.delete(t.index);
        resolvedAt.set(t.index, now);
      }
      this.#gauges.firing.set({ slo: def.name, severity: tier.severity, window }, t.state === 'firing' ? 1 : 0);
      this.#deps.events.emit('slo.alert', { slo: def.name, severity: tier.severity, state: t.state, burn_rate: t.result.burn_long, window, at: now });
      this.#deps.events.emit('audit.event', {
        kind: `slo.alert.${t.state}`,
        subject: def.name,
        message: `${tier.severity} ${t.state}: burn ${t.result.burn_long.toFixed(2)}x over ${label(tier.long_ms)} and ${t.result.burn_short.toFixed(2)}x over ${label(tier.short_ms)} (threshold ${t.result.threshold.toFixed(2)}x)`,
        at: now,
      });
      this.#deps.logger.warn({ slo: def.name, severity: tier.severity, state: t.state, window, burn: t.result.burn_long }, 'slo alert');
      const url = def.config.alerts?.webhook;
      if (url) {
        const payload: WebhookPayload = {
          source: 'bulwark',
          slo: def.name,
          service: def.config.service,
          severity: tier.severity,
          state: t.state,
          window,
          threshold: t.result.threshold,
          burn_rate_long: t.result.burn_long,
          burn_rate_short: t.result.burn_short,
          objective: def.config.objective,
          budget_remaining: r.budget.remaining_ratio,
          at: new Date(now).toISOString(),
          alert_id: id,
        };
        this.#deliver(url, payload, id, t.state);
      }
    }
  }

  #deliver(url: string, payload: WebhookPayload, id: number, state: 'firing' | 'resolved'): void {
    const p = (async () => {
      const delays = [0, ...this.#retryDelays];
      let result = '';
      for (let attempt = 1; attempt <= delays.length; attempt++) {
        const wait = delays[attempt - 1] ?? 0;
        if (wait > 0) {
          if (!this.#running) break; // stopping: no more retries
          await new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              this.#sleepers.delete(wake);
              resolve();
            }, wait);
            const wake = (): void => {
              clearTimeout(timer);
              resolve();
            };
            this.#sleepers.add(wake);
          });
          if (!this.#running) break;
        }
        let retry = true;
        try {
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': 'bulwark-slo' }, body: JSON.stringify(payload), signal: AbortSignal.timeout(5000) });
          await res.arrayBuffer().catch(() => undefined);
          result = res.ok ? `ok ${res.status}` : `failed: HTTP ${res.status}`;
          // A receiver that refuses the request (4xx other than 429) will refuse it again.
          retry = !res.ok && (res.status >= 500 || res.status === 429);
        } catch (err) {
          result = `failed: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`;
        }
        if (attempt > 1) result += ` (attempt ${attempt})`;
        if (result.startsWith('ok') || !retry) break;
      }
      if (result.startsWith('failed')) {
        const e = new BulwarkError('BULWARK_SLO_WEBHOOK_FAILED', `alert webhook ${url} for SLO ${payload.slo} (${state}) was not delivered: ${result.slice(8)}`);
        this.#deps.logger.error({ err: describeError(e) }, 'slo webhook failed');
      }
      try {
        this.#repo.recordWebhook(id, state, result);
      } catch {
        // the store may be closed when the daemon stops mid-delivery
      }
    })();
    this.#pending.add(p);
    void p.finally(() => this.#pending.delete(p));
  }

  /** Resolves when every webhook delivery started so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#timer?.cancel();
    await this.#cluster?.lease.release();
    for (const u of this.#unsubscribe.splice(0)) u();
    const now = this.#deps.clock.now();
    // Close every time slice: after this the daemon's downtime is missing data.
    this.#agg.clearState(KEYS.observed, now);
    for (const [svc, nodes] of this.#nodeStates) {
      this.#agg.clearState(KEYS.probe(svc), now);
      for (const n of nodes.keys()) this.#agg.clearState(KEYS.node(svc, n), now);
    }
    try {
      this.flush();
    } catch (err) {
      this.#deps.logger.error({ err: describeError(err) }, 'slo: final flush failed');
    }
    for (const wake of [...this.#sleepers]) wake();
    this.#sleepers.clear();
    await Promise.race([this.settled(), new Promise((r) => setTimeout(r, 3000).unref())]);
  }

  async reload(config: BulwarkConfig): Promise<void> {
    this.#config = config;
    this.#engine.setConfig(config);
    this.#sums.invalidate();
    this.#computeBounds();
  }

  /** The report as of now (observations flushed first). */
  report(only?: string): Report {
    if (only !== undefined && !this.#engine.definitions.some((d) => d.name === only)) {
      throw new BulwarkError('BULWARK_SLO_UNKNOWN', `no SLO named '${only}' under slos`, { hint: `configured: ${this.#engine.definitions.map((d) => d.name).join(', ') || '(none)'}`, httpStatus: 404 });
    }
    this.flush();
    const r = this.#engine.report(this.#deps.clock.now(), only);
    for (const x of r.slos) this.#metrics(x);
    return r;
  }

  status(): unknown {
    // GET /v1/status and the dashboard poll this: reuse an evaluation younger than 5 s.
    let r = this.#last;
    const now = this.#deps.clock.now();
    if (this.#running && (!r || now - r.generated_at > 5000)) {
      this.flush();
      r = this.#engine.report(now);
      this.#last = r;
      for (const x of r.slos) this.#metrics(x);
    }
    const rows = this.#engine.definitions.map((d) => {
      const s = r?.slos.find((x) => x.name === d.name);
      const open = this.#sharedFiring && !this.evaluatesAlerts ? (this.#sharedFiring.get(d.name) ?? []) : [...(this.#firing.get(d.name)?.keys() ?? [])];
      const firing = open.map((i) => d.tiers[i]?.severity).filter(Boolean);
      return {
        slo: d.name,
        service: d.config.service,
        sli: d.sli,
        objective: `${(d.config.objective * 100).toString()}%`,
        value: s?.value_text ?? '-',
        budget_left: s ? `${(s.budget.remaining_ratio * 100).toFixed(1)}%` : '-',
        burn_1h: s?.burn_rates['1h'] === undefined || s.burn_rates['1h'] === null ? '-' : s.burn_rates['1h'].toFixed(2),
        alerts: firing.length > 0 ? firing.join(',') : 'none',
      };
    });
    return {
      rows,
      columns: ['slo', 'service', 'sli', 'objective', 'value', 'budget_left', 'burn_1h', 'alerts'],
      evaluated_at: r?.generated_at ?? null,
      ...(this.#cluster ? { alerts_evaluated_here: this.evaluatesAlerts, counts: 'every instance', unreachable_peers: Object.keys(this.#pullErrors) } : {}),
    };
  }

  routes(): Route[] {
    return [
      {
        // Cluster mode: peers pull this instance's own request-SLI rows (cluster.ts).
        method: 'GET',
        path: '/v1/internal/sli',
        handle: ({ url }) => {
          const from = Number(url.searchParams.get('from'));
          const to = Number(url.searchParams.get('to'));
          if (!Number.isFinite(from) || !Number.isFinite(to) || to < from) {
            throw new BulwarkError('BULWARK_API_BAD_REQUEST', 'GET /v1/internal/sli needs from and to (epoch ms, from <= to)', { httpStatus: 400 });
          }
          this.flush();
          return { instance: this.#deps.instance?.name ?? null, ...this.#repo.ownRequestRows(from, to) };
        },
      },
      { method: 'GET', path: '/v1/slo', handle: ({ url }) => publicReport(this.report(url.searchParams.get('slo') ?? undefined)) },
      { method: 'GET', path: '/v1/slo/alerts', handle: ({ url }) => ({ alerts: this.#repo.alerts(Math.min(1000, Number(url.searchParams.get('limit') ?? 100) || 100)) }) },
      { method: 'GET', path: '/v1/maintenance', handle: () => ({ windows: this.maintenance() }) },
      { method: 'POST', path: '/v1/maintenance', handle: async (ctx) => this.addMaintenance(await ctx.body()) },
      {
        method: 'DELETE',
        path: '/v1/maintenance/:id',
        handle: ({ params }) => {
          const id = Number(params['id']);
          if (!Number.isInteger(id) || !this.#repo.removeMaintenance(id)) {
            throw new BulwarkError('BULWARK_SLO_MAINTENANCE_NOT_FOUND', `no maintenance window with id '${params['id'] ?? ''}' declared through the API`, { hint: 'GET /v1/maintenance lists them; windows from the config are removed by editing it', httpStatus: 404 });
          }
          return { deleted: id };
        },
      },
    ];
  }

  maintenance(): Array<{ id: number | undefined; source: string; services: string[] | null; start: string; end: string; reason: string }> {
    const cfg = this.#config.maintenance.map((m) => ({ id: undefined, source: 'config', services: m.services ?? null, start: m.start, end: m.end, reason: m.reason }));
    const api = this.#repo.maintenance().map((m) => ({ id: m.id as number | undefined, source: 'api', services: m.services, start: m.start, end: m.end, reason: m.reason }));
    return [...cfg, ...api].map((m) => ({ ...m, start: new Date(m.start).toISOString(), end: new Date(m.end).toISOString() }));
  }

  /** Declares a maintenance window: { start?, end | duration, services?, reason? } (start defaults to now). */
  addMaintenance(body: unknown): { id: number; start: string; end: string; services: string[] | null; reason: string } {
    const bad = (msg: string): BulwarkError =>
      new BulwarkError('BULWARK_SLO_MAINTENANCE_INVALID', `maintenance window: ${msg}`, {
        hint: 'send {"start":"2026-03-01T02:00:00Z","end":"2026-03-01T03:00:00Z","services":["web"],"reason":"upgrade"} (or "duration":"1h" instead of "end"; start defaults to now)',
        httpStatus: 400,
      });
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('expected a JSON object');
    const b = body as Record<string, unknown>;
    const allowed = ['start', 'end', 'duration', 'services', 'reason'];
    for (const k of Object.keys(b)) if (!allowed.includes(k)) throw bad(`unknown field '${k}'; allowed: ${allowed.join(', ')}`);
    const time = (k: string): number | undefined => {
      const v = b[k];
      if (v === undefined) return undefined;
      const t = typeof v === 'number' ? v : typeof v === 'string' ? Date.parse(v) : NaN;
      if (!Number.isFinite(t)) throw bad(`${k}: expected an ISO time like 2026-03-01T02:00:00Z or epoch ms, got ${JSON.stringify(v)}`);
      return t;
    };
    const start = time('start') ?? this.#deps.clock.now();
    let end = time('end');
    if (b['duration'] !== undefined) {
      if (end !== undefined) throw bad('give end or duration, not both');
      try {
        end = start + parseDuration(b['duration'] as string | number, 'duration');
      } catch (err) {
        throw bad((err as Error).message);
      }
    }
    if (end === undefined) throw bad('end (or duration) is required');
    if (end <= start) throw bad('end must come after start');
    // Dates past year 9999 cannot be written as ISO 8601: such a window was stored, then broke every read.
    const LATEST = Date.UTC(9999, 11, 31);
    if (start < 0 || start > LATEST || end > LATEST) throw bad('start and end must lie between 1970 and 9999');
    if (b['reason'] !== undefined && String(b['reason']).length > 500) throw bad('reason: at most 500 characters');
    let services: string[] | null = null;
    if (b['services'] !== undefined) {
      if (!Array.isArray(b['services']) || b['services'].some((s) => typeof s !== 'string')) throw bad('services: expected a list of service names');
      services = b['services'] as string[];
      const known = new Set([...Object.keys(this.#config.services), ...Object.keys(this.#config.databases)]);
      const unknown = services.filter((s) => !known.has(s));
      if (unknown.length > 0) throw bad(`unknown service(s) ${unknown.join(', ')}; configured: ${[...known].join(', ') || '(none)'}`);
    }
    const reason = b['reason'] === undefined ? '' : String(b['reason']);
    const id = this.#repo.addMaintenance({ services, start, end, reason }, this.#deps.clock.now());
    this.#deps.events.emit('audit.event', { kind: 'slo.maintenance', subject: services?.join(',') ?? '*', message: `maintenance window ${new Date(start).toISOString()} to ${new Date(end).toISOString()}${reason ? `: ${reason}` : ''}`, at: this.#deps.clock.now() });
    return { id, start: new Date(start).toISOString(), end: new Date(end).toISOString(), services, reason };
  }
}

/**
 * The factory the daemon calls: undefined when there is nothing to measure. It runs whenever a
 * service or database is configured, even without SLOs yet, so node history accumulates for
 * predicted availability and SLOs added by a reload start recording at once.
 */
export function createSlo(deps: SloDeps, opts?: SloOptions): SloSubsystem | undefined {
  const c = deps.config;
  if (Object.keys(c.slos).length === 0 && Object.keys(c.services).length === 0 && Object.keys(c.databases).length === 0) return undefined;
  return new SloSubsystem(deps, opts);
}
