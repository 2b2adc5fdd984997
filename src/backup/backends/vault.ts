// Owns the vault client Backend (`vault://host:port/name`): the repository lives on a
// `bulwark vault serve` box, reached over HTTP or HTTPS with a bearer token. Maps HTTP answers and
// connection failures to the BULWARK_BACKEND_* codes. The protocol is documented in vault/server.ts.
import { createHash } from 'node:crypto';
import { Agent, request, type Dispatcher } from 'undici';
import { BulwarkError, type ErrorCode } from '../../core/errors.js';
import { backendError, checkHandle, type Backend, type FileInfo, type FileType, type Handle, type WriteOptions } from '../backend.js';

export interface VaultBackendOptions {
  host: string;
  port: number;
  /** Repository name on the vault. */
  name: string;
  token: string;
  /** Use HTTPS; ca is the PEM of a private CA or self-signed certificate to trust. */
  tls?: { ca?: Buffer | undefined } | undefined;
  /** Per-request timeout (ms); default 60 s. */
  timeoutMs?: number;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'EPIPE']);
const TLS_CODES = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_VERIFY/;

function errnoOf(err: unknown): string | undefined {
  for (let e: unknown = err, i = 0; e && i < 5; e = (e as { cause?: unknown }).cause, i++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string') return c;
  }
  return undefined;
}

function codeForStatus(status: number, bodyCode: string | undefined): ErrorCode {
  if (bodyCode && /^BULWARK_BACKEND_[A-Z_]+$/.test(bodyCode)) return bodyCode as ErrorCode;
  if (status === 401) return 'BULWARK_BACKEND_AUTH';
  if (status === 403) return 'BULWARK_BACKEND_REFUSED';
  if (status === 404) return 'BULWARK_BACKEND_NOT_FOUND';
  if (status === 409) return 'BULWARK_BACKEND_EXISTS';
  if (status === 507 || status === 413) return 'BULWARK_BACKEND_FULL';
  return 'BULWARK_BACKEND_IO';
}

export class VaultBackend implements Backend {
  readonly location: string;
  readonly #base: string;
  readonly #token: string;
  readonly #agent: Agent;
  readonly #timeout: number;

