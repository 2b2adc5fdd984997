// Owns the single-point-of-failure audit from live cluster state (cluster mode): which instances
// are live members in etcd and on which hosts and zones, how many members etcd itself has, and
// from that the databases whose live nodes sit on one host or in one zone, services whose
// backends are all in one zone, a cluster down to one live instance, and an etcd under three
// members. gatherLive() reads the state through the coordination service; auditLive() is pure.
import type { BulwarkConfig } from '../core/config/schema.js';
import { parseHostPort } from '../core/config/types.js';
import { listMembers, type Coordination } from '../coord/index.js';
import type { SpofFinding } from './spof.js';

export interface LiveInstance {
  name: string;
  host: string;
  zone: string | undefined;
  /** A live member key in etcd now. */
  up: boolean;
}

export interface LiveState {
  /** The instances under cluster.instances with their liveness. */
  instances: LiveInstance[];
  /** Why the membership could not be read (then no instance counts as live). */
  membersError?: string | undefined;
  /** etcd as it reports itself: members listed and started, or why it could not be asked. */
  etcd: { members: number; started: number; names: string[] } | { error: string };
}

function hostOf(address: string): string {
  return parseHostPort(address)?.host ?? address;
}

/** Reads the live state of a cluster-mode config (never throws: what cannot be read is reported as such). */
export async function gatherLive(config: BulwarkConfig, coordination: Coordination): Promise<LiveState> {
  const configured = config.cluster?.instances ?? [];
  const { members, error } = await listMembers(coordination.kv, configured);
  const instances = configured.map((c) => ({ name: c.name, host: hostOf(c.api), zone: c.zone, up: members.find((m) => m.name === c.name)?.state === 'up' }));
  let etcd: LiveState['etcd'];
  if (!coordination.etcdMembers) etcd = { error: 'the coordination service is not etcd' };
  else {
    try {
      const list = await coordination.etcdMembers();
      const voting = list.filter((m) => !m.learner);
      etcd = { members: voting.length, started: voting.filter((m) => m.name !== '' && m.client_urls.length > 0).length, names: voting.map((m) => m.name || `(not started ${m.id})`) };
    } catch (err) {
      etcd = { error: (err as Error).message };
    }
  }
  return { instances, ...(error ? { membersError: error } : {}), etcd };
}

const listOf = (xs: Iterable<string>): string => [...xs].join(', ');

/** Pure: the single points of failure in the live state of a cluster-mode config. */
export function auditLive(config: BulwarkConfig, state: LiveState): SpofFinding[] {
  const out: SpofFinding[] = [];
  const byName = new Map(state.instances.map((i) => [i.name, i]));
  const live = state.instances.filter((i) => i.up);

  if (state.membersError) {
    out.push({ layer: 'control-plane', subject: 'cluster.instances', severity: 'violation', problem: `the membership cannot be read from etcd (${state.membersError}): no instance can take a lease`, fix: 'bring etcd back (check coordination.endpoints); the audit then reports the live instances' });
  } else if (live.length < 2) {
    out.push({
      layer: 'control-plane',
      subject: 'cluster.instances',
      severity: 'violation',
      problem: live.length === 0 ? `no instance of ${state.instances.length} is live in etcd` : `a single live instance (${live[0]?.name ?? '?'} of ${state.instances.length}): if it dies, listeners and failover stop`,
      fix: `start the other instances (bulwark up --instance NAME on their hosts)${state.instances.length < 2 ? ' and list at least two under cluster.instances, on separate hosts' : ''}`,
    });
  } else {
    const hosts = new Set(live.map((i) => i.host));
    if (hosts.size === 1) {
      out.push({ layer: 'control-plane', subject: 'cluster.instances', severity: 'violation', problem: `every live instance (${listOf(live.map((i) => i.name))}) runs on ${[...hosts][0] ?? '?'}: one host failure takes them all`, fix: 'run the instances on separate hosts' });
    }
    const zones = new Set(live.map((i) => i.zone));
    if (zones.size === 1 && !zones.has(undefined)) {
      out.push({ layer: 'control-plane', subject: 'cluster.instances', severity: 'warning', problem: `every live instance is in zone ${[...zones][0] ?? '?'}: a zone outage takes the control plane`, fix: 'run an instance in a second zone' });
    }
  }

  if ('error' in state.etcd) {
    out.push({ layer: 'control-plane', subject: 'coordination', severity: 'violation', problem: `etcd cannot be asked for its members (${state.etcd.error})`, fix: 'check coordination.endpoints and that etcd runs' });
  } else {
    if (state.etcd.members < 3) {
      out.push({ layer: 'control-plane', subject: 'coordination', severity: 'violation', problem: `etcd has ${state.etcd.members} member(s) (${listOf(state.etcd.names)}): losing ${state.etcd.members === 1 ? 'it' : 'one'} loses quorum, and with it every lease`, fix: 'run an etcd cluster of 3 or 5 members on separate hosts and list every endpoint under coordination.endpoints' });
    } else if (state.etcd.started < state.etcd.members) {
      out.push({ layer: 'control-plane', subject: 'coordination', severity: 'warning', problem: `${state.etcd.members - state.etcd.started} of ${state.etcd.members} etcd members have not started`, fix: 'start the missing etcd members' });
    }
  }

  for (const [name, d] of Object.entries(config.databases)) {
    if (d.nodes.length < 2) continue; // one node: the config audit already reports it
    const subject = `databases.${name}`;
    const nodes = d.nodes.map((n) => {
      const inst = n.instance ? byName.get(n.instance) : undefined;
      return { name: n.name, host: inst?.host ?? n.host, zone: n.zone ?? inst?.zone, up: state.membersError ? false : (inst?.up ?? false) };
    });
    const liveNodes = nodes.filter((n) => n.up);
    if (liveNodes.length < 2) {
      out.push({
        layer: 'database',
        subject,
        severity: 'violation',
        problem: liveNodes.length === 0 ? 'no node has a live instance beside it: nothing can fail over' : `only ${liveNodes[0]?.name ?? '?'} has a live instance beside it: no standby can take over`,
        fix: `start the instances of ${listOf(nodes.filter((n) => !n.up).map((n) => n.name))}`,
      });
      continue;
    }
    const hosts = new Set(liveNodes.map((n) => n.host));
    if (hosts.size === 1) {
      out.push({ layer: 'database', subject, severity: 'violation', problem: `every live node (${listOf(liveNodes.map((n) => n.name))}) is on host ${[...hosts][0] ?? '?'}: one host failure takes the primary and its standbys`, fix: 'run a standby beside an instance on another host' });
    }
    const zones = new Set(liveNodes.map((n) => n.zone));
    if (zones.size === 1 && !zones.has(undefined)) {
      out.push({ layer: 'database', subject, severity: 'violation', problem: `every live node (${listOf(liveNodes.map((n) => n.name))}) is in zone ${[...zones][0] ?? '?'}: a zone outage takes the database`, fix: 'run a standby in another zone' });
    }
  }

  for (const [name, s] of Object.entries(config.services)) {
    const serving = s.backends.filter((b) => b.weight > 0);
    if (serving.length < 2) continue; // the config audit reports a single backend
    const zones = new Set(serving.map((b) => b.zone));
    if (zones.size === 1 && !zones.has(undefined)) {
      out.push({ layer: 'service', subject: `services.${name}`, severity: 'violation', problem: `every backend is in zone ${[...zones][0] ?? '?'}: a zone outage takes the service`, fix: 'add a backend in another zone' });
    }
  }
  return out;
}
