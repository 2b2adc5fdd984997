// Owns the plan operations as the CLI and the daemon run them: a plan run, a verification and a
// drill per target, each recorded in the state store (backup_runs) and published as a
// 'backup.run' event when a publisher is given. Also the status rows (last success, age, bytes,
// errors, RPO, RTO) per plan and target.
import type { Clock } from '../../core/clock.js';
import type { BackupPlanConfig, BulwarkConfig } from '../../core/config/schema.js';
import { BulwarkError } from '../../core/errors.js';
import type { BulwarkEvents } from '../../core/events.js';
import type { StateStore } from '../../core/subsystem.js';
import { openRepository, type Repository } from '../engine.js';
import type { Backend } from '../backend.js';
import { drillRepository, type DrillResult } from './drill.js';
import { checkCount, recordRun, targetHistory, type RunKind } from './records.js';
import { DEFAULT_RPO_MS, planRpo, targetRpo, type TargetRpo } from './rpo.js';
import { runPlan, toTargetError, type PlanRunResult, type RunPlanOptions, type TargetError } from './run.js';
import { openTarget, targetPassword } from './targets.js';
import { rotationSlots, verifyRepository, type VerifyResult } from './verify.js';

export interface PlanContext {
  baseDir: string;
  clock: Clock;
  store?: StateStore | undefined;
  publish?: ((e: BulwarkEvents['backup.run']) => void) | undefined;
  retry?: RunPlanOptions['retry'];
}

export function getPlan(config: BulwarkConfig, name: string): BackupPlanConfig {
  const plan = config.backups[name];
  if (!plan) {
    throw new BulwarkError('BULWARK_PLAN_UNKNOWN', `no backup plan named '${name}' under backups`, { hint: `configured plans: ${Object.keys(config.backups).join(', ') || '(none)'}` });
  }
  return plan;
}

function selectTargets(name: string, plan: BackupPlanConfig, only: string | undefined): BackupPlanConfig['targets'] {
  if (only === undefined) return plan.targets;
  const t = plan.targets.filter((x) => x.name === only);
  if (t.length === 0) throw new BulwarkError('BULWARK_PLAN_UNKNOWN', `plan '${name}' has no target named '${only}'`, { hint: `targets: ${plan.targets.map((x) => x.name).join(', ')}` });
  return t;
}

function record(ctx: PlanContext, plan: string, target: string, kind: RunKind, startedAt: number, ok: boolean, extra: { snapshot?: string | undefined; bytes?: number; errors?: number; message: string; data?: Record<string, unknown> }): void {
  const finishedAt = ctx.clock.now();
  if (ctx.store) recordRun(ctx.store, { plan, target, kind, startedAt, finishedAt, ok, snapshot: extra.snapshot, bytes: extra.bytes, errors: extra.errors, message: extra.message, data: extra.data });
  ctx.publish?.({ plan, target, kind, ok, snapshot: extra.snapshot, bytes: extra.bytes ?? 0, duration_ms: finishedAt - startedAt, message: extra.message, at: finishedAt });
}

export async function runPlanRecorded(name: string, plan: BackupPlanConfig, ctx: PlanContext, extra: Omit<RunPlanOptions, 'baseDir' | 'clock'> = {}): Promise<PlanRunResult> {
  const r = await runPlan(name, plan, { ...extra, baseDir: ctx.baseDir, clock: ctx.clock, ...(ctx.retry ? { retry: ctx.retry } : {}) });
  for (const t of r.targets) {
    const problem = t.error ? `${t.error.code}: ${t.error.message}` : undefined;
    const message = t.ok
      ? `snapshot ${t.snapshot?.slice(0, 8) ?? ''} in ${t.location}${r.fileErrors.length ? ` (${r.fileErrors.length} unreadable files)` : ''}${problem ? `; ${problem}` : ''}`
      : (problem ?? 'failed');
    record(ctx, name, t.target, 'backup', r.startedAt, t.ok, {
      snapshot: t.snapshot,
      bytes: t.bytesStored,
      errors: t.ok ? r.fileErrors.length + (t.error ? 1 : 0) : 1,
      message,
      data: { initialized: t.initialized, files: r.summary?.files, snapshotBytes: r.summary?.bytes, bytesRead: r.summary?.bytesRead, retention: t.retention },
    });
  }
  return r;
}

async function withRepo<T>(name: string, plan: BackupPlanConfig, t: BackupPlanConfig['targets'][number], ctx: PlanContext, fn: (repo: Repository) => Promise<T>): Promise<T> {
  let backend: Backend | undefined;
  try {
    const password = targetPassword(name, plan, t, ctx.baseDir);
    backend = await openTarget(name, t, { baseDir: ctx.baseDir, clock: ctx.clock, ...(ctx.retry ? { retry: ctx.retry } : {}) });
    return await fn(await openRepository(backend, password));
  } finally {
    await backend?.close().catch(() => undefined);
  }
}

export interface TargetOutcome<T> {
  target: string;
  ok: boolean;
  result?: T | undefined;
  error?: TargetError | undefined;
}

