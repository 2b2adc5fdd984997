// Owns how commands talk to the running daemon: the API address (--api, else api.listen from -c,
// else 127.0.0.1:7070; in cluster mode the instances' api addresses in turn, this instance's
// first, until one answers: any instance shows the whole cluster), the bearer token (api.token_file/env from -c, else BULWARK_API_TOKEN),
// and mapping of the daemon's error answers back to registry codes and exit statuses.
import { instanceName } from '../core/config/cluster.js';
import { BulwarkError, ERROR_CODES, type ErrorCode } from '../core/errors.js';
import { apiToken } from './token.js';

export interface ApiOpts {
  config?: string;
  api?: string;
  /** Cluster mode: the instance to ask first (else BULWARK_INSTANCE). */
  instance?: string;
}

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && code in ERROR_CODES;
}

/** Calls the daemon API and returns the JSON answer; errors carry the daemon's code when it is a registry code. */
export async function apiRequest(opts: ApiOpts, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, timeoutMs = 10_000): Promise<unknown> {
  let bases = [opts.api ?? 'http://127.0.0.1:7070'];
  let token = process.env['BULWARK_API_TOKEN'] || undefined;
  if (opts.config !== undefined) {
    const { loadConfig } = await import('../core/config/load.js');
    const loaded = loadConfig(opts.config);
    if (opts.api === undefined) {
      const me = instanceName(opts.instance);
      const listens = loaded.config.cluster
        ? [...loaded.config.cluster.instances].sort((a, b) => (a.name === me ? -1 : b.name === me ? 1 : 0)).map((i) => i.api)
        : [loaded.config.api.listen];
      bases = listens.map((l) => `http://${l.replace(/^0\.0\.0\.0:/, '127.0.0.1:')}`);
    }
    token = apiToken(loaded) ?? token;
  }
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response | undefined;
  let base = bases[0] as string;
  const failures: string[] = [];
  for (const b of bases) {
    base = b;
    try {
      res = await fetch(new URL(path, b), { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(timeoutMs) });
      break;
    } catch (err) {
      const cause = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
      failures.push(`${b}: ${cause}`);
    }
  }
  if (!res) {
    throw new BulwarkError('BULWARK_API_UNREACHABLE', `cannot reach the Bulwark daemon at ${failures.join('; ')}`, {
      hint: 'start it with `bulwark up -c bulwark.yaml`, or point --api / -c at the right address',
    });
  }
  if (res.status === 401) {
    throw new BulwarkError('BULWARK_API_UNAUTHORIZED', `the daemon at ${base} refused the request: missing or wrong token`, {
      hint: 'pass -c with the config that names api.token_file, or set BULWARK_API_TOKEN',
    });
  }
  const json = (await res.json().catch(() => undefined)) as { error?: { code?: string; message?: string; hint?: string } } | undefined;
  if (!res.ok) {
    const code = json?.error?.code;
    throw new BulwarkError(isErrorCode(code) ? code : 'BULWARK_API_BAD_REQUEST', json?.error?.message ?? `the daemon answered ${res.status} ${res.statusText}`, json?.error?.hint ? { hint: json.error.hint } : {});
  }
  return json;
}

/** GET a path of the daemon API. */
export function apiGet(opts: ApiOpts, path: string): Promise<unknown> {
  return apiRequest(opts, 'GET', path);
}
