// Owns the Grafana dashboard Bulwark ships, generated from the config: an overview row, then one
// row per service (backend state timeline, requests by status class, latency quantiles), per SLO
// (error budget left, burn rates, budget burn-down), per database (roles, replication lag,
// failovers) and per backup plan (age against rpo, last run, sizes), and the process. Every
// query uses a datasource variable, so it imports into any Grafana with a Prometheus source.
import type { BulwarkConfig } from '../core/config/schema.js';
import { VERSION } from '../core/version.js';
import { definitions, label } from '../slo/engine.js';

interface Target {
  expr: string;
  legendFormat?: string;
  refId: string;
}

type Panel = Record<string, unknown>;

const DS = { type: 'prometheus', uid: '${datasource}' };

export function grafanaDashboard(config: BulwarkConfig): Record<string, unknown> {
  const panels: Panel[] = [];
  let id = 1;
  let y = 0;
  const targets = (...t: Array<[string, string?]>): Target[] => t.map(([expr, legendFormat], i) => ({ expr, refId: String.fromCharCode(65 + i), ...(legendFormat ? { legendFormat } : {}) }));
  const row = (title: string): void => {
    panels.push({ id: id++, type: 'row', title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y }, panels: [] });
    y += 1;
  };
  /** Lays panels out left to right on one line of the grid. */
  const line = (...ps: Array<{ w: number; h?: number; panel: Panel }>): void => {
    let x = 0;
    const h = Math.max(...ps.map((p) => p.h ?? 8));
    for (const p of ps) {
      panels.push({ id: id++, datasource: DS, gridPos: { h: p.h ?? 8, w: p.w, x, y }, ...p.panel });
      x += p.w;
    }
    y += h;
  };
  const ts = (title: string, unit: string, t: Target[], extra: Panel = {}): Panel => ({ type: 'timeseries', title, targets: t, fieldConfig: { defaults: { unit }, overrides: [] }, ...extra });
  const stat = (title: string, unit: string, t: Target[], thresholds: Array<{ color: string; value: number | null }>, extra: Panel = {}): Panel => ({
    type: 'stat',
    title,
    targets: t,
    fieldConfig: { defaults: { unit, thresholds: { mode: 'absolute', steps: thresholds } }, overrides: [] },
    options: { colorMode: 'background', reduceOptions: { calcs: ['lastNotNull'] } },
    ...extra,
  });
  const upDown = { mappings: [{ type: 'value', options: { '0': { text: 'down', color: 'red' }, '1': { text: 'up', color: 'green' } } }] };

  row('Overview');
  line(
    { w: 6, h: 4, panel: stat('Bulwark up', 'none', targets(['max(bulwark_build_info)']), [{ color: 'red', value: null }, { color: 'green', value: 1 }], { fieldConfig: { defaults: { ...upDown, thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }] } }, overrides: [] } }) },
    { w: 6, h: 4, panel: stat('Backends taking traffic', 'none', targets(['sum(max by (service, backend) (bulwark_proxy_backend_up))']), [{ color: 'red', value: null }, { color: 'green', value: 1 }]) },
    { w: 6, h: 4, panel: stat('SLO alerts firing', 'none', targets(['sum(bulwark_slo_alert_firing) or vector(0)']), [{ color: 'green', value: null }, { color: 'red', value: 1 }]) },
    { w: 6, h: 4, panel: stat('Failed notifications (24h)', 'none', targets(['sum(increase(bulwark_notifications_total{result="failed"}[24h])) or vector(0)']), [{ color: 'green', value: null }, { color: 'red', value: 1 }]) },
  );

  for (const svc of Object.keys(config.services)) {
    const s = JSON.stringify(svc);
    row(`Service ${svc}`);
    line(
      { w: 8, panel: { type: 'state-timeline', title: `${svc}: backends`, targets: targets([`max by (backend) (bulwark_proxy_backend_up{service=${s}})`, '{{backend}}']), fieldConfig: { defaults: { ...upDown, color: { mode: 'thresholds' }, thresholds: { mode: 'absolute', steps: [{ color: 'red', value: null }, { color: 'green', value: 1 }] } }, overrides: [] } } },
      { w: 8, panel: ts(`${svc}: requests by status`, 'reqps', targets([`sum by (code) (rate(bulwark_proxy_requests_total{service=${s}}[$__rate_interval]))`, '{{code}}'])) },
      {
        w: 8,
        panel: ts(
          `${svc}: latency`,
          's',
          targets(
            ...([0.5, 0.95, 0.99] as const).map((p): [string, string] => [`histogram_quantile(${p}, sum by (le) (rate(bulwark_proxy_request_duration_seconds_bucket{service=${s}}[$__rate_interval])))`, `p${p * 100}`]),
          ),
        ),
      },
    );
  }

  for (const def of definitions(config)) {
    const sel = `bulwark_slo=${JSON.stringify(def.name)}`;
    row(`SLO ${def.name} (${Number((def.config.objective * 100).toPrecision(8))}% ${def.sli} of ${def.config.service})`);
    const lookbacks = [...new Set(def.tiers.map((t) => t.long_ms))].sort((a, b) => a - b);
    line(
      { w: 6, panel: stat('Error budget left', 'percentunit', targets([`slo:period_error_budget_remaining:ratio{${sel}}`]), [{ color: 'red', value: null }, { color: 'orange', value: 0.1 }, { color: 'green', value: 0.25 }]) },
      { w: 9, panel: ts('Error budget burn-down', 'percentunit', targets([`slo:period_error_budget_remaining:ratio{${sel}}`, 'budget left'])) },
      { w: 9, panel: ts('Burn rate', 'x', targets(...lookbacks.map((ms): [string, string] => [`slo:sli_error:ratio_rate${label(ms)}{${sel}} / on (bulwark_slo, bulwark_service) group_left slo:error_budget:ratio{${sel}}`, label(ms)]))) },
    );
  }

  for (const db of Object.keys(config.databases)) {
    const d = JSON.stringify(db);
    row(`Database ${db}`);
    line(
      { w: 8, panel: { type: 'state-timeline', title: `${db}: roles`, targets: targets([`max by (node, role) (bulwark_db_node_role{database=${d}}) == 1`, '{{node}} {{role}}']) } },
      { w: 8, panel: ts(`${db}: replication lag`, 'bytes', targets([`bulwark_db_replication_lag_bytes{database=${d}}`, '{{node}}'])) },
      { w: 8, panel: ts(`${db}: failovers and switchovers`, 'none', targets([`sum by (kind, result) (increase(bulwark_db_failovers_total{database=${d}}[1h]))`, '{{kind}} {{result}}']), { description: 'Per hour. Write downtime: bulwark_db_last_write_downtime_seconds.' }) },
    );
  }

  for (const [plan, p] of Object.entries(config.backups)) {
    const pl = JSON.stringify(plan);
    row(`Backup plan ${plan}`);
    line(
      { w: 8, panel: ts(`${plan}: age of the newest verified snapshot`, 's', targets([`bulwark_backup_age_seconds{plan=${pl}}`, '{{target}}'], [`vector(${Math.round((p.rpo ?? 86_400_000) / 1000)})`, 'rpo'])) },
      { w: 8, panel: { type: 'state-timeline', title: `${plan}: last run`, targets: targets([`bulwark_backup_last_run_ok{plan=${pl}}`, '{{target}}']), fieldConfig: { defaults: { mappings: [{ type: 'value', options: { '0': { text: 'failed', color: 'red' }, '1': { text: 'ok', color: 'green' } } }] }, overrides: [] } } },
      { w: 8, panel: ts(`${plan}: snapshot size`, 'bytes', targets([`bulwark_backup_snapshot_bytes{plan=${pl}}`, '{{target}}'])) },
    );
  }

  row('Bulwark process');
  line(
    { w: 12, panel: ts('CPU', 'percentunit', targets(['rate(process_cpu_seconds_total{job=~"$job"}[$__rate_interval])', '{{instance}}'])) },
    { w: 12, panel: ts('Memory', 'bytes', targets(['process_resident_memory_bytes{job=~"$job"}', '{{instance}}'])) },
  );

  return {
    title: 'Bulwark',
    uid: 'bulwark',
    description: `Generated by bulwark ${VERSION} (bulwark slo grafana) from the config: services, SLOs, databases, backup plans.`,
    tags: ['bulwark'],
    schemaVersion: 39,
    version: 1,
    editable: true,
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [
        { name: 'datasource', label: 'Prometheus', type: 'datasource', query: 'prometheus', current: {} },
        { name: 'job', label: 'job', type: 'query', datasource: DS, query: 'label_values(bulwark_build_info, job)', includeAll: true, multi: true, current: {} },
      ],
    },
    panels,
  };
}
