// Owns the `bulwark slo ...` commands.
import type { Command } from 'commander';
import { notBuilt } from '../output.js';

export function registerSloCommands(program: Command): void {
  const slo = program.command('slo').description('service level objectives');
  slo.command('report')
    .option('-c, --config <file>', 'config file')
    .option('--api <url>', 'daemon API base URL')
    .option('--json', 'print JSON')
    .action(() => {
      throw notBuilt('slo report', 'SLOs (issue: Keep score)');
    });
}
