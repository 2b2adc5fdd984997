// Owns the HTTP side of one service: a node:http server in front, an undici keep-alive Pool per
// backend behind (dispatch API: no per-request streams or header objects), streaming both ways.
// Retries go to a different backend when the connection fails, resets or times out before any
// response byte: always when the request was never sent, otherwise only for idempotent methods
// whose body was not consumed. Adds X-Forwarded-*.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { Pool as UndiciPool } from 'undici';
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
/** Request headers not forwarded (hop-by-hop, ones undici sets itself, and the ones we rewrite). */
const DROP_REQ = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'trailer', 'transfer-encoding', 'expect', 'x-forwarded-proto', 'x-forwarded-host']);
const DROP_RES = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer']);

/**
 * The extra hop-by-hop header names a Connection header lists (RFC 9110 7.6.1), lower-cased, or
 * undefined when it lists only the usual close / keep-alive / upgrade (the common case: no work).
 */
export function connectionListed(value: string): Set<string> | undefined {
  let names: Set<string> | undefined;
  for (const t of value.split(',')) {
    const n = t.trim().toLowerCase();
    if (n === '' || n === 'close' || n === 'keep-alive' || n === 'upgrade') continue;
    (names ??= new Set()).add(n);
  }
  return names;
}

/** Removes from a flat [name, value, ...] list the headers whose lower-cased name is in names. */
function withoutNamed(list: string[], names: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) {
    if (!names.has((list[i] as string).toLowerCase())) out.push(list[i] as string, list[i + 1] as string);
  }
  return out;
}
/** Errors that mean no byte of the request reached the backend. */
const NEVER_SENT = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'ENOTFOUND', 'EAI_AGAIN']);
/** Readable names for undici's error codes (they end up in outlier reasons and logs). */
const CODE_NAMES: Record<string, string> = {
  UND_ERR_CONNECT_TIMEOUT: 'ECONNECTTIMEOUT',
  UND_ERR_HEADERS_TIMEOUT: 'ERESPONSETIMEOUT',
  UND_ERR_BODY_TIMEOUT: 'EIDLETIMEOUT',
  UND_ERR_SOCKET: 'ECONNRESET',
};

/** The keep-alive connection pool to one backend. */
export function backendPool(b: { host: string; port: number }, t: HttpTimeouts): UndiciPool {
  return new UndiciPool(`http://${b.host.includes(':') ? `[${b.host}]` : b.host}:${b.port}`, {
    connections: null,
    pipelining: 1,
    connectTimeout: t.connect,
    headersTimeout: t.response,
    bodyTimeout: t.idle,
    keepAliveTimeout: 4000,
  });
}

/** A request body that starts reading the client's body only when undici writes it to a connected socket. */
class BodyFeed extends Readable {
  readonly #ex: Exchange;
  #started = false;

  constructor(ex: Exchange) {
    super();
    this.#ex = ex;
  }

  override _read(): void {
    const req = this.#ex.req;
    if (!this.#started) {
      this.#started = true;
      this.#ex.bodyStarted = true;
      req.on('data', (d: Buffer) => {
        if (!this.push(d)) req.pause();
      });
      req.once('end', () => this.push(null));
      req.once('error', (err) => this.destroy(err));
    }
    req.resume();
  }
}

