// The built CLI: `bulwark up` with a services section, reloaded with SIGHUP. The reload must keep
// client connections open and keep health state (no node falls back to unknown), and apply the
// new config (a new backend joins). `bulwark status` renders the proxy and health tables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { exited, freePort, runCli, scratchDir, startCli, waitFor } from '../testing/helpers.js';

function backend(name: string): Promise<{ server: Server; address: string }> {
  const server = createServer((req, res) => {
    req.resume();
    res.end(req.url === '/health' ? 'ok' : name);
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, address: `127.0.0.1:${(server.address() as AddressInfo).port}` })));
}

function get(port: number, agent: Agent): Promise<{ body: string; reused: boolean; status: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ body, reused: req.reusedSocket, status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('SIGHUP reload of `bulwark up` keeps client connections and health state, and applies the new backends', async () => {
  const { dir, cleanup } = scratchDir();
  const bs = await Promise.all([backend('a'), backend('b'), backend('c')]);
  const apiPort = await freePort();
  const webPort = await freePort();
  const file = join(dir, 'bulwark.yaml');
  const config = (backends: string[], rise: number): string =>
    stringify({
      api: { listen: `127.0.0.1:${apiPort}` },
      state_dir: join(dir, 'var'),
      services: {
        web: {
          listen: `127.0.0.1:${webPort}`,
          balance: 'round-robin',
          backends: backends.map((n) => ({ name: n, address: (bs[n.charCodeAt(0) - 97] as { address: string }).address })),
          health: { http: { path: '/health' }, interval: '200ms', rise, fall: 2 },
        },
      },
    });
  writeFileSync(file, config(['a', 'b'], 2));
  const up = startCli(['up', '-c', file]);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const status = async (): Promise<{ subsystems: Record<string, { rows: Array<Record<string, unknown>> }> }> => {
      const r = await runCli(['status', '--json', '-c', file]);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as { subsystems: Record<string, { rows: Array<Record<string, unknown>> }> };
    };
    const healthState = (s: Awaited<ReturnType<typeof status>>, node: string): unknown => s.subsystems['health']?.rows.find((r) => r['node'] === node)?.['state'];
    await waitFor(
      async () => {
        const s = await status();
        return healthState(s, 'a') === 'up' && healthState(s, 'b') === 'up';
      },
      { what: 'a and b up', timeoutMs: 20_000, intervalMs: 200 },
    );
    const first = await get(webPort, agent);
    assert.equal(first.status, 200);
    // Reload with a third backend and rise: 50 (10 s of probes: a forgotten state could not be up again by the time we look).
    writeFileSync(file, config(['a', 'b', 'c'], 50));
    up.kill('SIGHUP');
    // (log lines are written asynchronously, so the reload is observed through the status API)
    const after = await waitFor(
      async () => {
        const s = await status();
        return (s.subsystems['proxy']?.rows.length ?? 0) === 3 ? s : undefined;
      },
      { what: 'the reloaded config applied', intervalMs: 100 },
    );
    assert.equal(healthState(after, 'a'), 'up', 'health state survives the reload');
    assert.equal(healthState(after, 'b'), 'up');
    assert.equal(healthState(after, 'c'), 'unknown', 'the new node starts unknown');
    const proxyRows = after.subsystems['proxy']?.rows ?? [];
    assert.deepEqual(proxyRows.map((r) => r['backend']).sort(), ['a', 'b', 'c']);
    // The client's keep-alive connection from before the reload still works.
    const seen = new Set<string>();
    for (let i = 0; i < 9; i++) {
      const r = await get(webPort, agent);
      assert.equal(r.status, 200);
      assert.equal(r.reused, true, 'same client connection as before the reload');
      seen.add(r.body);
    }
    assert.deepEqual([...seen].sort(), ['a', 'b', 'c'], 'the new backend takes traffic (unknown is routable)');
    const text = await runCli(['status', '-c', file]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /proxy[\s\S]*service\s+backend\s+address\s+state\s+role\s+in_flight\s+requests\s+errors/i);
    assert.match(text.stdout, /health[\s\S]*web\s+a\s+127\.0\.0\.1:\d+\s+up/);
    up.kill('SIGTERM');
    assert.equal((await exited(up)).code, 0);
  } finally {
    agent.destroy();
    if (up.exitCode === null) {
      up.kill('SIGKILL');
      await exited(up);
    }
    await Promise.all(bs.map((b) => new Promise<void>((r) => { b.server.close(() => r()); b.server.closeAllConnections(); })));
    cleanup();
  }
});
