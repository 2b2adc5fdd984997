// Owns turning a plan target of the config into a Backend: the URL's scheme picks the backend,
// credentials come from the target's secret files (paths relative to the config file), and the
// wrappers are stacked: retry(rate limit(retain(backend))). Also resolves the repository password.
import { readFileSync } from 'node:fs';
import { type Clock, systemClock } from '../../core/clock.js';
import type { BackupPlanConfig, BackupTargetConfig } from '../../core/config/schema.js';
import { BulwarkError } from '../../core/errors.js';
import { readSecret, secretPath } from '../../core/secrets.js';
import type { Backend } from '../backend.js';
import { openBackend } from '../backends/index.js';
import { RateLimitBackend } from '../backends/ratelimit.js';
import { RetryBackend } from '../backends/retry.js';
import { RetainBackend } from './retain.js';

export interface OpenTargetOptions {
  baseDir: string;
  clock?: Clock;
  /** Override retry tuning (tests). */
  retry?: { baseDelayMs?: number; maxDelayMs?: number; attempts?: number };
}

/** A repository URL without credentials before its '@' (they never reach results, records or output); an sftp:// user name stays. */
export function redactUrl(repo: string): string {
  return repo.replace(/^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#@]*)@/, (_m, scheme: string, info: string) => {
    const user = scheme.toLowerCase() === 'sftp' ? (info.split(':')[0] ?? '') : '';
    if (!user) return `${scheme}://***@`;
    return info.includes(':') ? `${scheme}://${user}:***@` : `${scheme}://${user}@`;
  });
}

function readFileAt(baseDir: string, what: string): (p: string) => Buffer {
  return (p) => {
    try {
      return readFileSync(secretPath(p, baseDir));
    } catch (err) {
      throw new BulwarkError('BULWARK_CONFIG_SECRET_MISSING', `${what}: cannot read ${secretPath(p, baseDir)} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
        hint: 'create the file, or fix the path (relative paths start at the config file\'s directory)',
      });
    }
  };
}

/** The storage backend of a target, unwrapped. */
export async function openTargetBackend(plan: string, t: BackupTargetConfig, baseDir: string): Promise<Backend> {
  const what = `backups.${plan}.targets.${t.name}`;
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//.exec(t.repo);
  const scheme = m?.[1]?.toLowerCase();
  const read = readFileAt(baseDir, what);
  let url: URL | undefined;
  if (scheme === 'sftp' || scheme === 's3' || scheme === 'vault') {
    try {
      url = new URL(t.repo);
    } catch (err) {
      throw new BulwarkError('BULWARK_BACKEND_URL', `${what}.repo: malformed URL ${redactUrl(t.repo)}`, { cause: err });
    }
  }
  if (scheme === 'sftp' && url) {
    return (await import('../backends/sftp.js')).sftpFromUrl(url, { privateKey: t.key_file ? read(t.key_file) : undefined, hostKeySha256: t.host_key }, read);
  }
  if (scheme === 's3' && url) {
    const id = readSecret({ file: t.access_key_id_file }, baseDir, `${what}.access_key_id_file`);
    const secret = readSecret({ file: t.secret_access_key_file }, baseDir, `${what}.secret_access_key_file`);
    if ((id === undefined) !== (secret === undefined)) {
      throw new BulwarkError('BULWARK_CONFIG_INVALID', `${what}: set both access_key_id_file and secret_access_key_file, or neither`);
    }
    return (await import('../backends/s3.js')).s3FromUrl(url, { credentials: id !== undefined && secret !== undefined ? { accessKeyId: id, secretAccessKey: secret } : undefined });
  }
  if (scheme === 'vault' && url) {
    return (await import('../backends/vault.js')).vaultFromUrl(url, { token: readSecret({ file: t.token_file, env: t.token_env }, baseDir, `${what}.token_file`) }, read);
  }
  if (scheme === undefined && !t.repo.startsWith('/')) {
    return openBackend(secretPath(t.repo, baseDir));
  }
  return openBackend(t.repo);
}

/** The target's backend with the plan's wrappers: retry(rate limit(retain(backend))). */
export async function openTarget(plan: string, t: BackupTargetConfig, opts: OpenTargetOptions): Promise<Backend> {
  const clock = opts.clock ?? systemClock;
  let b = await openTargetBackend(plan, t, opts.baseDir);
  if (t.immutable !== false) b = new RetainBackend(b, t.immutable, clock);
  if (t.upload_limit || t.download_limit) b = new RateLimitBackend(b, { uploadBps: t.upload_limit, downloadBps: t.download_limit, clock });
  return new RetryBackend(b, { attempts: t.retries, clock, ...opts.retry });
}

/** The repository password of a target: its own, else the plan's, else BULWARK_PASSWORD. */
export function targetPassword(planName: string, plan: BackupPlanConfig, t: BackupTargetConfig, baseDir: string): string {
  const own = readSecret({ file: t.password_file, env: t.password_env }, baseDir, `backups.${planName}.targets.${t.name}.password_file`);
  if (own !== undefined) return own;
  const shared = readSecret({ file: plan.password_file, env: plan.password_env }, baseDir, `backups.${planName}.password_file`);
  if (shared !== undefined) return shared;
  const env = process.env['BULWARK_PASSWORD'];
  if (env) return env;
  throw new BulwarkError('BULWARK_REPO_NO_PASSWORD', `no repository password for plan '${planName}' target '${t.name}'`, {
    hint: `set backups.${planName}.password_file (or password_env), or export BULWARK_PASSWORD`,
  });
}
