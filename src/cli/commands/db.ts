// Owns the `bulwark db ...` commands: status of a PostgreSQL cluster, planned switchover and (cold
// standby) a base backup now, asked of the running daemon over its API (/v1/db/NAME, .../switchover,
// .../base-backup); and the WAL archive helpers wal-push / wal-fetch (local, no daemon).
import type { Command } from 'commander';
import { printJson, printTable } from '../output.js';
import { apiRequest as apiCall, type ApiOpts } from '../api-client.js';
import { BulwarkError } from '../../core/errors.js';

interface DbStatus {
  database: string;
  leader: boolean;
  primary: string | undefined;
  synchronous: boolean;
  sync_standbys: string[];
  writes: string;
  blocked_reason?: string;
  rows: Array<Record<string, unknown>>;
  columns: string[];
  cold?: { restore_from?: string; wal_archive: string; last_archived_wal?: string; newest_base_backup?: string; base_backup_running: boolean; last_base_backup?: { ok: boolean; error?: string } };
  history: Array<{ kind: string; old_primary: string; new_primary: string; started_at: number; ok: number; write_downtime_ms: number | null; message: string }>;
}

export function registerDbCommands(program: Command): void {
  const db = program.command('db').description('PostgreSQL clusters: status and planned switchover');
  db.command('status')
    .description('roles, lag and sync state of every node, and the last failovers')
    .argument('<name>', 'database name (a key under databases:)')
    .option('-c, --config <file>', 'config file (for api.listen and the token)')
    .option('--api <url>', 'daemon API base URL')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: ApiOpts & { json?: boolean }) => {
      const s = (await apiCall(opts, 'GET', `/v1/db/${encodeURIComponent(name)}`)) as DbStatus;
      if (opts.json) return printJson(s);
      process.stdout.write(
        `database ${s.database}: primary ${s.primary ?? '-'}, writes ${s.writes}${s.blocked_reason ? ` (${s.blocked_reason})` : ''}, ` +
          `${s.synchronous ? `synchronous (safe: ${s.sync_standbys.join(', ') || 'none'})` : 'asynchronous'}, ${s.leader ? 'this instance leads' : 'this instance does NOT hold the lease'}\n`,
      );
      if (s.cold) {
        const lb = s.cold.last_base_backup;
        process.stdout.write(
          `cold standby: restore_from ${s.cold.restore_from ?? '-'}, newest base backup ${s.cold.newest_base_backup ?? 'none'}` +
            `${lb && !lb.ok ? ` (last attempt FAILED: ${lb.error ?? '?'})` : ''}${s.cold.base_backup_running ? ' (one running)' : ''}, ` +
            `last archived WAL ${s.cold.last_archived_wal ?? 'none'} in ${s.cold.wal_archive}\n`,
        );
      }
      printTable(s.rows, s.columns);
      if (s.history.length > 0) {
        process.stdout.write('\nrecent failovers\n');
        printTable(
          s.history.slice(0, 5).map((h) => ({ at: new Date(h.started_at).toISOString(), kind: h.kind, from: h.old_primary, to: h.new_primary, ok: h.ok ? 'yes' : 'no', write_downtime_ms: h.write_downtime_ms })),
          ['at', 'kind', 'from', 'to', 'ok', 'write_downtime_ms'],
        );
      }
    });
  db.command('switchover')
    .description('planned switchover: wait for NODE to catch up, then swap roles (about a second without writes)')
    .argument('<name>', 'database name')
    .requiredOption('--to <node>', 'node to promote')
    .option('-c, --config <file>', 'config file')
    .option('--api <url>', 'daemon API base URL')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: ApiOpts & { to: string; json?: boolean }) => {
      const r = (await apiCall(opts, 'POST', `/v1/db/${encodeURIComponent(name)}/switchover`, { to: opts.to }, 180_000)) as {
        old_primary: string;
        new_primary: string;
        write_downtime_ms: number;
      };
      if (opts.json) return printJson(r);
      process.stdout.write(`switched over ${name}: ${r.old_primary} -> ${r.new_primary}, writes blocked for ${r.write_downtime_ms} ms\n`);
    });
  db.command('base-backup')
    .description('cold standby: take a base backup of the primary now (pg_basebackup, then a snapshot into the restore_from plan)')
    .argument('<name>', 'database name')
    .option('-c, --config <file>', 'config file')
    .option('--api <url>', 'daemon API base URL')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: ApiOpts & { json?: boolean }) => {
      const r = (await apiCall(opts, 'POST', `/v1/db/${encodeURIComponent(name)}/base-backup`, {}, 3_600_000)) as {
        started_at: number;
        finished_at: number;
        targets: Array<{ target: string; ok: boolean; snapshot?: string; error?: string }>;
      };
      if (opts.json) return printJson(r);
      process.stdout.write(`base backup of ${name} taken in ${r.finished_at - r.started_at} ms\n`);
      printTable(r.targets.map((t) => ({ target: t.target, ok: t.ok ? 'yes' : 'no', snapshot: t.snapshot?.slice(0, 8) ?? '', error: t.error ?? '' })), ['target', 'ok', 'snapshot', 'error']);
    });
  db.command('wal-push')
    .description('cold standby: archive one WAL file into DIR (what archive_command runs; atomic, never overwrites different content)')
    .argument('<dir>', 'WAL archive directory')
    .argument('<path>', 'the WAL file (%p)')
    .argument('<file>', 'its name (%f)')
    .action(async (dir: string, path: string, file: string) => {
      const { pushWal } = await import('../../failover/wal.js');
      try {
        pushWal(dir, path, file);
      } catch (err) {
        throw new BulwarkError('BULWARK_DB_WAL_ARCHIVE', `cannot archive ${file}: ${(err as Error).message}`, { hint: 'check the WAL archive directory (space, permissions); PostgreSQL retries the segment' });
      }
    });
  db.command('wal-fetch')
    .description('cold standby: copy one archived WAL file out of DIR (what restore_command runs); exit 1 when it is not archived')
    .argument('<dir>', 'WAL archive directory')
    .argument('<file>', 'the WAL file name (%f)')
    .argument('<path>', 'where to write it (%p)')
    .action(async (dir: string, file: string, path: string) => {
      const { fetchWal } = await import('../../failover/wal.js');
      if (!fetchWal(dir, file, path)) {
        // exit 1: for restore_command, the end of the archive
        throw new BulwarkError('BULWARK_DB_WAL_ARCHIVE', `${file} is not in the WAL archive ${dir}`, { hint: 'during recovery this is the normal end of the archive' });
      }
    });
}
