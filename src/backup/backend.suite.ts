// Owns the shared Backend test suite: every Backend implementation (local, SFTP, S3, vault, and
// wrappers such as retry) runs these same tests against a real instance. Import it from a
// *.test.ts file: backendSuite('local', async () => ({ backend, cleanup })).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Backend, FileType } from './backend.js';

export interface SuiteSetup {
  backend: Backend;
  cleanup(): Promise<void>;
}

async function names(b: Backend, type: FileType): Promise<string[]> {
  const out: string[] = [];
  for await (const f of b.list(type)) out.push(f.name);
  return out.sort();
}

function hexName(): string {
  return randomBytes(32).toString('hex');
}

export function backendSuite(label: string, setup: () => Promise<SuiteSetup>): void {
  describe(`Backend suite: ${label}`, () => {
    let s: SuiteSetup;
    let b: Backend;

    before(async () => {
      s = await setup();
      b = s.backend;
      await b.create();
      await b.create(); // idempotent
    });
    after(async () => {
      await b?.close();
      await s?.cleanup();
    });

    test('a new location lists no files of any type', async () => {
      for (const t of ['keys', 'data', 'index', 'snapshots', 'locks'] as const) assert.deepEqual(await names(b, t), []);
    });

    test('write then stat and read return exactly what was written', async () => {
      const name = hexName();
      const data = randomBytes(4099);
      await b.write({ type: 'data', name }, data);
      assert.equal((await b.stat({ type: 'data', name })).size, data.length);
      assert.ok((await b.read({ type: 'data', name })).equals(data));
    });

    test('ranged reads return the requested slice', async () => {
      const name = hexName();
      const data = randomBytes(10_000);
      await b.write({ type: 'data', name }, data);
      assert.ok((await b.read({ type: 'data', name }, 0, 10)).equals(data.subarray(0, 10)));
      assert.ok((await b.read({ type: 'data', name }, 1234, 4321)).equals(data.subarray(1234, 1234 + 4321)));
      assert.ok((await b.read({ type: 'data', name }, 9990, 10)).equals(data.subarray(9990)));
      assert.ok((await b.read({ type: 'data', name }, 5000)).equals(data.subarray(5000)));
    });

    test('an empty file round-trips', async () => {
      const name = hexName();
      await b.write({ type: 'index', name }, Buffer.alloc(0));
      assert.equal((await b.stat({ type: 'index', name })).size, 0);
      assert.equal((await b.read({ type: 'index', name })).length, 0);
    });

    test('a large file (9 MiB) round-trips', async () => {
      const name = hexName();
      const data = randomBytes(9 * 1024 * 1024);
      await b.write({ type: 'data', name }, data);
      assert.ok((await b.read({ type: 'data', name })).equals(data));
      assert.ok((await b.read({ type: 'data', name }, 8 * 1024 * 1024, 1024)).equals(data.subarray(8 * 1024 * 1024, 8 * 1024 * 1024 + 1024)));
    });

    test('list returns names and sizes per type, and only that type', async () => {
      const a = hexName();
      const c = hexName();
      await b.write({ type: 'snapshots', name: a }, Buffer.from('one'));
      await b.write({ type: 'snapshots', name: c }, Buffer.from('three'));
      const listed: Record<string, number> = {};
      for await (const f of b.list('snapshots')) listed[f.name] = f.size;
      assert.deepEqual(listed, { [a]: 3, [c]: 5 });
      assert.ok(!(await names(b, 'keys')).includes(a));
    });

    test('the config file is a single file of its own', async () => {
      await b.write({ type: 'config', name: 'config' }, Buffer.from('cfg'));
      assert.ok((await b.read({ type: 'config', name: 'config' })).equals(Buffer.from('cfg')));
      assert.deepEqual(await names(b, 'config'), ['config']);
    });

    test('writing an existing file is refused and keeps the original', async () => {
      const name = hexName();
      await b.write({ type: 'keys', name }, Buffer.from('original'));
      await assert.rejects(b.write({ type: 'keys', name }, Buffer.from('replacement')), { code: 'BULWARK_BACKEND_EXISTS' });
      assert.equal((await b.read({ type: 'keys', name })).toString(), 'original');
    });

    test('missing files are BULWARK_BACKEND_NOT_FOUND for stat and read', async () => {
      const name = hexName();
      await assert.rejects(b.stat({ type: 'data', name }), { code: 'BULWARK_BACKEND_NOT_FOUND' });
      await assert.rejects(b.read({ type: 'data', name }), { code: 'BULWARK_BACKEND_NOT_FOUND' });
    });

    test('remove deletes a file; removing a missing file is not an error', async () => {
      const name = hexName();
      await b.write({ type: 'locks', name }, Buffer.from('lock'));
      await b.remove({ type: 'locks', name });
      await assert.rejects(b.stat({ type: 'locks', name }), { code: 'BULWARK_BACKEND_NOT_FOUND' });
      assert.ok(!(await names(b, 'locks')).includes(name));
      await b.remove({ type: 'locks', name });
    });

    test('file names that could escape the layout are rejected', async () => {
      for (const name of ['../x', 'a/b', '.hidden', '']) {
        await assert.rejects(b.write({ type: 'keys', name }, Buffer.from('x')), { code: 'BULWARK_BACKEND_IO' });
      }
    });

    test('concurrent writes of different files all land', async () => {
      const files = Array.from({ length: 16 }, () => ({ name: hexName(), data: randomBytes(1000) }));
      await Promise.all(files.map((f) => b.write({ type: 'index', name: f.name }, f.data)));
      for (const f of files) assert.ok((await b.read({ type: 'index', name: f.name })).equals(f.data));
    });
  });
}
