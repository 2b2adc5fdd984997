// Owns the 3-2-1 plan commands: `bulwark backup copy|plan run|drill` and `bulwark vault serve`.
import type { Command } from 'commander';
import { notBuilt } from '../output.js';

const PLANS = '3-2-1-1-0 backup plans (issue: Keep it safe, part 2)';

/** Adds the plan verbs to the `backup` command made by registerBackupCommands. */
export function registerPlanCommands(program: Command, backup: Command): void {
  backup
    .command('copy')
    .description('copy snapshots between repositories')
    .requiredOption('--from <url>')
    .requiredOption('--to <url>')
    .argument('[snapshot...]')
    .action(() => {
      throw notBuilt('backup copy', PLANS);
    });
  const plan = backup.command('plan').description('3-2-1 backup plans from the config');
  plan
    .command('run')
    .description('snapshot once and land it in every target of a plan')
    .argument('<name>')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .action(() => {
      throw notBuilt('backup plan run', PLANS);
    });
  backup
    .command('drill')
    .description('test-restore the latest snapshot, verify it and measure RTO')
    .argument('<name>')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .action(() => {
      throw notBuilt('backup drill', PLANS);
    });

  const vault = program.command('vault').description('append-only offsite repository server');
  vault
    .command('serve')
    .description('serve repositories from a directory')
    .requiredOption('--root <dir>')
    .requiredOption('--listen <addr>')
    .action(() => {
      throw notBuilt('vault serve', PLANS);
    });
}
