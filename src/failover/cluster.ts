// Owns one PostgreSQL cluster on this host (the single-host engine): the coordinator of its
// lifecycle and of the observation loop, and the order of its decisions. Every probe_interval it
// takes (or keeps) the leader lease, observes every node, and only while holding the lease
// decides, in this order: bootstrap, failover or cold failover on primary loss, fencing a second
// primary, the synchronous standby, rejoining fenced or stopped nodes; then it publishes the
// routing view and starts due cold-standby work. The jobs themselves live in their own modules
// (bootstrap, promote, coldfail, switchover, rejoin, sync, status, topology); every role change
// happens only while this instance holds the lease, checked right before acting.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Timer } from '../core/clock.js';
import { BulwarkError, describeError } from '../core/errors.js';
import { bootstrap } from './bootstrap.js';
import { ColdStandby, type BaseBackupStatus } from './coldfail.js';
import { observeNode, observeTimeout } from './nodes.js';
import { failover, fenceSecondPrimaries } from './promote.js';
import type { FailoverRecord } from './records.js';
import { Rejoiner } from './rejoin.js';
import { ClusterState, type ClusterDeps } from './state.js';
import { clusterStatus, publishTopology, reportMetrics, type ClusterStatus } from './status.js';
import { switchover } from './switchover.js';

export type { FailoverRecord } from './records.js';
export type { ClusterMetricsSink, NodeRole } from './nodes.js';
export type { ClusterDeps } from './state.js';
export type { BaseBackupStatus } from './coldfail.js';

export class PgCluster {
  readonly name: string;
  readonly #s: ClusterState;
  readonly #rejoin: Rejoiner;
  /** standby: cold — archiving, WAL uploads, base backups and cold failover. */
  readonly #cold: ColdStandby | undefined;
  #timer: Timer | undefined;
  #ticking = false;
  #lastLeaseError = '';
  #bootstrapped = false;

  constructor(deps: ClusterDeps) {
    this.name = deps.name;
    this.#s = new ClusterState(deps);
    this.#rejoin = new Rejoiner(this.#s);
    if (deps.config.standby === 'cold') this.#cold = new ColdStandby(this.#s);
    deps.lease.onLost((reason) => deps.logger.warn({ database: deps.name, reason }, 'leader lease lost: no role changes until it is held again'));
  }

