// Owns running Bulwark in cluster mode inside a lab: the config file (the issue #10 contract:
// `cluster:` instances with api and zone, etcd coordination on the lab's members, one database
// node per host beside its instance), the API token in a file, one `bulwark up -c FILE
// --instance bw-N` per host, and reading `GET /v1/db/main` from inside the lab. Only
// clusterConfig() and readDbStatus() know Bulwark's config and status shapes. Used by tests and
// bench/cluster-failover.mjs alike.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { LabEtcd } from './etcd.js';
import type { Lab, LabHost } from './lab.js';
import { PG_BIN } from './postgres.js';
import type { LabProcess } from './proc.js';

export const BULWARK_BIN = fileURLToPath(new URL('../../../bin/bulwark.js', import.meta.url));
export const API_PORT = 7070;
export const WRITE_PORT = 6432;
export const READ_PORT = 6433;
export const PG_PORT = 5432;

export interface ClusterSpec {
  hosts: LabHost[];
  etcdEndpoints: string[];
  tokenFile: string;
  stateDir: string;
  /** One data dir per host, in host order. */
  pgDirs: string[];
  synchronous?: boolean;
  leaseTtl?: string;
  /** PostgreSQL settings for every node. */
  settings?: Record<string, string | number>;
  /** Extra top-level config (merged last). */
  extra?: Record<string, unknown>;
}

/** Instance i (0-based) is bw-<i+1> on hosts[i], zone a, b, c, ...; its node is pg-<i+1>. */
export function clusterConfig(spec: ClusterSpec): Record<string, unknown> {
  return {
    cluster: {
      name: 'lab',
      instances: spec.hosts.map((h, i) => ({ name: `bw-${i + 1}`, api: `${h.address}:${API_PORT}`, zone: String.fromCharCode(97 + i) })),
    },
    api: { token_file: spec.tokenFile },
    state_dir: spec.stateDir,
    coordination: { kind: 'etcd', endpoints: spec.etcdEndpoints, lease_ttl: spec.leaseTtl ?? '3s' },
    databases: {
      main: {
        engine: 'postgres',
        listen: `0.0.0.0:${WRITE_PORT}`,
        read_listen: `0.0.0.0:${READ_PORT}`,
        synchronous: spec.synchronous ?? true,
        // the lab's client host reads rows and replication state straight from the nodes
        hba: ['host all all 198.18.0.0/15 trust'],
        ...(spec.settings ? { settings: spec.settings } : {}),
        nodes: spec.hosts.map((h, i) => ({ name: `pg-${i + 1}`, instance: `bw-${i + 1}`, host: h.address, port: PG_PORT, data_dir: spec.pgDirs[i] })),
      },
    },
    ...spec.extra,
  };
}

export interface DbStatus {
  primary: string | undefined;
  roles: Record<string, string>;
  writes: string | undefined;
}

/** The fields the lab needs from `GET /v1/db/main` (`nodes[]`, or today's single-host `rows[]`). */
export function readDbStatus(body: unknown): DbStatus {
  const b = (body ?? {}) as { primary?: string | null; writes?: string; nodes?: Array<{ name?: string; node?: string; role: string }>; rows?: Array<{ name?: string; node?: string; role: string }> };
  const nodes = b.nodes ?? b.rows ?? [];
  return { primary: b.primary ?? undefined, roles: Object.fromEntries(nodes.map((n) => [n.name ?? n.node ?? '?', n.role])), writes: b.writes };
}

export interface Instance {
  name: string;
  node: string;
  host: LabHost;
  pgDir: string;
  proc: LabProcess | undefined;
}

export class LabBulwark {
  readonly configFile: string;
  readonly tokenFile: string;
  readonly instances: Instance[];
  #lab: Lab;
  #from: string;
  #dir: string;

