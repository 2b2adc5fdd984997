// Owns finding the API tokens a command or the daemon uses: the admin token (api.token_file /
// api.token_env, else BULWARK_API_TOKEN) and the read-only token (api.read_token_file /
// api.read_token_env). Kept apart from runtime.ts so client commands do not load the daemon.
import type { LoadedConfig } from '../core/config/load.js';
import { readSecret } from '../core/secrets.js';

/** The admin token: may read everything and change state (drain, switchover, run a plan). */
export function apiToken(loaded: LoadedConfig): string | undefined {
  const api = loaded.config.api;
  return readSecret({ file: api.token_file, env: api.token_env }, loaded.baseDir, 'api') ?? (process.env['BULWARK_API_TOKEN'] || undefined);
}

/** Per service with heartbeat.token_file: a token that may only POST /v1/heartbeat/SERVICE/... */
export function heartbeatTokens(loaded: LoadedConfig): Array<{ token: string; method: 'POST'; pathPrefix: string }> {
  const out: Array<{ token: string; method: 'POST'; pathPrefix: string }> = [];
  for (const [svc, sc] of Object.entries(loaded.config.services)) {
    const hb = sc.heartbeat;
    if (!hb) continue;
    const token = readSecret({ file: hb.token_file, env: hb.token_env }, loaded.baseDir, `services.${svc}.heartbeat`);
    if (token !== undefined) out.push({ token, method: 'POST', pathPrefix: `/v1/heartbeat/${encodeURIComponent(svc)}/` });
  }
  return out;
}

/** The read-only token: GET requests and /metrics (a Prometheus scrape needs no admin rights). */
export function apiReadToken(loaded: LoadedConfig): string | undefined {
  const api = loaded.config.api;
  return readSecret({ file: api.read_token_file, env: api.read_token_env }, loaded.baseDir, 'api.read_token');
}
