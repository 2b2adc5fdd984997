// Restore drills on real local repositories: a full drill restores and verifies every file and
// records its time and rate; a sample drill restores a deterministic subset; a flipped byte in a
// pack makes the drill fail naming the file; the sample selection is pure and stable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { systemClock } from '../../core/clock.js';
import { configSchema, type BackupPlanConfig } from '../../core/config/schema.js';
import { SqliteStore } from '../../store/sqlite.js';
import { scratchDir } from '../../testing/helpers.js';
import { inSample } from './drill.js';
import { drillPlan, runPlanRecorded } from './ops.js';
import { lastRun } from './records.js';

test('drills: full and sampled restores verified and recorded; a damaged pack fails the drill', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-drill-');
  const store = SqliteStore.open(':memory:');
  try {
    mkdirSync(join(dir, 'data'));
    for (let i = 0; i < 40; i++) writeFileSync(join(dir, 'data', `f${i}`), randomBytes(20_000 + i));
    writeFileSync(join(dir, 'pw'), 'pw');
    const cfg = configSchema.parse({ backups: { app: { paths: ['./data'], password_file: 'pw', targets: [{ name: 'disk', repo: './r', media: 'hdd' }] } } });
    const plan = cfg.backups['app'] as BackupPlanConfig;
    const ctx = { baseDir: dir, clock: systemClock, store };
    assert.equal((await runPlanRecorded('app', plan, ctx)).ok, true);

    const [full] = await drillPlan('app', plan, ctx, { scratchParent: dir });
    assert.equal(full?.ok, true);
    assert.equal(full?.result?.files, 40);
    assert.equal(full?.result?.verifiedFiles, 40);
    assert.equal(full?.result?.bytes, 40 * 20_000 + (39 * 40) / 2);
    assert.ok((full?.result?.bytesPerSec ?? 0) > 0);
    const rec = lastRun(store, 'app', 'disk', 'drill');
    assert.equal(rec?.ok, true);
    assert.equal(rec?.bytes, full?.result?.bytes);
    // the scratch copy is gone
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('bulwark-drill-')), []);

    const [sample] = await drillPlan('app', plan, ctx, { sample: 0.25, scratchParent: dir });
    assert.equal(sample?.ok, true);
    assert.equal(sample?.result?.sampled, true);
    const n = sample?.result?.files ?? 0;
    assert.ok(n >= 1 && n < 40, `sample restored ${n} files`);
    const [again] = await drillPlan('app', plan, ctx, { sample: 0.25, scratchParent: dir });
    assert.equal(again?.result?.files, n); // deterministic for a snapshot

    const dataDir = join(dir, 'r', 'data');
    for (const d of readdirSync(dataDir)) {
      for (const f of readdirSync(join(dataDir, d))) {
        const p = join(dataDir, d, f);
        const b = readFileSync(p);
        b[100] = (b[100] as number) ^ 0xff;
        writeFileSync(p, b);
      }
    }
    const [bad] = await drillPlan('app', plan, ctx, { scratchParent: dir });
    assert.equal(bad?.ok, false);
    assert.ok((bad?.result?.errors.length ?? 0) > 0 || bad?.error !== undefined);
    assert.equal(lastRun(store, 'app', 'disk', 'drill')?.ok, false);
  } finally {
    store.close();
    cleanup();
  }
});

test('drill sample: deterministic per snapshot and close to the share asked', () => {
  const paths = Array.from({ length: 10_000 }, (_, i) => `data/file-${i}`);
  const picked = paths.filter((p) => inSample('snap-a', p, 0.1));
  assert.ok(picked.length > 800 && picked.length < 1200, `${picked.length} of 10000`);
  assert.deepEqual(paths.filter((p) => inSample('snap-a', p, 0.1)), picked);
  assert.notDeepEqual(paths.filter((p) => inSample('snap-b', p, 0.1)), picked);
  assert.equal(paths.filter((p) => inSample('snap-a', p, 1)).length, 10_000);
});