  constructor(opts: VaultBackendOptions) {
    const scheme = opts.tls ? 'https' : 'http';
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    this.#base = `${scheme}://${host}:${opts.port}/v1/repos/${encodeURIComponent(opts.name)}`;
    this.location = `vault://${host}:${opts.port}/${opts.name}${opts.tls ? ' (tls)' : ''}`;
    this.#token = opts.token;
    this.#timeout = opts.timeoutMs ?? 60_000;
    this.#agent = new Agent({
      connect: { ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}), timeout: Math.min(this.#timeout, 10_000) },
      keepAliveTimeout: 10_000,
      headersTimeout: this.#timeout,
      bodyTimeout: this.#timeout,
    });
  }

  async #call(h: Handle | undefined, op: string, method: Dispatcher.HttpMethod, path: string, init: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Dispatcher.ResponseData> {
    let res: Dispatcher.ResponseData;
    try {
      res = await request(`${this.#base}${path}`, {
        dispatcher: this.#agent,
        method,
        headers: { authorization: `Bearer ${this.#token}`, ...init.headers },
        ...(init.body ? { body: init.body } : {}),
      });
    } catch (err) {
      const code = errnoOf(err) ?? '';
      if (TLS_CODES.test(code)) {
        throw new BulwarkError('BULWARK_BACKEND_AUTH', `${this.location}: TLS verification of the vault failed (${code})`, {
          hint: 'give the vault certificate (or its CA) as ?ca=FILE in the URL',
          cause: err,
        });
      }
      const unreachable = CONNECT_CODES.has(code);
      throw backendError(unreachable ? 'BULWARK_BACKEND_UNREACHABLE' : 'BULWARK_BACKEND_IO', this.location, h, `${op} failed: ${code} ${(err as Error).message}`.trim(), err);
    }
    if (res.statusCode >= 400) {
      let bodyCode: string | undefined;
      let message = `HTTP ${res.statusCode}`;
      try {
        const j = (await res.body.json()) as { code?: string; message?: string };
        bodyCode = j.code;
        if (j.message) message = j.message;
      } catch {
        await res.body.dump().catch(() => undefined);
      }
      const code = codeForStatus(res.statusCode, bodyCode);
      const e = backendError(code, this.location, h, `${op}: ${message}`);
      if (code === 'BULWARK_BACKEND_AUTH') {
        throw new BulwarkError(code, e.message, { hint: 'check the token_file of this target against the vault tokens file (and the repository the token may use)' });
      }
      throw e;
    }
    return res;
  }

  #path(h: Handle): string {
    checkHandle(h);
    return `/${h.type}/${h.type === 'config' ? 'config' : encodeURIComponent(h.name)}`;
  }

  async create(): Promise<void> {
    const res = await this.#call(undefined, 'create', 'POST', '');
    await res.body.dump();
  }

  async stat(h: Handle): Promise<FileInfo> {
    const res = await this.#call(h, 'stat', 'HEAD', this.#path(h));
    await res.body.dump();
    return { name: h.name, size: Number(res.headers['content-length'] ?? 0) };
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    const res = await this.#call(undefined, `list ${type}`, 'GET', `/${type}/`);
    const files = (await res.body.json()) as FileInfo[];
    yield* files;
  }

  async read(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const p = this.#path(h);
    if (length === 0) {
      await this.stat(h);
      return Buffer.alloc(0);
    }
    const ranged = offset > 0 || length !== undefined;
    const headers: Record<string, string> = ranged ? { range: `bytes=${offset}-${length === undefined ? '' : offset + length - 1}` } : {};
    const res = await this.#call(h, 'read', 'GET', p, { headers });
    const buf = Buffer.from(await res.body.arrayBuffer());
    if (length !== undefined && buf.length !== length) {
      throw backendError('BULWARK_BACKEND_IO', this.location, h, `short read: wanted ${length} bytes at ${offset}, got ${buf.length}`);
    }
    return buf;
  }

  async write(h: Handle, data: Buffer, opts: WriteOptions = {}): Promise<void> {
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'x-bulwark-sha256': createHash('sha256').update(data).digest('hex'),
    };
    if (opts.retainUntil !== undefined) headers['x-bulwark-retain-until'] = String(Math.ceil(opts.retainUntil));
    const res = await this.#call(h, 'write', 'PUT', this.#path(h), { headers, body: data });
    await res.body.dump();
  }

  async remove(h: Handle): Promise<void> {
    const res = await this.#call(h, 'remove', 'DELETE', this.#path(h));
    await res.body.dump();
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}

/** Builds a vault backend from `vault://host:port/name[?ca=FILE|tls=1]`; the token from opts, else BULWARK_VAULT_TOKEN. */
export function vaultFromUrl(url: URL, opts: { token?: string | undefined } = {}, readFile: (p: string) => Buffer): VaultBackend {
  if (url.username || url.password) {
    // Never echo the URL: what is before the @ is probably the token.
    throw new BulwarkError('BULWARK_BACKEND_URL', `the vault URL for ${url.host}${url.pathname} carries credentials before the host`, {
      hint: 'a token in a URL ends up in argv, shell history, logs and run records: use token_file on the target (or BULWARK_VAULT_TOKEN), and vault://host:port/name',
    });
  }
  const name = decodeURIComponent(url.pathname.replace(/^\/+|\/+$/g, ''));
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(name)) {
    throw new BulwarkError('BULWARK_BACKEND_URL', `vault URL ${url.href} needs one repository name after the address`, { hint: 'use vault://host:port/name' });
  }
  if (!url.port) throw new BulwarkError('BULWARK_BACKEND_URL', `vault URL ${url.href} names no port`, { hint: 'use vault://host:port/name' });
  const token = opts.token ?? process.env['BULWARK_VAULT_TOKEN'];
  if (!token) {
    throw new BulwarkError('BULWARK_BACKEND_AUTH', `no token for ${url.href}`, { hint: 'set token_file on the target, or BULWARK_VAULT_TOKEN' });
  }
  const caFile = url.searchParams.get('ca');
  let ca: Buffer | undefined;
  if (caFile) {
    try {
      ca = readFile(caFile);
    } catch (err) {
      throw new BulwarkError('BULWARK_CONFIG_SECRET_MISSING', `cannot read the vault CA ${caFile}: ${(err as Error).message}`, { hint: 'point ca= at the vault certificate (PEM)' });
    }
  }
  const tls = caFile !== null || url.searchParams.get('tls') === '1' || url.searchParams.get('tls') === 'true';
  return new VaultBackend({ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port), name, token, ...(tls ? { tls: { ca } } : {}) });
}
