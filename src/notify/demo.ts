// Owns the notifications part of `bulwark demo`: a webhook receiver on loopback that appends every
// notification to notifications.jsonl in the demo directory (and logs it), and a notify section
// that sends every incident there, so killing a demo backend shows a notification.
import { appendFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../core/logger.js';

/** The shape app/demo.ts expects of a demo part (declared here: a subsystem does not import app/). */
export interface NotifyDemoPart {
  readonly name: string;
  start(ctx: { dir: string; logger: Logger }): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

export function notifyDemoPart(): NotifyDemoPart {
  let server: Server | undefined;
  return {
    name: 'notify',
    async start(ctx) {
      const file = join(ctx.dir, 'notifications.jsonl');
      const srv = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString('utf8')));
        req.on('end', () => {
          appendFileSync(file, `${body.replace(/\n/g, ' ')}\n`);
          try {
            const d = JSON.parse(body) as { kind?: string; subject?: string; message?: string };
            ctx.logger.warn({ kind: d.kind, subject: d.subject }, `demo notification: ${d.message ?? ''}`);
          } catch {
            // not JSON: kept in the file as it came
          }
          res.writeHead(204).end();
        });
      });
      await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()));
      server = srv;
      const url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/notify`;
      ctx.logger.info({ file }, 'demo: notifications go to a local webhook receiver');
      return {
        notify: {
          group_wait: '2s',
          channels: { 'demo-webhook': { type: 'webhook', url } },
          routes: [{ channels: ['demo-webhook'], min_severity: 'info' }],
        },
      };
    },
    async stop() {
      const s = server;
      server = undefined;
      if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}
