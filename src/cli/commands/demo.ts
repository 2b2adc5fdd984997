// Owns `bulwark demo` (what `npm start` runs): the embedded default in a temporary directory.
import type { Command } from 'commander';
import { setExitCode } from '../exit.js';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('run the embedded default: everything on loopback, in a temporary directory (Ctrl-C stops and cleans up)')
    .option('--listen <addr>', 'API and dashboard address', '127.0.0.1:7070')
    .action(async (opts: { listen: string }) => {
      const { prepareDemo } = await import('../../app/demo.js');
      const { loadConfig } = await import('../../core/config/load.js');
      const { createLogger } = await import('../../core/logger.js');
      const { startPlane } = await import('../runtime.js');
      const logger = createLogger({ level: process.env['BULWARK_LOG_LEVEL'] ?? 'warn' });
      const demo = await prepareDemo({ listen: opts.listen, logger });
      let plane;
      try {
        plane = await startPlane(loadConfig(demo.configFile), logger, { onStop: () => demo.stop() });
      } catch (err) {
        await demo.stop();
        throw err;
      }
      const url = `http://${plane.api.address}`;
      process.stdout.write(
        [
          'Bulwark demo is running.',
          `  dashboard:  ${url}/`,
          `  API:        ${url}/v1/status`,
          `  metrics:    ${url}/metrics`,
          `  config:     ${demo.configFile}`,
          'Press Ctrl-C to stop; everything the demo started is removed.',
          '',
        ].join('\n'),
      );
      setExitCode(await plane.done);
    });
}
