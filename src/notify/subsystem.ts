// Owns notifications inside the daemon: subscribes to the bus, turns events into incidents
// (incidents.ts), sends each route's matching incidents through its grouper (grouper.ts) to its
// channels (channels.ts), counts deliveries in bulwark_notifications_total{channel,result},
// records notify.sent / notify.failed audit events, and serves GET /v1/notify.
import { Counter } from 'prom-client';
import type { BulwarkConfig } from '../core/config/schema.js';
import type { NotifyConfig, NotifyRouteConfig } from '../core/config/notify-schema.js';
import { describeError } from '../core/errors.js';
import type { Route, Subsystem, SubsystemDeps } from '../core/subsystem.js';
import { buildChannel, type Channel } from './channels.js';
import { Grouper, type Notification } from './grouper.js';
import { fromAuditEvent, fromBackupRun, fromHealth, fromOutlier, fromSloAlert, kindMatches, severityAtLeast, type Incident } from './incidents.js';
import { toDocument } from './message.js';

interface ChannelStats {
  sent: number;
  failed: number;
  last_sent_at: number | undefined;
  last_error: string | undefined;
}

/** Whether a route takes an incident (its kinds, its lowest severity, resolutions). */
export function routeMatches(r: NotifyRouteConfig, i: Incident): boolean {
  if (i.state === 'resolved' && !r.send_resolved) return false;
  return severityAtLeast(i.severity, r.min_severity) && r.kinds.some((k) => kindMatches(i.kind, k));
}

export class NotifySubsystem implements Subsystem {
  readonly name = 'notify';
  readonly #deps: SubsystemDeps;
  #cfg: NotifyConfig;
  #channels = new Map<string, Channel>();
  #routes: Array<{ route: NotifyRouteConfig; grouper: Grouper }> = [];
  readonly #stats = new Map<string, ChannelStats>();
  readonly #offs: Array<() => void> = [];
  readonly #inflight = new Set<Promise<void>>();
  /** Backends (service/node) that health says are down: their proxy ejections are old news. */
  readonly #down = new Set<string>();
  #counter: Counter | undefined;

  constructor(deps: SubsystemDeps, cfg: NotifyConfig) {
    this.#deps = deps;
    this.#cfg = cfg;
  }

