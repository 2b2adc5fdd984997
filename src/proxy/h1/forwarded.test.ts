// The header rules on parsed heads: what a request forwards (hop-by-hop and Connection-named
// headers dropped, X-Forwarded-* appended or replaced, framing redone), what it refuses, and that
// a head split across chunks at any byte gives the same result as one chunk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { forwardedHeaders, type ForwardedRequest, type Refusal } from './forwarded.js';
import { H1Parser } from './parser.js';

function forward(pieces: string[], tunnel = false): ForwardedRequest | Refusal {
  let out: ForwardedRequest | Refusal | undefined;
  const p = new H1Parser('request', {
    onHead: (x) => {
      out = forwardedHeaders(x.method, x.target, x.httpMinor, x, '10.9.9.9', tunnel);
      return false;
    },
    onBody: () => undefined,
    onComplete: () => undefined,
  });
  for (const piece of pieces) assert.notEqual(p.execute(Buffer.from(piece, 'latin1')).kind, 'error');
  p.destroy();
  return out as ForwardedRequest | Refusal;
}

const REQ =
  'POST /x HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-Proto: https\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nTE: trailers\r\nUser-Agent: t  \r\nTransfer-Encoding: chunked\r\nX-Forwarded-For: 2.2.2.2\r\nAccept: */*\r\n\r\n0\r\n\r\n';

test('a request forwards its end-to-end headers as sent and the proxy sets X-Forwarded-* and the framing', () => {
  const r = forward([REQ]);
  assert.equal(r.refused, false);
  const f = r as ForwardedRequest;
  assert.equal(f.lines, 'Host: app.test\r\nUser-Agent: t  \r\nAccept: */*\r\nx-forwarded-for: 1.1.1.1, 2.2.2.2, 10.9.9.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: app.test\r\ntransfer-encoding: chunked\r\n');
  assert.equal(f.chunked, true);
  assert.equal(f.hasBody, true);
  // Split heads are rebuilt from strings: the same headers, trailing whitespace of values dropped.
  const norm = (x: ForwardedRequest | Refusal): unknown => (x.refused ? x : { ...x, lines: x.lines.replace(/[ \t]+\r\n/g, '\r\n') });
  for (let i = 1; i < REQ.length; i++) assert.deepEqual(norm(forward([REQ.slice(0, i), REQ.slice(i)])), norm(r), `split at ${i}`);
});

test('upgrades keep Connection and Upgrade; only X-Forwarded-* are replaced', () => {
  const f = forward(['GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nX-Forwarded-Host: evil\r\n\r\n'], true) as ForwardedRequest;
  assert.equal(f.lines, 'Host: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nx-forwarded-for: 10.9.9.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\n');
});

test('refusals: two Host headers, a target naming another host, no Host in HTTP/1.1, an unknown Expect', () => {
  assert.deepEqual(forward(['GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n']), { refused: true, status: 400, reason: 'duplicate Host header' });
  assert.equal((forward(['GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n']) as Refusal).status, 400);
  assert.equal((forward(['GET http://A/ HTTP/1.1\r\nHost: a\r\n\r\n']) as ForwardedRequest).refused, false, 'the same host in another case is fine');
  assert.equal((forward(['GET / HTTP/1.1\r\n\r\n']) as Refusal).status, 400);
  assert.equal((forward(['GET / HTTP/1.0\r\n\r\n']) as ForwardedRequest).refused, false, 'HTTP/1.0 needs no Host');
  assert.equal((forward(['PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\nContent-Length: 0\r\n\r\n']) as Refusal).status, 417);
});
