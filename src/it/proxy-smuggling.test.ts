// Request smuggling and malformed requests, sent byte for byte to Bulwark's HTTP front end and to
// HAProxy (installed by scripts/install-deps.sh) with the same backend program behind each: every
// request HAProxy refuses Bulwark refuses too, the ambiguous framings are refused outright, a
// refused request never reaches a backend, and the backend never sees more requests than the
// client meant to send. A plain request and a plain pipelined pair pass both, so the check can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from '../testing/helpers.js';
import { startPlane } from './proxy-kit.js';

interface Case {
  name: string;
  bytes: string;
  /** Bulwark must refuse it whatever HAProxy does (the smuggling set). */
  mustRefuse: boolean;
  /** Requests the client meant to send (the backend may see at most this many). */
  requests: number;
}

const H = 'Host: app.test\r\n';
const CASES: Case[] = [
  { name: 'plain GET (control)', bytes: `GET /ok HTTP/1.1\r\n${H}\r\n`, mustRefuse: false, requests: 1 },
  { name: 'pipelined pair (control)', bytes: `GET /a HTTP/1.1\r\n${H}\r\nGET /b HTTP/1.1\r\n${H}\r\n`, mustRefuse: false, requests: 2 },
  { name: 'chunked POST (control)', bytes: `POST /c HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`, mustRefuse: false, requests: 1 },
  { name: 'CL+TE', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n`, mustRefuse: true, requests: 1 },
  { name: 'TE+CL', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGET /smuggled HTTP/1.1\r\n${H}\r\n0\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'duplicate Content-Length (different)', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc`, mustRefuse: true, requests: 1 },
  { name: 'Content-Length list', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: 3, 40\r\n\r\nabc`, mustRefuse: true, requests: 1 },
  { name: 'negative Content-Length', bytes: `POST / HTTP/1.1\r\n${H}Content-Length: -3\r\n\r\nabc`, mustRefuse: true, requests: 1 },
  { name: 'obs-fold header', bytes: `GET / HTTP/1.1\r\n${H}X-Folded: a\r\n b\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'obs-fold Transfer-Encoding', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding:\r\n chunked\r\nContent-Length: 3\r\n\r\nabc`, mustRefuse: true, requests: 1 },
  { name: 'bad chunk size', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'chunk size overflow', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF3\r\nabc\r\n0\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'chunk size with a space', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n3 3\r\nabc\r\n0\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'bare LF line ends', bytes: `GET / HTTP/1.1\n${H.replace('\r\n', '\n')}X-A: b\n\n`, mustRefuse: true, requests: 1 },
  { name: 'bare LF inside the head', bytes: `GET / HTTP/1.1\r\n${H}X-A: b\nX-B: c\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'oversized head (40 KB header)', bytes: `GET / HTTP/1.1\r\n${H}X-Big: ${'a'.repeat(40 * 1024)}\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'space before the colon', bytes: `GET / HTTP/1.1\r\nHost : app.test\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'Transfer-Encoding: xchunked', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'Transfer-Encoding: chunked, identity', bytes: `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'NUL in a header value', bytes: `GET / HTTP/1.1\r\n${H}X-A: a\u0000b\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'duplicate Host', bytes: `GET / HTTP/1.1\r\n${H}Host: other.test\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'absolute-form target naming another host', bytes: `GET http://other.test/ HTTP/1.1\r\n${H}\r\n`, mustRefuse: true, requests: 1 },
  { name: 'HTTP/1.1 without Host', bytes: `GET / HTTP/1.1\r\n\r\n`, mustRefuse: true, requests: 1 },
  { name: 'bad request-target characters', bytes: `GET /a b HTTP/1.1\r\n${H}\r\n`, mustRefuse: true, requests: 1 },
];

/** A backend that counts the requests it parses (node:http) and what their paths were. */
function countingBackend(): Promise<{ server: Server; address: string; seen: string[] }> {
  const seen: string[] = [];
  const server = createHttpServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  server.on('clientError', (_err, s) => s.destroy());
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen })));
}

/** Sends bytes on a fresh connection; returns the status codes of every response read before the close (or 3 s). */
function send(address: string, bytes: string): Promise<number[]> {
  const [host, port] = address.split(':') as [string, string];
  return new Promise((resolve) => {
    const s = connect({ host, port: Number(port) });
    let got = '';
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve([...got.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1])));
    };
    const timer = setTimeout(done, 3000);
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
    });
    s.on('error', () => undefined);
    s.on('close', done);
    s.write(Buffer.from(bytes, 'latin1'));
    // Half-close: a proxy that waits for more bytes answers what it has, or closes.
    setTimeout(() => s.end(), 300);
  });
}

