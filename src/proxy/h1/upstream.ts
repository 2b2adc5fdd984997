// Owns the connections to one HTTP backend: a LIFO stack of idle keep-alive sockets (dropped when
// the backend's Keep-Alive timeout or our idle limit would have passed), new ones with a connect
// timeout, and for each a response parser whose events go to the attempt currently using it.
// A connection serves one request at a time; one that cannot be reused is destroyed.
import { connect, type Socket } from 'node:net';
import { H1Parser, type ParserSink } from './parser.js';
import { sweeper, type Sweepable } from './sweep.js';

/** What a connection reports to the attempt using it. */
export interface UpstreamUser {
  onConnected(conn: UpstreamConn): void;
  /** Return true to skip the body (HEAD, 204, 304). */
  onResponseHead(p: H1Parser): boolean;
  /** chunk is valid only during the call (it points into the shared read buffer): copy what is kept. */
  onResponseBody(chunk: Buffer): void;
  onResponseEnd(): void;
  /** The end of one chunk of the backend's bytes (output held for it may go now). */
  onBatchEnd(): void;
  /** The connection failed before the response ended. code: ECONNREFUSED, ECONNRESET, ECONNECTTIMEOUT, EIDLETIMEOUT, EBADRESPONSE, ... */
  onUpstreamError(code: string, message: string): void;
  /** The backend socket drained (for request-body backpressure). */
  onUpstreamDrain(): void;
}

export interface UpstreamTimeouts {
  connect: number;
  /** Quiet time on a connection in use (mid-response) after which it is given up. */
  idle: number;
}

/** The read buffer of every backend connection (reads are handled synchronously, one at a time). */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/** Idle keep-alive sockets older than this are not reused (the backend may be about to close them). */
const POOL_IDLE_MS = 4000;

export class UpstreamConn implements ParserSink {
  readonly socket: Socket;
  readonly parser: H1Parser;
  readonly #owner: UpstreamPool;
  user: UpstreamUser | undefined;
  connected = false;
  /** Served a request before (a reset on it is most likely a stale keep-alive socket). */
  reused = false;
  idleSince = 0;
  reuseUntil = Infinity;
  /** Coarse time of the last read (the sweeper's clock). */
  lastRead = sweeper.now;
  readonly #idleMs: number;
  /** The response being read answers a HEAD request. */
  head = false;
  #dead = false;
  #connectTimer: NodeJS.Timeout | undefined;

