// Owns the SLO part of `bulwark demo`: availability, latency and probe-uptime SLOs on the demo's
// `web` service (added by the proxy's demo part, which starts before this one).
import type { Logger } from '../core/logger.js';

/** The shape app/demo.ts expects of a demo part (declared here: a subsystem does not import app/). */
export interface SloDemoPart {
  readonly name: string;
  start(ctx: { dir: string; logger: Logger }): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export function sloDemoPart(): SloDemoPart {
  return {
    name: 'slo',
    async start(ctx) {
      ctx.logger.info('demo: SLOs web-availability (99.9%, SLA 99.5%), web-latency (99% under 200ms), web-uptime (probe, 99.95%)');
      return {
        slos: {
          'web-availability': { service: 'web', objective: '99.9%', sla: '99.5%', window: '30d' },
          'web-latency': { service: 'web', latency: { threshold: '200ms' }, objective: '99%', window: '30d' },
          'web-uptime': { service: 'web', sli: 'probe', objective: '99.95%', window: 'month' },
        },
      };
    },
    async stop() {},
  };
}
