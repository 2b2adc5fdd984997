// Owns the single-point-of-failure audit as pure logic over the config: for each layer Bulwark
// manages (the services it proxies, the databases it fails over, and the control plane itself)
// it finds the one part whose loss takes the layer down, and says what to add. No I/O.
import type { BulwarkConfig } from '../core/config/schema.js';
import { parseHostPort } from '../core/config/types.js';

export type SpofLayer = 'service' | 'database' | 'control-plane';

export interface SpofFinding {
  layer: SpofLayer;
  /** The config key path of what is at fault: "services.web", "databases.main", "coordination". */
  subject: string;
  /** A violation is a real single point of failure (audit exits 1); a warning weakens redundancy. */
  severity: 'violation' | 'warning';
  problem: string;
  fix: string;
}

/** Loopback addresses are all "this machine". */
function hostOf(address: string): string {
  const host = parseHostPort(address)?.host ?? address;
  return host === 'localhost' || host === '::1' || /^127\./.test(host) ? 'this machine (loopback)' : host;
}

export function auditSpof(config: BulwarkConfig): SpofFinding[] {
  const out: SpofFinding[] = [];
  for (const [name, s] of Object.entries(config.services)) {
    const subject = `services.${name}`;
    const serving = s.backends.filter((b) => b.weight > 0);
    if (serving.length < 2) {
      out.push({
        layer: 'service',
        subject,
        severity: 'violation',
        problem: serving.length === 0 ? 'no backend has a weight above 0' : `one backend (${serving[0]?.name ?? '?'}): its failure takes the service down`,
        fix: s.mode === 'active-passive' ? 'add a standby backend (standby: true) on another host' : 'add a second backend on another host',
      });
    } else {
      const hosts = new Set(serving.map((b) => hostOf(b.address)));
      if (hosts.size === 1) {
        out.push({
          layer: 'service',
          subject,
          severity: 'violation',
          problem: `every backend runs on ${[...hosts][0] ?? '?'}: one host failure takes them all`,
          fix: 'spread the backends over at least two hosts',
        });
      }
    }
    if (!s.health && !s.heartbeat) {
      out.push({
        layer: 'service',
        subject,
        severity: 'warning',
        problem: 'no health check or heartbeat: a dead backend is found only when live requests fail',
        fix: `add health: (http, tcp or exec) to ${subject}`,
      });
    }
  }
  for (const [name, d] of Object.entries(config.databases)) {
    const subject = `databases.${name}`;
    if (d.nodes.length < 2) {
      out.push({
        layer: 'database',
        subject,
        severity: d.standby === 'cold' ? 'warning' : 'violation',
        problem:
          d.standby === 'cold'
            ? `one node (${d.nodes[0]?.name ?? '?'}) with a cold standby: losing it means a restore from backup (RTO of minutes, RPO up to the last archived WAL)`
            : `one node (${d.nodes[0]?.name ?? '?'}): no standby to fail over to`,
        fix: 'add a second node (a hot or warm standby) on another host',
      });
    } else {
      const hosts = new Set(d.nodes.map((n) => hostOf(`${n.host}:${n.port}`)));
      if (hosts.size === 1) {
        out.push({
          layer: 'database',
          subject,
          severity: 'violation',
          problem: `every node runs on ${[...hosts][0] ?? '?'}: one host failure takes the primary and its standbys`,
          fix: 'run the standby on another host',
        });
      }
      if (d.synchronous && d.nodes.length === 2 && d.no_sync_standby === 'block') {
        out.push({
          layer: 'database',
          subject,
          severity: 'warning',
          problem: 'synchronous with a single standby and no_sync_standby: block: while the standby is down, writes wait',
          fix: 'add a second standby, or accept no_sync_standby: async during standby outages',
        });
      }
    }
  }
  const inDataPath = Object.keys(config.services).length > 0 || Object.keys(config.databases).length > 0;
  if (inDataPath && config.coordination.kind === 'local') {
    out.push({
      layer: 'control-plane',
      subject: 'coordination',
      severity: 'violation',
      problem: 'one Bulwark instance (coordination: local) carries the proxy listeners and database failover: if it dies, clients lose the front door and failover stops',
      fix: 'run two or more Bulwark instances with coordination: { kind: etcd } and put a virtual IP or DNS with health checks in front of their listeners',
    });
  }
  if (config.coordination.kind === 'etcd' && config.coordination.endpoints.length < 3) {
    out.push({
      layer: 'control-plane',
      subject: 'coordination.endpoints',
      severity: 'warning',
      problem: `etcd with ${config.coordination.endpoints.length} endpoint(s): the lease store is itself a single point of failure`,
      fix: 'run an etcd cluster of 3 or 5 members on separate hosts and list every endpoint',
    });
  }
  return out;
}
