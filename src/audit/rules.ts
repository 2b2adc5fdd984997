// Owns the 3-2-1-1-0 rule as pure logic: given what each target of a plan holds (newest verified
// snapshot, last run, last read-data verification), count the copies (the source plus every
// target with a recent verified snapshot and a clean last verification), the distinct media among
// those backup copies, the offsite and immutable copies, and the errors; say for each shortfall
// what to do. No I/O: inputs come from inputs.ts (the state store) or tests.

export interface AuditTargetInput {
  name: string;
  media: string;
  offsite: boolean;
  immutable: boolean;
  /** Set when the target asks for immutability but its storage cannot enforce it (why): not an immutable copy. */
  immutableUnenforced?: string | undefined;
  /** When the newest snapshot was written and read back (ms since epoch). */
  lastSuccess?: number | undefined;
  lastRun?: { ok: boolean; at: number; message?: string | undefined } | undefined;
  lastCheck?: { ok: boolean; at: number; errors: number; message?: string | undefined } | undefined;
}

export interface AuditPlanInput {
  plan: string;
  /** A snapshot older than this is not a current copy. */
  rpoMs: number;
  targets: AuditTargetInput[];
}

export type RuleId = 'copies' | 'media' | 'offsite' | 'immutable' | 'errors';

export interface RuleResult {
  rule: RuleId;
  /** "3 copies", "2 media", ... */
  label: string;
  required: number;
  actual: number;
  ok: boolean;
  /** Why it falls short and what to do (empty when ok). */
  fix: string;
}

export interface TargetVerdict {
  name: string;
  media: string;
  offsite: boolean;
  immutable: boolean;
  /** Counted as a copy. */
  counted: boolean;
  /** Why it is not counted, or its errors. */
  notes: string[];
  errors: number;
}

export interface AuditPlanResult {
  plan: string;
  ok: boolean;
  copies: number;
  media: number;
  offsite: number;
  immutable: number;
  errors: number;
  rules: RuleResult[];
  targets: TargetVerdict[];
}

function age(ms: number): string {
  const h = ms / 3_600_000;
  return h < 48 ? `${Math.round(h * 10) / 10}h` : `${Math.round(h / 24)}d`;
}

export function auditPlan(input: AuditPlanInput, now: number): AuditPlanResult {
  const targets: TargetVerdict[] = input.targets.map((t) => {
    const notes: string[] = [];
    let errors = 0;
    let counted = true;
    if (t.lastSuccess === undefined) {
      counted = false;
      notes.push('holds no verified snapshot yet');
    } else if (now - t.lastSuccess > input.rpoMs) {
      counted = false;
      notes.push(`newest verified snapshot is ${age(now - t.lastSuccess)} old (rpo ${age(input.rpoMs)})`);
    }
    if (t.lastRun && !t.lastRun.ok) {
      errors++;
      notes.push(`last run failed: ${t.lastRun.message ?? 'error'}`);
    }
    if (t.lastCheck && !t.lastCheck.ok) {
      counted = false;
      errors += Math.max(1, t.lastCheck.errors);
      notes.push(`last verification found ${Math.max(1, t.lastCheck.errors)} error(s)${t.lastCheck.message ? `: ${t.lastCheck.message}` : ''}`);
    }
    if (!t.lastCheck) notes.push('never verified (read-data): set verify.schedule, or run `bulwark backup plan verify`');
    if (t.immutable && t.immutableUnenforced) notes.push(`immutable is set but ${t.immutableUnenforced}: not an immutable copy`);
    return { name: t.name, media: t.media, offsite: t.offsite, immutable: t.immutable && !t.immutableUnenforced, counted, notes, errors };
  });
  const good = targets.filter((t) => t.counted);
  const copies = 1 + good.length; // the source is the first copy
  const media = new Set(good.map((t) => t.media)).size;
  const offsite = good.filter((t) => t.offsite).length;
  const immutable = good.filter((t) => t.immutable).length;
  const errors = targets.reduce((a, t) => a + t.errors, 0);
  const notCounted = targets.filter((t) => !t.counted).map((t) => `${t.name} (${t.notes[0] ?? 'not current'})`);
  const configured = {
    offsite: input.targets.filter((t) => t.offsite),
    immutable: input.targets.filter((t) => t.immutable && !t.immutableUnenforced),
    unenforced: input.targets.filter((t) => t.immutable && t.immutableUnenforced),
    media: new Set(input.targets.map((t) => t.media)),
  };
  const rules: RuleResult[] = [
    {
      rule: 'copies',
      label: '3 copies',
      required: 3,
      actual: copies,
      ok: copies >= 3,
      fix:
        copies >= 3
          ? ''
          : input.targets.length < 2
            ? `only ${input.targets.length} target(s): add targets until the source plus targets make 3 copies`
            : `only ${good.length} target(s) hold a current verified snapshot${notCounted.length ? `; not counted: ${notCounted.join(', ')}` : ''}: run \`bulwark backup plan run ${input.plan}\` and fix the failing targets`,
    },
    {
      rule: 'media',
      label: '2 media',
      required: 2,
      actual: media,
      ok: media >= 2,
      fix:
        media >= 2
          ? ''
          : configured.media.size < 2
            ? `every target is on the same medium (${[...configured.media].join(', ')}): add a target on another medium (hdd, ssd, nas, tape, object-storage, ...), so one failure mode cannot take every copy`
            : 'the targets on other media hold no current verified snapshot: run the plan and fix those targets',
    },
    {
      rule: 'offsite',
      label: '1 offsite',
      required: 1,
      actual: offsite,
      ok: offsite >= 1,
      fix:
        offsite >= 1
          ? ''
          : configured.offsite.length === 0
            ? 'no target is offsite: add one in another site (a vault:// box, or an s3:// bucket) with `offsite: true`'
            : `the offsite target(s) ${configured.offsite.map((t) => t.name).join(', ')} hold no current verified snapshot: run the plan and fix them`,
    },
    {
      rule: 'immutable',
      label: '1 immutable',
      required: 1,
      actual: immutable,
      ok: immutable >= 1,
      fix:
        immutable >= 1
          ? ''
          : configured.immutable.length === 0
            ? `no target is immutable${configured.unenforced.length ? ` (${configured.unenforced.map((t) => `${t.name}: ${t.immutableUnenforced ?? ''}`).join(', ')})` : ''}: set \`immutable: 30d\` on a target whose storage enforces it (a vault in --append-only mode, or an S3 bucket with Object Lock)`
            : `the immutable target(s) ${configured.immutable.map((t) => t.name).join(', ')} hold no current verified snapshot: run the plan and fix them`,
    },
    {
      rule: 'errors',
      label: '0 errors',
      required: 0,
      actual: errors,
      ok: errors === 0,
      fix:
        errors === 0
          ? ''
          : `${targets
              .filter((t) => t.errors > 0)
              .map((t) => `${t.name}: ${t.notes.filter((n) => /failed|error/.test(n)).join('; ')}`)
              .join(' | ')}: run \`bulwark backup check --read-data\` on the damaged target, restore from a good copy or run the plan again, then re-verify`,
    },
  ];
  return { plan: input.plan, ok: rules.every((r) => r.ok), copies, media, offsite, immutable, errors, rules, targets };
}
