// Owns the single-host engine's bootstrap, run on taking the lease: find the primary (a node
// observed out of recovery, else the recorded one, else an initialized node without
// standby.signal, else the first), initdb it when empty, start it, turn on WAL archiving (cold
// standby), name the first synchronous standby, and make every other node a running standby
// (hot or warm; cold standby spares stay empty until a cold failover builds one).
import { BulwarkError } from '../core/errors.js';
import { archiveSettings, prepareWalDir } from './cold.js';
import type { ColdStandby } from './coldfail.js';
import { observe } from './monitor.js';
import type { Rejoiner } from './rejoin.js';
import type { ClusterState } from './state.js';

export async function bootstrap(s: ClusterState, rejoin: Rejoiner, cold: ColdStandby | undefined): Promise<void> {
  const c = s.d.config;
  const nodes = [...s.nodes.values()];
  for (const n of nodes) n.pidAlive = n.ctl.postmasterPid() !== undefined;
  // Who is primary: a node running out of recovery (observation beats records: another instance
  // may have failed over since this one recorded anything; with several, the recorded one wins
  // and the others are fenced by the loop); else the recorded one; else an initialized node
  // without standby.signal; else the first.
  const running: string[] = [];
  for (const n of nodes) {
    if (!n.pidAlive) continue;
    const o = await observe(s.target(n), 2000, () => s.d.clock.now());
    if (o.ok && o.inRecovery === false) running.push(n.spec.name);
  }
  let primary = running.length === 0 ? s.primary : s.primary && running.includes(s.primary) ? s.primary : running[0];
  if (primary !== s.primary && primary !== undefined) s.fenced.delete(primary);
  primary ??= nodes.find((n) => n.ctl.initialized() && !n.ctl.isStandbyConfigured())?.spec.name;
  primary ??= nodes.find((n) => !n.ctl.initialized())?.spec.name ?? nodes[0]?.spec.name;
  const p = s.node(primary as string);
  if (!p.ctl.initialized()) {
    s.d.logger.info({ database: s.name, node: p.spec.name }, 'initdb');
    if (cold) prepareWalDir(cold.walDir, cold.osOwner());
    await p.ctl.initdb(cold ? { ...archiveSettings(cold.walDir, c.archive_timeout), ...c.settings } : c.settings, c.standby === 'hot');
    if (c.hba.length) p.ctl.allowHosts([], c.hba);
  }
  if (s.fenced.has(p.spec.name) || (p.ctl.isStandbyConfigured() && !p.pidAlive)) {
    throw new BulwarkError('BULWARK_DB_NO_PRIMARY', `database ${s.name}: the recorded primary ${p.spec.name} is fenced or configured as a standby, and Bulwark will not start it as a primary`, {
      hint: 'check `bulwark db status`; remove standby.signal from its data_dir only if you are sure no other node has newer data',
    });
  }
  if (!p.pidAlive) await p.ctl.start();
  if (cold) await cold.ensureArchiving(p);
  s.primary = p.spec.name;
  s.primaryLastOk = s.d.clock.now();
  s.persist();
  if (c.synchronous && !s.sync.named) {
    const first = nodes.find((n) => n.spec.name !== p.spec.name)?.spec.name;
    // a fresh cluster: no commit acknowledged yet, so naming the first standby is safe at once
    if (first && s.sync.safe.length === 0) s.sync.safe = [first];
    await s.sync.name(s.syncPrimary(p), first, s.primaryLastLsn);
  }
  for (const n of nodes) {
    if (n === p || c.standby === 'cold') continue; // cold: the other nodes are spares, nothing runs there
    await rejoin.ensureStandby(n, p, 'bootstrap');
  }
  if (cold) await cold.planBaseBackups();
}
