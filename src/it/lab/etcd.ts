// Owns an etcd cluster in a lab: one member per host (Debian's /usr/bin/etcd, 3.4), peer URL
// http://ADDR:2380 and client URL http://ADDR:2379 on the host's own address, data under the
// lab's scratch dir so a killed member restarts with its data. Timeouts are tuned for fast
// failure detection in tests: --heartbeat-interval 100 ms and --election-timeout 1000 ms
// (etcd's defaults are 100/1000 too; set explicitly so a change of default cannot slow the lab).
// Faults: a member lost (kill one), quorum lost (kill a majority), restarts; etcdctl runs from a
// lab host (the test process cannot reach lab addresses).
import { join } from 'node:path';
import type { Lab, LabHost } from './lab.js';
import type { LabProcess } from './proc.js';

export const ETCD = '/usr/bin/etcd';
export const ETCDCTL = '/usr/bin/etcdctl';
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;

export interface LabEtcdOptions {
  /** Hosts that run a member (default: every server host of the lab). */
  hosts?: string[];
  heartbeatMs?: number;
  electionMs?: number;
  /** Where etcdctl runs (default: the first client host, else the first member's host). */
  from?: string;
}

export interface Member {
  name: string;
  host: LabHost;
  endpoint: string;
  dataDir: string;
  proc: LabProcess | undefined;
}

export class LabEtcd {
  readonly members: Member[];
  #lab: Lab;
  #args: (m: Member) => string[];
  #from: string | undefined;

