// Owns upgrade requests (WebSocket): the request head (with the proxy's X-Forwarded-* from
// forwardedHeaders()) is replayed to a backend on a fresh connection, then bytes are spliced both
// ways until either side ends. A connect failure is retried on another backend; the backend's
// first byte (its 101, or a refusal) must come within the response timeout.
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Backend } from '../pool.js';
import type { ExchangeContext } from './exchange.js';
import type { UpstreamPool } from './upstream.js';

export interface UpgradeHead {
  readonly method: string;
  readonly target: string;
  readonly headerLines: string;
}

/** Opens tunnels for one service and remembers the open ones (closed on stop). */
export class Tunnels {
  readonly #ctx: ExchangeContext;
  readonly open = new Set<Socket>();

  constructor(ctx: ExchangeContext) {
    this.#ctx = ctx;
  }

  start(client: Socket, head: UpgradeHead, rest: Buffer): void {
    client.on('error', () => undefined);
    this.#try(client, head, rest, 0, 0, performance.now());
  }

  closeAll(): void {
    for (const s of this.open) s.destroy();
    this.open.clear();
  }

  #try(client: Socket, head: UpgradeHead, rest: Buffer, tried: number, attempts: number, start: number): void {
    const ctx = this.#ctx;
    const b: Backend<UpstreamPool> | undefined = ctx.pool.pick(ctx.hooks.now(), tried);
    if (!b || client.destroyed) {
      if (!client.destroyed) client.end('HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      ctx.hooks.finished(undefined, 503, false, performance.now() - start);
      return;
    }
    b.begin();
    const t = ctx.timeouts;
    const upstream = connect({ host: b.host, port: b.port, noDelay: true });
    const timer = setTimeout(() => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ECONNECTTIMEOUT' })), t.connect);
    let connected = false;
    let done = false;
    let responseTimer: NodeJS.Timeout | undefined;
    const close = (): void => {
      clearTimeout(timer);
      clearTimeout(responseTimer);
      if (done) return;
      done = true;
      b.finish();
      this.open.delete(client);
      client.destroy();
      upstream.destroy();
      ctx.hooks.finished(b, connected ? 101 : 499, true, performance.now() - start);
    };
    upstream.once('connect', () => {
      clearTimeout(timer);
      connected = true;
      ctx.hooks.succeeded(b);
      upstream.write(`${head.method} ${head.target} HTTP/1.1\r\n${head.headerLines}\r\n`, 'latin1');
      if (rest.length > 0) upstream.write(rest);
      // The response timeout bounds the wait for the backend's first byte (its 101 or a refusal).
      responseTimer = setTimeout(() => {
        if (done) return;
        done = true;
        b.finish();
        this.open.delete(client);
        upstream.unpipe(client);
        upstream.destroy();
        ctx.hooks.failed(b, 'ERESPONSETIMEOUT', `${b.name}: no answer to the upgrade within ${t.perTry} ms`);
        client.end('HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
        ctx.hooks.finished(b, 504, false, performance.now() - start);
      }, t.perTry);
      upstream.once('data', () => clearTimeout(responseTimer));
      upstream.pipe(client);
      client.pipe(upstream);
      client.resume();
      this.open.add(client);
      // Either side finishing ends the tunnel (the client's end is watched from the start, below).
      upstream.once('end', close);
    });
    client.once('end', close);
    upstream.once('error', (err: NodeJS.ErrnoException) => {
      if (connected) return close();
      clearTimeout(timer);
      if (done) return;
      done = true;
      b.finish();
      client.off('end', close);
      client.off('close', close);
      if (client.destroyed) {
        ctx.hooks.finished(b, 499, true, performance.now() - start);
        return;
      }
      const code = err.code ?? 'ECONNRESET';
      ctx.hooks.failed(b, code, `${b.name}: ${code}`);
      if (attempts < ctx.retries) {
        b.retried();
        this.#try(client, head, rest, b.index < 31 ? tried | (1 << b.index) : tried, attempts + 1, start);
        return;
      }
      client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
      ctx.hooks.finished(b, 502, false, performance.now() - start);
    });
    upstream.once('close', () => {
      if (connected) close();
    });
    client.once('close', close);
  }
}
