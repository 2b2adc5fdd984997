// Owns the Prometheus rules Bulwark ships, generated from the config: per SLO, Sloth-style
// recording rules (slo:sli_error:ratio_rate<W> for every alert window and the SLO window, plus
// objective, budget, burn-rate and budget-remaining meta series) and multi-window multi-burn-rate
// alerts from the SLO's tiers (the SRE Workbook's by default); and alerts for the incidents the
// metrics show (backend down, no healthy backend, backup failed or older than its rpo, verify
// errors, replication lag, notifications failing). Pure: config in, rule groups out.
import type { BulwarkConfig } from '../core/config/schema.js';
import { definitions, label, type SloDefinition } from '../slo/engine.js';
import { burnThreshold } from '../slo/math.js';
import { LATENCY_BUCKETS } from '../proxy/pool.js';

export interface PromRule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  interval?: string;
  rules: PromRule[];
}

const DAY_MS = 86_400_000;

/** PromQL string literal. */
function q(s: string): string {
  return JSON.stringify(s);
}

/** A group name Prometheus accepts and people can read. */
function groupName(...parts: string[]): string {
  return parts.join('-').replace(/[^A-Za-z0-9_.-]/g, '_');
}

/** The SLO window as a Prometheus range: a calendar month is approximated by 30d. */
function windowRange(def: SloDefinition): string {
  return def.config.window === 'month' ? '30d' : label(def.config.window);
}

/** Error ratio of an SLI over a range, from the proxy's metrics. */
export function sliErrorExpr(def: SloDefinition, range: string): { expr: string; note?: string } {
  const svc = q(def.config.service);
  if (def.sli === 'latency') {
    const threshold = (def.config.latency?.threshold ?? 0) / 1000;
    const le = LATENCY_BUCKETS.find((b) => Math.abs(b - threshold) < 1e-9);
    const bucket = le ?? LATENCY_BUCKETS.find((b) => b > threshold) ?? 30;
    return {
      expr: `1 - (sum(rate(bulwark_proxy_request_duration_seconds_bucket{service=${svc},le="${bucket}"}[${range}])) / sum(rate(bulwark_proxy_request_duration_seconds_count{service=${svc}}[${range}])))`,
      ...(le === undefined ? { note: `latency threshold ${threshold}s is not a histogram bucket; the next bucket up (${bucket}s) is used, so the Prometheus SLI is more lenient than Bulwark's own` } : {}),
    };
  }
  if (def.sli === 'probe') {
    return { expr: `1 - avg_over_time((max(bulwark_proxy_backend_up{service=${svc}}) or vector(0))[${range}:30s])` };
  }
  const classes = new Set<string>(['failed']);
  let note: string | undefined;
  for (const b of def.config.bad_status) {
    if (b === '5xx' || b === '4xx') classes.add(b);
    else {
      classes.add(`${String(b)[0]}xx`);
      note = `bad_status ${String(b)} is counted as its whole class ${String(b)[0]}xx: the metrics keep status classes, not codes`;
    }
  }
  const re = [...classes].sort().join('|');
  return {
    expr: `sum(rate(bulwark_proxy_requests_total{service=${svc},code=~"${re}"}[${range}])) / sum(rate(bulwark_proxy_requests_total{service=${svc}}[${range}]))`,
    ...(note ? { note } : {}),
  };
}

