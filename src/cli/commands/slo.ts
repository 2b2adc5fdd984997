// Owns the `bulwark slo ...` and `bulwark audit` commands.
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
  program
    .command('audit')
    .description('3-2-1-1-0 and single points of failure; exit 1 on a violation')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--json', 'print JSON')
    .action(() => {
      throw notBuilt('audit', '3-2-1-1-0 backup plans (issue: Keep it safe, part 2)');
    });
}
