// Owns cron schedules for plans: parsing (with the friendly words hourly/daily/weekly/monthly),
// the next run after a time, and the typical interval (for the verification rotation). Pure.
import { CronExpressionParser } from 'cron-parser';
import { BulwarkError } from '../../core/errors.js';

const WORDS: Record<string, string> = { hourly: '@hourly', daily: '@daily', weekly: '@weekly', monthly: '@monthly', yearly: '@yearly' };

export function normalizeCron(expr: string): string {
  return WORDS[expr.trim()] ?? expr.trim();
}

/** Throws BULWARK_PLAN_SCHEDULE naming the option when the expression does not parse. */
export function checkCron(expr: string, where: string): void {
  try {
    CronExpressionParser.parse(normalizeCron(expr), { tz: 'UTC' });
  } catch (err) {
    throw new BulwarkError('BULWARK_PLAN_SCHEDULE', `${where}: '${expr}' is not a valid cron expression (${(err as Error).message})`, {
      hint: "use five cron fields like '0 * * * *' (minute hour day month weekday, UTC), or hourly/daily/weekly/monthly",
    });
  }
}

/** The first run strictly after `after` (ms since epoch, UTC). */
export function nextRun(expr: string, after: number): number {
  return CronExpressionParser.parse(normalizeCron(expr), { currentDate: new Date(after), tz: 'UTC' }).next().getTime();
}

/** The latest run at or before `atOrBefore` (ms since epoch, UTC). */
export function latestRun(expr: string, atOrBefore: number): number {
  return CronExpressionParser.parse(normalizeCron(expr), { currentDate: new Date(atOrBefore + 1), tz: 'UTC' }).prev().getTime();
}

/** The gap between two consecutive runs following `from`: the schedule's interval. */
export function cronInterval(expr: string, from: number): number {
  const a = nextRun(expr, from);
  return nextRun(expr, a) - a;
}
