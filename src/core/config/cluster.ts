// Owns what cluster mode means for a config: the checks that tie `cluster:`, `coordination:` and
// the nodes' `instance:` together (validate rejects a cluster on local coordination, an unknown
// instance, a node on another host outside cluster mode), and binding a loaded config to one
// instance (its API address, its own state directory under state_dir).
import { join } from 'node:path';
import { BulwarkError } from '../errors.js';
import type { BulwarkConfig, ClusterInstanceConfig } from './schema.js';
import { isLoopbackHost, parseHostPort } from './types.js';

type PathKey = string | number;
export interface Problem {
  path: PathKey[];
  message: string;
}

/** Hosts that mean "this machine" for a node outside cluster mode. */
function isLocalHost(host: string): boolean {
  return isLoopbackHost(host) || host === '0.0.0.0' || host === '::';
}

export function clusterChecks(config: BulwarkConfig): Problem[] {
  const out: Problem[] = [];
  const cluster = config.cluster;
  if (!cluster) {
    for (const [db, d] of Object.entries(config.databases)) {
      d.nodes.forEach((n, i) => {
        if (n.instance !== undefined) {
          out.push({ path: ['databases', db, 'nodes', i, 'instance'], message: `instance: '${n.instance}' needs a cluster: section listing the instances (outside cluster mode every node runs beside the one instance) (BULWARK_CLUSTER_CONFIG)` });
        }
        if (!isLocalHost(n.host)) {
          out.push({ path: ['databases', db, 'nodes', i, 'host'], message: `host ${n.host} is not this machine: outside cluster mode Bulwark runs every node itself (initdb, pg_ctl, fencing), so every node must be on loopback; to manage nodes on other hosts add a cluster: section and give each node the instance that runs beside it (BULWARK_CLUSTER_CONFIG)` });
        }
      });
    }
    for (const [plan, p] of Object.entries(config.backups)) {
      if (p.instance !== undefined) {
        out.push({ path: ['backups', plan, 'instance'], message: `instance: '${p.instance}' needs a cluster: section listing the instances (outside cluster mode the one instance runs every plan) (BULWARK_CLUSTER_CONFIG)` });
      }
    }
    return out;
  }
  if (config.coordination.kind !== 'etcd') {
    out.push({ path: ['coordination'], message: 'cluster mode needs coordination: { kind: etcd, endpoints: [...] } (three or more etcd members): local coordination cannot be shared between hosts (BULWARK_CLUSTER_CONFIG)' });
  }
  const names = new Set<string>();
  const apis = new Map<string, string>();
  cluster.instances.forEach((inst, i) => {
    if (names.has(inst.name)) out.push({ path: ['cluster', 'instances', i, 'name'], message: `two instances are named '${inst.name}' (BULWARK_CLUSTER_CONFIG)` });
    names.add(inst.name);
    const hp = parseHostPort(inst.api);
    if (hp) {
      const key = `${hp.host}:${hp.port}`;
      const prev = apis.get(key);
      if (prev) out.push({ path: ['cluster', 'instances', i, 'api'], message: `instance ${inst.name} uses the API address ${inst.api} of instance ${prev} (BULWARK_CLUSTER_CONFIG)` });
      apis.set(key, inst.name);
      if (hp.host === '0.0.0.0' || hp.host === '::') out.push({ path: ['cluster', 'instances', i, 'api'], message: `api: ${inst.api} is where the other instances reach ${inst.name}: give its own address, not a wildcard (BULWARK_CLUSTER_CONFIG)` });
      if (!isLoopbackHost(hp.host) && !config.api.token_file && !config.api.token_env) {
        out.push({ path: ['cluster', 'instances', i, 'api'], message: `instance ${inst.name} listens on ${inst.api} (beyond loopback): cluster mode requires api.token_file or api.token_env (BULWARK_CLUSTER_CONFIG)` });
      }
    }
  });
  const known = [...names].join(', ');
  for (const [db, d] of Object.entries(config.databases)) {
    d.nodes.forEach((n, i) => {
      if (n.instance === undefined) {
        out.push({ path: ['databases', db, 'nodes', i], message: `in cluster mode every node names the instance that runs beside it: add instance: (one of ${known}) (BULWARK_CLUSTER_CONFIG)` });
      } else if (!names.has(n.instance)) {
        out.push({ path: ['databases', db, 'nodes', i, 'instance'], message: `no instance named '${n.instance}' under cluster.instances (instances: ${known}) (BULWARK_CLUSTER_CONFIG)` });
      }
    });
    if (d.standby === 'cold') {
      out.push({ path: ['databases', db, 'standby'], message: 'standby: cold is not supported in cluster mode yet (the WAL archive and the base-backup scratch directory are local to one host); use standby: hot or warm across hosts, or run the cold-standby database without cluster: (BULWARK_CLUSTER_CONFIG)' });
    }
  }
  for (const [plan, p] of Object.entries(config.backups)) {
    if (p.instance !== undefined && !names.has(p.instance)) {
      out.push({ path: ['backups', plan, 'instance'], message: `no instance named '${p.instance}' under cluster.instances (instances: ${known}): the plan's paths live on the host of the instance that runs it (BULWARK_CLUSTER_CONFIG)` });
    }
  }
  return out;
}

export { instanceName } from './instance.js';

/**
 * Binds a validated config to one instance. Outside cluster mode it is returned as is (an
 * instance name is refused: there is nothing to pick). In cluster mode the instance must be
 * named and listed; its API listens on its own `api` address, and its embedded state lives in
 * state_dir/<instance> (hosts that share a filesystem never share a SQLite file).
 */
export function bindInstance(config: BulwarkConfig, name: string | undefined, file: string): { config: BulwarkConfig; instance: ClusterInstanceConfig | undefined } {
  const cluster = config.cluster;
  if (!cluster) {
    if (name !== undefined) {
      throw new BulwarkError('BULWARK_CLUSTER_INSTANCE', `${file} has no cluster: section, so there is no instance '${name}' to run`, {
        hint: 'drop --instance (and BULWARK_INSTANCE), or add a cluster: section listing the instances',
      });
    }
    return { config, instance: undefined };
  }
  const list = cluster.instances.map((i) => i.name).join(', ');
  if (name === undefined) {
    throw new BulwarkError('BULWARK_CLUSTER_INSTANCE', `${file} describes cluster ${cluster.name}: tell this instance which one it is`, {
      hint: `pass --instance NAME or set BULWARK_INSTANCE (one of: ${list})`,
    });
  }
  const instance = cluster.instances.find((i) => i.name === name);
  if (!instance) {
    throw new BulwarkError('BULWARK_CLUSTER_INSTANCE', `cluster ${cluster.name} has no instance named '${name}'`, { hint: `use one of: ${list}, or add it under cluster.instances` });
  }
  return {
    instance,
    config: { ...config, state_dir: join(config.state_dir, instance.name), api: { ...config.api, listen: instance.api } },
  };
}