/** Read-data verification of every target (or one): this run's share of packs, by rotation. */
export async function verifyPlan(name: string, plan: BackupPlanConfig, ctx: PlanContext, opts: { target?: string | undefined; intervalMs?: number | undefined } = {}): Promise<Array<TargetOutcome<VerifyResult>>> {
  const slots = rotationSlots({ readDataShare: plan.verify?.read_data_percent, periodMs: plan.verify?.read_data_period, intervalMs: opts.intervalMs });
  const out: Array<TargetOutcome<VerifyResult>> = [];
  for (const t of selectTargets(name, plan, opts.target)) {
    const started = ctx.clock.now();
    const run = ctx.store ? checkCount(ctx.store, name, t.name) : 0;
    try {
      const res = await withRepo(name, plan, t, ctx, (repo) => verifyRepository(repo, slots, run));
      const message = res.ok
        ? `verified ${res.packsRead} of ${res.packsTotal} packs (rotation slot ${res.slot + 1}/${res.slots})`
        : `${res.errors.length} error(s): ${res.errors.slice(0, 3).join('; ')}`;
      record(ctx, name, t.name, 'check', started, res.ok, { bytes: res.bytesRead, errors: res.errors.length, message, data: { slot: res.slot, slots: res.slots, packsRead: res.packsRead, packsTotal: res.packsTotal, damagedPacks: res.damagedPacks, errors: res.errors.slice(0, 50) } });
      out.push({ target: t.name, ok: res.ok, result: res });
    } catch (err) {
      const e = toTargetError(err);
      record(ctx, name, t.name, 'check', started, false, { errors: 1, message: `${e.code}: ${e.message}` });
      out.push({ target: t.name, ok: false, error: e });
    }
  }
  return out;
}

/** Restore drill of every target (or one): latest snapshot, every byte verified; time and rate recorded as RTO. */
export async function drillPlan(name: string, plan: BackupPlanConfig, ctx: PlanContext, opts: { target?: string | undefined; sample?: number | undefined; scratchParent?: string } = {}): Promise<Array<TargetOutcome<DrillResult>>> {
  const out: Array<TargetOutcome<DrillResult>> = [];
  const sample = opts.sample ?? plan.verify?.drill_sample;
  for (const t of selectTargets(name, plan, opts.target)) {
    const started = ctx.clock.now();
    try {
      const res = await withRepo(name, plan, t, ctx, (repo) => drillRepository(repo, { clock: ctx.clock, sample, ...(opts.scratchParent ? { scratchParent: opts.scratchParent } : {}) }));
      const message = res.ok
        ? `restored and verified ${res.verifiedFiles} files, ${res.bytes} bytes of snapshot ${res.snapshot.slice(0, 8)}${res.sampled ? ' (sample)' : ''}`
        : `${res.errors.length} file(s) failed: ${res.errors.slice(0, 3).map((e) => `${e.path}: ${e.message}`).join('; ')}`;
      record(ctx, name, t.name, 'drill', started, res.ok, { snapshot: res.snapshot, bytes: res.bytes, errors: res.errors.length, message, data: { files: res.files, verifiedFiles: res.verifiedFiles, bytesPerSec: res.bytesPerSec, sampled: res.sampled } });
      out.push({ target: t.name, ok: res.ok, result: res });
    } catch (err) {
      const e = toTargetError(err);
      record(ctx, name, t.name, 'drill', started, false, { errors: 1, message: `${e.code}: ${e.message}` });
      out.push({ target: t.name, ok: false, error: e });
    }
  }
  return out;
}

export interface TargetStatus extends TargetRpo {
  media: string;
  offsite: boolean;
  immutable: boolean;
  lastSuccess: number | undefined;
  lastSnapshot: string | undefined;
  lastBytes: number | undefined;
  /** Size of the files in the newest verified snapshot. */
  snapshotBytes: number | undefined;
  lastRunOk: boolean | undefined;
  /** Errors of the last run (a failed target, unreadable files, a failed retention). */
  lastRunErrors: number | undefined;
  lastError: string | undefined;
  lastCheckOk: boolean | undefined;
  lastCheckAt: number | undefined;
  lastCheckErrors: number | undefined;
}

export interface PlanStatus {
  plan: string;
  rpoMs: number;
  ageMs: number | undefined;
  rpoBreached: boolean;
  targets: TargetStatus[];
}

export function planStatus(store: StateStore, name: string, plan: BackupPlanConfig, now: number): PlanStatus {
  const rpoMs = plan.rpo ?? DEFAULT_RPO_MS;
  const targets = plan.targets.map((t): TargetStatus => {
    const h = targetHistory(store, name, t.name);
    return {
      ...targetRpo(t.name, h, rpoMs, now),
      media: t.media,
      offsite: t.offsite,
      immutable: t.immutable !== false,
      lastSuccess: h.lastSuccess,
      lastSnapshot: h.lastSnapshot,
      lastBytes: h.lastBytes,
      snapshotBytes: h.snapshotBytes,
      lastRunOk: h.lastRun?.ok,
      lastRunErrors: h.lastRun?.errors,
      lastError: h.lastRun && !h.lastRun.ok ? h.lastRun.message : undefined,
      lastCheckOk: h.lastCheck?.ok,
      lastCheckAt: h.lastCheck?.finishedAt,
      lastCheckErrors: h.lastCheck?.errors,
    };
  });
  const p = planRpo(targets, rpoMs);
  return { plan: name, rpoMs, ageMs: p.ageMs, rpoBreached: p.breached, targets };
}
