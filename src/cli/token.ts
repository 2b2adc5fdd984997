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

/** The read-only token: GET requests and /metrics (a Prometheus scrape needs no admin rights). */
export function apiReadToken(loaded: LoadedConfig): string | undefined {
  const api = loaded.config.api;
  return readSecret({ file: api.read_token_file, env: api.read_token_env }, loaded.baseDir, 'api.read_token');
}
