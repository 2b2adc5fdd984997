// Owns the SFTP Backend (`sftp://user@host:port/path`): one SSH connection (ssh2) with one SFTP
// channel, opened lazily and reopened after a drop. Writes go to a temp file, are fsynced
// (fsync@openssh.com), then renamed with the plain SFTP rename, which OpenSSH implements with
// link(2): it refuses to replace an existing file, so a write never overwrites. Failures map to
// BULWARK_BACKEND_* codes (unreachable, auth, not found, full disk via statvfs, refused).
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { Client, type ConnectConfig, type SFTPWrapper, type Stats } from 'ssh2';
import { BulwarkError, type ErrorCode } from '../../core/errors.js';
import { backendError, checkHandle, filePath, layoutDirs, type Backend, type FileInfo, type FileType, type Handle } from '../backend.js';

export interface SftpBackendOptions {
  host: string;
  port: number;
  username: string;
  /** Absolute (or home-relative) repository path on the server. */
  path: string;
  privateKey?: Buffer | undefined;
  passphrase?: string | undefined;
  password?: string | undefined;
  /** Expected host key as "SHA256:<base64>" (as ssh-keygen -lf prints it); unset = accept any (only tests do: URLs require it). */
  hostKeySha256?: string | undefined;
  readyTimeoutMs?: number;
  /** An operation without an answer this long fails as unreachable; default 120 s. */
  opTimeoutMs?: number;
}

interface Conn {
  client: Client;
  sftp: SFTPWrapper;
  /** False once the connection or the channel closed (requests on it would never be answered). */
  alive: boolean;
  /** Rejects when the connection drops: in-flight operations race it, so none waits forever. */
  dropped: Promise<never>;
  drop: (err: Error) => void;
}

const STATUS = { EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4 } as const;
const NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE']);

