// Owns starting the writers program (writers.ts) inside a lab host and reading what it did:
// live progress from its stderr, a clean stop (SIGTERM) and its JSON result. Used by tests and
// benchmarks alike.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WriteRecord } from './checker.js';
import type { LabHost } from './lab.js';
import type { LabProcess } from './proc.js';

/** The compiled writers program. */
export const WRITERS = fileURLToPath(new URL('./writers.js', import.meta.url));

export interface WritersResult {
  targets: string[];
  clients: number;
  interval_ms: number;
  started_at: number;
  ended_at: number;
  writes: WriteRecord[];
}

export interface Progress {
  t: number;
  acked: number;
  errors: number;
  last_ack: number;
  last_node: string;
}

export interface WritersRun {
  proc: LabProcess;
  /** The latest progress line (undefined before the first). */
  progress(): Progress | undefined;
  /** Resolves once `acked` reached n (throws if the writers exit or timeoutMs passes first). */
  waitAcked(n: number, timeoutMs?: number): Promise<Progress>;
  /** SIGTERM, then the result. */
  stop(): Promise<WritersResult>;
}

export function runWriters(
  host: LabHost,
  opts: { targets: string[]; clients?: number; durationS?: number; intervalMs?: number; table?: string; create?: boolean; env?: NodeJS.ProcessEnv; name?: string },
): WritersRun {
  const out = join(host.dir('writers'), `${opts.name ?? 'writers'}-${Date.now()}.json`);
  const args = [
    WRITERS, '--targets', opts.targets.join(','), '--clients', String(opts.clients ?? 4), '--duration', String(opts.durationS ?? 120),
    '--interval', String(opts.intervalMs ?? 10), '--table', opts.table ?? 'bwlab_writes', '--out', out, ...(opts.create ? ['--create'] : []),
  ];
  const proc = host.spawn(process.execPath, args, { name: opts.name ?? 'writers', env: { ...process.env, ...opts.env }, tailBytes: 8192 });
  let last: Progress | undefined;
  proc.onLine((line, stream) => {
    if (stream === 'stderr' && line.startsWith('progress ')) last = JSON.parse(line.slice(9)) as Progress;
  });
  return {
    proc,
    progress: () => last,
    waitAcked: async (n, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (last && last.acked >= n) return last;
        if (!proc.running) throw new Error(`writers exited before ${n} acks: ${proc.tail()}`);
        if (Date.now() > deadline) throw new Error(`writers: fewer than ${n} acks within ${timeoutMs} ms (${JSON.stringify(last)}): ${proc.tail()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: async () => {
      proc.signal('SIGTERM');
      const e = await proc.exited;
      if (e.code !== 0) throw new Error(`writers exited ${e.code ?? e.signal}: ${proc.tail()}`);
      return JSON.parse(readFileSync(out, 'utf8')) as WritersResult;
    },
  };
}

/** The (client, seq) rows of a writers table on a server, read from inside the lab. */
export async function readRows(from: LabHost, address: string, port: number, table: string, opts: { password?: string } = {}): Promise<Array<{ client: number; seq: number }>> {
  if (!/^[a-z_][a-z0-9_]*$/.test(table)) throw new Error(`table name ${table}: use lowercase letters, digits and _`);
  const r = await from.sql(address, port, `SELECT client, seq FROM ${table}`, opts);
  if (!r.ok) throw new Error(`reading ${table} on ${address}:${port}: ${r.error}`);
  return r.rows as unknown as Array<{ client: number; seq: number }>;
}
