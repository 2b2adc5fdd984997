// Owns the proxy's Prometheus export: metrics read at scrape time from the pools' plain counters
// and fixed-bucket histograms, so the request path only increments numbers.
import type { Registry } from 'prom-client';
import { LATENCY_BUCKETS, type Backend } from './pool.js';

export interface StatsSource {
  /** Every (service, backend) pair currently configured. */
  each(fn: (service: string, b: Backend, role: string) => void): void;
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

const CLASSES = ['failed', '1xx', '2xx', '3xx', '4xx', '5xx'];

/** A metric computed at scrape time, in the shape prom-client's Registry formats. */
class ScrapeMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator = 'sum';
  readonly #values: () => Sample[];

  constructor(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => Sample[]) {
    this.name = name;
    this.help = help;
    this.type = type;
    this.#values = values;
  }

  get(): { name: string; help: string; type: string; values: Sample[]; aggregator: string } {
    return { name: this.name, help: this.help, type: this.type, values: this.#values(), aggregator: this.aggregator };
  }

  reset(): void {}
}

/** Registers the proxy's metric families on the registry. */
export function registerProxyMetrics(registry: Registry, src: StatsSource, extra: { ejectionSeconds: () => Sample[]; outliers: () => Sample[] }): void {
  const per = (fn: (service: string, b: Backend, role: string, out: Sample[]) => void) => (): Sample[] => {
    const out: Sample[] = [];
    src.each((s, b, role) => fn(s, b, role, out));
    return out;
  };
  const metrics = [
    new ScrapeMetric(
      'bulwark_proxy_requests_total',
      'Requests (HTTP) or connections (TCP) finished per service and backend, by status class (failed = no status: connect error, reset, timeout)',
      'counter',
      per((service, b, _r, out) => {
        for (let i = 0; i < CLASSES.length; i++) {
          const v = b.codes[i] ?? 0;
          if (v > 0 || i === 2) out.push({ labels: { service, backend: b.name, code: CLASSES[i] as string }, value: v });
        }
      }),
    ),
    new ScrapeMetric(
      'bulwark_proxy_errors_total',
      'Live-traffic failures per backend (connect refused/reset/timeout, counted 5xx)',
      'counter',
      per((service, b, _r, out) => out.push({ labels: { service, backend: b.name }, value: b.errors })),
    ),
    new ScrapeMetric(
      'bulwark_proxy_retries_total',
      'Attempts retried on another backend after a failure against this backend',
      'counter',
      per((service, b, _r, out) => out.push({ labels: { service, backend: b.name }, value: b.retries })),
    ),
    new ScrapeMetric(
      'bulwark_proxy_in_flight',
      'Requests or connections in flight per backend',
      'gauge',
      per((service, b, _r, out) => out.push({ labels: { service, backend: b.name }, value: b.inFlight })),
    ),
    new ScrapeMetric(
      'bulwark_proxy_backend_up',
      'Backend routability: 1 takes traffic (up or unknown, not ejected), 0 down, ejected or draining',
      'gauge',
      per((service, b, role, out) => out.push({ labels: { service, backend: b.name, state: b.state, role }, value: b.usable(Date.now()) ? 1 : 0 })),
    ),
    new ScrapeMetric(
      'bulwark_proxy_request_duration_seconds',
      'Time from request received to response finished (HTTP) or connection closed (TCP)',
      'histogram',
      per((service, b, _r, out) => {
        const h = b.latency;
        let cum = 0;
        for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
          cum += h.counts[i] ?? 0;
          out.push({ labels: { service, backend: b.name, le: LATENCY_BUCKETS[i] as number }, value: cum, metricName: 'bulwark_proxy_request_duration_seconds_bucket' });
        }
        out.push({ labels: { service, backend: b.name, le: '+Inf' }, value: h.count, metricName: 'bulwark_proxy_request_duration_seconds_bucket' });
        out.push({ labels: { service, backend: b.name }, value: h.sum, metricName: 'bulwark_proxy_request_duration_seconds_sum' });
        out.push({ labels: { service, backend: b.name }, value: h.count, metricName: 'bulwark_proxy_request_duration_seconds_count' });
      }),
    ),
    new ScrapeMetric('bulwark_proxy_ejection_detection_seconds', 'Time from the first live-traffic failure of a streak to the backend being ejected or marked down', 'histogram', extra.ejectionSeconds),
    new ScrapeMetric('bulwark_proxy_outlier_ejections_total', 'Passive outlier ejections (ejected) and ejections refused by max_ejected_percent (capped)', 'counter', extra.outliers),
  ];
  for (const m of metrics) registry.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
}

/** A small fixed-bucket histogram for rare events, exported through ScrapeMetric samples. */
export class EventHistogram {
  readonly #buckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60];
  readonly #series = new Map<string, { counts: number[]; sum: number; count: number }>();
  readonly #name: string;

  constructor(name: string) {
    this.#name = name;
  }

  observe(service: string, seconds: number): void {
    let s = this.#series.get(service);
    if (!s) {
      s = { counts: this.#buckets.map(() => 0), sum: 0, count: 0 };
      this.#series.set(service, s);
    }
    for (let i = 0; i < this.#buckets.length; i++) if (seconds <= (this.#buckets[i] as number)) s.counts[i] = (s.counts[i] ?? 0) + 1;
    s.sum += seconds;
    s.count++;
  }

  samples(): Sample[] {
    const out: Sample[] = [];
    for (const [service, s] of this.#series) {
      for (let i = 0; i < this.#buckets.length; i++) out.push({ labels: { service, le: this.#buckets[i] as number }, value: s.counts[i] ?? 0, metricName: `${this.#name}_bucket` });
      out.push({ labels: { service, le: '+Inf' }, value: s.count, metricName: `${this.#name}_bucket` });
      out.push({ labels: { service }, value: s.sum, metricName: `${this.#name}_sum` });
      out.push({ labels: { service }, value: s.count, metricName: `${this.#name}_count` });
    }
    return out;
  }
}
