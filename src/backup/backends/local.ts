// Owns the local-disk Backend: files under one directory, written atomically (temp file in the
// same directory, fsync, rename, fsync of the directory) and never overwritten.
import { constants, promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { ErrorCode } from '../../core/errors.js';
import { backendError, checkHandle, filePath, layoutDirs, type Backend, type FileInfo, type FileType, type Handle } from '../backend.js';

function codeFor(err: unknown): ErrorCode {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return 'BULWARK_BACKEND_NOT_FOUND';
    case 'EEXIST':
      return 'BULWARK_BACKEND_EXISTS';
    case 'ENOSPC':
    case 'EDQUOT':
      return 'BULWARK_BACKEND_FULL';
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return 'BULWARK_BACKEND_REFUSED';
    default:
      return 'BULWARK_BACKEND_IO';
  }
}

export class LocalBackend implements Backend {
  readonly #root: string;
  readonly location: string;

  constructor(root: string) {
    this.#root = root;
    this.location = root;
  }

  #path(h: Handle): string {
    checkHandle(h);
    return join(this.#root, filePath(h));
  }

  #fail(h: Handle | undefined, op: string, err: unknown): Error {
    const e = err as NodeJS.ErrnoException;
    return backendError(codeFor(err), this.location, h, `${op} failed: ${e.code ?? ''} ${e.message}`.trim(), err);
  }

  async create(): Promise<void> {
    try {
      await fs.mkdir(this.#root, { recursive: true, mode: 0o700 });
      for (const d of layoutDirs()) await fs.mkdir(join(this.#root, d), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw this.#fail(undefined, 'create', err);
    }
  }

  async stat(h: Handle): Promise<FileInfo> {
    try {
      const st = await fs.stat(this.#path(h));
      return { name: h.name, size: st.size };
    } catch (err) {
      throw this.#fail(h, 'stat', err);
    }
  }

  async *list(type: FileType): AsyncIterable<FileInfo> {
    if (type === 'config') {
      try {
        const st = await fs.stat(join(this.#root, 'config'));
        yield { name: 'config', size: st.size };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw this.#fail(undefined, 'list config', err);
      }
      return;
    }
    const dirs = type === 'data' ? layoutDirs().filter((d) => d.startsWith('data/')) : [type];
    for (const d of dirs) {
      let names: string[];
      try {
        names = await fs.readdir(join(this.#root, d));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw this.#fail(undefined, `list ${d}`, err);
      }
      for (const name of names) {
        if (name.startsWith('.')) continue; // temp files of writes in progress
        try {
          const st = await fs.stat(join(this.#root, d, name));
          if (st.isFile()) yield { name, size: st.size };
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw this.#fail(undefined, `list ${d}`, err);
        }
      }
    }
  }

  async read(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const p = this.#path(h);
    let fh: fs.FileHandle | undefined;
    try {
      fh = await fs.open(p, 'r');
      if (offset === 0 && length === undefined) return await fh.readFile();
      const size = length ?? (await fh.stat()).size - offset;
      const buf = Buffer.allocUnsafe(Math.max(0, size));
      let got = 0;
      while (got < size) {
        const { bytesRead } = await fh.read(buf, got, size - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got < size) throw Object.assign(new Error(`short read: wanted ${size} bytes at ${offset}, got ${got}`), { code: 'ESHORT' });
      return buf;
    } catch (err) {
      throw this.#fail(h, 'read', err);
    } finally {
      await fh?.close();
    }
  }

  /**
   * Streams a file in (the vault's uploads: never a whole body in memory), with the same atomic,
   * no-overwrite guarantee as write(). `check` runs once every byte is on disk and before the file
   * appears: an error it throws discards the upload and is rethrown as it is.
   */
  async writeStream(h: Handle, source: AsyncIterable<Uint8Array>, check: () => void | Promise<void>): Promise<void> {
    const p = this.#path(h);
    const dir = dirname(p);
    const tmp = join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    let fh: fs.FileHandle | undefined;
    let checking = false;
    try {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      checking = true; // errors of the source (limits, a broken upload) pass through as they are
      for await (const chunk of source) {
        checking = false;
        await fh.write(chunk);
        checking = true;
      }
      await check();
      checking = false;
      await fh.sync();
      await fh.close();
      fh = undefined;
      await fs.link(tmp, p);
      await fs.unlink(tmp);
      const d = await fs.open(dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await fs.unlink(tmp).catch(() => undefined);
      if (checking) throw err;
      throw this.#fail(h, 'write', err);
    }
  }

  async write(h: Handle, data: Buffer): Promise<void> {
    const p = this.#path(h);
    const dir = dirname(p);
    const tmp = join(dir, `.tmp-${randomBytes(8).toString('hex')}`);
    let fh: fs.FileHandle | undefined;
    try {
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      fh = await fs.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
      await fh.writeFile(data);
      await fh.sync();
      await fh.close();
      fh = undefined;
      // link() refuses to replace an existing file, unlike rename(): the no-overwrite guarantee.
      await fs.link(tmp, p);
      await fs.unlink(tmp);
      const d = await fs.open(dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await fs.unlink(tmp).catch(() => undefined);
      throw this.#fail(h, 'write', err);
    }
  }

  async remove(h: Handle): Promise<void> {
    try {
      await fs.unlink(this.#path(h));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw this.#fail(h, 'remove', err);
    }
  }

  async close(): Promise<void> {}
}
