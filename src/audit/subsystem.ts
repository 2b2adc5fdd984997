// Owns the audit inside the daemon: re-evaluates 3-2-1-1-0 for every plan at start, after every
// 'backup.run' event and every 10 minutes (snapshots age past the rpo without any event), exports
// bulwark_audit_ok{plan} and bulwark_audit_rule_ok{plan,rule}, records an 'audit.event' when a
// plan starts or stops violating, and serves GET /v1/audit. Rules: rules.ts; inputs: inputs.ts.
import { Gauge } from 'prom-client';
import type { Timer } from '../core/clock.js';
import type { BulwarkConfig } from '../core/config/schema.js';
import type { Route, Subsystem, SubsystemDeps } from '../core/subsystem.js';
import { auditInputs } from './inputs.js';
import { auditPlan, type AuditPlanResult } from './rules.js';

const EVERY_MS = 10 * 60_000;

export class AuditSubsystem implements Subsystem {
  readonly name = 'audit';
  readonly #deps: SubsystemDeps;
  #config: BulwarkConfig;
  #last: AuditPlanResult[] = [];
  #failing = new Set<string>();
  #timer: Timer | undefined;
  #off: (() => void) | undefined;
  #names: string[] = [];

  constructor(deps: SubsystemDeps) {
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
    this.#off = this.#deps.events.on('backup.run', () => this.evaluate());
    this.#tick();
  }

  #tick(): void {
    this.evaluate();
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
    const plans = this.#last.map((r) => ({ plan: r.plan, ok: r.ok, copies: r.copies, media: r.media, offsite: r.offsite, immutable: r.immutable, errors: r.errors }));
    return {
      ok: this.#last.every((r) => r.ok),
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
    return [{ method: 'GET', path: '/v1/audit', handle: () => ({ ok: this.#last.every((r) => r.ok), plans: this.evaluate() }) }];
  }
}

export function createAudit(deps: SubsystemDeps): Subsystem | undefined {
  if (Object.keys(deps.config.backups).length === 0) return undefined;
  return new AuditSubsystem(deps);
}
