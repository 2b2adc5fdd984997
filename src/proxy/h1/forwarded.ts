// Owns the header rules of the HTTP path as pure functions: which request headers a client may
// send (one Host, an absolute-form target that agrees with it), which are hop-by-hop and dropped
// (RFC 9110 7.6.1, including the names a Connection header lists), the X-Forwarded-* the proxy
// sets (one forwardedHeaders() for plain requests and upgrade tunnels alike), and the response
// headers passed back. Heads come in and go out as flat [name, value, ...] lists and text.

// Request headers not forwarded on a plain request: hop-by-hop (connection, keep-alive,
// proxy-connection, te, upgrade, trailer), framing the proxy redoes (transfer-encoding), expect
// (answered by the proxy) and the X-Forwarded-* it sets. On an upgrade the Connection/Upgrade pair
// is the point: only the X-Forwarded-* are the proxy's. (forwardedHeaders() tells them by length
// first, so most names are never lower-cased or made into strings.)
const DROP_RES = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'trailer']);
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

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

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

/** A request the front end answers itself: no backend sees it, no outlier counter counts it. */
export interface Refusal {
  readonly refused: true;
  readonly status: number;
  readonly reason: string;
}

export interface ForwardedRequest {
  readonly refused: false;
  /** The header lines to send to the backend (each "name: value\r\n"), X-Forwarded-* included. */
  readonly lines: string;
  readonly host: string | undefined;
  readonly chunked: boolean;
  /** A body follows (a non-zero Content-Length, or chunked). */
  readonly hasBody: boolean;
  readonly expectContinue: boolean;
}

function refuse(reason: string, status = 400): Refusal {
  return { refused: true, status, reason };
}

/** The authority of an absolute-form target (http://host[:port]/...), lower-cased, or undefined for origin-form. */
function absoluteAuthority(target: string): string | undefined {
  if (target.charCodeAt(0) === 47 /* / */ || target === '*') return undefined;
  const m = /^https?:\/\/([^/?#]*)/i.exec(target);
  if (!m) return '';
  const auth = m[1] as string;
  const at = auth.lastIndexOf('@');
  return (at >= 0 ? auth.slice(at + 1) : auth).toLowerCase();
}

/**
 * Checks a parsed request head and builds the headers forwarded for it. tunnel: an upgrade
 * (WebSocket), whose Connection and Upgrade headers go through. Headers the client named in
 * Connection are dropped on plain requests; X-Forwarded-For gets the client's address appended,
 * X-Forwarded-Proto and -Host are always the proxy's.
 */
export function forwardedHeaders(method: string, target: string, httpMinor: number, h: HeadView, clientIp: string, tunnel: boolean): ForwardedRequest | Refusal {
  let lines = '';
  /** Start of the current run of headers forwarded as sent. */
  let run = 0;
  let xff: string | undefined;
  let host: string | undefined;
  let conn: string | undefined;
  let chunked = false;
  let hasBody = false;
  let expectContinue = false;
  const n = h.headerCount;
  for (let i = 0; i < n; i++) {
    let drop = false;
    switch (h.nameLength(i)) {
      case 2:
        drop = !tunnel && h.nameIs(i, 'te');
        break;
      case 4:
        if (h.nameIs(i, 'host')) {
          if (host !== undefined) return refuse('duplicate Host header');
          host = h.value(i);
        }
        break;
      case 6:
        if (h.nameIs(i, 'expect')) {
          const v = h.value(i);
          if (v.toLowerCase() !== '100-continue') return refuse(`unsupported Expect '${v}'`, 417);
          expectContinue = true;
          drop = !tunnel;
        }
        break;
      case 7:
        drop = !tunnel && (h.nameIs(i, 'upgrade') || h.nameIs(i, 'trailer'));
        break;
      case 10:
        if (h.nameIs(i, 'connection')) {
          if (!tunnel) {
            drop = true;
            conn = conn === undefined ? h.value(i) : `${conn}, ${h.value(i)}`;
          }
        } else drop = !tunnel && h.nameIs(i, 'keep-alive');
        break;
      case 14:
        if (h.nameIs(i, 'content-length') && h.value(i) !== '0') hasBody = true;
        break;
      case 15:
        if (h.nameIs(i, 'x-forwarded-for')) {
          drop = true;
          xff = xff === undefined ? h.value(i) : `${xff}, ${h.value(i)}`;
        }
        break;
      case 16:
        drop = h.nameIs(i, 'x-forwarded-host') || (!tunnel && h.nameIs(i, 'proxy-connection'));
        break;
      case 17:
        if (h.nameIs(i, 'transfer-encoding')) {
          // llhttp accepts only a final "chunked" (and refuses it beside Content-Length); the
          // proxy re-frames the body, so the header is its own to set.
          chunked = true;
          hasBody = true;
          drop = !tunnel;
        } else drop = h.nameIs(i, 'x-forwarded-proto');
        break;
    }
    if (drop) {
      lines += h.lines(run, i);
      run = i + 1;
    }
  }
  lines += h.lines(run, n);
  if (host === undefined && httpMinor >= 1) return refuse('HTTP/1.1 request without a Host header');
  const authority = absoluteAuthority(target);
  if (authority !== undefined) {
    if (authority === '') return refuse('bad request target');
    if (host !== undefined && authority !== host.toLowerCase()) return refuse('the request target names another host than the Host header');
  }
  if (method === 'CONNECT') return refuse('CONNECT is not supported', 405);
  if (!tunnel && conn !== undefined && conn !== 'keep-alive' && conn !== 'close') {
    const named = connectionListed(conn);
    if (named) {
      lines = withoutNamed(lines, named);
      if (named.has('x-forwarded-for')) xff = undefined;
    }
  }
  lines += `x-forwarded-for: ${xff === undefined ? clientIp : `${xff}, ${clientIp}`}\r\nx-forwarded-proto: http\r\n`;
  if (host !== undefined) lines += `x-forwarded-host: ${host}\r\n`;
  if (chunked && !tunnel) lines += 'transfer-encoding: chunked\r\n';
  return { refused: false, lines, host, chunked, hasBody, expectContinue };
}

/** Removes from header lines ("name: value\r\n" ...) the ones whose lower-cased name is in names. */
function withoutNamed(lines: string, names: Set<string>): string {
  let out = '';
  for (const line of lines.split('\r\n')) {
    if (line === '') continue;
    const name = line.slice(0, line.indexOf(':')).toLowerCase();
    if (!names.has(name)) out += `${line}\r\n`;
  }
  return out;
}

export interface ForwardedResponse {
  readonly lines: string;
  readonly contentLength: boolean;
}

/** The response headers passed to the client: all but hop-by-hop ones (and the ones Connection names). */
export function responseHeaders(raw: readonly string[]): ForwardedResponse {
  let lines = '';
  let conn: string | undefined;
  let contentLength = false;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i] as string;
    const lk = k.toLowerCase();
    if (DROP_RES.has(lk)) {
      if (lk === 'connection') conn = raw[i + 1] as string;
      continue;
    }
    if (lk === 'content-length') contentLength = true;
    lines += `${k}: ${raw[i + 1] as string}\r\n`;
  }
  if (conn !== undefined && conn !== 'keep-alive' && conn !== 'close') {
    const named = connectionListed(conn);
    if (named) lines = withoutNamed(lines, named);
  }
  return { lines, contentLength };
}

