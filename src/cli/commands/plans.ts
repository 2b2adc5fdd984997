// Owns the 3-2-1 plan commands: `bulwark backup plan run|verify|status`, `backup drill`,
// `backup copy` and `bulwark vault serve`. Plan history goes to the state store in state_dir
// (relative to the working directory, like the daemon), so `audit` and the daemon see CLI runs.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { PlanContext } from '../../backup/plan/ops.js';
import { readSecret } from '../../core/secrets.js';
import { systemClock } from '../../core/clock.js';
import type { LoadedConfig } from '../../core/config/load.js';
import { BulwarkError } from '../../core/errors.js';
import { formatBytes, formatDuration, parsePercent } from '../../core/units.js';
import { printJson, printTable } from '../output.js';

interface PlanOpts {
  config: string;
  json?: boolean;
  target?: string;
  sample?: string;
}

function age(ms: number | undefined): string {
  return ms === undefined ? '-' : formatDuration(Math.round(ms / 1000) * 1000 || ms);
}

/** Runs fn with a plan context backed by the config's state store. */
async function withContext<T>(file: string, fn: (loaded: LoadedConfig, ctx: PlanContext) => Promise<T>): Promise<T> {
  const { loadConfig } = await import('../../core/config/load.js');
  const { SqliteStore } = await import('../../store/sqlite.js');
  const loaded = loadConfig(file);
  const store = SqliteStore.open(resolve(loaded.config.state_dir));
  try {
    return await fn(loaded, { baseDir: loaded.baseDir, clock: systemClock, store });
  } finally {
    store.close();
  }
}

