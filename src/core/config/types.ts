// Owns the zod building blocks for config values: durations, sizes, percentages, listen
// addresses. Each turns the YAML text into a typed value (ms, bytes, ratio) or an issue whose
// message says what is allowed.
import { z } from 'zod';
import { parseDuration, parsePercent, parseSize } from '../units.js';

function via<T>(parse: (v: string | number) => T, expected: string) {
  return z.union([z.string(), z.number()]).transform((v, ctx): T => {
    try {
      return parse(v);
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected ${expected}, got '${String(v)}'`, input: v });
      return z.NEVER;
    }
  });
}

/** A duration in the config, as milliseconds. */
export const duration = () => via((v) => parseDuration(v), 'a duration like 500ms or 2s');
/** A size in the config, as bytes. */
export const size = () => via((v) => parseSize(v), 'a size like 16MB or 1GiB');
/** A percentage in the config, as a ratio in [0, 1]. */
export const percent = () => via((v) => parsePercent(v), 'a percentage like 99.9%');

export interface HostPort {
  host: string;
  port: number;
}

/** Parses "127.0.0.1:8080", "[::1]:8080", "localhost:0" into host and port. */
export function parseHostPort(s: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(s.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}

/** A host:port address, kept as text and checked for shape. */
export const address = () =>
  z.string().superRefine((s, ctx) => {
    if (parseHostPort(s) === undefined) ctx.addIssue({ code: 'custom', message: `expected an address like 127.0.0.1:8080, got '${s}'`, input: s });
  });

/** Names used as keys and in URLs: services, nodes, plans, targets. */
export const name = () =>
  z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, {
    message: 'expected a name of letters, digits, "-", "_" or "." (at most 63 characters)',
  });

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
