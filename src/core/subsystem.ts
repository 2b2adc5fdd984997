// Owns the small interfaces between the composition root (app/), the API edge (api/) and each
// subsystem: how a subsystem is started, stopped, reloaded, asked for status, and how it
// contributes HTTP routes and metrics without importing the API or other subsystems.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { Clock } from './clock.js';
import type { EventBus } from './events.js';
import type { Logger } from './logger.js';
import type { BulwarkConfig, ClusterInstanceConfig } from './config/schema.js';

/** Embedded state store, as subsystems see it: a SQLite handle with migrations already applied. */
export interface StateStore {
  /** Runs a statement that returns no rows. */
  run(sql: string, ...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  /** Returns every row. */
  all<T = Record<string, unknown>>(sql: string, ...params: unknown[]): T[];
  /** Returns the first row, or undefined. */
  get<T = Record<string, unknown>>(sql: string, ...params: unknown[]): T | undefined;
  /** Runs fn in a transaction. */
  transaction<T>(fn: () => T): T;
}

/** What every subsystem gets from the composition root. */
export interface SubsystemDeps {
  readonly config: BulwarkConfig;
  /** Directory of the config file: relative paths in the config (plan paths, secret files) resolve against it. */
  readonly baseDir: string;
  readonly events: EventBus;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly metrics: Registry;
  readonly store: StateStore;
  /** Cluster mode: the instance this process is (undefined outside cluster mode). */
  readonly instance?: ClusterInstanceConfig | undefined;
}

export interface RouteContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly params: Record<string, string>;
  readonly url: URL;
  /** The request body parsed as JSON (undefined when empty). Throws BULWARK_API_BAD_REQUEST when not JSON. */
  body(): Promise<unknown>;
}

/** An HTTP route a subsystem contributes to the control API. Paths use :name for parameters. */
export interface Route {
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly path: string;
  /** Returns a JSON-serialisable body (status 200), or writes the response itself and returns undefined. */
  handle(ctx: RouteContext): Promise<unknown> | unknown;
}

export interface Subsystem {
  /** Short name used in status and logs: "proxy", "health", "backup", ... */
  readonly name: string;
  start(): Promise<void>;
  /** Stops accepting new work, finishes in-flight work, releases resources. */
  stop(): Promise<void>;
  /** Applies a new config without dropping connections or forgetting state. Optional. */
  reload?(config: BulwarkConfig): Promise<void>;
  /** A JSON-serialisable view for GET /v1/status and `bulwark status`. */
  status(): unknown;
  /** HTTP routes under /v1/... Optional. */
  routes?(): Route[];
}
