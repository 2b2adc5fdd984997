// Owns gathering the audit's inputs from the state store: for each target of each plan, the newest
// successful backup, the last run and the last verification, read from backup_runs (written by
// plan runs, verifications and drills, from the CLI or the daemon).
import type { BulwarkConfig } from '../core/config/schema.js';
import type { StateStore } from '../core/subsystem.js';
import type { AuditPlanInput } from './rules.js';

const DEFAULT_RPO_MS = 24 * 3_600_000;

/** Why a target's storage cannot enforce `immutable` (it ignores retain-until), or undefined when it can (vault, S3 Object Lock). */
export function unenforcedImmutability(repo: string): string | undefined {
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(repo)?.[1]?.toLowerCase();
  if (scheme === 'vault' || scheme === 's3') return undefined;
  return scheme === 'sftp' ? 'an SFTP server cannot enforce a retention lock' : 'a local directory cannot enforce a retention lock';
}

interface Row {
  finished_at: number;
  ok: number;
  errors: number | null;
  message: string | null;
}

function last(store: StateStore | undefined, plan: string, target: string, kind: string, okOnly: boolean): Row | undefined {
  return store?.get<Row>(
    `SELECT finished_at, ok, errors, message FROM backup_runs WHERE plan = ? AND target = ? AND kind = ? AND finished_at IS NOT NULL ${okOnly ? 'AND ok = 1' : ''} ORDER BY finished_at DESC, id DESC LIMIT 1`,
    plan,
    target,
    kind,
  );
}

export function auditInputs(config: BulwarkConfig, store: StateStore | undefined, only?: string): AuditPlanInput[] {
  return Object.entries(config.backups)
    .filter(([name]) => only === undefined || name === only)
    .map(([plan, p]) => ({
      plan,
      rpoMs: p.rpo ?? DEFAULT_RPO_MS,
      targets: p.targets.map((t) => {
        const ok = last(store, plan, t.name, 'backup', true);
        const run = last(store, plan, t.name, 'backup', false);
        const check = last(store, plan, t.name, 'check', false);
        return {
          name: t.name,
          media: t.media,
          offsite: t.offsite,
          immutable: t.immutable !== false,
          immutableUnenforced: t.immutable !== false ? unenforcedImmutability(t.repo) : undefined,
          lastSuccess: ok?.finished_at,
          lastRun: run ? { ok: run.ok === 1, at: run.finished_at, message: run.message ?? undefined } : undefined,
          lastCheck: check ? { ok: check.ok === 1, at: check.finished_at, errors: check.errors ?? 0, message: check.message ?? undefined } : undefined,
        };
      }),
    }));
}
