// Owns the watchdog of one local primary (cluster mode): arms it with the lease's trusted-until
// deadline (monotonic ms) by atomically replacing a small file, starts the detached watchdog
// process when none runs for this node (a restarted instance finds the one its predecessor left,
// which kept guarding the primary meanwhile), and disarms it (removes the file) when the node is
// no longer primary. See failover/watchdog.ts for what it does when the deadline passes.
import { spawn } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeSpec, ToolSettings } from './pgctl.js';
import type { WatchdogConfig } from './watchdog.js';

const PROGRAM = fileURLToPath(new URL('./watchdog.js', import.meta.url));

export class Watchdog {
  readonly #dir: string;
  readonly #deadline: string;
  readonly #pidFile: string;
  readonly #config: WatchdogConfig;

  constructor(opts: { dir: string; node: NodeSpec; tools: ToolSettings }) {
    this.#dir = opts.dir;
    this.#deadline = join(opts.dir, `${opts.node.name}.deadline`);
    this.#pidFile = join(opts.dir, `${opts.node.name}.pid`);
    this.#config = { deadline_file: this.#deadline, log_file: join(opts.dir, `${opts.node.name}.log`), node: opts.node, tools: opts.tools, poll_ms: 20 };
  }

  /** Whether a deadline is set (the watchdog guards the node). */
  armed(): boolean {
    try {
      readFileSync(this.#deadline);
      return true;
    } catch {
      return false;
    }
  }

  /** Sets the deadline (monotonic ms) and makes sure the watchdog process runs. */
  arm(untilMono: number): void {
    mkdirSync(this.#dir, { recursive: true });
    const tmp = `${this.#deadline}.tmp`;
    writeFileSync(tmp, JSON.stringify({ until: untilMono, by: process.pid }));
    renameSync(tmp, this.#deadline);
    if (!this.#running()) this.#spawn();
  }

  /** The node is no longer primary: the watchdog exits without acting. */
  disarm(): void {
    rmSync(this.#deadline, { force: true });
  }

  #running(): boolean {
    try {
      const pid = Number(readFileSync(this.#pidFile, 'utf8'));
      process.kill(pid, 0);
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('watchdog.js');
    } catch {
      return false;
    }
  }

  #spawn(): void {
    const cfgFile = join(this.#dir, `${this.#config.node.name}.json`);
    writeFileSync(cfgFile, JSON.stringify(this.#config));
    const log = openSync(this.#config.log_file, 'a');
    try {
      const child = spawn(process.execPath, [PROGRAM, cfgFile], { detached: true, stdio: ['ignore', log, log], cwd: '/' });
      child.unref();
      if (child.pid) writeFileSync(this.#pidFile, String(child.pid));
    } finally {
      closeSync(log);
    }
  }
}