async function startHaproxy(backend: string): Promise<{ child: ChildProcess; address: string; dir: string }> {
  if (spawnSync('sh', ['-c', 'command -v haproxy']).status !== 0) {
    assert.fail('haproxy is not installed: run scripts/install-deps.sh (apt-get install -y haproxy)');
  }
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-smuggling-'));
  const port = await freePort();
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    `global\n  nbthread 1\ndefaults\n  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n  option http-keep-alive\nfrontend fe\n  bind 127.0.0.1:${port}\n  default_backend be\nbackend be\n  server b ${backend}\n`,
  );
  const child = spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const address = `127.0.0.1:${port}`;
  await waitFor(async () => (await send(address, `GET /ready HTTP/1.1\r\n${H}\r\n`)).includes(200), { what: 'haproxy answering', timeoutMs: 10_000 });
  return { child, address, dir };
}

test('request smuggling set: Bulwark refuses every request HAProxy refuses, the ambiguous framings always, and no refused request reaches a backend', async () => {
  const bBackend = await countingBackend();
  const hBackend = await countingBackend();
  const plane = await startPlane({ services: { web: { listen: '127.0.0.1:0', backends: [{ name: 'b', address: bBackend.address }], passive: { consecutive_failures: 1 } } } });
  const ha = await startHaproxy(hBackend.address);
  const table: string[] = [];
  try {
    const addr = plane.proxyAddress('web');
    hBackend.seen.length = 0;
    for (const c of CASES) {
      const bSeen0 = bBackend.seen.length;
      const hSeen0 = hBackend.seen.length;
      const bStatus = await send(addr, c.bytes);
      const hStatus = await send(ha.address, c.bytes);
      const bReached = bBackend.seen.length - bSeen0;
      const hReached = hBackend.seen.length - hSeen0;
      const bRefused = bReached === 0 && !bStatus.includes(200);
      const hRefused = hReached === 0 && !hStatus.includes(200);
      table.push(`${c.name}: bulwark ${bStatus.join(',') || 'closed'} (backend saw ${bReached}), haproxy ${hStatus.join(',') || 'closed'} (backend saw ${hReached})`);
      assert.ok(bReached <= c.requests, `${c.name}: the backend behind Bulwark saw ${bReached} requests (${bBackend.seen.slice(bSeen0).join(' | ')}), the client sent ${c.requests}`);
      if (hRefused) assert.ok(bRefused, `${c.name}: HAProxy refused it (${hStatus.join(',') || 'closed'}) but Bulwark answered ${bStatus.join(',')} and its backend saw ${bReached}`);
      if (c.mustRefuse) {
        assert.ok(bRefused, `${c.name}: Bulwark must refuse it, answered ${bStatus.join(',') || 'nothing'} and its backend saw ${bReached}`);
        assert.ok(bStatus.length === 0 || bStatus.every((s) => s >= 400 && s < 500), `${c.name}: a refusal is a 4xx, got ${bStatus.join(',')}`);
      } else {
        assert.deepEqual(bStatus, Array(c.requests).fill(200), `${c.name}: a valid request passes Bulwark`);
        assert.deepEqual(hStatus, Array(c.requests).fill(200), `${c.name}: a valid request passes HAProxy`);
      }
    }
    // No refusal was counted against the backend.
    const row = (plane.daemon.status().subsystems['proxy'] as { rows: Array<Record<string, unknown>> }).rows.find((r) => r['backend'] === 'b');
    assert.equal(row?.['errors'], 0, 'no backend failure was counted');
    assert.equal(row?.['state'], 'unknown', 'the backend was never ejected');
    assert.equal(plane.seen('proxy.outlier').length, 0);
  } catch (err) {
    console.error(table.join('\n'));
    throw err;
  } finally {
    ha.child.kill('SIGKILL');
    rmSync(ha.dir, { recursive: true, force: true });
    await plane.stop();
    for (const b of [bBackend, hBackend]) {
      b.server.closeAllConnections();
      await new Promise((r) => b.server.close(r));
    }
  }
  if (process.env['BULWARK_TEST_VERBOSE']) console.log(table.join('\n'));
});
