// The done-when tests of plans: one plan with a local target, an SFTP target (real sshd) and an S3
// target (s3rver) lands one snapshot in each, and each restores byte for byte on its own; sshd
// dying during a run fails only that target, and the next run completes it. Plus retention on an
// immutable target and the pure retention guard.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, lstatSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { configSchema, type BackupPlanConfig } from '../../core/config/schema.js';
import { scratchDir } from '../../testing/helpers.js';
import { openRepository, restore } from '../engine.js';
import { startS3rver, type S3Server } from '../backends/s3rver.testkit.js';
import { startSshd, type Sshd } from '../backends/sshd.testkit.js';
import { VaultBackend } from '../backends/vault.js';
import { VaultServer } from '../vault/server.js';
import { openTargetBackend } from './targets.js';
import { removableSnapshots, runPlan } from './run.js';

/** Every file under dir: relative path -> content (files), 'link:' + target (symlinks), 'dir' (dirs). */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const st = lstatSync(p);
      const rel = relative(dir, p);
      if (st.isSymbolicLink()) out[rel] = `link:${readlinkSync(p)}`;
      else if (st.isDirectory()) {
        out[rel] = 'dir';
        walk(p);
      } else out[rel] = readFileSync(p).toString('base64');
    }
  };
  walk(dir);
  return out;
}

function makeSource(dir: string): string {
  const src = join(dir, 'data');
  mkdirSync(join(src, 'sub', 'deeper'), { recursive: true });
  mkdirSync(join(src, 'empty'));
  writeFileSync(join(src, 'big.bin'), randomBytes(3 * 1024 * 1024 + 123));
  writeFileSync(join(src, 'sub', 'notes.txt'), 'hello plans\n'.repeat(5000));
  writeFileSync(join(src, 'sub', 'deeper', 'tiny'), 'x');
  writeFileSync(join(src, 'zero'), '');
  symlinkSync('sub/notes.txt', join(src, 'link'));
  return src;
}

describe('a plan with local, SFTP (real sshd) and S3 (s3rver) targets', () => {
  let sshd: Sshd;
  let s3: S3Server;
  let scratch: { dir: string; cleanup: () => void };
  let plan: BackupPlanConfig;
  let src: string;
  const retry = { baseDelayMs: 5, maxDelayMs: 20, attempts: 3 };

  before(async () => {
    [sshd, s3] = await Promise.all([startSshd(), startS3rver(['plan-bucket'])]);
    scratch = scratchDir('bulwark-plan-');
    src = makeSource(scratch.dir);
    writeFileSync(join(scratch.dir, 'pw'), 'correct horse battery staple\n');
    writeFileSync(join(scratch.dir, 'ak'), 'S3RVER');
    writeFileSync(join(scratch.dir, 'sk'), 'S3RVER');
    const cfg = configSchema.parse({
      backups: {
        app: {
          paths: ['./data'],
          password_file: 'pw',
          targets: [
            { name: 'disk', repo: './repo-local', media: 'hdd' },
            { name: 'nas', repo: `sftp://${sshd.user}@127.0.0.1:${sshd.port}${sshd.dataDir}/repo`, media: 'nas', key_file: sshd.clientKeyFile, host_key: sshd.hostKeySha256 },
            { name: 'cloud', repo: `s3://plan-bucket/app?endpoint=${s3.endpoint}`, media: 'object-storage', offsite: true, access_key_id_file: 'ak', secret_access_key_file: 'sk' },
          ],
        },
      },
    });
    plan = cfg.backups['app'] as BackupPlanConfig;
  });
  after(async () => {
    await sshd?.stop();
    await s3?.stop();
    scratch?.cleanup();
  });

  async function restoreFrom(target: string): Promise<Record<string, string>> {
    const t = plan.targets.find((x) => x.name === target);
    assert.ok(t);
    const backend = await openTargetBackend('app', t, scratch.dir);
    try {
      const repo = await openRepository(backend, 'correct horse battery staple');
      const out = join(scratch.dir, `restore-${target}-${randomBytes(3).toString('hex')}`);
      const r = await restore(repo, 'latest', { target: out, verify: true });
      assert.deepEqual(r.errors, []);
      return tree(join(out, 'data'));
    } finally {
      await backend.close();
    }
  }

  test('one run snapshots once and lands the snapshot in every target; each restores byte for byte alone', async () => {
    const r = await runPlan('app', plan, { baseDir: scratch.dir, retry });
    assert.deepEqual(r.targets.map((t) => [t.target, t.ok, t.error?.message]), [['disk', true, undefined], ['nas', true, undefined], ['cloud', true, undefined]]);
    assert.ok(r.targets.every((t) => t.initialized && t.snapshot && t.bytesStored > 0));
    // files were read once for all three targets
    assert.equal(r.summary?.bytesRead, 3 * 1024 * 1024 + 123 + 'hello plans\n'.length * 5000 + 1);
    const want = tree(src);
    for (const t of ['disk', 'nas', 'cloud']) assert.deepEqual(await restoreFrom(t), want, `restore from ${t}`);
  });

  test('sshd dying during a run fails only the SFTP target; the next run completes it', async () => {
    writeFileSync(join(src, 'new-file'), randomBytes(200_000));
    const r = await runPlan('app', plan, {
      baseDir: scratch.dir,
      retry,
      onOpened: async () => {
        await sshd.kill();
      },
    });
    const by = Object.fromEntries(r.targets.map((t) => [t.target, t]));
    assert.equal(r.ok, false);
    assert.equal(by['disk']?.ok, true);
    assert.equal(by['cloud']?.ok, true);
    assert.equal(by['nas']?.ok, false);
    assert.equal(by['nas']?.error?.code, 'BULWARK_BACKEND_UNREACHABLE');
    const want = tree(src);
    assert.deepEqual(await restoreFrom('disk'), want);
    assert.deepEqual(await restoreFrom('cloud'), want);

    await sshd.restart();
    const again = await runPlan('app', plan, { baseDir: scratch.dir, retry });
    assert.deepEqual(again.targets.map((t) => [t.target, t.ok, t.error?.message]), [['disk', true, undefined], ['nas', true, undefined], ['cloud', true, undefined]]);
    assert.deepEqual(await restoreFrom('nas'), want);
  });
});

