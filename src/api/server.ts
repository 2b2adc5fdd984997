// Owns the control API's HTTP server: /healthz, /v1/status, /metrics (Prometheus text), routes
// contributed by subsystems, the dashboard page and its assets, bearer-token auth (an admin token
// for everything, a read-only token for GET and /metrics), the checks that keep a web page from
// driving the API (Host must be loopback when tokenless; a state change from another Origin is
// refused), and graceful close.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { BulwarkError, describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Route, RouteContext } from '../core/subsystem.js';
import { isLoopbackHost, parseHostPort } from '../core/config/types.js';
import { Router, type Match } from './router.js';
import { dashboardAsset, dashboardHtml } from '../web/dashboard.js';

/** What the API needs from the running control plane. */
export interface ControlPlane {
  /** This instance's own status (GET /v1/status?scope=local). */
  status(): unknown;
  /** The whole cluster's status (GET /v1/status); planes without it answer status(). */
  clusterStatus?(): Promise<unknown>;
  routes(): Route[];
  /** Changes when routes() would return a different set (optional: routes are then read once). */
  routesVersion?(): number;
  readonly metrics: Registry;
}

export interface ApiOptions {
  listen: string;
  /** Admin bearer token; required when listen is not a loopback address. */
  token?: string | undefined;
  /** Read-only bearer token: GET/HEAD requests and /metrics, never a state change. */
  readToken?: string | undefined;
  /** Tokens that may do one thing only: one method on paths under a prefix (heartbeats of one service). */
  scopedTokens?: ReadonlyArray<{ token: string; method: string; pathPrefix: string }>;
  logger: Logger;
  /** Largest request body accepted, in bytes. */
  maxBody?: number;
}

const MAX_BODY = 1024 * 1024;

export class ApiServer {
  readonly #plane: ControlPlane;
  readonly #opts: ApiOptions;
  readonly #router = new Router();
  /** Routes contributed by the control plane's subsystems, rebuilt when their version changes. */
  #planeRouter = new Router();
  #planeRoutesVersion: number | undefined;
  #server: Server | undefined;
  #tokenBuf: Buffer | undefined;
  #readTokenBuf: Buffer | undefined;
  #scoped: Array<{ buf: Buffer; method: string; pathPrefix: string }> = [];
  /** Open responses: event streams among them are ended on close (they would hold it forever). */
  readonly #open = new Set<ServerResponse>();

