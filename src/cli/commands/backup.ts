// Owns the backup engine's commands: `bulwark backup init|create|snapshots|restore|check|forget|prune|repair|key`.
// (`backup copy|plan|drill` and `vault` live in plans.ts.) The work is in src/backup/engine.ts.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { BulwarkError } from '../../core/errors.js';
import { formatBytes, formatDuration, parseDuration, parsePercent } from '../../core/units.js';
import type * as Engine from '../../backup/engine.js';
import type { RetentionPolicy } from '../../backup/forget.js';

/** The backup engine, loaded when a command runs (not for --help or other commands). */
const loadEngine = (): Promise<typeof Engine> => import('../../backup/engine.js');
import { printJson, printTable, usage } from '../output.js';
import { setExitCode } from '../exit.js';

interface RepoOpts {
  repo: string;
  passwordFile?: string;
}

function readPassword(file: string | undefined, env: string, flag: string): string {
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw usage(`cannot read ${flag} ${file}: ${(err as Error).message}`);
    }
    const p = text.replace(/\r?\n$/, '');
    if (!p) throw new BulwarkError('BULWARK_REPO_NO_PASSWORD', `${flag} ${file} is empty`);
    return p;
  }
  const p = process.env[env];
  if (p) return p;
  throw new BulwarkError('BULWARK_REPO_NO_PASSWORD', 'no repository password given', { hint: `set ${env} or pass ${flag} FILE (never on the command line)` });
}

async function openRepo(o: RepoOpts): Promise<Engine.Repository> {
  const engine = await loadEngine();
  const backend = await engine.openBackend(o.repo);
  return engine.openRepository(backend, readPassword(o.passwordFile, 'BULWARK_PASSWORD', '--password-file'));
}

function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw usage(`${flag} must be a whole number, got '${v}'`);
  return Number(v);
}

function short(id: string): string {
  return id.slice(0, 8);
}

/** Damaged files the engine skipped (index, snapshot, key files): named on stderr, never silently. */
function warnProblems(repo: Engine.Repository): void {
  for (const [file, message] of repo.problems) process.stderr.write(`warning: skipped damaged ${file}: ${message.startsWith(file) ? message.slice(file.length).replace(/^[:\s]+/, '') : message}\n`);
}

