// Owns the HTTP side of one service: the listening sockets (a reload may open a second one while
// the first drains), one FrontConn per client connection, the tunnels of upgraded ones, and the
// settings every exchange reads. The data path is ours end to end: llhttp parses both sides, the
// bodies are streamed through without node:http or undici in between.
import { createServer, type Server, type Socket } from 'node:net';
import type { Backend, Pool } from '../pool.js';
import type { HttpHooks, HttpTimeouts } from './exchange.js';
import { FrontConn, type FrontContext } from './front.js';
import { Tunnels, type UpgradeHead } from './tunnel.js';
import { UpstreamPool } from './upstream.js';

export type HttpBackend = Backend<UpstreamPool>;

export interface HttpSettings {
  timeouts: HttpTimeouts;
  retries: number;
  count5xx: boolean;
}

/** The per-backend connection pool of an HTTP backend. */
export function upstreamPool(b: { host: string; port: number }, t: HttpTimeouts): UpstreamPool {
  return new UpstreamPool(b.host, b.port, { connect: t.connect, idle: t.idle });
}

export class HttpService implements FrontContext {
  readonly name: string;
  readonly pool: Pool<HttpBackend>;
  readonly hooks: HttpHooks;
  timeouts: HttpTimeouts;
  retries: number;
  count5xx: boolean;
  readonly #tunnels: Tunnels;
  readonly #clients = new Set<Socket>();
  /** Requests the front end refused itself, by status (400, 431, ...). */
  readonly refusedByStatus = new Map<number, number>();

  constructor(name: string, pool: Pool<HttpBackend>, hooks: HttpHooks, s: HttpSettings) {
    this.name = name;
    this.pool = pool;
    this.hooks = hooks;
    this.timeouts = s.timeouts;
    this.retries = s.retries;
    this.count5xx = s.count5xx;
    this.#tunnels = new Tunnels(this);
  }

  /** A new listening socket for this service (listen() is the caller's). */
  server(): Server {
    return createServer({ noDelay: true }, (socket) => {
      this.#clients.add(socket);
      socket.once('close', () => this.#clients.delete(socket));
      new FrontConn(this, socket);
    });
  }

  upgrade(socket: Socket, head: UpgradeHead, rest: Buffer): void {
    // The front connection's listeners are gone (this one included): forget the socket when it closes.
    socket.once('close', () => this.#clients.delete(socket));
    this.#tunnels.start(socket, head, rest);
  }

  refused(status: number): void {
    this.refusedByStatus.set(status, (this.refusedByStatus.get(status) ?? 0) + 1);
  }

  /** Client connections open now (tunnels included). */
  get connections(): number {
    return this.#clients.size;
  }

  /** Closes every client connection and tunnel now. */
  closeAll(): void {
    this.#tunnels.closeAll();
    for (const s of this.#clients) s.destroy();
    this.#clients.clear();
  }
}