test('retention: an immutable target keeps snapshots still under the lock; a mutable one forgets them', () => {
  const now = Date.UTC(2026, 5, 1);
  const day = 86_400_000;
  const decisions = [
    { id: 'old', time: new Date(now - 40 * day).toISOString(), keep: false },
    { id: 'recent', time: new Date(now - 5 * day).toISOString(), keep: false },
    { id: 'kept', time: new Date(now - 1 * day).toISOString(), keep: true },
  ];
  assert.deepEqual(removableSnapshots(decisions, 30 * day, now), { remove: ['old'], keptLocked: ['recent'] });
  assert.deepEqual(removableSnapshots(decisions, false, now), { remove: ['old', 'recent'], keptLocked: [] });
});

test('retention per target: a mutable target forgets and prunes; an immutable vault target keeps what is locked and refuses deletes anyway', { timeout: 60_000 }, async () => {
  const scratch = scratchDir('bulwark-plan-ret-');
  const token = 'client-token-0123456789abcdef';
  const server = new VaultServer({ root: join(scratch.dir, 'vault'), tokens: [{ name: 'c', token, role: 'client' }], appendOnly: true, retentionMs: 7 * 86_400_000 });
  try {
    const addr = await server.listen('127.0.0.1:0');
    makeSource(scratch.dir);
    writeFileSync(join(scratch.dir, 'pw'), 'pw');
    writeFileSync(join(scratch.dir, 'tok'), token);
    const cfg = configSchema.parse({
      backups: {
        app: {
          paths: ['./data'],
          password_file: 'pw',
          keep: { last: 1 },
          targets: [
            { name: 'disk', repo: './disk', media: 'hdd' },
            { name: 'vault', repo: `vault://${addr}/app`, media: 'vault', offsite: true, immutable: '7d', token_file: 'tok' },
          ],
        },
      },
    });
    const plan = cfg.backups['app'] as BackupPlanConfig;
    const first = await runPlan('app', plan, { baseDir: scratch.dir });
    assert.equal(first.ok, true, JSON.stringify(first.targets));
    writeFileSync(join(scratch.dir, 'data', 'changed'), randomBytes(10_000));
    const second = await runPlan('app', plan, { baseDir: scratch.dir });
    assert.equal(second.ok, true, JSON.stringify(second.targets));
    const by = Object.fromEntries(second.targets.map((t) => [t.target, t]));
    assert.deepEqual(by['disk']?.retention, { removed: [first.targets[0]?.snapshot], keptLocked: [], pruned: true });
    assert.deepEqual(by['vault']?.retention, { removed: [], keptLocked: [first.targets[1]?.snapshot], pruned: false });
    assert.equal(readdirSync(join(scratch.dir, 'disk', 'snapshots')).length, 1);
    assert.equal(readdirSync(join(scratch.dir, 'vault', 'app', 'snapshots')).length, 2);
    // and the vault itself would refuse: everything the plan wrote there carries the lock
    const c = new VaultBackend({ host: '127.0.0.1', port: Number(addr.split(':').pop()), name: 'app', token });
    await assert.rejects(c.remove({ type: 'snapshots', name: first.targets[1]?.snapshot as string }), { code: 'BULWARK_BACKEND_REFUSED' });
    await c.close();
  } finally {
    await server.close();
    scratch.cleanup();
  }
});

test('a target URL carrying credentials is refused, and the credentials appear nowhere in the run result', async () => {
  const scratch = scratchDir('bulwark-plan-creds-');
  try {
    mkdirSync(join(scratch.dir, 'data'));
    writeFileSync(join(scratch.dir, 'data', 'f'), 'x');
    writeFileSync(join(scratch.dir, 'pw'), 'pw');
    writeFileSync(join(scratch.dir, 'tok'), 'a-real-token-0123456789');
    const cfg = configSchema.parse({
      backups: {
        app: {
          paths: ['./data'],
          password_file: 'pw',
          targets: [
            { name: 'disk', repo: './r', media: 'hdd' },
            { name: 'vault', repo: 'vault://sekrit-vault-token-42@127.0.0.1:1/app', media: 'vault', token_file: 'tok' },
            { name: 'bucket', repo: 's3://AKIAEXAMPLEKEY:sekrit-s3-secret-42@plan-bucket/app?endpoint=http://127.0.0.1:1', media: 'object-storage' },
          ],
        },
      },
    });
    const r = await runPlan('app', cfg.backups['app'] as BackupPlanConfig, { baseDir: scratch.dir, retry: { attempts: 1 } });
    assert.deepEqual(r.targets.map((t) => [t.target, t.ok, t.error?.code]), [['disk', true, undefined], ['vault', false, 'BULWARK_BACKEND_URL'], ['bucket', false, 'BULWARK_BACKEND_URL']]);
    const text = JSON.stringify(r);
    assert.ok(!/sekrit/.test(text), `credentials leak into the run result: ${text}`);
  } finally {
    scratch.cleanup();
  }
});
