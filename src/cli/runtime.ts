// Owns running the control plane in the foreground (used by `up` and `demo`): start the daemon
// and API, reload on SIGHUP, graceful shutdown on SIGTERM/SIGINT with a deadline.
import { ApiServer } from '../api/server.js';
import { Daemon } from '../app/daemon.js';
import { loadInstanceConfig, type LoadedConfig } from '../core/config/load.js';
import { describeError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { apiReadToken, apiToken, heartbeatTokens } from './token.js';

export interface RunningPlane {
  daemon: Daemon;
  api: ApiServer;
  /** Resolves with the exit code once the plane has stopped. */
  done: Promise<number>;
  stop(reason: string): Promise<number>;
}

/** Shutdown deadline: past it the process exits 1 even if work is still in flight. */
const SHUTDOWN_DEADLINE_MS = 4500;

export { apiToken };

export async function startPlane(loaded: LoadedConfig, logger: Logger, opts: { listen?: string; onStop?: () => Promise<void> } = {}): Promise<RunningPlane> {
  const daemon = new Daemon(loaded, { logger });
  await daemon.start();
  let api: ApiServer;
  try {
    api = new ApiServer(daemon, { listen: opts.listen ?? loaded.config.api.listen, token: apiToken(loaded), readToken: apiReadToken(loaded), scopedTokens: heartbeatTokens(loaded), logger });
    await api.listen();
  } catch (err) {
    await daemon.stop();
    throw err;
  }
  logger.info({ api: `http://${api.address}`, config: loaded.file }, 'control plane running');

  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((r) => (resolveDone = r));
  let stopping: Promise<number> | undefined;

  const stop = (reason: string): Promise<number> => {
    if (stopping) return stopping;
    logger.info({ reason }, 'shutting down');
    stopping = (async () => {
      const deadline = setTimeout(() => {
        logger.error({ deadline_ms: SHUTDOWN_DEADLINE_MS }, 'shutdown deadline passed; exiting with work still in flight');
        resolveDone(1);
      }, SHUTDOWN_DEADLINE_MS);
      deadline.unref();
      try {
        await api.close();
        await daemon.stop();
        await opts.onStop?.();
        logger.info('stopped');
        resolveDone(0);
      } catch (err) {
        logger.error({ err: describeError(err) }, 'shutdown failed');
        resolveDone(1);
      } finally {
        clearTimeout(deadline);
      }
      return done;
    })();
    return stopping;
  };

  const onSignal = (sig: NodeJS.Signals): void => {
    if (stopping) {
      logger.warn({ signal: sig }, 'second signal: exiting now');
      resolveDone(1);
      return;
    }
    void stop(sig);
  };
  const onHup = (): void => {
    try {
      const next = loadInstanceConfig(loaded.file, loaded.instance?.name);
      void daemon.reload(next).then(
        () => logger.info({ config: loaded.file }, 'configuration reloaded'),
        (err: unknown) => logger.error({ err: describeError(err) }, 'reload failed; keeping the running configuration'),
      );
    } catch (err) {
      logger.error({ err: describeError(err) }, 'new configuration is invalid; keeping the running one');
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onHup);
  void done.then(() => {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('SIGHUP', onHup);
  });
  return { daemon, api, done, stop };
}
