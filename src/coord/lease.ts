// Owns the leader-lease contract every coordination backend implements, and the pure timing rule
// that decides whether a holder may still act: a lease is trusted only until the last renewal
// that the backend confirmed, counted from when that renewal was SENT, plus the TTL, minus a
// safety margin. A holder that cannot renew (etcd unreachable, process paused) therefore stops
// acting on its own before any other instance can be granted the same lease.

/** A named lease that at most one control-plane instance holds at a time. */
export interface LeaderLease {
  /** The lease key, e.g. "db/main". */
  readonly name: string;
  /** Who this instance is, as written into the lease. */
  readonly identity: string;
  /**
   * Tries once to take the lease (or confirms it is still ours) and starts renewing it.
   * Resolves true when this instance holds it now. Never throws for "someone else holds it";
   * throws BULWARK_COORD_UNAVAILABLE when the backend cannot be reached.
   */
  acquire(): Promise<boolean>;
  /** True while the lease is held AND its last confirmed renewal is still within the TTL. Synchronous: check it right before acting. */
  isHeld(): boolean;
  /** While held: the monotonic time (Clock.mono) until which the lease is trusted; else undefined. A watchdog fences by it. */
  trustedUntil(): number | undefined;
  /** The identity of the current holder as the backend sees it, or undefined. */
  holder(): Promise<string | undefined>;
  /** Gives the lease up (others may take it at once) and stops renewing. */
  release(): Promise<void>;
  /**
   * Stops renewing WITHOUT giving the lease up: it expires on its own after the TTL, unless this
   * same identity takes it again first (a restart). A graceful stop of a primary's instance uses
   * this, so that a rolling restart is not a failover.
   */
  abandon(): void;
  /** Calls fn when a held lease is lost (expired, revoked, backend unreachable past the TTL). Returns an unsubscribe. */
  onLost(fn: (reason: string) => void): () => void;
}

/** The coordination service: hands out leases. One per control-plane instance. */
export interface Coordination {
  readonly kind: 'local' | 'etcd';
  readonly identity: string;
  lease(name: string): LeaderLease;
  /** Shared key-value state of the deployment (etcd keys under the prefix; in-process for local). */
  readonly kv: ClusterKV;
  /** Releases every lease and closes connections. */
  close(): Promise<void>;
  /** etcd only: the members of the etcd cluster as etcd lists them (the audit counts them). Throws BULWARK_COORD_UNAVAILABLE. */
  etcdMembers?(): Promise<EtcdMember[]>;
}

/** One member of the etcd cluster. */
export interface EtcdMember {
  id: string;
  /** Empty while the member has not started. */
  name: string;
  peer_urls: string[];
  client_urls: string[];
  learner: boolean;
}

/** Safety margin taken off the TTL: a holder stops trusting its lease this long before it could expire on the server. */
export function leaseMargin(ttlMs: number): number {
  return Math.min(1000, Math.max(100, Math.floor(ttlMs / 5)));
}

/**
 * Until when a holder may act, given the send time of the last renewal the backend confirmed.
 * The server's TTL clock starts no earlier than the request arrived, so counting from the send
 * time (minus a margin) can only end early, never late.
 */
export function trustedUntil(lastConfirmedSentAt: number, ttlMs: number): number {
  return lastConfirmedSentAt + ttlMs - leaseMargin(ttlMs);
}

/**
 * How often a holder renews: three times per TTL, and at least every 500 ms, so that when etcd
 * stops answering for a while (its leader died and a new one is being elected, ~1-2 s with etcd's
 * defaults) the holder still has nearly TTL - margin of trust left to ride it out.
 */
export function renewEvery(ttlMs: number): number {
  return Math.max(50, Math.min(500, Math.floor(ttlMs / 3)));
}

/**
 * Shared state every instance reads and the owners write: cluster state of a database, each
 * node's last observation, members, job records. Keys are relative ("db/main/state"); values are
 * JSON text. Reads of an unreachable backend throw BULWARK_COORD_UNAVAILABLE.
 */
export interface ClusterKV {
  get(key: string): Promise<string | undefined>;
  /** Every key under the prefix (relative keys), with its value. */
  list(prefix: string): Promise<Map<string, string>>;
  put(key: string, value: string): Promise<void>;
  /** A key bound to this instance's session: it vanishes about one lease TTL after the instance stops renewing (dies, or loses etcd). */
  putEphemeral(key: string, value: string): Promise<void>;
  delete(key: string): Promise<void>;
  /** Writes only if `lease` is held by this instance at the backend, atomically (an etcd transaction on the lease key). false when it is not. */
  putIfHolder(lease: LeaderLease, key: string, value: string): Promise<boolean>;
}
