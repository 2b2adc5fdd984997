// Tests the S3 Backend against s3rver on loopback: the shared suite, the Object Lock headers sent
// for immutable writes (s3rver itself ignores Object Lock: real immutability is tested against
// the vault), and clear errors for a missing bucket, bad keys and an unreachable endpoint.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { freePort } from '../../testing/helpers.js';
import { backendSuite } from '../backend.suite.js';
import { S3Backend } from './s3.js';
import { startS3rver, type S3Server } from './s3rver.testkit.js';

describe('s3 against s3rver', () => {
  let s3: S3Server;
  before(async () => {
    s3 = await startS3rver(['bulwark-test']);
  });
  after(async () => {
    await s3?.stop();
  });
  const make = (prefix: string, extra: Partial<ConstructorParameters<typeof S3Backend>[0]> = {}): S3Backend =>
    new S3Backend({ bucket: 'bulwark-test', prefix, endpoint: s3.endpoint, credentials: s3.credentials, ...extra });

  backendSuite('s3', async () => ({ backend: make(`suite-${randomBytes(4).toString('hex')}/repo`), cleanup: async () => {} }));

  test('an immutable write sends Object Lock retention (COMPLIANCE, retain-until) and a Content-MD5', async () => {
    const b = make('locked');
    const seen: Array<Record<string, string>> = [];
    b.client.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { method?: string; headers?: Record<string, string> };
        if (req.method === 'PUT') seen.push({ ...req.headers });
        return next(args);
      },
      { step: 'finalizeRequest', name: 'captureHeaders' },
    );
    const until = Date.UTC(2031, 0, 2, 3, 4, 5);
    await b.write({ type: 'snapshots', name: 'ab'.repeat(32) }, Buffer.from('snap'), { retainUntil: until });
    assert.equal(seen.length, 1);
    const h = seen[0] as Record<string, string>;
    assert.equal(h['x-amz-object-lock-mode'], 'COMPLIANCE');
    assert.equal(new Date(h['x-amz-object-lock-retain-until-date'] as string).getTime(), until);
    assert.match(h['content-md5'] ?? '', /^[A-Za-z0-9+/]{22}==$/);
    assert.equal(h['if-none-match'], '*');
    await b.close();
  });

  test('a write without retainUntil sends no Object Lock headers', async () => {
    const b = make('unlocked');
    const seen: Array<Record<string, string>> = [];
    b.client.middlewareStack.add(
      (next) => async (args) => {
        const req = args.request as { method?: string; headers?: Record<string, string> };
        if (req.method === 'PUT') seen.push({ ...req.headers });
        return next(args);
      },
      { step: 'finalizeRequest', name: 'captureHeaders' },
    );
    await b.write({ type: 'keys', name: 'k1' }, Buffer.from('k'));
    assert.equal(seen[0]?.['x-amz-object-lock-mode'], undefined);
    await b.close();
  });

  test('a missing bucket is BULWARK_BACKEND_NOT_FOUND naming the bucket, with a hint to create it', async () => {
    const b = new S3Backend({ bucket: 'no-such-bucket', prefix: 'x', endpoint: s3.endpoint, credentials: s3.credentials });
    await assert.rejects(b.create(), (e: Error & { code?: string; hint?: string }) => e.code === 'BULWARK_BACKEND_NOT_FOUND' && /no-such-bucket' does not exist/.test(e.message) && /create the bucket/.test(e.hint ?? ''));
    await assert.rejects(b.write({ type: 'keys', name: 'k' }, Buffer.from('x')), (e: Error & { code?: string }) => e.code === 'BULWARK_BACKEND_NOT_FOUND' && /does not exist/.test(e.message));
    await b.close();
  });

  test('bad credentials are BULWARK_BACKEND_AUTH', async () => {
    const b = make('auth', { credentials: { accessKeyId: 'WRONG', secretAccessKey: 'WRONG' } });
    await assert.rejects(b.create(), { code: 'BULWARK_BACKEND_AUTH' });
    await assert.rejects(b.write({ type: 'keys', name: 'k' }, Buffer.from('x')), { code: 'BULWARK_BACKEND_AUTH' });
    await b.close();
  });
});

test('s3: an endpoint with nothing listening is BULWARK_BACKEND_UNREACHABLE', async () => {
  const port = await freePort();
  const b = new S3Backend({ bucket: 'bulwark-test', prefix: 'x', endpoint: `http://127.0.0.1:${port}`, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  await assert.rejects(b.create(), { code: 'BULWARK_BACKEND_UNREACHABLE' });
  await b.close();
});
