// Owns what the single-host engine shows of a cluster: each node's role and lag (status rows,
// metrics), the routing view it publishes (db.topology: the primary while the write gate is open
// and it is observed writable, the streaming hot standbys), and the status object of
// `bulwark db status` and /v1/status. syncMark is shared with the cluster-mode engine.
import { lagBytes } from './decide.js';
import { addressOf, type NodeRole } from './nodes.js';
import type { ClusterNode, ClusterState } from './state.js';
import { streamsAsReplica, topologyPrimary } from './topology.js';
import type { FailoverRecord } from './records.js';
import type { ColdStatus } from './coldfail.js';

export type ClusterStatus = {
  database: string;
  leader: boolean;
  primary: string | undefined;
  synchronous: boolean;
  sync_standbys: string[];
  writes: 'open' | 'blocked';
  blocked_reason: string | undefined;
  busy: string;
  nodes: Array<Record<string, unknown>>;
  last_failover: FailoverRecord | undefined;
  cold?: ColdStatus;
};

/** A node's place in synchronous replication: named and confirmed ('sync'), named, not yet safe ('naming'), in the safe set ('safe'), or ''. */
export function syncMark(node: string, named: string | undefined, safe: readonly string[]): string {
  return named === node ? (safe.includes(node) ? 'sync' : 'naming') : safe.includes(node) ? 'safe' : '';
}

export function roleOf(s: ClusterState, n: ClusterNode): NodeRole {
  if (s.rejoining.has(n.spec.name)) return 'rejoining';
  if (s.fenced.has(n.spec.name)) return 'fenced';
  if (!n.pidAlive) return 'down';
  if (!n.obs?.ok) return n.spec.name === s.primary ? 'unknown' : 'standby';
  return n.obs.inRecovery ? 'standby' : 'primary';
}

export function lagOf(s: ClusterState, n: ClusterNode, p: ClusterNode | undefined): number | undefined {
  if (!p || n === p) return n === p ? 0 : undefined;
  const pl = p.obs?.ok ? p.obs.lsn : s.primaryLastLsn;
  const fromPrimary = p.obs?.replicas?.find((r) => r.name === n.spec.name)?.flushLsn;
  return lagBytes(pl, n.obs?.ok ? n.obs.lsn : fromPrimary);
}

/** Publishes the routing view: the primary while it runs, is observed out of recovery and the gate is open; the streaming hot standbys. */
export function publishTopology(s: ClusterState): void {
  const p = s.primaryNode();
  const writable = p && p.pidAlive && p.obs?.ok === true && p.obs.inRecovery === false;
  const replicas = s.d.config.standby === 'hot'
    ? [...s.nodes.values()]
        .filter((n) => n !== p && streamsAsReplica(n.obs) && !s.fenced.has(n.spec.name))
        .map((n) => ({ node: n.spec.name, address: addressOf(n.spec), lag_bytes: lagOf(s, n, p) ?? 0 }))
    : [];
  s.gate.publish(writable && p ? topologyPrimary(p.spec) : undefined, replicas);
}

/** Role and lag of every node to the metrics. */
export function reportMetrics(s: ClusterState): void {
  const p = s.primaryNode();
  for (const n of s.nodes.values()) {
    s.d.metrics.role(s.name, n.spec.name, roleOf(s, n));
    s.d.metrics.lag(s.name, n.spec.name, lagOf(s, n, p));
  }
}

export function clusterStatus(s: ClusterState, cold: ColdStatus | undefined): ClusterStatus {
  const p = s.primaryNode();
  return {
    database: s.name,
    leader: s.d.lease.isHeld(),
    primary: s.primary,
    synchronous: s.d.config.synchronous,
    sync_standbys: s.sync.safe,
    writes: s.gate.writesOpen ? 'open' : 'blocked',
    blocked_reason: s.gate.reason,
    busy: s.busyWhat,
    nodes: [...s.nodes.values()].map((n) => ({
      database: s.name,
      node: n.spec.name,
      address: addressOf(n.spec),
      role: roleOf(s, n),
      lsn: n.obs?.lsn,
      lag_bytes: lagOf(s, n, p),
      sync: syncMark(n.spec.name, s.sync.named, s.sync.safe),
      timeline: n.obs?.timeline,
      streaming: n.obs?.receiverStatus === 'streaming' ? 'yes' : n.obs?.inRecovery ? 'no' : '',
      error: n.obs?.ok === false ? n.obs.error : undefined,
    })),
    last_failover: s.history.last,
    ...(cold ? { cold } : {}),
  };
}
