// Owns the backup engine's commands: `bulwark backup init|create|snapshots|restore|check|forget|prune|key`.
// (`backup copy|plan|drill` and `vault` live in plans.ts.)
import type { Command } from 'commander';
import { notBuilt } from '../output.js';

const ENGINE = 'the backup engine (issue: Keep it safe, part 1)';

export function registerBackupCommands(program: Command): Command {
  const backup = program.command('backup').description('deduplicating, compressed, encrypted backups (restic-like verbs)');
  const repoOpt = (c: Command): Command => c.requiredOption('--repo <url>', 'repository: a path, file://, sftp://, s3://, vault://').option('--password-file <file>', 'file holding the repository password (else BULWARK_PASSWORD)');

  repoOpt(backup.command('init').description('create a repository')).action(() => {
    throw notBuilt('backup init', ENGINE);
  });
  repoOpt(backup.command('create').description('back up paths into a new snapshot'))
    .option('--tag <tag...>', 'tags to record')
    .option('--exclude <glob...>', 'glob patterns to skip')
    .option('--json', 'progress and summary as JSON lines')
    .argument('<path...>')
    .action(() => {
      throw notBuilt('backup create', ENGINE);
    });
  repoOpt(backup.command('snapshots').description('list snapshots'))
    .option('--json', 'print JSON')
    .action(() => {
      throw notBuilt('backup snapshots', ENGINE);
    });
  repoOpt(backup.command('restore').description('restore a snapshot into a directory'))
    .argument('<snapshot>', 'snapshot id or "latest"')
    .requiredOption('--target <dir>', 'directory to restore into')
    .option('--include <path...>', 'restore only these paths')
    .option('--verify', 'read back and check what was written')
    .action(() => {
      throw notBuilt('backup restore', ENGINE);
    });
  repoOpt(backup.command('check').description('check repository structure, and optionally the data'))
    .option('--read-data', 'decrypt and verify every blob')
    .option('--read-data-subset <n>', 'verify a share of the packs, like 10%')
    .option('--json', 'print JSON')
    .action(() => {
      throw notBuilt('backup check', ENGINE);
    });
  repoOpt(backup.command('forget').description('remove snapshots by retention policy'))
    .option('--keep-last <n>')
    .option('--keep-hourly <n>')
    .option('--keep-daily <n>')
    .option('--keep-weekly <n>')
    .option('--keep-monthly <n>')
    .option('--keep-yearly <n>')
    .option('--keep-within <duration>')
    .option('--prune', 'prune after forgetting')
    .option('--dry-run', 'show what would be removed and why')
    .option('--json', 'print JSON')
    .action(() => {
      throw notBuilt('backup forget', ENGINE);
    });
  repoOpt(backup.command('prune').description('remove unreferenced data and repack')).action(() => {
    throw notBuilt('backup prune', ENGINE);
  });
  const key = backup.command('key').description('manage the passwords (keys) of a repository');
  for (const verb of ['add', 'list', 'remove']) {
    repoOpt(key.command(verb).description(`${verb} a key`)).argument(verb === 'remove' ? '<id>' : '[id]').action(() => {
      throw notBuilt(`backup key ${verb}`, ENGINE);
    });
  }
  return backup;
}
