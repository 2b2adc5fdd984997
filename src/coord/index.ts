// Owns the coordination factory: builds the coordination service the config asks for (local,
// the embedded default, or etcd). Subsystems receive the result through the small Coordination
// interface and never see which backend it is.
import { hostname } from 'node:os';
import type { Clock } from '../core/clock.js';
import type { CoordinationConfig } from '../core/config/schema.js';
import { EtcdCoordination } from './etcd.js';
import type { Coordination } from './lease.js';
import { LocalCoordination } from './local.js';

export type { Coordination, EtcdMember, LeaderLease } from './lease.js';
export { LocalCoordination, LocalLeaseTable } from './local.js';
export { EtcdCoordination } from './etcd.js';

export function defaultIdentity(): string {
  return `${hostname()}:${process.pid}`;
}

export function createCoordination(config: CoordinationConfig, deps: { clock: Clock; identity?: string }): Coordination {
  if (config.kind === 'etcd') {
    return new EtcdCoordination({
      endpoints: config.endpoints,
      prefix: config.prefix,
      ttlMs: config.lease_ttl,
      identity: deps.identity ?? config.instance ?? defaultIdentity(),
      clock: deps.clock,
    });
  }
  return new LocalCoordination({ identity: deps.identity ?? defaultIdentity(), clock: deps.clock });
}
export { listMembers, liveMembers, joinMembers, Membership, MEMBERS_PREFIX } from './members.js';
export type { MemberHealth, MemberRecord, MemberState, MemberView, ConfiguredInstance } from './members.js';
export { decideSlot, OnceScheduler, parseSlotRecord } from './once.js';
export type { OnceTask, SlotDecision, SlotRecord, OnceSchedulerOptions } from './once.js';
