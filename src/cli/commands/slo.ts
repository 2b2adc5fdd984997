// Owns the `bulwark slo ...` commands: the SLO report, asked of the running daemon (GET /v1/slo),
// or computed offline from the state store in state_dir when the daemon is not running and -c
// names the config.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { BulwarkError } from '../../core/errors.js';
import { formatDuration } from '../../core/units.js';
import type { Report, SloReport } from '../../slo/engine.js';
import { printJson, printTable, usage } from '../output.js';
import { apiGet } from '../api-client.js';

interface ReportOpts {
  config?: string;
  api?: string;
  json?: boolean;
  slo?: string;
  offline?: boolean;
}

type Source = 'daemon' | 'state-store';

/** Computes the report from the state store of a config (the daemon is not running). */
export async function offlineReport(configFile: string, now: number, only?: string): Promise<Report> {
  const { loadConfig } = await import('../../core/config/load.js');
  const { publicReport, SloEngine } = await import('../../slo/engine.js');
  const { SloRepo } = await import('../../slo/repo.js');
  const { SqliteStore } = await import('../../store/sqlite.js');
  const loaded = loadConfig(configFile);
  const stateDir = resolve(loaded.config.state_dir);
  if (!existsSync(join(stateDir, 'state.db'))) {
    throw new BulwarkError('BULWARK_SLO_NO_STATE', `no state store at ${join(stateDir, 'state.db')}: the daemon has never recorded SLIs there`, {
      hint: 'start `bulwark up -c FILE` first, or check state_dir in the config (relative paths are relative to the config file)',
    });
  }
  if (only !== undefined && !loaded.config.slos[only]) {
    throw new BulwarkError('BULWARK_SLO_UNKNOWN', `no SLO named '${only}' under slos in ${loaded.file}`, { hint: `configured: ${Object.keys(loaded.config.slos).join(', ') || '(none)'}` });
  }
  const store = SqliteStore.open(stateDir);
  try {
    return publicReport(new SloEngine(new SloRepo(store), loaded.config).report(now, only));
  } finally {
    store.close();
  }
}

async function getReport(opts: ReportOpts): Promise<{ source: Source; report: Report }> {
  if (opts.offline) {
    if (opts.config === undefined) throw usage('--offline reads the state store named by the config: pass -c FILE');
    return { source: 'state-store', report: await offlineReport(opts.config, Date.now(), opts.slo) };
  }
  const path = opts.slo === undefined ? '/v1/slo' : `/v1/slo?slo=${encodeURIComponent(opts.slo)}`;
  try {
    return { source: 'daemon', report: (await apiGet(opts, path)) as Report };
  } catch (err) {
    if (err instanceof BulwarkError && err.code === 'BULWARK_API_UNREACHABLE' && opts.config !== undefined) {
      return { source: 'state-store', report: await offlineReport(opts.config, Date.now(), opts.slo) };
    }
    throw err;
  }
}

const pct = (v: number): string => `${Number((v * 100).toPrecision(6)).toString()}%`;
const burn = (v: number | null | undefined): string => (v === null || v === undefined ? '-' : `${v.toFixed(2)}x`);
/** Nines of an SLI (JSON turns the Infinity of a perfect SLI into null, so look at the value too). */
const nines = (s: Pick<SloReport, 'nines' | 'value'>): string => (s.value === null ? '-' : s.value >= 1 ? '∞' : s.nines === null ? '-' : s.nines.toFixed(2));

function printReport(source: Source, r: Report): void {
  const when = new Date(r.generated_at).toISOString();
  process.stdout.write(source === 'daemon' ? `SLO report at ${when}, from the running daemon\n\n` : `SLO report at ${when}, from the state store (the daemon is not running: nothing after it stopped is counted)\n\n`);
  if (r.slos.length === 0) {
    process.stdout.write('no SLOs configured (add them under slos: in the config)\n');
    return;
  }
  printTable(
    r.slos.map((s) => ({
      slo: s.name,
      sli: s.sli,
      objective: pct(s.objective),
      window: s.window.label,
      value: s.value_text ?? 'no data',
      nines: nines(s),
      budget_left: `${(s.budget.remaining_ratio * 100).toFixed(1)}%`,
      left: formatDuration(s.budget.remaining_minutes * 60_000),
      burn: burn(s.current_burn),
      exhausted_in: s.time_to_exhaustion_ms === null ? 'never' : formatDuration(s.time_to_exhaustion_ms),
      sla: s.sla ? `${pct(s.sla.target)} ${s.sla.status}` : '-',
    })),
    ['slo', 'sli', 'objective', 'window', 'value', 'nines', 'budget_left', 'left', 'burn', 'exhausted_in', 'sla'],
  );
  for (const s of r.slos) printDetail(s);
}

