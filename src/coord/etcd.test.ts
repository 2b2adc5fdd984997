// Runs the shared lease suite against a real etcd on loopback (started per test, free ports,
// temporary data dir), including etcd becoming unreachable (SIGKILL) while a lease is held.
import { systemClock } from '../core/clock.js';
import { EtcdCoordination } from './etcd.js';
import { leaseSuite } from './lease.suite.js';
import { startEtcd } from './etcd.testkit.js';

leaseSuite('etcd lease', { canBecomeUnreachable: true }, async () => {
  const etcd = await startEtcd();
  const ttlMs = 2000; // etcd's own minimum lease TTL is about 2 s with default election settings
  return {
    ttlMs,
    make: (identity) => new EtcdCoordination({ endpoints: [etcd.endpoint], prefix: '/bulwark-test', ttlMs, identity, clock: systemClock }),
    breakBackend: () => etcd.kill(),
    repairBackend: () => etcd.start(),
    teardown: () => etcd.stop(),
  };
});
