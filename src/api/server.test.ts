import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, Counter } from 'prom-client';
import { silentLogger } from '../core/logger.js';
import { BulwarkError } from '../core/errors.js';
import type { Route } from '../core/subsystem.js';
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
