// Owns the control plane's lifecycle: builds the state store, event bus, metrics registry and
// every configured subsystem; starts them in order, stops them in reverse, reloads on request,
// and records bus events in the state store.
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { type Clock, systemClock } from '../core/clock.js';
import type { LoadedConfig } from '../core/config/load.js';
import type { BulwarkConfig } from '../core/config/schema.js';
import { describeError } from '../core/errors.js';
import { EventBus } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { Route, Subsystem } from '../core/subsystem.js';
import { VERSION } from '../core/version.js';
import { createCoordination, type Coordination } from '../coord/index.js';
import { SqliteStore } from '../store/sqlite.js';
import { SUBSYSTEM_FACTORIES, type AppDeps, type SubsystemFactory } from './subsystems.js';
import { EventsFeed } from './events-feed.js';
import { snapshotRoutes } from './snapshot-browser.js';

export interface DaemonOptions {
  logger: Logger;
  clock?: Clock;
  /** Overrides the factory list (tests). */
  factories?: SubsystemFactory[];
}

export class Daemon {
  readonly metrics = new Registry();
  readonly events: EventBus;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #factories: SubsystemFactory[];
  #loaded: LoadedConfig;
  #store: SqliteStore | undefined;
  /** One coordination service per instance (leases, shared state), shared by every subsystem. */
  #coord: Coordination | undefined;
  /** One slot per factory, in factory order: a factory that built nothing at start may build on reload. */
  #slots: Array<Subsystem | undefined> = [];
  #routesVersion = 0;
  #startedAt = 0;
  #unsubscribe: Array<() => void> = [];
  #feed: EventsFeed | undefined;

