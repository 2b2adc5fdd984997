// Owns what both engines (cluster.ts on one host, distributed.ts across hosts) know of one
// PostgreSQL node: the NodeActions interface the cluster logic calls to act on a node's data
// directory and postmaster (PgCtl implements it for a node beside this instance), the roles and
// metrics a node reports, and the observation of a node (SQL, or "postmaster not running" when
// the node is beside this instance and its postmaster is gone).
import type { Clock } from '../core/clock.js';
import { observe, type Observation, type ObserveTarget } from './monitor.js';
import type { NodeSpec } from './pgctl.js';
import type { RecordMetrics } from './records.js';

export type NodeRole = 'primary' | 'standby' | 'fenced' | 'down' | 'unknown' | 'rejoining';

/** What the cluster reports to metrics (the subsystem turns these into Prometheus series). */
export interface ClusterMetricsSink extends RecordMetrics {
  role(database: string, node: string, role: NodeRole): void;
  lag(database: string, node: string, bytes: number | undefined): void;
}

/**
 * The node-local actions on one node: its data directory, its postmaster, its standby files and
 * fencing. Only the instance beside a node holds its NodeActions; the cluster logic calls them the
 * same way whichever engine decides.
 */
export interface NodeActions {
  readonly dataDir: string;
  initialized(): boolean;
  isStandbyConfigured(): boolean;
  /** The postmaster pid when it runs, else undefined. */
  postmasterPid(): number | undefined;
  initdb(settings: Record<string, string | number | boolean>, hotStandby: boolean): Promise<void>;
  /** Lets the other hosts of a cluster connect (cluster mode), plus extra pg_hba lines (databases.*.hba). */
  allowHosts(addresses: readonly string[], extra?: readonly string[]): void;
  start(): Promise<void>;
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  promote(): Promise<void>;
  reload(): Promise<void>;
  /** SIGKILL of everything in the data directory, then standby.signal. Returns how many processes were killed. */
  fence(): number;
  /** SIGKILL of everything in the data directory. */
  killAll(): number;
  /** Cluster mode: the marker of a node fenced as a primary (it rejoins only through pg_rewind). */
  markFenced(why: string): void;
  isMarkedFenced(): boolean;
  clearFenced(): void;
  /** host:port its primary_conninfo follows, if any. */
  followsAddress(): string | undefined;
  clone(source: NodeSpec): Promise<void>;
  rewind(source: NodeSpec): Promise<{ ok: boolean; output: string }>;
  configureStandby(primary: NodeSpec): void;
  /** synchronous_standby_names in postgresql.auto.conf and a reload (works while the node is still a standby). */
  setSyncNamesOffline(value: string): Promise<void>;
  /** Latest checkpoint location of a stopped node. */
  checkpointLsn(): Promise<string | undefined>;
}

/** Where the observer connects to a node. */
export function targetOf(spec: NodeSpec, user: string): ObserveTarget {
  return { host: spec.host, port: spec.port, user };
}

export function addressOf(spec: NodeSpec): string {
  return `${spec.host}:${spec.port}`;
}

/** The observation timeout for a probe interval: twice the interval, within [300 ms, max]. */
export function observeTimeout(probeInterval: number, maxMs: number): number {
  return Math.max(300, Math.min(maxMs, probeInterval * 2));
}

/**
 * Observes one node. With its NodeActions (a node beside this instance) a postmaster that is not
 * running is reported as such without a connection attempt; `running` is then what was seen
 * (undefined for a node elsewhere, known only through SQL).
 */
export async function observeNode(target: ObserveTarget, actions: NodeActions | undefined, timeoutMs: number, clock: Clock): Promise<{ obs: Observation; running: boolean | undefined }> {
  const running = actions === undefined ? undefined : actions.postmasterPid() !== undefined;
  const obs = running === false ? { ok: false, error: 'postmaster not running', at: clock.now() } : await observe(target, timeoutMs, () => clock.now());
  return { obs, running };
}
