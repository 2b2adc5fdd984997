// Owns how commands print: JSON for scripts (--json), aligned tables for people, errors on stderr.
import { BulwarkError } from '../core/errors.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints rows as an aligned text table with a header. */
export function printTable(rows: ReadonlyArray<Record<string, unknown>>, columns?: string[]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const cols = columns ?? Object.keys(rows[0] as object);
  const text = (v: unknown): string => (v === undefined || v === null ? '-' : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => text(r[c]).length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  process.stdout.write(`${line(cols.map((c) => c.toUpperCase()))}\n`);
  for (const r of rows) process.stdout.write(`${line(cols.map((c) => text(r[c])))}\n`);
}

/** The error a command raises for bad usage (exit 2). */
export function usage(message: string, hint?: string): BulwarkError {
  return new BulwarkError('BULWARK_CLI_USAGE', message, hint === undefined ? {} : { hint });
}

/** The error of a contract command that is not built yet (exit 2). */
export function notBuilt(command: string, where: string): BulwarkError {
  return new BulwarkError('BULWARK_CLI_NOT_IMPLEMENTED', `'bulwark ${command}' is part of the command-line contract but is not built yet`, {
    hint: `it arrives with ${where}; see README: Status of commands`,
  });
}
