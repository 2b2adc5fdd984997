// Owns the accounting of passive outlier detection across services: turns a live-traffic failure
// into the pool's decision, and publishes what it decided (logs, 'proxy.outlier' events and the
// audit trail, the end of each ejection period) and the counts and detection-time histogram the
// metrics export.
import type { SubsystemDeps } from '../core/subsystem.js';
import type { Backend, OutlierDecision, Pool } from './pool.js';
import { EventHistogram } from './stats.js';

export class Outliers {
  readonly #deps: Pick<SubsystemDeps, 'logger' | 'events' | 'clock'>;
  readonly #later: (ms: number, fn: () => void) => void;
  readonly detection = new EventHistogram('bulwark_proxy_ejection_detection_seconds');
  readonly #counts = new Map<string, { ejected: number; capped: number }>();

  constructor(deps: Pick<SubsystemDeps, 'logger' | 'events' | 'clock'>, later: (ms: number, fn: () => void) => void) {
    this.#deps = deps;
    this.#later = later;
  }

  /** A live-traffic failure of b in service: the pool decides, this publishes. detail goes to debug logs only. */
  failed<B extends Backend<unknown>>(service: string, pool: Pool<B>, b: B, reason: string, detail: string): OutlierDecision | undefined {
    const now = this.#deps.clock.now();
    const d = pool.failure(b, reason, now);
    this.#deps.logger.debug({ service, backend: b.name, reason, detail }, 'backend failure on live traffic');
    if (!d) return undefined;
    let o = this.#counts.get(service);
    if (!o) {
      o = { ejected: 0, capped: 0 };
      this.#counts.set(service, o);
    }
    if (d.capped) {
      o.capped++;
      this.#deps.logger.error({ service, backend: b.name, reason: d.reason }, 'OUTLIER EJECTION REFUSED: too much of the pool is already ejected; the backend keeps taking traffic');
      this.#deps.events.emit('audit.event', { kind: 'proxy.outlier.capped', subject: `${service}/${b.name}`, message: d.reason, at: now });
      return d;
    }
    o.ejected++;
    this.detection.observe(service, d.detectionMs / 1000);
    this.#deps.logger.warn({ service, backend: b.name, reason: d.reason, until: new Date(d.until).toISOString() }, 'backend ejected on live-traffic failures');
    this.#deps.events.emit('proxy.outlier', { service, backend: b.name, ejected: true, reason: d.reason, until: d.until, at: now });
    this.#later(d.until - now, () => {
      this.#deps.events.emit('proxy.outlier', { service, backend: b.name, ejected: false, reason: 'ejection period ended', until: undefined, at: this.#deps.clock.now() });
    });
    return d;
  }

  samples(): Array<{ labels: Record<string, string>; value: number }> {
    const out: Array<{ labels: Record<string, string>; value: number }> = [];
    for (const [service, o] of this.#counts) {
      out.push({ labels: { service, result: 'ejected' }, value: o.ejected }, { labels: { service, result: 'capped' }, value: o.capped });
    }
    return out;
  }
}
