// Tests the retry and rate-limit wrappers: both pass the shared backend suite around a real local
// disk; retry semantics with a FakeClock and injected transient faults (a wrapper that fails the
// first calls, since a real network fault cannot be timed to a given call); the token bucket with
// a FakeClock; and retry riding out a real vault restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { FakeClock } from '../../core/clock.js';
import { BulwarkError } from '../../core/errors.js';
import { scratchDir } from '../../testing/helpers.js';
import { backendSuite } from '../backend.suite.js';
import type { Backend, FileInfo, FileType, Handle, WriteOptions } from '../backend.js';
import { VaultServer } from '../vault/server.js';
import { LocalBackend } from './local.js';
import { RateLimitBackend, TokenBucket } from './ratelimit.js';
import { RetryBackend, backoffDelay } from './retry.js';
import { VaultBackend } from './vault.js';

/** Fails the first `failures` calls of each operation with the given code, then passes through. */
class Flaky implements Backend {
  readonly location: string;
  calls = 0;
  constructor(
    readonly inner: Backend,
    public failures: number,
    readonly code: 'BULWARK_BACKEND_UNREACHABLE' | 'BULWARK_BACKEND_AUTH' = 'BULWARK_BACKEND_UNREACHABLE',
    /** Let the write land, then report failure (a lost answer). */
    readonly landThenFail = false,
  ) {
    this.location = inner.location;
  }
  async #gate(): Promise<void> {
    this.calls++;
    if (this.failures > 0) {
      this.failures--;
      throw new BulwarkError(this.code, 'injected fault');
    }
  }
  async create(): Promise<void> {
    return this.inner.create();
  }
  async stat(h: Handle): Promise<FileInfo> {
    await this.#gate();
    return this.inner.stat(h);
  }
  async *list(type: FileType): AsyncIterable<FileInfo> {
    await this.#gate();
    yield* this.inner.list(type);
  }
  async read(h: Handle, o?: number, l?: number): Promise<Buffer> {
    await this.#gate();
    return this.inner.read(h, o, l);
  }
  async write(h: Handle, d: Buffer, opts?: WriteOptions): Promise<void> {
    if (this.landThenFail && this.failures > 0) {
      await this.inner.write(h, d, opts);
    }
    await this.#gate();
    return this.inner.write(h, d, opts);
  }
  async remove(h: Handle): Promise<void> {
    await this.#gate();
    return this.inner.remove(h);
  }
  async close(): Promise<void> {
    return this.inner.close();
  }
}