  constructor(owner: UpstreamPool, host: string, port: number, t: UpstreamTimeouts) {
    this.#owner = owner;
    this.#idleMs = t.idle;
    this.parser = new H1Parser('response', this);
    // Reads land in one shared buffer (no allocation per read): everything kept from it is copied.
    const s = connect({ host, port, noDelay: true, onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.#onRead(n, buf) } });
    this.socket = s;
    this.#connectTimer = setTimeout(() => this.#fail('ECONNECTTIMEOUT', `no connection within ${t.connect} ms`), t.connect);
    s.once('connect', () => {
      clearTimeout(this.#connectTimer);
      this.connected = true;
      this.user?.onConnected(this);
    });
    s.on('drain', () => this.user?.onUpstreamDrain());
    s.on('end', () => {
      if (this.user && this.parser.inBody) {
        const r = this.parser.finish();
        if (r.kind === 'error') return this.#fail('ECONNRESET', 'the backend closed the connection mid-response');
        return; // a response delimited by the close: onComplete ran
      }
      this.#fail('ECONNRESET', 'the backend closed the connection');
    });
    s.on('error', (err: NodeJS.ErrnoException) => this.#fail(err.code ?? 'ECONNRESET', err.message));
    s.on('close', () => this.#fail('ECONNRESET', 'the backend closed the connection'));
  }

  get dead(): boolean {
    return this.#dead;
  }

  write(data: string | Buffer): boolean {
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  #onRead(n: number, buf: Uint8Array): boolean {
    this.lastRead = sweeper.now;
    this.#onData(Buffer.from(buf.buffer, buf.byteOffset, n));
    return true;
  }

  #onData(d: Buffer): void {
    if (!this.user) {
      // Bytes on an idle connection: nothing may follow a finished response.
      this.destroy();
      return;
    }
    const user = this.user;
    const r = this.parser.execute(d);
    user.onBatchEnd();
    if (r.kind === 'error') this.#fail('EBADRESPONSE', `the backend's response is not valid HTTP/1.1 (${r.reason})`);
    else if (r.kind === 'complete' && r.rest.length > 0 && this.user === undefined) this.destroy();
    else if (r.kind === 'complete' && r.rest.length > 0) {
      // A 1xx head ended the first message: the final response follows.
      this.#onData(r.rest);
    } else if (r.kind === 'upgrade') this.#fail('EBADRESPONSE', 'the backend switched protocols on a plain request');
  }

  // ParserSink (the response parser's events).
  onHead(p: H1Parser): boolean {
    const skip = this.user?.onResponseHead(p) ?? true;
    return skip || this.head || p.statusCode === 204 || p.statusCode === 304 || (p.statusCode >= 100 && p.statusCode < 200);
  }

  onBody(chunk: Buffer): void {
    this.user?.onResponseBody(chunk);
  }

  onComplete(p: H1Parser): void {
    if (p.statusCode >= 100 && p.statusCode < 200) return; // informational: the final head follows
    const u = this.user;
    this.user = undefined;
    u?.onResponseEnd();
  }

  /** Called by the exchange's sweep: true when the backend has been quiet mid-response for the idle timeout (then the attempt fails). */
  checkIdle(now: number): boolean {
    if (now - this.lastRead <= this.#idleMs) return false;
    this.#fail('EIDLETIMEOUT', `no byte from the backend for ${this.#idleMs} ms`);
    return true;
  }

  #fail(code: string, message: string): void {
    if (this.#dead) return;
    this.destroy();
    const u = this.user;
    this.user = undefined;
    u?.onUpstreamError(code, message);
  }

  destroy(): void {
    if (this.#dead) return;
    this.#dead = true;
    clearTimeout(this.#connectTimer);
    this.socket.destroy();
    this.parser.destroy();
    this.#owner.forget(this);
  }
}

export class UpstreamPool implements Sweepable {
  readonly host: string;
  readonly port: number;
  timeouts: UpstreamTimeouts;
  readonly #idle: UpstreamConn[] = [];
  readonly #all = new Set<UpstreamConn>();
  #closing = false;

  constructor(host: string, port: number, timeouts: UpstreamTimeouts) {
    this.host = host;
    this.port = port;
    this.timeouts = timeouts;
    sweeper.addSlow(this);
  }

  /** Closes idle connections past POOL_IDLE_MS (they would not be reused). */
  sweep(now: number): void {
    if (this.#idle.length === 0) return;
    for (const c of this.#idle.filter((x) => now - x.idleSince >= POOL_IDLE_MS || now >= x.reuseUntil)) c.destroy();
  }

  get open(): number {
    return this.#all.size;
  }

  /** An idle connection (reused: true) or a new one; the user is told when it is connected. */
  acquire(user: UpstreamUser, now: number, head: boolean): UpstreamConn {
    let c: UpstreamConn | undefined;
    while ((c = this.#idle.pop()) !== undefined) {
      if (!c.dead && now - c.idleSince < POOL_IDLE_MS && now < c.reuseUntil) break;
      c.destroy();
    }
    if (c === undefined) {
      c = new UpstreamConn(this, this.host, this.port, this.timeouts);
      this.#all.add(c);
    }
    c.user = user;
    c.head = head;
    return c;
  }

  /** Back to the idle stack after a complete exchange (keepAlive) or destroyed. */
  release(c: UpstreamConn, keepAlive: boolean, now: number, reuseForMs: number | undefined): void {
    c.user = undefined;
    if (!keepAlive || this.#closing || c.dead) {
      c.destroy();
      return;
    }
    c.reused = true;
    c.idleSince = now;
    if (reuseForMs !== undefined) c.reuseUntil = now + reuseForMs;
    this.#idle.push(c);
  }

  forget(c: UpstreamConn): void {
    this.#all.delete(c);
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
  }

  /** No new connections; idle ones close now, busy ones when their exchange ends. */
  close(): void {
    this.#closing = true;
    sweeper.removeSlow(this);
    for (const c of this.#idle.splice(0)) c.destroy();
  }

  /** Every connection closed now (in-flight exchanges fail). */
  destroy(): void {
    this.#closing = true;
    sweeper.removeSlow(this);
    for (const c of [...this.#all]) c.destroy();
  }
}
