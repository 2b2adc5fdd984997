// Owns the test harness for a real OpenSSH sshd: its own config, host key and an authorized
// client key in a scratch directory, on a free loopback port. Used by SFTP tests only.
// stop() ends the listener and every session process it forked (found by parent id in /proc).
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { freePort, scratchDir, waitFor } from '../../testing/helpers.js';

export interface Sshd {
  port: number;
  user: string;
  /** The client private key (PEM/OpenSSH) authorized on this server. */
  clientKey: Buffer;
  clientKeyFile: string;
  /** "SHA256:..." fingerprint of the host key. */
  hostKeySha256: string;
  /** A directory the server can write to (the repository parent). */
  dataDir: string;
  /** Stops the server and every session process (a crash of the server box). */
  kill(): Promise<void>;
  /** Starts it again on the same port with the same keys. */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT the server and its sessions: a box that hangs without closing connections. */
  freeze(): void;
  thaw(): void;
  stop(): Promise<void>;
}

function descendants(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = byParent.get(ppid) ?? [];
      list.push(Number(d));
      byParent.set(ppid, list);
    } catch {
      // process ended while scanning
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const c of byParent.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export async function startSshd(): Promise<Sshd> {
  const { dir, cleanup } = scratchDir('bulwark-sshd-');
  mkdirSync('/run/sshd', { recursive: true });
  const hostKey = join(dir, 'host_ed25519');
  const clientKeyFile = join(dir, 'client_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', clientKeyFile]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKeyFile}.pub`));
  const fp = execFileSync('ssh-keygen', ['-lf', `${hostKey}.pub`, '-E', 'sha256']).toString().split(' ')[1] as string;
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir);
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  writeFileSync(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'StrictModes no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin prohibit-password',
      'Subsystem sftp internal-sftp',
      'LogLevel ERROR',
      'MaxStartups 50',
      'MaxSessions 50',
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const c = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child = c;
    await waitFor(async () => {
      if (c.exitCode !== null) throw new Error(`sshd exited with ${c.exitCode}: ${stderr}`);
      return listening(port);
    }, { timeoutMs: 10_000, what: 'sshd to listen' });
  };
  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.pid === undefined) return;
    const pids = [c.pid, ...descendants(c.pid)];
    const gone = new Promise((r) => c.once('exit', r));
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await gone;
    await waitFor(async () => !(await listening(port)), { timeoutMs: 5000, what: 'sshd to stop listening' });
  };
  const signalAll = (sig: NodeJS.Signals): void => {
    const pid = child?.pid;
    if (pid === undefined) return;
    for (const p of [pid, ...descendants(pid)]) {
      try {
        process.kill(p, sig);
      } catch {
        // gone
      }
    }
  };
  await start();
  return {
    port,
    user: userInfo().username,
    clientKey: readFileSync(clientKeyFile),
    clientKeyFile,
    hostKeySha256: fp,
    dataDir,
    kill,
    restart: start,
    freeze: () => signalAll('SIGSTOP'),
    thaw: () => signalAll('SIGCONT'),
    stop: async () => {
      await kill();
      cleanup();
    },
  };
}
