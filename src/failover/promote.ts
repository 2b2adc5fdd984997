// Owns the single-host engine's failover with hot or warm standbys: block writes, choose the
// standby that may be promoted (decide.ts), fence the old primary, promote under the lease, name
// the synchronous standby, repoint the other standbys and route writes to the new primary; when no
// standby may be promoted, restart the old primary in place. Also fencing a second primary.
import { describeError } from '../core/errors.js';
import { chooseCandidate } from './decide.js';
import type { FailoverRecord } from './records.js';
import type { ClusterNode, ClusterState } from './state.js';
import { publishTopology } from './status.js';

/** A standby's received WAL: its own report, or the primary's last view of it (warm standbys take no connections). */
function receivedLsn(n: ClusterNode, lastReplicas: Map<string, string>): string | undefined {
  if (n.obs?.ok && n.obs.inRecovery) return n.obs.lsn ?? n.obs.replayLsn;
  return lastReplicas.get(n.spec.name);
}

/** Repoints every other live standby at the new primary, then routes writes to it (publishes the topology). */
export async function adoptPrimary(s: ClusterState, target: ClusterNode, old: ClusterNode): Promise<void> {
  for (const n of s.nodes.values()) {
    if (n === target || n === old || s.fenced.has(n.spec.name)) continue;
    n.ctl.configureStandby(target.spec);
    await n.ctl.reload().catch((err) => s.d.logger.warn({ database: s.name, node: n.spec.name, err: describeError(err) }, 'repoint failed'));
  }
  s.sawPrimary(target);
  s.gate.open();
  s.gate.forget();
  publishTopology(s);
}

/** A node other than the primary runs out of recovery (someone started a fenced node by hand, without standby.signal): fenced. */
export function fenceSecondPrimaries(s: ClusterState, p: ClusterNode): void {
  for (const n of s.nodes.values()) {
    if (n === p || s.rejoining.has(n.spec.name)) continue;
    if (n.obs?.ok && n.obs.inRecovery === false) {
      s.d.logger.error({ database: s.name, node: n.spec.name }, 'a second primary is running: fencing it');
      s.fence(n);
      s.audit('db.fence', `${s.name}/${n.spec.name}`, `fenced ${n.spec.name}: it ran as a second primary`);
    }
  }
}

export async function failover(s: ClusterState, old: ClusterNode, reason: string): Promise<void> {
  const c = s.d.config;
  const clock = s.d.clock;
  const startedAt = clock.now();
  const lastOk = s.primaryLastOk || startedAt;
  s.gate.close();
  const candidates = [...s.nodes.values()]
    .filter((n) => n !== old && !s.fenced.has(n.spec.name) && !s.rejoining.has(n.spec.name))
    .map((n) => ({ node: n.spec.name, available: n.pidAlive && (n.obs?.ok ? n.obs.inRecovery === true : c.standby === 'warm'), receivedLsn: receivedLsn(n, s.lastReplicaFlush) }));
  const choice = chooseCandidate({ candidates, primaryLsn: s.primaryLastLsn, synchronous: c.synchronous, syncNodes: s.sync.safe, ranAsync: s.sync.ranAsync, maxLagBytes: c.max_lag_on_failover });
  if (!choice.node) {
    if (s.gate.reason !== choice.reason) {
      s.d.logger.error({ database: s.name, old: old.spec.name, reason: choice.reason }, 'primary lost and no standby may be promoted: writes blocked');
      s.audit('db.failover.blocked', s.name, `primary ${old.spec.name} lost (${reason}); no promotion: ${choice.reason}`);
    }
    s.gate.reason = choice.reason;
    // No other node was promoted, so the old primary is still the only one with every commit:
    // kill what is left of it (orphaned backends) and start it again as the primary.
    old.ctl.killAll();
    if (old.ctl.initialized() && !old.ctl.isStandbyConfigured() && !s.fenced.has(old.spec.name)) {
      try {
        await old.ctl.start();
        s.d.logger.warn({ database: s.name, node: old.spec.name }, 'restarted the old primary in place (no standby could be promoted)');
        s.audit('db.restart', `${s.name}/${old.spec.name}`, `restarted ${old.spec.name} as the primary: no standby could be promoted (${choice.reason})`);
        old.fails = 0;
        s.gate.open();
        s.gate.reason = undefined;
      } catch (err) {
        s.d.logger.error({ database: s.name, node: old.spec.name, err: describeError(err) }, 'restarting the old primary failed');
      }
    }
    return;
  }
  s.gate.reason = undefined;
  const target = s.node(choice.node);
  s.d.logger.warn({ database: s.name, old: old.spec.name, new: target.spec.name, reason, choice: choice.reason }, 'failover: promoting');
  // 1. fence the old primary: kill whatever still runs in its data dir, and make it start read-only
  s.fence(old);
  // 2. promote, only while holding the lease
  if (!s.d.lease.isHeld()) {
    s.d.logger.error({ database: s.name }, 'lease lost before promotion: not promoting');
    return;
  }
  const promoteAt = clock.now();
  try {
    await target.ctl.promote();
  } catch (err) {
    s.history.record({ kind: 'failover', old_primary: old.spec.name, new_primary: target.spec.name, started_at: startedAt, finished_at: clock.now(), ok: false, detect_ms: startedAt - lastOk, promote_ms: undefined, write_downtime_ms: undefined, message: `promotion failed: ${describeError(err)}` });
    throw err;
  }
  const promotedAt = clock.now();
  s.primary = target.spec.name;
  s.primaryLastLsn = undefined;
  s.lastReplicaFlush.clear();
  if (c.synchronous) {
    // the new primary has acknowledged nothing yet: the former primary (which will rejoin) or another standby becomes the synchronous one
    const next = [...s.nodes.values()].find((n) => n !== target && n !== old && n.obs?.ok && n.obs.receiverStatus === 'streaming')?.spec.name;
    s.sync.safe = next ? [] : [old.spec.name];
    s.sync.forgetNamed();
    if (next || c.no_sync_standby === 'block') await s.sync.name(s.syncPrimary(target), next ?? old.spec.name, s.primaryLastLsn);
    else {
      await s.sync.name(s.syncPrimary(target), undefined, s.primaryLastLsn);
      s.sync.ranAsync = true;
    }
  }
  s.persist();
  // 3. repoint the other standbys, 4. route writes to the new primary
  await adoptPrimary(s, target, old);
  const rec: FailoverRecord = {
    kind: 'failover',
    old_primary: old.spec.name,
    new_primary: target.spec.name,
    started_at: startedAt,
    finished_at: promotedAt,
    ok: true,
    detect_ms: startedAt - lastOk,
    promote_ms: promotedAt - promoteAt,
    write_downtime_ms: undefined,
    message: `${reason}; promoted ${target.spec.name}: ${choice.reason}`,
  };
  const id = s.history.record(rec);
  // 5. measure when writes work again (in synchronous mode with block, that is once a synchronous standby streams)
  void s.measureWrites(target, lastOk, id, rec);
}