/** A parsed head read in place (the parser's accessors: no string per header unless asked). */
export interface HeadView {
  readonly headerCount: number;
  readonly headers: string[];
  nameLength(i: number): number;
  nameIs(i: number, lower: string): boolean;
  value(i: number): string;
  lines(from: number, to: number): string;
}

/**
 * responseHeaders() on a head read in place: the kept headers go out as the bytes the backend
 * sent (runs of lines between dropped ones), and only the values the proxy needs become strings.
 * Also returns the backend's Keep-Alive timeout.
 */
export function responseHead(h: HeadView): ForwardedResponse & { keepAliveSeconds: number | undefined } {
  const n = h.headerCount;
  let lines = '';
  let run = 0;
  let contentLength = false;
  let conn: string | undefined;
  let keepAlive: number | undefined;
  for (let i = 0; i < n; i++) {
    let drop = false;
    switch (h.nameLength(i)) {
      case 7:
        drop = h.nameIs(i, 'upgrade') || h.nameIs(i, 'trailer');
        break;
      case 10:
        if (h.nameIs(i, 'connection')) {
          drop = true;
          conn = conn === undefined ? h.value(i) : `${conn}, ${h.value(i)}`;
        } else if (h.nameIs(i, 'keep-alive')) {
          drop = true;
          const m = /timeout\s*=\s*(\d+)/i.exec(h.value(i));
          if (m) keepAlive = Number(m[1]);
        }
        break;
      case 14:
        if (h.nameIs(i, 'content-length')) contentLength = true;
        break;
      case 16:
        drop = h.nameIs(i, 'proxy-connection');
        break;
      case 17:
        drop = h.nameIs(i, 'transfer-encoding');
        break;
    }
    if (drop) {
      lines += h.lines(run, i);
      run = i + 1;
    }
  }
  lines += h.lines(run, n);
  if (conn !== undefined && conn !== 'keep-alive' && conn !== 'close' && connectionListed(conn)) {
    // Connection names more hop-by-hop headers (rare): the general path.
    return { ...responseHeaders(h.headers), keepAliveSeconds: keepAlive };
  }
  return { lines, contentLength, keepAliveSeconds: keepAlive };
}

/** The seconds of a backend's "Keep-Alive: timeout=N" response header, or undefined. */
export function keepAliveSeconds(raw: readonly string[]): number | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).length !== 10 || (raw[i] as string).toLowerCase() !== 'keep-alive') continue;
    const m = /timeout\s*=\s*(\d+)/i.exec(raw[i + 1] as string);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/** The text of a response the proxy writes itself (no backend named: the detail goes to logs). */
export function errorResponse(status: number, detail: string | undefined, close: boolean): string {
  const reason = reasonPhrase(status);
  const body = detail ? `${reason}: ${detail}\n` : `${reason}\n`;
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${close ? 'connection: close\r\n' : ''}\r\n${body}`;
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 405: 'Method Not Allowed', 413: 'Payload Too Large', 417: 'Expectation Failed', 431: 'Request Header Fields Too Large', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' };

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Error';
}
