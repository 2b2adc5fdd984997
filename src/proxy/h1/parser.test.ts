// The llhttp wrapper and the in-place head reading: a head split across socket chunks at any byte
// yields the same headers and the same forwarded response head as one chunk; empty values, folded
// framing and pipelining behave; what strict llhttp refuses is reported as an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { responseHead } from './forwarded.js';
import { H1Parser } from './parser.js';

const RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Empty:\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nX-Last:  spaced  \r\n\r\nhello';

function parseResponse(pieces: string[]): { headers: string[]; head: ReturnType<typeof responseHead>; body: string; complete: boolean } {
  let headers: string[] = [];
  let head: ReturnType<typeof responseHead> | undefined;
  let body = '';
  let complete = false;
  const p = new H1Parser('response', {
    onHead: (x) => {
      head = responseHead(x);
      headers = [...x.headers];
      return false;
    },
    onBody: (b) => (body += b.toString('latin1')),
    onComplete: () => (complete = true),
  });
  for (const piece of pieces) {
    const r = p.execute(Buffer.from(piece, 'latin1'));
    assert.notEqual(r.kind, 'error', JSON.stringify(r));
  }
  p.destroy();
  return { headers, head: head as ReturnType<typeof responseHead>, body, complete };
}

test('a response head split at any byte reads the same as in one chunk', () => {
  const whole = parseResponse([RESPONSE]);
  assert.deepEqual(whole.headers, ['Content-Type', 'text/plain', 'X-Empty', '', 'Content-Length', '5', 'Connection', 'keep-alive, X-Hop', 'X-Hop', 'secret', 'Keep-Alive', 'timeout=5', 'X-Last', 'spaced']);
  assert.equal(whole.head.contentLength, true);
  assert.equal(whole.head.keepAliveSeconds, 5);
  assert.equal(whole.head.lines, 'Content-Type: text/plain\r\nX-Empty: \r\nContent-Length: 5\r\nX-Last: spaced\r\n', 'hop-by-hop dropped, X-Hop named in Connection dropped (general path)');
  assert.equal(whole.body, 'hello');
  assert.ok(whole.complete);
  for (let i = 1; i < RESPONSE.length; i++) {
    const split = parseResponse([RESPONSE.slice(0, i), RESPONSE.slice(i)]);
    assert.deepEqual(split.headers, whole.headers, `split at ${i}`);
    assert.equal(split.head.keepAliveSeconds, 5, `split at ${i}`);
    assert.equal(split.body, 'hello', `split at ${i}`);
  }
  // Three pieces, every pair of cut points in the head.
  const headEnd = RESPONSE.indexOf('\r\n\r\n');
  for (let i = 1; i < headEnd; i += 3) {
    for (let j = i + 1; j < headEnd; j += 5) {
      assert.deepEqual(parseResponse([RESPONSE.slice(0, i), RESPONSE.slice(i, j), RESPONSE.slice(j)]).headers, whole.headers, `split at ${i}, ${j}`);
    }
  }
});

test('the in-place head keeps the bytes as sent between dropped headers (no Connection extras: one slice)', () => {
  const r = parseResponse(['HTTP/1.1 204 No Content\r\nA: 1\r\nB:2  \r\nConnection: close\r\nC: 3\r\n\r\n']);
  assert.equal(r.head.lines, 'A: 1\r\nB:2  \r\nC: 3\r\n');
  assert.deepEqual(r.headers, ['A', '1', 'B', '2', 'Connection', 'close', 'C', '3']);
  assert.equal(r.head.contentLength, false);
});

test('requests: pipelined messages stop at each end; strict llhttp refuses ambiguous framing', () => {
  const seen: string[] = [];
  const p = new H1Parser('request', { onHead: (x) => (seen.push(`${x.method} ${x.target} ${x.headers.join('|')}`), false), onBody: () => undefined, onComplete: () => undefined });
  const r = p.execute(Buffer.from('GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: y\r\n\r\n'));
  assert.equal(r.kind, 'complete');
  assert.deepEqual(seen, ['GET /a Host|x']);
  const r2 = p.execute((r as { rest: Buffer }).rest);
  assert.equal(r2.kind, 'complete');
  assert.deepEqual(seen, ['GET /a Host|x', 'GET /b Host|y']);
  p.destroy();
  const bad = new H1Parser('request', { onHead: () => false, onBody: () => undefined, onComplete: () => undefined });
  const e = bad.execute(Buffer.from('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'));
  assert.equal(e.kind, 'error');
  bad.destroy();
});