function sloGroups(def: SloDefinition): RuleGroup[] {
  const ids = { bulwark_slo: def.name, bulwark_service: def.config.service };
  const sel = `bulwark_slo=${q(def.name)}`;
  const windowMs = def.config.window === 'month' ? 30 * DAY_MS : def.config.window;
  const win = windowRange(def);
  const budget = 1 - def.config.objective;
  const lookbacks = [...new Set(def.tiers.flatMap((t) => [t.short_ms, t.long_ms]))].sort((a, b) => a - b);
  if (!lookbacks.includes(5 * 60_000)) lookbacks.unshift(5 * 60_000);
  const notes = new Set<string>();
  const recordings: PromRule[] = lookbacks.map((ms) => {
    const r = sliErrorExpr(def, label(ms));
    if (r.note) notes.add(r.note);
    return { record: `slo:sli_error:ratio_rate${label(ms)}`, expr: r.expr, labels: { ...ids, window: label(ms) } };
  });
  if (!lookbacks.includes(windowMs)) recordings.push({
    record: `slo:sli_error:ratio_rate${win}`,
    expr: `sum_over_time(slo:sli_error:ratio_rate5m{${sel}}[${win}]) / ignoring (window) count_over_time(slo:sli_error:ratio_rate5m{${sel}}[${win}])`,
    labels: { ...ids, window: win },
  });
  const meta: PromRule[] = [
    { record: 'slo:objective:ratio', expr: `vector(${def.config.objective})`, labels: ids },
    { record: 'slo:error_budget:ratio', expr: `vector(${Number(budget.toPrecision(12))})`, labels: ids },
    { record: 'slo:time_period:days', expr: `vector(${windowMs / DAY_MS})`, labels: ids },
    { record: 'slo:current_burn_rate:ratio', expr: `slo:sli_error:ratio_rate5m{${sel}} / on (bulwark_slo, bulwark_service) group_left slo:error_budget:ratio{${sel}}`, labels: ids },
    { record: 'slo:period_burn_rate:ratio', expr: `slo:sli_error:ratio_rate${win}{${sel}} / on (bulwark_slo, bulwark_service) group_left slo:error_budget:ratio{${sel}}`, labels: ids },
    { record: 'slo:period_error_budget_remaining:ratio', expr: `1 - slo:period_burn_rate:ratio{${sel}}`, labels: ids },
  ];
  const alerts: PromRule[] = [];
  for (const severity of ['page', 'ticket'] as const) {
    const tiers = def.tiers.filter((t) => t.severity === severity);
    if (tiers.length === 0) continue;
    const cond = tiers
      .map((t) => {
        const factor = Number(burnThreshold(t, windowMs).toPrecision(6));
        const over = (ms: number): string => `max(slo:sli_error:ratio_rate${label(ms)}{${sel}} > (${factor} * ${Number(budget.toPrecision(12))})) without (window)`;
        return `(${over(t.long_ms)} and ${over(t.short_ms)})`;
      })
      .join('\nor\n');
    alerts.push({
      alert: 'BulwarkSLOErrorBudgetBurn',
      expr: cond,
      labels: { ...ids, severity },
      annotations: {
        summary: `SLO ${def.name} (service ${def.config.service}) is burning its error budget too fast (${severity})`,
        description: `Tiers: ${tiers.map((t) => `${Number(burnThreshold(t, windowMs).toPrecision(3))}x over ${label(t.long_ms)} and ${label(t.short_ms)}`).join('; ')}. Objective ${Number((def.config.objective * 100).toPrecision(8))}% over ${win}. Check \`bulwark slo report --slo ${def.name}\` and the dashboard.`,
      },
    });
  }
  const noteText = notes.size ? ` Note: ${[...notes].join('; ')}.` : '';
  return [
    { name: groupName('bulwark-slo-sli-recordings', def.name), rules: recordings },
    { name: groupName('bulwark-slo-meta-recordings', def.name), rules: meta },
    ...(alerts.length ? [{ name: groupName('bulwark-slo-alerts', def.name), rules: alerts.map((a) => (noteText && a.annotations ? { ...a, annotations: { ...a.annotations, description: a.annotations['description'] + noteText } } : a)) }] : []),
  ];
}