  constructor(lab: Lab, etcd: LabEtcd, opts: { hosts?: string[]; from?: string; settings?: Record<string, string | number>; synchronous?: boolean; leaseTtl?: string; extra?: Record<string, unknown> } = {}) {
    this.#lab = lab;
    const hosts = (opts.hosts ?? lab.hosts('host').map((h) => h.name)).map((n) => lab.host(n));
    this.#from = opts.from ?? lab.hosts('client')[0]?.name ?? hosts[0]?.name ?? '';
    this.#dir = join(lab.dir, 'bulwark');
    mkdirSync(this.#dir, { recursive: true, mode: 0o755 });
    this.tokenFile = join(this.#dir, 'token');
    writeFileSync(this.tokenFile, randomBytes(24).toString('hex') + '\n', { mode: 0o600 });
    this.instances = hosts.map((host, i) => ({ name: `bw-${i + 1}`, node: `pg-${i + 1}`, host, pgDir: join(host.dir('bulwark', { owner: 'postgres' }), `pg-${i + 1}`), proc: undefined }));
    this.configFile = join(this.#dir, 'bulwark.yaml');
    const config = clusterConfig({
      hosts,
      etcdEndpoints: etcd.endpoints,
      tokenFile: this.tokenFile,
      stateDir: join(this.#dir, 'state'),
      pgDirs: this.instances.map((x) => x.pgDir),
      ...(opts.synchronous !== undefined ? { synchronous: opts.synchronous } : {}),
      ...(opts.leaseTtl !== undefined ? { leaseTtl: opts.leaseTtl } : {}),
      ...(opts.settings ? { settings: opts.settings } : {}),
      ...(opts.extra ? { extra: opts.extra } : {}),
    });
    writeFileSync(this.configFile, stringify(config));
  }

  instance(hostOrName: string): Instance {
    const x = this.instances.find((i) => i.host.name === hostOrName || i.name === hostOrName || i.node === hostOrName);
    if (!x) throw new Error(`no Bulwark instance for ${hostOrName}`);
    return x;
  }

  /** The listeners clients use (every instance's write listener). */
  get writeTargets(): string[] {
    return this.instances.map((x) => `${x.host.address}:${WRITE_PORT}`);
  }

  /** Starts (or restarts) the instance on a host. */
  start(hostOrName: string): LabProcess {
    const x = this.instance(hostOrName);
    if (x.proc?.running) return x.proc;
    x.proc = x.host.spawn(process.execPath, [BULWARK_BIN, 'up', '-c', this.configFile, '--instance', x.name], { name: x.name, logFile: join(this.#dir, `${x.name}.log`) });
    return x.proc;
  }

  startAll(): void {
    for (const x of this.instances) this.start(x.name);
  }

  /** GET /v1/db/main of one instance, from inside the lab; undefined if it does not answer 200. */
  async status(hostOrName: string): Promise<DbStatus | undefined> {
    const x = this.instance(hostOrName);
    if (x.host.dead || !x.proc?.running) return undefined;
    const r = await this.#lab.host(this.#from).http(`http://${x.host.address}:${API_PORT}/v1/db/main`, { tokenFile: this.tokenFile });
    return r.ok && r.status === 200 ? readDbStatus(r.body) : undefined;
  }

  /** Waits until every started instance answers; throws at once with its output if one exits. */
  async waitUp(timeoutMs = 90_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const started = this.instances.filter((x) => x.proc);
      const down = started.find((x) => !x.proc?.running);
      if (down) throw new Error(`Bulwark instance ${down.name} exited (${JSON.stringify(down.proc?.exitInfo)}):\n${down.proc?.tail().slice(-2000)}`);
      if ((await Promise.all(started.map((x) => this.status(x.name)))).every(Boolean)) return;
      if (Date.now() > deadline) throw new Error(`Bulwark instances did not answer within ${timeoutMs} ms\n${started.map((x) => `--- ${x.name}\n${x.proc?.tail().slice(-1000)}`).join('\n')}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** The primary's node name as any live instance reports it. */
  async primary(exceptHost?: string): Promise<string | undefined> {
    const live = this.instances.filter((x) => !x.host.dead && x.host.name !== exceptHost);
    return (await Promise.all(live.map((x) => this.status(x.name)))).find((s) => s?.primary)?.primary;
  }

  /** SIGTERM every instance, then an immediate stop of any PostgreSQL left in their data dirs. */
  async stop(): Promise<void> {
    await Promise.all(this.instances.map((x) => x.proc?.stop(10_000)));
    for (const x of this.instances) {
      if (!x.host.dead && existsSync(join(x.pgDir, 'postmaster.pid'))) await x.host.exec(join(PG_BIN, 'pg_ctl'), ['stop', '-m', 'immediate', '-D', x.pgDir], { user: 'postgres' });
    }
  }
}
