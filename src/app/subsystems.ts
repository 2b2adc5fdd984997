// Owns the list of subsystem factories the daemon builds from config. Each capability adds one
// line here; a factory returns undefined when its section of the config is empty.
import type { Coordination } from '../coord/index.js';
import type { Subsystem, SubsystemDeps } from '../core/subsystem.js';
import { createHealth } from '../health/index.js';
import { createProxy } from '../proxy/index.js';
import { createFailover } from '../failover/index.js';
import { planBaseBackups } from './pgbackups.js';
import { createSlo } from '../slo/subsystem.js';
import { createPlans } from '../backup/plan/subsystem.js';
import { createAudit } from '../audit/subsystem.js';
import { createNotify } from '../notify/index.js';

/** What the composition root gives factories: the subsystem deps plus the one coordination service of this instance. */
export interface AppDeps extends SubsystemDeps {
  readonly coordination: Coordination;
  /** Cluster mode: the other instances, reachable over their APIs with the shared token (undefined outside cluster mode). */
  readonly peers?: PeerClient | undefined;
}

/** GET requests to the other instances of the cluster. */
export interface PeerClient {
  names(): string[];
  /** Rejects with BULWARK_CLUSTER_REMOTE when the peer does not answer. */
  get(instance: string, path: string): Promise<unknown>;
}

export type SubsystemFactory = (deps: AppDeps) => Subsystem | undefined;

/** Order matters: shared services first (they publish events others react to), edges of the plane last. */
export const SUBSYSTEM_FACTORIES: SubsystemFactory[] = [
  (deps) => createHealth(deps),
  createProxy,
  (deps) => createFailover({ ...deps, baseBackups: planBaseBackups(deps.config, deps.baseDir) }), // after proxy: the proxy follows db.topology; cold standby restores through backup/
  createSlo, // after health and proxy: it records their events
  createPlans, // 3-2-1 backup plans: schedules, verification, drills, RPO
  createAudit, // after plans: re-evaluates 3-2-1-1-0 on their backup.run events
  createNotify, // listens to every incident the others publish; started last, stopped first
];
