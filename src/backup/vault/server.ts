// Owns the vault: an HTTP(S) repository server for the offsite box (`bulwark vault serve`). Each
// repository is a directory under --root stored with the local-disk backend (atomic writes, no
// overwrite). Per-client bearer tokens from a tokens file; append-only mode refuses overwrites and
// deletes; files under the retention lock are never deleted, and past it only the admin token
// deletes. Access rules are pure logic in policy.ts.
//
// Protocol (all under /v1/repos/:repo, bearer token required; GET /healthz is open):
//   POST   /v1/repos/:repo                  create the layout (idempotent)
//   GET    /v1/repos/:repo/:type/           list files: JSON [{name, size}]
//   HEAD   /v1/repos/:repo/:type/:name      stat (Content-Length)
//   GET    /v1/repos/:repo/:type/:name      read; honours Range: bytes=a-b
//   PUT    /v1/repos/:repo/:type/:name      write (409 if it exists); X-Bulwark-Retain-Until: ms (at most
//                                           --max-retention ahead); X-Bulwark-Sha256: hex of the body
//                                           (checked before storing). Bodies stream to disk; keys and
//                                           snapshots are validated (framing, size, name = SHA-256).
//   DELETE /v1/repos/:repo/:type/:name      remove, subject to policy
//   POST   /v1/repos/:repo/:type/:name?quarantine   admin only: move the file aside (never deleted,
//                                           even inside its retention lock) to .vault-quarantine/
// Per token: at most max_concurrent_uploads PUTs at once (429) and max_bytes_per_day (507; the
// day's counts are kept in <root>/.vault-usage.json, so a restart does not reset them).
// Errors answer JSON {code, message} with 400/401/403/404/409/413/429/507/500.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type Clock, systemClock } from '../../core/clock.js';
import { BulwarkError, describeError, isBulwarkError, type ErrorCode } from '../../core/errors.js';
import { parseHostPort } from '../../core/config/types.js';
import { parseDuration, parseSize } from '../../core/units.js';
import { checkHandle, FILE_TYPES, filePath, type FileType, type Handle } from '../backend.js';
import { LocalBackend } from '../backends/local.js';
import { mayDelete, mayUse, type VaultToken } from './policy.js';
import { uploadLimit, validateUpload } from './validate.js';

export interface VaultServerOptions {
  root: string;
  tokens: readonly VaultToken[];
  appendOnly: boolean;
  /** Server-wide retention lock in ms (0 = none). */
  retentionMs: number;
  tls?: { cert: Buffer; key: Buffer } | undefined;
  clock?: Clock;
  /** Largest accepted file (bytes). */
  maxBody?: number;
  /** Latest X-Bulwark-Retain-Until accepted, as ms from now (default: 400 days, or retention + 1 day if longer). */
  maxRetentionMs?: number;
  /** Validate key, snapshot and index uploads and check content-addressed names (default true). */
  validateUploads?: boolean;
  log?: (msg: string, data?: Record<string, unknown>) => void;
}

const REPO_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

const STATUS: Partial<Record<ErrorCode, number>> = {
  BULWARK_BACKEND_AUTH: 401,
  BULWARK_BACKEND_REFUSED: 403,
  BULWARK_BACKEND_NOT_FOUND: 404,
  BULWARK_BACKEND_EXISTS: 409,
  BULWARK_BACKEND_FULL: 507,
  BULWARK_API_BAD_REQUEST: 400,
};

const tokensSchema = z.strictObject({
  admin: z.string().min(16, { message: 'the admin token must be at least 16 characters' }),
  clients: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        token: z.string().min(16, { message: 'client tokens must be at least 16 characters' }),
        repos: z.array(z.string().regex(REPO_RE)).optional(),
        max_concurrent_uploads: z.number().int().min(1).max(1024).optional(),
        max_bytes_per_day: z.union([z.number().int().positive(), z.string()]).optional(),
      }),
    )
    .default([]),
});

