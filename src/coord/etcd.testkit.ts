// Owns starting a real etcd for tests: 127.0.0.1, free ports, a temporary data dir, stopped and
// removed by the returned stop(). Used only by tests (coord/ and failover/).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../testing/helpers.js';

export const ETCD_BIN = '/usr/bin/etcd';

export interface TestEtcd {
  endpoint: string;
  /** Stops etcd (SIGKILL) but keeps its data, so start() can bring it back on the same port. */
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Stops etcd and removes its data dir. */
  stop(): Promise<void>;
}

export async function startEtcd(): Promise<TestEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-etcd-'));
  const client = await freePort();
  const peer = await freePort();
  const endpoint = `http://127.0.0.1:${client}`;
  let child: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    child = spawn(
      ETCD_BIN,
      [
        '--name', 'test', '--data-dir', join(dir, 'data'),
        '--listen-client-urls', endpoint, '--advertise-client-urls', endpoint,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `test=http://127.0.0.1:${peer}`, '--log-level', 'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`etcd exited (${child.exitCode}): ${log}`);
      try {
        const r = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(500) });
        if (r.ok) return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) throw new Error(`etcd did not become healthy within 15 s: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  await start();
  return {
    endpoint,
    kill,
    start,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
