// Runs the shared lease suite against the local (in-process) backend: two LocalCoordination
// instances sharing one lease table stand for two instances.
import { systemClock } from '../core/clock.js';
import { LocalCoordination, LocalLeaseTable } from './local.js';
import { leaseSuite } from './lease.suite.js';

leaseSuite('local lease', { canBecomeUnreachable: false }, async () => {
  const table = new LocalLeaseTable();
  const ttlMs = 600;
  return {
    ttlMs,
    make: (identity) => new LocalCoordination({ identity, clock: systemClock, ttlMs, table }),
    teardown: async () => undefined,
  };
});