/** One client request and its attempts; also the undici dispatch handler of the current attempt. */
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
  /** Bumped per attempt so callbacks of an abandoned attempt are ignored. */
  attempt = 0;
  abort: ((err?: Error) => void) | undefined;
  /** The current attempt reached a connected socket (bytes may have been sent). */
  sent = false;
  bodyStarted = false;
  responded = false;
  done = false;
  lastError = '';
  lastCode = '';
  /** A reset connection was already retried on the same backend (a stale keep-alive socket). */
  retriedSame = false;
  resume: (() => void) | undefined;
  /** First response chunk, held until a second one arrives or the response ends. */
  held: Buffer | undefined;
  flowing = false;

  constructor(svc: HttpService, req: IncomingMessage, res: ServerResponse) {
    this.svc = svc;
    this.req = req;
    this.res = res;
    this.start = performance.now();
    this.idempotent = IDEMPOTENT.has(req.method ?? 'GET');
    // One pass over the raw headers (req.headers is built lazily; not touching it saves an object):
    // forward all but hop-by-hop ones, note body framing and host, then add X-Forwarded-*.
    const raw = req.rawHeaders;
    let out: string[] = [];
    let xff: string | undefined;
    let host: string | undefined;
    let conn: string | undefined;
    let hasBody = false;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i] as string;
      const v = raw[i + 1] as string;
      const lk = k.toLowerCase();
      if (lk === 'content-length') {
        if (v !== '0') hasBody = true;
      } else if (lk === 'transfer-encoding') {
        hasBody = true;
        continue;
      } else if (lk === 'host') {
        host = v;
      } else if (lk === 'x-forwarded-for') {
        xff = xff === undefined ? v : `${xff}, ${v}`;
        continue;
      } else if (DROP_REQ.has(lk)) {
        if (lk === 'connection') conn = conn === undefined ? v : `${conn}, ${v}`;
        continue;
      }
      out.push(k, v);
    }
    if (conn !== undefined && conn !== 'keep-alive' && conn !== 'close') {
      // Headers the client named in Connection are hop-by-hop too (parsed only when it says more than keep-alive/close).
      const named = connectionListed(conn);
      if (named) {
        out = withoutNamed(out, named);
        if (named.has('x-forwarded-for')) xff = undefined;
      }
    }
    this.hasBody = hasBody;
    const ip = req.socket.remoteAddress ?? '';
    out.push('x-forwarded-for', xff === undefined ? ip : `${xff}, ${ip}`, 'x-forwarded-proto', 'http');
    if (host !== undefined) out.push('x-forwarded-host', host);
    this.headers = out;
    res.once('close', () => {
      if (!this.done) this.#clientGone();
    });
  }

  /** again: the backend that just reset the connection, tried once more when no other backend is left. */
  next(again?: Backend): void {
    const svc = this.svc;
    const now = svc.hooks.now();
    let b = svc.pool.pick(now, this.tried);
    if (!b && again !== undefined && !this.retriedSame && again.usable(now)) {
      this.retriedSame = true;
      b = again;
    }
    if (!b) {
      this.#fail(this.attempts === 0 ? 503 : this.lastCode === 'ERESPONSETIMEOUT' ? 504 : 502, this.attempts === 0 ? 'no healthy backend' : this.lastError);
      return;
    }
    this.attempts++;
    this.attempt++;
    if (b.index < 31) this.tried |= 1 << b.index;
    this.backend = b;
    this.sent = false;
    this.abort = undefined;
    b.inFlight++;
    b.requests++;
    (b.io as UndiciPool).dispatch(
      { method: (this.req.method ?? 'GET') as 'GET', path: this.req.url ?? '/', headers: this.headers, body: this.hasBody && !this.bodyStarted ? new BodyFeed(this) : null },
      new AttemptHandler(this, b, this.attempt),
    );
  }

  onConnect(attempt: number, abort: (err?: Error) => void): void {
    if (attempt !== this.attempt) return;
    this.sent = true;
    this.abort = abort;
    if (this.done) abort();
  }

  onHeaders(attempt: number, b: Backend, status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (attempt !== this.attempt || this.done) return true;
    if (status < 200 && status !== 101) return true; // 1xx informational: wait for the final status
    this.responded = true;
    let out: string[] = [];
    let conn: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const k = (raw[i] as Buffer).toString('latin1');
      const lk = k.toLowerCase();
      if (DROP_RES.has(lk)) {
        if (lk === 'connection') conn = (raw[i + 1] as Buffer).toString('latin1');
        continue;
      }
      out.push(k, (raw[i + 1] as Buffer).toString('latin1'));
    }
    if (conn !== undefined && conn !== 'keep-alive' && conn !== 'close') {
      const named = connectionListed(conn);
      if (named) out = withoutNamed(out, named);
    }
    const res = this.res;
    if (statusText) res.writeHead(status, statusText, out);
    else res.writeHead(status, out);
    if (status >= 500 && this.svc.count5xx) this.svc.hooks.failed(b, `http ${status}`);
    else this.svc.hooks.succeeded(b);
    this.resume = resume;
    return true;
  }

  onData(attempt: number, chunk: Buffer): boolean {
    if (attempt !== this.attempt || this.done) return true;
    // The first chunk is held back: a small response then leaves in one write with the headers and the end.
    if (!this.flowing) {
      if (this.held === undefined) {
        this.held = chunk;
        return true;
      }
      this.flowing = true;
      this.res.write(this.held);
      this.held = undefined;
    }
    const ok = this.res.write(chunk);
    if (!ok) this.res.once('drain', this.resume as () => void);
    return ok;
  }

  onComplete(attempt: number, b: Backend): void {
    if (attempt !== this.attempt || this.done) return;
    this.done = true;
    b.inFlight--;
    const status = this.res.statusCode;
    const held = this.held;
    this.held = undefined;
    if (held === undefined) this.res.end();
    else this.res.end(held);
    this.svc.hooks.finished(b, status, status < 500, performance.now() - this.start);
  }

  onError(attempt: number, b: Backend, err: Error & { code?: string }): void {
    if (attempt !== this.attempt || this.done) return;
    b.inFlight--;
    const raw = err.code ?? 'EUNKNOWN';
    const code = CODE_NAMES[raw] ?? raw;
    this.lastCode = code;
    this.lastError = `${b.name}: ${code}${err.message ? ` (${err.message})` : ''}`;
    this.svc.hooks.failed(b, code);
    if (this.responded) {
      // Mid-body failure: the client already has a status line; cut its connection.
      this.done = true;
      this.svc.hooks.finished(b, this.res.statusCode, false, performance.now() - this.start);
      this.res.destroy();
      return;
    }
    const neverSent = (!this.sent || NEVER_SENT.has(raw)) && !this.bodyStarted;
    const retryable = neverSent || (this.idempotent && !this.bodyStarted);
    if (retryable && this.attempts <= this.svc.retries) {
      b.retries++;
      // A reset before any response byte is most often a kept-alive socket the backend closed just as
      // it was reused: with no other backend left, one retry goes to the same one on a fresh connection.
      this.next(raw === 'UND_ERR_SOCKET' || raw === 'ECONNRESET' ? b : undefined);
      return;
    }
    this.#fail(code === 'ERESPONSETIMEOUT' ? 504 : 502, this.lastError);
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
    if (b) {
      this.abort?.();
      b.inFlight--;
      this.svc.hooks.finished(b, 499, true, performance.now() - this.start);
    }
  }
}

