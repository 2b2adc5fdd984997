// Owns one Jepsen-style run: writers on, a fault injected once the load is steady, writers on
// until writes flow again (or a timeout), writers off, the history checked against the final
// primary's rows. Tests and the benchmark call it with their own fault and final-primary lookup.
import { check, type CheckReport } from './checker.js';
import type { LabHost } from './lab.js';
import { readRows, runWriters, type WritersResult } from './run-writers.js';

export interface UnderLoadOptions {
  /** Where the writers run (a client host). */
  from: LabHost;
  /** host:port listeners the writers use. */
  targets: string[];
  /** A fresh table (created by the caller, or with `create`). */
  table: string;
  create?: boolean;
  clients?: number;
  intervalMs?: number;
  /** Acks before the fault (default 300). */
  warmupAcks?: number;
  /** The fault; its start time is the fault time. */
  fault: () => Promise<void>;
  /** Acks after the fault that count as "writes flow again" (default 100). */
  recoveryAcks?: number;
  recoveryTimeoutMs?: number;
  /** How long the writers keep going after recovery (default 1000 ms). */
  settleMs?: number;
  /** Where the rows are read at the end. */
  finalPrimary: () => Promise<{ address: string; port: number }>;
  env?: NodeJS.ProcessEnv;
}

export interface UnderLoadResult {
  faultAt: number;
  /** Writes flowed again before the timeout. */
  recovered: boolean;
  report: CheckReport;
  result: WritersResult;
  finalPrimary: { address: string; port: number };
}

export async function underLoad(opts: UnderLoadOptions): Promise<UnderLoadResult> {
  const w = runWriters(opts.from, {
    targets: opts.targets,
    table: opts.table,
    ...(opts.create !== undefined ? { create: opts.create } : {}),
    ...(opts.clients !== undefined ? { clients: opts.clients } : {}),
    ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    durationS: 3600,
    name: opts.table,
  });
  try {
    const before = await w.waitAcked(opts.warmupAcks ?? 300, 60_000);
    const faultAt = Date.now();
    await opts.fault();
    let recovered = true;
    const deadline = Date.now() + (opts.recoveryTimeoutMs ?? 120_000);
    for (;;) {
      const p = w.progress();
      if (p && p.last_ack > faultAt && p.acked >= before.acked + (opts.recoveryAcks ?? 100)) break;
      if (!w.proc.running) throw new Error(`writers exited during the run: ${w.proc.tail()}`);
      if (Date.now() > deadline) {
        recovered = false;
        break;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (recovered) await new Promise((r) => setTimeout(r, opts.settleMs ?? 1000));
    const result = await w.stop();
    const finalPrimary = await opts.finalPrimary();
    const rows = await readRows(opts.from, finalPrimary.address, finalPrimary.port, opts.table);
    const report = check({ writes: result.writes, finalRows: rows, faultAt, endedAt: result.ended_at });
    return { faultAt, recovered: recovered && report.downtime?.recovered === true, report, result, finalPrimary };
  } finally {
    if (w.proc.running) await w.proc.stop(2000);
  }
}
