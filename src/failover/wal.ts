// Owns the WAL archive of cold standby: a directory that PostgreSQL's archive_command writes
// segments into and restore_command reads them back from. Writes are atomic and durable (temp
// file, fsync, link() to the final name, fsync of the directory), an existing segment is never
// replaced: re-archiving identical bytes succeeds (PostgreSQL may retry after a crash), different
// bytes under an existing name are refused. This module imports only node: built-ins so that
// walcmd.ts (the program archive_command runs once per segment) starts fast.
import { closeSync, constants, copyFileSync, existsSync, fsyncSync, linkSync, openSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A WAL file name PostgreSQL archives: segments, timeline history, backup history, partial segments. */
const WAL_NAME = /^([0-9A-F]{24}(\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$/;

export class WalArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WalArchiveError';
  }
}

export function isWalName(name: string): boolean {
  return WAL_NAME.test(name);
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function sameBytes(a: string, b: string): boolean {
  if (statSync(a).size !== statSync(b).size) return false;
  return readFileSync(a).equals(readFileSync(b));
}

/**
 * Archives one WAL file (archive_command: push DIR %p %f). Returns 'stored' or 'identical'
 * (already archived with the same bytes). Throws when a different file has that name.
 */
export function pushWal(dir: string, source: string, name: string): 'stored' | 'identical' {
  if (!isWalName(name)) throw new WalArchiveError(`'${name}' is not a WAL file name`);
  const dest = join(dir, name);
  if (existsSync(dest)) {
    if (sameBytes(source, dest)) return 'identical';
    throw new WalArchiveError(`${dest} already exists with different content: refusing to overwrite an archived WAL file (two primaries archiving into one directory?)`);
  }
  const tmp = join(dir, `.${name}.${process.pid}.tmp`);
  try {
    copyFileSync(source, tmp);
    const fd = openSync(tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      linkSync(tmp, dest); // never replaces an existing file
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        if (sameBytes(source, dest)) return 'identical';
        throw new WalArchiveError(`${dest} appeared with different content while archiving: refusing to overwrite`);
      }
      throw err;
    }
    fsyncDir(dir);
    return 'stored';
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Fetches one archived WAL file (restore_command: fetch DIR %f %p). Returns false when it is not archived. */
export function fetchWal(dir: string, name: string, dest: string): boolean {
  if (!isWalName(name)) return false; // e.g. RECOVERYHISTORY probes: not in the archive
  const src = join(dir, name);
  if (!existsSync(src)) return false;
  copyFileSync(src, dest);
  return true;
}

/** The newest archived segment name on the highest timeline, or undefined. */
export function lastArchivedSegment(dir: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  return names.filter((n) => /^[0-9A-F]{24}$/.test(n)).sort().at(-1);
}

/** Shell-quotes one argument for archive_command / restore_command. */
function sq(s: string): string {
  return `'${s.replace(/'/g, `'"'"'`)}'`;
}

/** The program archive_command and restore_command run (compiled walcmd.js beside this module). */
export function walCommandScript(): string {
  return join(fileURLToPath(new URL('.', import.meta.url)), 'walcmd.js');
}

/** archive_command value: node walcmd.js push DIR %p %f */
export function archiveCommand(dir: string, node = process.execPath, script = walCommandScript()): string {
  return `${sq(node)} ${sq(script)} push ${sq(dir)} %p %f`;
}

/** restore_command value: node walcmd.js fetch DIR %f %p */
export function restoreCommand(dir: string, node = process.execPath, script = walCommandScript()): string {
  return `${sq(node)} ${sq(script)} fetch ${sq(dir)} %f %p`;
}

