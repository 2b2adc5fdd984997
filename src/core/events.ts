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
