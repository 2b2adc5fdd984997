// Owns the `bulwark audit` command: every backup plan against 3-2-1-1-0 (copies, media, offsite,
// immutable, errors) from the plan history in the state store (and, with --probe, from the
// repositories themselves), and single points of failure in the services, databases and control
// plane of the config, with what to do about each; exit 1 on a violation. In cluster mode it also
// asks etcd for the live state (members up, etcd's own members) and reports the single points of
// failure it shows (audit/live.ts).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import type { LiveState } from '../../audit/live.js';
import { systemClock } from '../../core/clock.js';
import type { BackupPlanConfig } from '../../core/config/schema.js';
import { BulwarkError } from '../../core/errors.js';
import { printJson, printTable } from '../output.js';

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description('3-2-1-1-0 of every backup plan and single points of failure; exit 1 on a violation')
    .requiredOption('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--plan <name>', 'only this plan')
    .option('--probe', 'also open every target and read its newest snapshot back (needs the passwords and credentials)')
    .option('--instance <name>', 'cluster mode: read the plan history of this instance (else BULWARK_INSTANCE)')
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; json?: boolean; plan?: string; probe?: boolean; instance?: string }) => {
      const { auditInputs } = await import('../../audit/inputs.js');
      const { auditPlan } = await import('../../audit/rules.js');
      const { auditSpof } = await import('../../audit/spof.js');
      const { probePlan } = await import('../../backup/plan/probe.js');
      const { loadConfig, loadInstanceConfig } = await import('../../core/config/load.js');
      const { instanceName } = await import('../../core/config/cluster.js');
      const { SqliteStore } = await import('../../store/sqlite.js');
      const plain = loadConfig(opts.config);
      const instance = instanceName(opts.instance);
      const loaded = plain.config.cluster && instance !== undefined ? loadInstanceConfig(opts.config, instance) : plain;
      if (opts.plan !== undefined && !loaded.config.backups[opts.plan]) {
        throw new BulwarkError('BULWARK_PLAN_UNKNOWN', `no backup plan named '${opts.plan}' under backups`, { hint: `configured plans: ${Object.keys(loaded.config.backups).join(', ') || '(none)'}` });
      }
      const dir = resolve(loaded.config.state_dir);
      const store = existsSync(join(dir, 'state.db')) ? SqliteStore.open(dir) : undefined;
      let inputs;
      try {
        inputs = auditInputs(loaded.config, store, opts.plan);
      } finally {
        store?.close();
      }
      if (opts.probe) {
        // What the repositories hold now: a newer readable snapshot counts; a target that cannot be read is an error.
        for (const input of inputs) {
          const probes = await probePlan(input.plan, loaded.config.backups[input.plan] as BackupPlanConfig, { baseDir: loaded.baseDir, clock: systemClock });
          for (const pr of probes) {
            const t = input.targets.find((x) => x.name === pr.target);
            if (!t) continue;
            if (pr.newest !== undefined && (t.lastSuccess === undefined || pr.newest > t.lastSuccess)) t.lastSuccess = pr.newest;
            if (pr.error) t.lastRun = { ok: false, at: Date.now(), message: `probe: ${pr.error.code}: ${pr.error.message}` };
          }
        }
      }
      const results = inputs.map((p) => auditPlan(p, Date.now()));
      let live: LiveState | undefined;
      if (opts.plan === undefined && plain.config.cluster) {
        // What the cluster is now, not only what the config says: etcd's members and the live instances.
        const { gatherLive } = await import('../../audit/live.js');
        const { createCoordination } = await import('../../coord/index.js');
        const coordination = createCoordination(plain.config.coordination, { clock: systemClock, identity: `audit@${process.pid}` });
        try {
          live = await gatherLive(plain.config, coordination);
        } finally {
          await coordination.close().catch(() => undefined);
        }
      }
      const { auditLive } = await import('../../audit/live.js');
      const spof = opts.plan === undefined ? [...auditSpof(loaded.config), ...(live ? auditLive(plain.config, live) : [])] : [];
      const spofViolations = spof.filter((f) => f.severity === 'violation');
      const ok = results.every((r) => r.ok) && spofViolations.length === 0;
      if (opts.json) {
        printJson({ ok, state_store: store ? join(dir, 'state.db') : null, plans: results, spof, ...(live ? { live } : {}) });
      } else {
        if (results.length === 0) process.stdout.write('no backup plans configured (backups: in the config)\n');
        if (!store && results.length > 0) process.stdout.write(`no state store at ${join(dir, 'state.db')}: no plan has run from here yet\n`);
        for (const r of results) {
          process.stdout.write(`\nplan ${r.plan}: ${r.ok ? 'PASS' : 'FAIL'} (3-2-1-1-0)\n`);
          printTable(
            r.rules.map((x) => ({ rule: x.label, required: x.rule === 'errors' ? '0' : `>= ${x.required}`, actual: x.actual, status: x.ok ? 'ok' : 'VIOLATION', what_to_do: x.fix || undefined })),
            ['rule', 'required', 'actual', 'status', 'what_to_do'],
          );
          printTable(
            r.targets.map((t) => ({ target: t.name, media: t.media, offsite: t.offsite ? 'yes' : 'no', immutable: t.immutable ? 'yes' : 'no', copy: t.counted ? 'yes' : 'no', notes: t.notes.join('; ') || undefined })),
            ['target', 'media', 'offsite', 'immutable', 'copy', 'notes'],
          );
        }
        if (live) {
          const up = live.instances.filter((i) => i.up);
          const etcd = 'error' in live.etcd ? `etcd cannot be asked (${live.etcd.error})` : `etcd has ${live.etcd.members} member(s)`;
          process.stdout.write(`\nlive cluster ${plain.config.cluster?.name ?? ''}: ${up.length} of ${live.instances.length} instance(s) live${up.length ? ` (${up.map((i) => i.name).join(', ')})` : ''}; ${etcd}\n`);
        }
        if (opts.plan === undefined) {
          process.stdout.write(`\nsingle points of failure: ${spofViolations.length === 0 ? 'none' : `${spofViolations.length} found`}\n`);
          if (spof.length > 0) printTable(spof.map((f) => ({ layer: f.layer, subject: f.subject, severity: f.severity === 'violation' ? 'VIOLATION' : 'warning', problem: f.problem, what_to_do: f.fix })), ['layer', 'subject', 'severity', 'problem', 'what_to_do']);
        }
      }
      if (!ok) {
        const bad = results.filter((r) => !r.ok);
        const parts = [
          ...(bad.length ? [`${bad.length} plan(s) break 3-2-1-1-0: ${bad.map((r) => `${r.plan} (${r.rules.filter((x) => !x.ok).map((x) => x.label).join(', ')})`).join('; ')}`] : []),
          ...(spofViolations.length ? [`${spofViolations.length} single point(s) of failure: ${spofViolations.map((f) => f.subject).join(', ')}`] : []),
        ];
        throw new BulwarkError('BULWARK_AUDIT_VIOLATION', parts.join('; '), {
          hint: 'the tables above say what to do for each shortfall',
        });
      }
    });
}
