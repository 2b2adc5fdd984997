// Owns the measurement of write downtime after a promotion, for both engines: a transaction with
// an xid committed on the new primary ends the outage (in synchronous mode that commit waits for
// a synchronous standby, so the figure is the real one for clients). The result goes into the
// failover's record (records.ts).
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { execSql, type ObserveTarget } from './monitor.js';
import type { FailoverHistory, FailoverRecord } from './records.js';

export interface WriteProbe {
  database: string;
  clock: Clock;
  logger: Logger;
  history: FailoverHistory;
}

/** Commits `SELECT txid_current()` on the new primary; the time it succeeds ends the write downtime. */
export function commitProbe(target: ObserveTarget): Promise<unknown> {
  return execSql(target, 'SELECT txid_current()', 60_000);
}

/**
 * Retries the commit probe on the new primary (for up to 2 minutes, while `stillPrimary` holds)
 * and records the downtime since `since` in the failover's record.
 */
export async function measureWrites(p: WriteProbe, target: { name: string; target: ObserveTarget }, since: number, id: number, rec: FailoverRecord, stillPrimary: () => boolean): Promise<void> {
  const deadline = p.clock.now() + 120_000;
  while (stillPrimary() && p.clock.now() < deadline) {
    try {
      await commitProbe(target.target);
      const ms = p.clock.now() - since;
      p.history.writesBack(id, rec, ms, target.name);
      p.logger.info({ database: p.database, primary: target.name, write_downtime_ms: ms }, 'writes work again');
      return;
    } catch {
      await p.clock.sleep(100);
    }
  }
}
