// Owns the shape of the `notify:` section (owned by src/notify): channels (webhook, command hook,
// Alertmanager, email), routes by incident kind and severity, grouping and repeat intervals.
import { z } from 'zod';
import { duration, name } from './types.js';

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

const httpUrl = () =>
  z
    .string()
    .url()
    .refine((u) => /^https?:\/\//.test(u), { message: 'expected an http:// or https:// URL' });

const webhookChannel = z.strictObject({
  type: z.literal('webhook'),
  url: httpUrl(),
  /** File holding the HMAC-SHA256 key: every request carries X-Bulwark-Signature-256: sha256=HEX of the body. */
  secret_file: z.string().optional(),
  secret_env: z.string().optional(),
  /** Extra request headers (not secrets: those belong in secret_file). */
  headers: z.record(z.string(), z.string()).default({}),
  timeout: duration().default(5000),
  /** Attempts before the notification is given up (network errors, 5xx and 429 are retried with backoff). */
  attempts: z.number().int().min(1).max(10).default(3),
});

const commandChannel = z.strictObject({
  type: z.literal('command'),
  /** Program and arguments, run without a shell; the event JSON arrives on stdin, BULWARK_EVENT_* in the environment, and kind, state and subject are appended as arguments (like Patroni's callbacks). */
  command: z.array(z.string()).min(1),
  env: z.record(z.string(), z.string()).default({}),
  timeout: duration().default(10_000),
  attempts: z.number().int().min(1).max(10).default(1),
});

const alertmanagerChannel = z.strictObject({
  type: z.literal('alertmanager'),
  /** Base URL of Alertmanager, like http://127.0.0.1:9093 (alerts are POSTed to /api/v2/alerts). */
  url: httpUrl(),
  timeout: duration().default(5000),
  attempts: z.number().int().min(1).max(10).default(3),
  /** How long a one-shot incident (a failover) stays active in Alertmanager. */
  one_shot_ttl: duration().default(15 * 60_000),
});

const emailChannel = z.strictObject({
  type: z.literal('email'),
  /** SMTP server as host:port. */
  smtp: z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { message: 'expected the SMTP server as host:port, like smtp.example.com:587' }),
  /** TLS from the first byte (port 465); else STARTTLS is used when the server offers it. */
  tls: z.boolean().default(false),
  /** Refuse to send unless the connection is upgraded with STARTTLS. */
  require_tls: z.boolean().default(false),
  username: z.string().optional(),
  password_file: z.string().optional(),
  password_env: z.string().optional(),
  from: z.string().min(3),
  to: z.array(z.string().min(3)).min(1),
  timeout: duration().default(10_000),
  attempts: z.number().int().min(1).max(10).default(2),
});

export const notifyChannelSchema = z.discriminatedUnion('type', [webhookChannel, commandChannel, alertmanagerChannel, emailChannel]);

const routeSchema = z.strictObject({
  /** Channel names (keys under notify.channels). */
  channels: z.array(name()).min(1),
  /** Incident kinds this route takes, with * as a wildcard (node.*, db.failover); default every kind. */
  kinds: z.array(z.string().regex(/^[a-z0-9_.*-]+$/, { message: 'expected an incident kind like node.down or db.*' })).default(['*']),
  /** Lowest severity this route takes. */
  min_severity: z.enum(SEVERITIES).default('warning'),
  /** Whether the resolution of an incident (node.up after node.down) is sent too. */
  send_resolved: z.boolean().default(true),
});

export const notifySchema = z
  .strictObject({
    channels: z.record(name(), notifyChannelSchema).default({}),
    routes: z.array(routeSchema).default([]),
    /** Wait this long after the first event of an incident before sending, to gather what follows (a flap becomes one message). */
    group_wait: duration().default(5000),
    /** At most one message per incident within this interval; what happens meanwhile is summarised in the next one. */
    group_interval: duration().default(60_000),
    /** Send an incident that is still firing again after this long. */
    repeat_interval: duration().default(4 * 3600_000),
  })
  .superRefine((n, ctx) => {
    n.routes.forEach((r, i) => {
      r.channels.forEach((c, j) => {
        if (!n.channels[c]) ctx.addIssue({ code: 'custom', path: ['routes', i, 'channels', j], message: `no channel named '${c}' under notify.channels (configured: ${Object.keys(n.channels).join(', ') || 'none'})`, input: c });
      });
    });
    for (const [key, ms] of [['group_wait', n.group_wait], ['group_interval', n.group_interval], ['repeat_interval', n.repeat_interval]] as const) {
      if (ms > 2_147_483_647) ctx.addIssue({ code: 'custom', path: [key], message: `${key} is longer than 24 days, the longest timer Node.js can run`, input: ms });
    }
    if (n.repeat_interval < n.group_interval) ctx.addIssue({ code: 'custom', path: ['repeat_interval'], message: 'repeat_interval must not be shorter than group_interval', input: n.repeat_interval });
  });

export type NotifyConfig = z.output<typeof notifySchema>;
export type NotifyChannelConfig = z.output<typeof notifyChannelSchema>;
export type NotifyRouteConfig = z.output<typeof routeSchema>;
