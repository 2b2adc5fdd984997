// Owns the publication of a database's routing view (the 'db.topology' event the proxy's write
// and read listeners follow) and, for the single-host engine, the write gate: whether writes are
// held back (failover or switchover in progress, no safe primary) and why. Both engines publish
// through TopologyPublisher: an event only when the primary or the set of replicas changes (lag
// changes constantly: membership, not byte counts).
import type { Clock } from '../core/clock.js';
import type { EventBus } from '../core/events.js';
import type { Observation } from './monitor.js';
import { addressOf } from './nodes.js';
import type { NodeSpec } from './pgctl.js';

export interface TopologyPrimary {
  node: string;
  address: string;
}

export interface TopologyReplica {
  node: string;
  address: string;
  lag_bytes: number;
}

/** A hot standby that takes reads: reachable, in recovery, its WAL receiver streaming. */
export function streamsAsReplica(obs: Observation | undefined): boolean {
  return obs?.ok === true && obs.inRecovery === true && obs.receiverStatus === 'streaming';
}

export function topologyPrimary(spec: NodeSpec): TopologyPrimary {
  return { node: spec.name, address: addressOf(spec) };
}

export class TopologyPublisher {
  readonly #database: string;
  readonly #events: EventBus;
  readonly #clock: Clock;
  #last = '';

  constructor(database: string, events: EventBus, clock: Clock) {
    this.#database = database;
    this.#events = events;
    this.#clock = clock;
  }

  /** Emits 'db.topology' when the primary or the replicas' membership changed since the last one. */
  publish(primary: TopologyPrimary | undefined, replicas: TopologyReplica[]): void {
    this.#emit(JSON.stringify({ primary, replicas: replicas.map((r) => r.node) }), primary, replicas);
  }

  /** No primary, no replicas: writes are blocked at once, whatever was last observed. */
  publishBlocked(): void {
    this.#emit(JSON.stringify({ primary: undefined, blocked: true }), undefined, []);
  }

  /** The next publish emits even if nothing changed. */
  forget(): void {
    this.#last = '';
  }

  /** Whether the last publication named a primary (writes open for the listeners). */
  get writesOpen(): boolean {
    const topo = this.#last ? (JSON.parse(this.#last) as { primary?: unknown }) : {};
    return Boolean(topo.primary);
  }

  #emit(key: string, primary: TopologyPrimary | undefined, replicas: TopologyReplica[]): void {
    if (key === this.#last) return;
    this.#last = key;
    this.#events.emit('db.topology', { database: this.#database, primary, replicas, at: this.#clock.now() });
  }
}

/**
 * The single-host engine's write gate: one object owning "writes blocked / open", why they are
 * blocked, and the publication. Closing it publishes at once; opening it republishes on the next
 * publish() (which still routes writes only to an observed, running primary).
 */
export class WriteGate {
  readonly #pub: TopologyPublisher;
  #blocked = false;
  #reason: string | undefined;

  constructor(database: string, events: EventBus, clock: Clock) {
    this.#pub = new TopologyPublisher(database, events, clock);
  }

  get blocked(): boolean {
    return this.#blocked;
  }

  /** Why writes are blocked (status), when known. */
  get reason(): string | undefined {
    return this.#reason;
  }

  set reason(why: string | undefined) {
    this.#reason = why;
  }

  get writesOpen(): boolean {
    return this.#pub.writesOpen;
  }

  /** Blocks writes at once (before fencing): 'db.topology' without a primary. */
  close(): void {
    this.#blocked = true;
    this.#pub.publishBlocked();
  }

  /** Lets writes through again; the listeners learn it on the next publish(). */
  open(): void {
    this.#blocked = false;
  }

  /** The next publish() emits even if nothing changed. */
  forget(): void {
    this.#pub.forget();
  }

  /** Publishes the primary (only while the gate is open and the caller saw it writable) and the replicas. */
  publish(primary: TopologyPrimary | undefined, replicas: TopologyReplica[]): void {
    this.#pub.publish(this.#blocked ? undefined : primary, replicas);
  }
}