export function registerBackupCommands(program: Command): Command {
  const backup = program.command('backup').description('deduplicating, compressed, encrypted backups (restic-like verbs)');
  const repoOpt = (c: Command): Command => c.requiredOption('--repo <url>', 'repository: a path, file://, sftp://, s3://, vault://').option('--password-file <file>', 'file holding the repository password (else BULWARK_PASSWORD)');

  repoOpt(backup.command('init').description('create a repository'))
    .option('--json', 'print JSON')
    .action(async (o: RepoOpts & { json?: boolean }) => {
      const engine = await loadEngine();
      const backend = await engine.openBackend(o.repo);
      const repo = await engine.initRepository(backend, readPassword(o.passwordFile, 'BULWARK_PASSWORD', '--password-file'));
      if (o.json) printJson({ repo: backend.location, id: repo.config.id });
      else process.stdout.write(`created repository ${short(repo.config.id)} at ${backend.location}\nkeep the password safe: without it the data cannot be read\n`);
    });

  repoOpt(backup.command('create').description('back up paths into a new snapshot'))
    .option('--tag <tag...>', 'tags to record')
    .option('--exclude <glob...>', 'glob patterns to skip (a name like *.tmp, or a path like /srv/cache)')
    .option('--host <name>', 'host name to record (default: this host)')
    .option('--full', 'read every file (do not reuse the parent snapshot)')
    .option('--json', 'progress and summary as JSON lines')
    .argument('<path...>')
    .action(async (paths: string[], o: RepoOpts & { tag?: string[]; exclude?: string[]; host?: string; full?: boolean; json?: boolean }) => {
      const engine = await loadEngine();
      const { default: cliProgress } = await import('cli-progress');
      const repo = await openRepo(o);
      const tty = process.stderr.isTTY && !o.json;
      const bar = tty ? new cliProgress.SingleBar({ format: '{bar} {percentage}% | {files}/{totalFiles} files | {doneBytes}/{allBytes} | {rate}/s | ETA {eta_formatted}', hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
      const started = Date.now();
      let lastJson = 0;
      bar?.start(1, 0, { files: 0, totalFiles: 0, doneBytes: '0 B', allBytes: '?', rate: '0 B' });
      const progress = (p: Engine.ArchiveProgress): void => {
        const secs = Math.max(0.001, (Date.now() - started) / 1000);
        if (bar) {
          bar.setTotal(Math.max(1, p.totalBytes));
          bar.update(Math.min(p.bytes, Math.max(1, p.totalBytes)), { files: p.files, totalFiles: p.totalFiles, doneBytes: formatBytes(p.bytes), allBytes: formatBytes(p.totalBytes), rate: formatBytes(p.bytes / secs) });
        } else if (o.json && Date.now() - lastJson >= 1000) {
          lastJson = Date.now();
          const eta = p.scanDone && p.bytes > 0 ? Math.max(0, ((p.totalBytes - p.bytes) / p.bytes) * secs) : null;
          process.stdout.write(`${JSON.stringify({ type: 'progress', files: p.files, bytes: p.bytes, totalFiles: p.totalFiles, totalBytes: p.totalBytes, bytesPerSecond: Math.round(p.bytes / secs), etaSeconds: eta === null ? null : Math.round(eta), errors: p.errors })}\n`);
        }
      };
      const res = await engine.createSnapshot([repo], paths, {
        ...(o.tag ? { tags: o.tag } : {}),
        ...(o.exclude ? { excludes: o.exclude } : {}),
        ...(o.host ? { host: o.host } : {}),
        ...(o.full ? { full: true } : {}),
        ...(Number(process.env['BULWARK_BACKUP_WORKERS']) > 0 ? { workers: Number(process.env['BULWARK_BACKUP_WORKERS']) } : {}),
        ...(bar || o.json ? { onProgress: progress } : {}),
        onError: (path, message) => {
          if (o.json) process.stdout.write(`${JSON.stringify({ type: 'error', path, message })}\n`);
          else {
            bar?.stop();
            process.stderr.write(`warning: ${path}: ${message}\n`);
          }
        },
      });
      bar?.stop();
      for (const w of res.warnings) {
        if (o.json) process.stdout.write(`${JSON.stringify({ type: 'warning', message: w })}\n`);
        else process.stderr.write(`warning: ${w}\n`);
      }
      const s = res.summary;
      const id = res.snapshots[0]?.id ?? '';
      if (o.json) process.stdout.write(`${JSON.stringify({ type: 'summary', snapshot: id, ...s })}\n`);
      else {
        process.stdout.write(
          `snapshot ${short(id)} saved: ${s.files} files (${s.filesNew} read, ${s.filesUnchanged} unchanged), ${s.dirs} dirs, ${formatBytes(s.bytes)}; ` +
            `added ${formatBytes(s.bytesStored)} in ${s.blobsAdded} blobs; ${formatDuration(s.durationMs)}\n`,
        );
      }
      if (res.errors.length) {
        process.stderr.write(`${new BulwarkError('BULWARK_BACKUP_PARTIAL', `${res.errors.length} file(s) could not be read; the snapshot holds everything else`, { details: res.errors.slice(0, 50).map((e) => `${e.path}: ${e.message}`), hint: 'fix permissions or exclude them with --exclude' }).format()}\n`);
        setExitCode(3);
      }
    });

  repoOpt(backup.command('snapshots').description('list snapshots'))
    .option('--json', 'print JSON')
    .action(async (o: RepoOpts & { json?: boolean }) => {
      const repo = await openRepo(o);
      const snaps = await repo.listSnapshots();
      warnProblems(repo);
      if (o.json) return printJson(snaps);
      printTable(
        snaps.map((s) => ({ id: short(s.id), time: s.time.replace('T', ' ').slice(0, 19), host: s.host, tags: s.tags.join(',') || '-', paths: s.paths.join(' '), size: formatBytes(s.summary.bytes), files: s.summary.files })),
      );
    });

  repoOpt(backup.command('restore').description('restore a snapshot into a directory'))
    .argument('<snapshot>', 'snapshot id (or a prefix of it) or "latest"')
    .requiredOption('--target <dir>', 'directory to restore into')
    .option('--include <path...>', 'restore only these paths (as backed up, or relative to the snapshot root)')
    .option('--verify', 'read back and check what was written')
    .option('--keep-damaged', 'keep a file with lost byte ranges under its own name (default: renamed with the .damaged suffix)')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, o: RepoOpts & { target: string; include?: string[]; verify?: boolean; keepDamaged?: boolean; json?: boolean }) => {
      const engine = await loadEngine();
      const repo = await openRepo(o);
      const started = Date.now();
      const r = await engine.restore(repo, ref, { target: o.target, ...(o.include ? { include: o.include } : {}), ...(o.verify ? { verify: true } : {}), ...(o.keepDamaged ? { keepDamaged: true } : {}) });
      warnProblems(repo);
      if (o.json) printJson({ snapshot: r.snapshot.id, files: r.files, dirs: r.dirs, bytes: r.bytes, verified: r.verified, errors: r.errors, damaged: r.damaged, durationMs: Date.now() - started });
      else process.stdout.write(`restored snapshot ${short(r.snapshot.id)} to ${o.target}: ${r.files} files, ${r.dirs} dirs, ${formatBytes(r.bytes)}${o.verify ? `, ${r.verified} files verified` : ''}; ${formatDuration(Date.now() - started)}\n`);
      if (r.errors.length) {
        throw new BulwarkError('BULWARK_BACKUP_RESTORE_FAILED', `${r.errors.length} file(s) could not be restored${o.verify ? ' or verified' : ''}${r.damaged.length ? ` (${r.damaged.length} salvaged with holes where data is lost)` : ''}; the others were`, {
          details: r.errors.slice(0, 100).map((e) => `${e.path}: ${e.message}`),
          hint: 'run `bulwark backup check --read-data` to find damaged packs, then see docs/operations.md "check found damage"',
        });
      }
    });

  repoOpt(backup.command('check').description('check repository structure, and optionally the data'))
    .option('--read-data', 'decrypt and verify every blob')
    .option('--read-data-subset <n>', 'verify a share of the packs, like 10%')
    .option('--no-lock', 'take no shared lock (read-only storage); a concurrent prune may then show up as missing packs')
    .option('--json', 'print JSON')
    .action(async (o: RepoOpts & { readData?: boolean; readDataSubset?: string; json?: boolean; lock: boolean }) => {
      const engine = await loadEngine();
      let subset: number | undefined;
      if (o.readDataSubset !== undefined) {
        try {
          subset = parsePercent(o.readDataSubset, '--read-data-subset'); // a ratio: 10% -> 0.1
        } catch (err) {
          throw usage(`--read-data-subset: ${(err as Error).message}`, 'use a percentage such as 10%');
        }
        if (!(subset > 0)) throw usage('--read-data-subset must be above 0%');
      }
      const repo = await openRepo(o);
      const rep = await engine.check(repo, { readData: Boolean(o.readData || subset !== undefined), noLock: !o.lock, ...(subset !== undefined ? { subset } : {}) });
      if (o.json) printJson(rep);
      else {
        for (const w of rep.warnings) process.stdout.write(`warning: ${w}\n`);
        for (const d of rep.damagedPacks) {
          process.stdout.write(`damaged pack ${d.file}: ${d.problems.join('; ')}\n`);
          for (const f of d.files) process.stdout.write(`  hits snapshot ${f.snapshot}: ${f.path}\n`);
          if (!d.files.length) process.stdout.write('  no snapshot file needs its damaged blobs\n');
        }
        process.stdout.write(`${rep.snapshots} snapshots, ${rep.packs} packs, ${rep.blobs} blobs${rep.packsRead ? `, ${rep.packsRead} packs read and verified` : ''}: ${rep.ok ? 'no errors' : `${rep.errors.length} error(s)`}\n`);
      }
      if (!rep.ok) {
        if (o.json) setExitCode(1);
        else {
          throw new BulwarkError('BULWARK_REPO_CHECK_FAILED', `check found ${rep.errors.length} error(s) in ${repo.backend.location}`, {
            details: rep.errors,
            hint: 'docs/operations.md "Check found damage": `bulwark backup repair index` (index), `repair packs` then a backup (damaged packs), `repair snapshots` (lost data)',
          });
        }
      }
    });

  repoOpt(backup.command('forget').description('remove snapshots by retention policy'))
    .option('--keep-last <n>')
    .option('--keep-hourly <n>')
    .option('--keep-daily <n>')
    .option('--keep-weekly <n>')
    .option('--keep-monthly <n>')
    .option('--keep-yearly <n>')
    .option('--keep-within <duration>', 'keep every snapshot younger than this, like 30d')
    .option('--prune', 'prune after forgetting')
    .option('--dry-run', 'show what would be removed and why')
    .option('--json', 'print JSON')
    .action(async (o: RepoOpts & Record<string, string | boolean | undefined>) => {
      const engine = await loadEngine();
      const { policyIsEmpty } = await import('../../backup/forget.js');
      const policy: RetentionPolicy = {};
      for (const k of ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
        const flag = `keep${k[0]?.toUpperCase()}${k.slice(1)}`;
        const v = int(o[flag] as string | undefined, `--keep-${k}`);
        if (v !== undefined) policy[k] = v;
      }
      if (typeof o['keepWithin'] === 'string') {
        try {
          policy.withinMs = parseDuration(o['keepWithin'], '--keep-within');
        } catch (err) {
          throw usage((err as Error).message);
        }
      }
      if (policyIsEmpty(policy)) throw usage('forget needs at least one --keep-* rule', 'for example --keep-daily 7 --keep-weekly 4');
      const repo = await openRepo(o);
      const dryRun = Boolean(o['dryRun']);
      const decisions = await engine.forget(repo, policy, { dryRun });
      warnProblems(repo);
      const removed = decisions.filter((d) => !d.keep);
      let pruned: Engine.PruneResult | undefined;
      if (o['prune'] && !dryRun && removed.length) pruned = await engine.prune(repo);
      if (o['json']) return printJson({ dryRun, decisions, ...(pruned ? { prune: pruned } : {}) });
      printTable(decisions.map((d) => ({ id: short(d.id), time: d.time.replace('T', ' ').slice(0, 19), action: d.keep ? 'keep' : dryRun ? 'would remove' : 'removed', why: d.reasons.join(', ') })));
      process.stdout.write(`${dryRun ? 'would remove' : 'removed'} ${removed.length} of ${decisions.length} snapshots\n`);
      if (pruned) process.stdout.write(`pruned: ${pruned.packsDeleted} packs deleted, ${pruned.packsRepacked} repacked, ${formatBytes(pruned.bytesFreed)} freed\n`);
    });

  repoOpt(backup.command('prune').description('remove unreferenced data and repack'))
    .option('--dry-run', 'show what would be removed')
    .option('--json', 'print JSON')
    .action(async (o: RepoOpts & { dryRun?: boolean; json?: boolean }) => {
      const engine = await loadEngine();
      const repo = await openRepo(o);
      const r = await engine.prune(repo, { ...(o.dryRun ? { dryRun: true } : {}), ...(o.json ? {} : { onLog: (l: string) => process.stdout.write(`${l}\n`) }) });
      if (o.json) return printJson(r);
      process.stdout.write(`${o.dryRun ? 'would delete' : 'deleted'} ${r.packsDeleted} packs (${r.packsRepacked} repacked into ${r.packsWritten} new), ${formatBytes(r.bytesFreed)} freed; ${r.blobsKept} blobs kept, ${r.blobsRemoved} removed\n`);
    });

  const repair = backup.command('repair').description('repair a damaged repository (after `check` found damage: docs/operations.md)');
  repoOpt(repair.command('index').description('rebuild the index from the pack headers (exclusive lock; removes the old index files)'))
    .option('--json', 'print JSON')
    .action(async (o: RepoOpts & { json?: boolean }) => {
      const engine = await loadEngine();
      const repo = await openRepo(o);
      const r = await engine.repairIndex(repo, o.json ? {} : { onLog: (l) => process.stdout.write(`${l}\n`) });
      if (o.json) return printJson(r);
      process.stdout.write(`index rebuilt: ${r.packs} packs, ${r.blobs} blobs; ${r.indexFilesRemoved} old index file(s) removed${r.unreadablePacks.length ? `; ${r.unreadablePacks.length} pack(s) with a damaged header kept as listed` : ''}\n`);
    });
  repoOpt(repair.command('packs').description('verify packs and mark every damaged blob: never deduplicated onto again, stored again by the next backup'))
    .argument('[pack...]', 'pack ids (or prefixes) to read; default: every pack')
    .option('--json', 'print JSON')
    .action(async (ids: string[], o: RepoOpts & { json?: boolean }) => {
      const engine = await loadEngine();
      const repo = await openRepo(o);
      const r = await engine.repairPacks(repo, { ...(ids.length ? { only: ids.map((i) => i.toLowerCase()) } : {}), ...(o.json ? {} : { onLog: (l: string) => process.stdout.write(`${l}\n`) }) });
      if (o.json) return printJson(r);
      process.stdout.write(`${r.packsRead} packs read; ${r.blobsMarked} damaged blob(s) marked${r.blobsMarked ? ': back up the same paths again to store them from the source, then `bulwark backup check`' : ''}\n`);
    });
  repoOpt(repair.command('snapshots').description('rewrite snapshots that reference missing or damaged data (lost chunks become zeros; the new snapshot says what was lost)'))
    .option('--forget', 'remove each broken original (and unreadable snapshot files) once its repaired copy is saved')
    .option('--dry-run', 'show what would be rewritten')
    .option('--json', 'print JSON')
    .action(async (o: RepoOpts & { forget?: boolean; dryRun?: boolean; json?: boolean }) => {
      const engine = await loadEngine();
      const repo = await openRepo(o);
      const r = await engine.repairSnapshots(repo, { ...(o.forget ? { forget: true } : {}), ...(o.dryRun ? { dryRun: true } : {}), ...(o.json ? {} : { onLog: (l: string) => process.stdout.write(`${l}\n`) }) });
      if (o.json) return printJson(r);
      for (const s of r.rewritten) {
        for (const f of s.files) process.stdout.write(`  ${short(s.original)}: ${f.path}: lost ${f.lost.map(([a, b]) => `${a}-${b}`).join(', ')}\n`);
        for (const d of s.dirs) process.stdout.write(`  ${short(s.original)}: ${d}: directory listing lost\n`);
      }
      process.stdout.write(`${o.dryRun ? 'would rewrite' : 'rewrote'} ${r.rewritten.length} snapshot(s)${r.forgotten.length ? `, removed ${r.forgotten.length}` : ''}${r.unreadable.length && !o.forget ? `; ${r.unreadable.length} unreadable snapshot file(s) left (--forget removes them)` : ''}\n`);
    });

  const key = backup.command('key').description('manage the passwords (keys) of a repository');
  repoOpt(key.command('add').description('add a password; the new one comes from BULWARK_NEW_PASSWORD or --new-password-file'))
    .option('--new-password-file <file>', 'file holding the new password (else BULWARK_NEW_PASSWORD)')
    .action(async (o: RepoOpts & { newPasswordFile?: string }) => {
      const repo = await openRepo(o);
      const id = await repo.addKey(readPassword(o.newPasswordFile, 'BULWARK_NEW_PASSWORD', '--new-password-file'));
      process.stdout.write(`added key ${id}\n`);
    });
  repoOpt(key.command('list').description('list the keys'))
    .option('--json', 'print JSON')
    .action(async (o: RepoOpts & { json?: boolean }) => {
      const repo = await openRepo(o);
      const keys = await repo.listKeys();
      if (o.json) return printJson(keys);
      printTable(keys.map((k) => ({ id: k.id, current: k.current ? '*' : '', created: k.created, host: k.host, user: k.user, state: k.damaged ? 'DAMAGED' : 'ok' })));
      for (const k of keys) if (k.damaged) process.stderr.write(`warning: ${k.damaged}\n`);
    });
  repoOpt(key.command('remove').description('remove a key (not the last, not the one in use)'))
    .argument('<id>')
    .action(async (id: string, o: RepoOpts) => {
      const repo = await openRepo(o);
      process.stdout.write(`removed key ${await repo.removeKey(id)}\n`);
    });
  return backup;
}
