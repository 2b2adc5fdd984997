// Owns the plans inside the daemon: cron schedules that run each plan (backup with per-target
// retention), its read-data verification rotation and its restore drills; one job per plan at a
// time; RPO watching (an 'audit.event' when a plan or target breaches its rpo, and when it
// recovers); Prometheus metrics and status rows for every plan and target; and a small API
// (GET /v1/backups, POST /v1/backups/:plan/run|verify|drill). Timers run on the injected Clock.
// In cluster mode the schedules run once across the instances: each plan is a job whose lease
// holder alone runs its slots, recording them in the KV (coord/ OnceScheduler), and a plan with
// `instance:` is run only by that instance (its paths live on that host).
import { Gauge } from 'prom-client';
import type { Timer } from '../../core/clock.js';
import type { BackupPlanConfig, BulwarkConfig } from '../../core/config/schema.js';
import { BulwarkError, describeError } from '../../core/errors.js';
import type { Route, Subsystem, SubsystemDeps } from '../../core/subsystem.js';
import { drillPlan, planStatus, runPlanRecorded, verifyPlan, type PlanContext, type PlanStatus } from './ops.js';
import { checkCron, cronInterval, latestRun, nextRun } from './schedule.js';
import { OnceScheduler, type Coordination, type OnceTask } from '../../coord/index.js';

/** What the plans need from the composition root beyond SubsystemDeps: the coordination service (cluster mode). */
export interface PlansDeps extends SubsystemDeps {
  readonly coordination?: Coordination | undefined;
}

type JobKind = 'backup' | 'verify' | 'drill';

interface PlanState {
  name: string;
  plan: BackupPlanConfig;
  timers: Timer[];
  next: Partial<Record<JobKind, number>>;
  running: JobKind | undefined;
  /** Targets (and '*' for the plan) currently in RPO breach, to report transitions once. */
  breached: Set<string>;
}

const RPO_CHECK_MS = 60_000;

export class PlansSubsystem implements Subsystem {
  readonly name = 'backup-plans';
  readonly #deps: PlansDeps;
  readonly #baseDir: string;
  /** Cluster mode: one once-only scheduler per plan (undefined outside cluster mode: local timers, as always). */
  #once: Map<string, OnceScheduler> | undefined;
  #config: BulwarkConfig;
  #plans = new Map<string, PlanState>();
  #rpoTimer: Timer | undefined;
  #stopped = false;
  #inflight = new Set<Promise<void>>();
  #gauges: Gauge[] = [];
  #gaugeNames: string[] = [];

  constructor(deps: PlansDeps, baseDir: string) {
    this.#deps = deps;
    if (deps.instance && deps.coordination) this.#once = new Map();
    this.#config = deps.config;
    this.#baseDir = baseDir;
    for (const [name, p] of Object.entries(deps.config.backups)) validateSchedules(name, p);
  }

