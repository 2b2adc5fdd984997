// Read-data verification by rotation on a real repository with many packs: N verifications read
// every pack exactly once, and a damaged pack is reported by the verification whose slot holds it
// (and only that one), recorded in backup_runs; the damage is marked and the next plan run heals it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { configSchema, type BackupPlanConfig } from '../../core/config/schema.js';
import { SqliteStore } from '../../store/sqlite.js';
import { scratchDir } from '../../testing/helpers.js';
import { LocalBackend } from '../backends/local.js';
import { initRepository, openRepository, restore } from '../engine.js';
import { filePath } from '../backend.js';
import { BLOB_TREE } from '../format.js';
import { runPlanRecorded, verifyPlan } from './ops.js';
import { checkCount } from './records.js';
import { packSlot } from './verify.js';

test('verification rotation on a real repository: every pack once per cycle; damage found by its slot', { timeout: 90_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-verify-');
  const store = SqliteStore.open(':memory:');
  try {
    mkdirSync(join(dir, 'data'));
    for (let i = 0; i < 24; i++) writeFileSync(join(dir, 'data', `f${i}`), randomBytes(100_000));
    writeFileSync(join(dir, 'pw'), 'pw');
    const repo = await initRepository(new LocalBackend(join(dir, 'r')), 'pw', { packSize: 150_000 });
    const cfg = configSchema.parse({ backups: { app: { paths: ['./data'], password_file: 'pw', verify: { read_data_percent: '25%' }, targets: [{ name: 'disk', repo: './r', media: 'hdd' }] } } });
    const plan = cfg.backups['app'] as BackupPlanConfig;
    const ctx = { baseDir: dir, clock: systemClock, store };
    assert.equal((await runPlanRecorded('app', plan, ctx)).ok, true);
    const packs: string[] = [];
    for await (const f of repo.backend.list('data')) packs.push(f.name);
    assert.ok(packs.length >= 8, `${packs.length} packs`);

    let read = 0;
    for (let run = 0; run < 4; run++) {
      const [o] = await verifyPlan('app', plan, ctx);
      assert.equal(o?.ok, true, JSON.stringify(o?.error ?? o?.result?.errors));
      assert.equal(o?.result?.slot, run);
      assert.equal(o?.result?.slots, 4);
      read += o?.result?.packsRead ?? 0;
    }
    assert.equal(read, packs.length);
    assert.equal(checkCount(store, 'app', 'disk'), 4);

    // a pack of file data only: damage to a tree would (rightly) fail every structure check too
    const treePacks = new Set<string>();
    await repo.loadIndex();
    for (const name of repo.indexFiles) for (const pk of await repo.readIndexFile(name)) if (pk.entries.some((e) => e.type === BLOB_TREE)) treePacks.add(pk.id);
    const victim = packs.sort().find((x) => !treePacks.has(x)) as string;
    const p = join(dir, 'r', filePath({ type: 'data', name: victim }));
    const b = readFileSync(p);
    b[10] = (b[10] as number) ^ 0x01;
    writeFileSync(p, b);
    const slot = packSlot(victim, 4);
    let run = 4;
    for (; run % 4 !== slot; run++) {
      const [o] = await verifyPlan('app', plan, ctx);
      assert.equal(o?.ok, true, `run ${run} (slot ${run % 4}) must not read the damaged pack of slot ${slot}`);
    }
    const [hit] = await verifyPlan('app', plan, ctx);
    assert.equal(hit?.ok, false);
    assert.deepEqual(hit?.result?.damagedPacks, [victim]);
    // Regression (issue 14): later plan runs stored 0 B onto the damaged blob and reported ok.
    // The damage is now marked: until a plan run stores it again, verification says so...
    const [after] = await verifyPlan('app', plan, ctx);
    assert.equal(after?.ok, false);
    assert.ok(after?.result?.errors.some((e) => /missing .*known damaged/.test(e)), JSON.stringify(after?.result?.errors));
    // ...and the next plan run stores it again: the newest snapshot restores exactly, verification passes
    const healed = await runPlanRecorded('app', plan, ctx);
    assert.equal(healed.ok, true, JSON.stringify(healed.targets));
    assert.ok((healed.targets[0]?.bytesStored ?? 0) > 0, 'the damaged blob was stored again');
    const fresh = await openRepository(new LocalBackend(join(dir, 'r')), 'pw');
    const out = join(dir, 'out');
    assert.deepEqual((await restore(fresh, 'latest', { target: out, verify: true })).errors, []);
    for (let i = 0; i < 24; i++) assert.ok(readFileSync(join(out, 'data', `f${i}`)).equals(readFileSync(join(dir, 'data', `f${i}`))));
    for (let k = 0; k < 4; k++) {
      const [o] = await verifyPlan('app', plan, ctx);
      assert.equal(o?.ok, true, JSON.stringify(o?.result?.errors));
    }
  } finally {
    store.close();
    cleanup();
  }
});