function printDetail(s: SloReport): void {
  const unit = s.unit === 'ms' ? 'of observed time' : 'requests';
  const counts = s.unit === 'ms' ? `${formatDuration(s.good)} good of ${formatDuration(s.total)} ${unit}` : `${s.good} good of ${s.total} ${unit}`;
  const lines = [
    `\n${s.name} (service ${s.service}, ${s.sli}, objective ${pct(s.objective)} over ${s.window.label === 'month' ? 'the calendar month' : s.window.label})`,
    `  SLI          ${s.value_text ?? 'no data'} (${nines(s)} nines): ${counts}`,
    `  budget       ${(s.budget.remaining_ratio * 100).toFixed(2)}% left = ${formatDuration(s.budget.remaining_minutes * 60_000)} of full outage, of ${formatDuration(s.budget.total_minutes * 60_000)}; consumed ${(s.budget.consumed_ratio * 100).toFixed(2)}% = ${formatDuration(s.budget.consumed_minutes * 60_000)}`,
    `  burn rates   ${Object.entries(s.burn_rates).map(([w, v]) => `${w} ${burn(v)}`).join('  ')}`,
    `  exhaustion   ${s.time_to_exhaustion_ms === null ? 'never at the current burn' : `in ${formatDuration(s.time_to_exhaustion_ms)} at ${burn(s.current_burn)}`}`,
  ];
  if (s.sla) lines.push(`  SLA          ${pct(s.sla.target)}: ${s.sla.status}`);
  if (s.maintenance.excluded_ms > 0 || s.maintenance.windows.length > 0) {
    lines.push(`  maintenance  ${formatDuration(s.maintenance.excluded_ms)} excluded from the budget (${s.maintenance.windows.map((w) => `${new Date(w.start).toISOString()}..${new Date(w.end).toISOString()}${w.reason ? ` ${w.reason}` : ''}`).join('; ')})`);
  }
  lines.push(`  missing data ${s.missing_data_ms > 0 ? formatDuration(s.missing_data_ms) : 'none'} (Bulwark not running: not counted against the service)`);
  if (s.predicted) {
    const parts = s.predicted.parts.map((p) => `${p.name} ${pct(p.availability)} ${p.source}`).join(', ');
    lines.push(`  predicted    ${pct(s.predicted.availability)} from ${s.predicted.formula} [${parts}]; measured ${s.value_text ?? 'no data'}`);
  }
  const firing = s.tiers.filter((t) => t.condition).map((t) => `${t.severity} ${t.long}/${t.short}`);
  lines.push(`  alert tiers  ${s.tiers.map((t) => `${t.severity} ${t.long}/${t.short} at ${t.threshold.toFixed(2)}x`).join(', ')}; over threshold now: ${firing.join(', ') || 'none'}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerSloCommands(program: Command): void {
  const slo = program.command('slo').description('service level objectives');
  slo
    .command('report')
    .description('per SLO: SLI over the window, nines, budget left, burn rates, time to exhaustion, SLA status (asks the daemon; with -c, reads the state store when the daemon is not running)')
    .option('-c, --config <file>', 'config file (api.listen and token; state_dir for the offline report)')
    .option('--api <url>', 'daemon API base URL (default http://127.0.0.1:7070)')
    .option('--slo <name>', 'only this SLO')
    .option('--offline', 'read the state store even if the daemon runs (needs -c)')
    .option('--json', 'print JSON')
    .action(async (opts: ReportOpts) => {
      const { source, report } = await getReport(opts);
      if (opts.json) return printJson({ source, ...report });
      printReport(source, report);
    });
  slo
    .command('rules')
    .description('Prometheus recording and multi-window burn-rate alerting rules for every SLO, and alerts for incidents, generated from the config (YAML for rule_files; check with promtool check rules)')
    .option('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (opts: { config: string; output?: string }) => {
      const { loadConfig: load } = await import('../../core/config/load.js');
      const { prometheusRules } = await import('../../app/prom-rules.js');
      const { stringify } = await import('yaml');
      const loaded = load(opts.config);
      const text = `# Generated by \`bulwark slo rules -c ${loaded.file}\`: regenerate after changing slos, services, backups or databases.\n${stringify(prometheusRules(loaded.config), { lineWidth: 0 })}`;
      await writeOut(text, opts.output);
    });
  slo
    .command('grafana')
    .description('a Grafana dashboard (JSON, import it or provision it) for the metrics of every service, SLO, database and backup plan of the config')
    .option('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('-o, --output <file>', 'write to this file instead of stdout')
    .action(async (opts: { config: string; output?: string }) => {
      const { loadConfig: load } = await import('../../core/config/load.js');
      const { grafanaDashboard } = await import('../../app/grafana.js');
      await writeOut(`${JSON.stringify(grafanaDashboard(load(opts.config).config), null, 2)}\n`, opts.output);
    });
}

async function writeOut(text: string, file: string | undefined): Promise<void> {
  if (file === undefined) {
    process.stdout.write(text);
    return;
  }
  const { writeFileSync } = await import('node:fs');
  writeFileSync(file, text);
  process.stderr.write(`wrote ${file}\n`);
}
