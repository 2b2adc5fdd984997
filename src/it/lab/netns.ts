// Owns the lab's Linux network namespaces: the naming scheme (`bwl<pid>-<lab>-<host>`, so two
// runs never collide and a dead run's leftovers are recognisable), running `ip`/`nft` commands,
// listing and killing the processes inside a namespace, and removing stale namespaces of runs
// whose process is gone. Used only by the lab (tests and benchmarks).
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const IP = '/usr/sbin/ip';
/** Every namespace the lab makes starts with this, then the owning pid. */
export const NS_PREFIX = 'bwl';
/** Lab scratch directories in the temp dir: `bwlab-<pid>-XXXXXX`. */
export const DIR_PREFIX = 'bwlab-';
const NS_RE = /^bwl(\d+)-/;

export function nsName(labSeq: number, host: string, pid = process.pid): string {
  return `${NS_PREFIX}${pid}-${labSeq}-${host}`;
}

/** Runs a command to completion; throws with its stderr when it fails. */
export function run(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { input: opts.input ?? '', encoding: 'utf8', timeout: 20_000 });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0 && !opts.allowFail) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

export function ip(args: string[], opts: { allowFail?: boolean; input?: string } = {}): string {
  return run(IP, args, opts);
}

/** The names of every network namespace on this machine (`ip netns list`). */
export function listNamespaces(): string[] {
  return ip(['netns', 'list'], { allowFail: true })
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/** Processes whose network namespace is `ns` (`ip netns pids`). */
export function nsPids(ns: string): number[] {
  return ip(['netns', 'pids', ns], { allowFail: true })
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** True if the process exists and is not a zombie (this machine's init does not always reap). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

export function sigkill(pids: Iterable<number>): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/**
 * SIGKILLs every process in the namespace, repeating while new ones appear (a process forking
 * while it is killed), until none is left or ~2 s passed. Synchronous: usable from an 'exit' handler.
 */
export function killAllIn(ns: string, extra: Iterable<number> = []): void {
  sigkill(extra);
  const deadline = Date.now() + 2000;
  for (;;) {
    const pids = nsPids(ns).filter(alive);
    if (pids.length === 0 || Date.now() > deadline) return;
    sigkill(pids);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

/** Kills the namespace's processes and deletes it; never throws. */
export function destroyNamespace(ns: string): void {
  try {
    killAllIn(ns);
  } catch {
    // best effort
  }
  ip(['netns', 'delete', ns], { allowFail: true });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes what labs of dead processes left behind: namespaces named `bwl<pid>-...` and scratch
 * dirs `bwlab-<pid>-...` whose pid no longer runs. Returns the namespaces removed.
 */
export function removeStale(): string[] {
  const removed: string[] = [];
  for (const ns of listNamespaces()) {
    const m = NS_RE.exec(ns);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    destroyNamespace(ns);
    removed.push(ns);
  }
  try {
    for (const name of readdirSync(tmpdir())) {
      const m = /^bwlab-(\d+)-/.exec(name);
      if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  } catch {
    // best effort
  }
  return removed;
}

/** Whether a command exists (for choosing nft or iptables). */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
