// Owns the proxy's part of `bulwark demo`: three small HTTP backends on loopback (each answers
// its name, and /health) and a `services.web` section with the proxy on 127.0.0.1:8080 (or a free
// port when 8080 is taken) in front of them, health-checked every second, and a trickle of
// client traffic (4 requests a second) so the dashboard's proxy and SLO tables have numbers.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../core/logger.js';

/** The shape app/demo.ts expects of a demo part (declared here: a subsystem does not import app/). */
export interface ProxyDemoPart {
  readonly name: string;
  start(ctx: { dir: string; logger: Logger }): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

/** Starts one demo backend: GET /health -> 200 "ok", anything else -> "hello from NAME". */
export function startDemoBackend(name: string, port = 0): Promise<{ server: Server; address: string }> {
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    req.resume();
    const body = `hello from ${name}\n`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'x-backend': name });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const a = server.address() as AddressInfo;
      resolve({ server, address: `127.0.0.1:${a.port}` });
    });
  });
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export function proxyDemoPart(): ProxyDemoPart {
  const servers: Server[] = [];
  let traffic: NodeJS.Timeout | undefined;
  return {
    name: 'proxy',
    async start(ctx: { dir: string; logger: Logger }): Promise<Record<string, unknown>> {
      const backends: Array<{ name: string; address: string }> = [];
      for (const name of ['web-1', 'web-2', 'web-3']) {
        const b = await startDemoBackend(name);
        servers.push(b.server);
        backends.push({ name, address: b.address });
      }
      const port = (await portFree(8080)) ? 8080 : await freePort();
      ctx.logger.info({ listen: `127.0.0.1:${port}`, backends: backends.map((b) => b.address) }, 'demo: three web backends behind the proxy');
      // Requests before the proxy listens fail on the client side only; the proxy never sees them.
      traffic = setInterval(() => {
        fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) })
          .then((r) => r.arrayBuffer())
          .catch(() => undefined);
      }, 250);
      traffic.unref();
      return {
        services: {
          web: {
            protocol: 'http',
            listen: `127.0.0.1:${port}`,
            mode: 'active-active',
            balance: 'least-request',
            backends,
            health: { http: { path: '/health', expect: 200 }, interval: '1s', timeout: '500ms', rise: 2, fall: 2 },
            retries: 2,
          },
        },
      };
    },
    async stop(): Promise<void> {
      clearInterval(traffic);
      await Promise.all(
        servers.splice(0).map(
          (s) =>
            new Promise<void>((r) => {
              s.close(() => r());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
