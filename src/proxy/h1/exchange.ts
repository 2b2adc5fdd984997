// Owns one client request and its attempts against backends: picks a backend, sends the head and
// streams the body (held back until a connection is up, so a request that never left can go to
// another backend), applies the per-try timeout and the retry policy, and streams the response
// back with the framing the client needs. The state machine reports through HttpHooks only.
import { performance } from 'node:perf_hooks';
import type { Backend, Pool } from '../pool.js';
import { failureStatus, retryDecision } from '../retry.js';
import { errorResponse, isIdempotent, responseHead } from './forwarded.js';
import type { H1Parser } from './parser.js';
import { sweeper, type Sweepable } from './sweep.js';
import type { UpstreamConn, UpstreamPool, UpstreamUser } from './upstream.js';

/** What an exchange reports back to the service (metrics, events, outlier detection). */
export interface HttpHooks {
  now(): number;
  /** A request finished (success or failure). backend undefined when no backend was tried. */
  finished(backend: Backend<UpstreamPool> | undefined, status: number, ok: boolean, latencyMs: number): void;
  /** A live-traffic failure against a backend (connect refused/reset/timeout, or a counted 5xx). */
  failed(backend: Backend<UpstreamPool>, reason: string, detail: string): void;
  succeeded(backend: Backend<UpstreamPool>): void;
}

export interface HttpTimeouts {
  connect: number;
  /** Longest wait for a response head over all attempts (Infinity: only perTry bounds each). */
  response: number;
  /** Longest wait for one attempt's response head (then an idempotent request goes elsewhere). */
  perTry: number;
  idle: number;
}

/** The service settings an exchange reads (live: a reload changes them for the next request). */
export interface ExchangeContext {
  readonly pool: Pool<Backend<UpstreamPool>>;
  readonly hooks: HttpHooks;
  timeouts: HttpTimeouts;
  retries: number;
  count5xx: boolean;
}

/** The client side of an exchange (a front-end connection). */
export interface ClientSide {
  readonly httpMinor: number;
  /** The client asked for (and may have) a persistent connection. */
  readonly keepAlive: boolean;
  write(data: string | Buffer): boolean;
  /** Stop / restart reading the client (request-body backpressure). */
  pauseReading(): void;
  resumeReading(): void;
  /** Resolve once the client socket can take more (response backpressure). */
  onDrain(fn: () => void): void;
  /** The response is complete (close: the connection must close after it). */
  responseDone(close: boolean): void;
  /** The response cannot be finished: cut the connection. */
  abort(): void;
}

/** Response body pieces up to this size are joined to the pending output instead of written alone. */
const INLINE_BODY = 4096;

/** Request-body bytes held while no connection is up: past this much the client is paused. */
const HOLD_LIMIT = 256 * 1024;

export class Exchange implements UpstreamUser, Sweepable {
  readonly #ctx: ExchangeContext;
  readonly #client: ClientSide;
  readonly #start = performance.now();
  readonly method: string;
  readonly #requestHead: string;
  readonly #chunked: boolean;
  readonly #idempotent: boolean;
  readonly #hasBody: boolean;
  #tried = 0;
  #attempts = 0;
  #retriedSame = false;
  #backend: Backend<UpstreamPool> | undefined;
  #conn: UpstreamConn | undefined;
  /** When the current attempt's wait for a response head ends (0: not waiting). */
  #tryDeadline = 0;
  #deadline = 0;
  /** Body pieces received while no connection was up. */
  #held: Buffer[] = [];
  #heldBytes = 0;
  #requestEnded = false;
  #bodyStarted = false;
  #sent = false;
  #responded = false;
  #responseChunked = false;
  /** The client connection closes after this response (the client or the framing asks so). */
  #close = false;
  #done = false;
  #started = false;
  #lastCode = '';
  #lastDetail = '';

  constructor(ctx: ExchangeContext, client: ClientSide, method: string, target: string, headerLines: string, body: { hasBody: boolean; chunked: boolean }) {
    this.#ctx = ctx;
    this.#client = client;
    this.method = method;
    this.#requestHead = `${method} ${target} HTTP/1.1\r\n${headerLines}\r\n`;
    this.#chunked = body.chunked;
    this.#hasBody = body.hasBody;
    this.#idempotent = isIdempotent(method);
    if (!body.hasBody) this.#requestEnded = true;
    this.#close = !client.keepAlive;
  }

  get done(): boolean {
    return this.#done;
  }

  get started(): boolean {
    return this.#started;
  }

  start(): void {
    this.#started = true;
    sweeper.addFast(this);
    this.#deadline = this.#start + this.#ctx.timeouts.response;
    this.#next(undefined);
  }

