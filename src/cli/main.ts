// Owns the command line: one commander program with every command of the contract, and the
// mapping of errors to exit codes (0 ok, 1 failure/violation, 2 bad usage/input, 3 partial backup).
import { Command, CommanderError } from 'commander';
import { BulwarkError, EXIT } from '../core/errors.js';
import { VERSION } from '../core/version.js';
import { exitCode } from './exit.js';

/**
 * The command modules, each with the top-level commands it registers. Only the module of the
 * command being run is imported (a client command does not load the daemon, etcd or the backup
 * engine; `--version` loads none); help and unknown commands load them all.
 */
const COMMAND_GROUPS: Array<{ names: string[]; register: (program: Command) => Promise<void> }> = [
  { names: ['up', 'validate', 'status', 'nines'], register: async (p) => (await import('./commands/core.js')).registerCoreCommands(p) },
  { names: ['demo'], register: async (p) => (await import('./commands/demo.js')).registerDemoCommand(p) },
  {
    names: ['backup', 'vault'],
    register: async (p) => {
      const [{ registerBackupCommands }, { registerPlanCommands }] = await Promise.all([import('./commands/backup.js'), import('./commands/plans.js')]);
      registerPlanCommands(p, registerBackupCommands(p));
    },
  },
  { names: ['db'], register: async (p) => (await import('./commands/db.js')).registerDbCommands(p) },
  { names: ['slo'], register: async (p) => (await import('./commands/slo.js')).registerSloCommands(p) },
  { names: ['audit'], register: async (p) => (await import('./commands/audit.js')).registerAuditCommand(p) },
  { names: ['notify'], register: async (p) => (await import('./commands/notify.js')).registerNotifyCommands(p) },
];

/** The command groups argv needs: none for a bare --version, the one named, or all (help, unknown command). */
function groupsFor(argv: string[]): typeof COMMAND_GROUPS {
  const args = argv.slice(2);
  const first = args.find((a) => !a.startsWith('-'));
  if (first === undefined) return args.length > 0 && args.every((a) => a === '--version' || a === '-V') ? [] : COMMAND_GROUPS;
  const group = COMMAND_GROUPS.find((g) => g.names.includes(first));
  return group ? [group] : COMMAND_GROUPS;
}

/** The whole program (every command), or only the commands argv needs. */
export async function buildProgram(argv?: string[]): Promise<Command> {
  const program = new Command('bulwark')
    .description('Keep services up and data safe: failover proxy, PostgreSQL failover, 3-2-1 backups, SLOs, audits')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const g of argv ? groupsFor(argv) : COMMAND_GROUPS) await g.register(program);
  // Every subcommand exits through the same override so usage errors map to exit 2.
  const walk = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(walk);
  };
  walk(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = await buildProgram(argv);
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
