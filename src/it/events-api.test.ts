// The events API: since/kind/limit filters, bounded parameters (a bad one is a 400 that stores
// nothing, never a 500), and the server-sent event stream with replay after Last-Event-ID.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Registry } from 'prom-client';
import { ApiServer } from '../api/server.js';
import { BulwarkError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { SqliteStore } from '../store/sqlite.js';
import { scratchDir, waitFor } from '../testing/helpers.js';
import { EventsFeed, parseEventQuery } from '../app/events-feed.js';

const NOW = Date.UTC(2026, 5, 1);

test('query parameters: ISO, epoch ms and durations ago; bounded limit; a bad value is BULWARK_API_BAD_REQUEST', () => {
  const q = (s: string) => parseEventQuery(new URLSearchParams(s), NOW);
  assert.equal(q('since=2026-05-31T00:00:00Z').since, Date.UTC(2026, 4, 31));
  assert.equal(q('since=1780000000000').since, 1780000000000);
  assert.equal(q('since=1h').since, NOW - 3600_000);
  assert.equal(q('limit=5000').limit, 1000);
  assert.deepEqual(q('kind=db.*,health.transition').kinds, ['db.*', 'health.transition']);
  for (const bad of ['since=99999999999d', 'since=yesterday', 'since=99999-01-01T00:00:00Z', 'limit=0', 'limit=-3', 'limit=ten', "kind=a'b"]) {
    assert.throws(() => q(bad), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_API_BAD_REQUEST', bad);
  }
});

test('GET /v1/events filters by since and kind, newest first; the stream sends new events and replays after Last-Event-ID', async () => {
  const s = scratchDir();
  const store = SqliteStore.open(s.dir);
  let now = NOW;
  const feed = new EventsFeed(store, () => now);
  feed.record({ kind: 'health.transition', subject: 'web/b1', message: 'up -> down', at: NOW - 7200_000 });
  feed.record({ kind: 'db.failover', subject: 'main', message: 'pg-1 -> pg-2', at: NOW - 60_000 });
  feed.record({ kind: 'health.transition', subject: 'web/b1', message: 'down -> up', at: NOW - 30_000 });
  const api = new ApiServer({ status: () => ({}), routes: () => feed.routes(), metrics: new Registry() }, { listen: '127.0.0.1:0', logger: silentLogger() });
  await api.listen();
  try {
    const base = `http://${api.address}`;
    type Ev = { id: number; kind: string; message: string; time: string };
    const get = async (qs: string): Promise<Ev[]> => ((await (await fetch(`${base}/v1/events?${qs}`)).json()) as { events: Ev[] }).events;
    assert.deepEqual((await get('')).map((e) => e.message), ['down -> up', 'pg-1 -> pg-2', 'up -> down']);
    assert.deepEqual((await get('since=1h')).map((e) => e.message), ['down -> up', 'pg-1 -> pg-2']);
    assert.deepEqual((await get('kind=db.*')).map((e) => e.kind), ['db.failover']);
    assert.deepEqual((await get('kind=health.transition&limit=1')).map((e) => e.message), ['down -> up']);
    assert.equal((await get('kind=db'))?.length, 0, 'a kind without * matches exactly');
    assert.equal((await fetch(`${base}/v1/events?since=99999999999d`)).status, 400);

    // The stream: replays what came after id 1 (of the kinds asked for), then sends new events live.
    let text = '';
    const req = request({ host: '127.0.0.1', port: Number(api.address.split(':')[1]), path: '/v1/events/stream?kind=health.*', headers: { 'last-event-id': '1' } });
    const got = new Promise<void>((resolve, reject) => {
      req.on('response', (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream');
        res.on('data', (c: Buffer) => (text += c.toString('utf8')));
        res.on('end', () => resolve());
      });
      req.on('error', reject);
    });
    req.end();
    await waitFor(() => text.includes('down -> up') || undefined, { what: 'the replayed event' });
    assert.ok(!text.includes('pg-1 -> pg-2'), 'another kind is not streamed');
    assert.ok(!text.includes('up -> down'), 'event 1 was already seen');
    now += 1000;
    feed.record({ kind: 'db.switchover', subject: 'main', message: 'not for this stream', at: now });
    feed.record({ kind: 'health.transition', subject: 'web/b2', message: 'live one', at: now });
    await waitFor(() => text.includes('live one') || undefined, { what: 'the live event' });
    assert.match(text, /id: 5\nevent: event\ndata: \{.*"live one"/);
    assert.ok(!text.includes('not for this stream'));
    feed.closeStreams();
    await got;
  } finally {
    await api.close();
    store.close();
    s.cleanup();
  }
});
