// Owns the control-plane commands: up, validate, status, nines.
import type { Command } from 'commander';
import { instanceName } from '../../core/config/instance.js';
import { formatDuration, parseDuration, parsePercent } from '../../core/units.js';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { availabilityFor, downtimeFor, PERIODS, type Period } from '../../slo/nines.js';
import { printJson, printTable, usage } from '../output.js';
import { apiGet } from '../api-client.js';
import { setExitCode } from '../exit.js';

export function registerCoreCommands(program: Command): void {
  program
    .command('up')
    .description('run the control plane in the foreground (SIGTERM/SIGINT = graceful stop, SIGHUP = reload)')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--instance <name>', 'cluster mode: which instance under cluster.instances this is (else BULWARK_INSTANCE)')
    .action(async (opts: { config: string; instance?: string }) => {
      const { loadInstanceConfig } = await import('../../core/config/load.js');
      const { createLogger } = await import('../../core/logger.js');
      const { startPlane } = await import('../runtime.js');
      const loaded = loadInstanceConfig(opts.config, instanceName(opts.instance));
      const logger = createLogger({ level: loaded.config.log?.level ?? 'info' });
      const plane = await startPlane(loaded, logger);
      setExitCode(await plane.done);
    });

  program
    .command('validate')
    .description('check a config file: exit 0, or 1 listing every problem as file:line:column')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--instance <name>', 'cluster mode: also check that this instance is listed (else BULWARK_INSTANCE, when set)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { config: string; instance?: string; json?: boolean }) => {
      const { loadConfig, loadInstanceConfig, parseConfigText } = await import('../../core/config/load.js');
      const file = resolve(opts.config);
      const instance = instanceName(opts.instance);
      if (!opts.json) {
        const loaded = loadConfig(file); // throws with every problem listed
        if (instance !== undefined) loadInstanceConfig(file, instance);
        process.stdout.write(`${file}: ok${loaded.config.cluster ? ` (cluster ${loaded.config.cluster.name}, ${loaded.config.cluster.instances.length} instance(s)${instance ? `, this one ${instance}` : ''})` : ''}\n`);
        return;
      }
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch {
        loadConfig(file); // produces the not-found error
        return;
      }
      const r = parseConfigText(text, file);
      printJson({ file, ok: r.problems.length === 0, problems: r.problems });
      if (r.problems.length > 0) setExitCode(1);
    });

  program
    .command('status')
    .description('services, nodes, roles, backups and SLOs, asked of the running daemon')
    .option('-c, --config <file>', 'config file (for api.listen and the token)')
    .option('--api <url>', 'daemon API base URL (default http://127.0.0.1:7070)')
    .option('--instance <name>', 'cluster mode: the instance to ask first (else BULWARK_INSTANCE; any instance shows the whole cluster)')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; api?: string; instance?: string; json?: boolean }) => {
      const status = await apiGet(opts, '/v1/status');
      if (opts.json) return printJson(status);
      printStatus(status as StatusBody);
    });

  program
    .command('nines')
    .description('downtime per year, month, week and day for an availability, or the reverse')
    .argument('[availability]', 'an availability like 99.95 or 99.95%')
    .option('--downtime <d>', 'allowed downtime, like 5m/month, 1h/year, 30s/day (period defaults to month)')
    .option('--json', 'print JSON')
    .action((availability: string | undefined, opts: { downtime?: string; json?: boolean }) => {
      if ((availability === undefined) === (opts.downtime === undefined)) {
        throw usage('give an availability (bulwark nines 99.95) or --downtime (bulwark nines --downtime 5m/month), not both or neither');
      }
      let a: number;
      let input: Record<string, unknown>;
      if (opts.downtime !== undefined) {
        const [d, per = 'month'] = opts.downtime.split('/');
        if (!(per in PERIODS)) throw usage(`--downtime: unknown period '${per}'`, 'use one of year, month, week, day');
        const ms = parseDuration(d ?? '', '--downtime');
        if (ms > PERIODS[per as Period]) throw usage(`--downtime: ${d ?? ''} is longer than a ${per}`);
        a = availabilityFor(ms, per as Period);
        input = { downtime_ms: ms, period: per };
      } else {
        a = parsePercent(availability as string, 'availability');
        input = { availability: a };
      }
      const t = downtimeFor(a);
      if (opts.json) return printJson({ ...input, availability: a, availability_percent: a * 100, nines: t.nines, downtime_ms: t.downtime_ms });
      process.stdout.write(`availability ${formatPercent(a)} (${Number.isFinite(t.nines) ? t.nines.toFixed(2) : '∞'} nines)\n`);
      printTable(
        (Object.keys(PERIODS) as Period[]).map((p) => ({ per: p, downtime: formatDuration(t.downtime_ms[p]) })),
        ['per', 'downtime'],
      );
    });
}

