// SIGHUP can add the first service to a running control plane: the subsystems whose config
// section was empty at start (health, proxy, SLO) are built on reload, and their API routes appear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exited, freePort, scratchDir, startCli, waitFor } from '../testing/helpers.js';

test('reload adds the first service: health and proxy start, the proxy serves, heartbeat routes exist', async () => {
  const { dir, cleanup } = scratchDir();
  const backend = createServer((req, res) => res.end(req.url === '/health' ? 'ok' : 'hello'));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
  const apiPort = await freePort();
  const webPort = await freePort();
  const file = join(dir, 'bulwark.yaml');
  writeFileSync(file, `api: { listen: 127.0.0.1:${apiPort} }\nstate_dir: ./var\n`);
  const child = startCli(['up', '-c', file]);
  const api = `http://127.0.0.1:${apiPort}`;
  try {
    await waitFor(async () => (await fetch(`${api}/healthz`)).ok, { timeoutMs: 15_000, what: 'the API' });
    const before = (await (await fetch(`${api}/v1/status`)).json()) as { subsystems: Record<string, unknown> };
    assert.equal(before.subsystems['proxy'], undefined);
    assert.equal((await fetch(`${api}/v1/heartbeat/web/a`, { method: 'POST' })).status, 404);

    const addr = `127.0.0.1:${(backend.address() as AddressInfo).port}`;
    writeFileSync(
      file,
      `api: { listen: 127.0.0.1:${apiPort} }\nstate_dir: ./var\nservices:\n  web:\n    listen: 127.0.0.1:${webPort}\n    backends: [{ name: a, address: "${addr}" }]\n    health: { http: { path: /health }, interval: 200ms, rise: 1 }\n    heartbeat: { ttl: 30s }\n`,
    );
    child.kill('SIGHUP');
    await waitFor(async () => ((await (await fetch(`${api}/v1/status`)).json()) as { subsystems: Record<string, unknown> }).subsystems['proxy'], { timeoutMs: 15_000, what: 'the proxy subsystem' });
    const body = await waitFor(
      async () => {
        const r = await fetch(`http://127.0.0.1:${webPort}/`);
        return r.ok ? await r.text() : undefined;
      },
      { timeoutMs: 15_000, what: 'traffic through the new service' },
    );
    assert.equal(body, 'hello');
    assert.notEqual((await fetch(`${api}/v1/heartbeat/web/a`, { method: 'POST' })).status, 404, 'the heartbeat route of the new health subsystem is served');
    child.kill('SIGTERM');
    assert.equal((await exited(child)).code, 0, child.output().stderr);
  } finally {
    child.kill('SIGKILL');
    backend.close();
    cleanup();
  }
});
