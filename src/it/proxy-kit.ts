// Owns test fixtures for the proxy and health integration tests: demo
// backends as real child processes (so they can be SIGKILLed), a control plane with health and
// proxy on a real state store and API, and a steady-load client that records every outcome.
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiServer } from '../api/server.js';
import { Daemon } from '../app/daemon.js';
import { configSchema } from '../core/config/schema.js';
import type { BulwarkEvents, EventName } from '../core/events.js';
import { createLogger } from '../core/logger.js';
import { createHealth } from '../health/index.js';
import { createProxy, type Proxy } from '../proxy/index.js';

/** The child backend: GET /health -> 200 (or 500 after POST /fail-health), anything else -> its name. */
const BACKEND_SCRIPT = `
const http = require('node:http');
const [port, name] = process.argv.slice(1);
let healthy = true;
const srv = http.createServer((req, res) => {
  if (req.url === '/health') { res.writeHead(healthy ? 200 : 500); res.end(healthy ? 'ok' : 'bad'); return; }
  if (req.url === '/fail-health') { healthy = false; res.end('ok'); return; }
  let n = 0;
  req.on('data', (d) => (n += d.length));
  req.on('end', () => { res.setHeader('x-backend', name); res.setHeader('x-got-bytes', String(n)); res.setHeader('x-saw-xff', String(req.headers['x-forwarded-for'] || '')); res.end(name); });
});
srv.keepAliveTimeout = 30000;
srv.listen(Number(port), '127.0.0.1', () => process.stdout.write('ready ' + srv.address().port + '\\n'));
`;

export interface ChildBackend {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  readonly child: ChildProcess;
}

/** Starts a backend child process on port (0 = any) and resolves once it listens. */
export function spawnBackend(name: string, port = 0): Promise<ChildBackend> {
  const child = spawn(process.execPath, ['-e', BACKEND_SCRIPT, String(port), name], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`backend ${name} did not start`)), 10_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`backend ${name} exited with ${code}`));
    });
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        const p = Number(m[1]);
        resolve({ name, port: p, address: `127.0.0.1:${p}`, child });
      }
    });
  });
}

export function killHard(b: ChildBackend): Promise<void> {
  return new Promise((resolve) => {
    if (b.child.exitCode !== null || b.child.signalCode !== null) return resolve();
    b.child.once('exit', () => resolve());
    b.child.kill('SIGKILL');
  });
}

export interface Plane {
  daemon: Daemon;
  api: ApiServer;
  apiBase: string;
  /** Events of one kind seen so far. */
  seen<K extends EventName>(event: K): Array<BulwarkEvents[K]>;
  proxyAddress(service: string): string;
  /** The proxy subsystem (for synced(): every worker has applied every change so far). */
  proxy: Proxy;
  stop(): Promise<void>;
}

/** Starts health + proxy (and the API) on a parsed config with a scratch state dir. */
export async function startPlane(raw: Record<string, unknown>): Promise<Plane> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-proxy-test-'));
  const config = configSchema.parse({ ...raw, state_dir: join(dir, 'var'), api: { listen: '127.0.0.1:0' } });
  const logger = createLogger({ level: process.env['BULWARK_TEST_LOG'] ?? 'silent' });
  let proxy: Proxy | undefined;
  const daemon = new Daemon(
    { config, file: join(dir, 'bulwark.yaml'), baseDir: dir },
    {
      logger,
      factories: [
        createHealth,
        (deps) => {
          const p = createProxy(deps);
          proxy = p as Proxy | undefined;
          return p;
        },
      ],
    },
  );
  const log = new Map<string, unknown[]>();
  for (const e of ['health.transition', 'proxy.request', 'proxy.outlier'] as const) {
    log.set(e, []);
    daemon.events.on(e, (p) => log.get(e)?.push(p));
  }
  await daemon.start();
  const api = new ApiServer(daemon, { listen: '127.0.0.1:0', logger });
  await api.listen();
  return {
    daemon,
    api,
    apiBase: `http://${api.address}`,
    seen: <K extends EventName>(event: K) => (log.get(event) ?? []) as Array<BulwarkEvents[K]>,
    proxy: proxy as Proxy,
    proxyAddress: (service: string) => {
      const s = daemon.status().subsystems['proxy'] as { listeners: Record<string, string> };
      return s.listeners[service] as string;
    },
    stop: async () => {
      await api.close();
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Outcome {
  ok: boolean;
  status: number;
  backend: string;
  error: string;
}

/** One GET through a keep-alive agent. */
export function get(address: string, path: string, agent: Agent, opts: { method?: string; body?: Buffer } = {}): Promise<Outcome & { headers: Record<string, string | string[] | undefined> }> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const req = request({ host, port: Number(port), path, agent, method: opts.method ?? 'GET', headers: opts.body ? { 'content-length': opts.body.length } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({ ok: res.statusCode === 200, status: res.statusCode ?? 0, backend: body, error: res.statusCode === 200 ? '' : body, headers: res.headers });
      });
      res.on('error', (err) => resolve({ ok: false, status: res.statusCode ?? 0, backend: '', error: String(err), headers: {} }));
    });
    req.on('error', (err) => resolve({ ok: false, status: 0, backend: '', error: String(err), headers: {} }));
    req.end(opts.body);
  });
}

/** Steady load: `workers` concurrent request loops until stop(). Records every outcome in order. */
export function steadyLoad(address: string, workers = 4): { outcomes: Outcome[]; stop: () => Promise<void> } {
  const outcomes: Outcome[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: workers });
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const o = await get(address, '/work', agent);
      outcomes.push({ ok: o.ok, status: o.status, backend: o.backend, error: o.error });
      if (!o.ok) await new Promise((r) => setTimeout(r, 5));
    }
  });
  return {
    outcomes,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}
