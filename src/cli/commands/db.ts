// Owns the `bulwark db ...` commands: status of a PostgreSQL cluster and planned switchover, both
// asked of the running daemon over its API (/v1/db/NAME, /v1/db/NAME/switchover).
import type { Command } from 'commander';
import { printJson, printTable } from '../output.js';
import { apiRequest as apiCall, type ApiOpts } from '../api-client.js';

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
}
