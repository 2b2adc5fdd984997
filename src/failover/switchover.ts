// Owns planned switchover: waiting (writes still flowing) until the target streams less than 1 MB
// behind, and, with writes blocked and the old primary stopped cleanly, until the target received
// its final checkpoint (both shared by the two engines); and the single-host engine's switchover
// (block, stop, check, promote, start the old primary as its standby, measure the write downtime).
import type { Clock } from '../core/clock.js';
import { BulwarkError } from '../core/errors.js';
import { lagBytes, parseLsn } from './decide.js';
import { commitProbe } from './downtime.js';
import { observe, type ObserveTarget } from './monitor.js';
import { adoptPrimary } from './promote.js';
import type { FailoverRecord } from './records.js';
import type { ClusterState } from './state.js';
import { publishTopology } from './status.js';

/** A standby counts as caught up under this many bytes of lag. */
const CAUGHT_UP_BYTES = 1024 * 1024;

/**
 * Waits until the target is a standby that the primary reports streaming less than 1 MB behind.
 * Returns undefined once it is, or what was last seen when timeoutMs passed.
 */
export async function waitForCatchUp(clock: Clock, primary: ObserveTarget, target: { name: string; target: ObserveTarget }, timeoutMs: number): Promise<{ streaming: boolean; lag: number | undefined } | undefined> {
  const deadline = clock.now() + timeoutMs;
  for (;;) {
    const po = await observe(primary, 2000, () => clock.now());
    const to = await observe(target.target, 2000, () => clock.now());
    const streaming = po.replicas?.find((r) => r.name === target.name && r.state === 'streaming');
    const lag = lagBytes(po.lsn, streaming?.flushLsn);
    if (po.ok && to.ok && to.inRecovery && streaming && lag !== undefined && lag < CAUGHT_UP_BYTES) return undefined;
    if (clock.now() > deadline) return { streaming: streaming !== undefined, lag };
    await clock.sleep(200);
  }
}

/** Whether the target received WAL past the stopped old primary's final checkpoint within 10 s. */
export async function receivedFinalWal(clock: Clock, target: ObserveTarget, finalLsn: string | undefined): Promise<boolean> {
  const until = clock.now() + 10_000;
  while (clock.now() < until) {
    const o = await observe(target, 2000, () => clock.now());
    if (o.ok && (parseLsn(o.lsn) ?? -1n) > (parseLsn(finalLsn) ?? 0n)) return true;
    await clock.sleep(50);
  }
  return false;
}

/** Planned switchover: wait for the target to catch up, then swap roles with writes blocked for about a second. */
export async function switchover(s: ClusterState, to: string): Promise<FailoverRecord> {
  const target = s.node(to);
  s.requireLeader('run the switchover against the instance holding the lease');
  return s.serial('switchover', async () => {
    const c = s.d.config;
    const clock = s.d.clock;
    const old = s.primaryNode();
    if (!old) throw new BulwarkError('BULWARK_DB_NO_PRIMARY', `database ${s.name} has no primary to switch over from`);
    if (old === target) throw new BulwarkError('BULWARK_DB_SWITCHOVER', `${to} is already the primary of ${s.name}`);
    const startedAt = clock.now();
    // 1. wait for catch-up while writes still flow
    const behind = await waitForCatchUp(clock, s.target(old), { name: to, target: s.target(target) }, c.switchover_timeout);
    if (behind) {
      throw new BulwarkError('BULWARK_DB_SWITCHOVER', `${to} did not catch up with ${old.spec.name} within ${c.switchover_timeout} ms (streaming: ${behind.streaming ? 'yes' : 'no'}, lag: ${behind.lag ?? 'unknown'} bytes)`, {
        hint: 'check `bulwark db status`; the target must be a streaming standby',
      });
    }
    // 2. block writes, stop the old primary cleanly (its walsenders ship everything, shutdown checkpoint included)
    const blockedAt = clock.now();
    s.gate.close();
    await old.ctl.stop('fast');
    const finalLsn = await old.ctl.checkpointLsn();
    // 3. the target must have received the old primary's last record
    if (!(await receivedFinalWal(clock, s.target(target), finalLsn))) {
      await old.ctl.start();
      s.gate.open();
      s.gate.forget();
      throw new BulwarkError('BULWARK_DB_SWITCHOVER', `${to} did not receive ${old.spec.name}'s final WAL (${finalLsn ?? '?'}); ${old.spec.name} was restarted as the primary`);
    }
    if (!s.d.lease.isHeld()) {
      await old.ctl.start();
      s.gate.open();
      s.gate.forget();
      throw new BulwarkError('BULWARK_COORD_LEASE_LOST', `lost the leader lease during switchover of ${s.name}; ${old.spec.name} stays primary`, {
        hint: 'check the coordination service (etcd) and retry the switchover',
      });
    }
    // 4. promote; the old primary becomes a standby (clean shutdown, so no rewind is needed)
    s.fence(old);
    const promoteAt = clock.now();
    await target.ctl.promote();
    const promotedAt = clock.now();
    s.primary = target.spec.name;
    s.primaryLastLsn = undefined;
    s.lastReplicaFlush.clear();
    if (c.synchronous) {
      s.sync.safe = [old.spec.name];
      s.sync.forgetNamed();
      await s.sync.name(s.syncPrimary(target), old.spec.name, s.primaryLastLsn);
    }
    s.persist();
    old.ctl.configureStandby(target.spec);
    await old.ctl.start();
    s.fenced.delete(old.spec.name);
    s.persist();
    await adoptPrimary(s, target, old);
    // 5. measure: a committed write on the new primary ends the write downtime
    await commitProbe(s.target(target));
    const writesAt = clock.now();
    const rec: FailoverRecord = {
      kind: 'switchover',
      old_primary: old.spec.name,
      new_primary: target.spec.name,
      started_at: startedAt,
      finished_at: writesAt,
      ok: true,
      detect_ms: 0,
      promote_ms: promotedAt - promoteAt,
      write_downtime_ms: writesAt - blockedAt,
      message: `planned switchover from ${old.spec.name} to ${target.spec.name}`,
    };
    s.history.record(rec);
    s.d.metrics.downtime(s.name, 'switchover', writesAt - blockedAt);
    return rec;
  }).finally(() => {
    s.gate.forget();
    publishTopology(s);
  });
}
