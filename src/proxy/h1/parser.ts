// Owns HTTP/1.1 message parsing for the proxy's data path: llhttp (the parser Node.js and undici
// use) as the WebAssembly build undici ships, strict mode (no lenient flags), driven one socket
// chunk at a time. A parser collects a message head, hands body bytes on as slices of the chunk
// (de-chunked), and stops at the end of each message so pipelined bytes stay with the caller.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The bits of the WebAssembly global used here (the project's lib settings do not declare it). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (mod: object, imports: Record<string, Record<string, (...args: number[]) => number>>) => { exports: unknown };
};

interface LlhttpExports {
  memory: { buffer: ArrayBuffer };
  llhttp_alloc(type: number): number;
  llhttp_free(p: number): void;
  malloc(n: number): number;
  free(p: number): void;
  llhttp_execute(p: number, data: number, len: number): number;
  llhttp_finish(p: number): number;
  llhttp_resume(p: number): void;
  llhttp_get_error_pos(p: number): number;
  llhttp_get_error_reason(p: number): number;
  llhttp_get_method(p: number): number;
  llhttp_get_http_major(p: number): number;
  llhttp_get_http_minor(p: number): number;
  llhttp_message_needs_eof(p: number): number;
}

const C = require('undici/lib/llhttp/constants.js') as { ERROR: Record<string, number>; TYPE: Record<string, number>; METHODS: Record<string, number> };
const ERR_OK = C.ERROR['OK'] as number;
const ERR_PAUSED = C.ERROR['PAUSED'] as number;
const ERR_PAUSED_UPGRADE = C.ERROR['PAUSED_UPGRADE'] as number;
const METHOD_NAMES: string[] = [];
for (const [name, n] of Object.entries(C.METHODS)) METHOD_NAMES[n] = name;

/** Most bytes a request or response head may take (request line, status line and header lines). */
export const MAX_HEAD_BYTES = 16 * 1024;

/** What a parser reports to its owner. Callbacks run inside execute(). */
export interface ParserSink {
  /** The head is complete; return true to skip the body (responses to HEAD, 204, 304). */
  onHead(p: H1Parser): boolean;
  onBody(chunk: Buffer): void;
  onComplete(p: H1Parser): void;
}

export type ExecuteResult =
  /** Everything consumed; more bytes are needed. */
  | { kind: 'more' }
  /** A message ended; rest are the bytes after it (pipelined), parser paused until resume(). */
  | { kind: 'complete'; rest: Buffer }
  /** An upgrade (or CONNECT) head ended; rest are the bytes after it (tunnel data). */
  | { kind: 'upgrade'; rest: Buffer }
  | { kind: 'error'; code: string; reason: string; tooLarge: boolean };

let wasm: LlhttpExports | undefined;
let current: H1Parser | undefined;
let currentChunk: Buffer | undefined;
let bufPtr = 0;
let bufSize = 0;
let view: Uint8Array | undefined;

function instance(): LlhttpExports {
  if (wasm) return wasm;
  let mod: object;
  try {
    mod = new WebAssembly.Module(require('undici/lib/llhttp/llhttp_simd-wasm.js') as Buffer);
  } catch {
    mod = new WebAssembly.Module(require('undici/lib/llhttp/llhttp-wasm.js') as Buffer);
  }
  const slice = (at: number, len: number): Buffer => (currentChunk as Buffer).subarray(at - bufPtr, at - bufPtr + len);
  const text = (at: number, len: number): string => (currentChunk as Buffer).toString('latin1', at - bufPtr, at - bufPtr + len);
  const env = {
    wasm_on_message_begin: (): number => (current as H1Parser).begin(),
    wasm_on_url: (_p: number, at: number, len: number): number => (current as H1Parser).url(text(at, len), len),
    wasm_on_status: (_p: number, at: number, len: number): number => (current as H1Parser).status(text(at, len), len),
    wasm_on_header_field: (_p: number, at: number, len: number): number => (current as H1Parser).field(text(at, len), len),
    wasm_on_header_value: (_p: number, at: number, len: number): number => (current as H1Parser).value(text(at, len), len),
    wasm_on_headers_complete: (_p: number, statusCode: number, upgrade: number, keepAlive: number): number =>
      (current as H1Parser).headersComplete(statusCode, upgrade === 1, keepAlive === 1),
    wasm_on_body: (_p: number, at: number, len: number): number => (current as H1Parser).body(slice(at, len)),
    wasm_on_message_complete: (): number => (current as H1Parser).complete(),
  };
  wasm = new WebAssembly.Instance(mod, { env }).exports as unknown as LlhttpExports;
  return wasm;
}

export class H1Parser {
  readonly #w: LlhttpExports;
  readonly #sink: ParserSink;
  #ptr: number;
  #paused = false;
  #headBytes = 0;
  #tooLarge = false;
  /** Last callback was a header value (so the next field starts a new header). */
  #inValue = false;
  #field = '';
  #value = '';
  // The current message's head.
  method = '';
  target = '';
  statusCode = 0;
  statusText = '';
  /** Flat [name, value, ...], names as sent. */
  headers: string[] = [];
  httpMinor = 1;
  httpMajor = 1;
  keepAlive = true;
  upgrade = false;
  /** The head has been seen for the current message. */
  inBody = false;

