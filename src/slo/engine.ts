// Owns the SLO report: for each SLO in the config, reads its buckets from the store (through
// SloRepo) and applies the pure math (math.ts, windows.ts, predict.ts): SLI over the window, nines,
// budget, burn rates, alert tiers, time to exhaustion, SLA status, maintenance exclusions, missing
// data and predicted availability. Used by the daemon (GET /v1/slo, alerts, metrics) and by
// `bulwark slo report` offline.
import type { BulwarkConfig, SloConfig } from '../core/config/schema.js';
import { budget, burnRate, errorRatio, evaluateTiers, timeToExhaustion, WORKBOOK_TIERS, type AlertTier, type Budget, type Counts, type TierResult } from './math.js';
import { ninesOf } from './nines.js';
import { DEFAULT_BACKEND_AVAILABILITY, DEFAULT_PROXY_AVAILABILITY, predictService, type Prediction } from './predict.js';
import { KEYS, type SloRepo } from './repo.js';
import type { BucketSums } from './sums.js';
import { lengthOf, normalise, windowAt, type Range } from './windows.js';

export type SliKind = 'availability' | 'latency' | 'probe';

export interface SloDefinition {
  name: string;
  config: SloConfig;
  sli: SliKind;
  /** Request SLIs count requests; probe SLIs count milliseconds. */
  timeBased: boolean;
  /** Minimum-events guard of request SLIs (time slices use each tier's short window instead). */
  tiers: AlertTier[];
  minEvents: number;
}

export function definitions(config: BulwarkConfig): SloDefinition[] {
  return Object.entries(config.slos).map(([name, c]) => {
    const sli: SliKind = c.sli ?? (c.latency ? 'latency' : 'availability');
    const tiers: AlertTier[] = c.alerts?.tiers
      ? c.alerts.tiers.map((t) => ({ severity: t.severity, long_ms: t.long, short_ms: t.short, budget_fraction: t.budget, burn_rate: t.burn_rate }))
      : WORKBOOK_TIERS.map((t) => ({ ...t }));
    return { name, config: c, sli, timeBased: sli === 'probe', tiers, minEvents: sli === 'probe' ? 0 : (c.alerts?.min_events ?? 20) };
  });
}

