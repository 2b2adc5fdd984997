// Owns the ONE test suite every coordination backend must pass (run by local.test.ts and
// etcd.test.ts against their backend): one holder at a time, handover on release, renewal past
// the TTL, and (for backends that can become unreachable) prompt loss when they do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Coordination } from './lease.js';

export interface LeaseSuiteEnv {
  /** A coordination instance standing for one control-plane instance. */
  make(identity: string): Coordination;
  ttlMs: number;
  /** Makes the backend unreachable (e.g. kills etcd). Absent for backends that cannot be. */
  breakBackend?: () => Promise<void>;
  /** Undoes breakBackend. */
  repairBackend?: () => Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function leaseSuite(
  label: string,
  opts: { canBecomeUnreachable: boolean },
  setup: () => Promise<LeaseSuiteEnv & { teardown(): Promise<void> }>,
): void {
  const run = (name: string, fn: (env: LeaseSuiteEnv) => Promise<void>): void => {
    test(`${label}: ${name}`, async () => {
      const env = await setup();
      const made: Coordination[] = [];
      const tracked: LeaseSuiteEnv = { ...env, make: (id) => { const c = env.make(id); made.push(c); return c; } };
      try {
        await fn(tracked);
      } finally {
        for (const c of made) await c.close().catch(() => undefined);
        await env.teardown();
      }
    });
  };

  run('one instance holds a lease at a time', async (env) => {
    const a = env.make('instance-a').lease('db/main');
    const b = env.make('instance-b').lease('db/main');
    assert.equal(await a.acquire(), true);
    assert.equal(a.isHeld(), true);
    assert.equal(await b.acquire(), false);
    assert.equal(b.isHeld(), false);
    assert.equal(await b.holder(), 'instance-a');
    // different names are independent leases
    assert.equal(await env.make('instance-c').lease('db/other').acquire(), true);
  });

  run('release hands the lease over at once', async (env) => {
    const a = env.make('instance-a').lease('db/main');
    const b = env.make('instance-b').lease('db/main');
    assert.equal(await a.acquire(), true);
    await a.release();
    assert.equal(a.isHeld(), false);
    assert.equal(await b.acquire(), true);
    assert.equal(await a.acquire(), false);
    assert.equal(await a.holder(), 'instance-b');
  });

  run('a holder that keeps renewing keeps the lease past its TTL', async (env) => {
    const a = env.make('instance-a').lease('db/main');
    const b = env.make('instance-b').lease('db/main');
    assert.equal(await a.acquire(), true);
    await sleep(env.ttlMs * 2);
    assert.equal(a.isHeld(), true);
    assert.equal(await b.acquire(), false);
  });

  run('a holder that closes without releasing frees the lease (closed coordination releases)', async (env) => {
    const ca = env.make('instance-a');
    const a = ca.lease('db/main');
    const b = env.make('instance-b').lease('db/main');
    assert.equal(await a.acquire(), true);
    await ca.close();
    assert.equal(a.isHeld(), false);
    assert.equal(await b.acquire(), true);
  });

  run('an instance that waited longer than the TTL still takes the lease once it is free (regression: stale etcd lease reused)', async (env) => {
    const ca = env.make('instance-a');
    const a = ca.lease('db/main');
    const b = env.make('instance-b').lease('db/main');
    assert.equal(await a.acquire(), true);
    assert.equal(await b.acquire(), false);
    await sleep(env.ttlMs * 2);
    assert.equal(await b.acquire(), false);
    await a.release();
    assert.equal(await b.acquire(), true);
    assert.equal(b.isHeld(), true);
  });

  run('an abandoned lease is not given up: others wait for its expiry, the same identity adopts it at once (a restart)', async (env) => {
    const a1 = env.make('instance-a').lease('db/main');
    const b = env.make('instance-b').lease('db/main');
    assert.equal(await a1.acquire(), true);
    a1.abandon();
    assert.equal(a1.isHeld(), false);
    assert.equal(await b.acquire(), false, 'an abandoned lease must stay taken until it expires');
    const a2 = env.make('instance-a').lease('db/main');
    assert.equal(await a2.acquire(), true, 'the restarted instance adopts its own lease');
    await sleep(env.ttlMs * 1.5);
    assert.equal(a2.isHeld(), true, 'the adopted lease is renewed');
    assert.equal(await b.acquire(), false);
  });

  run('shared state: put, get, list by prefix, delete', async (env) => {
    const kv = env.make('instance-a').kv;
    const other = env.make('instance-b').kv;
    await kv.put('db/main/state', '{"primary":"pg-1"}');
    await kv.put('db/main/nodes/pg-1', '{"lsn":"0/1"}');
    await kv.put('db/other/state', '{}');
    assert.equal(await other.get('db/main/state'), '{"primary":"pg-1"}', 'another instance reads what one wrote');
    assert.deepEqual([...(await other.list('db/main/'))].sort(), [['db/main/nodes/pg-1', '{"lsn":"0/1"}'], ['db/main/state', '{"primary":"pg-1"}']]);
    await kv.delete('db/main/state');
    assert.equal(await other.get('db/main/state'), undefined);
    assert.equal(await other.get('never/written'), undefined);
  });

  run('a write guarded by a lease lands only while this instance holds it', async (env) => {
    const ca = env.make('instance-a');
    const cb = env.make('instance-b');
    const a = ca.lease('db/main');
    const b = cb.lease('db/main');
    assert.equal(await ca.kv.putIfHolder(a, 'db/main/state', 'from-a-unheld'), false, 'not held yet: must not write');
    assert.equal(await cb.kv.get('db/main/state'), undefined);
    assert.equal(await a.acquire(), true);
    assert.equal(await ca.kv.putIfHolder(a, 'db/main/state', 'from-a'), true);
    assert.equal(await cb.kv.putIfHolder(b, 'db/main/state', 'from-b'), false, 'b does not hold the lease');
    assert.equal(await cb.kv.get('db/main/state'), 'from-a');
    await a.release();
    assert.equal(await b.acquire(), true);
    assert.equal(await ca.kv.putIfHolder(a, 'db/main/state', 'stale-a'), false, 'a former holder must not overwrite the new holder');
    assert.equal(await cb.kv.putIfHolder(b, 'db/main/state', 'from-b'), true);
    assert.equal(await ca.kv.get('db/main/state'), 'from-b');
  });

  run('an instance\'s session keys vanish when it closes', async (env) => {
    const ca = env.make('instance-a');
    const cb = env.make('instance-b');
    await ca.kv.putEphemeral('members/a', '{"api":"x"}');
    await cb.kv.put('kept', '1');
    assert.equal(await cb.kv.get('members/a'), '{"api":"x"}');
    await ca.close();
    assert.equal(await cb.kv.get('members/a'), undefined, 'a closed instance still looks alive');
    assert.equal(await cb.kv.get('kept'), '1');
  });

  // Local leases live in this process: nothing can become unreachable. The loss path is covered
  // for every backend by renewing.test.ts with a fake clock.
  if (!opts.canBecomeUnreachable) return;
  run('an unreachable backend makes the holder stop acting within the TTL, and no one can take the lease meanwhile', async (env) => {
    assert.ok(env.breakBackend && env.repairBackend, 'the env must provide breakBackend and repairBackend');
    const a = env.make('instance-a').lease('db/main');
    const reasons: string[] = [];
    a.onLost((r) => reasons.push(r));
    assert.equal(await a.acquire(), true);
    await env.breakBackend();
    const b = env.make('instance-b').lease('db/main');
    await assert.rejects(b.acquire(), (e: Error & { code?: string }) => e.code === 'BULWARK_COORD_UNAVAILABLE');
    const deadline = Date.now() + env.ttlMs * 3;
    while (a.isHeld() && Date.now() < deadline) await sleep(50);
    assert.equal(a.isHeld(), false, 'the holder still trusts a lease it could not renew');
    assert.equal(reasons.length, 1);
    await env.repairBackend();
  });
}

