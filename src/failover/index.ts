// Owns the failover subsystem: one PgCluster per entry of `databases:`, the leader lease each
// takes from the coordination service, the /v1/db/... API routes (status, switchover), the
// Prometheus series (role, lag, failovers, write downtime) and the status rows shown by
// `bulwark status` and the dashboard. Client listeners are not here: proxy/ follows the
// 'db.topology' event this subsystem publishes.
import { Counter, Gauge, Histogram } from 'prom-client';
import { resolve } from 'node:path';
import { createCoordination, type Coordination } from '../coord/index.js';
import { BulwarkError } from '../core/errors.js';
import type { Route, Subsystem, SubsystemDeps } from '../core/subsystem.js';
import { PgCluster, type ClusterMetricsSink, type NodeRole } from './cluster.js';
import type { BaseBackupStoreFactory } from './cold.js';
import { DistributedCluster } from './distributed.js';
import type { FailoverRecord } from './records.js';

/** What the subsystem needs of one database's engine: on one machine (PgCluster) or across hosts (DistributedCluster). */
interface DbEngine {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): { nodes: Array<Record<string, unknown>> } & Record<string, unknown>;
  history(limit?: number): Promise<unknown[]>;
  switchover(to: string): Promise<FailoverRecord | Record<string, unknown>>;
  baseBackup(): Promise<unknown>;
}

export { PgCluster } from './cluster.js';
export type { BaseBackupStore, BaseBackupStoreFactory } from './cold.js';

/** What failover needs from the coordination service (a factory result of coord/). */
export type FailoverCoordination = Pick<Coordination, 'lease' | 'close' | 'kind' | 'identity' | 'kv'>;

export interface FailoverDeps extends SubsystemDeps {
  /** Defaults to the service the config's coordination section describes. */
  coordination?: FailoverCoordination;
  /** standby: cold — the backup engine over a plan's targets (the composition root provides it; failover never imports backup/). */
  baseBackups?: BaseBackupStoreFactory;
}

const ROLES: NodeRole[] = ['primary', 'standby', 'fenced', 'down', 'unknown', 'rejoining'];

function metricsSink(deps: SubsystemDeps): ClusterMetricsSink {
  const reg = [deps.metrics];
  const role = new Gauge({ name: 'bulwark_db_node_role', help: 'Role of each PostgreSQL node (1 for the current role)', labelNames: ['database', 'node', 'role'], registers: reg });
  const lag = new Gauge({ name: 'bulwark_db_replication_lag_bytes', help: 'WAL bytes a standby is behind its primary', labelNames: ['database', 'node'], registers: reg });
  const failovers = new Counter({ name: 'bulwark_db_failovers_total', help: 'Failovers and switchovers, by result', labelNames: ['database', 'kind', 'result'], registers: reg });
  const downtime = new Histogram({
    name: 'bulwark_db_write_downtime_seconds',
    help: 'Measured write downtime of each failover or switchover (last good observation of the old primary to the first commit on the new one)',
    labelNames: ['database', 'kind'],
    buckets: [0.5, 1, 2, 3, 5, 8, 13, 21, 34, 60],
    registers: reg,
  });
  const last = new Gauge({ name: 'bulwark_db_last_write_downtime_seconds', help: 'Write downtime of the most recent failover or switchover', labelNames: ['database', 'kind'], registers: reg });
  return {
    role: (database, node, r) => {
      for (const x of ROLES) role.set({ database, node, role: x }, x === r ? 1 : 0);
    },
    lag: (database, node, bytes) => {
      if (bytes === undefined) lag.remove({ database, node });
      else lag.set({ database, node }, bytes);
    },
    failover: (database, kind, ok) => failovers.inc({ database, kind, result: ok ? 'ok' : 'failed' }),
    downtime: (database, kind, ms) => {
      downtime.observe({ database, kind }, ms / 1000);
      last.set({ database, kind }, ms / 1000);
    },
  };
}

