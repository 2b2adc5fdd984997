// End-to-end zone preference through the real proxy: an instance in zone a sends active-active
// traffic to the real backends of zone a while one is up, and to zone b when zone a's backends
// are killed (SIGKILL, found by the health checks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../app/daemon.js';
import { configSchema } from '../core/config/schema.js';
import { silentLogger } from '../core/logger.js';
import { createHealth } from '../health/index.js';
import { createProxy } from '../proxy/index.js';
import { waitFor } from '../testing/helpers.js';
import { get, killHard, spawnBackend } from './proxy-kit.js';

for (const workers of [1, 2]) test(`proxy zones (workers: ${workers}): traffic stays in the instance's zone while it has a healthy backend, and leaves it when they die`, async (t) => {
  const [a1, a2, b1] = await Promise.all([spawnBackend('a1'), spawnBackend('a2'), spawnBackend('b1')]);
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-zone-'));
  const config = configSchema.parse({
    state_dir: join(dir, 'var'),
    proxy: { workers },
    services: {
      web: {
        listen: '127.0.0.1:0',
        mode: 'active-active',
        balance: 'round-robin',
        backends: [
          { name: 'a1', address: a1.address, zone: 'a' },
          { name: 'b1', address: b1.address, zone: 'b' },
          { name: 'a2', address: a2.address, zone: 'a' },
        ],
        health: { http: { path: '/health' }, interval: '100ms', timeout: '200ms', rise: 1, fall: 1 },
      },
    },
  });
  const daemon = new Daemon({ config, file: join(dir, 'bulwark.yaml'), baseDir: dir, instance: { name: 'bw-a', api: '127.0.0.1:1', zone: 'a' } }, { logger: silentLogger(), factories: [createHealth, createProxy] });
  await daemon.start();
  const agent = new Agent({ keepAlive: true });
  t.after(async () => {
    agent.destroy();
    await daemon.stop();
    for (const b of [a1, a2, b1]) await killHard(b);
    rmSync(dir, { recursive: true, force: true });
  });
  const address = (daemon.status().subsystems['proxy'] as { listeners: Record<string, string> }).listeners['web'] as string;
  const spread = async (n: number): Promise<string[]> => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const r = await get(address, '/', agent);
      seen.add(r.ok ? r.backend : `error ${r.status}`);
    }
    return [...seen].sort();
  };
  await waitFor(async () => (await spread(6)).join() === 'a1,a2', { timeoutMs: 10_000, what: 'zone a serving' });
  assert.deepEqual(await spread(30), ['a1', 'a2'], 'no request crosses to zone b while zone a is healthy');
  await killHard(a1);
  await killHard(a2);
  await waitFor(async () => (await spread(6)).join() === 'b1', { timeoutMs: 10_000, what: 'zone b takes over' });
  assert.deepEqual(await spread(20), ['b1']);
});
