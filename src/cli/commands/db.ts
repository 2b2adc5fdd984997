// Owns the `bulwark db ...` commands.
import type { Command } from 'commander';
import { notBuilt } from '../output.js';

const WHERE = 'PostgreSQL failover (issue: Keep it up, part 2)';

export function registerDbCommands(program: Command): void {
  const db = program.command('db').description('PostgreSQL clusters: status and planned switchover');
  db.command('status')
    .argument('<name>')
    .option('-c, --config <file>', 'config file')
    .option('--api <url>', 'daemon API base URL')
    .option('--json', 'print JSON')
    .action(() => {
      throw notBuilt('db status', WHERE);
    });
  db.command('switchover')
    .argument('<name>')
    .requiredOption('--to <node>', 'node to promote')
    .option('-c, --config <file>', 'config file')
    .option('--api <url>', 'daemon API base URL')
    .action(() => {
      throw notBuilt('db switchover', WHERE);
    });
}
