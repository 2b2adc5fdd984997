import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scratchDir } from '../testing/helpers.js';
import { MIGRATIONS } from './migrations.js';
import { SqliteStore } from './sqlite.js';

test('migrations apply once, in order, and survive reopening', () => {
  const { dir, cleanup } = scratchDir();
  try {
    const s1 = SqliteStore.open(dir);
    assert.deepEqual(s1.appliedMigrations(), MIGRATIONS.map((m) => m.id).sort((a, b) => a - b));
    s1.run('INSERT INTO events (at, kind, subject, message) VALUES (?, ?, ?, ?)', 1, 'k', 's', 'm');
    s1.close();
    const s2 = SqliteStore.open(dir);
    assert.equal(s2.get<{ n: number }>('SELECT count(*) AS n FROM events')?.n, 1);
    s2.close();
  } finally {
    cleanup();
  }
});

test('a new migration is applied to an existing store', () => {
  const { dir, cleanup } = scratchDir();
  try {
    SqliteStore.open(dir, MIGRATIONS).close();
    const s = SqliteStore.open(dir, [...MIGRATIONS, { id: 999, name: 'extra', sql: 'CREATE TABLE extra (x INTEGER)' }]);
    assert.ok(s.appliedMigrations().includes(999));
    s.run('INSERT INTO extra (x) VALUES (1)');
    s.close();
  } finally {
    cleanup();
  }
});

test('a store written by a newer version is refused with a clear error', () => {
  const { dir, cleanup } = scratchDir();
  try {
    SqliteStore.open(dir, [...MIGRATIONS, { id: 999, name: 'future', sql: 'SELECT 1' }]).close();
    assert.throws(() => SqliteStore.open(dir, MIGRATIONS), { code: 'BULWARK_STORE_NEWER_SCHEMA' });
  } finally {
    cleanup();
  }
});

test('a failing migration leaves nothing half-applied', () => {
  const { dir, cleanup } = scratchDir();
  try {
    const bad = { id: 998, name: 'bad', sql: 'CREATE TABLE half (x INTEGER); INSERT INTO nope VALUES (1);' };
    assert.throws(() => SqliteStore.open(dir, [...MIGRATIONS, bad]), { code: 'BULWARK_STORE_OPEN', message: /migration 998 \(bad\) failed/ });
    const s = SqliteStore.open(dir, MIGRATIONS);
    assert.equal(s.get("SELECT name FROM sqlite_master WHERE name = 'half'"), undefined);
    assert.ok(!s.appliedMigrations().includes(998));
    s.close();
  } finally {
    cleanup();
  }
});
