// Owns one client connection of an HTTP service: parses requests with llhttp, refuses the ones
// the front end must (malformed, ambiguous framing, duplicate Host, oversized heads: 4xx and close,
// no backend involved), runs one Exchange at a time (pipelined requests wait their turn), keeps the
// connection alive between requests up to the idle timeout, and hands upgrades to the tunnel.
import type { Socket } from 'node:net';
import { errorResponse, forwardedHeaders } from './forwarded.js';
import { Exchange, type ClientSide, type ExchangeContext } from './exchange.js';
import { H1Parser, type ParserSink } from './parser.js';
import { sweeper, type Sweepable } from './sweep.js';

/** What a front connection needs from its service. */
export interface FrontContext extends ExchangeContext {
  /** A request asked for a protocol upgrade: the service tunnels it (the socket is no longer ours). */
  upgrade(socket: Socket, head: { method: string; target: string; headerLines: string }, rest: Buffer): void;
  /** A request the front end refused (counted per service; never a backend failure). */
  refused(status: number, reason: string): void;
}

export class FrontConn implements ParserSink, ClientSide, Sweepable {
  readonly #ctx: FrontContext;
  readonly #socket: Socket;
  readonly #parser: H1Parser;
  readonly #ip: string;
  #exchange: Exchange | undefined;
  /** Bytes after a complete request, parsed once its response is done. */
  #pending: Buffer | undefined;
  #requestComplete = false;
  #closing = false;
  #refusal: { status: number; reason: string } | undefined;
  #upgrade: { method: string; target: string; headerLines: string } | undefined;
  #drainWaiters: Array<() => void> = [];
  httpMinor = 1;
  keepAlive = true;
  #lastActive = sweeper.now;

  constructor(ctx: FrontContext, socket: Socket) {
    this.#ctx = ctx;
    this.#socket = socket;
    this.#ip = socket.remoteAddress ?? '';
    this.#parser = new H1Parser('request', this);
    socket.setNoDelay(true);
    sweeper.addSlow(this);
    socket.on('data', (d: Buffer) => {
      this.#lastActive = sweeper.now;
      this.#onData(d);
    });
    socket.on('drain', () => {
      const w = this.#drainWaiters;
      if (w.length === 0) return;
      this.#drainWaiters = [];
      for (const fn of w) fn();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      sweeper.removeSlow(this);
      this.#closing = true;
      this.#exchange?.clientGone();
      this.#parser.destroy();
    });
    socket.on('end', () => {
      // The client is done sending: finish the response in flight, then close.
      this.#closing = true;
      if (this.#exchange === undefined || this.#exchange.done) socket.end();
    });
  }

  /** Idle between requests (or a client that stopped sending its request) for the idle timeout: close. A
   * request waiting on a backend is bounded by the backend timeouts instead. */
  sweep(now: number): void {
    if (now - this.#lastActive <= this.#ctx.timeouts.idle) return;
    if (this.#exchange === undefined || this.#exchange.done || !this.#requestComplete) this.#socket.destroy();
  }

  #onData(d: Buffer): void {
    if (this.#pending !== undefined) {
      this.#pending = Buffer.concat([this.#pending, d]);
      this.#socket.pause();
      return;
    }
    this.#feed(d);
  }

  #feed(d: Buffer): void {
    const r = this.#parser.execute(d);
    if (this.#refusal) {
      this.#refuse(this.#refusal.status, this.#refusal.reason);
      return;
    }
    if (r.kind === 'error') {
      this.#refuse(r.tooLarge ? 431 : 400, r.reason);
      return;
    }
    // The exchange starts once the whole chunk is parsed: a request whose body is malformed in the
    // bytes that came with its head is refused before any backend sees a byte of it.
    const ex = this.#exchange;
    if (ex !== undefined && !ex.started) ex.start();
    switch (r.kind) {
      case 'more':
        return;
      case 'complete':
        if (r.rest.length > 0) {
          if (this.#exchange === undefined || this.#exchange.done) {
            // The response is already out (or there was none): parse the next request now.
            this.#feed(r.rest);
            return;
          }
          this.#pending = r.rest;
          this.#socket.pause();
        }
        return;
      case 'upgrade': {
        const up = this.#upgrade;
        if (!up) return this.#refuse(400, 'bad upgrade request');
        this.#socket.pause();
        this.#socket.removeAllListeners('data');
        this.#socket.removeAllListeners('end');
        this.#socket.removeAllListeners('close');
        sweeper.removeSlow(this);
        this.#parser.destroy();
        this.#ctx.upgrade(this.#socket, up, r.rest);
        return;
      }
    }
  }

  #refuse(status: number, reason: string): void {
    this.#ctx.refused(status, reason);
    this.#exchange?.clientGone();
    this.#closing = true;
    this.#socket.end(errorResponse(status, undefined, true), 'latin1');
    this.#socket.destroySoon();
  }

  // ParserSink: the request parser's events.
  onHead(p: H1Parser): boolean {
    this.#requestComplete = false;
    this.httpMinor = p.httpMajor === 1 ? p.httpMinor : 0;
    this.keepAlive = p.keepAlive && !this.#closing;
    const fwd = forwardedHeaders(p.method, p.target, this.httpMinor, p, this.#ip, p.upgrade);
    if (fwd.refused) {
      this.#refusal = { status: fwd.status, reason: fwd.reason };
      return true;
    }
    if (p.upgrade) {
      this.#upgrade = { method: p.method, target: p.target, headerLines: fwd.lines };
      return true;
    }
    if (fwd.expectContinue && fwd.hasBody) this.#socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    this.#exchange = new Exchange(this.#ctx, this, p.method, p.target, fwd.lines, fwd);
    return false;
  }

  onBody(chunk: Buffer): void {
    this.#exchange?.clientBody(chunk);
  }

  onComplete(): void {
    this.#requestComplete = true;
    this.#exchange?.clientBodyEnd();
  }

  // ClientSide: what the exchange does to the client.
  write(data: string | Buffer): boolean {
    return typeof data === 'string' ? this.#socket.write(data, 'latin1') : this.#socket.write(data);
  }

  pauseReading(): void {
    this.#socket.pause();
  }

  resumeReading(): void {
    if (this.#pending === undefined) this.#socket.resume();
  }

  onDrain(fn: () => void): void {
    this.#drainWaiters.push(fn);
  }

  responseDone(close: boolean): void {
    this.#lastActive = sweeper.now;
    if (close || this.#closing) {
      this.#closing = true;
      if (this.#requestComplete) this.#socket.end();
      else {
        // The request body is still coming: stop reading it, send what we have, close.
        this.#socket.end();
        this.#socket.destroySoon();
      }
      return;
    }
    if (!this.#requestComplete) return; // the rest of the body is parsed (and dropped) as it comes
    const pending = this.#pending;
    if (pending !== undefined) {
      this.#pending = undefined;
      // Next pipelined request, outside the caller's stack.
      setImmediate(() => {
        if (this.#socket.destroyed) return;
        this.#socket.resume();
        this.#feed(pending);
      });
    }
  }

  abort(): void {
    this.#closing = true;
    this.#socket.destroySoon();
    this.#socket.end();
  }
}
