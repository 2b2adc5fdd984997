// Owns starting a real etcd cluster of several members for tests: every member on 127.0.0.1 with
// free ports and its own temporary data dir, all stopped and removed by stop(). Used only by tests
// (the audit counts etcd's members; a single member is startEtcd in etcd.testkit.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../testing/helpers.js';
import { ETCD_BIN } from './etcd.testkit.js';

export interface TestEtcdCluster {
  endpoints: string[];
  stop(): Promise<void>;
}

export async function startEtcdCluster(size: number): Promise<TestEtcdCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'bulwark-etcd-cluster-'));
  // six ports bound and released one after the other can repeat: make them distinct
  const ports = new Set<number>();
  while (ports.size < size * 2) ports.add(await freePort());
  const list = [...ports];
  const members = [];
  for (let i = 0; i < size; i++) members.push({ name: `m${i}`, client: `http://127.0.0.1:${list[2 * i] ?? 0}`, peer: `http://127.0.0.1:${list[2 * i + 1] ?? 0}` });
  const initial = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const children: ChildProcess[] = [];
  const logs: string[] = [];
  const stop = async (): Promise<void> => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGKILL');
          }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  for (const [i, m] of members.entries()) {
    const c = spawn(
      ETCD_BIN,
      [
        '--name', m.name, '--data-dir', join(dir, m.name),
        '--listen-client-urls', m.client, '--advertise-client-urls', m.client,
        '--listen-peer-urls', m.peer, '--initial-advertise-peer-urls', m.peer,
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', `bulwark-test-${process.pid}`, '--log-level', 'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    logs[i] = '';
    c.stderr?.on('data', (d: Buffer) => (logs[i] = ((logs[i] ?? '') + d.toString()).slice(-2000)));
    children.push(c);
  }
  const deadline = Date.now() + 40_000;
  for (const m of members) {
    for (;;) {
      try {
        const r = await fetch(`${m.client}/health`, { signal: AbortSignal.timeout(500) });
        if (r.ok) break;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`etcd cluster did not become healthy within 40 s: ${logs.join(' | ')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { endpoints: members.map((m) => m.client), stop };
}
