// Owns the audit inside the daemon: re-evaluates 3-2-1-1-0 for every plan at start, after every
// 'backup.run' event and every 10 minutes (snapshots age past the rpo without any event), exports
// bulwark_audit_ok{plan} and bulwark_audit_rule_ok{plan,rule}, records an 'audit.event' when a
// plan starts or stops violating, and serves GET /v1/audit. Rules: rules.ts; inputs: inputs.ts.
// In cluster mode it also audits the live cluster state (live.ts) at each evaluation: its single
// points of failure are in GET /v1/audit (`spof`), the status, bulwark_audit_spof_violations, and
// an 'audit.event' when a finding appears or goes.
import { Gauge } from 'prom-client';
import type { Timer } from '../core/clock.js';
import type { BulwarkConfig } from '../core/config/schema.js';
import type { Route, Subsystem, SubsystemDeps } from '../core/subsystem.js';
import { auditInputs } from './inputs.js';
import { auditPlan, type AuditPlanResult } from './rules.js';
import { auditLive, gatherLive } from './live.js';
import { auditSpof, type SpofFinding } from './spof.js';
import type { Coordination } from '../coord/index.js';

/** What the audit needs beyond SubsystemDeps in cluster mode. */
export interface AuditDeps extends SubsystemDeps {
  readonly coordination?: Coordination | undefined;
}

const EVERY_MS = 10 * 60_000;

export class AuditSubsystem implements Subsystem {
  readonly name = 'audit';
  readonly #deps: AuditDeps;
  #config: BulwarkConfig;
  /** Cluster mode: the single points of failure found in the config and the live state. */
  #spof: SpofFinding[] | undefined;
  #spofKeys = new Set<string>();
  #last: AuditPlanResult[] = [];
  #failing = new Set<string>();
  #timer: Timer | undefined;
  #off: (() => void) | undefined;
  #names: string[] = [];

  constructor(deps: AuditDeps) {
    this.#deps = deps;
    this.#config = deps.config;
  }

  async start(): Promise<void> {
    const reg = this.#deps.metrics;
    const results = (): AuditPlanResult[] => this.#last;
    this.#names = ['bulwark_audit_ok', 'bulwark_audit_rule_ok'];
    for (const n of this.#names) reg.removeSingleMetric(n);
    new Gauge({
      name: 'bulwark_audit_ok',
      help: '1 when the backup plan meets 3-2-1-1-0, 0 when it violates it',
      labelNames: ['plan'],
      registers: [reg],
      collect() {
        this.reset();
        for (const r of results()) this.set({ plan: r.plan }, r.ok ? 1 : 0);
      },
    });
    new Gauge({
      name: 'bulwark_audit_rule_ok',
      help: '1 when the plan meets the rule (copies, media, offsite, immutable, errors)',
      labelNames: ['plan', 'rule'],
      registers: [reg],
      collect() {
        this.reset();
        for (const r of results()) for (const x of r.rules) this.set({ plan: r.plan, rule: x.rule }, x.ok ? 1 : 0);
      },
    });
    if (this.#cluster) {
      const spof = (): SpofFinding[] => this.#spof ?? [];
      this.#names.push('bulwark_audit_spof_violations');
      reg.removeSingleMetric('bulwark_audit_spof_violations');
      new Gauge({
        name: 'bulwark_audit_spof_violations',
        help: 'Single points of failure found in the config and the live cluster state (cluster mode)',
        registers: [reg],
        collect() {
          this.set(spof().filter((f) => f.severity === 'violation').length);
        },
      });
    }
    this.#off = this.#deps.events.on('backup.run', () => this.evaluate());
    this.#tick();
  }

  get #cluster(): Coordination | undefined {
    return this.#deps.instance && this.#config.cluster ? this.#deps.coordination : undefined;
  }

