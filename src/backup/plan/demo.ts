// Owns the backup part of `bulwark demo`: a plan 'demo' with two local targets in different
// directories (hdd, ssd) and a vault on loopback (append-only, 30-day retention) as the offsite,
// immutable copy. It runs the plan once at start (recorded in the demo's state store, so
// `bulwark backup plan status`, `bulwark audit` and the dashboard have something to show); the
// daemon then runs it every 5 minutes, verifies hourly and drills every 6 hours.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { configSchema } from '../../core/config/schema.js';
import type { Logger } from '../../core/logger.js';
import { SqliteStore } from '../../store/sqlite.js';
import { VaultServer } from '../vault/server.js';
import { runPlanRecorded } from './ops.js';

/** The shape app/demo.ts expects of a demo part (declared here: a subsystem does not import app/). */
export interface BackupDemoPart {
  readonly name: string;
  start(ctx: { dir: string; logger: Logger }): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export function backupDemoPart(): BackupDemoPart {
  let vault: VaultServer | undefined;
  return {
    name: 'backup',
    async start(ctx) {
      const base = join(ctx.dir, 'backup');
      const data = join(base, 'data');
      mkdirSync(join(data, 'docs'), { recursive: true });
      mkdirSync(join(data, 'media'), { recursive: true });
      for (let i = 0; i < 20; i++) writeFileSync(join(data, 'docs', `note-${i}.md`), `# note ${i}\n${'Bulwark keeps it safe. '.repeat(200)}\n`);
      writeFileSync(join(data, 'media', 'photo.raw'), randomBytes(2 * 1024 * 1024));
      const admin = randomBytes(24).toString('hex');
      const client = randomBytes(24).toString('hex');
      writeFileSync(join(base, 'vault-tokens.yaml'), `admin: ${admin}\nclients:\n  - { name: demo-host, token: ${client}, repos: [demo] }\n`, { mode: 0o600 });
      writeFileSync(join(base, 'vault-token'), client, { mode: 0o600 });
      writeFileSync(join(base, 'password'), randomBytes(16).toString('hex'), { mode: 0o600 });
      vault = new VaultServer({ root: join(base, 'vault'), tokens: [{ name: 'admin', token: admin, role: 'admin' }, { name: 'demo-host', token: client, role: 'client', repos: ['demo'] }], appendOnly: true, retentionMs: 30 * 86_400_000 });
      const addr = await vault.listen('127.0.0.1:0');
      const section = {
        demo: {
          paths: [data],
          password_file: join(base, 'password'),
          schedule: '*/5 * * * *',
          rpo: '15m',
          keep: { last: 12, hourly: 24, daily: 7 },
          verify: { schedule: '0 * * * *', read_data_period: '1d', restore_drill: '0 */6 * * *' },
          targets: [
            { name: 'disk-a', repo: join(base, 'disk-a'), media: 'hdd' },
            { name: 'disk-b', repo: join(base, 'disk-b'), media: 'ssd' },
            { name: 'vault', repo: `vault://${addr}/demo`, media: 'vault', offsite: true, immutable: '30d', token_file: join(base, 'vault-token') },
          ],
        },
      };
      // First run now, recorded where the daemon will look (state_dir of the demo config).
      const cfg = configSchema.parse({ backups: section });
      const store = SqliteStore.open(join(ctx.dir, 'var'));
      try {
        const r = await runPlanRecorded('demo', cfg.backups['demo'] as (typeof cfg.backups)[string], { baseDir: base, clock: systemClock, store });
        ctx.logger.info({ targets: r.targets.map((t) => `${t.target}:${t.ok ? 'ok' : (t.error?.code ?? 'failed')}`) }, `demo: backup plan 'demo' (2 local disks + vault on ${addr}, offsite and immutable) ran once; next runs every 5 minutes`);
      } finally {
        store.close();
      }
      return { backups: section };
    },
    async stop() {
      await vault?.close();
      vault = undefined;
    },
  };
}
