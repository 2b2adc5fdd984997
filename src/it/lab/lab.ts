// Owns a lab: "hosts" that are Linux network namespaces on a private bridge, and the faults
// injected into them. Layout for lab N of process P:
//   bwlP-N-sw          the switch: a bridge br0 and one veth end per host (v-<host>)
//   bwlP-N-<host>      a host: lo up, eth0 (the other veth end) with 198.18.N.<i>/24, no route out
// Servers are .1, .2, ...; clients .101, .102, .... The root namespace gets nothing (no bridge,
// no veth, no address), so nothing is routed out. Teardown kills every process in every lab
// namespace and deletes the namespaces (veths go with them), also from process 'exit', SIGINT
// and SIGTERM handlers when a test or a benchmark dies. Creating a lab first removes namespaces
// left by runs whose process is gone.
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyDrops, defaultFirewall, dropsFor, listRules, type Block, type FirewallKind } from './firewall.js';
import { DIR_PREFIX, alive, destroyNamespace, ip, killAllIn, listNamespaces, nsName, nsPids, removeStale } from './netns.js';
import { LabProcess, type ExitInfo, type SpawnOptions } from './proc.js';

export interface LabOptions {
  /** Server hosts (addresses .1, .2, ... in order). Names: lowercase letters and digits, at most 10. */
  hosts: string[];
  /** Client hosts (addresses .101, ...). */
  clients?: string[];
  /** Packet filter for partitions (default: nft if installed, else iptables; env BULWARK_LAB_FIREWALL). */
  firewall?: FirewallKind;
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ProbeAnswer {
  ok: boolean;
  error?: string;
  [k: string]: unknown;
}

/** The compiled probe program (dist/it/lab/probe.js). */
export const PROBE = fileURLToPath(new URL('./probe.js', import.meta.url));

const NAME_RE = /^[a-z][a-z0-9]{0,9}$/;
let labSeq = 0;
const liveLabs = new Set<Lab>();
let handlersInstalled = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const lab of liveLabs) lab.teardownSync();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      for (const lab of liveLabs) lab.teardownSync();
      // only this handler listening: behave like the default action (exit), after cleaning up
      if (process.listenerCount(sig) <= 1) process.exit(sig === 'SIGINT' ? 130 : 143);
    });
  }
}

const POSTGRES_IDS = (() => {
  let ids: { uid: number; gid: number } | undefined;
  return () => (ids ??= { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) });
})();

export class LabHost {
  readonly name: string;
  readonly ns: string;
  readonly address: string;
  readonly kind: 'host' | 'client';
  readonly lab: Lab;
  #procs = new Set<LabProcess>();
  #down = false;

  constructor(lab: Lab, name: string, ns: string, address: string, kind: 'host' | 'client') {
    this.lab = lab;
    this.name = name;
    this.ns = ns;
    this.address = address;
    this.kind = kind;
  }

  /** True between kill() and revive(). */
  get dead(): boolean {
    return this.#down;
  }