  constructor(type: 'request' | 'response', sink: ParserSink) {
    this.#w = instance();
    this.#sink = sink;
    this.#ptr = this.#w.llhttp_alloc(type === 'request' ? (C.TYPE['REQUEST'] as number) : (C.TYPE['RESPONSE'] as number));
  }

  /** True when the response ends at the connection's close (no length, not chunked). */
  needsEof(): boolean {
    return this.#w.llhttp_message_needs_eof(this.#ptr) === 1;
  }

  /** Parses one chunk. Not reentrant: never call from a sink callback. */
  execute(chunk: Buffer): ExecuteResult {
    const w = this.#w;
    if (this.#paused) {
      w.llhttp_resume(this.#ptr);
      this.#paused = false;
    }
    if (chunk.length > bufSize) {
      if (bufPtr) w.free(bufPtr);
      bufSize = Math.ceil(chunk.length / 4096) * 4096;
      bufPtr = w.malloc(bufSize);
      view = undefined;
    }
    // The view is remade only when the wasm memory grew (its ArrayBuffer is replaced then).
    if (view === undefined || view.buffer !== w.memory.buffer) view = new Uint8Array(w.memory.buffer, bufPtr, bufSize);
    view.set(chunk);
    let ret: number;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the wasm callbacks reach the executing parser through this slot
    current = this;
    currentChunk = chunk;
    try {
      ret = w.llhttp_execute(this.#ptr, bufPtr, chunk.length);
    } finally {
      current = undefined;
      currentChunk = undefined;
    }
    if (ret === ERR_OK) return MORE;
    if (ret === ERR_PAUSED) {
      this.#paused = true;
      const rest = chunk.subarray(w.llhttp_get_error_pos(this.#ptr) - bufPtr);
      return this.upgrade ? { kind: 'upgrade', rest } : { kind: 'complete', rest };
    }
    if (ret === ERR_PAUSED_UPGRADE) return { kind: 'upgrade', rest: chunk.subarray(w.llhttp_get_error_pos(this.#ptr) - bufPtr) };
    return this.#error(ret);
  }

  /** The peer closed: completes a message that ends at EOF. Returns an error when one was cut short. */
  finish(): ExecuteResult {
    if (this.#paused) return MORE;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the wasm callbacks reach the executing parser through this slot
    current = this;
    let ret: number;
    try {
      ret = this.#w.llhttp_finish(this.#ptr);
    } finally {
      current = undefined;
    }
    if (ret === ERR_OK || ret === ERR_PAUSED) return MORE;
    return this.#error(ret);
  }

  destroy(): void {
    if (this.#ptr) this.#w.llhttp_free(this.#ptr);
    this.#ptr = 0;
  }

  #error(ret: number): ExecuteResult {
    if (this.#tooLarge) return { kind: 'error', code: 'HPE_HEADER_OVERFLOW', reason: 'head too large', tooLarge: true };
    const w = this.#w;
    const p = w.llhttp_get_error_reason(this.#ptr);
    let reason = '';
    if (p) {
      const mem = new Uint8Array(w.memory.buffer);
      let end = p;
      while (end < mem.length && mem[end] !== 0) end++;
      reason = Buffer.from(w.memory.buffer, p, end - p).toString('latin1');
    }
    const code = Object.keys(C.ERROR).find((k) => C.ERROR[k] === ret) ?? String(ret);
    return { kind: 'error', code: `HPE_${code}`, reason, tooLarge: false };
  }

  #count(len: number): number {
    this.#headBytes += len;
    if (this.#headBytes > MAX_HEAD_BYTES) {
      this.#tooLarge = true;
      return -1;
    }
    return 0;
  }

  // llhttp callbacks (called through the module-level env while this parser executes).
  begin(): number {
    this.#headBytes = 0;
    this.#inValue = false;
    this.#field = '';
    this.#value = '';
    this.target = '';
    this.statusText = '';
    this.headers = [];
    this.inBody = false;
    return 0;
  }

  url(s: string, len: number): number {
    this.target += s;
    return this.#count(len);
  }

  status(s: string, len: number): number {
    this.statusText += s;
    return this.#count(len);
  }

  field(s: string, len: number): number {
    if (this.#inValue) {
      this.headers.push(this.#field, this.#value);
      this.#field = '';
      this.#value = '';
      this.#inValue = false;
    }
    this.#field += s;
    return this.#count(len + 4);
  }

  value(s: string, len: number): number {
    this.#inValue = true;
    this.#value += s;
    return this.#count(len);
  }

  headersComplete(statusCode: number, upgrade: boolean, keepAlive: boolean): number {
    if (this.#field !== '') this.headers.push(this.#field, this.#value);
    this.#field = '';
    this.#value = '';
    this.#inValue = false;
    const w = this.#w;
    this.statusCode = statusCode;
    this.upgrade = upgrade;
    this.keepAlive = keepAlive;
    this.httpMajor = w.llhttp_get_http_major(this.#ptr);
    this.httpMinor = w.llhttp_get_http_minor(this.#ptr);
    if (statusCode === 0) this.method = METHOD_NAMES[w.llhttp_get_method(this.#ptr)] ?? '';
    this.inBody = true;
    return this.#sink.onHead(this) ? 1 : 0;
  }

  body(chunk: Buffer): number {
    this.#sink.onBody(chunk);
    return 0;
  }

  complete(): number {
    this.inBody = false;
    this.#sink.onComplete(this);
    return ERR_PAUSED;
  }
}

const MORE: ExecuteResult = { kind: 'more' };