/** Reads a tokens file: `admin: TOKEN` and `clients: [{name, token, repos?}]` (YAML). */
export function loadTokens(file: string): VaultToken[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new BulwarkError('BULWARK_VAULT_TOKENS', `cannot read the tokens file ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'create it (mode 0600) with `admin: <token>` and `clients: [{name: laptop, token: <token>}]`',
    });
  }
  let parsed: z.output<typeof tokensSchema>;
  try {
    parsed = tokensSchema.parse(parseYaml(text));
  } catch (err) {
    const detail = err instanceof z.ZodError ? err.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ') : describeError(err);
    throw new BulwarkError('BULWARK_VAULT_TOKENS', `the tokens file ${file} is malformed: ${detail}`, {
      hint: 'expected YAML with `admin: <token>` and `clients: [{name, token, repos?}]`',
    });
  }
  const all: VaultToken[] = [{ name: 'admin', token: parsed.admin, role: 'admin' }];
  for (const c of parsed.clients) {
    let perDay: number | undefined;
    if (c.max_bytes_per_day !== undefined) {
      try {
        perDay = parseSize(c.max_bytes_per_day, 'max_bytes_per_day');
      } catch (err) {
        throw new BulwarkError('BULWARK_VAULT_TOKENS', `the tokens file ${file}: client '${c.name}': ${describeError(err)}`, { hint: 'a size such as 50GiB' });
      }
    }
    all.push({ name: c.name, token: c.token, role: 'client', repos: c.repos, ...(c.max_concurrent_uploads ? { maxUploads: c.max_concurrent_uploads } : {}), ...(perDay ? { maxBytesPerDay: perDay } : {}) });
  }
  const seen = new Set<string>();
  for (const t of all) {
    if (seen.has(t.token)) throw new BulwarkError('BULWARK_VAULT_TOKENS', `the tokens file ${file} gives two entries the same token`, { hint: 'every client needs its own token' });
    seen.add(t.token);
  }
  return all;
}

/** Reads --tls-cert/--tls-key, or fails with BULWARK_VAULT_TLS. */
export function loadTls(certFile: string | undefined, keyFile: string | undefined): { cert: Buffer; key: Buffer } | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) {
    throw new BulwarkError('BULWARK_VAULT_TLS', 'TLS needs both --tls-cert and --tls-key', { hint: 'pass both PEM files, or neither for plain HTTP' });
  }
  try {
    return { cert: readFileSync(certFile), key: readFileSync(keyFile) };
  } catch (err) {
    throw new BulwarkError('BULWARK_VAULT_TLS', `cannot read TLS file: ${describeError(err)}`, { hint: 'check the paths given to --tls-cert and --tls-key' });
  }
}

export function parseRetention(text: string | undefined): number {
  return text === undefined ? 0 : parseDuration(text);
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class VaultServer {
  readonly #opts: Required<Omit<VaultServerOptions, 'tls' | 'log'>> & Pick<VaultServerOptions, 'tls' | 'log'>;
  readonly #server: Server;
  readonly #repos = new Map<string, LocalBackend>();
  readonly #lockWrites = new Map<string, Promise<void>>();
  /** Per token: uploads in flight, and bytes accepted on the current UTC day (in memory: a restart resets it). */
  readonly #uploads = new Map<string, number>();
  readonly #daily = new Map<string, { day: number; bytes: number }>();
  /** Daily usage is saved here (debounced), so a restart does not reset the quotas. */
  #usageTimer: NodeJS.Timeout | undefined;
  #usageWrite: Promise<void> = Promise.resolve();
  #address = '';

  constructor(opts: VaultServerOptions) {
    const day = 86_400_000;
    this.#opts = { clock: systemClock, maxBody: 1024 * 1024 * 1024, maxRetentionMs: Math.max(400 * day, opts.retentionMs + day), validateUploads: true, ...opts };
    const handler = (req: IncomingMessage, res: ServerResponse): void => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    };
    if (opts.tls) {
      try {
        this.#server = createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler);
      } catch (err) {
        throw new BulwarkError('BULWARK_VAULT_TLS', `the TLS certificate or key does not parse: ${describeError(err)}`, { hint: 'pass PEM files to --tls-cert and --tls-key' });
      }
    } else {
      this.#server = createHttpServer(handler);
    }
    this.#server.keepAliveTimeout = 30_000;
  }

  /** "host:port" it listens on, once listening. */
  get address(): string {
    return this.#address;
  }

  get tls(): boolean {
    return this.#opts.tls !== undefined;
  }

  async listen(addr: string): Promise<string> {
    const hp = parseHostPort(addr);
    if (!hp) throw new BulwarkError('BULWARK_VAULT_LISTEN', `--listen must be host:port, got '${addr}'`, { hint: 'for example 127.0.0.1:8443' });
    try {
      await fs.mkdir(this.#opts.root, { recursive: true, mode: 0o700 });
      await fs.access(this.#opts.root, 2 /* W_OK */);
    } catch (err) {
      throw new BulwarkError('BULWARK_VAULT_ROOT', `cannot use ${this.#opts.root} as the vault root: ${describeError(err)}`, { hint: 'point --root at a writable directory' });
    }
    await new Promise<void>((resolve, reject) => {
      const onErr = (err: Error): void => reject(new BulwarkError('BULWARK_VAULT_LISTEN', `cannot listen on ${addr}: ${describeError(err)}`, { hint: 'pick a free address:port' }));
      this.#server.once('error', onErr);
      this.#server.listen(hp.port, hp.host, () => {
        this.#server.off('error', onErr);
        resolve();
      });
    });
    await this.#loadUsage();
    const a = this.#server.address() as AddressInfo;
    this.#address = `${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
    return this.#address;
  }

  async close(): Promise<void> {
    if (this.#usageTimer) {
      clearTimeout(this.#usageTimer);
      this.#usageTimer = undefined;
      this.#saveUsage();
    }
    await this.#usageWrite;
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #auth(req: IncomingMessage, repo: string): VaultToken {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(h);
    if (!m) throw new HttpError(401, 'BULWARK_BACKEND_AUTH', 'missing bearer token');
    const given = Buffer.from(m[1] as string);
    const tok = this.#opts.tokens.find((t) => {
      const want = Buffer.from(t.token);
      return want.length === given.length && timingSafeEqual(want, given);
    });
    if (!tok) throw new HttpError(401, 'BULWARK_BACKEND_AUTH', 'unknown token');
    if (!mayUse(tok, repo)) throw new HttpError(403, 'BULWARK_BACKEND_AUTH', `token '${tok.name}' may not use repository '${repo}'`);
    return tok;
  }

  #repo(name: string): LocalBackend {
    let b = this.#repos.get(name);
    if (!b) {
      b = new LocalBackend(join(this.#opts.root, name));
      this.#repos.set(name, b);
    }
    return b;
  }

  #metaPath(repo: string, h: Handle): string {
    return join(this.#opts.root, repo, '.vault-retain', filePath(h).replaceAll('/', '_'));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://vault');
    if (url.pathname === '/healthz' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    const parts = url.pathname.split('/').slice(1);
    if (parts[0] !== 'v1' || parts[1] !== 'repos' || !parts[2] || !REPO_RE.test(parts[2])) {
      throw new HttpError(404, 'BULWARK_API_BAD_REQUEST', `no such endpoint ${req.method ?? ''} ${url.pathname}`);
    }
    const repoName = parts[2];
    const tok = this.#auth(req, repoName);
    const repo = this.#repo(repoName);
    const method = req.method ?? 'GET';
    if (parts.length === 3) {
      if (method !== 'POST') throw new HttpError(405, 'BULWARK_API_BAD_REQUEST', 'use POST to create a repository');
      await repo.create();
      res.writeHead(204).end();
      return;
    }
    const type = parts[3] as FileType;
    if (!FILE_TYPES.includes(type)) throw new HttpError(400, 'BULWARK_API_BAD_REQUEST', `unknown file type '${parts[3] ?? ''}'`);
    const name = parts[4] ?? '';
    if (name === '' && parts.length === 5) {
      if (method !== 'GET') throw new HttpError(405, 'BULWARK_API_BAD_REQUEST', 'use GET to list');
      const out: Array<{ name: string; size: number }> = [];
      for await (const f of repo.list(type)) out.push({ name: f.name, size: f.size });
      this.#json(res, 200, out);
      return;
    }
    let decoded: string;
    try {
      decoded = decodeURIComponent(name);
    } catch {
      throw new HttpError(400, 'BULWARK_API_BAD_REQUEST', 'malformed file name in the path');
    }
    const h: Handle = { type, name: type === 'config' ? 'config' : decoded };
    try {
      checkHandle(h);
    } catch (err) {
      throw new HttpError(400, 'BULWARK_API_BAD_REQUEST', describeError(err));
    }
    switch (method) {
      case 'HEAD': {
        const st = await repo.stat(h);
        res.writeHead(200, { 'content-length': st.size }).end();
        return;
      }
      case 'GET': {
        const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
        const offset = range ? Number(range[1]) : 0;
        let length: number | undefined;
        if (range) {
          // Clamp the range to the file (RFC 9110): the read buffer is never sized from the client's numbers.
          const size = (await repo.stat(h)).size;
          const last = range[2] ? Math.min(Number(range[2]), size - 1) : size - 1;
          if (!range[2] && offset >= size) {
            length = 0; // "from past the end": nothing, as the other backends answer
          } else if (offset >= size || last < offset) {
            res.writeHead(416, { 'content-range': `bytes */${size}` }).end();
            return;
          } else {
            length = last - offset + 1;
          }
        }
        const data = length === 0 ? Buffer.alloc(0) : await repo.read(h, offset, length);
        res.writeHead(range ? 206 : 200, { 'content-type': 'application/octet-stream', 'content-length': data.length }).end(data);
        return;
      }
      case 'PUT': {
        const retainRaw = req.headers['x-bulwark-retain-until'];
        const retainUntil = typeof retainRaw === 'string' && /^\d+$/.test(retainRaw) ? Number(retainRaw) : undefined;
        const latest = this.#opts.clock.now() + this.#opts.maxRetentionMs;
        if (retainUntil !== undefined && retainUntil > latest) {
          this.#opts.log?.('write refused', { repo: repoName, file: filePath(h), token: tok.name, reason: 'retain-until past max retention' });
          throw new HttpError(403, 'BULWARK_BACKEND_REFUSED', `X-Bulwark-Retain-Until ${new Date(retainUntil).toISOString()} is past this vault's --max-retention (${new Date(latest).toISOString()}); nothing was stored`);
        }
        const release = this.#admit(tok, Number(req.headers['content-length'] ?? 0) || 0);
        try {
          const sum = req.headers['x-bulwark-sha256'];
          const validate = this.#opts.validateUploads;
          const small = uploadLimit(type);
          if (validate && small !== undefined) {
            // Keys, snapshots, config, locks: small; checked whole before anything is stored.
            const body = await this.#body(req, Math.min(small, this.#opts.maxBody));
            if (typeof sum === 'string' && createHash('sha256').update(body).digest('hex') !== sum) {
              throw new HttpError(400, 'BULWARK_BACKEND_IO', 'the body does not match its X-Bulwark-Sha256 (truncated or damaged upload); nothing was stored');
            }
            const bad = validateUpload(h, body);
            if (bad) {
              this.#opts.log?.('write refused', { repo: repoName, file: filePath(h), token: tok.name, reason: bad });
              throw new HttpError(400, 'BULWARK_BACKEND_REFUSED', `${filePath(h)} refused: ${bad}; nothing was stored`);
            }
            this.#count(tok, body.length);
            if (retainUntil !== undefined) await this.#extendLock(repoName, h, retainUntil);
            await repo.write(h, body);
            this.#opts.log?.('write', { repo: repoName, file: filePath(h), bytes: body.length, token: tok.name });
            res.writeHead(201).end();
            return;
          }
          // The lock is recorded before the file appears, so a crash never leaves a file without its lock.
          // A lock left by an earlier attempt that failed is only ever extended, never kept shorter.
          if (retainUntil !== undefined) await this.#extendLock(repoName, h, retainUntil);
          const hash = createHash('sha256');
          let size = 0;
          const declared = Number(req.headers['content-length'] ?? NaN);
          if (declared > this.#opts.maxBody) throw new HttpError(413, 'BULWARK_BACKEND_FULL', `file of ${declared} bytes exceeds the vault's limit of ${this.#opts.maxBody}`);
          const maxBody = this.#opts.maxBody;
          const count = (n: number): void => this.#count(tok, n);
          async function* source(): AsyncIterable<Buffer> {
            for await (const c of req as AsyncIterable<Buffer>) {
              size += c.length;
              if (size > maxBody) throw new HttpError(413, 'BULWARK_BACKEND_FULL', `file exceeds the vault's limit of ${maxBody} bytes`);
              count(c.length);
              hash.update(c);
              yield c;
            }
          }
          await repo.writeStream(h, source(), () => {
            if (!Number.isNaN(declared) && size !== declared) throw new HttpError(400, 'BULWARK_BACKEND_IO', `upload truncated: got ${size} of ${declared} bytes`);
            const hex = hash.digest('hex');
            if (typeof sum === 'string' && hex !== sum) throw new HttpError(400, 'BULWARK_BACKEND_IO', 'the body does not match its X-Bulwark-Sha256 (truncated or damaged upload); nothing was stored');
            if (validate && (type === 'data' || type === 'index') && hex !== h.name) throw new HttpError(400, 'BULWARK_BACKEND_REFUSED', `${filePath(h)} refused: its name is not the SHA-256 of its content; nothing was stored`);
          });
          this.#opts.log?.('write', { repo: repoName, file: filePath(h), bytes: size, token: tok.name });
          res.writeHead(201).end();
          return;
        } catch (err) {
          // Refused before the whole body arrived (quota, size, a full disk): answer, then close the
          // connection, or the client keeps sending into a request nobody reads and stalls.
          if (!req.complete) {
            res.setHeader('connection', 'close');
            res.once('finish', () => req.destroy());
          }
          throw err;
        } finally {
          release();
        }
      }
      case 'POST': {
        if (!url.searchParams.has('quarantine')) throw new HttpError(405, 'BULWARK_API_BAD_REQUEST', 'POST on a file only quarantines it: add ?quarantine');
        if (tok.role !== 'admin') throw new HttpError(403, 'BULWARK_BACKEND_REFUSED', 'only the admin token may quarantine a file');
        const from = join(this.#opts.root, repoName, filePath(h));
        const dir = join(this.#opts.root, repoName, '.vault-quarantine', type);
        const to = join(dir, `${h.name}.${this.#opts.clock.now()}`);
        try {
          await fs.stat(from);
        } catch {
          throw new HttpError(404, 'BULWARK_BACKEND_NOT_FOUND', `${filePath(h)} does not exist`);
        }
        await fs.mkdir(dir, { recursive: true, mode: 0o700 });
        await fs.rename(from, to); // moved aside, never deleted; its retention record stays
        this.#opts.log?.('quarantine', { repo: repoName, file: filePath(h), token: tok.name, to: `.vault-quarantine/${type}/${h.name}.${this.#opts.clock.now()}` });
        this.#json(res, 200, { quarantined: filePath(h), to: `.vault-quarantine/${type}/${to.split('/').at(-1) ?? ''}` });
        return;
      }
      case 'DELETE': {
        const p = join(this.#opts.root, repoName, filePath(h));
        let writtenAt: number;
        try {
          writtenAt = (await fs.stat(p)).mtimeMs;
        } catch {
          res.writeHead(204).end(); // deleting a missing file is not an error
          return;
        }
        let retainUntil: number | undefined;
        try {
          const text = await fs.readFile(this.#metaPath(repoName, h), 'utf8');
          retainUntil = /^\d+$/.test(text.trim()) ? Number(text.trim()) : Number.POSITIVE_INFINITY;
        } catch (err) {
          retainUntil = (err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : Number.POSITIVE_INFINITY;
        }
        if (retainUntil === Number.POSITIVE_INFINITY) {
          // Fail closed: a lock that cannot be read is not an expired lock.
          this.#opts.log?.('delete refused', { repo: repoName, file: filePath(h), token: tok.name, reason: 'unreadable retention side file' });
          throw new HttpError(403, 'BULWARK_BACKEND_REFUSED', `delete of ${filePath(h)} refused: its retention lock record cannot be read (fix or remove it on the vault box by hand)`);
        }
        const d = mayDelete({
          appendOnly: this.#opts.appendOnly,
          role: tok.role,
          type,
          writtenAt,
          retainUntil,
          retentionMs: this.#opts.retentionMs,
          now: this.#opts.clock.now(),
        });
        if (!d.allowed) {
          this.#opts.log?.('delete refused', { repo: repoName, file: filePath(h), token: tok.name, reason: d.reason });
          throw new HttpError(403, 'BULWARK_BACKEND_REFUSED', `delete of ${filePath(h)} refused: ${d.reason}`);
        }
        await repo.remove(h);
        await fs.rm(this.#metaPath(repoName, h), { force: true });
        this.#opts.log?.('delete', { repo: repoName, file: filePath(h), token: tok.name });
        res.writeHead(204).end();
        return;
      }
      default:
        throw new HttpError(405, 'BULWARK_API_BAD_REQUEST', `method ${method} not allowed`);
    }
  }

  /** Records retainUntil for a file, keeping the later of it and any lock already recorded (atomic replace, serialised per file). */
  #extendLock(repo: string, h: Handle, retainUntil: number): Promise<void> {
    const mp = this.#metaPath(repo, h);
    const run = async (): Promise<void> => {
      await fs.mkdir(join(this.#opts.root, repo, '.vault-retain'), { recursive: true });
      let prev = 0;
      try {
        prev = Number(await fs.readFile(mp, 'utf8')) || 0;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (retainUntil <= prev) return;
      const tmp = `${mp}.tmp-${randomBytes(6).toString('hex')}`;
      try {
        await fs.writeFile(tmp, String(retainUntil), { flag: 'wx' });
        await fs.rename(tmp, mp);
      } catch (err) {
        await fs.rm(tmp, { force: true });
        throw err;
      }
    };
    const next = (this.#lockWrites.get(mp) ?? Promise.resolve()).then(run, run);
    const tail = next.catch(() => undefined);
    this.#lockWrites.set(mp, tail);
    void tail.then(() => {
      if (this.#lockWrites.get(mp) === tail) this.#lockWrites.delete(mp);
    });
    return next;
  }

  /** Admits an upload by this token: its concurrency and daily byte limits. Returns the release. */
  #admit(tok: VaultToken, declared: number): () => void {
    const n = this.#uploads.get(tok.name) ?? 0;
    const max = tok.maxUploads ?? (tok.role === 'admin' ? 64 : 32);
    if (n >= max) throw new HttpError(429, 'BULWARK_BACKEND_REFUSED', `token '${tok.name}' already has ${n} uploads in flight (its limit is ${max}); retry later`);
    if (tok.maxBytesPerDay !== undefined && declared > 0) {
      const d = this.#today(tok);
      if (d.bytes + declared > tok.maxBytesPerDay) throw new HttpError(507, 'BULWARK_BACKEND_FULL', `token '${tok.name}' reached its quota of ${tok.maxBytesPerDay} bytes per day; nothing was stored`);
    }
    this.#uploads.set(tok.name, n + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.#uploads.get(tok.name) ?? 1) - 1;
      if (left <= 0) this.#uploads.delete(tok.name);
      else this.#uploads.set(tok.name, left);
    };
  }

  #today(tok: VaultToken): { day: number; bytes: number } {
    const day = Math.floor(this.#opts.clock.now() / 86_400_000);
    let d = this.#daily.get(tok.name);
    if (!d || d.day !== day) this.#daily.set(tok.name, (d = { day, bytes: 0 }));
    return d;
  }

  get #usageFile(): string {
    return join(this.#opts.root, '.vault-usage.json'); // not a repository name (those start alphanumeric)
  }

  async #loadUsage(): Promise<void> {
    let v: unknown;
    try {
      v = JSON.parse(await fs.readFile(this.#usageFile, 'utf8'));
    } catch {
      return; // none yet, or unreadable: start from zero (the log still has every write)
    }
    const u = v as { day?: unknown; bytes?: unknown };
    const today = Math.floor(this.#opts.clock.now() / 86_400_000);
    if (u.day !== today || typeof u.bytes !== 'object' || u.bytes === null) return;
    for (const [name, n] of Object.entries(u.bytes as Record<string, unknown>)) if (typeof n === 'number' && Number.isFinite(n) && n >= 0) this.#daily.set(name, { day: today, bytes: n });
  }

  #saveUsage(): void {
    const today = Math.floor(this.#opts.clock.now() / 86_400_000);
    const bytes: Record<string, number> = {};
    for (const [name, d] of this.#daily) if (d.day === today) bytes[name] = d.bytes;
    const text = JSON.stringify({ day: today, bytes });
    const file = this.#usageFile;
    this.#usageWrite = this.#usageWrite.then(async () => {
      const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
      try {
        await fs.writeFile(tmp, text, { mode: 0o600 });
        await fs.rename(tmp, file);
      } catch (err) {
        await fs.rm(tmp, { force: true });
        this.#opts.log?.('usage not saved', { error: describeError(err) });
      }
    });
  }

  /** Counts accepted bytes against the token's daily quota (throws once it is exceeded). */
  #count(tok: VaultToken, n: number): void {
    if (tok.maxBytesPerDay === undefined) return;
    const d = this.#today(tok);
    d.bytes += n;
    if (!this.#usageTimer) {
      this.#usageTimer = setTimeout(() => {
        this.#usageTimer = undefined;
        this.#saveUsage();
      }, 1000);
      this.#usageTimer.unref();
    }
    if (d.bytes > tok.maxBytesPerDay) throw new HttpError(507, 'BULWARK_BACKEND_FULL', `token '${tok.name}' reached its quota of ${tok.maxBytesPerDay} bytes per day; nothing was stored`);
  }

  #body(req: IncomingMessage, max = this.#opts.maxBody): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > max) return Promise.reject(new HttpError(413, 'BULWARK_BACKEND_FULL', `file of ${declared} bytes exceeds the vault's limit of ${max}`));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > max) {
          reject(new HttpError(413, 'BULWARK_BACKEND_FULL', `file exceeds the vault's limit of ${max} bytes`));
          req.destroy();
          return;
        }
        chunks.push(c);
      });
      req.on('end', () => {
        if (!Number.isNaN(declared) && size !== declared) reject(new HttpError(400, 'BULWARK_BACKEND_IO', `upload truncated: got ${size} of ${declared} bytes`));
        else resolve(Buffer.concat(chunks));
      });
      req.on('error', reject);
    });
  }

  #json(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
  }

  #fail(res: ServerResponse, err: unknown): void {
    let status = 500;
    let code = 'BULWARK_BACKEND_IO';
    let message = describeError(err);
    if (err instanceof HttpError) {
      status = err.status;
      code = err.code;
      message = err.message;
    } else if (isBulwarkError(err)) {
      status = STATUS[err.code] ?? 500;
      code = err.code;
      message = err.message;
    }
    // Do not leak the server's filesystem paths to clients (raw fs errors name them too).
    if (!(err instanceof HttpError)) message = message.replaceAll(this.#opts.root, '<vault>');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.#json(res, status, { code, message });
  }
}
