// The databases: section as `validate` sees it: cold standby needs restore_from naming a plan under
// backups:, a wal_archive outside every node's data_dir, and asynchronous mode; each mistake is
// named with its key path. Hot and warm are accepted with their defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../core/config/load.js';

const doc = (standby: string, extra = '', backups = true): string => `
databases:
  main:
    engine: postgres
    listen: 127.0.0.1:6432
    standby: ${standby}
${extra}
    nodes:
      - { name: pg-1, port: 5433, data_dir: /tmp/x/pg-1 }
      - { name: pg-2, port: 5434, data_dir: /tmp/x/pg-2 }
${backups ? `backups:
  pg:
    paths: [/tmp/x/nothing]
    targets:
      - { name: a, repo: /tmp/x/repo-a, media: hdd }
` : ''}`;

test('a complete cold standby validates, with its defaults', () => {
  const r = parseConfigText(doc('cold', '    restore_from: pg\n    wal_archive: /tmp/x/wal'), 'bulwark.yaml');
  assert.deepEqual(r.problems, []);
  const d = r.config?.databases['main'];
  assert.equal(d?.standby, 'cold');
  assert.equal(d?.restore_from, 'pg');
  assert.equal(d?.base_backup_interval, 24 * 3600_000);
  assert.equal(d?.archive_timeout, 60_000);
});

test('bad cold standby configs are rejected, naming the key and what to do', () => {
  const cases: Array<{ extra: string; backups?: boolean; path: string; msg: RegExp }> = [
    { extra: '    wal_archive: /tmp/x/wal', path: 'databases.main.standby', msg: /standby: cold needs restore_from: the name of a plan under backups:/ },
    { extra: '    restore_from: nosuch\n    wal_archive: /tmp/x/wal', path: 'databases.main.restore_from', msg: /no backup plan named 'nosuch' under backups: \(plans: pg\)/ },
    { extra: '    restore_from: pg\n    wal_archive: /tmp/x/wal', backups: false, path: 'databases.main.restore_from', msg: /no backup plan named 'pg' under backups: \(add one\)/ },
    { extra: '    restore_from: pg', path: 'databases.main.standby', msg: /standby: cold needs wal_archive/ },
    { extra: '    restore_from: pg\n    wal_archive: /tmp/x/pg-1/wal', path: 'databases.main.nodes[0].data_dir', msg: /must not be inside a node's data_dir/ },
    { extra: '    restore_from: pg\n    wal_archive: /tmp/x/wal\n    synchronous: true', path: 'databases.main.synchronous', msg: /a cold standby has none/ },
  ];
  for (const c of cases) {
    const r = parseConfigText(doc('cold', c.extra, c.backups ?? true), 'bulwark.yaml');
    assert.equal(r.problems.length, 1, `${c.extra}: ${JSON.stringify(r.problems)}`);
    assert.equal(r.problems[0]?.path, c.path);
    assert.match(r.problems[0]?.message ?? '', c.msg);
    assert.match(r.problems[0]?.message ?? '', /BULWARK_DB_COLD_CONFIG/);
    assert.ok((r.problems[0]?.line ?? 0) > 0);
  }
  const hot = parseConfigText(doc('hot', '    restore_from: pg'), 'bulwark.yaml');
  assert.equal(hot.problems[0]?.path, 'databases.main.restore_from');
  assert.match(hot.problems[0]?.message ?? '', /apply to standby: cold only/);
});

test('hot and warm standby validate, with safe defaults (asynchronous unless asked, block when no sync standby)', () => {
  for (const mode of ['hot', 'warm']) {
    const r = parseConfigText(doc(mode), 'bulwark.yaml');
    assert.deepEqual(r.problems, []);
    const d = r.config?.databases['main'];
    assert.equal(d?.standby, mode);
    assert.equal(d?.no_sync_standby, 'block');
    assert.equal(d?.max_lag_on_failover, 16 * 1024 * 1024);
  }
});