export function registerPlanCommands(program: Command, backup: Command): void {
  backup
    .command('copy')
    .description('copy snapshots (all, or the given ids) from one repository into another; already copied ones are skipped')
    .requiredOption('--from <url>', 'source repository')
    .requiredOption('--to <url>', 'destination repository (created when missing)')
    .option('--from-password-file <file>', 'source password (else BULWARK_PASSWORD)')
    .option('--to-password-file <file>', 'destination password (else BULWARK_TO_PASSWORD, else the source password)')
    .option('--json', 'print JSON')
    .argument('[snapshot...]')
    .action(async (refs: string[], opts: { from: string; to: string; fromPasswordFile?: string; toPasswordFile?: string; json?: boolean }) => {
      const { copySnapshots } = await import('../../backup/plan/copy.js');
      const { initRepository, openBackend, openRepository } = await import('../../backup/engine.js');
      const fromPw = readSecret({ file: opts.fromPasswordFile }, process.cwd(), '--from-password-file') ?? (process.env['BULWARK_PASSWORD'] || undefined);
      if (!fromPw) throw new BulwarkError('BULWARK_REPO_NO_PASSWORD', 'no password for the source repository', { hint: 'set BULWARK_PASSWORD or pass --from-password-file FILE' });
      const toPw = readSecret({ file: opts.toPasswordFile }, process.cwd(), '--to-password-file') ?? (process.env['BULWARK_TO_PASSWORD'] || undefined) ?? fromPw;
      const src = await openBackend(opts.from);
      const dstBackend = await openBackend(opts.to);
      try {
        const from = await openRepository(src, fromPw);
        let to;
        try {
          to = await openRepository(dstBackend, toPw);
        } catch (err) {
          if (!(err instanceof BulwarkError && err.code === 'BULWARK_REPO_NOT_FOUND')) throw err;
          to = await initRepository(dstBackend, toPw);
          if (!opts.json) process.stderr.write(`created repository at ${dstBackend.location}\n`);
        }
        const r = await copySnapshots(from, to, refs);
        if (opts.json) printJson(r);
        else {
          printTable([...r.copied.map((c) => ({ snapshot: c.from.slice(0, 8), status: 'copied', new_id: c.to.slice(0, 8), blobs: c.blobs, bytes: formatBytes(c.bytes) })), ...r.skipped.map((id) => ({ snapshot: id.slice(0, 8), status: 'already there' }))], ['snapshot', 'status', 'new_id', 'blobs', 'bytes']);
        }
      } finally {
        await src.close().catch(() => undefined);
        await dstBackend.close().catch(() => undefined);
      }
    });

  const plan = backup.command('plan').description('3-2-1 backup plans from the config');
  plan
    .command('run')
    .description('snapshot once and land it in every target of a plan')
    .argument('<name>')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--json', 'print the per-target report as JSON')
    .action(async (name: string, opts: PlanOpts) => {
      const { getPlan, runPlanRecorded } = await import('../../backup/plan/ops.js');
      const { planRunError } = await import('../../backup/plan/run.js');
      const { default: cliProgress } = await import('cli-progress');
      await withContext(opts.config, async (loaded, ctx) => {
        const p = getPlan(loaded.config, name);
        const tty = process.stderr.isTTY === true && !opts.json;
        const bar = tty ? new cliProgress.SingleBar({ format: `{bar} {percentage}% | {files}/{totalFiles} files | {done}/{total} | {rate}/s | ${p.targets.length} targets`, hideCursor: true, stream: process.stderr }, cliProgress.Presets.shades_classic) : undefined;
        const started = Date.now();
        const r = await runPlanRecorded(name, p, ctx, {
          ...(bar
            ? {
                onOpened: () => bar.start(1, 0, { files: 0, totalFiles: 0, done: '0 B', total: '?', rate: '0 B' }),
                onProgress: (pr: { files: number; bytes: number; totalFiles: number; totalBytes: number }) => {
                  const secs = Math.max(0.001, (Date.now() - started) / 1000);
                  bar.setTotal(Math.max(1, pr.totalBytes));
                  bar.update(Math.min(pr.bytes, Math.max(1, pr.totalBytes)), { files: pr.files, totalFiles: pr.totalFiles, done: formatBytes(pr.bytes), total: formatBytes(pr.totalBytes), rate: formatBytes(pr.bytes / secs) });
                },
              }
            : {}),
          onTarget: (t) => {
            bar?.stop();
            if (!opts.json) process.stderr.write(`${t.ok ? 'ok  ' : 'FAIL'} ${t.target}: ${t.ok ? `snapshot ${t.snapshot?.slice(0, 8) ?? ''}` : `${t.error?.code ?? ''} ${t.error?.message ?? ''}`}\n`);
          },
        });
        if (opts.json) printJson(r);
        else {
          if (r.summary) process.stdout.write(`plan ${name}: ${r.summary.files} files, ${formatBytes(r.summary.bytesRead)} read once for ${r.targets.length} targets\n`);
          printTable(
            r.targets.map((t) => ({
              target: t.target,
              status: t.ok ? 'ok' : 'FAILED',
              snapshot: t.snapshot?.slice(0, 8),
              stored: formatBytes(t.bytesStored),
              time: formatDuration(t.durationMs),
              location: t.location,
              error: t.error ? `${t.error.code}: ${t.error.message}` : undefined,
            })),
          );
          for (const f of r.fileErrors.slice(0, 20)) process.stderr.write(`unreadable: ${f.path}: ${f.message}\n`);
        }
        if (!r.ok) throw planRunError(r);
        if (r.fileErrors.length > 0) {
          throw new BulwarkError('BULWARK_BACKUP_PARTIAL', `plan '${name}': the snapshot is in every target, but ${r.fileErrors.length} file(s) could not be read`, { details: r.fileErrors.slice(0, 20).map((f) => `${f.path}: ${f.message}`) });
        }
      });
    });

  plan
    .command('verify')
    .description("read-data verification of a plan's targets: this run's share of packs, in a rotation covering all")
    .argument('<name>')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--target <name>', 'only this target')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: PlanOpts) => {
      const { getPlan, verifyPlan } = await import('../../backup/plan/ops.js');
      await withContext(opts.config, async (loaded, ctx) => {
        const out = await verifyPlan(name, getPlan(loaded.config, name), ctx, { target: opts.target });
        if (opts.json) printJson(out);
        else {
          printTable(
            out.map((o) => ({
              target: o.target,
              status: o.ok ? 'ok' : 'FAILED',
              packs: o.result ? `${o.result.packsRead}/${o.result.packsTotal}` : undefined,
              slot: o.result ? `${o.result.slot + 1}/${o.result.slots}` : undefined,
              problems: o.error ? `${o.error.code}: ${o.error.message}` : o.result?.errors.slice(0, 3).join('; ') || undefined,
            })),
          );
        }
        const bad = out.filter((o) => !o.ok);
        if (bad.length) {
          throw new BulwarkError('BULWARK_PLAN_TARGET_FAILED', `plan '${name}': verification failed for ${bad.map((b) => b.target).join(', ')}`, {
            details: bad.flatMap((b) => (b.error ? [`${b.target}: ${b.error.message}`] : (b.result?.errors ?? []).map((e) => `${b.target}: ${e}`))),
            hint: 'run `bulwark backup check --read-data --repo …` on that target; restore from another target, then run the plan again',
          });
        }
      });
    });

  plan
    .command('status')
    .description('last success, age, bytes, errors, RPO and RTO of every plan and target (from the state store)')
    .argument('[name]')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--json', 'print JSON')
    .action(async (name: string | undefined, opts: PlanOpts) => {
      const { getPlan, planStatus } = await import('../../backup/plan/ops.js');
      const { loadConfig } = await import('../../core/config/load.js');
      const { SqliteStore } = await import('../../store/sqlite.js');
      const loaded = loadConfig(opts.config);
      const names = name === undefined ? Object.keys(loaded.config.backups) : [name];
      for (const n of names) getPlan(loaded.config, n);
      const dir = resolve(loaded.config.state_dir);
      const store = SqliteStore.open(dir);
      try {
        const now = Date.now();
        const all = names.map((n) => planStatus(store, n, getPlan(loaded.config, n), now));
        if (opts.json) {
          printJson(all);
          return;
        }
        for (const s of all) {
          process.stdout.write(`plan ${s.plan}: newest verified snapshot ${age(s.ageMs)} old, rpo ${age(s.rpoMs)}${s.rpoBreached ? '  RPO BREACHED' : ''}\n`);
          printTable(
            s.targets.map((t) => ({
              target: t.target,
              media: t.media,
              last_success: t.lastSuccess ? new Date(t.lastSuccess).toISOString() : undefined,
              age: age(t.ageMs),
              rpo: t.breached ? 'BREACHED' : 'ok',
              size: t.snapshotBytes === undefined ? undefined : formatBytes(t.snapshotBytes),
              added: t.lastBytes === undefined ? undefined : formatBytes(t.lastBytes),
              verified: t.lastCheckOk === undefined ? 'never' : t.lastCheckOk ? 'ok' : `${t.lastCheckErrors ?? 1} errors`,
              rto: t.rtoMs === undefined ? undefined : `${formatDuration(t.rtoMs)} (${formatBytes(t.rtoBytesPerSec ?? 0)}/s)`,
              error: t.lastError,
            })),
          );
        }
      } finally {
        store.close();
      }
    });

  backup
    .command('drill')
    .description('test-restore the latest snapshot, verify every byte and measure RTO')
    .argument('<name>')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--target <name>', 'only this target')
    .option('--sample <percent>', 'restore only a deterministic sample of the files, like 10%')
    .option('--json', 'print JSON')
    .action(async (name: string, opts: PlanOpts) => {
      const { drillPlan, getPlan } = await import('../../backup/plan/ops.js');
      const sample = opts.sample === undefined ? undefined : parsePercent(opts.sample, '--sample');
      await withContext(opts.config, async (loaded, ctx) => {
        const out = await drillPlan(name, getPlan(loaded.config, name), ctx, { target: opts.target, sample });
        if (opts.json) printJson(out);
        else {
          printTable(
            out.map((o) => ({
              target: o.target,
              status: o.ok ? 'ok' : 'FAILED',
              snapshot: o.result?.snapshot.slice(0, 8),
              files: o.result ? `${o.result.verifiedFiles}/${o.result.files}${o.result.sampled ? ' (sample)' : ''}` : undefined,
              bytes: o.result ? formatBytes(o.result.bytes) : undefined,
              rto: o.result ? formatDuration(o.result.durationMs) : undefined,
              rate: o.result ? `${formatBytes(o.result.bytesPerSec)}/s` : undefined,
              error: o.error ? `${o.error.code}: ${o.error.message}` : o.result?.errors.slice(0, 2).map((e) => `${e.path}: ${e.message}`).join('; ') || undefined,
            })),
          );
        }
        const bad = out.filter((o) => !o.ok);
        if (bad.length) {
          throw new BulwarkError('BULWARK_PLAN_DRILL_FAILED', `plan '${name}': the restore drill failed for ${bad.map((b) => b.target).join(', ')}`, {
            details: bad.map((b) => `${b.target}: ${b.error?.message ?? b.result?.errors.map((e) => `${e.path}: ${e.message}`).slice(0, 5).join('; ') ?? ''}`),
            hint: 'run `bulwark backup check --read-data` on that target; restore from another target of the plan',
          });
        }
      });
    });

  const vault = program.command('vault').description('append-only offsite repository server');
  vault
    .command('serve')
    .description('serve repositories from a directory over HTTP(S), with per-client tokens')
    .requiredOption('--root <dir>', 'directory holding one repository per name')
    .requiredOption('--listen <addr>', 'host:port (port 0 picks a free one)')
    .requiredOption('--tokens <file>', 'YAML: `admin: TOKEN` and `clients: [{name, token, repos?}]`')
    .option('--append-only', 'refuse deletes by client tokens (overwrites are always refused)')
    .option('--retention <duration>', 'files stay undeletable this long after they are written, even by the admin token (like 30d)')
    .option('--max-retention <duration>', 'refuse X-Bulwark-Retain-Until further ahead than this (default 400d, or --retention + 1d if longer)')
    .option('--tls-cert <file>', 'PEM certificate (with --tls-key: serve HTTPS)')
    .option('--tls-key <file>', 'PEM private key')
    .action(async (opts: { root: string; listen: string; tokens: string; appendOnly?: boolean; retention?: string; maxRetention?: string; tlsCert?: string; tlsKey?: string }) => {
      const { loadTls, loadTokens, parseRetention, VaultServer } = await import('../../backup/vault/server.js');
      const { isLoopbackHost } = await import('../../core/config/types.js');
      const server = new VaultServer({
        root: resolve(opts.root),
        tokens: loadTokens(opts.tokens),
        appendOnly: opts.appendOnly === true,
        retentionMs: parseRetention(opts.retention),
        ...(opts.maxRetention !== undefined ? { maxRetentionMs: parseRetention(opts.maxRetention) } : {}),
        tls: loadTls(opts.tlsCert, opts.tlsKey),
        log: (msg, data) => process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), msg, ...data })}\n`),
      });
      const addr = await server.listen(opts.listen);
      const host = addr.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
      if (!server.tls && !isLoopbackHost(host)) {
        process.stderr.write(`warning: serving plain HTTP on ${addr}: tokens and (encrypted) repository files cross the network in clear; pass --tls-cert and --tls-key\n`);
      }
      if ((statSync(opts.tokens).mode & 0o077) !== 0) {
        process.stderr.write(`warning: ${opts.tokens} is readable by other users; chmod 600 it\n`);
      }
      process.stdout.write(`vault listening on ${server.tls ? 'https' : 'http'}://${addr} root=${resolve(opts.root)} append-only=${opts.appendOnly === true} retention=${opts.retention ?? 'none'}\n`);
      await new Promise<void>((done) => {
        const stop = (): void => {
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          void server.close().then(done);
        };
        process.on('SIGTERM', stop);
        process.on('SIGINT', stop);
      });
    });
}

/** True when a state store exists for this config (audit and status read it). */
export function hasStateStore(loaded: LoadedConfig): boolean {
  return existsSync(join(resolve(loaded.config.state_dir), 'state.db'));
}
