// Owns the in-process event bus and the catalogue of events subsystems use to talk to each other.
// Subsystems never import each other: they publish and subscribe here. Add an event by adding a
// key to BulwarkEvents with its payload type.
import { EventEmitter } from 'node:events';

export type NodeHealth = 'unknown' | 'up' | 'down';

/** Every event on the bus: name -> payload. */
export interface BulwarkEvents {
  /** A health-checked node changed state (health/ publishes; proxy/, failover/, slo/ react). */
  'health.transition': {
    service: string;
    node: string;
    from: NodeHealth;
    to: NodeHealth;
    reason: string;
    at: number;
  };
  /** One request or connection finished in the proxy (proxy/ publishes; slo/ aggregates SLIs). */
  'proxy.request': {
    service: string;
    backend: string | undefined;
    /** false for 5xx (when counted), connection failures and timeouts. */
    ok: boolean;
    status: number | undefined;
    latency_ms: number;
    at: number;
  };
  /** The proxy ejected or restored a backend on passive evidence (live traffic errors). */
  'proxy.outlier': { service: string; backend: string; ejected: boolean; reason: string; until: number | undefined; at: number };
  /**
   * The routing view of a PostgreSQL cluster (failover/ publishes on every change; proxy/ points
   * the database's write listener at the primary and its read listener at hot standbys).
   * primary undefined = writes blocked (no safe primary).
   */
  'db.topology': {
    database: string;
    primary: { node: string; address: string } | undefined;
    replicas: Array<{ node: string; address: string; lag_bytes: number }>;
    at: number;
  };
  /** A backup, copy, check or drill finished for a plan target (backup/ publishes; slo/, audit/ and status react). */
  'backup.run': {
    plan: string;
    target: string;
    kind: 'backup' | 'check' | 'drill' | 'forget' | 'prune' | 'copy';
    ok: boolean;
    snapshot: string | undefined;
    bytes: number;
    duration_ms: number;
    message: string;
    at: number;
  };
  /** An SLO alert fired or resolved (slo/ publishes). */
  'slo.alert': { slo: string; severity: 'page' | 'ticket'; state: 'firing' | 'resolved'; burn_rate: number; window: string; at: number };
  /** Something happened worth recording in the event log (any subsystem). */
  'audit.event': { kind: string; subject: string; message: string; at: number; data?: Record<string, unknown> };
  /** The configuration was reloaded (app/ publishes after SIGHUP). */
  'config.reloaded': { at: number };
}

export type EventName = keyof BulwarkEvents;

/** A typed wrapper around EventEmitter. Listener errors are isolated and reported, never thrown to the emitter. */
export class EventBus {
  readonly #ee = new EventEmitter();
  readonly #onListenerError: (event: string, err: unknown) => void;

  constructor(onListenerError: (event: string, err: unknown) => void = () => {}) {
    this.#ee.setMaxListeners(0);
    this.#onListenerError = onListenerError;
  }

  on<K extends EventName>(event: K, fn: (payload: BulwarkEvents[K]) => void): () => void {
    const wrapped = (payload: BulwarkEvents[K]): void => {
      try {
        fn(payload);
      } catch (err) {
        this.#onListenerError(event, err);
      }
    };
    this.#ee.on(event, wrapped);
    return () => this.#ee.off(event, wrapped);
  }

  emit<K extends EventName>(event: K, payload: BulwarkEvents[K]): void {
    this.#ee.emit(event, payload);
  }
}