function cb<T>(fn: (done: (err: Error | null | undefined, v?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
}

export class SftpBackend implements Backend {
  readonly location: string;
  readonly #opts: SftpBackendOptions;
  readonly #root: string;
  #conn: Promise<Conn> | undefined;

  readonly #opTimeout: number;

  constructor(opts: SftpBackendOptions) {
    this.#opts = opts;
    this.#opTimeout = opts.opTimeoutMs ?? 120_000;
    this.#root = opts.path.replace(/\/+$/, '') || '/';
    this.location = `sftp://${opts.username}@${opts.host}:${opts.port}${this.#root.startsWith('/') ? '' : '/'}${this.#root}`;
  }

  #connect(): Promise<Conn> {
    if (this.#conn) return this.#conn;
    const forget = (): void => {
      if (this.#conn === attempt) this.#conn = undefined;
    };
    const attempt: Promise<Conn> = new Promise<Conn>((resolve, reject) => {
      const client = new Client();
      let settled = false;
      let conn: Conn | undefined;
      const dead = (): void => {
        if (conn) {
          conn.alive = false;
          conn.drop(Object.assign(new Error('the SSH connection closed'), { code: 'ECONNRESET' }));
        }
        forget();
      };
      const fail = (err: Error & { level?: string; code?: string }): void => {
        dead();
        if (settled) return;
        settled = true;
        client.end();
        reject(this.#connectError(err));
      };
      client.on('error', fail);
      client.on('end', dead);
      client.on('close', () => {
        dead();
        if (!settled) fail(Object.assign(new Error('connection closed during the handshake'), { code: 'ECONNRESET' }));
      });
      client.on('ready', () => {
        client.sftp((err, sftp) => {
          if (err) return fail(err);
          settled = true;
          sftp.on('close', dead);
          sftp.on('end', dead);
          let drop: (err: Error) => void = () => {};
          const dropped = new Promise<never>((_, rej) => (drop = rej));
          dropped.catch(() => undefined); // observed by the operations that race it
          conn = { client, sftp, alive: true, dropped, drop };
          resolve(conn);
        });
      });
      const cfg: ConnectConfig = {
        host: this.#opts.host,
        port: this.#opts.port,
        username: this.#opts.username,
        readyTimeout: this.#opts.readyTimeoutMs ?? 10_000,
        keepaliveInterval: 10_000,
        ...(this.#opts.privateKey ? { privateKey: this.#opts.privateKey } : {}),
        ...(this.#opts.passphrase ? { passphrase: this.#opts.passphrase } : {}),
        ...(this.#opts.password ? { password: this.#opts.password } : {}),
      };
      const want = this.#opts.hostKeySha256;
      if (want) {
        cfg.hostHash = 'sha256';
        cfg.hostVerifier = (hash: string): boolean => {
          const got = `SHA256:${Buffer.from(hash, 'hex').toString('base64').replace(/=+$/, '')}`;
          return got === want.replace(/=+$/, '');
        };
      }
      client.connect(cfg);
    });
    this.#conn = attempt;
    return attempt;
  }

  #connectError(err: Error & { level?: string; code?: string }): BulwarkError {
    if (err.level === 'client-authentication') {
      return new BulwarkError('BULWARK_BACKEND_AUTH', `${this.location}: the server refused the credentials for user '${this.#opts.username}' (${err.message})`, {
        hint: 'check key_file (and that its public key is in the server\'s authorized_keys) or the user name in the URL',
        cause: err,
      });
    }
    if (/host key|Host denied/i.test(err.message)) {
      return new BulwarkError('BULWARK_BACKEND_AUTH', `${this.location}: the server's host key does not match host_key (${err.message})`, {
        hint: 'compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server; a change may mean a man-in-the-middle',
        cause: err,
      });
    }
    if ((err.code && NET_CODES.has(err.code)) || err.level === 'client-timeout' || /Timed out/.test(err.message)) {
      return new BulwarkError('BULWARK_BACKEND_UNREACHABLE', `${this.location}: cannot reach the SSH server (${err.code ?? err.message})`, {
        hint: 'check the host and port in the URL, that sshd runs, and the network',
        cause: err,
      });
    }
    return new BulwarkError('BULWARK_BACKEND_UNREACHABLE', `${this.location}: SSH connection failed: ${err.message}`, { cause: err });
  }

  /**
   * Runs op on the SFTP channel; a channel known to be closed is replaced first. An operation that
   * gets no answer within opTimeoutMs fails as unreachable (and drops the connection).
   */
  async #sftp<T>(h: Handle | undefined, what: string, op: (s: SFTPWrapper) => Promise<T>): Promise<T> {
    let conn = await this.#connect();
    if (!conn.alive) {
      this.#conn = undefined;
      conn = await this.#connect();
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        conn.alive = false;
        if (this.#conn) this.#conn = undefined;
        conn.client.end();
        reject(Object.assign(new Error(`no answer within ${this.#opTimeout} ms`), { code: 'ETIMEDOUT' }));
      }, this.#opTimeout);
    });
    try {
      return await Promise.race([op(conn.sftp), timeout, conn.dropped]);
    } catch (err) {
      throw await this.#opError(h, what, err);
    } finally {
      clearTimeout(timer);
    }
  }

  async #opError(h: Handle | undefined, what: string, err: unknown): Promise<Error> {
    if (err instanceof BulwarkError) return err;
    const e = err as Error & { code?: number | string };
    let code: ErrorCode = 'BULWARK_BACKEND_IO';
    if (e.code === STATUS.NO_SUCH_FILE) code = 'BULWARK_BACKEND_NOT_FOUND';
    else if (e.code === STATUS.PERMISSION_DENIED) code = 'BULWARK_BACKEND_REFUSED';
    else if (typeof e.code === 'string' && NET_CODES.has(e.code)) code = 'BULWARK_BACKEND_UNREACHABLE';
    else if (/No response from server|Not connected|closed/i.test(e.message)) code = 'BULWARK_BACKEND_UNREACHABLE';
    return backendError(code, this.location, h, `${what} failed: ${e.message}`, err);
  }

  #abs(rel: string): string {
    return posix.join(this.#root, rel);
  }

  #path(h: Handle): string {
    checkHandle(h);
    return this.#abs(filePath(h));
  }

  async #mkdirp(s: SFTPWrapper, dir: string): Promise<void> {
    try {
      await cb<void>((d) => s.mkdir(dir, { mode: 0o700 }, d));
    } catch (err) {
      const e = err as { code?: number };
      if (e.code === STATUS.NO_SUCH_FILE) {
        await this.#mkdirp(s, posix.dirname(dir));
        await cb<void>((d) => s.mkdir(dir, { mode: 0o700 }, d)).catch(async (e2: unknown) => {
          if (!(await this.#isDir(s, dir))) throw e2;
        });
      } else if (!(await this.#isDir(s, dir))) {
        throw err;
      }
    }
  }

  async #isDir(s: SFTPWrapper, p: string): Promise<boolean> {
    try {
      const st = await cb<Stats>((d) => s.stat(p, d));
      return st.isDirectory();
    } catch {
      return false;
    }
  }

  async create(): Promise<void> {
    await this.#sftp(undefined, 'create', async (s) => {
      await this.#mkdirp(s, this.#root);
      // a few at a time: the channel pipelines requests
      const dirs = layoutDirs();
      for (let i = 0; i < dirs.length; i += 32) {
        await Promise.all(dirs.slice(i, i + 32).map((d) => this.#mkdirp(s, this.#abs(d))));
      }
    });
  }

  async stat(h: Handle): Promise<FileInfo> {
    const p = this.#path(h);
    return this.#sftp(h, 'stat', async (s) => {
      const st = await cb<Stats>((d) => s.stat(p, d));
      return { name: h.name, size: st.size };
    });
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    if (type === 'config') {
      try {
        yield await this.stat({ type: 'config', name: 'config' });
      } catch (err) {
        if ((err as BulwarkError).code !== 'BULWARK_BACKEND_NOT_FOUND') throw err;
      }
      return;
    }
    const dirs = type === 'data' ? layoutDirs().filter((d) => d.startsWith('data/')) : [type];
    const readDir = (d: string): Promise<Array<{ filename: string; attrs: Stats }>> =>
      this.#sftp(undefined, `list ${d}`, async (s) => {
        try {
          return await cb<Array<{ filename: string; attrs: Stats }>>((done) => s.readdir(this.#abs(d), done));
        } catch (err) {
          if ((err as { code?: number }).code === STATUS.NO_SUCH_FILE) return [];
          throw err;
        }
      });
    // 32 directories at a time: the channel pipelines requests, latency dominates otherwise.
    for (let i = 0; i < dirs.length; i += 32) {
      const batch = await Promise.all(dirs.slice(i, i + 32).map(readDir));
      for (const entries of batch) {
        for (const e of entries) {
          if (e.filename.startsWith('.') || !e.attrs.isFile()) continue;
          yield { name: e.filename, size: e.attrs.size };
        }
      }
    }
  }

  async read(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const p = this.#path(h);
    return this.#sftp(h, 'read', async (s) => {
      const handle = await cb<Buffer>((d) => s.open(p, 'r', d));
      try {
        const size = length ?? (await cb<Stats>((d) => s.fstat(handle, d))).size - offset;
        const buf = Buffer.allocUnsafe(Math.max(0, size));
        let got = 0;
        const CHUNK = 256 * 1024;
        // Pipeline several read requests at once: SFTP latency dominates otherwise.
        while (got < size) {
          const sizes: number[] = [];
          const batch: Array<Promise<number>> = [];
          for (let pos = got, k = 0; pos < size && k < 16; pos += CHUNK, k++) {
            const n = Math.min(CHUNK, size - pos);
            sizes.push(n);
            batch.push(cb<number>((d) => s.read(handle, buf, pos, n, offset + pos, (err, bytesRead) => d(err, bytesRead))));
          }
          const counts = await Promise.all(batch);
          got += counts.reduce((a, b) => a + b, 0);
          if (counts.some((c, i) => c < (sizes[i] as number))) break; // EOF: the file is shorter than asked
        }
        if (got < size) throw Object.assign(new Error(`short read: wanted ${size} bytes at ${offset}, got ${got}`), { code: 'ESHORT' });
        return buf;
      } finally {
        await cb<void>((d) => s.close(handle, d)).catch(() => undefined);
      }
    });
  }

  async write(h: Handle, data: Buffer): Promise<void> {
    const p = this.#path(h);
    const dir = posix.dirname(p);
    const tmp = posix.join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    await this.#sftp(h, 'write', async (s) => {
      let handle: Buffer | undefined;
      try {
        // 'wx': O_CREAT|O_EXCL, never truncating an existing file
        handle = await cb<Buffer>((d) => s.open(tmp, 'wx', 0o600, d)).catch(async (err: { code?: number }) => {
          if (err.code !== STATUS.NO_SUCH_FILE) throw err;
          await this.#mkdirp(s, dir);
          return cb<Buffer>((d) => s.open(tmp, 'wx', 0o600, d));
        });
        const CHUNK = 256 * 1024;
        for (let pos = 0; pos < data.length; pos += CHUNK * 16) {
          const batch: Array<Promise<void>> = [];
          for (let q = pos; q < Math.min(data.length, pos + CHUNK * 16); q += CHUNK) {
            const n = Math.min(CHUNK, data.length - q);
            const hd = handle;
            batch.push(cb<void>((d) => s.write(hd, data, q, n, q, d)));
          }
          await Promise.all(batch);
        }
        const hd = handle;
        await cb<void>((d) => s.ext_openssh_fsync(hd, d));
        await cb<void>((d) => s.close(hd, d));
        handle = undefined;
        try {
          await cb<void>((d) => s.rename(tmp, p, d));
        } catch (err) {
          if ((err as { code?: number }).code === STATUS.FAILURE && (await this.#exists(s, p))) {
            throw backendError('BULWARK_BACKEND_EXISTS', this.location, h, 'write refused: the file exists');
          }
          throw err;
        }
      } catch (err) {
        if (handle) {
          const hd = handle;
          await cb<void>((d) => s.close(hd, d)).catch(() => undefined);
        }
        await cb<void>((d) => s.unlink(tmp, d)).catch(() => undefined);
        if (err instanceof BulwarkError) throw err;
        if ((err as { code?: number }).code === STATUS.FAILURE && (await this.#isFull(s, dir, data.length))) {
          throw backendError('BULWARK_BACKEND_FULL', this.location, h, `write failed: the server's disk is full (${(err as Error).message})`, err);
        }
        throw err;
      }
    });
  }

  async #exists(s: SFTPWrapper, p: string): Promise<boolean> {
    try {
      await cb<Stats>((d) => s.stat(p, d));
      return true;
    } catch {
      return false;
    }
  }

  /** After a generic SFTP failure on write: is the disk (nearly) full? statvfs@openssh.com tells. */
  async #isFull(s: SFTPWrapper, dir: string, need: number): Promise<boolean> {
    try {
      const v = await cb<{ f_bavail: number | bigint; f_frsize: number | bigint; f_favail: number | bigint }>((d) => s.ext_openssh_statvfs(dir, d));
      return Number(v.f_bavail) * Number(v.f_frsize) < need + 65536 || Number(v.f_favail) === 0;
    } catch {
      return false;
    }
  }

  async remove(h: Handle): Promise<void> {
    const p = this.#path(h);
    await this.#sftp(h, 'remove', async (s) => {
      try {
        await cb<void>((d) => s.unlink(p, d));
      } catch (err) {
        if ((err as { code?: number }).code === STATUS.NO_SUCH_FILE) return;
        throw err;
      }
    });
  }

  async close(): Promise<void> {
    const c = this.#conn;
    this.#conn = undefined;
    if (!c) return;
    try {
      const { client } = await c;
      client.end();
    } catch {
      // never connected
    }
  }
}

