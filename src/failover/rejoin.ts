// Owns bringing nodes back as standbys of the primary: pg_rewind against it, or a fresh clone when
// the rewind fails (shared by both engines: rewindOrClone), and for the single-host engine the
// rejoin of a fenced former primary, the restart of a standby whose postmaster stopped, making a
// node a running standby at bootstrap, and the automatic rejoin round of the loop (auto_rejoin).
// A node is never started as a primary here.
import type { Logger } from '../core/logger.js';
import { describeError } from '../core/errors.js';
import { execSql, observe, type ObserveTarget } from './monitor.js';
import type { NodeActions } from './nodes.js';
import type { NodeSpec } from './pgctl.js';
import type { ClusterNode, ClusterState } from './state.js';

/**
 * pg_rewind against the primary (after a CHECKPOINT there: pg_rewind reads the divergence point
 * from the source's control file); on success the node is configured as its standby, on failure
 * it is cloned again. The node is left stopped.
 */
export async function rewindOrClone(log: { logger: Logger; database: string }, node: { name: string; ctl: NodeActions }, primary: { spec: NodeSpec; target: ObserveTarget }): Promise<void> {
  await execSql(primary.target, 'CHECKPOINT', 30_000);
  const r = await node.ctl.rewind(primary.spec);
  if (r.ok) {
    node.ctl.configureStandby(primary.spec);
  } else {
    log.logger.warn({ database: log.database, node: node.name, output: r.output.trim().split('\n').slice(-4) }, 'pg_rewind failed: cloning again');
    await node.ctl.clone(primary.spec);
  }
}

export class Rejoiner {
  readonly #s: ClusterState;
  /** Nodes whose last rejoin or restart failed: not before this time again. */
  readonly #retryAt = new Map<string, number>();

  constructor(s: ClusterState) {
    this.#s = s;
  }

  /** Rewinds a former primary (or a broken standby) against the primary and starts it as a standby; re-clones when the rewind fails. Never starts it as a primary. */
  async rejoin(n: ClusterNode, p: ClusterNode, why: string): Promise<void> {
    const s = this.#s;
    const name = n.spec.name;
    s.rejoining.add(name);
    try {
      s.d.logger.info({ database: s.name, node: name, primary: p.spec.name, why }, 'rejoining as standby');
      n.ctl.killAll();
      if (n.ctl.initialized()) {
        await rewindOrClone({ logger: s.d.logger, database: s.name }, { name, ctl: n.ctl }, { spec: p.spec, target: s.target(p) });
      } else {
        await n.ctl.clone(p.spec);
      }
      await n.ctl.start();
      s.fenced.delete(name);
      s.persist();
      n.fails = 0;
      s.audit('db.rejoin', `${s.name}/${name}`, `${name} rejoined as a standby of ${p.spec.name} (${why})`);
    } finally {
      s.rejoining.delete(name);
    }
  }

  async restartStandby(n: ClusterNode, p: ClusterNode): Promise<void> {
    const s = this.#s;
    s.d.logger.info({ database: s.name, node: n.spec.name, primary: p.spec.name }, 'restarting a stopped standby');
    n.ctl.killAll();
    if (!n.ctl.initialized()) await n.ctl.clone(p.spec);
    else n.ctl.configureStandby(p.spec);
    await n.ctl.start();
    n.fails = 0;
    s.audit('db.restart', `${s.name}/${n.spec.name}`, `restarted standby ${n.spec.name} (following ${p.spec.name})`);
  }

  /** Makes a node a running standby of the primary: clone when empty, rewind when it was a primary, else just start. */
  async ensureStandby(n: ClusterNode, p: ClusterNode, why: string): Promise<void> {
    const s = this.#s;
    const running = n.ctl.postmasterPid() !== undefined;
    if (!n.ctl.initialized()) {
      s.d.logger.info({ database: s.name, node: n.spec.name, from: p.spec.name, why }, 'cloning standby (pg_basebackup)');
      await n.ctl.clone(p.spec);
      await n.ctl.start();
      return;
    }
    if (running) {
      const o = await observe(s.target(n), 2000, () => s.d.clock.now());
      if (o.ok && o.inRecovery === false) {
        await this.rejoin(n, p, `${why}: found running as a second primary`);
        return;
      }
      n.ctl.configureStandby(p.spec);
      await n.ctl.reload();
      return;
    }
    if (!n.ctl.isStandbyConfigured() || s.fenced.has(n.spec.name)) {
      await this.rejoin(n, p, why);
      return;
    }
    n.ctl.configureStandby(p.spec);
    await n.ctl.start();
  }

  /**
   * One round of auto_rejoin: the first fenced former primary is rejoined (rewind), or the first
   * standby that stopped is restarted as a standby (a crashed standby recovers as a standby, it
   * must not go through pg_rewind's crash recovery). Started in the background, one at a time; a
   * failure is retried after 5 s. Cold standby: nothing streams; a fenced former primary stays
   * fenced until it is the next build target.
   */
  bringBack(p: ClusterNode): void {
    const s = this.#s;
    const c = s.d.config;
    if (!c.auto_rejoin || c.standby === 'cold') return;
    const now = s.d.clock.now();
    for (const n of s.nodes.values()) {
      if (n === p || s.rejoining.has(n.spec.name) || (this.#retryAt.get(n.spec.name) ?? 0) > now) continue;
      const fenced = s.fenced.has(n.spec.name);
      if (!fenced && (n.pidAlive || n.fails < c.fall)) continue;
      const work = fenced ? () => this.rejoin(n, p, 'former primary') : () => this.restartStandby(n, p);
      void s.serial(fenced ? 'rejoin' : 'restart standby', work).then(
        () => this.#retryAt.delete(n.spec.name),
        (err) => {
          this.#retryAt.set(n.spec.name, s.d.clock.now() + 5000);
          s.d.logger.error({ database: s.name, node: n.spec.name, err: describeError(err) }, 'bringing the node back failed; retrying in 5 s');
        },
      );
      return;
    }
  }
}
