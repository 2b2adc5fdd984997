// Unit tests of the 3-2-1-1-0 evaluation: pure logic, fixed times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { auditInputs } from './inputs.js';
import { auditPlan, type AuditPlanInput, type AuditTargetInput } from './rules.js';

const NOW = Date.UTC(2026, 5, 1, 12);
const H = 3_600_000;
const fresh = { lastSuccess: NOW - H, lastRun: { ok: true, at: NOW - H }, lastCheck: { ok: true, at: NOW - 2 * H, errors: 0 } };

function plan(targets: AuditTargetInput[]): AuditPlanInput {
  return { plan: 'app', rpoMs: 24 * H, targets };
}
const compliant = (): AuditTargetInput[] => [
  { name: 'disk', media: 'hdd', offsite: false, immutable: false, ...fresh },
  { name: 'nas', media: 'nas', offsite: false, immutable: false, ...fresh },
  { name: 'vault', media: 'vault', offsite: true, immutable: true, ...fresh },
];
const failing = (r: ReturnType<typeof auditPlan>) => r.rules.filter((x) => !x.ok).map((x) => x.rule);

test('audit: a compliant plan passes every rule (4 copies, 3 media, 1 offsite, 1 immutable, 0 errors)', () => {
  const r = auditPlan(plan(compliant()), NOW);
  assert.equal(r.ok, true);
  assert.deepEqual([r.copies, r.media, r.offsite, r.immutable, r.errors], [4, 3, 1, 1, 0]);
  assert.ok(r.rules.every((x) => x.fix === ''));
});

test('audit: removing the offsite target fails 1-offsite (and 1-immutable) and says what to add', () => {
  const r = auditPlan(plan(compliant().filter((t) => t.name !== 'vault')), NOW);
  assert.equal(r.ok, false);
  assert.deepEqual(failing(r), ['offsite', 'immutable']);
  assert.match(r.rules.find((x) => x.rule === 'offsite')?.fix ?? '', /no target is offsite: add one/);
});

test('audit: every target on one medium fails 2-media, naming the medium', () => {
  const r = auditPlan(plan(compliant().map((t) => ({ ...t, media: 'hdd' }))), NOW);
  assert.deepEqual(failing(r), ['media']);
  assert.match(r.rules.find((x) => x.rule === 'media')?.fix ?? '', /every target is on the same medium \(hdd\)/);
});

test('audit: a last verification with errors fails 0-errors and stops counting that copy', () => {
  const t = compliant();
  t[1] = { ...(t[1] as AuditTargetInput), lastCheck: { ok: false, at: NOW - H, errors: 2, message: 'data/ab/ab12 is damaged' } };
  const r = auditPlan(plan(t), NOW);
  assert.deepEqual(failing(r), ['errors']);
  assert.equal(r.errors, 2);
  assert.equal(r.copies, 3);
  assert.match(r.rules.find((x) => x.rule === 'errors')?.fix ?? '', /nas: last verification found 2 error\(s\): data\/ab\/ab12 is damaged/);
});

test('audit: a snapshot older than the rpo is not a copy; a target with none is not either', () => {
  const t = compliant();
  t[0] = { ...(t[0] as AuditTargetInput), lastSuccess: NOW - 30 * H };
  t[1] = { name: 'nas', media: 'nas', offsite: false, immutable: false };
  const r = auditPlan(plan(t), NOW);
  assert.equal(r.copies, 2);
  assert.ok(failing(r).includes('copies'));
  assert.match(r.rules[0]?.fix ?? '', /disk \(newest verified snapshot is 30h old \(rpo 24h\)\)/);
  assert.match(r.rules[0]?.fix ?? '', /nas \(holds no verified snapshot yet\)/);
});

test('audit: a failed last run counts as an error even when an older snapshot is current', () => {
  const t = compliant();
  t[2] = { ...(t[2] as AuditTargetInput), lastRun: { ok: false, at: NOW, message: 'BULWARK_BACKEND_UNREACHABLE: vault down' } };
  const r = auditPlan(plan(t), NOW);
  assert.deepEqual(failing(r), ['errors']);
  assert.match(r.rules.find((x) => x.rule === 'errors')?.fix ?? '', /vault: last run failed: BULWARK_BACKEND_UNREACHABLE/);
});

test('audit: `immutable` on storage that cannot enforce a lock (local directory, SFTP) is not an immutable copy; on a vault or S3 it is', () => {
  // auditInputs reads the last runs from the state store; a stub answering "a fresh, verified, clean run" for every query stands in for SQLite here.
  const row = { finished_at: NOW - H, ok: 1, errors: 0, message: null };
  const store = { get: () => row } as unknown as Parameters<typeof auditInputs>[1];
  const target = (name: string, repo: string, media: string, offsite: boolean) => ({ name, repo, media, offsite, immutable: 86_400_000, retries: 5 });
  const config = (targets: unknown[]) => ({ backups: { app: { rpo: 24 * H, targets } } }) as unknown as Parameters<typeof auditInputs>[0];
  const local = auditInputs(config([target('disk', './r-disk', 'hdd', false), target('usb', '/mnt/usb/repo', 'usb', true), target('box', 'sftp://b@box:22/srv/r', 'nas', true)]), store)[0] as AuditPlanInput;
  const r = auditPlan(local, NOW);
  assert.equal(r.copies, 4);
  assert.equal(r.immutable, 0);
  assert.deepEqual(failing(r), ['immutable']);
  assert.match(r.rules.find((x) => x.rule === 'immutable')?.fix ?? '', /usb: a local directory cannot enforce a retention lock.*box: an SFTP server cannot enforce/);
  assert.ok(r.targets.every((t) => !t.immutable && t.notes.some((n) => /immutable is set but .*: not an immutable copy/.test(n))));
  const enforced = auditInputs(config([target('disk', './r-disk', 'hdd', false), target('vault', 'vault://box:8443/app', 'vault', true), target('bucket', 's3://bkt/app', 'object-storage', true)]), store)[0] as AuditPlanInput;
  const ok = auditPlan(enforced, NOW);
  assert.equal(ok.immutable, 2);
  assert.equal(ok.ok, true); // the local 'disk' target asks for a lock it cannot have (a note), the rule is met by the other two
  assert.ok(ok.targets.find((t) => t.name === 'disk')?.notes.some((n) => /a local directory cannot enforce/.test(n)));
});
