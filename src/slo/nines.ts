// Owns availability arithmetic: downtime allowed by an availability over standard periods, the
// reverse, and composition of parts in series and in parallel. Pure: no I/O.
// Year = 365.25 days, month = year / 12 (the standard uptime table).

export const DAY_MS = 86_400_000;
export const YEAR_MS = 365.25 * DAY_MS;
export const MONTH_MS = YEAR_MS / 12;
export const WEEK_MS = 7 * DAY_MS;

export const PERIODS = { year: YEAR_MS, month: MONTH_MS, week: WEEK_MS, day: DAY_MS } as const;
export type Period = keyof typeof PERIODS;

export interface DowntimeTable {
  availability: number;
  nines: number;
  downtime_ms: Record<Period, number>;
}

/** Downtime allowed per period for an availability ratio (0.999 -> 8.77 h a year). */
export function downtimeFor(availability: number): DowntimeTable {
  const u = 1 - availability;
  return {
    availability,
    nines: ninesOf(availability),
    downtime_ms: { year: u * YEAR_MS, month: u * MONTH_MS, week: u * WEEK_MS, day: u * DAY_MS },
  };
}

/** Availability that allows `downtimeMs` per `period` (5 min a month -> 0.99988…). */
export function availabilityFor(downtimeMs: number, period: Period): number {
  return 1 - downtimeMs / PERIODS[period];
}

/** Number of nines: 0.999 -> 3, 0.9995 -> 3.30. Infinity for 1. */
export function ninesOf(availability: number): number {
  if (availability >= 1) return Infinity;
  return -Math.log10(1 - availability);
}

/** Parts that must all work (in series): the product of their availabilities. */
export function serial(parts: readonly number[]): number {
  return parts.reduce((acc, a) => acc * a, 1);
}

/** Redundant parts where any one suffices (in parallel): 1 - product of unavailabilities. */
export function parallel(parts: readonly number[]): number {
  if (parts.length === 0) return 0;
  return 1 - parts.reduce((acc, a) => acc * (1 - a), 1);
}
