import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, Counter } from 'prom-client';
import { silentLogger } from '../core/logger.js';
import { BulwarkError } from '../core/errors.js';
import type { Route } from '../core/subsystem.js';
import { request as httpRequest } from 'node:http';
import { ApiServer, type ControlPlane } from './server.js';

function plane(routes: Route[] = []): ControlPlane {
  const metrics = new Registry();
  new Counter({ name: 'test_total', help: 'a test counter', registers: [metrics] }).inc(3);
  return { status: () => ({ ok: 'yes' }), routes: () => routes, metrics };
}

test('the API refuses to listen beyond loopback without a token', () => {
  assert.throws(() => new ApiServer(plane(), { listen: '0.0.0.0:0', logger: silentLogger() }), { code: 'BULWARK_API_TOKEN_REQUIRED' });
});

test('with a token, requests need the bearer token (except /healthz)', async () => {
  const api = new ApiServer(plane(), { listen: '127.0.0.1:0', token: 'sekret-token', logger: silentLogger() });
  await api.listen();
  try {
    const base = `http://${api.address}`;
    assert.equal((await fetch(`${base}/v1/status`)).status, 401);
    assert.equal((await fetch(`${base}/v1/status`, { headers: { authorization: 'Bearer wrong' } })).status, 401);
    const ok = await fetch(`${base}/v1/status`, { headers: { authorization: 'Bearer sekret-token' } });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { ok: 'yes' });
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    assert.equal((await fetch(`${base}/metrics`)).status, 401);
  } finally {
    await api.close();
  }
});

test('routes get params and JSON bodies; errors map to status codes and JSON', async () => {
  const routes: Route[] = [
    {
      method: 'POST',
      path: '/v1/echo/:name',
      handle: async ({ params, body }) => ({ name: params['name'], body: await body() }),
    },
    {
      method: 'GET',
      path: '/v1/missing/:x',
      handle: ({ params }) => {
        throw new BulwarkError('BULWARK_API_BAD_REQUEST', `no such thing ${params['x'] ?? ''}`, { httpStatus: 404 });
      },
    },
  ];
  const api = new ApiServer(plane(routes), { listen: '127.0.0.1:0', logger: silentLogger() });
  await api.listen();
  try {
    const base = `http://${api.address}`;
    const r = await fetch(`${base}/v1/echo/a%20b`, { method: 'POST', body: JSON.stringify({ x: 1 }) });
    assert.deepEqual(await r.json(), { name: 'a b', body: { x: 1 } });
    const bad = await fetch(`${base}/v1/echo/a`, { method: 'POST', body: '{not json' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'BULWARK_API_BAD_REQUEST');
    assert.equal((await fetch(`${base}/v1/missing/q`)).status, 404);
    assert.equal((await fetch(`${base}/v1/nothing-here`)).status, 404);
    const wrongMethod = await fetch(`${base}/v1/echo/a`);
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.get('allow'), 'POST');
  } finally {
    await api.close();
  }
});

test('/metrics serves the registry in Prometheus text format', async () => {
  const api = new ApiServer(plane(), { listen: '127.0.0.1:0', logger: silentLogger() });
  await api.listen();
  try {
    const r = await fetch(`http://${api.address}/metrics`);
    assert.match(r.headers.get('content-type') ?? '', /text\/plain/);
    assert.match(await r.text(), /^test_total 3$/m);
  } finally {
    await api.close();
  }
});

test('listening on a port in use is a clear error', async () => {
  const a = new ApiServer(plane(), { listen: '127.0.0.1:0', logger: silentLogger() });
  await a.listen();
  try {
    const b = new ApiServer(plane(), { listen: a.address, logger: silentLogger() });
    await assert.rejects(b.listen(), { code: 'BULWARK_API_LISTEN', message: /EADDRINUSE/ });
  } finally {
    await a.close();
  }
});

/** A raw request, so tests can send the Host, Origin and Sec-Fetch-Site a browser would. */
function raw(address: string, method: string, path: string, headers: Record<string, string>, body?: string): Promise<{ status: number; body: string }> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host, port, method, path, headers }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const echo: Route[] = [{ method: 'POST', path: '/v1/echo', handle: async ({ body }) => ({ got: await body() }) }];