function formatPercent(a: number): string {
  return `${Number((a * 100).toPrecision(8)).toString()}%`;
}

interface StatusBody {
  version: string;
  started_at: number;
  config_file: string;
  subsystems: Record<string, unknown>;
  cluster?: {
    name: string | null;
    self: string;
    members: Array<{ name: string; api: string; zone: string | null; state: string; reachable: boolean; self: boolean; version: string | null; started_at: number | null; health: { subsystems: number; errors: string[] } | null; error?: { message: string } }>;
    members_error?: string;
    instances: Record<string, { state: string; status?: StatusBody; error?: { code: string; message: string } }>;
  };
}

function printSections(subsystems: Record<string, unknown>): void {
  const names = Object.keys(subsystems);
  if (names.length === 0) process.stdout.write('no subsystems configured\n');
  for (const name of names) {
    const v = subsystems[name] as { rows?: Array<Record<string, unknown>>; columns?: string[] } | undefined;
    process.stdout.write(`\n${name}\n`);
    if (v && Array.isArray(v.rows)) printTable(v.rows, v.columns);
    else process.stdout.write(`${JSON.stringify(v, null, 2)}\n`);
  }
}

/** One row per member: its state in etcd, whether its API answered, its version and health. */
export function memberRows(c: NonNullable<StatusBody['cluster']>): Array<Record<string, unknown>> {
  return c.members.map((m) => ({
    instance: m.self ? `${m.name} (this)` : m.name,
    api: m.api,
    zone: m.zone ?? undefined,
    member: m.state,
    api_reachable: m.reachable ? 'yes' : 'NO',
    version: m.version ?? undefined,
    up_since: m.started_at === null ? undefined : new Date(m.started_at).toISOString(),
    health: m.health === null ? undefined : m.health.errors.length === 0 ? `ok (${m.health.subsystems} subsystems)` : `errors: ${m.health.errors.join(', ')}`,
  }));
}

function printStatus(s: StatusBody): void {
  const c = s.cluster;
  if (!c || c.name === null) {
    process.stdout.write(`bulwark ${s.version}, up since ${new Date(s.started_at).toISOString()}, config ${s.config_file}\n`);
    printSections(s.subsystems);
    return;
  }
  const up = c.members.filter((m) => m.state === 'up').length;
  const unreachable = c.members.filter((m) => !m.reachable).length;
  process.stdout.write(`cluster ${c.name}: ${c.members.length} instance(s), ${up} up in etcd, ${unreachable} unreachable; answered by ${c.self}, config ${s.config_file}\n`);
  if (c.members_error) process.stdout.write(`membership unknown: ${c.members_error}\n`);
  process.stdout.write('\nmembers\n');
  printTable(memberRows(c), ['instance', 'api', 'zone', 'member', 'api_reachable', 'version', 'up_since', 'health']);
  for (const m of c.members) {
    process.stdout.write(`\n=== instance ${m.name}${m.self ? ' (this one)' : ''}${m.zone ? `, zone ${m.zone}` : ''} ===\n`);
    if (m.self) {
      printSections(s.subsystems);
      continue;
    }
    const v = c.instances[m.name];
    if (v?.state === 'up' && v.status) printSections(v.status.subsystems ?? {});
    else process.stdout.write(`UNREACHABLE: ${v?.error?.message ?? 'no answer'}\n`);
  }
}