backendSuite('retry(local, flaky)', async () => {
  const { dir, cleanup } = scratchDir('bulwark-retry-');
  // the first attempt of every stat, read and write of each file fails (unreachable or I/O)
  const local = new LocalBackend(join(dir, 'repo'));
  const seen = new Set<string>();
  const first = (op: string, h: Handle): boolean => {
    const k = `${op} ${h.type}/${h.name}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  };
  const flaky: Backend = {
    location: local.location,
    create: () => local.create(),
    stat: (h) => (first('stat', h) ? Promise.reject(new BulwarkError('BULWARK_BACKEND_UNREACHABLE', 'injected')) : local.stat(h)),
    list: (t) => local.list(t),
    read: (h, o, l) => (first(`read ${o}-${l}`, h) ? Promise.reject(new BulwarkError('BULWARK_BACKEND_IO', 'injected')) : local.read(h, o, l)),
    write: (h, d) => (first(`write ${d.length}`, h) ? Promise.reject(new BulwarkError('BULWARK_BACKEND_UNREACHABLE', 'injected')) : local.write(h, d)),
    remove: (h) => local.remove(h),
    close: () => local.close(),
  };
  return { backend: new RetryBackend(flaky, { baseDelayMs: 1, maxDelayMs: 2 }), cleanup: async () => cleanup() };
});

backendSuite('ratelimit(local)', async () => {
  const { dir, cleanup } = scratchDir('bulwark-rl-');
  return { backend: new RateLimitBackend(new LocalBackend(join(dir, 'repo')), { uploadBps: 1e9, downloadBps: 1e9 }), cleanup: async () => cleanup() };
});

test('retry: transient failures are retried with growing delays on the clock, then succeed', async () => {
  const { dir, cleanup } = scratchDir('bulwark-retry-');
  try {
    const clock = new FakeClock();
    const local = new LocalBackend(dir);
    await local.create();
    await local.write({ type: 'keys', name: 'k' }, Buffer.from('key'));
    const flaky = new Flaky(local, 3);
    const delays: number[] = [];
    const b = new RetryBackend(flaky, { clock, baseDelayMs: 100, maxDelayMs: 1000, random: () => 0.999, onRetry: (i) => delays.push(i.delayMs) });
    let done: Buffer | undefined;
    const p = b.read({ type: 'keys', name: 'k' }).then((v) => (done = v));
    for (let i = 0; i < 50 && done === undefined; i++) {
      await new Promise((r) => setImmediate(r));
      clock.advance(1000);
    }
    await p;
    assert.equal(done?.toString(), 'key');
    assert.equal(flaky.calls, 4);
    assert.deepEqual(delays, [100, 200, 400]);
  } finally {
    cleanup();
  }
});

test('retry: gives up after the configured attempts with the last error', async () => {
  const { dir, cleanup } = scratchDir('bulwark-retry-');
  try {
    const flaky = new Flaky(new LocalBackend(dir), 100);
    const b = new RetryBackend(flaky, { attempts: 3, baseDelayMs: 1, maxDelayMs: 1 });
    await assert.rejects(b.stat({ type: 'keys', name: 'k' }), { code: 'BULWARK_BACKEND_UNREACHABLE' });
    assert.equal(flaky.calls, 3);
  } finally {
    cleanup();
  }
});

test('retry: bad credentials, missing files and refusals are not retried', async () => {
  const { dir, cleanup } = scratchDir('bulwark-retry-');
  try {
    const auth = new Flaky(new LocalBackend(dir), 100, 'BULWARK_BACKEND_AUTH');
    await assert.rejects(new RetryBackend(auth, { baseDelayMs: 1 }).stat({ type: 'keys', name: 'k' }), { code: 'BULWARK_BACKEND_AUTH' });
    assert.equal(auth.calls, 1);
    const missing = new Flaky(new LocalBackend(dir), 0);
    await assert.rejects(new RetryBackend(missing, { baseDelayMs: 1 }).stat({ type: 'keys', name: 'nope' }), { code: 'BULWARK_BACKEND_NOT_FOUND' });
    assert.equal(missing.calls, 1);
  } finally {
    cleanup();
  }
});

test('retry: a write whose answer was lost but which landed counts as done (same bytes)', async () => {
  const { dir, cleanup } = scratchDir('bulwark-retry-');
  try {
    const local = new LocalBackend(dir);
    await local.create();
    const flaky = new Flaky(local, 1, 'BULWARK_BACKEND_UNREACHABLE', true);
    const b = new RetryBackend(flaky, { baseDelayMs: 1 });
    const name = randomBytes(32).toString('hex');
    await b.write({ type: 'data', name }, Buffer.from('payload'));
    assert.equal((await local.read({ type: 'data', name })).toString(), 'payload');
    // but a different file under the same name is still refused
    await assert.rejects(b.write({ type: 'data', name }, Buffer.from('other')), { code: 'BULWARK_BACKEND_EXISTS' });
  } finally {
    cleanup();
  }
});

test('retry: backoff doubles from the base, is capped, and is jittered within [ceiling/2, ceiling]', () => {
  assert.equal(backoffDelay(1, 100, 1000, () => 0), 50);
  assert.equal(backoffDelay(1, 100, 1000, () => 0.999999), 100);
  assert.equal(backoffDelay(3, 100, 1000, () => 0.999999), 400);
  assert.equal(backoffDelay(10, 100, 1000, () => 0.999999), 1000);
});

test('retry: rides out a real vault restart on the same port', async () => {
  const { dir, cleanup } = scratchDir('bulwark-retry-vault-');
  const tokens = [{ name: 'admin', token: 'admin-token-0123456789abcdef', role: 'admin' as const }];
  let server = new VaultServer({ root: dir, tokens, appendOnly: true, retentionMs: 0, validateUploads: false });
  const addr = await server.listen('127.0.0.1:0');
  const port = Number(addr.split(':').pop());
  const client = new VaultBackend({ host: '127.0.0.1', port, name: 'r', token: tokens[0]!.token, timeoutMs: 2000 });
  const b = new RetryBackend(client, { attempts: 20, baseDelayMs: 20, maxDelayMs: 100 });
  try {
    await b.create();
    await server.close();
    const pending = b.write({ type: 'keys', name: 'k' }, Buffer.from('after restart'));
    await new Promise((r) => setTimeout(r, 150));
    server = new VaultServer({ root: dir, tokens, appendOnly: true, retentionMs: 0, validateUploads: false });
    await server.listen(`127.0.0.1:${port}`);
    await pending;
    assert.equal((await b.read({ type: 'keys', name: 'k' })).toString(), 'after restart');
  } finally {
    await b.close();
    await server.close();
    cleanup();
  }
});

test('ratelimit: the token bucket lets a burst through, then makes callers wait for the debt', () => {
  const clock = new FakeClock();
  const bucket = new TokenBucket(1000, clock); // 1000 B/s, burst 1000
  assert.equal(bucket.reserve(1000), 0);
  assert.equal(bucket.reserve(500), 500);
  clock.advance(500);
  assert.equal(bucket.reserve(0), 0);
  assert.equal(bucket.reserve(2000), 2000);
  clock.advance(10_000);
  assert.equal(bucket.reserve(1000), 0); // refills to burst, never beyond
  assert.equal(bucket.reserve(1), 1);
});

test('ratelimit: a write waits on the clock until the upload budget allows it', async () => {
  const { dir, cleanup } = scratchDir('bulwark-rl-');
  try {
    const clock = new FakeClock();
    const local = new LocalBackend(dir);
    await local.create();
    const b = new RateLimitBackend(local, { uploadBps: 1000, clock });
    await b.write({ type: 'keys', name: 'a' }, Buffer.alloc(1000)); // the burst
    let done = false;
    const p = b.write({ type: 'keys', name: 'b' }, Buffer.alloc(2000)).then(() => (done = true));
    await new Promise((r) => setImmediate(r));
    clock.advance(1999);
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false);
    await assert.rejects(local.stat({ type: 'keys', name: 'b' }), { code: 'BULWARK_BACKEND_NOT_FOUND' });
    clock.advance(1);
    await p;
    assert.equal((await local.stat({ type: 'keys', name: 'b' })).size, 2000);
  } finally {
    cleanup();
  }
});
