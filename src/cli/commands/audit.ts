// Owns the `bulwark audit` command.
import type { Command } from 'commander';
import { notBuilt } from '../output.js';

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description('3-2-1-1-0 and single points of failure; exit 1 on a violation')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--json', 'print JSON')
    .action(() => {
      throw notBuilt('audit', '3-2-1-1-0 backup plans (issue: Keep it safe, part 2)');
    });
}