  /** Cluster mode: audits the live state now; reports findings that appear or go. */
  async evaluateLive(): Promise<SpofFinding[]> {
    const coordination = this.#cluster;
    if (!coordination) return [];
    const live = await gatherLive(this.#config, coordination);
    const found = [...auditSpof(this.#config), ...auditLive(this.#config, live)];
    this.#spof = found;
    const keys = new Set(found.filter((f) => f.severity === 'violation').map((f) => `${f.subject}\u0000${f.problem}`));
    const now = this.#deps.clock.now();
    for (const f of found) {
      const k = `${f.subject}\u0000${f.problem}`;
      if (f.severity === 'violation' && !this.#spofKeys.has(k)) this.#deps.events.emit('audit.event', { kind: 'audit.spof.violation', subject: f.subject, message: `${f.problem}: ${f.fix}`, at: now });
    }
    for (const k of this.#spofKeys) {
      if (!keys.has(k)) this.#deps.events.emit('audit.event', { kind: 'audit.spof.resolved', subject: k.split('\u0000')[0] ?? '', message: `no longer a single point of failure: ${k.split('\u0000')[1] ?? ''}`, at: now });
    }
    this.#spofKeys = keys;
    return found;
  }

  #tick(): void {
    this.evaluate();
    if (this.#cluster) void this.evaluateLive().catch(() => undefined);
    this.#timer = this.#deps.clock.setTimeout(() => this.#tick(), EVERY_MS);
  }

  /** Re-evaluates every plan now; reports transitions. */
  evaluate(): AuditPlanResult[] {
    const now = this.#deps.clock.now();
    this.#last = auditInputs(this.#config, this.#deps.store).map((p) => auditPlan(p, now));
    for (const r of this.#last) {
      const was = this.#failing.has(r.plan);
      if (r.ok === !was) continue;
      if (r.ok) this.#failing.delete(r.plan);
      else this.#failing.add(r.plan);
      const broken = r.rules.filter((x) => !x.ok);
      this.#deps.events.emit('audit.event', {
        kind: r.ok ? 'audit.321.ok' : 'audit.321.violation',
        subject: r.plan,
        message: r.ok ? 'plan meets 3-2-1-1-0 again' : `plan breaks 3-2-1-1-0: ${broken.map((x) => `${x.label} (${x.actual}): ${x.fix}`).join(' | ')}`,
        at: now,
        data: { rules: broken.map((x) => x.rule) },
      });
    }
    return this.#last;
  }

  async stop(): Promise<void> {
    this.#timer?.cancel();
    this.#off?.();
    for (const n of this.#names) this.#deps.metrics.removeSingleMetric(n);
  }

  async reload(config: BulwarkConfig): Promise<void> {
    this.#config = config;
    this.evaluate();
  }

  status(): unknown {
    const spof = this.#spof === undefined ? {} : { spof: this.#spof };
    const plans = this.#last.map((r) => ({ plan: r.plan, ok: r.ok, copies: r.copies, media: r.media, offsite: r.offsite, immutable: r.immutable, errors: r.errors }));
    return {
      ok: this.#last.every((r) => r.ok),
      ...spof,
      plans,
      columns: ['plan', 'rule_3_2_1_1_0', 'copies', 'media', 'offsite', 'immutable', 'errors', 'shortfalls'],
      rows: this.#last.map((r) => ({
        plan: r.plan,
        rule_3_2_1_1_0: r.ok ? 'PASS' : 'FAIL',
        copies: r.copies,
        media: r.media,
        offsite: r.offsite,
        immutable: r.immutable,
        errors: r.errors,
        shortfalls: r.rules.filter((x) => !x.ok).map((x) => x.label).join(', ') || undefined,
      })),
    };
  }

  routes(): Route[] {
    return [
      {
        method: 'GET',
        path: '/v1/audit',
        handle: async () => {
          const plans = this.evaluate();
          if (!this.#cluster) return { ok: this.#last.every((r) => r.ok), plans };
          const spof = await this.evaluateLive();
          return { ok: plans.every((r) => r.ok) && spof.every((f) => f.severity !== 'violation'), plans, spof };
        },
      },
    ];
  }
}

export function createAudit(deps: AuditDeps): Subsystem | undefined {
  // In cluster mode the live single-point-of-failure audit runs even without backup plans.
  if (Object.keys(deps.config.backups).length === 0 && !(deps.instance && deps.config.cluster && deps.coordination)) return undefined;
  return new AuditSubsystem(deps);
}
