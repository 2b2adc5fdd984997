// Owns the pure failover decisions, without I/O: LSN arithmetic, which standby may be promoted
// (most WAL received, within max_lag_on_failover; in synchronous mode only the standby known to
// hold every acknowledged commit), and how synchronous_standby_names follows the standbys.

/** Parses a PostgreSQL LSN ("16/B374D848") into a byte position. */
export function parseLsn(text: string | undefined): bigint | undefined {
  if (!text) return undefined;
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) return undefined;
  return (BigInt(`0x${m[1] as string}`) << 32n) + BigInt(`0x${m[2] as string}`);
}

export function lagBytes(ahead: string | undefined, behind: string | undefined): number | undefined {
  const a = parseLsn(ahead);
  const b = parseLsn(behind);
  if (a === undefined || b === undefined) return undefined;
  return Number(a > b ? a - b : 0n);
}

export interface CandidateInput {
  node: string;
  /** Reachable and running as a standby right now. */
  available: boolean;
  /** WAL received by the standby (its own report, or the primary's last view of its flush position for standbys that take no connections). */
  receivedLsn: string | undefined;
}

export interface ChooseInput {
  candidates: CandidateInput[];
  /** The old primary's last known WAL position. */
  primaryLsn: string | undefined;
  synchronous: boolean;
  /** Standbys known to hold every acknowledged commit (synchronous mode). Empty = none known. */
  syncNodes: readonly string[];
  /** synchronous mode: true while the primary ran without a synchronous standby (no_sync_standby: async). */
  ranAsync: boolean;
  maxLagBytes: number;
}

export type Choice = { node: string; reason: string } | { node: undefined; reason: string };

/** Picks the standby to promote, or says why none may be. */
export function chooseCandidate(input: ChooseInput): Choice {
  const avail = input.candidates.filter((c) => c.available);
  if (avail.length === 0) return { node: undefined, reason: 'no standby is running and reachable' };
  if (input.synchronous && !input.ranAsync) {
    const sync = avail.filter((c) => input.syncNodes.includes(c.node));
    if (sync.length === 0) {
      return {
        node: undefined,
        reason: input.syncNodes.length === 0
          ? 'synchronous mode: no standby is known to hold every acknowledged commit'
          : `synchronous mode: only ${input.syncNodes.join(', ')} holds every acknowledged commit and it is not available`,
      };
    }
    const best = mostWal(sync);
    return { node: best.node, reason: `synchronous standby with every acknowledged commit (received ${best.receivedLsn ?? 'unknown'})` };
  }
  const known = avail.filter((c) => parseLsn(c.receivedLsn) !== undefined);
  if (known.length === 0) return { node: undefined, reason: 'no standby reports how much WAL it received' };
  const best = mostWal(known);
  const lag = lagBytes(input.primaryLsn, best.receivedLsn);
  if (lag === undefined) return { node: undefined, reason: "the old primary's last WAL position is unknown, so lag cannot be bounded" };
  if (lag > input.maxLagBytes) return { node: undefined, reason: `the most advanced standby ${best.node} lags ${lag} bytes, more than max_lag_on_failover (${input.maxLagBytes})` };
  return { node: best.node, reason: `most WAL received (${best.receivedLsn ?? '?'}, ${lag} bytes behind the old primary)` };
}

function mostWal(cs: CandidateInput[]): CandidateInput {
  return cs.reduce((a, b) => ((parseLsn(b.receivedLsn) ?? -1n) > (parseLsn(a.receivedLsn) ?? -1n) ? b : a));
}

/** synchronous_standby_names for one named standby (or none). */
export function syncNamesFor(node: string | undefined): string {
  return node === undefined ? '' : `FIRST 1 ("${node.replace(/"/g, '""')}")`;
}

export interface SyncPlanInput {
  synchronous: boolean;
  noSyncStandby: 'block' | 'async';
  /** The standby currently named in synchronous_standby_names (undefined = empty). */
  named: string | undefined;
  /** Standbys streaming from the primary right now, by name. */
  streaming: readonly string[];
  /** Standbys the primary reports as sync_state = 'sync' AND whose flushed WAL reached the primary's position when they were named. */
  reportedSync: readonly string[];
  /** Configured standby names in preference order. */
  standbys: readonly string[];
}

export interface SyncPlan {
  /** What synchronous_standby_names should name (undefined = empty). */
  name: string | undefined;
  /** The set of standbys that hold every acknowledged commit once this plan is in force. */
  syncNodes: string[];
  /** The primary runs without any synchronous standby (writes may be lost on failover). */
  async: boolean;
}

/**
 * Keeps one synchronous standby named. A newly named standby joins the safe set only once the
 * primary reports it as 'sync' (so it has every commit acknowledged from then on and has caught
 * up with the ones before); until then the previous one stays in the safe set.
 */
export function planSync(i: SyncPlanInput, safeNow: readonly string[]): SyncPlan {
  if (!i.synchronous) return { name: undefined, syncNodes: [], async: true };
  if (i.named !== undefined && i.streaming.includes(i.named)) {
    const confirmed = i.reportedSync.includes(i.named);
    return { name: i.named, syncNodes: confirmed ? [i.named] : uniq([...safeNow]), async: false };
  }
  const next = i.standbys.find((s) => i.streaming.includes(s));
  if (next !== undefined) {
    // name it now; it is safe only after the primary reports it sync (next round)
    return { name: next, syncNodes: uniq([...safeNow]), async: false };
  }
  if (i.noSyncStandby === 'async') return { name: undefined, syncNodes: [], async: true };
  // block: keep naming the last synchronous standby; commits wait until it (or another) streams again
  return { name: i.named ?? i.standbys[0], syncNodes: uniq([...safeNow]), async: false };
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}