  #ctx(): PlanContext {
    return {
      baseDir: this.#baseDir,
      clock: this.#deps.clock,
      store: this.#deps.store,
      publish: (e) => this.#deps.events.emit('backup.run', e),
    };
  }

  async start(): Promise<void> {
    this.#stopped = false;
    this.#registerMetrics();
    this.#schedule();
    this.#watchRpo();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#rpoTimer?.cancel();
    for (const s of this.#plans.values()) for (const t of s.timers) t.cancel();
    if (this.#once) await Promise.allSettled([...this.#once.values()].map((o) => o.stop()));
    this.#once?.clear();
    await Promise.allSettled([...this.#inflight]);
    for (const n of this.#gaugeNames) this.#deps.metrics.removeSingleMetric(n);
    this.#gaugeNames = [];
    this.#gauges = [];
  }

  async reload(config: BulwarkConfig): Promise<void> {
    for (const [name, p] of Object.entries(config.backups)) validateSchedules(name, p);
    this.#config = config;
    for (const s of this.#plans.values()) for (const t of s.timers) t.cancel();
    this.#schedule();
  }

  #schedule(): void {
    const old = this.#plans;
    this.#plans = new Map();
    for (const [name, plan] of Object.entries(this.#config.backups)) {
      const prev = old.get(name);
      const s: PlanState = { name, plan, timers: [], next: {}, running: prev?.running, breached: prev?.breached ?? new Set() };
      this.#plans.set(name, s);
      if (this.#once) {
        this.#planNext(s);
        continue;
      }
      if (plan.schedule) this.#arm(s, 'backup', plan.schedule);
      if (plan.verify?.schedule) this.#arm(s, 'verify', plan.verify.schedule);
      if (plan.verify?.restore_drill) this.#arm(s, 'drill', plan.verify.restore_drill);
    }
    if (this.#once) this.#syncOnce();
  }

  /** Cluster mode: the schedule's expression for a job kind of a plan, as configured now. */
  #expr(name: string, kind: JobKind): string | undefined {
    const p = this.#plans.get(name)?.plan;
    return kind === 'backup' ? p?.schedule : kind === 'verify' ? p?.verify?.schedule : p?.verify?.restore_drill;
  }

  #planNext(s: PlanState): void {
    const now = this.#deps.clock.now();
    s.next = {};
    for (const kind of ['backup', 'verify', 'drill'] as const) {
      const e = this.#expr(s.name, kind);
      if (e) s.next[kind] = nextRun(e, now);
    }
  }

  /** Cluster mode: one scheduler per plan; plans added by a reload get one, removed plans give theirs up. */
  #syncOnce(): void {
    const once = this.#once as Map<string, OnceScheduler>;
    const coordination = this.#deps.coordination as Coordination;
    const me = this.#deps.instance?.name;
    for (const [name, sched] of once) {
      if (!this.#plans.has(name)) {
        once.delete(name);
        void sched.stop();
      }
    }
    for (const name of this.#plans.keys()) {
      if (once.has(name) || this.#stopped) continue;
      const tasks: OnceTask[] = (['backup', 'verify', 'drill'] as const).map((kind) => ({
        key: `jobs/plan/${name}/${kind}`,
        latest: (now) => {
          const e = this.#expr(name, kind);
          return e ? latestRun(e, now) : undefined;
        },
        next: (now) => {
          const e = this.#expr(name, kind);
          return e ? nextRun(e, now) : now + 60_000;
        },
        busy: () => this.#plans.get(name)?.running !== undefined,
        run: async (slot, why) => {
          const s = this.#plans.get(name);
          if (s) this.#planNext(s);
          this.#deps.logger.info({ plan: name, kind, slot: new Date(slot).toISOString(), why }, 'scheduled plan job (this instance holds the plan\'s lease)');
          await this.trigger(name, kind).catch((err: unknown) => this.#deps.logger.warn({ plan: name, kind, err: describeError(err) }, 'scheduled plan job did not run'));
        },
      }));
      const sched = new OnceScheduler({
        coordination,
        leaseName: `job/plan/${name}`,
        clock: this.#deps.clock,
        tasks,
        eligible: () => {
          const pinned = this.#plans.get(name)?.plan.instance;
          return pinned === undefined || pinned === me;
        },
        onEvent: (e) => {
          if (e.kind === 'error') this.#deps.logger.warn({ plan: name, msg: e.message }, 'plan scheduling across instances failed');
          else if (e.kind === 'held' || e.kind === 'lost') this.#deps.logger.info({ plan: name }, e.message);
        },
      });
      once.set(name, sched);
      sched.start();
    }
  }

  /** Cluster mode: whether this instance holds the plan's job lease now (undefined outside cluster mode). */
  holder(name: string): boolean | undefined {
    return this.#once ? (this.#once.get(name)?.holder ?? false) : undefined;
  }

  #arm(s: PlanState, kind: JobKind, expr: string): void {
    if (this.#stopped) return;
    const now = this.#deps.clock.now();
    const at = nextRun(expr, now);
    s.next[kind] = at;
    const timer = this.#deps.clock.setTimeout(() => {
      s.timers = s.timers.filter((t) => t !== timer);
      if (this.#plans.get(s.name) !== s) return; // replaced by a reload
      void this.trigger(s.name, kind).catch((err: unknown) => this.#deps.logger.warn({ plan: s.name, kind, err: describeError(err) }, 'scheduled plan job did not run'));
      this.#arm(s, kind, expr);
    }, at - now);
    s.timers.push(timer);
  }

  /** Runs a job now (schedules and the API call this). One job per plan at a time. */
  async trigger(name: string, kind: JobKind): Promise<void> {
    const s = this.#plans.get(name);
    if (!s) throw new BulwarkError('BULWARK_PLAN_UNKNOWN', `no backup plan named '${name}'`, { httpStatus: 404 });
    if (s.running) {
      throw new BulwarkError('BULWARK_PLAN_BUSY', `plan '${name}' is busy (${s.running} running); ${kind} skipped`, { httpStatus: 409 });
    }
    s.running = kind;
    const log = this.#deps.logger;
    const job = (async () => {
      try {
        if (kind === 'backup') {
          const r = await runPlanRecorded(name, s.plan, this.#ctx());
          log.info({ plan: name, ok: r.ok, targets: r.targets.map((t) => `${t.target}:${t.ok ? 'ok' : (t.error?.code ?? 'failed')}`) }, 'plan run finished');
        } else if (kind === 'verify') {
          const expr = s.plan.verify?.schedule;
          const out = await verifyPlan(name, s.plan, this.#ctx(), { intervalMs: expr ? cronInterval(expr, this.#deps.clock.now()) : undefined });
          log.info({ plan: name, targets: out.map((o) => `${o.target}:${o.ok ? 'ok' : 'FAILED'}`) }, 'plan verification finished');
        } else {
          const out = await drillPlan(name, s.plan, this.#ctx());
          log.info({ plan: name, targets: out.map((o) => `${o.target}:${o.ok ? `${o.result?.durationMs ?? 0}ms` : 'FAILED'}`) }, 'restore drill finished');
        }
      } catch (err) {
        log.error({ plan: name, kind, err: describeError(err) }, 'plan job failed');
      } finally {
        s.running = undefined;
        this.#checkRpo();
      }
    })();
    this.#inflight.add(job);
    void job.finally(() => this.#inflight.delete(job));
    await job;
  }

  #watchRpo(): void {
    if (this.#stopped) return;
    this.#checkRpo();
    this.#rpoTimer = this.#deps.clock.setTimeout(() => this.#watchRpo(), RPO_CHECK_MS);
  }

  #checkRpo(): void {
    const now = this.#deps.clock.now();
    for (const s of this.#plans.values()) {
      const st = planStatus(this.#deps.store, s.name, s.plan, now);
      const items: Array<{ key: string; subject: string; breached: boolean; ageMs: number | undefined }> = [
        { key: '*', subject: s.name, breached: st.rpoBreached, ageMs: st.ageMs },
        ...st.targets.map((t) => ({ key: t.target, subject: `${s.name}/${t.target}`, breached: t.breached, ageMs: t.ageMs })),
      ];
      for (const it of items) {
        const was = s.breached.has(it.key);
        if (it.breached === was) continue;
        if (it.breached) s.breached.add(it.key);
        else s.breached.delete(it.key);
        const age = it.ageMs === undefined ? 'no verified snapshot yet' : `newest verified snapshot ${Math.round(it.ageMs / 60_000)} min old`;
        this.#deps.events.emit('audit.event', {
          kind: it.breached ? 'backup.rpo.breached' : 'backup.rpo.resolved',
          subject: it.subject,
          message: it.breached ? `RPO breached: ${age}, rpo ${Math.round(st.rpoMs / 60_000)} min` : `RPO met again: ${age}`,
          at: now,
          data: { age_ms: it.ageMs ?? null, rpo_ms: st.rpoMs },
        });
        if (it.breached) this.#deps.logger.warn({ plan: s.name, subject: it.subject, age_ms: it.ageMs, rpo_ms: st.rpoMs }, 'backup RPO breached');
      }
    }
  }

  statusRows(): PlanStatus[] {
    const now = this.#deps.clock.now();
    return [...this.#plans.values()].map((s) => planStatus(this.#deps.store, s.name, s.plan, now));
  }

  status(): unknown {
    const rows = this.statusRows();
    const mins = (ms: number | undefined): string => (ms === undefined ? '-' : ms < 120_000 ? `${Math.round(ms / 1000)}s` : ms < 7_200_000 ? `${Math.round(ms / 60_000)}m` : `${Math.round(ms / 3_600_000)}h`);
    return {
      // a table for `bulwark status` (one row per plan target)
      columns: ['plan', 'target', 'media', 'last_success', 'age', 'rpo', 'size', 'errors', 'verified', 'rto', 'state', ...(this.#once ? ['scheduled'] : []), 'error'],
      rows: rows.flatMap((r) =>
        r.targets.map((t) => ({
          plan: r.plan,
          target: t.target,
          media: t.media,
          last_success: t.lastSuccess === undefined ? 'never' : new Date(t.lastSuccess).toISOString(),
          age: mins(t.ageMs),
          rpo: `${t.breached ? 'BREACHED' : 'ok'} (${mins(t.rpoMs)})`,
          size: t.snapshotBytes,
          errors: t.lastRunErrors ?? 0,
          verified: t.lastCheckOk === undefined ? 'never' : t.lastCheckOk ? 'ok' : `${t.lastCheckErrors ?? 1} errors`,
          rto: t.rtoMs === undefined ? '-' : mins(t.rtoMs),
          state: this.#plans.get(r.plan)?.running ?? 'idle',
          ...(this.#once ? { scheduled: this.holder(r.plan) ? 'here' : 'elsewhere' } : {}),
          error: t.lastError,
        })),
      ),
      plans: rows.map((r) => {
        const s = this.#plans.get(r.plan);
        return {
          ...r,
          running: s?.running ?? null,
          ...(this.#once ? { scheduled_here: this.holder(r.plan) ?? false, instance: s?.plan.instance ?? null } : {}),
          next: Object.fromEntries(Object.entries(s?.next ?? {}).map(([k, v]) => [k, new Date(v).toISOString()])),
        };
      }),
    };
  }

  routes(): Route[] {
    const fire = (kind: JobKind) => async ({ params }: { params: Record<string, string> }): Promise<unknown> => {
      const name = params['plan'] as string;
      if (!this.#plans.has(name)) throw new BulwarkError('BULWARK_PLAN_UNKNOWN', `no backup plan named '${name}'`, { httpStatus: 404 });
      const s = this.#plans.get(name) as PlanState;
      if (s.running) throw new BulwarkError('BULWARK_PLAN_BUSY', `plan '${name}' is busy (${s.running} running)`, { httpStatus: 409 });
      void this.trigger(name, kind).catch(() => undefined);
      return { plan: name, started: kind };
    };
    return [
      { method: 'GET', path: '/v1/backups', handle: () => this.status() },
      { method: 'POST', path: '/v1/backups/:plan/run', handle: fire('backup') },
      { method: 'POST', path: '/v1/backups/:plan/verify', handle: fire('verify') },
      { method: 'POST', path: '/v1/backups/:plan/drill', handle: fire('drill') },
    ];
  }

  #registerMetrics(): void {
    const reg = this.#deps.metrics;
    const rows = (): PlanStatus[] => this.statusRows();
    for (const n of this.#gaugeNames) reg.removeSingleMetric(n);
    const names = this.#gaugeNames;
    const perTarget = (name: string, help: string, value: (t: PlanStatus['targets'][number]) => number | undefined): Gauge => {
      names.push(name);
      return new Gauge({
        name,
        help,
        labelNames: ['plan', 'target', 'media'],
        registers: [reg],
        collect() {
          this.reset();
          for (const p of rows()) {
            for (const t of p.targets) {
              const v = value(t);
              if (v !== undefined) this.set({ plan: p.plan, target: t.target, media: t.media }, v);
            }
          }
        },
      });
    };
    names.push('bulwark_backup_plan_rpo_seconds');
    this.#gauges = [
      perTarget('bulwark_backup_last_success_timestamp_seconds', 'Unix time of the newest verified snapshot per plan target', (t) => (t.lastSuccess === undefined ? undefined : t.lastSuccess / 1000)),
      perTarget('bulwark_backup_age_seconds', 'Age of the newest verified snapshot per plan target (the achieved RPO)', (t) => (t.ageMs === undefined ? undefined : t.ageMs / 1000)),
      perTarget('bulwark_backup_snapshot_bytes', 'Size of the files in the newest verified snapshot of the target', (t) => t.snapshotBytes),
      perTarget('bulwark_backup_bytes_stored', 'Bytes the last successful run stored in the target (after dedup, compression, encryption)', (t) => t.lastBytes),
      perTarget('bulwark_backup_last_run_ok', '1 when the last run of the plan target succeeded, 0 when it failed', (t) => (t.lastRunOk === undefined ? undefined : t.lastRunOk ? 1 : 0)),
      perTarget('bulwark_backup_run_errors', 'Errors of the last run of the plan target (target failure, unreadable files, retention)', (t) => t.lastRunErrors),
      perTarget('bulwark_backup_verify_errors', 'Errors found by the last read-data verification of the target', (t) => (t.lastCheckOk === undefined ? undefined : (t.lastCheckErrors ?? 0))),
      perTarget('bulwark_backup_rpo_breached', '1 when the target\'s newest verified snapshot is older than the plan\'s rpo', (t) => (t.breached ? 1 : 0)),
      perTarget('bulwark_backup_rto_seconds', 'Duration of the last successful restore drill of the target (measured RTO)', (t) => (t.rtoMs === undefined ? undefined : t.rtoMs / 1000)),
      perTarget('bulwark_backup_restore_bytes_per_second', 'Restore rate of the last successful drill of the target', (t) => t.rtoBytesPerSec),
      new Gauge({
        name: 'bulwark_backup_plan_rpo_seconds',
        help: 'The plan\'s configured rpo',
        labelNames: ['plan'],
        registers: [reg],
        collect() {
          this.reset();
          for (const p of rows()) this.set({ plan: p.plan }, p.rpoMs / 1000);
        },
      }),
    ];
  }
}

function validateSchedules(name: string, p: BackupPlanConfig): void {
  if (p.schedule) checkCron(p.schedule, `backups.${name}.schedule`);
  if (p.verify?.schedule) checkCron(p.verify.schedule, `backups.${name}.verify.schedule`);
  if (p.verify?.restore_drill) checkCron(p.verify.restore_drill, `backups.${name}.verify.restore_drill`);
}

/** The factory for SUBSYSTEM_FACTORIES: undefined when no plan is configured. */
export function createPlans(deps: PlansDeps): Subsystem | undefined {
  if (Object.keys(deps.config.backups).length === 0) return undefined;
  // Relative plan paths and secrets resolve against the config file's directory, as in the CLI;
  return new PlansSubsystem(deps, deps.baseDir);
}