  async start(): Promise<void> {
    const existing = this.#deps.metrics.getSingleMetric('bulwark_notifications_total');
    this.#counter = (existing as Counter | undefined) ?? new Counter({ name: 'bulwark_notifications_total', help: 'Notifications delivered (result=ok) or given up (result=failed), per channel', labelNames: ['channel', 'result'], registers: [this.#deps.metrics] });
    this.#build(this.#cfg);
    const ev = this.#deps.events;
    const take = (i: Incident | undefined): void => {
      if (i) this.incident(i);
    };
    this.#offs.push(
      ev.on('health.transition', (e) => take(fromHealth(e))),
      ev.on('proxy.outlier', (e) => take(fromOutlier(e))),
      ev.on('backup.run', (e) => take(fromBackupRun(e))),
      ev.on('slo.alert', (e) => take(fromSloAlert(e))),
      ev.on('audit.event', (e) => take(fromAuditEvent(e))),
    );
  }

  #build(cfg: NotifyConfig): void {
    const channels = new Map<string, Channel>();
    for (const [name, c] of Object.entries(cfg.channels)) channels.set(name, buildChannel(name, c, { clock: this.#deps.clock, baseDir: this.#deps.baseDir }));
    for (const c of this.#channels.values()) c.close();
    for (const r of this.#routes) r.grouper.stop();
    this.#channels = channels;
    const times = { group_wait: cfg.group_wait, group_interval: cfg.group_interval, repeat_interval: cfg.repeat_interval };
    this.#routes = cfg.routes.map((route) => {
      const grouper: Grouper = new Grouper(this.#deps.clock, times, (n) => this.#dispatch(route, n));
      return { route, grouper };
    });
    for (const name of channels.keys()) if (!this.#stats.has(name)) this.#stats.set(name, { sent: 0, failed: 0, last_sent_at: undefined, last_error: undefined });
  }

  /**
   * Takes one incident: every matching route's grouper gets it. A backend that is down is one
   * story: its node.down supersedes the proxy's ejection of it (often a few seconds earlier, on
   * live errors), which is then not sent, and ejections while it is down are ignored.
   */
  incident(i: Incident): void {
    if (i.kind === 'node.down') {
      this.#down.add(i.subject);
      for (const r of this.#routes) r.grouper.forget(`outlier:${i.subject}`);
    } else if (i.kind === 'node.up') {
      this.#down.delete(i.subject);
    } else if (i.key.startsWith('outlier:') && this.#down.has(i.subject)) {
      return;
    }
    for (const r of this.#routes) if (routeMatches(r.route, i)) r.grouper.add(i);
  }

  #dispatch(route: NotifyRouteConfig, n: Notification): void {
    const doc = toDocument(n);
    for (const name of route.channels) {
      const ch = this.#channels.get(name);
      if (!ch) continue;
      const p = ch.send(doc, n.incident.key).then(
        () => this.#record(name, doc.kind, doc.subject, undefined),
        (err: unknown) => this.#record(name, doc.kind, doc.subject, err),
      );
      this.#inflight.add(p);
      void p.finally(() => this.#inflight.delete(p));
    }
  }

  #record(channel: string, kind: string, subject: string, err: unknown): void {
    const s = this.#stats.get(channel) ?? { sent: 0, failed: 0, last_sent_at: undefined, last_error: undefined };
    this.#stats.set(channel, s);
    const now = this.#deps.clock.now();
    if (err === undefined) {
      s.sent++;
      s.last_sent_at = now;
      this.#counter?.inc({ channel, result: 'ok' });
      this.#deps.events.emit('audit.event', { kind: 'notify.sent', subject: channel, message: `sent ${kind} ${subject} through ${channel}`, at: now });
    } else {
      s.failed++;
      s.last_error = describeError(err);
      this.#counter?.inc({ channel, result: 'failed' });
      this.#deps.logger.error({ channel, kind, subject, err: s.last_error }, 'notification failed');
      this.#deps.events.emit('audit.event', { kind: 'notify.failed', subject: channel, message: `could not send ${kind} ${subject}: ${s.last_error}`, at: now });
    }
  }

  async reload(config: BulwarkConfig): Promise<void> {
    if (!config.notify) return;
    this.#cfg = config.notify;
    this.#build(config.notify);
  }

  async stop(): Promise<void> {
    for (const off of this.#offs.splice(0)) off();
    for (const r of this.#routes) r.grouper.stop();
    await Promise.allSettled([...this.#inflight]);
    for (const c of this.#channels.values()) c.close();
  }

  status(): unknown {
    const firing = this.#routes.flatMap((r) => r.grouper.firing());
    const uniq = [...new Map(firing.map((i) => [i.key, i])).values()];
    return {
      rows: [...this.#channels.values()].map((c) => {
        const s = this.#stats.get(c.name);
        return { channel: c.name, type: c.type, sent: s?.sent ?? 0, failed: s?.failed ?? 0, last_sent_at: s?.last_sent_at ? new Date(s.last_sent_at).toISOString() : null, last_error: s?.last_error ?? null };
      }),
      columns: ['channel', 'type', 'sent', 'failed', 'last_sent_at', 'last_error'],
      firing: uniq.map((i) => ({ kind: i.kind, severity: i.severity, subject: i.subject, message: i.message, at: new Date(i.at).toISOString() })),
    };
  }

  routes(): Route[] {
    return [{ method: 'GET', path: '/v1/notify', handle: () => this.status() }];
  }
}

export function createNotify(deps: SubsystemDeps): Subsystem | undefined {
  const cfg = deps.config.notify;
  if (!cfg || Object.keys(cfg.channels).length === 0) return undefined;
  return new NotifySubsystem(deps, cfg);
}