  /** A piece of the request body (de-chunked) from the client. */
  clientBody(chunk: Buffer): void {
    if (this.#done) return;
    const c = this.#conn;
    if (c !== undefined && c.connected) {
      this.#bodyStarted = true;
      if (!this.#writeBody(c, chunk)) this.#client.pauseReading();
      return;
    }
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes > HOLD_LIMIT) this.#client.pauseReading();
  }

  clientBodyEnd(): void {
    this.#requestEnded = true;
    if (this.#done || !this.#hasBody) return;
    const c = this.#conn;
    if (c !== undefined && c.connected && this.#chunked) c.write('0\r\n\r\n');
  }

  /** The client went away: abandon the attempt. */
  clientGone(): void {
    if (this.#done) return;
    this.#done = true;
    sweeper.removeFast(this);
    this.#tryDeadline = 0;
    const b = this.#backend;
    if (this.#conn) this.#conn.destroy();
    this.#conn = undefined;
    if (b) {
      b.finish();
      this.#ctx.hooks.finished(b, 499, true, performance.now() - this.#start);
    }
  }

  #writeBody(c: UpstreamConn, chunk: Buffer): boolean {
    if (!this.#chunked) return c.write(chunk);
    c.write(`${chunk.length.toString(16)}\r\n`);
    c.write(chunk);
    return c.write('\r\n');
  }

  #next(again: Backend<UpstreamPool> | undefined): void {
    const ctx = this.#ctx;
    const now = ctx.hooks.now();
    let b = ctx.pool.pick(now, this.#tried);
    if (!b && again !== undefined && !this.#retriedSame && again.usable(now)) {
      this.#retriedSame = true;
      b = again;
    }
    if (!b) {
      if (this.#attempts === 0) this.#fail(503, 'no healthy backend');
      else this.#fail(failureStatus(this.#lastCode), undefined);
      return;
    }
    this.#attempts++;
    if (b.index < 31) this.#tried |= 1 << b.index;
    this.#backend = b;
    this.#sent = false;
    b.begin();
    const conn = b.io.acquire(this, performance.now(), this.method === 'HEAD');
    this.#conn = conn;
    if (conn.connected) this.onConnected(conn);
  }

  onConnected(conn: UpstreamConn): void {
    if (conn !== this.#conn || this.#done) return;
    this.#sent = true;
    const held = this.#held;
    if (held.length > 0) this.#bodyStarted = true;
    const s = conn.socket;
    s.cork();
    conn.write(this.#requestHead);
    let ok = true;
    for (const h of held) ok = this.#writeBody(conn, h);
    if (this.#requestEnded && this.#hasBody && this.#chunked) ok = conn.write('0\r\n\r\n');
    s.uncork();
    this.#held = [];
    this.#heldBytes = 0;
    if (!ok) this.#client.pauseReading();
    else if (held.length > 0) this.#client.resumeReading();
    const now = sweeper.now;
    this.#tryDeadline = Math.min(now + this.#ctx.timeouts.perTry, this.#deadline);
  }

  /** The sweeper's check: the per-try / overall deadline for a response head, and a backend quiet mid-response. */
  sweep(now: number): void {
    if (this.#done) {
      sweeper.removeFast(this);
      return;
    }
    const conn = this.#conn;
    if (conn === undefined) return;
    if (!this.#responded) {
      if (this.#tryDeadline !== 0 && now >= this.#tryDeadline) this.#timedOut(conn, now);
    } else conn.checkIdle(now);
  }

  #timedOut(conn: UpstreamConn, now: number): void {
    this.#conn = undefined;
    this.#tryDeadline = 0;
    conn.destroy();
    const overall = now >= this.#deadline;
    this.#attemptFailed('ERESPONSETIMEOUT', overall ? `no response within ${this.#ctx.timeouts.response} ms` : `no response within the per-try timeout (${this.#ctx.timeouts.perTry} ms)`, overall);
  }

  onUpstreamDrain(): void {
    if (!this.#done && !this.#requestEnded) this.#client.resumeReading();
  }

  onResponseHead(p: H1Parser): boolean {
    if (this.#done) return true;
    const status = p.statusCode;
    if (status < 200) return true; // 1xx informational: wait for the final status (Expect was answered by us)
    this.#tryDeadline = 0;
    this.#responded = true;
    const b = this.#backend as Backend<UpstreamPool>;
    const res = responseHead(p);
    const noBody = this.method === 'HEAD' || status === 204 || status === 304;
    let framing = '';
    if (!noBody && !res.contentLength) {
      // Chunked or ended by the backend's close: chunked to an HTTP/1.1 client, close-delimited to 1.0.
      if (this.#client.httpMinor >= 1) {
        this.#responseChunked = true;
        framing = 'transfer-encoding: chunked\r\n';
      } else this.#close = true;
    }
    if (!this.#requestEnded) this.#close = true; // the backend answered before the body ended: do not reuse
    // Held until the end of this chunk of the backend's bytes: a small response leaves in one write.
    this.#out = `HTTP/1.1 ${status} ${p.statusText}\r\n${res.lines}${framing}${this.#close ? 'connection: close\r\n' : ''}\r\n`;
    if (status >= 500 && this.#ctx.count5xx) this.#ctx.hooks.failed(b, `http ${status}`, `http ${status}`);
    else this.#ctx.hooks.succeeded(b);
    this.#reuseFor = res.keepAliveSeconds;
    return noBody;
  }

  #reuseFor: number | undefined;
  /** Response bytes (latin1) not yet written to the client. */
  #out = '';

  onResponseBody(chunk: Buffer): void {
    if (this.#done) return;
    if (chunk.length <= INLINE_BODY) {
      const text = chunk.toString('latin1');
      this.#out += this.#responseChunked ? `${chunk.length.toString(16)}\r\n${text}\r\n` : text;
      if (this.#out.length > INLINE_BODY * 4) this.onBatchEnd();
      return;
    }
    const client = this.#client;
    let out = this.#out;
    this.#out = '';
    if (this.#responseChunked) out += `${chunk.length.toString(16)}\r\n`;
    if (out !== '') client.write(out);
    let ok = client.write(Buffer.from(chunk)); // a copy: chunk lives in the shared read buffer
    if (this.#responseChunked) ok = client.write('\r\n');
    if (!ok) this.#backpressure();
  }

  /** The end of one chunk of backend bytes: what is held goes out. */
  onBatchEnd(): void {
    if (this.#out === '' || this.#done) return;
    const ok = this.#client.write(this.#out);
    this.#out = '';
    if (!ok) this.#backpressure();
  }

  #backpressure(): void {
    const conn = this.#conn;
    if (!conn) return;
    conn.socket.pause();
    this.#client.onDrain(() => conn.socket.resume());
  }

  onResponseEnd(): void {
    if (this.#done) return;
    this.#done = true;
    sweeper.removeFast(this);
    const b = this.#backend as Backend<UpstreamPool>;
    const conn = this.#conn as UpstreamConn;
    this.#conn = undefined;
    const out = this.#responseChunked ? `${this.#out}0\r\n\r\n` : this.#out;
    this.#out = '';
    if (out !== '') this.#client.write(out);
    const now = performance.now();
    b.io.release(conn, conn.parser.keepAlive && this.#requestEnded, now, this.#reuseFor === undefined ? undefined : Math.max(0, this.#reuseFor * 1000 - 1000));
    b.finish();
    this.#client.responseDone(this.#close);
    this.#ctx.hooks.finished(b, conn.parser.statusCode, conn.parser.statusCode < 500, now - this.#start);
  }

  onUpstreamError(code: string, message: string): void {
    if (this.#done) return;
    this.#conn = undefined;
    this.#attemptFailed(code, message, false);
  }

  #attemptFailed(code: string, message: string, overall: boolean): void {
    this.#tryDeadline = 0;
    const b = this.#backend as Backend<UpstreamPool>;
    b.finish();
    this.#lastCode = code;
    this.#lastDetail = `${b.name}: ${code} (${message})`;
    this.#ctx.hooks.failed(b, code, this.#lastDetail);
    if (this.#responded) {
      // Mid-body failure: the client already has a status line; what arrived was forwarded, now close.
      this.#done = true;
      sweeper.removeFast(this);
      this.#ctx.hooks.finished(b, 502, false, performance.now() - this.#start);
      this.#client.abort();
      return;
    }
    const d = overall
      ? 'fail'
      : retryDecision({ sent: this.#sent, bodyStarted: this.#bodyStarted, idempotent: this.#idempotent, code, attempts: this.#attempts, retries: this.#ctx.retries });
    if (d === 'fail') {
      this.#fail(failureStatus(code), undefined);
      return;
    }
    b.retried();
    this.#next(d === 'retry-or-same' ? b : undefined);
  }

  #fail(status: number, detail: string | undefined): void {
    if (this.#done) return;
    this.#done = true;
    sweeper.removeFast(this);
    this.#tryDeadline = 0;
    // An unread request body would be taken for the next request: close unless it is all read.
    if (!this.#requestEnded) this.#close = true;
    this.#client.write(errorResponse(status, detail, this.#close));
    this.#client.responseDone(this.#close);
    if (!this.#requestEnded) this.#client.resumeReading();
    this.#ctx.hooks.finished(this.#backend, status, false, performance.now() - this.#start);
  }

  /** What the last failed attempt said (for logs; never sent to the client). */
  get lastDetail(): string {
    return this.#lastDetail;
  }
}
