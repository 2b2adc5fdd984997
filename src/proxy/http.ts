// Owns the HTTP side of one service: a node:http server in front, a keep-alive http.Agent per
// backend behind, streaming both ways. Retries go to a different backend when the connection
// fails, resets or times out before any response byte: always when the request was never sent,
// otherwise only for idempotent methods whose body was not consumed. Adds X-Forwarded-*.
import { Agent, createServer, request, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Backend, Pool } from './pool.js';

/** What an exchange reports back to the service (metrics, events, outlier detection). */
export interface HttpHooks {
  now(): number;
  /** A request finished (success or failure). backend undefined when no backend was tried. */
  finished(backend: Backend | undefined, status: number, ok: boolean, latencyMs: number): void;
  /** A live-traffic failure against a backend (connect refused/reset/timeout, or a counted 5xx). */
  failed(backend: Backend, reason: string): void;
  succeeded(backend: Backend): void;
}

export interface HttpTimeouts {
  connect: number;
  response: number;
  idle: number;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Request headers not forwarded (hop-by-hop, plus the ones we rewrite). */
const DROP_REQ = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'trailer', 'x-forwarded-proto', 'x-forwarded-host']);
const DROP_RES = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer']);

export function backendAgent(): Agent {
  return new Agent({ keepAlive: true, keepAliveMsecs: 1000, maxSockets: Infinity, maxFreeSockets: 512, scheduling: 'lifo', timeout: 0 });
}

/** One client request and its attempts. */
class Exchange {
  readonly svc: HttpService;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly start: number;
  readonly headers: string[];
  readonly idempotent: boolean;
  readonly hasBody: boolean;
  tried = 0;
  attempts = 0;
  backend: Backend | undefined;
  upReq: ClientRequest | undefined;
  /** The current attempt's socket finished connecting (bytes may have been sent). */
  sent = false;
  bodyStarted = false;
  responded = false;
  done = false;
  timedOut = false;
  lastError = '';

