// Owns the retention policy: which snapshots `forget` keeps and why. Pure logic over snapshot times
// (UTC calendar buckets) and a clock's `now`; tested with a fake clock. Snapshots are grouped by
// host and paths; each group is judged on its own (like restic).

export interface RetentionPolicy {
  last?: number;
  hourly?: number;
  daily?: number;
  weekly?: number;
  monthly?: number;
  yearly?: number;
  /** keep every snapshot younger than this (ms) */
  withinMs?: number;
}

export interface ForgetCandidate {
  id: string;
  time: string;
  host: string;
  paths: readonly string[];
}

export interface ForgetDecision {
  id: string;
  time: string;
  keep: boolean;
  reasons: string[];
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const y = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(y, 0, 1)) / 86_400_000 + 1) / 7);
  return `${y}-W${String(week).padStart(2, '0')}`;
}

const BUCKETS: { key: keyof RetentionPolicy; label: string; bucket: (d: Date) => string }[] = [
  { key: 'last', label: 'last', bucket: () => '' },
  { key: 'hourly', label: 'hourly', bucket: (d) => d.toISOString().slice(0, 13) },
  { key: 'daily', label: 'daily', bucket: (d) => d.toISOString().slice(0, 10) },
  { key: 'weekly', label: 'weekly', bucket: isoWeek },
  { key: 'monthly', label: 'monthly', bucket: (d) => d.toISOString().slice(0, 7) },
  { key: 'yearly', label: 'yearly', bucket: (d) => d.toISOString().slice(0, 4) },
];

export function policyIsEmpty(p: RetentionPolicy): boolean {
  return BUCKETS.every((b) => !p[b.key]) && !p.withinMs;
}

/** Decides every snapshot: kept (with the rules that keep it) or removed (and why). */
export function selectForget(snaps: readonly ForgetCandidate[], policy: RetentionPolicy, now: Date): ForgetDecision[] {
  const groups = new Map<string, ForgetCandidate[]>();
  for (const s of snaps) {
    const k = `${s.host}\0${[...s.paths].sort().join('\0')}`;
    const g = groups.get(k) ?? [];
    g.push(s);
    groups.set(k, g);
  }
  const out: ForgetDecision[] = [];
  for (const g of groups.values()) {
    const sorted = [...g].sort((a, b) => b.time.localeCompare(a.time) || b.id.localeCompare(a.id)); // newest first
    const decisions = sorted.map((s) => ({ id: s.id, time: s.time, keep: false, reasons: [] as string[] }));
    for (const b of BUCKETS) {
      let left = policy[b.key] ?? 0;
      let lastBucket: string | undefined;
      for (let i = 0; i < sorted.length && left > 0; i++) {
        const d = new Date((sorted[i] as ForgetCandidate).time);
        const bucket = b.key === 'last' ? String(i) : b.bucket(d);
        if (bucket === lastBucket) continue;
        lastBucket = bucket;
        const dec = decisions[i] as ForgetDecision;
        dec.keep = true;
        dec.reasons.push(b.key === 'last' ? 'last' : `${b.label} ${bucket}`);
        left--;
      }
    }
    if (policy.withinMs) {
      for (const dec of decisions) {
        if (now.getTime() - Date.parse(dec.time) <= policy.withinMs) {
          dec.keep = true;
          dec.reasons.push('within');
        }
      }
    }
    for (const dec of decisions) if (!dec.keep) dec.reasons.push('matches no keep rule');
    out.push(...decisions);
  }
  return out.sort((a, b) => b.time.localeCompare(a.time));
}
