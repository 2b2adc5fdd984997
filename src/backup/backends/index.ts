// Owns the repository URL resolver: a small registry of Backend factories keyed by URL scheme.
// Paths and file:// are built in; other modules register sftp://, s3://, vault:// with
// registerBackend(). Parsing errors are BULWARK_BACKEND_URL (exit 2).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BulwarkError } from '../../core/errors.js';
import type { Backend } from '../backend.js';
import { LocalBackend } from './local.js';
import { readFileSync } from 'node:fs';

export type BackendFactory = (url: URL, raw: string) => Backend | Promise<Backend>;

const registry = new Map<string, BackendFactory>();

export function registerBackend(scheme: string, factory: BackendFactory): void {
  registry.set(scheme.replace(/:$/, '').toLowerCase(), factory);
}

registerBackend('file', (url) => new LocalBackend(fileURLToPath(url)));
// Remote schemes (3-2-1 plans). From a bare URL, credentials come from the query or the environment.
// Loaded on first use: the AWS SDK and ssh2 would otherwise slow every command's start.
registerBackend('sftp', async (url) => (await import('./sftp.js')).sftpFromUrl(url, {}, (p) => readFileSync(p)));
registerBackend('s3', async (url) => (await import('./s3.js')).s3FromUrl(url));
registerBackend('vault', async (url) => (await import('./vault.js')).vaultFromUrl(url, {}, (p) => readFileSync(p)));

export function knownSchemes(): string[] {
  return [...registry.keys()].sort();
}

/** A Backend for a repository URL: a plain path, file:///path, or a registered scheme. */
export async function openBackend(raw: string): Promise<Backend> {
  if (!raw) throw new BulwarkError('BULWARK_BACKEND_URL', 'empty repository URL', { hint: 'pass --repo PATH or --repo file:///path' });
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(raw);
  if (!m) return new LocalBackend(resolve(raw));
  const scheme = (m[1] as string).toLowerCase();
  const factory = registry.get(scheme);
  if (!factory) throw new BulwarkError('BULWARK_BACKEND_URL', `unknown repository URL scheme '${scheme}://' in ${raw}`, { hint: `use a path or one of: ${knownSchemes().map((s) => `${s}://`).join(', ')}` });
  let url: URL;
  try {
    url = new URL(raw);
  } catch (err) {
    throw new BulwarkError('BULWARK_BACKEND_URL', `malformed repository URL ${raw}`, { cause: err });
  }
  return factory(url, raw);
}
