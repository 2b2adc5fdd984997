// The immutability wrapper passes the shared backend suite (over a real vault; with a zero lock so
// the suite may delete: enforcement of real locks is tested in run.test.ts and vault.test.ts), and
// asks for the lock on every file except lock files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FakeClock } from '../../core/clock.js';
import { scratchDir } from '../../testing/helpers.js';
import { backendSuite } from '../backend.suite.js';
import type { Backend, Handle, WriteOptions } from '../backend.js';
import { LocalBackend } from '../backends/local.js';
import { VaultBackend } from '../backends/vault.js';
import { VaultServer } from '../vault/server.js';
import { RetainBackend } from './retain.js';

backendSuite('retain(vault)', async () => {
  const { dir, cleanup } = scratchDir('bulwark-retain-');
  const token = 'client-token-0123456789abcdef';
  const server = new VaultServer({ root: dir, tokens: [{ name: 'c', token, role: 'client' }], appendOnly: false, retentionMs: 0, validateUploads: false });
  const port = Number((await server.listen('127.0.0.1:0')).split(':').pop());
  // lock 0 ms: the suite deletes what it wrote; the lock itself is checked below
  const backend = new RetainBackend(new VaultBackend({ host: '127.0.0.1', port, name: 'r', token }), 0, new FakeClock(0));
  return { backend, cleanup: async () => { await server.close(); cleanup(); } };
});

test('retain: every write but lock files asks for now + lock', async () => {
  const { dir, cleanup } = scratchDir('bulwark-retain-');
  try {
    const seen: Array<[string, number | undefined]> = [];
    const local = new LocalBackend(join(dir, 'r'));
    const spy: Backend = {
      location: local.location,
      create: () => local.create(),
      stat: (h) => local.stat(h),
      list: (t) => local.list(t),
      read: (h, o, l) => local.read(h, o, l),
      write: (h: Handle, d: Buffer, o?: WriteOptions) => {
        seen.push([h.type, o?.retainUntil]);
        return local.write(h, d);
      },
      remove: (h) => local.remove(h),
      close: () => local.close(),
    };
    const clock = new FakeClock(1_000_000);
    const b = new RetainBackend(spy, 86_400_000, clock);
    await b.create();
    await b.write({ type: 'data', name: 'ab'.repeat(32) }, Buffer.from('x'));
    await b.write({ type: 'locks', name: 'l1' }, Buffer.from('x'));
    await b.write({ type: 'snapshots', name: 's1' }, Buffer.from('x'), { retainUntil: 1_000_000 + 2 * 86_400_000 });
    assert.deepEqual(seen, [['data', 1_000_000 + 86_400_000], ['locks', undefined], ['snapshots', 1_000_000 + 2 * 86_400_000]]);
  } finally {
    cleanup();
  }
});
