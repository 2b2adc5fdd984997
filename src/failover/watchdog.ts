// The watchdog program of cluster mode: one detached process per local primary, started by the
// node's member (failover/watchdog-ctl.ts). The member keeps writing a deadline (monotonic
// milliseconds, CLOCK_MONOTONIC, the clock every process on the host shares) until which its
// leader lease is trusted. If the deadline passes while this process still watches — the member
// is paused (SIGSTOP, a long GC), killed, or stopped without handing over — the watchdog fences
// the primary itself: SIGKILL of every process in its data directory, standby.signal and the
// fence marker, so a primary never takes writes after its lease could be granted to another node.
//   node watchdog.js CONFIG.json     (the config names the deadline file and the node)
// A removed deadline file means "disarmed": the watchdog exits without touching the node.
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { PgCtl, type NodeSpec, type ToolSettings } from './pgctl.js';

export interface WatchdogConfig {
  deadline_file: string;
  log_file: string;
  node: NodeSpec;
  tools: ToolSettings;
  /** How often the deadline file is read. */
  poll_ms: number;
}

const mono = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;

function log(file: string, msg: string): void {
  try {
    appendFileSync(file, `${new Date().toISOString()} watchdog[${process.pid}]: ${msg}\n`);
  } catch {
    // nowhere to say it
  }
}

function main(argv: string[]): number {
  const [configFile] = argv;
  if (!configFile) {
    process.stderr.write('usage: watchdog.js CONFIG.json\n');
    return 2;
  }
  const cfg = JSON.parse(readFileSync(configFile, 'utf8')) as WatchdogConfig;
  const ctl = new PgCtl(cfg.node, cfg.tools);
  log(cfg.log_file, `watching ${cfg.node.name} (${cfg.node.dataDir}), deadline file ${cfg.deadline_file}`);
  const tick = (): void => {
    let until: number;
    try {
      until = (JSON.parse(readFileSync(cfg.deadline_file, 'utf8')) as { until: number }).until;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        log(cfg.log_file, 'disarmed: exiting');
        process.exit(0);
      }
      return; // a half-written file cannot happen (rename), but never fence on a read error alone
    }
    if (mono() < until) return;
    const killed = ctl.fence();
    try {
      ctl.markFenced('fenced by the watchdog: the leader lease was not renewed in time');
    } catch {
      // fence() already wrote standby.signal
    }
    rmSync(cfg.deadline_file, { force: true });
    log(cfg.log_file, `deadline passed by ${Math.round(mono() - until)} ms: fenced ${cfg.node.name} (${killed} processes killed, standby.signal written)`);
    process.exit(0);
  };
  setInterval(tick, cfg.poll_ms);
  tick();
  return 0;
}

main(process.argv.slice(2));