  get primary(): string | undefined {
    return this.#s.primary;
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    await this.#tryLease();
    if (this.#s.d.lease.isHeld()) await this.#s.serial('bootstrap', () => this.#bootstrap());
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    const s = this.#s;
    s.stopped = true;
    this.#timer?.cancel();
    await s.idle();
    if (s.d.config.stop_nodes_on_exit && s.d.lease.isHeld()) {
      // standbys first, so the primary's shutdown checkpoint is not waited on by anyone
      const order = [...s.nodes.values()].sort((a, b) => (a.spec.name === s.primary ? 1 : 0) - (b.spec.name === s.primary ? 1 : 0));
      for (const n of order) {
        try {
          await n.ctl.stop('fast');
        } catch (err) {
          s.d.logger.warn({ database: this.name, node: n.spec.name, err: describeError(err) }, 'stopping node failed; killing it');
          n.ctl.killAll();
        }
      }
    }
    await s.d.lease.release();
  }

  #schedule(ms: number): void {
    if (this.#s.stopped) return;
    this.#timer = this.#s.d.clock.setTimeout(() => void this.#tick(), ms);
  }

  async #tryLease(): Promise<void> {
    try {
      await this.#s.d.lease.acquire();
      this.#lastLeaseError = '';
    } catch (err) {
      const msg = describeError(err);
      if (msg !== this.#lastLeaseError) this.#s.d.logger.warn({ database: this.name, err: msg }, 'cannot take the leader lease');
      this.#lastLeaseError = msg;
    }
  }

  async #bootstrap(): Promise<void> {
    await bootstrap(this.#s, this.#rejoin, this.#cold);
    this.#bootstrapped = true;
  }

  // ---------------------------------------------------------------- the loop

  async #tick(): Promise<void> {
    const s = this.#s;
    if (s.stopped || this.#ticking) return;
    this.#ticking = true;
    try {
      if (!s.d.lease.isHeld()) await this.#tryLease();
      await this.#observeAll();
      const leader = s.d.lease.isHeld();
      if (!leader) this.#followObservation();
      if (leader && !this.#bootstrapped && !s.busy) {
        await s.serial('bootstrap', () => this.#bootstrap()).catch((err) => s.d.logger.error({ database: this.name, err: describeError(err) }, 'bootstrap failed; retrying'));
      }
      if (leader && this.#bootstrapped && !s.busy) await this.#decide();
      publishTopology(s);
      if (leader && this.#bootstrapped) this.#cold?.schedule();
    } catch (err) {
      s.d.logger.error({ database: this.name, err: describeError(err) }, 'failover loop error');
    } finally {
      this.#ticking = false;
      this.#schedule(s.d.config.probe_interval);
    }
  }

  async #observeAll(): Promise<void> {
    const s = this.#s;
    const timeout = observeTimeout(s.d.config.probe_interval, 2000);
    await Promise.all(
      [...s.nodes.values()].map(async (n) => {
        const { obs: o, running } = await observeNode(s.target(n), n.ctl, timeout, s.d.clock);
        n.pidAlive = running === true;
        n.obs = o;
        n.fails = o.ok ? 0 : n.fails + 1;
        if (n.spec.name === s.primary && o.ok && o.inRecovery === false) {
          s.primaryLastOk = o.at;
          s.primaryLastLsn = o.lsn;
        }
      }),
    );
    reportMetrics(s);
  }

  /** Not the leader: route to what is observed (exactly one node out of recovery), never change roles. */
  #followObservation(): void {
    const s = this.#s;
    const primaries = [...s.nodes.values()].filter((n) => n.obs?.ok && n.obs.inRecovery === false);
    if (primaries.length === 1 && primaries[0] && primaries[0].spec.name !== s.primary) {
      s.primary = primaries[0].spec.name;
      this.#bootstrapped = false; // on taking the lease, start from what is observed
    }
  }

  /** The leader's decisions, in order: primary lost (failover), a second primary (fence), the synchronous standby, bringing nodes back. */
  async #decide(): Promise<void> {
    const s = this.#s;
    const p = s.primaryNode();
    if (!p) return;
    if (p.obs?.ok && p.obs.inRecovery === false) {
      for (const r of p.obs.replicas ?? []) if (r.flushLsn) s.lastReplicaFlush.set(r.name, r.flushLsn);
    }
    const primaryDown = !p.pidAlive || p.fails >= s.d.config.fall || (p.obs?.ok === true && p.obs.inRecovery === true);
    if (primaryDown) {
      const reason = !p.pidAlive ? 'postmaster process gone' : p.obs?.ok ? 'primary is in recovery' : `${p.fails} failed observations (${p.obs?.error ?? 'no answer'})`;
      if (this.#cold) {
        await this.#cold.primaryLost(p, reason);
        return;
      }
      await s.serial('failover', () => failover(s, p, reason));
      return;
    }
    fenceSecondPrimaries(s, p);
    if (p.obs?.ok && (await s.sync.maintain(s.syncPrimary(p), s.d.config, s.fenced, s.primaryLastLsn))) s.persist();
    this.#rejoin.bringBack(p);
  }

  // ---------------------------------------------------------------- operations

  /** Rejoins a node as a standby of the current primary now (rewind, or re-clone when the rewind fails). Leader only. */
  async rejoin(node: string): Promise<void> {
    const s = this.#s;
    const n = s.node(node);
    s.requireLeader();
    const p = s.primaryNode();
    if (!p || p === n) throw new BulwarkError('BULWARK_DB_NO_PRIMARY', `database ${this.name} has no other primary for ${node} to follow`);
    await s.serial('rejoin', () => this.#rejoin.rejoin(n, p, 'requested'));
  }

  /** Planned switchover: wait for the target to catch up, then swap roles with writes blocked for about a second. */
  switchover(to: string): Promise<FailoverRecord> {
    return switchover(this.#s, to);
  }

  /** Takes a base backup of the current primary into the restore_from plan now (leader only). One at a time: a second request waits for the running one, then takes its own. */
  async baseBackup(): Promise<BaseBackupStatus> {
    const c = this.#s.d.config;
    if (!this.#cold) throw new BulwarkError('BULWARK_DB_COLD_CONFIG', `database ${this.name} is not a cold-standby cluster (standby: ${c.standby})`, { hint: 'base backups for cold standby need standby: cold and restore_from' });
    return this.#cold.baseBackup();
  }

  // ---------------------------------------------------------------- status

  status(): ClusterStatus {
    return clusterStatus(this.#s, this.#cold?.status());
  }

  history(limit = 20): Promise<unknown[]> {
    return this.#s.history.list(limit);
  }

  /** Test and diagnostics hook: whether the data dir of a node exists. */
  hasData(node: string): boolean {
    return existsSync(join(this.#s.node(node).spec.dataDir, 'PG_VERSION'));
  }
}
