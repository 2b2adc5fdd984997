// Owns the pure decisions of cluster mode, without I/O: which member may take a free leader lease
// (bootstrap of a fresh cluster, adoption of a running primary, takeover after the primary's
// instance is gone), and what a member does with its own node given the shared state. Every
// member runs these on what it observes; etcd's lease makes sure only one acts as leader.
import { chooseCandidate } from './decide.js';

/** What a member knows of one node: its own observation over SQL (and, for its own node, the data directory). */
export interface NodeView {
  node: string;
  /** Observed over SQL this round. */
  reachable: boolean;
  inRecovery: boolean | undefined;
  /** Received WAL (standby) or current WAL (primary). */
  lsn: string | undefined;
  /** The node has streamed from a primary since it was cloned or rewound (a standby fed only by pg_basebackup's stream is not a replica yet). */
  streamed: boolean;
}

/** The shared state of one database (db/<name>/state), written only by the lease holder. */
export interface SharedDbState {
  primary: string | undefined;
  /** Increments with every change of primary. */
  epoch: number;
  /** The primary's WAL position the leader last observed (bounds the loss of an asynchronous failover). */
  primary_lsn: string | undefined;
  /** Standbys known to hold every acknowledged commit (synchronous mode). */
  sync_nodes: string[];
  sync_named: string | undefined;
  ran_async: boolean;
  /** The primary's pg_stat_replication as the leader last saw it: warm standbys take no connections, so this is how others know their WAL. */
  replicas: Record<string, { flush_lsn: string | undefined; state: string; at: number }>;
  writes: 'open' | 'blocked';
  blocked_reason: string | undefined;
  /** A planned switchover handing the lease to this node. */
  handover_to: string | undefined;
  leader: string | undefined;
  updated_at: number;
}

export function emptyState(): SharedDbState {
  return { primary: undefined, epoch: 0, primary_lsn: undefined, sync_nodes: [], sync_named: undefined, ran_async: false, replicas: {}, writes: 'blocked', blocked_reason: 'not bootstrapped yet', handover_to: undefined, leader: undefined, updated_at: 0 };
}

export interface LocalNodeFacts {
  node: string;
  initialized: boolean;
  standbyConfigured: boolean;
  running: boolean;
  /** Observed out of recovery (running as a primary). */
  primary: boolean;
}

export type LeaseDecision = { take: true; as: 'bootstrap' | 'adopt' | 'restart' | 'takeover' | 'handover'; reason: string } | { take: false; reason: string };

export interface FreeLeaseInput {
  me: LocalNodeFacts;
  /** Configured nodes in order (the first bootstraps a fresh cluster). */
  nodes: readonly string[];
  state: SharedDbState | undefined;
  /** Every node as this member observes it now. */
  views: readonly NodeView[];
  synchronous: boolean;
  maxLagBytes: number;
  /** Wall-clock now: a planned handover that did not complete within HANDOVER_TIMEOUT_MS no longer holds the others back. */
  now: number;
}

export const HANDOVER_TIMEOUT_MS = 15_000;

/**
 * The leader lease of a database is free. May this member take it (and then act on its own
 * node)? At most one member can win the lease; these rules make sure the winner is one that may
 * safely act, and that a member that must not act never tries.
 */