  constructor(plane: ControlPlane, opts: ApiOptions) {
    this.#plane = plane;
    this.#opts = opts;
    const hp = parseHostPort(opts.listen);
    if (!hp) throw new BulwarkError('BULWARK_API_LISTEN', `api.listen: expected an address like 127.0.0.1:7070, got '${opts.listen}'`);
    if (!isLoopbackHost(hp.host) && !opts.token) {
      throw new BulwarkError('BULWARK_API_TOKEN_REQUIRED', `the API listens on ${opts.listen}, beyond loopback, but no token is configured`, {
        hint: 'set api.token_file (a file holding a long random token) or api.token_env, or listen on 127.0.0.1',
      });
    }
    this.#tokenBuf = opts.token ? Buffer.from(opts.token) : undefined;
    this.#readTokenBuf = opts.readToken ? Buffer.from(opts.readToken) : undefined;
    this.#scoped = (opts.scopedTokens ?? []).map((t) => ({ buf: Buffer.from(t.token), method: t.method, pathPrefix: t.pathPrefix }));
    this.#router.add({ method: 'GET', path: '/healthz', handle: () => ({ ok: true }) });
    this.#router.add({
      method: 'GET',
      path: '/v1/status',
      handle: ({ url }) => {
        const scope = url.searchParams.get('scope') ?? 'cluster';
        if (scope !== 'local' && scope !== 'cluster') throw new BulwarkError('BULWARK_API_BAD_REQUEST', `scope=${scope}: expected local or cluster`);
        return scope === 'local' || !this.#plane.clusterStatus ? this.#plane.status() : this.#plane.clusterStatus();
      },
    });
    this.#router.add({
      method: 'GET',
      path: '/v1/whoami',
      handle: ({ req }) => {
        const role = this.#role(req);
        return { role: typeof role === 'object' ? 'scoped' : (role ?? null), token_required: this.#tokenBuf !== undefined || this.#readTokenBuf !== undefined };
      },
    });
    this.#router.add({
      method: 'GET',
      path: '/metrics',
      handle: async ({ res }) => {
        const text = await this.#plane.metrics.metrics();
        res.writeHead(200, { 'content-type': this.#plane.metrics.contentType });
        res.end(text);
      },
    });
    this.#router.add({
      method: 'GET',
      path: '/',
      handle: ({ res }) => {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...PAGE_HEADERS });
        res.end(dashboardHtml());
      },
    });
    this.#router.add({ method: 'GET', path: '/favicon.ico', handle: ({ res }) => void res.writeHead(204).end() });
    this.#router.add({
      method: 'GET',
      path: '/assets/:file',
      handle: ({ res, params }) => {
        const a = dashboardAsset(params['file'] ?? '');
        if (!a) throw new BulwarkError('BULWARK_API_BAD_REQUEST', `no such asset: ${params['file'] ?? ''}`, { httpStatus: 404 });
        res.writeHead(200, { 'content-type': a.type, 'cache-control': 'no-cache', ...PAGE_HEADERS });
        res.end(a.body);
      },
    });
    this.#syncPlaneRoutes();
  }

  #syncPlaneRoutes(): void {
    const version = this.#plane.routesVersion?.() ?? 0;
    if (version === this.#planeRoutesVersion) return;
    const router = new Router();
    for (const r of this.#plane.routes()) router.add(r);
    this.#planeRouter = router;
    this.#planeRoutesVersion = version;
  }

  #match(method: string, pathname: string): { match?: Match; allowed: string[] } {
    const own = this.#router.match(method, pathname);
    if (own.match) return own;
    this.#syncPlaneRoutes();
    const sub = this.#planeRouter.match(method, pathname);
    return sub.match ? sub : { allowed: [...own.allowed, ...sub.allowed] };
  }

  async listen(): Promise<AddressInfo> {
    const hp = parseHostPort(this.#opts.listen) as { host: string; port: number };
    const server = createServer((req, res) => void this.#handle(req, res));
    server.keepAliveTimeout = 5000;
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new BulwarkError('BULWARK_API_LISTEN', `cannot listen on ${this.#opts.listen}: ${err.code ?? err.message}`, {
            hint: err.code === 'EADDRINUSE' ? 'another process uses that port: stop it or change api.listen' : 'check api.listen',
            cause: err,
          }),
        ),
      );
      server.listen(hp.port, hp.host, () => resolve());
    });
    return server.address() as AddressInfo;
  }

  /** The bound address, e.g. "127.0.0.1:7070". */
  get address(): string {
    const a = this.#server?.address() as AddressInfo | null | undefined;
    if (!a) return this.#opts.listen;
    return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
  }

  /** Stops accepting connections, lets in-flight requests finish, closes idle keep-alive sockets. */
  async close(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
      for (const res of this.#open) if (String(res.getHeader('content-type') ?? '').startsWith('text/event-stream')) res.end();
    });
  }

  /**
   * 'admin', 'read', a scoped token's grant, or undefined (no valid token given). Tokenless APIs
   * treat a caller without a token as admin; a scoped token is always held to its scope.
   */
  #role(req: IncomingMessage): 'admin' | 'read' | { method: string; pathPrefix: string } | undefined {
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const given = m ? Buffer.from((m[1] as string).trim()) : undefined;
    const eq = (b: Buffer | undefined): boolean => given !== undefined && b !== undefined && given.length === b.length && timingSafeEqual(given, b);
    for (const s of this.#scoped) if (eq(s.buf)) return { method: s.method, pathPrefix: s.pathPrefix };
    if (!this.#tokenBuf && !this.#readTokenBuf) return 'admin';
    if (eq(this.#tokenBuf)) return 'admin';
    if (eq(this.#readTokenBuf)) return 'read';
    return undefined;
  }

  /** Why a request that a web page may have sent is refused, or undefined. */
  #crossSite(req: IncomingMessage): string | undefined {
    const host = req.headers.host ?? '';
    if (!this.#tokenBuf) {
      // Tokenless means loopback: a Host that is not a loopback name is DNS rebinding.
      const hp = parseHostPort(host) ?? { host: host.replace(/^\[|\]$/g, ''), port: 0 };
      if (!isLoopbackHost(hp.host)) return `Host '${host}' is not a loopback address (the API has no token, so it answers loopback names only)`;
    }
    const method = req.method ?? 'GET';
    if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return undefined;
    const origin = req.headers.origin;
    if (origin !== undefined) {
      let originHost: string;
      try {
        originHost = new URL(origin).host;
      } catch {
        return `Origin '${origin}' is not a URL`;
      }
      if (originHost !== host) return `a ${method} from the web page at ${origin} (another origin than ${host})`;
    }
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return `a ${method} sent by a ${String(site)} web page`;
    return undefined;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.#open.add(res);
    res.once('close', () => this.#open.delete(res));
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://bulwark.invalid');
    } catch {
      return sendError(res, 400, new BulwarkError('BULWARK_API_BAD_REQUEST', 'malformed request URL'));
    }
    const crossSite = this.#crossSite(req);
    if (crossSite) {
      return sendError(res, 403, new BulwarkError('BULWARK_API_FORBIDDEN', `refused ${crossSite}`, { hint: 'use the CLI, curl, or the dashboard served by this API; a page from another site cannot change state' }));
    }
    const isPublic = url.pathname === '/healthz' || ((req.method === 'GET' || req.method === 'HEAD') && (url.pathname === '/' || url.pathname === '/favicon.ico' || url.pathname.startsWith('/assets/')));
    const role = isPublic ? 'admin' : this.#role(req);
    if (role === undefined) {
      res.setHeader('www-authenticate', 'Bearer');
      return sendError(res, 401, new BulwarkError('BULWARK_API_UNAUTHORIZED', 'missing or wrong bearer token', { hint: 'send Authorization: Bearer <token from api.token_file, or api.read_token_file for reading>' }));
    }
    if (role === 'read' && req.method !== 'GET' && req.method !== 'HEAD') {
      return sendError(res, 403, new BulwarkError('BULWARK_API_FORBIDDEN', `the read-only token cannot ${req.method ?? ''} ${url.pathname}`, { hint: 'state changes need the admin token (api.token_file)' }));
    }
    if (typeof role === 'object' && (req.method !== role.method || !url.pathname.startsWith(role.pathPrefix))) {
      return sendError(res, 403, new BulwarkError('BULWARK_API_FORBIDDEN', `this token may only ${role.method} ${role.pathPrefix}…, not ${req.method ?? ''} ${url.pathname}`, { hint: 'a heartbeat token (services.NAME.heartbeat.token_file) is for that service\'s heartbeats; use the read-only or admin token for anything else' }));
    }
    const { match, allowed } = this.#match(req.method ?? 'GET', url.pathname);
    if (!match) {
      if (allowed.length > 0) {
        res.setHeader('allow', allowed.join(', '));
        return sendError(res, 405, new BulwarkError('BULWARK_API_BAD_REQUEST', `method ${req.method ?? ''} not allowed on ${url.pathname}; allowed: ${allowed.join(', ')}`));
      }
      return sendError(res, 404, new BulwarkError('BULWARK_API_BAD_REQUEST', `no such endpoint: ${url.pathname}`));
    }
    const max = this.#opts.maxBody ?? MAX_BODY;
    const ctx: RouteContext = { req, res, params: match.params, url, body: () => readJson(req, max) };
    try {
      const out = await match.route.handle(ctx);
      if (!res.headersSent && out !== undefined) {
        const body = JSON.stringify(out);
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : body);
      } else if (!res.headersSent) {
        res.writeHead(204).end();
      }
    } catch (err) {
      if (err instanceof BulwarkError) {
        const status = err.httpStatus ?? (err.code === 'BULWARK_API_BAD_REQUEST' ? 400 : err.code === 'BULWARK_API_UNAUTHORIZED' ? 401 : 500);
        return sendError(res, status, err);
      }
      this.#opts.logger.error({ err: describeError(err), path: url.pathname }, 'API handler failed');
      return sendError(res, 500, new BulwarkError('BULWARK_API_BAD_REQUEST', `internal error: ${describeError(err)}`));
    }
  }
}

/** The page and its assets load nothing from elsewhere, and no other site may frame them. */
const PAGE_HEADERS = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

function sendError(res: ServerResponse, status: number, err: BulwarkError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify({ error: err.toJSON() }));
}

async function readJson(req: IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > max) throw new BulwarkError('BULWARK_API_BAD_REQUEST', `request body larger than ${max} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new BulwarkError('BULWARK_API_BAD_REQUEST', 'request body is not valid JSON');
  }
}