  constructor(svc: HttpService, req: IncomingMessage, res: ServerResponse) {
    this.svc = svc;
    this.req = req;
    this.res = res;
    this.start = performance.now();
    const method = req.method ?? 'GET';
    this.idempotent = IDEMPOTENT.has(method);
    const h = req.headers;
    this.hasBody = (h['content-length'] !== undefined && h['content-length'] !== '0') || h['transfer-encoding'] !== undefined;
    // Forwarded headers: the raw list minus hop-by-hop ones, plus X-Forwarded-*.
    const raw = req.rawHeaders;
    const out: string[] = [];
    let xff: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i] as string;
      const lk = k.length < 20 ? k.toLowerCase() : k.toLowerCase();
      if (DROP_REQ.has(lk)) continue;
      if (lk === 'x-forwarded-for') {
        xff = xff === undefined ? (raw[i + 1] as string) : `${xff}, ${raw[i + 1] as string}`;
        continue;
      }
      out.push(k, raw[i + 1] as string);
    }
    const ip = req.socket.remoteAddress ?? '';
    out.push('x-forwarded-for', xff === undefined ? ip : `${xff}, ${ip}`, 'x-forwarded-proto', 'http');
    if (h.host !== undefined) out.push('x-forwarded-host', h.host);
    this.headers = out;
    res.once('close', () => {
      if (!this.done) this.#clientGone();
    });
  }

  attempt(): void {
    const svc = this.svc;
    const now = svc.hooks.now();
    const b = svc.pool.pick(now, this.tried);
    if (!b) {
      this.#fail(this.attempts === 0 ? 503 : this.timedOut ? 504 : 502, this.attempts === 0 ? 'no healthy backend' : this.lastError);
      return;
    }
    this.attempts++;
    if (b.index < 31) this.tried |= 1 << b.index;
    this.backend = b;
    this.sent = false;
    this.timedOut = false;
    b.inFlight++;
    b.requests++;
    const up = request({
      host: b.host,
      port: b.port,
      method: this.req.method,
      path: this.req.url,
      headers: this.headers as unknown as Record<string, string>,
      agent: b.io as Agent,
      setHost: false,
    });
    this.upReq = up;
    up.setTimeout(svc.timeouts.connect);
    up.on('socket', (s: Socket) => {
      if (s.connecting) {
        s.once('connect', () => {
          if (this.upReq !== up) return;
          this.sent = true;
          up.setTimeout(svc.timeouts.response);
          this.#sendBody(up);
        });
      } else {
        this.sent = true;
        up.setTimeout(svc.timeouts.response);
        this.#sendBody(up);
      }
    });
    up.on('timeout', () => {
      this.timedOut = true;
      up.destroy(Object.assign(new Error(this.sent ? `no response within ${svc.timeouts.response} ms` : `connect timeout after ${svc.timeouts.connect} ms`), { code: this.sent ? 'ERESPONSETIMEOUT' : 'ECONNECTTIMEOUT' }));
    });
    up.on('response', (ur: IncomingMessage) => this.#onResponse(up, b, ur));
    up.on('error', (err: NodeJS.ErrnoException) => this.#onError(up, b, err));
    if (!this.hasBody) up.end();
  }

  #sendBody(up: ClientRequest): void {
    if (!this.hasBody || this.bodyStarted) return;
    this.bodyStarted = true;
    this.req.pipe(up);
  }

  #onResponse(up: ClientRequest, b: Backend, ur: IncomingMessage): void {
    if (this.upReq !== up || this.done) {
      ur.resume();
      return;
    }
    this.responded = true;
    const status = ur.statusCode ?? 502;
    const res = this.res;
    const raw = ur.rawHeaders;
    const out: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i] as string;
      if (DROP_RES.has(k.toLowerCase())) continue;
      out.push(k, raw[i + 1] as string);
    }
    up.setTimeout(this.svc.timeouts.idle);
    res.writeHead(status, ur.statusMessage, out);
    if (status >= 500 && this.svc.count5xx) this.svc.hooks.failed(b, `http ${status}`);
    else this.svc.hooks.succeeded(b);
    ur.pipe(res);
    ur.once('end', () => {
      if (this.upReq === up) this.#finish(b, status, status < 500);
    });
    ur.once('error', () => {
      if (this.upReq === up && !this.done) {
        this.#release(b);
        this.done = true;
        this.svc.hooks.finished(b, status, false, performance.now() - this.start);
        res.destroy();
      }
    });
  }

  #onError(up: ClientRequest, b: Backend, err: NodeJS.ErrnoException): void {
    if (this.upReq !== up || this.done) return;
    const code = err.code ?? 'EUNKNOWN';
    this.lastError = `${b.name}: ${err.message || code}`;
    if (this.responded) {
      // Mid-body failure: the client already has a status line; cut its connection.
      this.#release(b);
      this.done = true;
      this.svc.hooks.failed(b, code);
      this.svc.hooks.finished(b, this.res.statusCode, false, performance.now() - this.start);
      this.res.destroy();
      return;
    }
    this.#release(b);
    this.svc.hooks.failed(b, code);
    if (this.bodyStarted) this.req.unpipe(up);
    const neverSent = !this.sent && !this.bodyStarted;
    const retryable = neverSent || (this.idempotent && !this.bodyStarted);
    if (retryable && this.attempts <= this.svc.retries) {
      b.retries++;
      this.attempt();
      return;
    }
    this.#fail(this.timedOut ? 504 : 502, this.lastError);
  }

  #release(b: Backend): void {
    b.inFlight--;
  }

  #finish(b: Backend, status: number, ok: boolean): void {
    if (this.done) return;
    this.done = true;
    this.#release(b);
    this.svc.hooks.finished(b, status, ok, performance.now() - this.start);
  }

  #fail(status: number, message: string): void {
    if (this.done) return;
    this.done = true;
    const res = this.res;
    if (!res.headersSent && !res.destroyed) {
      const body = `${status === 503 ? 'Service Unavailable' : status === 504 ? 'Gateway Timeout' : 'Bad Gateway'}: ${message}\n`;
      res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-bulwark-error': status === 503 ? 'no-backend' : 'upstream' });
      res.end(body);
    }
    // Drain an unread request body so the client connection stays usable.
    if (this.hasBody && !this.bodyStarted) this.req.resume();
    this.svc.hooks.finished(this.backend, status, false, performance.now() - this.start);
  }

  #clientGone(): void {
    this.done = true;
    const b = this.backend;
    if (this.upReq && b) {
      this.upReq.destroy();
      b.inFlight--;
      this.svc.hooks.finished(b, 499, true, performance.now() - this.start);
    }
  }
}

export class HttpService {
  readonly name: string;
  readonly pool: Pool;
  readonly hooks: HttpHooks;
  timeouts: HttpTimeouts;
  retries: number;
  count5xx: boolean;

  constructor(name: string, pool: Pool, hooks: HttpHooks, opts: { timeouts: HttpTimeouts; retries: number; count5xx: boolean }) {
    this.name = name;
    this.pool = pool;
    this.hooks = hooks;
    this.timeouts = opts.timeouts;
    this.retries = opts.retries;
    this.count5xx = opts.count5xx;
  }

  /** A new server that routes to this service (listen() is the caller's; reload may open a second one). */
  server(): Server {
    const server = createServer({ keepAlive: true }, (req, res) => new Exchange(this, req, res).attempt());
    server.keepAliveTimeout = this.timeouts.idle;
    server.headersTimeout = Math.max(this.timeouts.idle + 1000, 60_000);
    server.requestTimeout = 0;
    return server;
  }
}
