// Owns the event log as the API serves it: records every 'audit.event' in the state store's
// events table, answers GET /v1/events?since=&kind=&limit=&before= (newest first), and streams new
// events as server-sent events on GET /v1/events/stream (Last-Event-ID or ?after= replays what
// was missed). Query parsing is pure and bounded: a bad parameter is a 400, never a 500.
import type { ServerResponse } from 'node:http';
import { BulwarkError } from '../core/errors.js';
import type { BulwarkEvents } from '../core/events.js';
import type { Route, StateStore } from '../core/subsystem.js';
import { parseDuration } from '../core/units.js';

export interface EventRow {
  id: number;
  at: number;
  kind: string;
  subject: string;
  message: string;
  data: Record<string, unknown> | null;
}

export interface EventQuery {
  since: number | undefined;
  before: number | undefined;
  kinds: string[];
  limit: number;
}

const MAX_LIMIT = 1000;
/** Latest date accepted anywhere (year 9999): Date and SQLite both handle it. */
const MAX_TIME = Date.UTC(9999, 11, 31);

function bad(message: string, hint: string): BulwarkError {
  return new BulwarkError('BULWARK_API_BAD_REQUEST', message, { hint });
}

/** A time parameter: ISO 8601 ("2026-03-01T02:00:00Z"), epoch milliseconds, or a duration ago ("15m", "24h"). */
export function parseTimeParam(v: string, name: string, now: number): number {
  const hint = `give ${name} as an ISO 8601 time (2026-03-01T02:00:00Z), epoch milliseconds, or a duration ago (15m, 24h, 7d)`;
  let t: number;
  if (/^\d{10,}$/.test(v)) t = Number(v);
  else if (/^\d{4}-\d{2}-\d{2}/.test(v)) t = Date.parse(v);
  else {
    try {
      t = now - parseDuration(v, name);
    } catch {
      throw bad(`${name}: '${v}' is not a time`, hint);
    }
  }
  if (!Number.isFinite(t) || t < 0 || t > MAX_TIME) throw bad(`${name}: '${v}' is not a time between 1970 and 9999`, hint);
  return t;
}

export function parseEventQuery(params: URLSearchParams, now: number): EventQuery {
  const since = params.get('since');
  const before = params.get('before');
  const limitText = params.get('limit');
  let limit = 50;
  if (limitText !== null) {
    if (!/^\d{1,6}$/.test(limitText) || Number(limitText) < 1) throw bad(`limit: '${limitText}' is not a whole number from 1 to ${MAX_LIMIT}`, `for example limit=100 (at most ${MAX_LIMIT})`);
    limit = Math.min(MAX_LIMIT, Number(limitText));
  }
  const kinds = (params.get('kind') ?? '')
    .split(',')
    .map((k) => k.trim())
    .filter(Boolean);
  for (const k of kinds) if (!/^[A-Za-z0-9_.*-]{1,100}$/.test(k)) throw bad(`kind: '${k}' is not an event kind`, 'give kinds like health.transition or db.* (comma-separated)');
  return { since: since === null ? undefined : parseTimeParam(since, 'since', now), before: before === null ? undefined : parseTimeParam(before, 'before', now), kinds, limit };
}

/** The SQL WHERE clause and parameters for a query; kind patterns use * as a wildcard. */
export function eventWhere(q: Pick<EventQuery, 'since' | 'before' | 'kinds'>): { where: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  if (q.since !== undefined) {
    clauses.push('at >= ?');
    params.push(q.since);
  }
  if (q.before !== undefined) {
    clauses.push('at < ?');
    params.push(q.before);
  }
  if (q.kinds.length > 0) {
    clauses.push(`(${q.kinds.map(() => "kind LIKE ? ESCAPE '\\'").join(' OR ')})`);
    for (const k of q.kinds) params.push(k.replace(/[\\%_]/g, (c) => `\\${c}`).replace(/\*/g, '%'));
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

type Listener = (row: EventRow) => void;

export class EventsFeed {
  readonly #store: StateStore;
  readonly #now: () => number;
  readonly #listeners = new Set<Listener>();
  readonly #streams = new Set<ServerResponse>();

  constructor(store: StateStore, now: () => number) {
    this.#store = store;
    this.#now = now;
  }

  record(e: BulwarkEvents['audit.event']): void {
    const r = this.#store.run('INSERT INTO events (at, kind, subject, message, data) VALUES (?, ?, ?, ?, ?)', e.at, e.kind, e.subject, e.message, e.data ? JSON.stringify(e.data) : null);
    const row: EventRow = { id: Number(r.lastInsertRowid), at: e.at, kind: e.kind, subject: e.subject, message: e.message, data: e.data ?? null };
    for (const l of this.#listeners) l(row);
  }

  query(q: EventQuery): EventRow[] {
    const { where, params } = eventWhere(q);
    return this.#rows(`SELECT id, at, kind, subject, message, data FROM events ${where} ORDER BY id DESC LIMIT ?`, ...params, q.limit);
  }

  #rows(sql: string, ...params: unknown[]): EventRow[] {
    return this.#store.all<{ id: number; at: number; kind: string; subject: string; message: string; data: string | null }>(sql, ...params).map((r) => ({ ...r, data: r.data ? (JSON.parse(r.data) as Record<string, unknown>) : null }));
  }

  /** Ends every open stream (the daemon is stopping). */
  closeStreams(): void {
    for (const res of this.#streams) res.end();
    this.#streams.clear();
    this.#listeners.clear();
  }

  routes(): Route[] {
    return [
      {
        method: 'GET',
        path: '/v1/events',
        handle: ({ url }) => {
          const q = parseEventQuery(url.searchParams, this.#now());
          return { events: this.query(q).map((r) => ({ ...r, time: new Date(r.at).toISOString() })) };
        },
      },
      {
        method: 'GET',
        path: '/v1/events/stream',
        handle: ({ req, res, url }) => {
          const q = parseEventQuery(url.searchParams, this.#now());
          const afterText = (req.headers['last-event-id'] as string | undefined) ?? url.searchParams.get('after') ?? undefined;
          if (afterText !== undefined && !/^\d{1,15}$/.test(afterText)) throw bad(`after: '${afterText}' is not an event id`, 'give the id of the last event seen');
          const { where, params } = eventWhere({ since: undefined, before: undefined, kinds: q.kinds });
          const patterns = q.kinds.map((k) => new RegExp(`^${k.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`));
          const matches = (row: EventRow): boolean => patterns.length === 0 || patterns.some((re) => re.test(row.kind));
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
          res.write('retry: 2000\n\n');
          const send = (row: EventRow): void => {
            res.write(`id: ${row.id}\nevent: event\ndata: ${JSON.stringify({ ...row, time: new Date(row.at).toISOString() })}\n\n`);
          };
          if (afterText !== undefined) {
            const missed = this.#rows(`SELECT id, at, kind, subject, message, data FROM events WHERE id > ? ${where ? `AND ${where.slice(6)}` : ''} ORDER BY id ASC LIMIT ?`, Number(afterText), ...params, MAX_LIMIT);
            for (const row of missed) send(row);
          }
          const listener: Listener = (row) => {
            if (matches(row)) send(row);
          };
          const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
          ping.unref();
          this.#listeners.add(listener);
          this.#streams.add(res);
          res.on('close', () => {
            clearInterval(ping);
            this.#listeners.delete(listener);
            this.#streams.delete(res);
          });
          return undefined;
        },
      },
    ];
  }
}
