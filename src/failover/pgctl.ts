// Owns the PostgreSQL tools for one node on this machine: initdb, pg_ctl start/stop/promote/
// reload, pg_basebackup, pg_rewind and pg_controldata, run as the postgres OS user (runuser)
// when Bulwark runs as root; the standby files (standby.signal, primary_conninfo in
// postgresql.auto.conf); and fencing (SIGKILL of every process whose working directory is the
// data directory: the postmaster and any orphaned backend still holding client connections).
import { spawn } from 'node:child_process';
import { chownSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync, appendFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { BulwarkError } from '../core/errors.js';
import type { NodeActions } from './nodes.js';

/** A file Bulwark writes into a data directory it fenced: the node was a primary and may have diverged, so it rejoins only through pg_rewind. */
export const FENCE_MARKER = 'bulwark.fenced';

export interface NodeSpec {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
}

export interface ToolSettings {
  readonly binDir: string;
  readonly osUser: string;
  readonly superuser: string;
  /** Where pg_ctl's server log goes (a file Bulwark opens, so postgres needs no write access to its directory). */
  readonly logFile: string;
}

export interface ToolResult {
  code: number | null;
  output: string;
}

/** libpq connection string for a node, as a standby's primary_conninfo or a tool's --source-server. */
export function conninfo(n: { host: string; port: number }, user: string, extra: Record<string, string> = {}): string {
  const q = (v: string): string => (/^[A-Za-z0-9_.\-/]+$/.test(v) ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`);
  const kv: Record<string, string> = { host: n.host, port: String(n.port), user, ...extra };
  return Object.entries(kv)
    .map(([k, v]) => `${k}=${q(v)}`)
    .join(' ');
}

let cachedUid: { uid: number; gid: number } | undefined;
function osUserIds(user: string): { uid: number; gid: number } {
  if (cachedUid) return cachedUid;
  const uid = Number(execFileSync('id', ['-u', user]).toString().trim());
  const gid = Number(execFileSync('id', ['-g', user]).toString().trim());
  cachedUid = { uid, gid };
  return cachedUid;
}

export class PgCtl implements NodeActions {
  readonly node: NodeSpec;
  readonly #s: ToolSettings;

  constructor(node: NodeSpec, settings: ToolSettings) {
    this.node = node;
    this.#s = settings;
  }

  get #asRoot(): boolean {
    return process.getuid?.() === 0;
  }

  /** Runs a PostgreSQL tool; output (stdout+stderr) is captured, the server log is not. */
  run(tool: string, args: string[], opts: { timeoutMs?: number; detachedLog?: boolean } = {}): Promise<ToolResult> {
    const bin = join(this.#s.binDir, tool);
    const [cmd, argv] = this.#asRoot ? ['runuser', ['-u', this.#s.osUser, '--', bin, ...args]] : [bin, args];
    return new Promise((resolve, reject) => {
      // pg_ctl start leaves the postmaster running with our stdio: give it the log file, never a pipe.
      let logFd: number | undefined;
      let child;
      if (opts.detachedLog) {
        mkdirSync(dirname(this.#s.logFile), { recursive: true });
        logFd = openSync(this.#s.logFile, 'a');
        child = spawn(cmd, argv as string[], { stdio: ['ignore', logFd, logFd], env: cleanEnv(), cwd: '/' });
      } else {
        child = spawn(cmd, argv as string[], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv(), cwd: '/' });
      }
      let output = '';
      child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8000)));
      child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-8000)));
      const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
      child.on('error', (err) => {
        clearTimeout(timer);
        if (logFd !== undefined) closeSync(logFd);
        reject(new BulwarkError('BULWARK_DB_TOOL_FAILED', `cannot run ${bin}: ${err.message}`, { hint: 'check databases.*.bin_dir and that PostgreSQL 15 is installed', cause: err }));
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        if (logFd !== undefined) closeSync(logFd);
        if (opts.detachedLog) output = tail(this.#s.logFile);
        resolve({ code, output });
      });
    });
  }

  async #must(tool: string, args: string[], what: string, opts: { timeoutMs?: number; detachedLog?: boolean } = {}): Promise<void> {
    const r = await this.run(tool, args, opts);
    if (r.code !== 0) {
      throw new BulwarkError('BULWARK_DB_TOOL_FAILED', `${what} failed for node ${this.node.name} (${tool} exit ${r.code ?? 'killed'})`, {
        details: r.output.trim().split('\n').slice(-8),
        hint: `check ${this.node.dataDir} (owned by ${this.#s.osUser}, parent directories traversable) and port ${this.node.port}`,
      });
    }
  }

  get dataDir(): string {
    return this.node.dataDir;
  }

  initialized(): boolean {
    return existsSync(join(this.node.dataDir, 'PG_VERSION'));
  }

  isStandbyConfigured(): boolean {
    return existsSync(join(this.node.dataDir, 'standby.signal'));
  }

  /** The postmaster pid when it runs (postmaster.pid names a live process), else undefined. */
  postmasterPid(): number | undefined {
    let text: string;
    try {
      text = readFileSync(join(this.node.dataDir, 'postmaster.pid'), 'utf8');
    } catch {
      return undefined;
    }
    const pid = Number(text.split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return undefined;
    try {
      process.kill(pid, 0);
    } catch {
      return undefined;
    }
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('postgres')) return undefined; // zombie (empty) or another program
    } catch {
      return undefined;
    }
    return pid;
  }

  /** Creates the (empty) data directory owned by the postgres user. */
  prepareDir(): void {
    mkdirSync(this.node.dataDir, { recursive: true, mode: 0o700 });
    if (this.#asRoot) {
      const { uid, gid } = osUserIds(this.#s.osUser);
      chownSync(this.node.dataDir, uid, gid);
    }
  }

  /** initdb with trust auth for the superuser over loopback, then the replication settings. */
  async initdb(settings: Record<string, string | number | boolean>, hotStandby: boolean): Promise<void> {
    this.prepareDir();
    await this.#must('initdb', ['-D', this.node.dataDir, '-U', this.#s.superuser, '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync'], 'initdb', { timeoutMs: 120_000 });
    const base: Record<string, string | number | boolean> = {
      wal_level: 'replica',
      wal_log_hints: 'on',
      max_wal_senders: 10,
      max_replication_slots: 10,
      wal_keep_size: '256MB',
      hot_standby: hotStandby ? 'on' : 'off',
      wal_receiver_status_interval: '1s',
      wal_sender_timeout: '10s',
      wal_receiver_timeout: '10s',
      unix_socket_directories: '',
      synchronous_standby_names: '',
      ...settings,
    };
    const lines = Object.entries(base).map(([k, v]) => `${k} = ${typeof v === 'number' || typeof v === 'boolean' ? String(v) : `'${String(v).replace(/'/g, "''")}'`}`);
    appendFileSync(join(this.node.dataDir, 'postgresql.conf'), `\n# --- written by Bulwark (failover) ---\n${lines.join('\n')}\n`);
  }

  /** Lets the other hosts of a cluster connect (replication, rewind, observation, the instances' listeners): trust from exactly these addresses. */
  allowHosts(addresses: readonly string[], extra: readonly string[] = []): void {
    if (addresses.length === 0 && extra.length === 0) return;
    const lines = addresses.flatMap((a) => {
      const cidr = a.includes(':') ? `${a}/128` : `${a}/32`;
      return [`host all all ${cidr} trust`, `host replication all ${cidr} trust`];
    }).concat(extra);
    appendFileSync(join(this.node.dataDir, 'pg_hba.conf'), `\n# --- written by Bulwark (cluster mode: the nodes' and instances' hosts) ---\n${lines.join('\n')}\n`);
  }

  /** Starts the node on its own port and host (pg_rewind copies the source's config, so these always come from -o). */
  async start(): Promise<void> {
    // A killed postmaster can linger as a zombie (a PID 1 that does not reap): postgres would take
    // its pid file for a live server. The pid file of a postmaster that is not running is stale.
    if (this.postmasterPid() === undefined) rmSync(join(this.node.dataDir, 'postmaster.pid'), { force: true });
    const opts = `-p ${this.node.port} -c listen_addresses=${this.node.host} -c cluster_name=${this.node.name}`;
    await this.#must('pg_ctl', ['start', '-D', this.node.dataDir, '-w', '-t', '60', '-o', opts], 'pg_ctl start', { detachedLog: true, timeoutMs: 70_000 });
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (this.postmasterPid() === undefined) return;
    await this.#must('pg_ctl', ['stop', '-D', this.node.dataDir, '-m', mode, '-w', '-t', '60'], `pg_ctl stop -m ${mode}`, { timeoutMs: 70_000 });
  }

  async promote(): Promise<void> {
    await this.#must('pg_ctl', ['promote', '-D', this.node.dataDir, '-w', '-t', '60'], 'pg_ctl promote', { timeoutMs: 70_000 });
  }

  async reload(): Promise<void> {
    if (this.postmasterPid() === undefined) return;
    await this.#must('pg_ctl', ['reload', '-D', this.node.dataDir], 'pg_ctl reload', { timeoutMs: 30_000 });
  }

  /**
   * Fences the node: SIGKILL to every process running in its data directory (postmaster and
   * orphaned backends), then standby.signal so that a manual restart comes up read-only.
   */
  fence(): number {
    const killed = this.killAll();
    if (this.initialized()) this.#writeAsOwner(join(this.node.dataDir, 'standby.signal'), '');
    return killed;
  }

  /** Records that this node was fenced as a primary (cluster mode): it must rejoin through pg_rewind, never just start. */
  markFenced(why: string): void {
    if (this.initialized()) this.#writeAsOwner(join(this.node.dataDir, FENCE_MARKER), `${new Date().toISOString()} ${why}\n`);
  }

  isMarkedFenced(): boolean {
    return existsSync(join(this.node.dataDir, FENCE_MARKER));
  }

  clearFenced(): void {
    rmSync(join(this.node.dataDir, FENCE_MARKER), { force: true });
  }

  /** The node its standby configuration follows (primary_conninfo host and port), if any. */
  followsAddress(): string | undefined {
    try {
      const text = readFileSync(join(this.node.dataDir, 'postgresql.auto.conf'), 'utf8');
      const line = /^\s*primary_conninfo\s*=\s*'(.*)'\s*$/m.exec(text)?.[1];
      if (!line) return undefined;
      const host = /(?:^|\s)host=(\S+)/.exec(line)?.[1];
      const port = /(?:^|\s)port=(\d+)/.exec(line)?.[1];
      return host && port ? `${host}:${port}` : undefined;
    } catch {
      return undefined;
    }
  }

  /** SIGKILLs every process whose working directory is this data directory. Returns how many. */
  killAll(): number {
    let target: string;
    try {
      target = realpathSync(this.node.dataDir);
    } catch {
      return 0;
    }
    let n = 0;
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        if (readlinkSync(`/proc/${entry}/cwd`) === target) {
          process.kill(Number(entry), 'SIGKILL');
          n++;
        }
      } catch {
        // gone, or not ours to see
      }
    }
    return n;
  }

  /** Replaces the data directory with a fresh copy of the source (pg_basebackup -X stream), configured as its standby. */
  async clone(source: NodeSpec): Promise<void> {
    this.killAll();
    rmSync(this.node.dataDir, { recursive: true, force: true });
    this.prepareDir();
    await this.#must(
      'pg_basebackup',
      // not the node's own application_name: the base backup's WAL stream must never be taken for
      // the standby itself (named synchronous, or counted as a caught-up replica) while it is cloned
      ['-D', this.node.dataDir, '-d', conninfo(source, this.#s.superuser, { application_name: `${this.node.name}-basebackup` }), '-R', '-X', 'stream', '-c', 'fast', '--no-sync'],
      `pg_basebackup from ${source.name}`,
      { timeoutMs: 600_000 },
    );
    this.configureStandby(source);
  }

  /**
   * pg_rewind against the source. Returns false (and leaves the node stopped, fenced by
   * standby.signal) when the rewind fails: the caller must clone instead, never start it.
   */
  async rewind(source: NodeSpec): Promise<{ ok: boolean; output: string }> {
    this.killAll();
    // single-user crash recovery (which pg_rewind runs on an unclean target) refuses standby.signal
    rmSync(join(this.node.dataDir, 'standby.signal'), { force: true });
    const r = await this.run('pg_rewind', ['-D', this.node.dataDir, `--source-server=${conninfo(source, this.#s.superuser, { dbname: 'postgres' })}`, '--no-sync'], { timeoutMs: 600_000 });
    // whatever happened, the node must not be startable as a primary
    if (this.initialized()) this.#writeAsOwner(join(this.node.dataDir, 'standby.signal'), '');
    return { ok: r.code === 0, output: r.output };
  }

  /** Writes standby.signal and points primary_conninfo at the primary (postgresql.auto.conf). */
  configureStandby(primary: NodeSpec): void {
    const auto = join(this.node.dataDir, 'postgresql.auto.conf');
    let text = '';
    try {
      text = readFileSync(auto, 'utf8');
    } catch {
      // created below
    }
    const keep = text.split('\n').filter((l) => !/^\s*(primary_conninfo|primary_slot_name|synchronous_standby_names)\s*=/.test(l) && l !== '');
    // a dead primary host answers nothing: notice it in seconds, not after TCP's retransmission timeout
    const dead = { connect_timeout: '2', keepalives: '1', keepalives_idle: '1', keepalives_interval: '1', keepalives_count: '3', tcp_user_timeout: '3000' };
    keep.push(`primary_conninfo = '${conninfo(primary, this.#s.superuser, { application_name: this.node.name, ...dead }).replace(/'/g, "''")}'`);
    keep.push("synchronous_standby_names = ''");
    this.#writeAsOwner(auto, `${keep.join('\n')}\n`);
    this.#writeAsOwner(join(this.node.dataDir, 'standby.signal'), '');
  }

  /**
   * Sets synchronous_standby_names in postgresql.auto.conf and reloads: usable while the node is
   * still a standby (ALTER SYSTEM is not), so a standby about to be promoted already requires its
   * synchronous standby when the promotion ends. (Set after promotion, the checkpointer — busy
   * with the end-of-recovery checkpoint — can take seconds to apply it, and commits in between
   * are acknowledged with no synchronous copy.)
   */
  async setSyncNamesOffline(value: string): Promise<void> {
    const auto = join(this.node.dataDir, 'postgresql.auto.conf');
    let text = '';
    try {
      text = readFileSync(auto, 'utf8');
    } catch {
      // created below
    }
    const keep = text.split('\n').filter((l) => !/^\s*synchronous_standby_names\s*=/.test(l) && l !== '');
    keep.push(`synchronous_standby_names = '${value.replace(/'/g, "''")}'`);
    this.#writeAsOwner(auto, `${keep.join('\n')}\n`);
    await this.reload();
  }

  /** Latest checkpoint location (pg_controldata) as text, for a stopped node. */
  async checkpointLsn(): Promise<string | undefined> {
    const r = await this.run('pg_controldata', ['-D', this.node.dataDir], { timeoutMs: 30_000 });
    return /Latest checkpoint location:\s+([0-9A-F]+\/[0-9A-F]+)/i.exec(r.output)?.[1];
  }

  #writeAsOwner(file: string, text: string): void {
    writeFileSync(file, text, { mode: 0o600 });
    if (this.#asRoot) {
      const st = statSync(this.node.dataDir);
      chownSync(file, st.uid, st.gid);
    }
  }
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', LANG: 'C', LC_ALL: 'C' };
  return env;
}

function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-4000);
  } catch {
    return '';
  }
}
