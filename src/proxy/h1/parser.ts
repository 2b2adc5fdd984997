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
    wasm_on_header_field: (_p: number, at: number, len: number): number => (current as H1Parser).cbField(at - bufPtr, len),
    wasm_on_header_value: (_p: number, at: number, len: number): number => (current as H1Parser).cbValue(at - bufPtr, len),
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
  /** Header strings (flat [name, value, ...]) once made; until then the head is offsets into the chunk. */
  #strings: string[] = [];
  /** The head's headers as [nameStart, nameEnd, valueStart, valueEnd] offsets into #chunk (raw mode). */
  #raw: number[] = [];
  #rawMode = true;
  /** Between message begin and headers complete. */
  #inHead = false;
  #chunk: Buffer | undefined;
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
    this.#chunk = chunk;
    this.#fresh = true;
    try {
      ret = w.llhttp_execute(this.#ptr, bufPtr, chunk.length);
      // A head that continues in the next chunk: its offsets would dangle, make strings now.
      if (this.#inHead && this.#rawMode) this.#materialize();
    } finally {
      current = undefined;
      currentChunk = undefined;
      this.#chunk = undefined;
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

  // The head's headers, valid during onHead (raw offsets point into the chunk being parsed).
  get headerCount(): number {
    return this.#rawMode ? this.#raw.length / 4 : this.#strings.length / 2;
  }

  /** Flat [name, value, ...], names as sent (made from the chunk on first use). */
  get headers(): string[] {
    if (this.#rawMode) this.#materialize();
    return this.#strings;
  }

  nameLength(i: number): number {
    return this.#rawMode ? (this.#raw[i * 4 + 1] as number) - (this.#raw[i * 4] as number) : (this.#strings[i * 2] as string).length;
  }

  /** Case-insensitive comparison of header i's name with a lower-case name. */
  nameIs(i: number, lower: string): boolean {
    if (!this.#rawMode) return (this.#strings[i * 2] as string).toLowerCase() === lower;
    const start = this.#raw[i * 4] as number;
    if ((this.#raw[i * 4 + 1] as number) - start !== lower.length) return false;
    const c = this.#chunk as Buffer;
    for (let k = 0; k < lower.length; k++) if (((c[start + k] as number) | 0x20) !== lower.charCodeAt(k)) return false;
    return true;
  }

  value(i: number): string {
    if (!this.#rawMode) return this.#strings[i * 2 + 1] as string;
    const vs = this.#raw[i * 4 + 2] as number;
    return vs < 0 ? '' : trimOws((this.#chunk as Buffer).toString('latin1', vs, this.#raw[i * 4 + 3] as number));
  }

  /** Headers from..to-1 as "name: value\r\n" lines (raw: the bytes as sent, one slice). */
  lines(from: number, to: number): string {
    if (to <= from) return '';
    if (!this.#rawMode) {
      let out = '';
      for (let i = from; i < to; i++) out += `${this.#strings[i * 2] as string}: ${this.#strings[i * 2 + 1] as string}\r\n`;
      return out;
    }
    const r = this.#raw;
    const last = (to - 1) * 4;
    const end = (r[last + 2] as number) < 0 ? (r[last + 1] as number) + 1 : (r[last + 3] as number);
    return `${(this.#chunk as Buffer).toString('latin1', r[from * 4] as number, end)}\r\n`;
  }

  #materialize(): void {
    const c = this.#chunk as Buffer;
    const r = this.#raw;
    const out: string[] = [];
    for (let i = 0; i < r.length; i += 4) {
      out.push(c.toString('latin1', r[i] as number, r[i + 1] as number), (r[i + 2] as number) < 0 ? '' : c.toString('latin1', r[i + 2] as number, r[i + 3] as number));
    }
    this.#raw = [];
    this.#rawMode = false;
    this.#field = '';
    this.#value = '';
    if (this.#inHead && out.length > 0) {
      // The last header may continue in the next chunk: it stays the one being built.
      this.#value = out.pop() as string;
      this.#field = out.pop() as string;
    }
    for (let i = 1; i < out.length; i += 2) out[i] = trimOws(out[i] as string);
    this.#strings = out;
  }

  #lastWasField = false;
  /** No callback yet in the current execute() (a string-mode name or value may continue the previous chunk's). */
  #fresh = false;

  // llhttp callbacks (called through the module-level env while this parser executes).
  begin(): number {
    this.#headBytes = 0;
    this.#inValue = false;
    this.#lastWasField = false;
    this.#field = '';
    this.#value = '';
    this.target = '';
    this.statusText = '';
    this.#strings = [];
    this.#raw = [];
    this.#rawMode = true;
    this.#inHead = true;
    this.inBody = false;
    return 0;
  }

  url(s: string, len: number): number {
    this.#fresh = false;
    this.target += s;
    return this.#count(len);
  }

  status(s: string, len: number): number {
    this.#fresh = false;
    this.statusText += s;
    return this.#count(len);
  }

  cbField(at: number, len: number): number {
    const fresh = this.#fresh;
    this.#fresh = false;
    if (this.#rawMode) {
      // Within one chunk llhttp reports each name in one piece: a name right after a name follows an empty value.
      this.#raw.push(at, at + len, -1, -1);
    } else {
      const text = (this.#chunk as Buffer).toString('latin1', at, at + len);
      if (this.#lastWasField && fresh) this.#field += text; // the name cut at the previous chunk's end
      else {
        if (this.#field !== '') this.#strings.push(this.#field, trimOws(this.#value));
        this.#field = text;
        this.#value = '';
      }
    }
    this.#lastWasField = true;
    this.#inValue = false;
    return this.#count(len + 4);
  }

  cbValue(at: number, len: number): number {
    this.#fresh = false;
    if (this.#rawMode) {
      const r = this.#raw;
      if ((r[r.length - 2] as number) < 0) r[r.length - 2] = at;
      r[r.length - 1] = at + len;
    } else this.#value += (this.#chunk as Buffer).toString('latin1', at, at + len);
    this.#lastWasField = false;
    this.#inValue = true;
    return this.#count(len);
  }

  headersComplete(statusCode: number, upgrade: boolean, keepAlive: boolean): number {
    if (!this.#rawMode && this.#field !== '') this.#strings.push(this.#field, trimOws(this.#value));
    this.#field = '';
    this.#value = '';
    this.#inValue = false;
    this.#lastWasField = false;
    this.#inHead = false;
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

/** llhttp leaves the trailing spaces and tabs of a value in it (RFC 9110 5.5: they are not part of it). */
function trimOws(v: string): string {
  const last = v.charCodeAt(v.length - 1);
  return last === 32 || last === 9 ? v.replace(/[ \t]+$/, '') : v;
}