  /** Starts a process inside this host; the lab tracks it and kills it at teardown. */
  spawn(cmd: string, args: string[] = [], opts: SpawnOptions = {}): LabProcess {
    const p = new LabProcess(this.ns, cmd, args, opts);
    this.#procs.add(p);
    void p.exited.then(() => this.#procs.delete(p));
    return p;
  }

  /** Runs a command inside this host to completion (SIGKILLed after timeoutMs, default 30 s). */
  async exec(cmd: string, args: string[] = [], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<ExecResult> {
    const p = new LabProcess(this.ns, cmd, args, { tailBytes: 1024 * 1024, ...opts });
    let stderr = '';
    p.onLine((line, stream) => {
      if (stream === 'stderr') stderr += line + '\n';
    });
    const timer = setTimeout(() => p.signal('SIGKILL', { group: true }), opts.timeoutMs ?? 30_000);
    const e: ExitInfo = await p.exited;
    clearTimeout(timer);
    return { ...e, stdout: p.stdout(), stderr };
  }

  /** The processes the lab started here that still run. */
  processes(): LabProcess[] {
    return [...this.#procs].filter((p) => p.running);
  }

  /** Every pid inside this namespace (started by the lab or not). */
  pids(): number[] {
    return nsPids(this.ns).filter(alive);
  }

  /**
   * The host dies: its link is cut first (the switch side of its veth goes down, so nothing it
   * sends afterwards, not even the FIN/RST of its dying sockets, reaches anyone), then every
   * process in the namespace is SIGKILLed. Resolves when the tracked processes have exited.
   */
  async kill(): Promise<void> {
    this.#down = true;
    this.lab.linkDown(this.name);
    const tracked = [...this.#procs];
    killAllIn(this.ns, tracked.map((p) => p.pid));
    await Promise.race([Promise.all(tracked.map((p) => p.exited)), new Promise((r) => setTimeout(r, 5000))]);
  }

  /** The link comes back; nothing is restarted (the test starts what the host should run). */
  revive(): void {
    this.lab.linkUp(this.name);
    this.#down = false;
  }

  /** SIGSTOP of one process (or its process group). */
  pause(p: LabProcess, opts: { group?: boolean } = {}): void {
    p.signal('SIGSTOP', opts);
  }

  resume(p: LabProcess, opts: { group?: boolean } = {}): void {
    p.signal('SIGCONT', opts);
  }

  /** Runs the probe program (probe.ts) here and returns its JSON answer. */
  async probe(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProbeAnswer> {
    const r = await this.exec(process.execPath, [PROBE, ...args], { env: { ...process.env, ...env }, timeoutMs: 20_000 });
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as ProbeAnswer;
    } catch {
      throw new Error(`probe ${args[0]} in ${this.name} printed no answer (exit ${r.code ?? r.signal}): ${r.stdout}${r.stderr}`);
    }
  }

  /** Opens a TCP connection from here to host:port; ok only if it connected and got an answer. */
  async tcp(host: string, port: number, timeoutMs = 1000): Promise<ProbeAnswer> {
    return this.probe(['tcp', host, String(port), String(timeoutMs)]);
  }

  /** Sends one UDP datagram from here. */
  async udp(host: string, port: number, msg: string): Promise<ProbeAnswer> {
    return this.probe(['udp', host, String(port), msg]);
  }

  /** A query from here (as postgres; a password, if any, goes through the environment). */
  async sql(host: string, port: number, text: string, opts: { password?: string; user?: string } = {}): Promise<ProbeAnswer & { rows?: Array<Record<string, unknown>> }> {
    return this.probe(['sql', host, String(port), text], { ...(opts.password !== undefined ? { PGPASSWORD: opts.password } : {}), ...(opts.user !== undefined ? { PGUSER: opts.user } : {}) });
  }

  /** An HTTP GET from here; the bearer token, if any, is read from a file (never in argv). */
  async http(url: string, opts: { tokenFile?: string } = {}): Promise<ProbeAnswer & { status?: number; body?: unknown }> {
    return this.probe(['http', url, ...(opts.tokenFile ? [opts.tokenFile] : [])]);
  }

  /** A TCP + UDP server on `port` (see probe.ts `serve`); resolves once it listens. */
  async serve(port: number): Promise<LabProcess> {
    const p = this.spawn(process.execPath, [PROBE, 'serve', String(port)], { name: `serve:${port}` });
    await p.waitForLine(/^ready$/, 10_000);
    return p;
  }

  /** A directory under the lab's scratch dir (created; chowned to postgres when asked). */
  dir(name: string, opts: { owner?: 'postgres' } = {}): string {
    const d = join(this.lab.dir, this.name, name);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    chmodSync(join(this.lab.dir, this.name), 0o755);
    if (opts.owner === 'postgres') {
      const { uid, gid } = POSTGRES_IDS();
      chownSync(d, uid, gid);
    }
    return d;
  }
}

export class Lab {
  readonly id: number;
  readonly dir: string;
  readonly switchNs: string;
  readonly firewall: FirewallKind;
  #hosts = new Map<string, LabHost>();
  #namespaces: string[] = [];
  #blocks: Block[] = [];
  #torndown = false;
  #seq: number;

  /** `seq` names the namespaces (unique in this process), `id` is the third octet of the addresses. */
  constructor(seq: number, id: number, dir: string, firewall: FirewallKind) {
    this.#seq = seq;
    this.id = id;
    this.dir = dir;
    this.firewall = firewall;
    this.switchNs = nsName(seq, 'sw');
  }

  /** The namespaces this lab made (switch first). */
  get namespaces(): readonly string[] {
    return this.#namespaces;
  }

  host(name: string): LabHost {
    const h = this.#hosts.get(name);
    if (!h) throw new Error(`no host ${name} in this lab (hosts: ${[...this.#hosts.keys()].join(', ')})`);
    return h;
  }

  hosts(kind?: 'host' | 'client'): LabHost[] {
    return [...this.#hosts.values()].filter((h) => kind === undefined || h.kind === kind);
  }

  /** @internal builds the namespaces; called by createLab. */
  build(servers: string[], clients: string[]): void {
    this.#makeNs(this.switchNs);
    ip(['-n', this.switchNs, 'link', 'set', 'lo', 'up']);
    ip(['-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', this.switchNs, 'link', 'set', 'br0', 'up']);
    const add = (name: string, octet: number, kind: 'host' | 'client'): void => {
      const ns = nsName(this.#seq, name);
      this.#makeNs(ns);
      const address = `198.18.${this.id}.${octet}`;
      // the veth pair is created inside the switch namespace with its peer moved straight into
      // the host's: it never exists in the root namespace
      ip(['-n', this.switchNs, 'link', 'add', `v-${name}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      ip(['-n', this.switchNs, 'link', 'set', `v-${name}`, 'master', 'br0', 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1'], { allowFail: true });
      ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      this.#hosts.set(name, new LabHost(this, name, ns, address, kind));
    };
    servers.forEach((h, i) => add(h, i + 1, 'host'));
    clients.forEach((h, i) => add(h, 101 + i, 'client'));
  }

  #makeNs(ns: string): void {
    ip(['netns', 'add', ns]);
    this.#namespaces.push(ns);
  }

  /** @internal */
  linkDown(host: string): void {
    ip(['-n', this.switchNs, 'link', 'set', `v-${host}`, 'down']);
  }

  /** @internal */
  linkUp(host: string): void {
    ip(['-n', this.switchNs, 'link', 'set', `v-${host}`, 'up']);
  }

  /**
   * Hosts in `a` and hosts in `b` cannot reach each other (packets dropped, both ways); with
   * `oneWay`, only packets from `a` to `b` are dropped (b -> a still delivered). Adds to any
   * partition already in force; heal() removes them all. Clients are hosts too.
   */
  partition(a: string[], b: string[], opts: { oneWay?: boolean } = {}): void {
    for (const x of a) {
      for (const y of b) {
        const ax = this.host(x).address;
        const by = this.host(y).address;
        this.#blocks.push({ from: ax, to: by });
        if (!opts.oneWay) this.#blocks.push({ from: by, to: ax });
      }
    }
    this.#applyFirewall();
  }

  /** Removes every partition. */
  heal(): void {
    this.#blocks = [];
    this.#applyFirewall();
  }

  /** The rules in force in a host (for diagnostics). */
  rules(host: string): string {
    return listRules(this.firewall, this.host(host).ns);
  }

  #applyFirewall(): void {
    for (const h of this.#hosts.values()) applyDrops(this.firewall, h.ns, dropsFor(h.address, this.#blocks));
  }

  /** Kills every process in the lab, deletes its namespaces and scratch dir. Safe to call twice. */
  async teardown(): Promise<void> {
    if (this.#torndown) return;
    const tracked = this.hosts().flatMap((h) => h.processes());
    for (const h of this.hosts()) killAllIn(h.ns, h.processes().map((p) => p.pid));
    await Promise.race([Promise.all(tracked.map((p) => p.exited)), new Promise((r) => setTimeout(r, 5000))]);
    this.teardownSync();
  }

  /** The synchronous teardown (for 'exit' handlers). */
  teardownSync(): void {
    if (this.#torndown) return;
    this.#torndown = true;
    liveLabs.delete(this);
    for (const ns of [...this.#namespaces].reverse()) destroyNamespace(ns);
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Namespaces of this lab that still exist (empty after teardown). */
  leftovers(): string[] {
    const mine = new Set(this.#namespaces);
    return listNamespaces().filter((n) => mine.has(n));
  }
}

/** Creates a lab of network-namespace hosts. Requires root and iproute2. */
export async function createLab(opts: LabOptions): Promise<Lab> {
  if (process.getuid?.() !== 0) throw new Error('the lab needs root (network namespaces): run the tests as root');
  const names = [...opts.hosts, ...(opts.clients ?? [])];
  for (const n of names) if (!NAME_RE.test(n) || n === 'sw') throw new Error(`lab host name ${JSON.stringify(n)}: use 1-10 lowercase letters and digits, starting with a letter (not "sw")`);
  if (new Set(names).size !== names.length) throw new Error(`lab host names must be unique: ${names.join(', ')}`);
  if (opts.hosts.length > 100 || (opts.clients ?? []).length > 100) throw new Error('at most 100 hosts and 100 clients per lab');
  removeStale();
  installHandlers();
  labSeq++;
  const id = ((process.pid + labSeq) % 254) + 1;
  const dir = mkdtempSync(join(tmpdir(), `${DIR_PREFIX}${process.pid}-`));
  chmodSync(dir, 0o755); // postgres must traverse it
  const lab = new Lab(labSeq, id, dir, opts.firewall ?? defaultFirewall());
  liveLabs.add(lab);
  try {
    lab.build(opts.hosts, opts.clients ?? []);
  } catch (err) {
    lab.teardownSync();
    throw err;
  }
  return lab;
}