/** Builds an SFTP backend from `sftp://user@host:port/path[?key=FILE&host_key=SHA256:…]`; explicit options win. */
export function sftpFromUrl(url: URL, opts: { privateKey?: Buffer | undefined; hostKeySha256?: string | undefined } = {}, readFile: (p: string) => Buffer): SftpBackend {
  const username = decodeURIComponent(url.username);
  if (!username) throw new BulwarkError('BULWARK_BACKEND_URL', `sftp URL ${url.href} names no user`, { hint: 'use sftp://user@host:port/path' });
  const path = decodeURIComponent(url.pathname);
  if (!path || path === '/') throw new BulwarkError('BULWARK_BACKEND_URL', `sftp URL ${url.href} names no repository path`, { hint: 'use sftp://user@host:port/srv/backups/repo' });
  if (url.password) {
    throw new BulwarkError('BULWARK_BACKEND_URL', `sftp URL for ${username}@${url.host} carries a password`, {
      hint: 'a password in a URL ends up in argv, shell history and process lists: use key=FILE (or key_file in a plan target) instead',
    });
  }
  const hostKeySha256 = opts.hostKeySha256 ?? url.searchParams.get('host_key') ?? undefined;
  if (!hostKeySha256) {
    throw new BulwarkError('BULWARK_BACKEND_URL', `sftp URL for ${username}@${url.host} gives no host_key: any server answering on that address would be accepted`, {
      hint: 'add host_key (on the target, or ?host_key=SHA256:… in the URL) from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server',
    });
  }
  const keyFile = url.searchParams.get('key');
  let privateKey = opts.privateKey;
  if (!privateKey && keyFile) {
    try {
      privateKey = readFile(keyFile);
    } catch (err) {
      throw new BulwarkError('BULWARK_CONFIG_SECRET_MISSING', `cannot read the SSH key ${keyFile}: ${(err as Error).message}`, { hint: 'point key= (or key_file) at a readable private key' });
    }
  }
  return new SftpBackend({
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : 22,
    username,
    path,
    privateKey,
    hostKeySha256,
  });
}