export function mayTakeFreeLease(i: FreeLeaseInput): LeaseDecision {
  const s = i.state;
  const others = i.views.filter((v) => v.node !== i.me.node);
  if (!s || s.primary === undefined) {
    // no cluster state yet (fresh cluster, or etcd's data was lost)
    if (i.me.primary) return { take: true, as: 'adopt', reason: 'no shared state; this node runs as a primary' };
    if (others.some((v) => v.reachable && v.inRecovery === false)) return { take: false, reason: 'another node runs as a primary' };
    if (i.me.initialized && !i.me.standbyConfigured) return { take: true, as: 'bootstrap', reason: 'no shared state; this node holds a primary\'s data directory' };
    if (!i.me.initialized && i.nodes[0] === i.me.node) {
      // a fresh cluster starts on the first node; never over a node that already holds data
      return { take: true, as: 'bootstrap', reason: 'fresh cluster: the first node initializes' };
    }
    return { take: false, reason: i.me.initialized ? 'this node holds a standby\'s data: waiting for a primary' : 'waiting for the first node to initialize the cluster' };
  }
  if (s.handover_to !== undefined && i.now - s.updated_at < HANDOVER_TIMEOUT_MS) {
    return s.handover_to === i.me.node ? { take: true, as: 'handover', reason: `planned switchover to ${i.me.node}` } : { take: false, reason: `planned switchover to ${s.handover_to} in progress` };
  }
  if (s.primary === i.me.node) {
    // the recorded primary's own member (its instance restarted, or lost etcd for a moment)
    if (i.me.primary) return { take: true, as: 'adopt', reason: 'this node is the recorded primary and runs as one' };
    if (i.me.initialized && !i.me.standbyConfigured && !others.some((v) => v.reachable && v.inRecovery === false)) {
      return { take: true, as: 'restart', reason: 'this node is the recorded primary, stopped, and nothing else was promoted' };
    }
    return { take: false, reason: 'this node was the primary but is fenced or configured as a standby: it rejoins once a new primary leads' };
  }
  if (others.some((v) => v.node === s.primary && v.reachable && v.inRecovery === false)) {
    // the primary runs but its instance does not lead (it restarts right now): never compete with a live primary
    return { take: false, reason: `the primary ${s.primary} still answers as a primary: waiting for its instance` };
  }
  const choice = chooseCandidate({
    candidates: i.views
      .filter((v) => v.node !== s.primary)
      .map((v) => ({ node: v.node, available: v.reachable && v.inRecovery === true && v.streamed, receivedLsn: v.lsn })),
    primaryLsn: s.primary_lsn,
    synchronous: i.synchronous,
    syncNodes: s.sync_nodes,
    ranAsync: s.ran_async,
    maxLagBytes: i.maxLagBytes,
  });
  if (choice.node === undefined) return { take: false, reason: `no promotion: ${choice.reason}` };
  if (choice.node !== i.me.node) return { take: false, reason: `${choice.node} is the better candidate (${choice.reason})` };
  if (!i.me.running) return { take: false, reason: 'this node is not running' };
  return { take: true, as: 'takeover', reason: choice.reason };
}

/** What a member that does not lead does with its own node. */
export type FollowAction =
  | { do: 'nothing'; reason: string }
  | { do: 'fence'; reason: string }
  | { do: 'clone' | 'rewind' | 'start' | 'repoint'; primary: string; reason: string };

export interface FollowInput {
  me: LocalNodeFacts;
  /** The node this member's standby currently follows (primary_conninfo), if configured. */
  following: string | undefined;
  /** The member recorded this node as fenced (a former primary: its timeline may have diverged). */
  fenced: boolean;
  state: SharedDbState | undefined;
  /** Someone holds the leader lease. */
  leaderExists: boolean;
  /** Whether the leader's primary answers (the source a clone or rewind needs). */
  primaryReachable: boolean;
}

export function followAction(i: FollowInput): FollowAction {
  const p = i.state?.primary;
  // never two primaries: a node that runs out of recovery while another member leads is fenced at once
  if (i.me.primary && i.leaderExists && p !== i.me.node) return { do: 'fence', reason: `runs as a primary while ${p ?? 'another node'} leads` };
  if (!i.leaderExists || p === undefined || p === i.me.node) return { do: 'nothing', reason: 'no leader to follow' };
  if (!i.primaryReachable) return { do: 'nothing', reason: `primary ${p} does not answer` };
  if (!i.me.initialized) return { do: 'clone', primary: p, reason: 'empty data directory' };
  if (i.fenced || (!i.me.standbyConfigured && !i.me.running)) return { do: 'rewind', primary: p, reason: 'former primary: rewind to the new timeline' };
  if (!i.me.running) return { do: 'start', primary: p, reason: 'standby not running' };
  if (i.following !== p) return { do: 'repoint', primary: p, reason: `follows ${i.following ?? 'nothing'}, the primary is ${p}` };
  return { do: 'nothing', reason: `streams from ${p}` };
}
