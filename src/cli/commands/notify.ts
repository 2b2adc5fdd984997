// Owns `bulwark notify ...`: `test CHANNEL` sends a test notification through one channel of the
// config now (no daemon needed) and exits 1 when it could not be delivered; `kinds` lists every
// incident kind a route can name.
import type { Command } from 'commander';
import { BulwarkError } from '../../core/errors.js';
import { printJson, printTable } from '../output.js';
import { setExitCode } from '../exit.js';

export function registerNotifyCommands(program: Command): void {
  const notify = program.command('notify').description('notifications of incidents: test a channel, list incident kinds');
  notify
    .command('test')
    .description('send a test notification through CHANNEL (a key under notify.channels) now; exit 1 when it fails')
    .argument('<channel>', 'channel name')
    .option('-c, --config <file>', 'config file', 'bulwark.yaml')
    .option('--kind <kind>', 'incident kind of the test message', 'node.down')
    .option('--json', 'print JSON')
    .action(async (channel: string, opts: { config: string; kind: string; json?: boolean }) => {
      const { loadConfig } = await import('../../core/config/load.js');
      const { buildChannel, toDocument, INCIDENT_KINDS } = await import('../../notify/index.js');
      const { systemClock } = await import('../../core/clock.js');
      const loaded = loadConfig(opts.config);
      const channels = loaded.config.notify?.channels ?? {};
      const cfg = channels[channel];
      if (!cfg) {
        throw new BulwarkError('BULWARK_NOTIFY_UNKNOWN_CHANNEL', `no notification channel named '${channel}' under notify.channels in ${loaded.file}`, {
          hint: `configured: ${Object.keys(channels).join(', ') || '(none: add notify.channels)'}`,
        });
      }
      const known = INCIDENT_KINDS.find((k) => k.kind === opts.kind);
      if (!known) throw new BulwarkError('BULWARK_CLI_USAGE', `--kind: unknown incident kind '${opts.kind}'`, { hint: 'see `bulwark notify kinds`' });
      const ch = buildChannel(channel, cfg, { clock: systemClock, baseDir: loaded.baseDir });
      const now = Date.now();
      const doc = toDocument(
        {
          incident: { kind: known.kind, severity: known.severity, state: 'firing', subject: 'bulwark/test', key: `test:${channel}`, one_shot: true, message: `test notification from bulwark notify test ${channel}`, at: now },
          count: 1,
          kinds: [known.kind],
          first_at: now,
          repeat: false,
        },
        { test: true },
      );
      try {
        await ch.send(doc, `test:${channel}`);
      } finally {
        ch.close();
      }
      if (opts.json) printJson({ version: doc.version, channel, type: cfg.type, ok: true, id: doc.id, sent_at: new Date().toISOString() });
      else process.stdout.write(`sent a test ${known.kind} notification through ${channel} (${cfg.type}), delivery id ${doc.id}\n`);
      setExitCode(0);
    });
  notify
    .command('kinds')
    .description('every incident kind routes can name, with its severity')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const { INCIDENT_KINDS } = await import('../../notify/index.js');
      if (opts.json) return printJson({ kinds: INCIDENT_KINDS });
      printTable(INCIDENT_KINDS.map((k) => ({ kind: k.kind, severity: k.severity, about: k.about })), ['kind', 'severity', 'about']);
    });
}