/** A short label for a lookback: 300000 -> "5m", 3600000 -> "1h", 259200000 -> "3d". */
export function label(ms: number): string {
  for (const [size, unit] of [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1000, 's']] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

export interface MaintenanceWindow {
  id: number | undefined;
  source: 'config' | 'api';
  services: string[] | null;
  start: number;
  end: number;
  reason: string;
}

export function maintenanceWindows(config: BulwarkConfig, repo: SloRepo): MaintenanceWindow[] {
  const fromConfig: MaintenanceWindow[] = config.maintenance.map((m) => ({ id: undefined, source: 'config', services: m.services ?? null, start: m.start, end: m.end, reason: m.reason }));
  const fromApi: MaintenanceWindow[] = repo.maintenance().map((m) => ({ id: m.id, source: 'api', services: m.services, start: m.start, end: m.end, reason: m.reason }));
  return [...fromConfig, ...fromApi].sort((a, b) => a.start - b.start);
}

export type SlaStatus = 'met' | 'at-risk' | 'breached' | 'no-data';

export interface SloReport {
  name: string;
  service: string;
  sli: SliKind;
  unit: 'requests' | 'ms';
  objective: number;
  window: { kind: 'rolling' | 'month'; start: number; end: number; length_ms: number; label: string };
  good: number;
  total: number;
  /** The SLI over the window (good / valid), null without data. */
  value: number | null;
  /** The SLI as a percentage with four decimals: "99.9712%". */
  value_text: string | null;
  nines: number | null;
  budget: Budget;
  /** Burn rate over each lookback the alert tiers use ("5m", "1h", ...), null without data. */
  burn_rates: Record<string, number | null>;
  /** The burn rate the time to exhaustion uses: the fastest tier's long window. */
  current_burn: number | null;
  /** Time until the budget is gone at the current burn; null when it is not being spent. */
  time_to_exhaustion_ms: number | null;
  sla: { target: number; status: SlaStatus } | null;
  maintenance: { excluded_ms: number; windows: MaintenanceWindow[] };
  /** Time in the window when Bulwark was not running (or the state was unknown): not counted against the service. */
  missing_data_ms: number;
  predicted: Prediction | null;
  tiers: Array<{ severity: string; long: string; short: string; threshold: number; burn_long: number; burn_short: number; condition: boolean; guarded: boolean }>;
  /** Internal (not serialised by the API): the raw tier results for the alert state machine. */
  tier_results?: TierResult[];
}

export interface Report {
  generated_at: number;
  slos: SloReport[];
}

/** Percentage with four decimals, truncated rather than rounded up (99.99996% is not 100.0000%). */
export function percentText(v: number): string {
  // The epsilon undoes binary rounding (0.57 x 1e6 = 569999.9999999999) without rounding up.
  const p = Math.floor(v * 1e6 + 1e-6) / 1e4;
  return `${p.toFixed(4)}%`;
}

export class SloEngine {
  readonly #repo: SloRepo;
  readonly #sums: BucketSums;
  #config: BulwarkConfig;
  #defs: SloDefinition[];

  /** sums: where bucket sums come from (the repo itself, or a caching wrapper around it). */
  constructor(repo: SloRepo, config: BulwarkConfig, sums: BucketSums = repo) {
    this.#repo = repo;
    this.#sums = sums;
    this.#config = config;
    this.#defs = definitions(config);
  }

  setConfig(config: BulwarkConfig): void {
    this.#config = config;
    this.#defs = definitions(config);
  }

  get definitions(): readonly SloDefinition[] {
    return this.#defs;
  }

  #sum(def: SloDefinition, range: Range, excluded: readonly Range[]): Counts {
    if (def.sli === 'availability') return this.#sums.sum({ key: KEYS.availability(def.name) }, range, excluded);
    if (def.sli === 'probe') return this.#sums.sum({ key: KEYS.probe(def.config.service) }, range, excluded);
    return this.#sums.sum({ service: def.config.service, threshold: def.config.latency?.threshold ?? Infinity }, range, excluded);
  }

  #exclusionsFor(service: string, all: readonly MaintenanceWindow[]): MaintenanceWindow[] {
    return all.filter((m) => m.services === null || m.services.includes(service));
  }

  report(now: number, only?: string): Report {
    const maint = maintenanceWindows(this.#config, this.#repo);
    const defs = only === undefined ? this.#defs : this.#defs.filter((d) => d.name === only);
    return { generated_at: now, slos: defs.map((d) => this.#one(d, now, maint)) };
  }

  #one(def: SloDefinition, now: number, allMaint: readonly MaintenanceWindow[]): SloReport {
    const c = def.config;
    const win = windowAt(c.window, now);
    const maint = this.#exclusionsFor(c.service, allMaint);
    const inWindow = normalise(maint, win);
    // Ranges include the bucket that starts at `now` (events stamped exactly now).
    const upTo = now + 1;
    const counts = this.#sum(def, { start: win.start, end: upTo }, maint);
    const observed = this.#sums.sum({ key: KEYS.observed }, { start: win.start, end: upTo }, maint);
    const covered = observed.good;
    const b = budget(c.objective, win.length_ms, counts, { timeBased: def.timeBased, coveredMs: covered });
    const value = counts.total > 0 ? counts.good / counts.total : null;

    const lookbacks = [...new Set(def.tiers.flatMap((t) => [t.short_ms, t.long_ms]))].sort((x, y) => x - y);
    const countsAt = new Map<number, Counts>();
    const burnRates: Record<string, number | null> = {};
    for (const l of lookbacks) {
      const cs = this.#sum(def, { start: now - l, end: upTo }, maint);
      countsAt.set(l, cs);
      const er = errorRatio(cs);
      burnRates[label(l)] = er === undefined ? null : burnRate(er, c.objective);
    }
    const tierResults = evaluateTiers(
      def.tiers,
      def.tiers.map((t) => ({ long: countsAt.get(t.long_ms) as Counts, short: countsAt.get(t.short_ms) as Counts })),
      c.objective,
      win.length_ms,
      // Time slices: a tier needs at least its short window of observed time in its long window,
      // so a blip in the first seconds after Bulwark starts does not page.
      def.timeBased ? (t) => t.short_ms : def.minEvents,
    );
    const fastest = [...def.tiers].sort((x, y) => x.long_ms - y.long_ms)[0];
    const currentBurn = fastest ? (burnRates[label(fastest.long_ms)] ?? null) : null;
    const tte = currentBurn === null ? null : timeToExhaustion(b.remaining_ratio, currentBurn, win.length_ms);

    let sla: SloReport['sla'] = null;
    if (c.sla !== undefined) {
      const status: SlaStatus = value === null ? 'no-data' : value >= c.objective ? 'met' : value >= c.sla ? 'at-risk' : 'breached';
      sla = { target: c.sla, status };
    }
    const elapsed = win.end - win.start;
    const missing = Math.max(0, elapsed - lengthOf(inWindow) - covered);

    return {
      name: def.name,
      service: c.service,
      sli: def.sli,
      unit: def.timeBased ? 'ms' : 'requests',
      objective: c.objective,
      window: { kind: win.kind, start: win.start, end: win.end, length_ms: win.length_ms, label: c.window === 'month' ? 'month' : label(c.window) },
      good: counts.good,
      total: counts.total,
      value,
      value_text: value === null ? null : percentText(value),
      nines: value === null ? null : ninesOf(value),
      budget: b,
      burn_rates: burnRates,
      current_burn: currentBurn,
      time_to_exhaustion_ms: tte === null || !Number.isFinite(tte) ? null : tte,
      sla,
      maintenance: { excluded_ms: lengthOf(inWindow), windows: maint.filter((m) => m.end > win.start && m.start < win.end) },
      missing_data_ms: missing,
      predicted: this.#predict(def, { start: win.start, end: upTo }, observed),
      tiers: tierResults.map((r) => ({
        severity: r.tier.severity,
        long: label(r.tier.long_ms),
        short: label(r.tier.short_ms),
        threshold: r.threshold,
        burn_long: r.burn_long,
        burn_short: r.burn_short,
        condition: r.condition,
        guarded: r.guarded,
      })),
      tier_results: tierResults,
    };
  }

  #predict(def: SloDefinition, win: Range, observed: Counts): Prediction | null {
    const svc = this.#config.services[def.config.service];
    const db = this.#config.databases[def.config.service];
    const nodes = svc ? svc.backends.map((x) => x.name) : db ? db.nodes.map((n) => n.name) : [];
    if (nodes.length === 0) return null;
    const defaults = { backend: def.config.predicted?.backend ?? DEFAULT_BACKEND_AVAILABILITY, proxy: def.config.predicted?.proxy ?? DEFAULT_PROXY_AVAILABILITY };
    // The proxy (Bulwark itself) is available while it runs: measured from the first observation on.
    const first = this.#repo.firstBucket(KEYS.observed);
    const since = first === undefined ? win.end : Math.max(win.start, first);
    const span = win.end - since;
    const proxy = {
      name: 'bulwark',
      kind: 'proxy' as const,
      measured: span > 0 ? { availability: Math.min(1, observed.good / span), history_ms: span } : undefined,
      default: defaults.proxy,
    };
    const backends = nodes.map((n) => {
      const cs = this.#sums.sum({ key: KEYS.node(def.config.service, n) }, win);
      return { name: n, kind: 'backend' as const, measured: cs.total > 0 ? { availability: cs.good / cs.total, history_ms: cs.total } : undefined, default: defaults.backend };
    });
    return predictService(proxy, backends);
  }
}

/** The report without internal fields, as the API and --json print it. */
export function publicReport(r: Report): Report {
  return { generated_at: r.generated_at, slos: r.slos.map(({ tier_results: _t, ...rest }) => rest) };
}