// Regression (issue 14): a pack lost before a plan run was silently referenced again (0 B stored,
// "ok"); and a run whose snapshot references data that vanished during the run must not be "ok".
test('plan runs: a lost pack is stored again; a pack lost during the run makes it not ok, and the next run heals', { timeout: 90_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-verify-');
  const store = SqliteStore.open(':memory:');
  try {
    mkdirSync(join(dir, 'data'));
    for (let i = 0; i < 6; i++) writeFileSync(join(dir, 'data', `f${i}`), randomBytes(300_000));
    writeFileSync(join(dir, 'pw'), 'pw');
    await initRepository(new LocalBackend(join(dir, 'r')), 'pw', { packSize: 150_000 });
    const cfg = configSchema.parse({ backups: { app: { paths: ['./data'], password_file: 'pw', targets: [{ name: 'disk', repo: './r', media: 'hdd' }] } } });
    const plan = cfg.backups['app'] as BackupPlanConfig;
    const ctx = { baseDir: dir, clock: systemClock, store };
    assert.equal((await runPlanRecorded('app', plan, ctx)).ok, true);
    const dataPack = async (): Promise<string> => {
      const repo = await openRepository(new LocalBackend(join(dir, 'r')), 'pw');
      await repo.loadIndex({ verifyPacks: true });
      for (const name of repo.indexFiles) for (const pk of await repo.readIndexFile(name)) if (pk.entries.every((e) => e.type !== BLOB_TREE) && existsSync(join(dir, 'r', filePath({ type: 'data', name: pk.id })))) return pk.id;
      throw new Error('no data pack');
    };
    const restoresExactly = async (): Promise<void> => {
      const out = join(dir, `out-${randomBytes(4).toString('hex')}`);
      assert.deepEqual((await restore(await openRepository(new LocalBackend(join(dir, 'r')), 'pw'), 'latest', { target: out, verify: true })).errors, []);
      for (let i = 0; i < 6; i++) assert.ok(readFileSync(join(out, 'data', `f${i}`)).equals(readFileSync(join(dir, 'data', `f${i}`))));
    };
    rmSync(join(dir, 'r', filePath({ type: 'data', name: await dataPack() })));
    const again = await runPlanRecorded('app', plan, ctx);
    assert.equal(again.ok, true, JSON.stringify(again.targets));
    assert.ok((again.targets[0]?.bytesStored ?? 0) > 0, 'the lost blobs were stored again');
    await restoresExactly();

    const victim = join(dir, 'r', filePath({ type: 'data', name: await dataPack() }));
    const during = await runPlanRecorded('app', plan, ctx, { onOpened: () => rmSync(victim) });
    assert.equal(during.ok, false);
    assert.equal(during.targets[0]?.error?.code, 'BULWARK_REPO_CORRUPT');
    assert.match(during.targets[0]?.error?.message ?? '', /missing or known damaged/);
    const healed = await runPlanRecorded('app', plan, ctx);
    assert.equal(healed.ok, true, JSON.stringify(healed.targets));
    await restoresExactly();
  } finally {
    store.close();
    cleanup();
  }
});