  constructor(lab: Lab, opts: LabEtcdOptions = {}) {
    this.#lab = lab;
    const hosts = (opts.hosts ?? lab.hosts('host').map((h) => h.name)).map((n) => lab.host(n));
    this.#from = opts.from ?? lab.hosts('client')[0]?.name;
    this.members = hosts.map((host) => ({
      name: `etcd-${host.name}`,
      host,
      endpoint: `http://${host.address}:${ETCD_CLIENT_PORT}`,
      dataDir: join(host.dir('etcd'), 'data'),
      proc: undefined,
    }));
    const cluster = this.members.map((m) => `${m.name}=http://${m.host.address}:${ETCD_PEER_PORT}`).join(',');
    this.#args = (m) => [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.endpoint, '--advertise-client-urls', m.endpoint,
      '--listen-peer-urls', `http://${m.host.address}:${ETCD_PEER_PORT}`, '--initial-advertise-peer-urls', `http://${m.host.address}:${ETCD_PEER_PORT}`,
      '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--initial-cluster-token', `bwlab-${lab.id}`,
      '--heartbeat-interval', String(opts.heartbeatMs ?? 100), '--election-timeout', String(opts.electionMs ?? 1000),
      '--log-level', 'warn', '--logger', 'zap',
    ];
  }

  /** The client URLs of every member, e.g. for `coordination.endpoints`. */
  get endpoints(): string[] {
    return this.members.map((m) => m.endpoint);
  }

  member(host: string): Member {
    const m = this.members.find((x) => x.host.name === host);
    if (!m) throw new Error(`no etcd member on ${host}`);
    return m;
  }

  /** Starts every member that is not running. */
  startAll(): void {
    for (const m of this.members) this.start(m.host.name);
  }

  /** Starts (or restarts, with its data) the member on `host`. */
  start(host: string): void {
    const m = this.member(host);
    if (m.proc?.running) return;
    m.proc = m.host.spawn(ETCD, this.#args(m), { name: m.name, logFile: join(m.dataDir, '..', 'etcd.log') });
  }

  /** A member lost: SIGKILL of its etcd (the host stays up). */
  async kill(host: string): Promise<void> {
    const m = this.member(host);
    const p = m.proc;
    m.proc = undefined;
    if (!p?.running) return;
    p.signal('SIGKILL');
    await p.exited;
  }

  /** Quorum lost: kills all members but `keep` (default: keeps the first). */
  async killMajority(keep = this.members[0]?.host.name ?? ''): Promise<string[]> {
    const killed = this.members.filter((m) => m.host.name !== keep).map((m) => m.host.name);
    await Promise.all(killed.map((h) => this.kill(h)));
    return killed;
  }

  /** Runs etcdctl (v3 API) from a lab host against `endpoints` (default: every member). */
  async ctl(args: string[], opts: { endpoints?: string[]; from?: string; timeoutS?: number } = {}): Promise<{ ok: boolean; stdout: string; stderr: string }> {
    const from = this.#lab.host(opts.from ?? this.#from ?? this.members.find((m) => m.proc?.running)?.host.name ?? '');
    const r = await from.exec(ETCDCTL, [`--endpoints=${(opts.endpoints ?? this.endpoints).join(',')}`, `--command-timeout=${opts.timeoutS ?? 2}s`, `--dial-timeout=${opts.timeoutS ?? 2}s`, ...args], {
      env: { ...process.env, ETCDCTL_API: '3' },
      timeoutMs: ((opts.timeoutS ?? 2) + 10) * 1000,
    });
    return { ok: r.code === 0, stdout: r.stdout, stderr: r.stderr };
  }

  /**
   * Tries a put through `endpoints` until one succeeds or `withinMs` passed (an election after a
   * member loss takes about an election timeout). Returns whether a write went through, and the
   * last error.
   */
  async writable(opts: { endpoints?: string[]; withinMs?: number; key?: string } = {}): Promise<{ ok: boolean; error: string }> {
    const deadline = Date.now() + (opts.withinMs ?? 5000);
    let error = '';
    for (;;) {
      const r = await this.ctl(['put', opts.key ?? '/bwlab/probe', String(Date.now())], { ...(opts.endpoints ? { endpoints: opts.endpoints } : {}), timeoutS: 1 });
      if (r.ok) return { ok: true, error: '' };
      error = r.stderr.trim();
      if (Date.now() > deadline) return { ok: false, error };
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  /** Health of each member's endpoint, by endpoint URL. */
  async health(): Promise<Map<string, boolean>> {
    const r = await this.ctl(['endpoint', 'health', '-w', 'json'], { timeoutS: 1 });
    const out = new Map<string, boolean>(this.endpoints.map((e) => [e, false]));
    try {
      for (const e of JSON.parse(r.stdout) as Array<{ endpoint: string; health: boolean }>) out.set(e.endpoint, e.health === true);
    } catch {
      // no JSON: nothing healthy
    }
    return out;
  }

  /**
   * Waits until every running member (or the `hosts` given) reports healthy and a write through
   * them succeeds. Throws with the members' log tails after timeoutMs.
   */
  async waitHealthy(opts: { hosts?: string[]; timeoutMs?: number } = {}): Promise<void> {
    const want = (opts.hosts ?? this.members.filter((m) => m.proc?.running).map((m) => m.host.name)).map((h) => this.member(h).endpoint);
    const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
    let last = '';
    for (;;) {
      const h = await this.health();
      if (want.every((e) => h.get(e))) {
        const w = await this.ctl(['put', '/bwlab/health', String(Date.now())], { endpoints: want });
        if (w.ok) return;
        last = w.stderr;
      } else {
        last = JSON.stringify([...h]);
      }
      if (Date.now() > deadline) {
        throw new Error(`etcd not healthy within ${opts.timeoutMs ?? 30_000} ms (${last})\n${this.members.map((m) => `--- ${m.name}\n${m.proc?.tail().slice(-1500) ?? '(not running)'}`).join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Creates and starts a lab etcd cluster, waiting until it is healthy. */
export async function startLabEtcd(lab: Lab, opts: LabEtcdOptions = {}): Promise<LabEtcd> {
  const etcd = new LabEtcd(lab, opts);
  etcd.startAll();
  await etcd.waitHealthy();
  return etcd;
}
