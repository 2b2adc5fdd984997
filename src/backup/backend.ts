// Owns the Backend interface: the small storage API every repository location implements
// (local disk, SFTP, S3, vault), the file layout shared by all of them, and the error mapping
// helpers. Cross-cutting behaviour (retry, rate limit) wraps a Backend; it never lives inside one.
import { BulwarkError, type ErrorCode } from '../core/errors.js';

/** Kinds of file in a repository. Each maps to a directory of the layout. */
export type FileType = 'config' | 'keys' | 'data' | 'index' | 'snapshots' | 'locks';

export const FILE_TYPES: readonly FileType[] = ['config', 'keys', 'data', 'index', 'snapshots', 'locks'];

export interface Handle {
  readonly type: FileType;
  /** File name within its type: a hex id for most types; ignored for 'config'. */
  readonly name: string;
}

export interface FileInfo {
  readonly name: string;
  readonly size: number;
}

export interface WriteOptions {
  /** Ask the storage to refuse deletion until this time (ms since epoch): S3 Object Lock, vault retention. */
  readonly retainUntil?: number;
}

export interface Backend {
  /** Human-readable location, without secrets ("/mnt/nas/repo", "sftp://u@h:22/p"). */
  readonly location: string;
  /** Creates the location's directory structure; idempotent. */
  create(): Promise<void>;
  /** Size of a file. Throws BULWARK_BACKEND_NOT_FOUND. */
  stat(h: Handle): Promise<FileInfo>;
  /** Every file of a type (names and sizes), in no particular order. */
  list(type: FileType): AsyncIterable<FileInfo>;
  /** Reads length bytes at offset (the whole file when length is undefined). Throws BULWARK_BACKEND_NOT_FOUND. */
  read(h: Handle, offset?: number, length?: number): Promise<Buffer>;
  /**
   * Stores a whole file atomically: after a crash the file is either absent or complete. Refuses to
   * overwrite an existing file (BULWARK_BACKEND_EXISTS). Resolves only once the data is durable.
   */
  write(h: Handle, data: Buffer, opts?: WriteOptions): Promise<void>;
  /** Deletes a file. Deleting a missing file is not an error. */
  remove(h: Handle): Promise<void>;
  /** Releases connections. */
  close(): Promise<void>;
}

/** The relative path of a file: data files fan out into 256 directories by their first two hex digits. */
export function filePath(h: Handle): string {
  switch (h.type) {
    case 'config':
      return 'config';
    case 'data':
      return `data/${h.name.slice(0, 2)}/${h.name}`;
    default:
      return `${h.type}/${h.name}`;
  }
}

/** Directories create() makes: every type directory and the 256 data fan-out directories. */
export function layoutDirs(): string[] {
  const dirs = ['keys', 'data', 'index', 'snapshots', 'locks'];
  for (let i = 0; i < 256; i++) dirs.push(`data/${i.toString(16).padStart(2, '0')}`);
  return dirs;
}

/** Checks a handle's name: hex ids (or a plain name for config); no path tricks. */
export function checkHandle(h: Handle): void {
  if (h.type === 'config') return;
  if (!/^[0-9a-zA-Z._-]{1,128}$/.test(h.name) || h.name.startsWith('.')) {
    throw new BulwarkError('BULWARK_BACKEND_IO', `invalid ${h.type} file name '${h.name}'`);
  }
  if (h.type === 'data' && !/^[0-9a-f]{4,}/.test(h.name)) {
    throw new BulwarkError('BULWARK_BACKEND_IO', `data file names must start with hex digits, got '${h.name}'`);
  }
}

export function backendError(code: ErrorCode, location: string, h: Handle | undefined, what: string, cause?: unknown): BulwarkError {
  const file = h ? ` ${filePath(h)}` : '';
  return new BulwarkError(code, `${location}:${file} ${what}`, cause === undefined ? {} : { cause });
}

export function isNotFound(err: unknown): boolean {
  return err instanceof BulwarkError && err.code === 'BULWARK_BACKEND_NOT_FOUND';
}
