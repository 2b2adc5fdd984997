// Owns the error-budget arithmetic of SLOs: budget totals, consumption and remaining (as a ratio
// and as minutes of full outage), burn rates, time to exhaustion, and the multi-window
// multi-burn-rate alert tiers of the SRE Workbook generalised to any window length. Pure: no I/O.
import { DAY_MS } from './nines.js';

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;

export type Severity = 'page' | 'ticket';

/** One alert tier: fires when the burn rate over both windows is at least the threshold. */
export interface AlertTier {
  severity: Severity;
  /** Long lookback, ms. */
  long_ms: number;
  /** Short lookback, ms (lets the alert resolve soon after recovery). */
  short_ms: number;
  /** Share of the whole budget the tier allows to be spent in long_ms before it fires (0.02 = 2%). */
  budget_fraction?: number | undefined;
  /** An explicit burn-rate threshold; overrides budget_fraction. */
  burn_rate?: number | undefined;
}

/**
 * The SRE Workbook tiers (chapter 5, "Multiwindow, Multi-Burn-Rate Alerts"), defined by the share
 * of budget they spend: for a 30-day window they are 14.4x/1h/5m, 6x/6h/30m (pages) and 1x/3d/6h
 * (ticket). For other windows the thresholds follow from the same shares (see burnThreshold).
 */
export const WORKBOOK_TIERS: readonly AlertTier[] = [
  { severity: 'page', long_ms: HOUR_MS, short_ms: 5 * MINUTE_MS, budget_fraction: 0.02 },
  { severity: 'page', long_ms: 6 * HOUR_MS, short_ms: 30 * MINUTE_MS, budget_fraction: 0.05 },
  { severity: 'ticket', long_ms: 3 * DAY_MS, short_ms: 6 * HOUR_MS, budget_fraction: 0.1 },
];

/** Error budget as a ratio of events: 1 - objective (0.999 -> 0.001). */
export function budgetRatio(objective: number): number {
  return 1 - objective;
}

/** Budget as minutes of full outage over a window: (1 - objective) x window (99.9%, 30d -> 43.2). */
export function budgetMinutes(objective: number, windowMs: number): number {
  return (budgetRatio(objective) * windowMs) / MINUTE_MS;
}

/** Burn rate: how fast the budget is spent relative to spending exactly all of it over the window. */
export function burnRate(errorRatio: number, objective: number): number {
  return errorRatio / budgetRatio(objective);
}

/**
 * Burn-rate threshold of a tier for an SLO window: spending `fraction` of the budget within
 * `longMs` means burning at fraction x window / long. 2% in 1h of 30d -> 14.4; 5% in 6h -> 6;
 * 10% in 3d -> 1.
 */
export function burnThreshold(tier: AlertTier, windowMs: number): number {
  if (tier.burn_rate !== undefined) return tier.burn_rate;
  return ((tier.budget_fraction ?? 0) * windowMs) / tier.long_ms;
}

/** Share of the whole budget a tier spends in its long window when it just fires. */
export function budgetSpentAtThreshold(tier: AlertTier, windowMs: number): number {
  return (burnThreshold(tier, windowMs) * tier.long_ms) / windowMs;
}

/** Time until the remaining budget is gone at a constant burn rate (Infinity at burn 0). */
export function timeToExhaustion(remainingRatio: number, burn: number, windowMs: number): number {
  if (remainingRatio <= 0) return 0;
  if (!(burn > 0)) return Infinity;
  return (remainingRatio * windowMs) / burn;
}

/**
 * Time for an alert tier to fire after a constant error ratio starts (from a clean history):
 * the long window must reach threshold x budget of errors. (1 - 0.999) x 14.4 x 1h / 100% = 51.84 s.
 */
export function detectionTime(tier: AlertTier, windowMs: number, objective: number, errorRatio: number): number {
  return (budgetRatio(objective) * burnThreshold(tier, windowMs) * tier.long_ms) / errorRatio;
}

/** Good and valid counts of an SLI over some span (requests, or milliseconds for time slices). */
export interface Counts {
  good: number;
  total: number;
}

export interface Budget {
  /** 1 - objective. */
  ratio: number;
  /** Budget of the whole window, in the SLI's units (bad events, or bad ms for time slices). */
  total: number;
  consumed: number;
  /** consumed / total (may exceed 1 when the budget is overspent). */
  consumed_ratio: number;
  /** 1 - consumed_ratio (negative when overspent). */
  remaining_ratio: number;
  /** Budget of the whole window as minutes of full outage. */
  total_minutes: number;
  remaining_minutes: number;
  consumed_minutes: number;
}

/**
 * Budget over a window. For request SLIs the window's total is extrapolated from the part of the
 * window with data (coveredMs), so the budget is (1 - objective) x expected requests; for time
 * slices the units are milliseconds and the total is the window itself.
 */