  constructor(loaded: LoadedConfig, opts: DaemonOptions) {
    this.#loaded = loaded;
    this.#logger = opts.logger;
    this.#clock = opts.clock ?? systemClock;
    this.#factories = opts.factories ?? SUBSYSTEM_FACTORIES;
    this.events = new EventBus((event, err) => this.#logger.error({ event, err: describeError(err) }, 'event listener failed'));
    // Standard unprefixed process_* and nodejs_* metrics (what dashboards for any exporter expect),
    // less the three gauges named *_total that `promtool check metrics` rejects (their per-type
    // versions nodejs_active_{handles,requests,resources} stay).
    collectDefaultMetrics({ register: this.metrics });
    for (const n of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.metrics.removeSingleMetric(n);
    new Gauge({ name: 'bulwark_build_info', help: 'Bulwark version', labelNames: ['version'], registers: [this.metrics] }).set({ version: VERSION }, 1);
    new Gauge({
      name: 'bulwark_up_since_seconds',
      help: 'Unix time the control plane started',
      registers: [this.metrics],
      collect: () => undefined,
    });
  }

  get config(): BulwarkConfig {
    return this.#loaded.config;
  }

  get stateDir(): string {
    return this.#loaded.config.state_dir;
  }

  async start(): Promise<void> {
    this.#startedAt = this.#clock.now();
    const store = SqliteStore.open(this.#loaded.config.state_dir);
    this.#store = store;
    this.#coord = createCoordination(this.#loaded.config.coordination, { clock: this.#clock, ...(this.#loaded.instance ? { identity: this.#loaded.instance.name } : {}) });
    (this.metrics.getSingleMetric('bulwark_up_since_seconds') as Gauge).set(Math.floor(this.#startedAt / 1000));
    const feed = new EventsFeed(store, () => this.#clock.now());
    this.#feed = feed;
    this.#unsubscribe.push(this.events.on('audit.event', (e) => feed.record(e)));
    this.#slots = this.#factories.map(() => undefined);
    try {
      await this.#buildMissing();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.events.emit('audit.event', { kind: 'daemon.start', subject: 'bulwark', message: `control plane started (${this.#subsystems.length} subsystems)`, at: this.#clock.now() });
  }

  get #subsystems(): Subsystem[] {
    return this.#slots.filter((s): s is Subsystem => s !== undefined);
  }

  #deps(store: SqliteStore): AppDeps {
    return {
      instance: this.#loaded.instance,
      coordination: this.#coord as Coordination,
      config: this.#loaded.config,
      baseDir: this.#loaded.baseDir,
      events: this.events,
      logger: this.#logger,
      clock: this.#clock,
      metrics: this.metrics,
      store,
    };
  }

  /** Builds and starts, in factory order, every subsystem whose section of the config is now non-empty. */
  async #buildMissing(): Promise<void> {
    const store = this.#store as SqliteStore;
    for (const [i, factory] of this.#factories.entries()) {
      if (this.#slots[i]) continue;
      const s = factory(this.#deps(store));
      if (!s) continue;
      try {
        await s.start();
      } catch (err) {
        this.#logger.error({ subsystem: s.name, err: describeError(err) }, 'subsystem failed to start');
        throw err;
      }
      this.#slots[i] = s;
      this.#routesVersion++;
      this.#logger.info({ subsystem: s.name }, 'subsystem started');
    }
  }

  /** Stops subsystems in reverse order; each gets to finish in-flight work. Never throws. */
  async stop(): Promise<void> {
    this.#feed?.closeStreams();
    for (const s of [...this.#subsystems].reverse()) {
      try {
        await s.stop();
        this.#logger.info({ subsystem: s.name }, 'subsystem stopped');
      } catch (err) {
        this.#logger.error({ subsystem: s.name, err: describeError(err) }, 'subsystem failed to stop cleanly');
      }
    }
    this.#slots = [];
    if (this.#store) {
      try {
        this.#store.run('INSERT INTO events (at, kind, subject, message) VALUES (?, ?, ?, ?)', this.#clock.now(), 'daemon.stop', 'bulwark', 'control plane stopped');
      } catch {
        // the store may already be unusable (full disk); stopping must still finish
      }
    }
    for (const u of this.#unsubscribe.splice(0)) u();
    await this.#coord?.close().catch((err: unknown) => this.#logger.warn({ err: describeError(err) }, 'closing the coordination service failed'));
    this.#coord = undefined;
    this.#store?.close();
    this.#store = undefined;
  }

  /**
   * Applies a new config: running subsystems reload it; a subsystem whose section was empty at
   * start (no services yet, say) is built and started now. A subsystem whose section is emptied
   * keeps running with the empty section.
   */
  async reload(loaded: LoadedConfig): Promise<void> {
    this.#loaded = loaded;
    for (const s of this.#subsystems) {
      if (s.reload) await s.reload(loaded.config);
    }
    await this.#buildMissing();
    this.events.emit('config.reloaded', { at: this.#clock.now() });
    this.events.emit('audit.event', { kind: 'config.reload', subject: loaded.file, message: 'configuration reloaded', at: this.#clock.now() });
  }

  status(): { version: string; started_at: number; config_file: string; subsystems: Record<string, unknown> } {
    const subsystems: Record<string, unknown> = {};
    for (const s of this.#subsystems) {
      try {
        subsystems[s.name] = s.status();
      } catch (err) {
        subsystems[s.name] = { error: describeError(err) };
      }
    }
    return { version: VERSION, started_at: this.#startedAt, config_file: this.#loaded.file, subsystems };
  }

  /** Changes whenever the set of routes changes (a subsystem was added). */
  routesVersion(): number {
    return this.#routesVersion;
  }

  routes(): Route[] {
    const own: Route[] = [...(this.#feed?.routes() ?? []), ...snapshotRoutes({ config: () => this.#loaded, clock: this.#clock })];
    return [...own, ...this.#subsystems.flatMap((s) => s.routes?.() ?? [])];
  }

  /** Recent events from the state store, newest first. */
  recentEvents(limit = 50): Array<{ at: number; kind: string; subject: string; message: string }> {
    return this.#store?.all('SELECT at, kind, subject, message FROM events ORDER BY id DESC LIMIT ?', limit) ?? [];
  }
}