/** The undici handler of one attempt (a small object; the state lives in the Exchange). */
class AttemptHandler {
  readonly #ex: Exchange;
  readonly #b: Backend;
  readonly #n: number;

  constructor(ex: Exchange, b: Backend, n: number) {
    this.#ex = ex;
    this.#b = b;
    this.#n = n;
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#ex.onConnect(this.#n, abort);
  }

  onHeaders(status: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    return this.#ex.onHeaders(this.#n, this.#b, status, headers, resume, statusText);
  }

  onData(chunk: Buffer): boolean {
    return this.#ex.onData(this.#n, chunk);
  }

  onComplete(): void {
    this.#ex.onComplete(this.#n, this.#b);
  }

  onError(err: Error): void {
    this.#ex.onError(this.#n, this.#b, err);
  }
}

export class HttpService {
  readonly name: string;
  readonly pool: Pool;
  readonly hooks: HttpHooks;
  timeouts: HttpTimeouts;
  retries: number;
  count5xx: boolean;
  /** Client sockets of upgraded (tunnelled) connections, closed on stop. */
  readonly upgraded = new Set<Socket>();

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
    const server = createServer({ keepAlive: true }, (req, res) => new Exchange(this, req, res).next());
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#upgrade(req, socket, head, 0, 0));
    server.keepAliveTimeout = this.timeouts.idle;
    server.headersTimeout = Math.max(this.timeouts.idle + 1000, 60_000);
    server.requestTimeout = 0;
    return server;
  }

  /** Upgrade requests (WebSocket): the request head is replayed to a backend, then bytes are spliced both ways. */
  #upgrade(req: IncomingMessage, client: Socket, head: Buffer, tried: number, attempts: number): void {
    const start = performance.now();
    const b = this.pool.pick(this.hooks.now(), tried);
    client.on('error', () => undefined);
    if (!b || client.destroyed) {
      if (!client.destroyed) client.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      this.hooks.finished(undefined, 503, false, performance.now() - start);
      return;
    }
    b.inFlight++;
    b.requests++;
    const upstream = connect({ host: b.host, port: b.port, noDelay: true });
    const timer = setTimeout(() => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ECONNECTTIMEOUT' })), this.timeouts.connect);
    let connected = false;
    upstream.once('connect', () => {
      clearTimeout(timer);
      connected = true;
      this.hooks.succeeded(b);
      const raw = req.rawHeaders;
      let text = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1\r\n`;
      for (let i = 0; i < raw.length; i += 2) {
        // X-Forwarded-For is appended to below; Proto and Host are the proxy's to set (a client must not spoof them).
        const lk = (raw[i] as string).toLowerCase();
        if (lk === 'x-forwarded-for' || lk === 'x-forwarded-proto' || lk === 'x-forwarded-host') continue;
        text += `${raw[i] as string}: ${raw[i + 1] as string}\r\n`;
      }
      const xff = req.headers['x-forwarded-for'];
      const ip = client.remoteAddress ?? '';
      const host = req.headers.host;
      text += `x-forwarded-for: ${xff ? `${String(xff)}, ${ip}` : ip}\r\nx-forwarded-proto: http\r\n${host ? `x-forwarded-host: ${host}\r\n` : ''}\r\n`;
      upstream.write(text);
      if (head.length > 0) upstream.write(head);
      // The response timeout bounds the wait for the backend's first byte (its 101 or a refusal).
      responseTimer = setTimeout(() => {
        if (done) return;
        done = true;
        b.inFlight--;
        this.upgraded.delete(client);
        upstream.unpipe(client);
        upstream.destroy();
        this.hooks.failed(b, 'ERESPONSETIMEOUT');
        client.end('HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        this.hooks.finished(b, 504, false, performance.now() - start);
      }, this.timeouts.response);
      upstream.once('data', () => clearTimeout(responseTimer));
      upstream.pipe(client);
      client.pipe(upstream);
      this.upgraded.add(client);
      // Either side finishing ends the tunnel (the sockets are half-open capable; nothing here needs that).
      // The client's end is watched from the start (below): it may come before the backend connects.
      upstream.once('end', close);
    });
    let done = false;
    let responseTimer: NodeJS.Timeout | undefined;
    const close = (): void => {
      clearTimeout(timer);
      clearTimeout(responseTimer);
      if (done) return;
      done = true;
      b.inFlight--;
      this.upgraded.delete(client);
      client.destroy();
      upstream.destroy();
      this.hooks.finished(b, connected ? 101 : 499, true, performance.now() - start);
    };
    client.once('end', close);
    upstream.once('error', (err: NodeJS.ErrnoException) => {
      if (connected) return close();
      clearTimeout(timer);
      if (done) return;
      done = true;
      b.inFlight--;
      if (client.destroyed) {
        this.hooks.finished(b, 499, true, performance.now() - start);
        return;
      }
      this.hooks.failed(b, err.code ?? err.message);
      if (attempts < this.retries) {
        b.retries++;
        this.#upgrade(req, client, head, b.index < 31 ? tried | (1 << b.index) : tried, attempts + 1);
        return;
      }
      client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      this.hooks.finished(b, 502, false, performance.now() - start);
    });
    upstream.once('close', () => {
      if (connected) close();
    });
    client.once('close', close);
  }
}