test('read-only token: GET and /metrics work, a state change is 403; the admin token may change state', async () => {
  const api = new ApiServer(plane(echo), { listen: '127.0.0.1:0', token: 'admin-token', readToken: 'read-token', logger: silentLogger() });
  await api.listen();
  try {
    const base = `http://${api.address}`;
    const read = { authorization: 'Bearer read-token' };
    assert.equal((await fetch(`${base}/v1/status`, { headers: read })).status, 200);
    assert.equal((await fetch(`${base}/metrics`, { headers: read })).status, 200);
    assert.equal((await fetch(`${base}/metrics`)).status, 401);
    const denied = await fetch(`${base}/v1/echo`, { method: 'POST', headers: { ...read, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(denied.status, 403);
    assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'BULWARK_API_FORBIDDEN');
    const ok = await fetch(`${base}/v1/echo`, { method: 'POST', headers: { authorization: 'Bearer admin-token', 'content-type': 'application/json' }, body: '{"a":1}' });
    assert.equal(ok.status, 200);
    assert.deepEqual(((await (await fetch(`${base}/v1/whoami`, { headers: read })).json()) as { role: string }).role, 'read');
    assert.deepEqual(((await (await fetch(`${base}/v1/whoami`, { headers: { authorization: 'Bearer admin-token' } })).json()) as { role: string }).role, 'admin');
  } finally {
    await api.close();
  }
});

test('with a token, the dashboard page and its assets load without one (the page asks for it); an unknown asset is 404', async () => {
  const api = new ApiServer(plane(), { listen: '127.0.0.1:0', token: 'admin-token', logger: silentLogger() });
  await api.listen();
  try {
    const base = `http://${api.address}`;
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    assert.match(await page.text(), /<form id="login"/);
    for (const a of ['app.js', 'app.css', 'uplot.js', 'uplot.css']) assert.equal((await fetch(`${base}/assets/${a}`)).status, 200, a);
    assert.equal((await fetch(`${base}/assets/..%2Fpackage.json`)).status, 404);
    assert.equal((await fetch(`${base}/assets/nope.js`)).status, 404);
    assert.equal((await fetch(`${base}/v1/status`)).status, 401, 'the data still needs the token');
  } finally {
    await api.close();
  }
});

test('a web page cannot drive a tokenless API: another Origin, a cross-site fetch and a non-loopback Host are refused', async () => {
  const api = new ApiServer(plane(echo), { listen: '127.0.0.1:0', logger: silentLogger() });
  await api.listen();
  try {
    const a = api.address;
    const json = { 'content-type': 'application/json', host: a };
    assert.equal((await raw(a, 'POST', '/v1/echo', { ...json }, '{}')).status, 200, 'curl-like: no Origin');
    assert.equal((await raw(a, 'POST', '/v1/echo', { ...json, origin: `http://${a}`, 'sec-fetch-site': 'same-origin' }, '{}')).status, 200, 'the dashboard itself');
    const evil = await raw(a, 'POST', '/v1/echo', { ...json, origin: 'http://evil.example' }, '{}');
    assert.equal(evil.status, 403);
    assert.match(evil.body, /BULWARK_API_FORBIDDEN/);
    assert.equal((await raw(a, 'POST', '/v1/echo', { ...json, 'sec-fetch-site': 'cross-site' }, '{}')).status, 403);
    assert.equal((await raw(a, 'POST', '/v1/echo', { ...json, origin: 'null' }, '{}')).status, 403, 'a sandboxed page sends Origin: null');
    assert.equal((await raw(a, 'GET', '/v1/status', { host: 'rebind.evil.example:7070' })).status, 403, 'DNS rebinding');
    assert.equal((await raw(a, 'GET', '/v1/status', { host: `localhost:${a.split(':')[1] ?? ''}` })).status, 200);
  } finally {
    await api.close();
  }
});

test('a heartbeat token may POST that service\'s heartbeats and nothing else', async () => {
  const routes: Route[] = [
    { method: 'POST', path: '/v1/heartbeat/:service/:node', handle: ({ params }) => ({ beat: `${params['service'] ?? ''}/${params['node'] ?? ''}` }) },
    ...echo,
  ];
  const api = new ApiServer(plane(routes), { listen: '127.0.0.1:0', token: 'admin-token', scopedTokens: [{ token: 'hb-web', method: 'POST', pathPrefix: '/v1/heartbeat/web/' }], logger: silentLogger() });
  await api.listen();
  try {
    const base = `http://${api.address}`;
    const hb = { authorization: 'Bearer hb-web' };
    const ok = await fetch(`${base}/v1/heartbeat/web/n1`, { method: 'POST', headers: hb });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { beat: 'web/n1' });
    assert.equal((await fetch(`${base}/v1/heartbeat/db/n1`, { method: 'POST', headers: hb })).status, 403, 'another service');
    assert.equal((await fetch(`${base}/v1/echo`, { method: 'POST', headers: hb })).status, 403, 'another endpoint');
    assert.equal((await fetch(`${base}/v1/status`, { headers: hb })).status, 403, 'reading');
    assert.equal((await fetch(`${base}/v1/heartbeat/web/n1`, { method: 'POST' })).status, 401, 'no token');
    assert.equal((await fetch(`${base}/v1/heartbeat/web/n1`, { method: 'POST', headers: { authorization: 'Bearer admin-token' } })).status, 200, 'the admin token still may');
  } finally {
    await api.close();
  }
});
