// Owns the embedded state store: one SQLite file in state_dir (WAL mode), migrations applied in
// order inside a transaction, and the small StateStore interface subsystems use.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { BulwarkError } from '../core/errors.js';
import type { StateStore } from '../core/subsystem.js';
import { MIGRATIONS, type Migration } from './migrations.js';

export class SqliteStore implements StateStore {
  readonly #db: Database.Database;
  readonly path: string;

  private constructor(db: Database.Database, path: string) {
    this.#db = db;
    this.path = path;
  }

  /** Opens (creating if needed) state.db in stateDir and applies pending migrations. ':memory:' for tests. */
  static open(stateDir: string | ':memory:', migrations: readonly Migration[] = MIGRATIONS): SqliteStore {
    let path = ':memory:';
    let db: Database.Database;
    try {
      if (stateDir !== ':memory:') {
        mkdirSync(stateDir, { recursive: true, mode: 0o700 });
        path = join(stateDir, 'state.db');
      }
      db = new Database(path);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('busy_timeout = 5000');
      db.pragma('foreign_keys = ON');
    } catch (err) {
      throw new BulwarkError('BULWARK_STORE_OPEN', `cannot open the state store at ${path}: ${(err as Error).message}`, {
        hint: 'check that state_dir exists, is writable, and is not on a full disk',
        cause: err,
      });
    }
    const store = new SqliteStore(db, path);
    store.#migrate(migrations);
    return store;
  }

  #migrate(migrations: readonly Migration[]): void {
    this.#db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    const applied = new Set(this.#db.prepare('SELECT id FROM schema_migrations').all().map((r) => (r as { id: number }).id));
    const known = new Set(migrations.map((m) => m.id));
    const unknown = [...applied].filter((id) => !known.has(id));
    if (unknown.length > 0) {
      throw new BulwarkError('BULWARK_STORE_NEWER_SCHEMA', `the state store ${this.path} has migrations this version does not know: ${unknown.join(', ')}`, {
        hint: 'run the newer Bulwark that wrote it, or point state_dir at a new directory',
      });
    }
    const pending = [...migrations].sort((a, b) => a.id - b.id).filter((m) => !applied.has(m.id));
    for (const m of pending) {
      try {
        this.#db.transaction(() => {
          this.#db.exec(m.sql);
          this.#db.prepare('INSERT INTO schema_migrations (id, name, applied_at) VALUES (?, ?, ?)').run(m.id, m.name, Date.now());
        })();
      } catch (err) {
        throw new BulwarkError('BULWARK_STORE_OPEN', `migration ${m.id} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  appliedMigrations(): number[] {
    return this.#db.prepare('SELECT id FROM schema_migrations ORDER BY id').all().map((r) => (r as { id: number }).id);
  }

  run(sql: string, ...params: unknown[]): { changes: number; lastInsertRowid: number | bigint } {
    return this.#db.prepare(sql).run(...params);
  }

  all<T = Record<string, unknown>>(sql: string, ...params: unknown[]): T[] {
    return this.#db.prepare(sql).all(...params) as T[];
  }

  get<T = Record<string, unknown>>(sql: string, ...params: unknown[]): T | undefined {
    return this.#db.prepare(sql).get(...params) as T | undefined;
  }

  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn)();
  }

  close(): void {
    this.#db.close();
  }
}
