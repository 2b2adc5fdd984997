// Owns the control plane's lifecycle: builds the state store, event bus, metrics registry and
// every configured subsystem; starts them in order, stops them in reverse, reloads on request,
// and records bus events in the state store.
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { type Clock, systemClock } from '../core/clock.js';
import type { LoadedConfig } from '../core/config/load.js';
import type { BulwarkConfig } from '../core/config/schema.js';
import { BulwarkError, describeError } from '../core/errors.js';
import { EventBus } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { Route, Subsystem } from '../core/subsystem.js';
import { VERSION } from '../core/version.js';
import { readSecret } from '../core/secrets.js';
import { createCoordination, listMembers, Membership, type Coordination, type MemberHealth } from '../coord/index.js';
import { SqliteStore } from '../store/sqlite.js';
import { fetchPeer, gatherPeers, mergeEvents, within, PEER_TIMEOUT_MS, type MemberRow, type InstanceView } from './cluster-view.js';
import { SUBSYSTEM_FACTORIES, type AppDeps, type PeerClient, type SubsystemFactory } from './subsystems.js';
import { EventsFeed } from './events-feed.js';
import { snapshotRoutes } from './snapshot-browser.js';

export interface DaemonOptions {
  logger: Logger;
  clock?: Clock;
  /** Overrides the factory list (tests). */
  factories?: SubsystemFactory[];
}

/** Peers get longer to answer data pulls (SLI pages) than status requests. */
const PEER_DATA_TIMEOUT_MS = 5000;

/** How often this instance refreshes its member record (its liveness comes from the etcd session). */
const MEMBER_REFRESH_MS = 5000;

