// Owns RPO and RTO as pure arithmetic over a target's history: the age of the newest verified
// snapshot per target and per plan (the plan's is its freshest target), breach when older than the
// plan's rpo, and the RTO measured by the last drill (time and rate of a verified restore).
import type { TargetHistory } from './records.js';

export const DEFAULT_RPO_MS = 24 * 3_600_000;

export interface TargetRpo {
  target: string;
  /** ms since the newest verified snapshot; undefined = none yet. */
  ageMs: number | undefined;
  rpoMs: number;
  breached: boolean;
  /** The last drill: how long a verified restore took and its rate. */
  rtoMs: number | undefined;
  rtoBytesPerSec: number | undefined;
}

export function targetRpo(target: string, h: TargetHistory, rpoMs: number, now: number): TargetRpo {
  const ageMs = h.lastSuccess === undefined ? undefined : Math.max(0, now - h.lastSuccess);
  const d = h.lastGoodDrill;
  const rtoMs = d ? d.finishedAt - d.startedAt : undefined;
  return {
    target,
    ageMs,
    rpoMs,
    breached: ageMs === undefined || ageMs > rpoMs,
    rtoMs,
    rtoBytesPerSec: d && rtoMs !== undefined && d.bytes !== undefined ? (d.bytes * 1000) / Math.max(1, rtoMs) : undefined,
  };
}

/** The plan's RPO: the freshest verified snapshot in any target. */
export function planRpo(targets: readonly TargetRpo[], rpoMs: number): { ageMs: number | undefined; breached: boolean } {
  const ages = targets.map((t) => t.ageMs).filter((a): a is number => a !== undefined);
  const ageMs = ages.length ? Math.min(...ages) : undefined;
  return { ageMs, breached: ageMs === undefined || ageMs > rpoMs };
}
