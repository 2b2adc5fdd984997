// Tests the backup demo part: it starts a loopback vault, runs the plan once into two local
// disks and the vault, and the resulting config passes `bulwark audit` (3-2-1-1-0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createLogger } from '../../core/logger.js';
import { runCli, scratchDir } from '../../testing/helpers.js';
import { backupDemoPart } from './demo.js';

test('demo part: two local targets and a loopback vault (offsite, immutable); the audit passes', { timeout: 90_000 }, async () => {
  const { dir, cleanup } = scratchDir('bulwark-demo-backup-');
  const part = backupDemoPart();
  try {
    const section = await part.start({ dir, logger: createLogger({ level: 'fatal' }) });
    const cfg = join(dir, 'bulwark.yaml');
    writeFileSync(cfg, stringify({ state_dir: join(dir, 'var'), ...section }));
    for (const d of ['disk-a', 'disk-b', join('vault', 'demo')]) assert.equal(readdirSync(join(dir, 'backup', d, 'snapshots')).length, 1, d);
    const audit = await runCli(['audit', '-c', cfg, '--json']);
    assert.equal(audit.code, 0, audit.stdout + audit.stderr);
    const r = JSON.parse(audit.stdout) as { ok: boolean; plans: Array<{ copies: number; media: number; offsite: number; immutable: number; errors: number }> };
    assert.deepEqual(r.plans.map((p) => [p.copies, p.media, p.offsite, p.immutable, p.errors]), [[4, 3, 1, 1, 0]]);
    const validate = await runCli(['validate', '-c', cfg]);
    assert.equal(validate.code, 0, validate.stdout + validate.stderr);
  } finally {
    await part.stop();
    cleanup();
  }
});