/** GET /v1/status in the cluster's view: this instance's own status, the members, and every peer's own status. */
export interface ClusterStatus {
  version: string;
  started_at: number;
  config_file: string;
  instance: string | null;
  subsystems: Record<string, unknown>;
  cluster: {
    name: string | null;
    self: string;
    members: MemberRow[];
    /** Why the membership could not be read from etcd (every member is then 'unknown'). */
    members_error?: string;
    /** The other instances' own status (or why they did not answer). */
    instances: Record<string, InstanceView>;
  };
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
  #membership: Membership | undefined;
  /** Subsystems whose status() threw at the last status(). */
  #statusErrors = new Set<string>();
  /** The shared API token, used to ask peers for their status and events. */
  #token: string | undefined;

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
      const api = this.#loaded.config.api;
      this.#token = readSecret({ file: api.token_file, env: api.token_env }, this.#loaded.baseDir, 'api') ?? (process.env['BULWARK_API_TOKEN'] || undefined);
      await this.#buildMissing();
      this.#membership = new Membership({
        kv: this.#coord.kv,
        clock: this.#clock,
        everyMs: MEMBER_REFRESH_MS,
        health: () => this.#healthSummary(),
        self: { name: this.selfName, api: this.#loaded.instance?.api ?? api.listen, zone: this.#loaded.instance?.zone, version: VERSION, started_at: this.#startedAt, pid: process.pid },
        onError: (err) => this.#logger.warn({ err: describeError(err) }, 'cannot refresh this instance\'s member record'),
      });
      await this.#membership.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
    this.events.emit('audit.event', { kind: 'daemon.start', subject: 'bulwark', message: `control plane started (${this.#subsystems.length} subsystems)`, at: this.#clock.now() });
  }

  /** This instance's name: its cluster instance, else the coordination identity. */
  get selfName(): string {
    return this.#loaded.instance?.name ?? this.#coord?.identity ?? 'bulwark';
  }

  /**
   * Cheap on purpose (it runs every refresh): the subsystems running, and those whose status
   * failed the last time it was asked (a status can be costly: the SLO report, say).
   */
  #healthSummary(): MemberHealth {
    return { subsystems: this.#subsystems.length, errors: [...this.#statusErrors] };
  }

  get #subsystems(): Subsystem[] {
    return this.#slots.filter((s): s is Subsystem => s !== undefined);
  }

  /** Cluster mode: GET requests to the other instances over their APIs (short timeout, shared token). */
  #peers(): PeerClient | undefined {
    const cluster = this.#loaded.config.cluster;
    if (!cluster || !this.#loaded.instance) return undefined;
    const self = this.#loaded.instance.name;
    return {
      names: () => (this.#loaded.config.cluster?.instances ?? []).map((i) => i.name).filter((n) => n !== self),
      get: async (name, path) => {
        const inst = this.#loaded.config.cluster?.instances.find((i) => i.name === name);
        if (!inst) throw new BulwarkError('BULWARK_CLUSTER_REMOTE', `no instance named '${name}' under cluster.instances`);
        const a = await fetchPeer(inst.api, path, this.#token, PEER_DATA_TIMEOUT_MS);
        if (!a.ok) throw new BulwarkError('BULWARK_CLUSTER_REMOTE', a.error?.message ?? `instance ${name} did not answer`, a.error?.hint ? { hint: a.error.hint } : {});
        return a.body;
      },
    };
  }

  #deps(store: SqliteStore): AppDeps {
    return {
      peers: this.#peers(),
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
    await this.#membership?.stop();
    this.#membership = undefined;
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

  status(): { version: string; started_at: number; config_file: string; instance: string | null; subsystems: Record<string, unknown> } {
    const subsystems: Record<string, unknown> = {};
    for (const s of this.#subsystems) {
      try {
        subsystems[s.name] = s.status();
        this.#statusErrors.delete(s.name);
      } catch (err) {
        subsystems[s.name] = { error: describeError(err) };
        this.#statusErrors.add(s.name);
      }
    }
    return { version: VERSION, started_at: this.#startedAt, config_file: this.#loaded.file, instance: this.#loaded.instance?.name ?? null, subsystems };
  }

  /**
   * The whole cluster's status (GET /v1/status): this instance's own, the members from etcd,
   * and every other instance's own status fetched over its API (1 s each, concurrently).
   * Outside cluster mode the cluster is this instance alone.
   */
  async clusterStatus(): Promise<ClusterStatus> {
    const local = this.status();
    const cluster = this.#loaded.config.cluster;
    const self = this.selfName;
    const configured = cluster ? cluster.instances : [{ name: self, api: this.#loaded.config.api.listen, zone: undefined }];
    // The peers are asked while etcd is: a dead host or a slow etcd costs one timeout, not the sum.
    const asked = new Map(configured.filter((c) => c.name !== self).map((c) => [c.name, fetchPeer(c.api, '/v1/status?scope=local', this.#token)]));
    const unknown = (why: string): Awaited<ReturnType<typeof listMembers>> => ({ members: configured.map((c) => ({ name: c.name, api: c.api, zone: c.zone, state: 'unknown' as const })), error: why });
    const { members, error } = this.#coord
      ? await within(listMembers(this.#coord.kv, configured), PEER_TIMEOUT_MS, () => unknown(`etcd did not answer within ${PEER_TIMEOUT_MS} ms`))
      : unknown('not started');
    const { rows, instances } = await gatherPeers(self, members, (api, name) => asked.get(name) ?? fetchPeer(api, '/v1/status?scope=local', this.#token));
    return { ...local, cluster: { name: cluster?.name ?? null, self, members: rows, ...(error ? { members_error: error } : {}), instances } };
  }

  /**
   * GET /v1/events: this instance's event feed (the same query parameters), and in cluster mode
   * (unless ?scope=local) merged with every other instance's, asked concurrently with ?scope=local
   * and a 1 s timeout; each event names its instance, and those that did not answer are listed.
   */
  #eventsRoute(local: Route): Route {
    return {
      method: 'GET',
      path: '/v1/events',
      handle: async (ctx) => {
        const scope = scopeOf(ctx.url);
        const mine = (await local.handle(ctx)) as { events: Array<{ at: number }> };
        const cluster = this.#loaded.config.cluster;
        if (!cluster) return mine;
        const self = this.selfName;
        const tagged = { instance: self, events: mine.events.map((e) => ({ ...e, instance: self })) };
        if (scope === 'local') return tagged;
        const qs = new URLSearchParams(ctx.url.searchParams);
        qs.set('scope', 'local');
        const limit = Math.min(1000, Number(qs.get('limit') ?? 50) || 50);
        const peers = cluster.instances.filter((i) => i.name !== self);
        const answers = await Promise.all(peers.map((p) => fetchPeer(p.api, `/v1/events?${qs.toString()}`, this.#token)));
        const lists: Array<{ instance: string; events: Array<{ at: number }> }> = [tagged];
        const unreachable: Array<{ instance: string; error: unknown }> = [];
        answers.forEach((a, i) => {
          const name = (peers[i] as { name: string }).name;
          const events = (a.body as { events?: unknown } | undefined)?.events;
          if (a.ok && Array.isArray(events)) lists.push({ instance: name, events: events as Array<{ at: number }> });
          else unreachable.push({ instance: name, error: a.error ?? { code: 'BULWARK_CLUSTER_REMOTE', message: `instance ${name} answered without events` } });
        });
        return { events: mergeEvents(lists, limit), unreachable };
      },
    };
  }

  /** Changes whenever the set of routes changes (a subsystem was added). */
  routesVersion(): number {
    return this.#routesVersion;
  }

  routes(): Route[] {
    const feed = this.#feed?.routes() ?? [];
    const local = feed.find((r) => r.method === 'GET' && r.path === '/v1/events');
    const own: Route[] = [...(local ? [this.#eventsRoute(local)] : []), ...feed.filter((r) => r !== local), ...snapshotRoutes({ config: () => this.#loaded, clock: this.#clock })];
    return [...own, ...this.#subsystems.flatMap((s) => s.routes?.() ?? [])];
  }

  /** Recent events of this instance from its state store, newest first. */
  recentEvents(limit = 50): Array<{ at: number; kind: string; subject: string; message: string }> {
    return this.#store?.all('SELECT at, kind, subject, message FROM events ORDER BY id DESC LIMIT ?', limit) ?? [];
  }
}

/** ?scope=local (this instance only) or cluster (the default: every instance). */
export function scopeOf(url: URL): 'local' | 'cluster' {
  const s = url.searchParams.get('scope');
  if (s === null || s === 'cluster') return 'cluster';
  if (s === 'local') return 'local';
  throw new BulwarkError('BULWARK_API_BAD_REQUEST', `scope=${s}: expected local or cluster`, { httpStatus: 400 });
}