export class FailoverSubsystem implements Subsystem {
  readonly name = 'failover';
  readonly #deps: FailoverDeps;
  readonly #clusters = new Map<string, DbEngine>();
  #coord: FailoverCoordination | undefined;
  #ownsCoord = false;

  constructor(deps: FailoverDeps) {
    this.#deps = deps;
  }

  async start(): Promise<void> {
    const d = this.#deps;
    this.#coord = d.coordination;
    if (!this.#coord) {
      this.#coord = createCoordination(d.config.coordination, { clock: d.clock });
      this.#ownsCoord = true;
    }
    const sink = metricsSink(d);
    const stateDir = resolve(d.config.state_dir);
    for (const [name, config] of Object.entries(d.config.databases)) {
      const baseBackups = config.standby === 'cold' && config.restore_from && d.baseBackups ? d.baseBackups(config.restore_from) : undefined;
      const common = { name, config, stateDir, baseDir: d.baseDir, lease: this.#coord.lease(`db/${name}`), events: d.events, logger: d.logger.child({ database: name }), clock: d.clock, store: d.store, metrics: sink };
      const cluster: DbEngine = d.instance && d.config.cluster
        ? new DistributedCluster({ ...common, instance: d.instance, instances: d.config.cluster.instances, kv: this.#coord.kv })
        : new PgCluster({ ...common, baseBackups });
      this.#clusters.set(name, cluster);
    }
    try {
      for (const c of this.#clusters.values()) await c.start();
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    for (const c of this.#clusters.values()) await c.stop();
    this.#clusters.clear();
    if (this.#ownsCoord) await this.#coord?.close();
  }

  cluster(name: string): DbEngine {
    const c = this.#clusters.get(name);
    if (!c) {
      throw new BulwarkError('BULWARK_DB_UNKNOWN', `no database named '${name}' is configured`, {
        hint: this.#clusters.size ? `configured: ${[...this.#clusters.keys()].join(', ')}` : 'add it under databases: in bulwark.yaml',
        httpStatus: 404,
      });
    }
    return c;
  }

  status(): unknown {
    const clusters = [...this.#clusters.values()].map((c) => c.status());
    return {
      coordination: this.#coord ? { kind: this.#coord.kind, identity: this.#coord.identity } : undefined,
      columns: ['database', 'node', 'address', 'role', 'lag_bytes', 'sync', 'streaming', 'timeline'],
      rows: clusters.flatMap((c) => c.nodes),
      databases: clusters.map(({ nodes: _n, ...rest }) => rest),
    };
  }

  routes(): Route[] {
    return [
      {
        method: 'GET',
        path: '/v1/db/:name',
        handle: async ({ params }) => {
          const c = this.cluster(params['name'] ?? '');
          const s = c.status();
          return { ...s, columns: ['node', 'address', 'role', 'lag_bytes', 'sync', 'streaming', 'timeline', 'error'], rows: s.nodes, history: await c.history() };
        },
      },
      {
        method: 'POST',
        path: '/v1/db/:name/switchover',
        handle: async ({ params, body }) => {
          const c = this.cluster(params['name'] ?? '');
          const b = (await body()) as { to?: unknown } | undefined;
          if (!b || typeof b.to !== 'string' || b.to === '') {
            throw new BulwarkError('BULWARK_API_BAD_REQUEST', 'switchover needs a JSON body {"to": "NODE"}', { httpStatus: 400 });
          }
          return c.switchover(b.to);
        },
      },
      {
        method: 'POST',
        path: '/v1/db/:name/base-backup',
        handle: ({ params }) => this.cluster(params['name'] ?? '').baseBackup(),
      },
    ];
  }
}

/** The factory SUBSYSTEM_FACTORIES lists: undefined when no database is configured. */
export function createFailover(deps: FailoverDeps): Subsystem | undefined {
  if (Object.keys(deps.config.databases).length === 0) return undefined;
  return new FailoverSubsystem(deps);
}
