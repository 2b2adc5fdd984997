// Owns what a notification says: the JSON document every channel sends (webhook body, command
// stdin, email attachment-free text) and the one-line title and text body for people. Pure.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { VERSION } from '../core/version.js';
import type { Notification } from './grouper.js';

/** The JSON a webhook receives and a command reads on stdin (snake_case, ISO 8601 times). */
export interface NotificationDocument {
  version: string;
  id: string;
  kind: string;
  severity: string;
  state: 'firing' | 'resolved';
  subject: string;
  message: string;
  at: string;
  first_at: string;
  /** Incidents gathered into this message (more than 1: it flapped). */
  count: number;
  kinds: string[];
  repeat: boolean;
  /** A one-shot incident (a failover): no resolution follows. */
  one_shot: boolean;
  test: boolean;
  instance: string;
  data: Record<string, unknown>;
}

export function toDocument(n: Notification, opts: { test?: boolean } = {}): NotificationDocument {
  const i = n.incident;
  return {
    version: VERSION,
    id: randomUUID(),
    kind: i.kind,
    severity: i.severity,
    state: i.state,
    subject: i.subject,
    message: i.message,
    at: new Date(i.at).toISOString(),
    first_at: new Date(n.first_at).toISOString(),
    count: n.count,
    kinds: n.kinds,
    repeat: n.repeat,
    one_shot: i.one_shot,
    test: opts.test === true,
    instance: hostname(),
    data: i.data ?? {},
  };
}

/** "[bulwark] CRITICAL node.down web/b1" or "[bulwark] RESOLVED node.up web/b1". */
export function title(d: NotificationDocument): string {
  const what = d.state === 'resolved' ? 'RESOLVED' : d.severity.toUpperCase();
  return `[bulwark]${d.test ? ' TEST' : ''} ${what} ${d.kind} ${d.subject}${d.repeat ? ' (still firing)' : ''}`;
}

export function textBody(d: NotificationDocument): string {
  const lines = [d.message, '', `kind:      ${d.kind}`, `severity:  ${d.severity}`, `state:     ${d.state}`, `subject:   ${d.subject}`, `at:        ${d.at}`, `instance:  ${d.instance}`];
  if (d.count > 1) lines.push(`events:    ${d.count} since ${d.first_at} (${d.kinds.join(' -> ')})`);
  if (d.repeat) lines.push('reminder:  this incident is still firing');
  if (Object.keys(d.data).length > 0) lines.push('', JSON.stringify(d.data, null, 2));
  lines.push('', `-- Bulwark ${d.version}`);
  return `${lines.join('\n')}\n`;
}
