// Owns the command line: one commander program with every command of the contract, and the
// mapping of errors to exit codes (0 ok, 1 failure/violation, 2 bad usage/input, 3 partial backup).
import { Command, CommanderError } from 'commander';
import { BulwarkError, EXIT } from '../core/errors.js';
import { VERSION } from '../core/version.js';
import { registerAuditCommand } from './commands/audit.js';
import { registerBackupCommands } from './commands/backup.js';
import { registerCoreCommands } from './commands/core.js';
import { registerDbCommands } from './commands/db.js';
import { registerPlanCommands } from './commands/plans.js';
import { registerDemoCommand } from './commands/demo.js';
import { registerSloCommands } from './commands/slo.js';
import { exitCode } from './exit.js';

export function buildProgram(): Command {
  const program = new Command('bulwark')
    .description('Keep services up and data safe: failover proxy, PostgreSQL failover, 3-2-1 backups, SLOs, audits')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  registerCoreCommands(program);
  registerDemoCommand(program);
  registerPlanCommands(program, registerBackupCommands(program));
  registerDbCommands(program);
  registerSloCommands(program);
  registerAuditCommand(program);
  // Every subcommand exits through the same override so usage errors map to exit 2.
  const walk = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(walk);
  };
  walk(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return exitCode();
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.OK;
      return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    }
    if (err instanceof BulwarkError) {
      process.stderr.write(`${err.format()}\n`);
      return err.exitCode;
    }
    process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.FAILURE;
  }
}

// A reader that goes away (`bulwark status | head`) is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const code = await main(process.argv);
process.exitCode = code;
