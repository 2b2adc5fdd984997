// Owns one process the lab started inside a host namespace (`ip netns exec NS cmd ...`, which
// execs, so the child's pid is the command's own): its output tail (and optionally a log file),
// its exit, signals (SIGSTOP/SIGCONT for pauses) and stopping it. Used only by the lab.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { IP } from './netns.js';

export interface SpawnOptions {
  /** A name for logs and errors (default: the command's basename). */
  name?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Run the command as this OS user (`runuser -u USER --`), e.g. 'postgres'. */
  user?: string;
  /** Also append the output to this file. */
  logFile?: string;
  /** Bytes of output kept in memory (default 16 KiB). */
  tailBytes?: number;
  /** Written to the child's stdin, which is then closed (default: stdin ignored). */
  input?: string;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class LabProcess {
  readonly name: string;
  readonly ns: string;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  #child: ChildProcess;
  #tail = '';
  #stdout = '';
  #tailBytes: number;
  #log: WriteStream | undefined;
  #exit: ExitInfo | undefined;
  #lineListeners = new Set<(line: string, stream: 'stdout' | 'stderr') => void>();
  #partial = { stdout: '', stderr: '' };

  constructor(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}) {
    this.ns = ns;
    this.name = opts.name ?? cmd.split('/').pop() ?? cmd;
    this.#tailBytes = opts.tailBytes ?? 16 * 1024;
    const argv = opts.user ? ['runuser', '-u', opts.user, '--', cmd, ...args] : [cmd, ...args];
    this.#child = spawn(IP, ['netns', 'exec', ns, ...argv], {
      env: opts.env ?? process.env,
      ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      // its own process group: a pause can stop the group, and the test runner's Ctrl-C does not
      // reach it before the lab's teardown does
      detached: true,
    });
    if (this.#child.pid === undefined) throw new Error(`could not start ${cmd} in ${ns}`);
    this.pid = this.#child.pid;
    if (opts.logFile) this.#log = createWriteStream(opts.logFile, { flags: 'a' });
    if (opts.input !== undefined) this.#child.stdin?.end(opts.input);
    this.#child.stdout?.on('data', (d: Buffer) => this.#output(d, 'stdout'));
    this.#child.stderr?.on('data', (d: Buffer) => this.#output(d, 'stderr'));
    this.exited = new Promise((resolve) => {
      this.#child.once('error', (err) => {
        this.#tail += `\n[spawn error: ${err.message}]`;
      });
      this.#child.once('close', (code, signal) => {
        this.#exit = { code, signal };
        this.#log?.end();
        resolve(this.#exit);
      });
    });
  }

  #output(d: Buffer, stream: 'stdout' | 'stderr'): void {
    const s = d.toString();
    this.#tail = (this.#tail + s).slice(-this.#tailBytes);
    if (stream === 'stdout') this.#stdout += s;
    this.#log?.write(d);
    if (this.#lineListeners.size === 0) return;
    const text = this.#partial[stream] + s;
    const lines = text.split('\n');
    this.#partial[stream] = lines.pop() ?? '';
    for (const line of lines) for (const fn of this.#lineListeners) fn(line, stream);
  }

  /** The last output (stdout and stderr interleaved). */
  tail(): string {
    return this.#tail;
  }

  /** All of stdout (for short-lived commands whose result is on stdout). */
  stdout(): string {
    return this.#stdout;
  }

  /** Calls fn for every complete output line from now on. */
  onLine(fn: (line: string, stream: 'stdout' | 'stderr') => void): () => void {
    this.#lineListeners.add(fn);
    return () => this.#lineListeners.delete(fn);
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  get exitInfo(): ExitInfo | undefined {
    return this.#exit;
  }

  /** Sends a signal to the process (or its whole process group). */
  signal(sig: NodeJS.Signals, opts: { group?: boolean } = {}): void {
    if (!this.running) return;
    try {
      process.kill(opts.group ? -this.pid : this.pid, sig);
    } catch {
      // already gone
    }
  }

  /** SIGTERM, then SIGKILL of the group after `graceMs`; resolves when it exited. */
  async stop(graceMs = 5000): Promise<ExitInfo> {
    if (!this.running) return this.#exit as ExitInfo;
    this.signal('SIGCONT', { group: true });
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL', { group: true }), graceMs);
    const info = await this.exited;
    clearTimeout(timer);
    return info;
  }

  /** Waits for a line matching `re` in the output; throws with the tail if it exits or times out first. */
  async waitForLine(re: RegExp, timeoutMs = 15_000): Promise<string> {
    const seen = this.#tail.split('\n').find((l) => re.test(l));
    if (seen !== undefined) return seen;
    return new Promise((resolve, reject) => {
      const off = this.onLine((line) => {
        if (!re.test(line)) return;
        done();
        resolve(line);
      });
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name} in ${this.ns}: no output matching ${re} within ${timeoutMs} ms\n${this.#tail}`));
      }, timeoutMs);
      void this.exited.then((e) => {
        done();
        reject(new Error(`${this.name} in ${this.ns} exited (${e.code ?? e.signal}) before printing ${re}\n${this.#tail}`));
      });
      const done = (): void => {
        off();
        clearTimeout(timer);
      };
    });
  }
}