export function budget(objective: number, windowMs: number, counts: Counts, opts: { timeBased: boolean; coveredMs: number }): Budget {
  const ratio = budgetRatio(objective);
  const bad = Math.max(0, counts.total - counts.good);
  let expected: number;
  if (opts.timeBased) expected = windowMs;
  // Without a record of coverage (no daemon uptime known), take the requests seen as the window's.
  else expected = opts.coveredMs > 0 ? (counts.total * windowMs) / Math.min(windowMs, opts.coveredMs) : counts.total;
  const total = ratio * expected;
  const consumedRatio = total > 0 ? bad / total : 0;
  const totalMinutes = budgetMinutes(objective, windowMs);
  return {
    ratio,
    total,
    consumed: bad,
    consumed_ratio: consumedRatio,
    remaining_ratio: 1 - consumedRatio,
    total_minutes: totalMinutes,
    remaining_minutes: (1 - consumedRatio) * totalMinutes,
    consumed_minutes: consumedRatio * totalMinutes,
  };
}

/** Error ratio of counts; undefined when there are no valid events. */
export function errorRatio(c: Counts): number | undefined {
  return c.total > 0 ? Math.max(0, c.total - c.good) / c.total : undefined;
}

/** Inputs of one tier's evaluation. */
export interface TierInput {
  long: Counts;
  short: Counts;
}

export interface TierResult {
  tier: AlertTier;
  index: number;
  threshold: number;
  burn_long: number;
  burn_short: number;
  /** Both windows at or above the threshold, and the guard satisfied. */
  condition: boolean;
  /** True when the minimum-events guard held the tier back. */
  guarded: boolean;
}

/**
 * Evaluates every tier. minEvents: the long window must hold at least this many valid events for
 * the tier to fire (requests, so a quiet service does not page on one error; for time slices, ms
 * of observed time), as a number or per tier.
 */
export function evaluateTiers(
  tiers: readonly AlertTier[],
  inputs: readonly TierInput[],
  objective: number,
  windowMs: number,
  minEvents: number | ((tier: AlertTier) => number),
): TierResult[] {
  return tiers.map((tier, index) => {
    const min = typeof minEvents === 'number' ? minEvents : minEvents(tier);
    const input = inputs[index] as TierInput;
    const threshold = burnThreshold(tier, windowMs);
    const burnLong = burnRate(errorRatio(input.long) ?? 0, objective);
    const burnShort = burnRate(errorRatio(input.short) ?? 0, objective);
    const over = burnLong >= threshold && burnShort >= threshold && input.long.total > 0 && input.short.total > 0;
    const guarded = over && input.long.total < min;
    return { tier, index, threshold, burn_long: burnLong, burn_short: burnShort, condition: over && !guarded, guarded };
  });
}

const RANK: Record<Severity, number> = { page: 2, ticket: 1 };

export type AlertTransition = { index: number; state: 'firing' | 'resolved'; result: TierResult };

/**
 * Alert state machine step: one notification per incident and severity.
 * - A tier that is firing resolves when its condition clears.
 * - A tier that is not firing starts firing when its condition holds, unless it duplicates an
 *   alert: another tier of equal or higher severity is firing, or a faster tier of equal or
 *   higher severity resolved less than this tier's short window ago (the slower tier's short
 *   window still holds the errors of the incident the fast tier paged for; if the burn goes on
 *   past that, the slower tier fires). So the fast tier suppresses duplicate slower alerts, and a
 *   slow burn that already paged does not page again when it speeds up.
 * Returns the transitions and the new set of firing tier indexes.
 */
export function stepAlerts(
  results: readonly TierResult[],
  firing: ReadonlySet<number>,
  resolvedAt: ReadonlyMap<number, number> = new Map(),
  now = 0,
): { firing: Set<number>; transitions: AlertTransition[] } {
  const next = new Set<number>();
  const transitions: AlertTransition[] = [];
  for (const r of results) if (firing.has(r.index) && r.condition) next.add(r.index);
  for (const r of results) if (firing.has(r.index) && !r.condition) transitions.push({ index: r.index, state: 'resolved', result: r });
  const order = [...results].sort((a, b) => a.tier.long_ms - b.tier.long_ms);
  for (const r of order) {
    if (firing.has(r.index) || !r.condition) continue;
    const suppressed = order.some(
      (o) =>
        o.index !== r.index &&
        RANK[o.tier.severity] >= RANK[r.tier.severity] &&
        (next.has(o.index) ||
          (o.tier.long_ms < r.tier.long_ms && ((resolvedAt.get(o.index) ?? -Infinity) > now - r.tier.short_ms || transitions.some((t) => t.index === o.index && t.state === 'resolved')))),
    );
    if (suppressed) continue;
    next.add(r.index);
    transitions.push({ index: r.index, state: 'firing', result: r });
  }
  return { firing: next, transitions };
}
