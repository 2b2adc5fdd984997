// Timing rules of the shared renew loop, with a fake clock: renewal keeps a lease, a hanging or
// failing backend makes the holder stop acting before the TTL runs out, and a backend that says
// "expired" ends it at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeClock } from '../core/clock.js';
import { leaseMargin, renewEvery, trustedUntil } from './lease.js';
import { RenewingLease, type LeaseOps } from './renewing.js';

const flush = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

function opsWith(renew: () => Promise<boolean>): LeaseOps & { renews: number } {
  const o = {
    renews: 0,
    take: () => Promise.resolve(true),
    renew: () => {
      o.renews++;
      return renew();
    },
    release: () => Promise.resolve(),
    holder: () => Promise.resolve('me'),
  };
  return o;
}

test('trusted window ends a margin before the TTL counted from the renewal send time', () => {
  assert.equal(trustedUntil(1000, 5000), 1000 + 5000 - 1000);
  assert.equal(leaseMargin(500), 100);
  assert.equal(renewEvery(900), 300, 'three times per TTL');
  assert.equal(renewEvery(3000), 500, 'at least every 500 ms, to ride out an etcd election');
});

test('a lease renewed on time stays held across many TTLs', async () => {
  const clock = new FakeClock();
  const ops = opsWith(() => Promise.resolve(true));
  const l = new RenewingLease({ name: 'x', identity: 'me', ops, clock, ttlMs: 3000 });
  assert.equal(await l.acquire(), true);
  for (let i = 0; i < 30; i++) {
    clock.advance(500);
    await flush();
  }
  assert.equal(l.isHeld(), true);
  assert.ok(ops.renews >= 14);
  await l.close();
});

test('renewals that never answer (etcd unreachable) end the lease before the TTL, and onLost fires once', async () => {
  const clock = new FakeClock();
  const ops = opsWith(() => new Promise<boolean>(() => undefined));
  const l = new RenewingLease({ name: 'x', identity: 'me', ops, clock, ttlMs: 3000 });
  const lost: string[] = [];
  l.onLost((r) => lost.push(r));
  assert.equal(await l.acquire(), true);
  clock.advance(3000 - leaseMargin(3000) - 1);
  await flush();
  assert.equal(l.isHeld(), true);
  clock.advance(1);
  await flush();
  assert.equal(lost.length, 1, 'the expiry timer fires without anyone asking isHeld()');
  assert.equal(l.isHeld(), false);
});

test('renewals that fail with errors end the lease at the same point', async () => {
  const clock = new FakeClock();
  const ops = opsWith(() => Promise.reject(new Error('connection refused')));
  const l = new RenewingLease({ name: 'x', identity: 'me', ops, clock, ttlMs: 3000 });
  assert.equal(await l.acquire(), true);
  const until = 3000 - leaseMargin(3000);
  for (let t = 100; t < until; t += 100) {
    clock.advance(100);
    await flush();
  }
  assert.equal(l.isHeld(), true);
  clock.advance(100);
  await flush();
  assert.equal(l.isHeld(), false);
});

test('a backend that answers "expired" ends the lease at once', async () => {
  const clock = new FakeClock();
  const ops = opsWith(() => Promise.resolve(false));
  const l = new RenewingLease({ name: 'x', identity: 'me', ops, clock, ttlMs: 3000 });
  assert.equal(await l.acquire(), true);
  clock.advance(renewEvery(3000));
  await flush();
  assert.equal(l.isHeld(), false);
});
