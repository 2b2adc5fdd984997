// Owns a proxy worker process (started by workers/group.ts through node:cluster): it runs the data
// path of every service on listeners shared with the other workers, and keeps no state of its own
// beyond the connections: health, ejections and config come from the daemon; failures, successes
// after a failure, counters and SLI rows go back to it.
import type { ServiceConfig } from '../core/config/schema.js';
import { BulwarkError } from '../core/errors.js';
import type { Backend, Pool } from './pool.js';
import { ServiceRuntime, type ServiceHooks } from './services.js';
import { snapshot, type FromWorker, type SliRow, type ToWorker } from './workers/protocol.js';

const STATS_MS = 200;
const SLI_MS = 100;
const SLI_MAX = 2000;

const send = (m: FromWorker): void => {
  process.send?.(m);
};

const services = new Map<string, ServiceRuntime>();
let sli: SliRow[] = [];
/** Backends with a failure reported since their last success (their next success is reported once). */
const failing = new Set<Backend<unknown>>();

const flushSli = (): void => {
  if (sli.length === 0) return;
  send({ t: 'sli', rows: sli });
  sli = [];
};

const hooks: ServiceHooks = {
  now: () => Date.now(),
  later: (ms, fn) => void setTimeout(fn, ms).unref(),
  finished: (service, b, status, ok, ms) => {
    if (b) {
      const cls = status === undefined ? (ok ? 2 : 0) : status >= 100 && status < 600 ? Math.floor(status / 100) : 0;
      b.codes[cls] = (b.codes[cls] ?? 0) + 1;
      b.latency.observe(ms / 1000);
    }
    sli.push([service, b?.name ?? '', ok, status ?? 0, ms, Date.now()]);
    if (sli.length >= SLI_MAX) flushSli();
  },
  failed: (service: string, _pool: Pool<Backend<unknown>>, b: Backend<unknown>, reason: string, detail: string) => {
    failing.add(b);
    send({ t: 'failed', service, backend: b.name, reason, detail });
  },
  succeeded: (service, b) => {
    if (failing.size === 0 || !failing.delete(b)) return;
    send({ t: 'ok', service, backend: b.name });
  },
  log: (level, fields, msg) => send({ t: 'log', level, fields, msg }),
  localZone: process.env['BULWARK_PROXY_ZONE'] || undefined, // set by workers/group.ts in cluster mode
};

async function configure(cfgs: Record<string, ServiceConfig>): Promise<void> {
  for (const [name, rt] of [...services]) {
    const next = cfgs[name];
    if (!next || next.protocol !== rt.cfg.protocol) {
      services.delete(name);
      void rt.close(rt.cfg.drain_timeout);
    }
  }
  for (const [name, cfg] of Object.entries(cfgs)) {
    const rt = services.get(name);
    if (rt) await rt.update(cfg);
    else services.set(name, await ServiceRuntime.open(name, cfg, hooks));
  }
  send({ t: 'ready', bound: Object.fromEntries([...services].map(([n, rt]) => [n, rt.bound])) });
}

function stats(): void {
  const out: Record<string, Record<string, number[]>> = {};
  for (const [name, rt] of services) {
    const per: Record<string, number[]> = {};
    for (const b of rt.pool.backends) per[b.name] = snapshot(b);
    out[name] = per;
  }
  send({ t: 'stats', services: out });
}

setInterval(stats, STATS_MS).unref();
setInterval(flushSli, SLI_MS).unref();

process.on('message', (m: ToWorker) => {
  switch (m.t) {
    case 'config':
      configure(m.services).catch((err: unknown) => {
        const e = err instanceof BulwarkError ? err : undefined;
        send({ t: 'error', message: err instanceof Error ? err.message : String(err), code: e?.code, hint: e?.hint });
      });
      return;
    case 'health':
      services.get(m.service)?.health(m.node, m.to);
      return;
    case 'eject': {
      const b = services.get(m.service)?.pool.find(m.backend);
      if (b) {
        b.ejectedUntil = m.until;
        b.upSince = m.upSince;
      }
      return;
    }
    case 'ping':
      flushSli();
      stats();
      send({ t: 'pong', id: m.id });
      return;
    case 'stop':
      void Promise.all([...services.values()].map((rt) => rt.close(3000))).then(() => {
        flushSli();
        stats();
        process.disconnect?.();
        process.exit(0);
      });
      return;
  }
});
// The daemon going away takes the workers with it.
process.on('disconnect', () => process.exit(0));
send({ t: 'hello' });
