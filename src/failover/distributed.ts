// Owns one PostgreSQL database in cluster mode, on one Bulwark instance (Patroni's model): the
// instance beside the primary holds the database's leader lease in etcd and writes the shared
// state (db/<name>/state: primary, epoch, synchronous standbys); every instance observes every
// node over SQL and routes its listeners from that state; each instance acts ONLY on the nodes
// beside it (its "members"): initdb, clone, rewind, start, promote, fence. A member promotes its
// node only after winning the free lease as the best candidate (elect.ts); a primary whose
// instance cannot renew the lease is fenced by that instance before the lease can expire
// elsewhere, and by a detached watchdog (watchdog.ts) if the instance is paused or dead.
import { resolve, join } from 'node:path';
import type { Clock, Timer } from '../core/clock.js';
import type { ClusterInstanceConfig, DatabaseConfig } from '../core/config/schema.js';
import { parseHostPort, isLoopbackHost } from '../core/config/types.js';
import { BulwarkError, describeError } from '../core/errors.js';
import type { EventBus } from '../core/events.js';
import type { Logger } from '../core/logger.js';
import type { StateStore } from '../core/subsystem.js';
import type { ClusterKV, LeaderLease } from '../coord/lease.js';
import { lagBytes, syncNamesFor } from './decide.js';
import { measureWrites } from './downtime.js';
import { emptyState, followAction, mayTakeFreeLease, type LocalNodeFacts, type NodeView, type SharedDbState } from './elect.js';
import { observe, type Observation, type ObserveTarget } from './monitor.js';
import { addressOf, observeTimeout, targetOf, type ClusterMetricsSink, type NodeActions, type NodeRole } from './nodes.js';
import { PgCtl, type NodeSpec } from './pgctl.js';
import { FailoverHistory, type FailoverRecord } from './records.js';
import { rewindOrClone } from './rejoin.js';
import { syncMark } from './status.js';
import { applySyncNames, planFromReplicas } from './sync.js';
import { receivedFinalWal, waitForCatchUp } from './switchover.js';
import { streamsAsReplica, topologyPrimary, TopologyPublisher } from './topology.js';
import { Watchdog } from './watchdog-ctl.js';

export interface DistributedDeps {
  name: string;
  config: DatabaseConfig;
  stateDir: string;
  baseDir: string;
  /** This instance, and every instance of the cluster (zones, the hosts PostgreSQL must trust). */
  instance: ClusterInstanceConfig;
  instances: readonly ClusterInstanceConfig[];
  lease: LeaderLease;
  kv: ClusterKV;
  events: EventBus;
  logger: Logger;
  clock: Clock;
  store: StateStore;
  metrics: ClusterMetricsSink;
}

interface NodeRt {
  spec: NodeSpec;
  instance: string;
  zone: string | undefined;
  obs: Observation | undefined;
  fails: number;
  lastOkAt: number;
  /** The last observation that answered (routing keeps to it through up to `fall` unanswered rounds). */
  lastGood: Observation | undefined;
  /** Last time this instance saw the node's WAL receiver streaming (a replica, not just a clone). */
  lastStreamingAt: number;
  /** Only for nodes beside this instance. */
  local: { ctl: NodeActions; watchdog: Watchdog } | undefined;
  /** An observation still under way (a dead host answers nothing: the loop does not wait for it). */
  inflight: Promise<void> | undefined;
}

/** A switchover asked of the cluster (db/<name>/switchover), done by the leader. */
interface SwitchoverRequest {
  id: string;
  to: string;
  at: number;
}

export class DistributedCluster {
  readonly name: string;
  readonly #d: DistributedDeps;
  readonly #nodes = new Map<string, NodeRt>();
  readonly #history: FailoverHistory;
  readonly #stateKey: string;
  readonly #topology: TopologyPublisher;
  #state: SharedDbState | undefined;
  #leaderExists = false;
  #holder: string | undefined;
  #sharedError: string | undefined;
  /** What each instance last said about the nodes beside it (db/<name>/members/<node>). */
  #members = new Map<string, Record<string, unknown>>();
  #restartTriedAt = 0;
  #timer: Timer | undefined;
  #stopped = false;
  #ticking = false;
  #busy = '';
  #lastDecision = '';
  #lastStateWrite = '';
  #syncNamedAtLsn: string | undefined;

