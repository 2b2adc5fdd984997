// The databases: section as `validate` sees it: cold standby is rejected with a clear message
// until a backup-restore path exists; hot and warm are accepted with their defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../core/config/load.js';

const doc = (standby: string): string => `
databases:
  main:
    engine: postgres
    listen: 127.0.0.1:6432
    standby: ${standby}
    nodes:
      - { name: pg-1, port: 5433, data_dir: /tmp/x/pg-1 }
      - { name: pg-2, port: 5434, data_dir: /tmp/x/pg-2 }
`;

test('cold standby is rejected by validate, naming the key and saying it is not supported yet', () => {
  const r = parseConfigText(doc('cold'), 'bulwark.yaml');
  assert.equal(r.problems.length, 1);
  assert.equal(r.problems[0]?.path, 'databases.main.standby');
  assert.match(r.problems[0]?.message ?? '', /cold standby is not supported yet/);
  assert.ok((r.problems[0]?.line ?? 0) > 0);
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