function incidentGroup(config: BulwarkConfig): RuleGroup {
  const rules: PromRule[] = [
    {
      alert: 'BulwarkDown',
      expr: 'absent(bulwark_build_info)',
      for: '2m',
      labels: { severity: 'page' },
      annotations: { summary: 'Prometheus scrapes no Bulwark control plane', description: 'bulwark_build_info is absent: the daemon is down, or the scrape (api.read_token_file as bearer token) fails.' },
    },
  ];
  if (Object.keys(config.services).length > 0) {
    rules.push(
      {
        alert: 'BulwarkBackendDown',
        expr: 'max by (service, backend) (bulwark_proxy_backend_up) == 0',
        for: '1m',
        labels: { severity: 'ticket' },
        annotations: { summary: 'Backend {{ $labels.backend }} of {{ $labels.service }} takes no traffic', description: 'Down, ejected on live errors, or draining for a minute.' },
      },
      {
        alert: 'BulwarkNoHealthyBackend',
        expr: 'max by (service) (bulwark_proxy_backend_up) == 0',
        for: '30s',
        labels: { severity: 'page' },
        annotations: { summary: 'Service {{ $labels.service }} has no healthy backend', description: 'Every backend is down, ejected or draining: the proxy answers 503.' },
      },
    );
  }
  const plans = Object.entries(config.backups);
  if (plans.length > 0) {
    rules.push(
      {
        alert: 'BulwarkBackupFailed',
        expr: 'bulwark_backup_last_run_ok == 0',
        labels: { severity: 'ticket' },
        annotations: { summary: 'The last backup run of {{ $labels.plan }}/{{ $labels.target }} failed', description: 'See `bulwark backup plan status {{ $labels.plan }}` and the notify.failed/backup events.' },
      },
      {
        alert: 'BulwarkBackupVerifyErrors',
        expr: 'bulwark_backup_verify_errors > 0',
        labels: { severity: 'page' },
        annotations: { summary: 'Verification found errors in {{ $labels.plan }}/{{ $labels.target }}', description: 'The repository has damaged or missing data: run `bulwark backup check --read-data` on it.' },
      },
    );
    for (const [plan, p] of plans) {
      const rpoS = Math.round((p.rpo ?? DAY_MS) / 1000);
      rules.push({
        alert: 'BulwarkBackupRpoBreached',
        expr: `bulwark_backup_age_seconds{plan=${q(plan)}} > ${rpoS}`,
        labels: { severity: 'page', plan },
        annotations: { summary: `Plan ${plan}: the newest verified snapshot of {{ $labels.target }} is older than its rpo (${label(rpoS * 1000)})`, description: 'Backups are not happening or not verifying: check the schedule and `bulwark backup plan status`.' },
      });
    }
  }
  for (const [db, d] of Object.entries(config.databases)) {
    rules.push({
      alert: 'BulwarkReplicationLag',
      expr: `bulwark_db_replication_lag_bytes{database=${q(db)}} > ${d.max_lag_on_failover}`,
      for: '2m',
      labels: { severity: 'ticket', database: db },
      annotations: { summary: `A standby of ${db} lags more than max_lag_on_failover (${d.max_lag_on_failover} bytes)`, description: 'It would not be promoted on a failover; check its disk, network and `bulwark db status`.' },
    });
  }
  if (config.notify && Object.keys(config.notify.channels).length > 0) {
    rules.push({
      alert: 'BulwarkNotificationsFailing',
      expr: 'increase(bulwark_notifications_total{result="failed"}[15m]) > 0',
      labels: { severity: 'ticket' },
      annotations: { summary: 'Notifications through {{ $labels.channel }} fail', description: 'Incidents are not reaching people: run `bulwark notify test {{ $labels.channel }}`.' },
    });
  }
  return { name: 'bulwark-incidents', rules };
}

/** Every rule group for the config: SLO recordings and alerts, then incident alerts. */
export function prometheusRules(config: BulwarkConfig): { groups: RuleGroup[] } {
  return { groups: [...definitions(config).flatMap(sloGroups), incidentGroup(config)] };
}