  constructor(deps: DistributedDeps) {
    this.name = deps.name;
    this.#d = deps;
    this.#stateKey = `db/${deps.name}/state`;
    this.#history = new FailoverHistory({ database: deps.name, store: deps.store, events: deps.events, clock: deps.clock, metrics: deps.metrics, kv: deps.kv });
    this.#topology = new TopologyPublisher(deps.name, deps.events, deps.clock);
    const c = deps.config;
    for (const n of c.nodes) {
      const spec: NodeSpec = { name: n.name, host: n.host, port: n.port, dataDir: resolve(deps.baseDir, n.data_dir) };
      const instance = n.instance ?? deps.instance.name;
      const zone = n.zone ?? deps.instances.find((i) => i.name === instance)?.zone;
      let local: NodeRt['local'];
      if (instance === deps.instance.name) {
        const tools = { binDir: c.bin_dir, osUser: c.os_user, superuser: c.superuser, logFile: join(deps.stateDir, 'failover', deps.name, `${n.name}.log`) };
        local = { ctl: new PgCtl(spec, tools), watchdog: new Watchdog({ dir: join(deps.stateDir, 'failover', deps.name, 'watchdog'), node: spec, tools }) };
      }
      this.#nodes.set(n.name, { spec, instance, zone, obs: undefined, fails: 0, lastOkAt: 0, lastGood: undefined, lastStreamingAt: 0, local, inflight: undefined });
    }
    // Self-fencing: the moment this instance stops trusting its lease, a primary beside it stops
    // taking writes — before the lease can expire at etcd and be granted to another node.
    deps.lease.onLost((reason) => {
      for (const n of this.#localNodes()) {
        if (n.local && (n.spec.name === this.#state?.primary || n.obs?.inRecovery === false)) this.#fence(n, `leader lease lost (${reason})`);
      }
    });
  }

  // ---------------------------------------------------------------- lifecycle

  start(): Promise<void> {
    this.#schedule(0);
    return Promise.resolve();
  }

  /**
   * Graceful stop: nothing is stopped or fenced. A primary beside this instance keeps serving;
   * the lease is abandoned, not released, so it stays ours until the TTL runs out: a restart
   * within it adopts the lease (no failover), and if none comes, the watchdog fences the primary
   * at the trusted-until deadline, before etcd can give the lease to a standby.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timer?.cancel();
    while (this.#ticking) await this.#d.clock.sleep(20);
    if (this.#d.lease.isHeld()) {
      const until = this.#d.lease.trustedUntil();
      for (const n of this.#localNodes()) if (n.local && n.spec.name === this.#state?.primary && until !== undefined) n.local.watchdog.arm(until);
      this.#d.lease.abandon();
    } else {
      await this.#d.lease.release();
    }
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = this.#d.clock.setTimeout(() => void this.#tick(), ms);
  }

  #localNodes(): NodeRt[] {
    return [...this.#nodes.values()].filter((n) => n.local !== undefined);
  }

  // ---------------------------------------------------------------- the loop

  async #tick(): Promise<void> {
    if (this.#stopped || this.#ticking) return;
    this.#ticking = true;
    try {
      await this.#observeAll();
      await this.#readShared();
      if (this.#d.lease.isHeld()) await this.#lead();
      else await this.#notLeading();
      this.#feedWatchdogs();
      this.#publish();
      await this.#publishLocal();
    } catch (err) {
      this.#d.logger.error({ database: this.name, err: describeError(err) }, 'cluster loop error');
    } finally {
      this.#ticking = false;
      this.#schedule(this.#inDoubt() ? Math.min(100, this.#d.config.probe_interval) : this.#d.config.probe_interval);
    }
  }

  /**
   * Not leading, and the recorded primary did not answer this round: its lease may expire any
   * moment, so look again soon (the observations themselves keep their own pace: an unanswered
   * one is not started twice).
   */
  #inDoubt(): boolean {
    const p = this.#state?.primary ? this.#nodes.get(this.#state.primary) : undefined;
    return !this.#d.lease.isHeld() && p !== undefined && p.local === undefined && p.obs?.ok !== true;
  }

  #target(n: NodeRt): ObserveTarget {
    return targetOf(n.spec, this.#d.config.superuser);
  }

  /**
   * Observes every node at once. The loop waits for the answers only briefly: a node whose host
   * died answers nothing until the observation's own timeout, and waiting for it would slow every
   * decision (the first failover measured in the lab spent a second per round on the dead node).
   * A node that has not answered by then counts as a failed observation this round.
   */
  async #observeAll(): Promise<void> {
    const timeout = observeTimeout(this.#d.config.probe_interval, 1500);
    const clock = this.#d.clock;
    const settle = (n: NodeRt, o: Observation): void => {
      // "too many clients": the server is alive and answering, its connection slots are full (clients
      // piling up behind a commit that waits for its synchronous standby): not a failed observation,
      // or the leader would fence a healthy primary because of its own clients (seen in the lab)
      if (!o.ok && /too many clients|connection slots are reserved/i.test(o.error ?? '') && n.lastGood) {
        n.obs = { ...n.lastGood, at: o.at };
        return;
      }
      n.obs = o;
      n.fails = o.ok ? 0 : n.fails + 1;
      if (o.ok) {
        n.lastOkAt = o.at;
        n.lastGood = o;
      }
      if (o.ok && o.inRecovery && o.receiverStatus === 'streaming') n.lastStreamingAt = o.at;
    };
    const pending: NodeRt[] = [];
    for (const n of this.#nodes.values()) {
      if (n.local !== undefined && n.local.ctl.postmasterPid() === undefined) {
        settle(n, { ok: false, error: 'postmaster not running', at: clock.now() });
        continue;
      }
      if (!n.inflight) {
        n.inflight = observe(this.#target(n), timeout, () => clock.now()).then((o) => {
          n.inflight = undefined;
          settle(n, o);
        });
      }
      pending.push(n);
    }
    // the nodes beside this instance are waited for (their observation's own timeout): a slow answer
    // from a loaded local primary must not count as a failure and fence it
    await Promise.all(pending.filter((n) => n.local).map((n) => n.inflight));
    const wait = Math.min(300, Math.max(50, Math.floor(this.#d.config.probe_interval * 0.6)));
    let timer: Timer | undefined;
    await Promise.race([Promise.all(pending.map((n) => n.inflight)), new Promise<void>((r) => (timer = clock.setTimeout(r, wait)))]);
    timer?.cancel();
    for (const n of pending) if (n.inflight) settle(n, { ok: false, error: `no answer within ${wait} ms`, at: clock.now() });
    const p = this.#state?.primary ? this.#nodes.get(this.#state.primary) : undefined;
    for (const n of this.#nodes.values()) {
      this.#d.metrics.role(this.name, n.spec.name, this.#roleOf(n));
      this.#d.metrics.lag(this.name, n.spec.name, n === p ? 0 : p?.obs?.ok && n.obs?.ok ? lagBytes(p.obs.lsn, n.obs.lsn) : undefined);
    }
  }

  async #readShared(): Promise<void> {
    try {
      const [text, holder, members] = await Promise.all([this.#d.kv.get(this.#stateKey), this.#d.lease.holder(), this.#d.kv.list(`db/${this.name}/members/`)]);
      this.#state = text ? { ...emptyState(), ...(JSON.parse(text) as Partial<SharedDbState>) } : undefined;
      this.#members = new Map([...members].map(([k, v]) => [k.slice(k.lastIndexOf('/') + 1), JSON.parse(v) as Record<string, unknown>]));
      this.#holder = holder;
      this.#leaderExists = holder !== undefined;
      this.#sharedError = undefined;
    } catch (err) {
      // etcd unreachable from here: keep the last view; nothing is decided on it (no lease can be taken either)
      const msg = describeError(err);
      if (msg !== this.#sharedError) this.#d.logger.warn({ database: this.name, err: msg }, 'cannot read the shared cluster state; acting on nothing until etcd answers');
      this.#sharedError = msg;
    }
  }

  #facts(n: NodeRt): LocalNodeFacts {
    const ctl = n.local?.ctl as NodeActions;
    return { node: n.spec.name, initialized: ctl.initialized(), standbyConfigured: ctl.isStandbyConfigured() || ctl.isMarkedFenced(), running: ctl.postmasterPid() !== undefined, primary: n.obs?.ok === true && n.obs.inRecovery === false };
  }

  #views(): NodeView[] {
    const now = this.#d.clock.now();
    const recent = this.#d.config.probe_interval * 4 + 20_000;
    return [...this.#nodes.values()].map((n) => {
      const warm = this.#warmView(n);
      if (warm) return warm;
      return {
        node: n.spec.name,
        reachable: n.obs?.ok === true,
        inRecovery: n.obs?.ok ? n.obs.inRecovery : undefined,
        lsn: n.obs?.ok ? n.obs.lsn : undefined,
        // streaming as this instance saw it, or as the leader last reported it (this instance may have restarted since)
        streamed: (n.lastStreamingAt > 0 && now - n.lastStreamingAt < recent) || this.#state?.replicas[n.spec.name]?.state === 'streaming',
      };
    });
  }

  /**
   * A warm standby (hot_standby = off) refuses every connection, so it cannot be observed over SQL:
   * it counts as a running standby when the instance beside it says its postmaster runs, with the
   * WAL the primary last reported for it (shared state). Undefined for nodes observed over SQL.
   */
  #warmView(n: NodeRt): NodeView | undefined {
    if (this.#d.config.standby !== 'warm' || n.obs?.ok) return undefined;
    const now = this.#d.clock.now();
    const fresh = this.#d.config.probe_interval * 4 + 5000;
    const f = this.#members.get(n.spec.name);
    const running = n.local ? n.local.ctl.postmasterPid() !== undefined && !n.local.ctl.isMarkedFenced() : f?.['running'] === true && f['fenced'] !== true && now - Number(f['at'] ?? 0) < fresh;
    if (!running || n.spec.name === this.#state?.primary) return undefined;
    const r = this.#state?.replicas[n.spec.name];
    return { node: n.spec.name, reachable: true, inRecovery: true, lsn: r?.flush_lsn, streamed: r?.state === 'streaming' && now - r.at < this.#d.config.probe_interval * 4 + 20_000 };
  }

  #decided(msg: string, level: 'info' | 'warn' = 'info'): void {
    if (msg === this.#lastDecision) return;
    this.#lastDecision = msg;
    this.#d.logger[level]({ database: this.name }, msg);
  }

  // ---------------------------------------------------------------- not leading: follow, or take the free lease

  async #notLeading(): Promise<void> {
    if (this.#sharedError) return;
    // a node beside us running as primary while someone else leads: fenced at once (never two primaries)
    if (this.#leaderExists && this.#holder !== this.#d.lease.identity) {
      for (const n of this.#localNodes()) await this.#follow(n);
      return;
    }
    // the lease is free (or still ours from before a restart, which only we can adopt)
    for (const n of this.#localNodes()) {
      const d = this.#mayTake(n);
      if (!d.take) {
        this.#decided(`${n.spec.name}: not taking the leader lease: ${d.reason}`);
        // a primary that may not lead must not take writes either
        if (n.obs?.ok && n.obs.inRecovery === false && this.#state?.primary !== n.spec.name && this.#state?.primary !== undefined) this.#fence(n, 'runs as a primary without the lease');
        continue;
      }
      let got = false;
      try {
        got = await this.#d.lease.acquire();
      } catch (err) {
        this.#decided(`cannot take the leader lease: ${describeError(err)}`, 'warn');
        return;
      }
      if (!got) return;
      this.#d.logger.warn({ database: this.name, node: n.spec.name, as: d.as, reason: d.reason }, 'took the leader lease');
      this.#holder = this.#d.lease.identity;
      this.#leaderExists = true;
      // a primary adopted after a restart is guarded at once (its watchdog still holds the old process's deadline)
      const until = this.#d.lease.trustedUntil();
      if (d.as === 'adopt' && until !== undefined) n.local?.watchdog.arm(until);
      await this.#becomeLeader(n, d.as, d.reason);
      return;
    }
  }

  #mayTake(n: NodeRt): ReturnType<typeof mayTakeFreeLease> {
    return mayTakeFreeLease({ me: this.#facts(n), nodes: this.#d.config.nodes.map((x) => x.name), state: this.#state, views: this.#views(), synchronous: this.#d.config.synchronous, maxLagBytes: this.#d.config.max_lag_on_failover, now: this.#d.clock.now() });
  }

  async #follow(n: NodeRt): Promise<void> {
    const local = n.local as NonNullable<NodeRt['local']>;
    if (local.watchdog.armed() && this.#state?.primary !== n.spec.name) local.watchdog.disarm();
    const pName = this.#state?.primary;
    const p = pName ? this.#nodes.get(pName) : undefined;
    const follows = local.ctl.followsAddress();
    const action = followAction({
      me: this.#facts(n),
      following: follows ? [...this.#nodes.values()].find((x) => `${x.spec.host}:${x.spec.port}` === follows)?.spec.name : undefined,
      fenced: local.ctl.isMarkedFenced(),
      state: this.#state,
      leaderExists: this.#leaderExists,
      primaryReachable: p?.obs?.ok === true && p.obs.inRecovery === false,
    });
    if (action.do === 'nothing') return;
    if (action.do === 'fence') {
      this.#fence(n, action.reason);
      return;
    }
    const primary = this.#nodes.get(action.primary) as NodeRt;
    this.#busy = `${action.do} ${n.spec.name}`;
    this.#d.logger.info({ database: this.name, node: n.spec.name, primary: primary.spec.name, action: action.do, reason: action.reason }, 'bringing the node beside this instance in line');
    try {
      switch (action.do) {
        case 'clone':
          await local.ctl.clone(primary.spec);
          n.lastStreamingAt = 0;
          await local.ctl.start();
          break;
        case 'rewind': {
          await rewindOrClone({ logger: this.#d.logger, database: this.name }, { name: n.spec.name, ctl: local.ctl }, { spec: primary.spec, target: this.#target(primary) });
          local.ctl.clearFenced();
          n.lastStreamingAt = 0;
          await local.ctl.start();
          this.#history.audit('db.rejoin', `${this.name}/${n.spec.name}`, `${n.spec.name} rejoined as a standby of ${primary.spec.name} (${action.reason})`);
          break;
        }
        case 'start':
          local.ctl.configureStandby(primary.spec);
          await local.ctl.start();
          break;
        case 'repoint':
          local.ctl.configureStandby(primary.spec);
          await local.ctl.reload();
          break;
      }
    } catch (err) {
      this.#d.logger.error({ database: this.name, node: n.spec.name, action: action.do, err: describeError(err) }, 'could not bring the node in line; retrying');
    } finally {
      this.#busy = '';
    }
  }

  /** Fences a node beside this instance: every process in its data directory killed, standby.signal and the fence marker written. */
  #fence(n: NodeRt, why: string): void {
    const local = n.local;
    if (!local) return;
    const killed = local.ctl.fence();
    local.ctl.markFenced(why);
    local.watchdog.disarm();
    n.obs = { ok: false, error: 'fenced', at: this.#d.clock.now() };
    this.#d.logger.error({ database: this.name, node: n.spec.name, killed, why }, 'fenced the node beside this instance');
    this.#history.audit('db.fence', `${this.name}/${n.spec.name}`, `fenced ${n.spec.name}: ${why}`);
  }

  // ---------------------------------------------------------------- leading

  #allowedHosts(): string[] {
    const hosts = new Set<string>();
    for (const n of this.#nodes.values()) hosts.add(n.spec.host);
    for (const i of this.#d.instances) {
      const hp = parseHostPort(i.api);
      if (hp) hosts.add(hp.host);
    }
    return [...hosts].filter((h) => !isLoopbackHost(h) && h !== '0.0.0.0');
  }

  async #becomeLeader(n: NodeRt, as: 'bootstrap' | 'adopt' | 'restart' | 'takeover' | 'handover', reason: string): Promise<void> {
    const local = n.local as NonNullable<NodeRt['local']>;
    const c = this.#d.config;
    const clock = this.#d.clock;
    const old = this.#state?.primary;
    const startedAt = clock.now();
    const lastOk = old ? (this.#nodes.get(old)?.lastOkAt ?? startedAt) : startedAt;
    this.#busy = as;
    try {
      if (as === 'bootstrap' && !local.ctl.initialized()) {
        this.#d.logger.info({ database: this.name, node: n.spec.name }, 'initdb (fresh cluster)');
        await local.ctl.initdb(c.settings, c.standby === 'hot');
        local.ctl.allowHosts(this.#allowedHosts(), c.hba);
      }
      if (as === 'adopt' && !(local.ctl.postmasterPid() !== undefined && !local.ctl.isStandbyConfigured() && !local.ctl.isMarkedFenced())) {
        // the primary we came to adopt stopped (its watchdog fenced it) between the decision and the lease: never start it here
        throw new BulwarkError('BULWARK_DB_NO_PRIMARY', `${n.spec.name} stopped running as a primary before it could be adopted`);
      }
      if (as === 'bootstrap' || as === 'restart') {
        if (local.ctl.postmasterPid() === undefined) await local.ctl.start();
      }
      if (as === 'takeover' || as === 'handover') {
        // synchronous mode: the standby this node will require is named before the promotion, so
        // that no commit after it is acknowledged without a synchronous copy (set after it, the
        // checkpointer, busy with the end-of-recovery checkpoint, applied it seconds late in the lab)
        const next = this.#syncCandidate(n, old);
        if (c.synchronous) {
          await local.ctl.setSyncNamesOffline(syncNamesFor(next));
          await clock.sleep(200); // the checkpointer applies the reload (it is idle during recovery)
        }
        if (!this.#d.lease.isHeld()) throw new BulwarkError('BULWARK_COORD_LEASE_LOST', 'lost the leader lease before promotion: not promoting');
        const promoteAt = clock.now();
        await local.ctl.promote();
        local.ctl.clearFenced();
        const promotedAt = clock.now();
        // route to it at once (this round's observation still saw a standby)
        n.obs = { ok: true, inRecovery: false, lsn: n.obs?.ok ? n.obs.lsn : undefined, at: promotedAt };
        n.lastGood = n.obs;
        n.fails = 0;
        const state: SharedDbState = {
          ...(this.#state ?? emptyState()),
          primary: n.spec.name,
          epoch: (this.#state?.epoch ?? 0) + 1,
          primary_lsn: undefined,
          // the new primary has acknowledged nothing yet: the standby it names is safe at once
          sync_nodes: c.synchronous && next ? [next] : [],
          sync_named: undefined,
          ran_async: false,
          writes: 'open',
          blocked_reason: undefined,
          handover_to: undefined,
          leader: this.#d.instance.name,
          updated_at: clock.now(),
        };
        this.#state = state;
        if (c.synchronous) await this.#setSyncNames(n, next);
        await this.#writeState();
        const rec: FailoverRecord = {
          kind: as === 'handover' ? 'switchover' : 'failover',
          old_primary: old,
          new_primary: n.spec.name,
          started_at: startedAt,
          finished_at: promotedAt,
          ok: true,
          detect_ms: startedAt - lastOk,
          promote_ms: promotedAt - promoteAt,
          write_downtime_ms: undefined,
          message: `${as === 'handover' ? 'planned switchover' : `primary ${old ?? '?'} lost`}; ${n.spec.name} (instance ${this.#d.instance.name}) promoted: ${reason}`,
          instance: this.#d.instance.name,
        };
        const id = this.#history.record(rec);
        void this.#measureWrites(n, as === 'handover' ? (this.#state.updated_at || startedAt) : lastOk, id, rec);
        return;
      }
      const state: SharedDbState = { ...(this.#state ?? emptyState()), primary: n.spec.name, epoch: old === n.spec.name ? (this.#state?.epoch ?? 1) : (this.#state?.epoch ?? 0) + 1, writes: 'open', blocked_reason: undefined, leader: this.#d.instance.name, updated_at: clock.now() };
      if (as === 'bootstrap' && c.synchronous && state.sync_nodes.length === 0) {
        // a fresh cluster has acknowledged nothing: the first standby is safe at once
        const first = c.nodes.find((x) => x.name !== n.spec.name)?.name;
        state.sync_nodes = first ? [first] : [];
        this.#state = state;
        await this.#setSyncNames(n, first);
      }
      this.#state = state;
      await this.#writeState();
      this.#history.audit(`db.${as}`, `${this.name}/${n.spec.name}`, `${n.spec.name} leads (${as}: ${reason})`);
    } catch (err) {
      this.#d.logger.error({ database: this.name, node: n.spec.name, as, err: describeError(err) }, 'could not act as leader: giving the lease up');
      if (as === 'takeover' || as === 'handover') this.#history.record({ kind: as === 'handover' ? 'switchover' : 'failover', old_primary: old, new_primary: n.spec.name, started_at: startedAt, finished_at: clock.now(), ok: false, detect_ms: startedAt - lastOk, promote_ms: undefined, write_downtime_ms: undefined, message: `promotion of ${n.spec.name} failed: ${describeError(err)}`, instance: this.#d.instance.name });
      await this.#d.lease.release();
    } finally {
      this.#busy = '';
    }
  }

  /** The standby a new primary names synchronous: a streaming one, else the former primary (which will rejoin). */
  #syncCandidate(p: NodeRt, old: string | undefined): string | undefined {
    // a standby seen in recovery lately (one slow answer must not make the unreachable old primary
    // the synchronous standby: every commit would then wait until it rejoins)
    const streaming = [...this.#nodes.values()].filter((x) => x !== p && x.spec.name !== old && (x.obs?.ok ? x.obs.inRecovery : x.fails < this.#d.config.fall && x.lastGood?.inRecovery));
    return streaming[0]?.spec.name ?? old ?? [...this.#nodes.values()].find((x) => x !== p)?.spec.name;
  }

  async #lead(): Promise<void> {
    const c = this.#d.config;
    const s = this.#state;
    const p = s?.primary ? this.#nodes.get(s.primary) : undefined;
    if (!s || !p?.local) {
      // we hold the lease but our node is not the primary (a handover, or the state was lost): act as if it were free
      await this.#notLeadingAsHolder();
      return;
    }
    const down = p.local.ctl.postmasterPid() === undefined || p.fails >= c.fall || (p.obs?.ok === true && p.obs.inRecovery === true);
    if (down) {
      const reason = p.local.ctl.postmasterPid() === undefined ? 'postmaster process gone' : p.obs?.ok ? 'primary is in recovery' : `${p.fails} failed observations (${p.obs?.error ?? 'no answer'})`;
      const now = this.#d.clock.now();
      if (!(p.obs?.ok === true && p.obs.inRecovery === true) && now - this.#restartTriedAt > 30_000 && !p.local.ctl.isStandbyConfigured()) {
        // a crashed postmaster on a live host: crash recovery in place loses nothing and keeps the lease (Patroni does the same)
        this.#restartTriedAt = now;
        this.#state = { ...s, writes: 'blocked', blocked_reason: `primary ${p.spec.name} restarting in place (${reason})`, updated_at: now };
        await this.#writeState();
        this.#publish();
        try {
          p.local.ctl.killAll();
          await p.local.ctl.start();
          p.fails = 0;
          this.#history.audit('db.restart', `${this.name}/${p.spec.name}`, `restarted the primary ${p.spec.name} in place after: ${reason}`);
          return;
        } catch (err) {
          this.#d.logger.error({ database: this.name, node: p.spec.name, err: describeError(err) }, 'restarting the primary in place failed: handing over to a standby');
        }
      }
      // our primary cannot come back here: fence what is left of it and give the lease up, so the best standby takes over
      this.#fence(p, `primary lost: ${reason}`);
      this.#state = { ...s, writes: 'blocked', blocked_reason: `primary ${p.spec.name} lost (${reason}); a standby takes over`, updated_at: this.#d.clock.now() };
      await this.#writeState();
      await this.#d.lease.release();
      return;
    }
    if (!p.obs?.ok) return; // one failed observation: wait for `fall`
    await this.#handleSwitchover(p);
    if (!this.#d.lease.isHeld()) return;
    await this.#maintainSync(p);
    const now = this.#d.clock.now();
    const replicas = Object.fromEntries((p.obs.replicas ?? []).map((r) => [r.name, { flush_lsn: r.flushLsn, state: r.state, at: now }]));
    this.#state = { ...(this.#state as SharedDbState), primary_lsn: p.obs.lsn, replicas, writes: 'open', blocked_reason: undefined, leader: this.#d.instance.name, updated_at: now };
    await this.#writeState();
  }

  /** We hold the lease without our node being the recorded primary (a handover to us in flight, or a restart): decide as for a free lease. */
  async #notLeadingAsHolder(): Promise<void> {
    for (const n of this.#localNodes()) {
      const d = this.#mayTake(n);
      if (d.take) {
        await this.#becomeLeader(n, d.as, d.reason);
        return;
      }
    }
    this.#decided('holding the leader lease without a node that may lead: giving it up', 'warn');
    await this.#d.lease.release();
  }

  async #maintainSync(p: NodeRt): Promise<void> {
    const c = this.#d.config;
    const s = this.#state as SharedDbState;
    if (!c.synchronous) {
      if (s.sync_nodes.length || !s.ran_async) this.#state = { ...s, sync_nodes: [], ran_async: true };
      return;
    }
    const named = s.sync_named;
    const plan = planFromReplicas({ noSyncStandby: c.no_sync_standby, named, namedAtLsn: this.#syncNamedAtLsn, replicas: p.obs?.replicas ?? [], standbys: c.nodes.map((n) => n.name).filter((n) => n !== p.spec.name) }, s.sync_nodes);
    if (plan.name !== named || p.obs?.syncNames !== syncNamesFor(plan.name)) await this.#setSyncNames(p, plan.name);
    this.#state = { ...(this.#state as SharedDbState), sync_nodes: plan.syncNodes, ran_async: plan.async };
  }

  async #setSyncNames(p: NodeRt, name: string | undefined): Promise<void> {
    await applySyncNames({ logger: this.#d.logger, database: this.name }, { name: p.spec.name, target: this.#target(p) }, name);
    this.#syncNamedAtLsn = p.obs?.lsn;
    if (this.#state) this.#state = { ...this.#state, sync_named: name };
  }

  /** Writes the shared state, only while this instance holds the lease (an etcd transaction on the lease key). */
  async #writeState(): Promise<void> {
    const s = this.#state;
    if (!s) return;
    const { updated_at: _u, ...rest } = s;
    const key = JSON.stringify(rest);
    // unchanged state is rewritten at most once a second (readers see the leader is alive by the lease, not by this)
    if (key === this.#lastStateWrite && this.#d.clock.now() - (this.#lastWriteAt ?? 0) < 1000) return;
    const ok = await this.#d.kv.putIfHolder(this.#d.lease, this.#stateKey, JSON.stringify(s)).catch((err: unknown) => {
      this.#decided(`cannot write the shared state: ${describeError(err)}`, 'warn');
      return false;
    });
    if (ok) {
      this.#lastStateWrite = key;
      this.#lastWriteAt = this.#d.clock.now();
    }
  }

  #lastWriteAt: number | undefined;

  #feedWatchdogs(): void {
    const until = this.#d.lease.trustedUntil();
    for (const n of this.#localNodes()) {
      const local = n.local as NonNullable<NodeRt['local']>;
      const isPrimary = n.obs?.ok === true && n.obs.inRecovery === false;
      if (until !== undefined && isPrimary && this.#state?.primary === n.spec.name) local.watchdog.arm(until);
      else if (!isPrimary && local.watchdog.armed() && local.ctl.postmasterPid() === undefined) local.watchdog.disarm();
    }
  }

  // ---------------------------------------------------------------- switchover

  async #handleSwitchover(p: NodeRt): Promise<void> {
    let req: SwitchoverRequest | undefined;
    try {
      const text = await this.#d.kv.get(`db/${this.name}/switchover`);
      req = text ? (JSON.parse(text) as SwitchoverRequest) : undefined;
    } catch {
      return;
    }
    if (!req) return;
    const done = async (ok: boolean, message: string): Promise<void> => {
      await this.#d.kv.put(`db/${this.name}/switchover-result/${req.id}`, JSON.stringify({ ok, message, at: this.#d.clock.now() })).catch(() => undefined);
      await this.#d.kv.delete(`db/${this.name}/switchover`).catch(() => undefined);
    };
    const target = this.#nodes.get(req.to);
    if (!target || target === p) return done(false, target ? `${req.to} is already the primary` : `no node named ${req.to}`);
    const local = p.local as NonNullable<NodeRt['local']>;
    const clock = this.#d.clock;
    const c = this.#d.config;
    this.#busy = `switchover to ${req.to}`;
    try {
      // 1. wait for the target to catch up while writes still flow
      if (await waitForCatchUp(clock, this.#target(p), { name: req.to, target: this.#target(target) }, c.switchover_timeout)) return done(false, `${req.to} did not catch up within ${c.switchover_timeout} ms`);
      // 2. block writes everywhere, stop our primary cleanly (its WAL senders ship everything)
      this.#state = { ...(this.#state as SharedDbState), writes: 'blocked', blocked_reason: `switchover to ${req.to}`, updated_at: clock.now() };
      await this.#writeState();
      this.#publish();
      await local.ctl.stop('fast');
      const finalLsn = await local.ctl.checkpointLsn();
      // 3. the target must have received the final record
      const caught = await receivedFinalWal(clock, this.#target(target), finalLsn);
      if (!caught || !this.#d.lease.isHeld()) {
        await local.ctl.start();
        this.#state = { ...(this.#state as SharedDbState), writes: 'open', blocked_reason: undefined };
        await this.#writeState();
        return done(false, `${req.to} did not receive the final WAL (${finalLsn ?? '?'}); ${p.spec.name} was restarted as the primary`);
      }
      // 4. hand the lease over: our node becomes the target's standby (a clean shutdown needs no rewind)
      local.ctl.configureStandby(target.spec);
      local.watchdog.disarm();
      this.#state = { ...(this.#state as SharedDbState), handover_to: req.to, updated_at: clock.now() };
      await this.#writeState();
      await this.#d.lease.release();
      await done(true, `handed over to ${req.to} at ${finalLsn ?? '?'}`);
    } finally {
      this.#busy = '';
    }
  }

  /** Planned switchover, asked of any instance: the leader does it; this waits until the target leads. */
  async switchover(to: string): Promise<FailoverRecord | Record<string, unknown>> {
    if (!this.#nodes.has(to)) throw new BulwarkError('BULWARK_DB_UNKNOWN', `database ${this.name} has no node named '${to}'`, { hint: `use one of: ${[...this.#nodes.keys()].join(', ')}`, httpStatus: 404 });
    if (this.#state?.primary === to) throw new BulwarkError('BULWARK_DB_SWITCHOVER', `${to} is already the primary of ${this.name}`);
    const clock = this.#d.clock;
    const id = `${clock.now()}-${this.#d.instance.name}`;
    await this.#d.kv.put(`db/${this.name}/switchover`, JSON.stringify({ id, to, at: clock.now() } satisfies SwitchoverRequest));
    const deadline = clock.now() + this.#d.config.switchover_timeout + 20_000;
    while (clock.now() < deadline) {
      await clock.sleep(200);
      const r = await this.#d.kv.get(`db/${this.name}/switchover-result/${id}`).catch(() => undefined);
      if (r) {
        const res = JSON.parse(r) as { ok: boolean; message: string };
        if (!res.ok) throw new BulwarkError('BULWARK_DB_SWITCHOVER', `switchover of ${this.name} to ${to} failed: ${res.message}`, { hint: 'check `bulwark db status`; the target must be a streaming standby' });
      }
      if (this.#state?.primary === to && this.#state.writes === 'open') {
        const last = (await this.#history.list(5)).find((x) => (x as FailoverRecord).kind === 'switchover' && (x as FailoverRecord).new_primary === to);
        return (last as FailoverRecord | undefined) ?? { ok: true, new_primary: to };
      }
    }
    throw new BulwarkError('BULWARK_DB_SWITCHOVER', `switchover of ${this.name} to ${to} did not finish in time`, { hint: 'check `bulwark db status` on any instance' });
  }

  /** Commits a transaction with an xid on the new primary; the time it succeeds ends the write downtime. */
  #measureWrites(target: NodeRt, since: number, id: number, rec: FailoverRecord): Promise<void> {
    const probe = { database: this.name, clock: this.#d.clock, logger: this.#d.logger, history: this.#history };
    return measureWrites(probe, { name: target.spec.name, target: this.#target(target) }, since, id, rec, () => !this.#stopped && this.#state?.primary === target.spec.name);
  }

  // ---------------------------------------------------------------- routing and status

  #writable(): NodeRt | undefined {
    const s = this.#state;
    const p = s?.primary ? this.#nodes.get(s.primary) : undefined;
    if (!s || !p || s.writes !== 'open' || !this.#leaderExists || s.handover_to !== undefined) return undefined;
    // one slow answer on a loaded machine must not cut every client off the primary: keep routing
    // through up to `fall` unanswered rounds (a postmaster gone beside us ends it at once)
    if (p.local && p.local.ctl.postmasterPid() === undefined) return undefined;
    if (p.obs?.ok) return p.obs.inRecovery === false ? p : undefined;
    return p.fails < this.#d.config.fall && p.lastGood?.inRecovery === false ? p : undefined;
  }

  #publish(): void {
    const p = this.#writable();
    const zone = this.#d.instance.zone;
    let replicas = this.#d.config.standby === 'hot' ? [...this.#nodes.values()].filter((n) => n !== p && streamsAsReplica(n.obs)) : [];
    // reads prefer standbys in this instance's zone while it has one
    const near = zone === undefined ? [] : replicas.filter((n) => n.zone === zone);
    if (near.length > 0) replicas = near;
    const rs = replicas.map((n) => ({ node: n.spec.name, address: addressOf(n.spec), lag_bytes: p?.obs?.ok && n.obs?.ok ? (lagBytes(p.obs.lsn, n.obs.lsn) ?? 0) : 0 }));
    this.#topology.publish(p ? topologyPrimary(p.spec) : undefined, rs);
  }

  /** This instance's facts about the nodes beside it, for every instance's status (db/<name>/members/<node>). */
  async #publishLocal(): Promise<void> {
    for (const n of this.#localNodes()) {
      const ctl = (n.local as NonNullable<NodeRt['local']>).ctl;
      const facts = { node: n.spec.name, instance: this.#d.instance.name, zone: n.zone, running: ctl.postmasterPid() !== undefined, initialized: ctl.initialized(), fenced: ctl.isMarkedFenced(), watchdog: (n.local as NonNullable<NodeRt['local']>).watchdog.armed(), follows: ctl.followsAddress(), busy: this.#busy || undefined, at: this.#d.clock.now() };
      await this.#d.kv.putEphemeral(`db/${this.name}/members/${n.spec.name}`, JSON.stringify(facts)).catch(() => undefined);
    }
  }

  #roleOf(n: NodeRt): NodeRole {
    if (n.local?.ctl.isMarkedFenced()) return 'fenced';
    if (n.local && n.local.ctl.postmasterPid() === undefined) return 'down';
    if (this.#warmView(n)) return 'standby';
    if (!n.obs?.ok) return n.spec.name === this.#state?.primary ? 'unknown' : 'down';
    return n.obs.inRecovery ? 'standby' : 'primary';
  }

  get primary(): string | undefined {
    return this.#state?.primary;
  }

  status(): Record<string, unknown> & { nodes: Array<Record<string, unknown>> } {
    const s = this.#state;
    const p = s?.primary ? this.#nodes.get(s.primary) : undefined;
    const open = this.#writable() !== undefined;
    return {
      database: this.name,
      cluster_mode: true,
      instance: this.#d.instance.name,
      leader: this.#d.lease.isHeld(),
      leader_instance: this.#holder,
      primary: s?.primary,
      epoch: s?.epoch,
      synchronous: this.#d.config.synchronous,
      sync_standbys: s?.sync_nodes ?? [],
      writes: open ? 'open' : 'blocked',
      blocked_reason: open ? undefined : (this.#sharedError ?? s?.blocked_reason ?? (this.#leaderExists ? undefined : 'no instance holds the leader lease')),
      busy: this.#busy,
      nodes: [...this.#nodes.values()].map((n) => {
        const f = this.#members.get(n.spec.name);
        return {
          database: this.name,
          node: n.spec.name,
          instance: n.instance,
          zone: n.zone,
          address: addressOf(n.spec),
          role: !n.local && f?.['fenced'] === true && !n.obs?.ok ? 'fenced' : this.#roleOf(n),
          lsn: n.obs?.ok ? n.obs.lsn : undefined,
          lag_bytes: n === p ? 0 : p?.obs?.ok && n.obs?.ok ? lagBytes(p.obs.lsn, n.obs.lsn) : undefined,
          sync: syncMark(n.spec.name, s?.sync_named, s?.sync_nodes ?? []),
          timeline: n.obs?.ok ? n.obs.timeline : undefined,
          streaming: n.obs?.ok && n.obs.inRecovery ? (n.obs.receiverStatus === 'streaming' ? 'yes' : 'no') : this.#warmView(n) ? (this.#warmView(n)?.streamed ? 'yes' : 'no') : '',
          member: f ? (n.local ? 'this instance' : 'reporting') : n.local ? 'this instance' : 'silent',
          error: n.obs?.ok === false ? n.obs.error : undefined,
        };
      }),
      last_failover: this.#history.last,
    };
  }

  history(limit = 20): Promise<unknown[]> {
    return this.#history.list(limit);
  }

  baseBackup(): Promise<never> {
    return Promise.reject(new BulwarkError('BULWARK_DB_COLD_CONFIG', `database ${this.name}: base backups for cold standby are not available in cluster mode yet`));
  }

  rejoin(): Promise<never> {
    return Promise.reject(new BulwarkError('BULWARK_DB_NOT_LEADER', `in cluster mode each instance rejoins the nodes beside it by itself (database ${this.name})`));
  }
}
