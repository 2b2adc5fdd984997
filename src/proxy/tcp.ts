// Owns the TCP side: a service listener that splices client connections to a backend picked from
// the pool (retrying another backend when the connect fails: nothing was sent yet), closing a
// backend's open connections when it is marked down; and the database listeners that follow the
// 'db.topology' view (write listener -> primary, read listener -> round-robin over replicas).
import { connect, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Backend, Pool } from './pool.js';

/** A TCP backend: its state is the set of open backend sockets, so they can be closed when it goes down. */
export type TcpBackend = Backend<Set<Socket>>;

export interface TcpHooks {
  now(): number;
  finished(backend: TcpBackend | undefined, ok: boolean, latencyMs: number): void;
  failed(backend: TcpBackend, reason: string, detail: string): void;
  succeeded(backend: TcpBackend): void;
}

export class TcpService {
  readonly name: string;
  readonly pool: Pool<TcpBackend>;
  readonly hooks: TcpHooks;
  connectTimeout: number;
  idleTimeout: number;
  retries: number;

  constructor(name: string, pool: Pool<TcpBackend>, hooks: TcpHooks, opts: { connectTimeout: number; idleTimeout: number; retries: number }) {
    this.name = name;
    this.pool = pool;
    this.hooks = hooks;
    this.connectTimeout = opts.connectTimeout;
    this.idleTimeout = opts.idleTimeout;
    this.retries = opts.retries;
  }

  /** A new server that routes to this service (listen() is the caller's). */
  server(): Server {
    // allowHalfOpen on both sockets: a client's FIN is passed on to the backend, and the backend's
    // reply still reaches the client (the pair closes once both directions are done).
    return createServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, (client) => this.#onConnection(client));
  }

  /** Closes every open connection of b (close_on_down), so clients reconnect elsewhere. */
  closeAll(b: TcpBackend): number {
    const set = b.io;
    const n = set.size;
    for (const s of set) s.destroy();
    set.clear();
    return n;
  }

  #onConnection(client: Socket): void {
    const start = performance.now();
    let tried = 0;
    let attempts = 0;
    client.on('error', () => undefined);
    const tryOne = (): void => {
      const b = this.pool.pick(this.hooks.now(), tried);
      if (!b) {
        client.destroy();
        this.hooks.finished(undefined, false, performance.now() - start);
        return;
      }
      attempts++;
      if (b.index < 31) tried |= 1 << b.index;
      b.begin();
      b.connections++;
      const upstream = connect({ host: b.host, port: b.port, noDelay: true, allowHalfOpen: true });
      let connected = false;
      const timer = setTimeout(() => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ECONNECTTIMEOUT' })), this.connectTimeout);
      upstream.once('connect', () => {
        clearTimeout(timer);
        connected = true;
        this.hooks.succeeded(b);
        const set = b.io;
        set.add(upstream);
        if (this.idleTimeout > 0) {
          client.setTimeout(this.idleTimeout, () => client.destroy());
        }
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
        let closed = false;
        const close = (): void => {
          if (closed) return;
          closed = true;
          set.delete(upstream);
          b.finish();
          client.destroy();
          upstream.destroy();
          this.hooks.finished(b, true, performance.now() - start);
        };
        client.once('close', close);
        upstream.once('close', close);
      });
      upstream.once('error', (err: NodeJS.ErrnoException) => {
        if (connected) return; // close() handles it
        clearTimeout(timer);
        b.finish();
        this.hooks.failed(b, err.code ?? err.message, `${b.name}: ${err.code ?? err.message}`);
        if (client.destroyed) {
          this.hooks.finished(b, false, performance.now() - start);
          return;
        }
        if (attempts <= this.retries) {
          b.retried();
          tryOne();
          return;
        }
        client.destroy();
        this.hooks.finished(b, false, performance.now() - start);
      });
    };
    tryOne();
  }
}

export interface DbTarget {
  node: string;
  address: string;
}

/** One database listener: routes each new connection to a target chosen by the topology. */
export class DbListener {
  readonly database: string;
  readonly kind: 'write' | 'read';
  #targets: DbTarget[] = [];
  #rr = 0;
  readonly #conns = new Map<string, Set<Socket>>();
  #server: Server | undefined;
  connections = 0;
  refused = 0;
  readonly #onFinished: (ok: boolean, latencyMs: number, node: string | undefined) => void;

  constructor(database: string, kind: 'write' | 'read', onFinished: (ok: boolean, latencyMs: number, node: string | undefined) => void) {
    this.database = database;
    this.kind = kind;
    this.#onFinished = onFinished;
  }

  get targets(): readonly DbTarget[] {
    return this.#targets;
  }

  openConnections(): number {
    let n = 0;
    for (const s of this.#conns.values()) n += s.size;
    return n;
  }

  /** Sets the targets; connections to a node no longer targeted (by name and address) are closed. */
  setTargets(targets: DbTarget[]): void {
    const keep = new Set(targets.map((t) => `${t.node}@${t.address}`));
    for (const [key, set] of this.#conns) {
      if (keep.has(key)) continue;
      for (const s of set) s.destroy();
      this.#conns.delete(key);
    }
    this.#targets = targets;
  }

  server(): Server {
    if (this.#server) return this.#server;
    this.#server = createServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, (client) => this.#onConnection(client));
    return this.#server;
  }

  #onConnection(client: Socket): void {
    const start = performance.now();
    client.on('error', () => undefined);
    const targets = this.#targets;
    if (targets.length === 0) {
      this.refused++;
      client.destroy();
      this.#onFinished(false, performance.now() - start, undefined);
      return;
    }
    const t = targets[this.#rr++ % targets.length] as DbTarget;
    const key = `${t.node}@${t.address}`;
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(t.address);
    if (!m) {
      client.destroy();
      this.#onFinished(false, performance.now() - start, t.node);
      return;
    }
    this.connections++;
    const upstream = connect({ host: m[1] ?? m[2] ?? '127.0.0.1', port: Number(m[3]), noDelay: true, allowHalfOpen: true });
    let set = this.#conns.get(key);
    if (!set) {
      set = new Set();
      this.#conns.set(key, set);
    }
    const conns = set;
    conns.add(upstream);
    let closed = false;
    let ok = false;
    const close = (): void => {
      if (closed) return;
      closed = true;
      conns.delete(upstream);
      client.destroy();
      upstream.destroy();
      this.#onFinished(ok, performance.now() - start, t.node);
    };
    upstream.once('connect', () => {
      ok = true;
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
    upstream.on('error', () => undefined);
    client.once('close', close);
    upstream.once('close', close);
  }
}
