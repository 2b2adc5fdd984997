import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Chunker } from './chunker.js';
import { MemIndex } from './memindex.js';
import { ExcludeMatcher } from './glob.js';

function chunks(c: Chunker, data: Buffer): number[] {
  const out: number[] = [];
  let s = 0;
  while (s < data.length) {
    const e = c.cut(data, s, data.length, true);
    out.push(e - s);
    s = e;
  }
  return out;
}

test('chunker: bounds hold, and an insertion only changes the chunks around it', () => {
  const c = new Chunker({ min: 4096, avg: 16384, max: 65536, seed: 0 });
  const data = randomBytes(2 * 1024 * 1024);
  const a = chunks(c, data);
  assert.equal(a.reduce((x, y) => x + y, 0), data.length);
  for (const n of a.slice(0, -1)) assert.ok(n >= 4096 && n <= 65536, `chunk size ${n}`);
  const avg = data.length / a.length;
  assert.ok(avg > 8000 && avg < 40000, `average ${avg}`);
  const edited = Buffer.concat([data.subarray(0, 1_000_000), Buffer.from('inserted!'), data.subarray(1_000_000)]);
  const b = chunks(c, edited);
  const setA = new Set(a.map((n, i) => `${a.slice(0, i).reduce((x, y) => x + y, 0) > 1_000_000 ? 'after' : 'before'}:${n}`));
  const shared = b.filter((n, i) => setA.has(`${b.slice(0, i).reduce((x, y) => x + y, 0) > 1_000_009 ? 'after' : 'before'}:${n}`)).length;
  assert.ok(shared >= a.length - 4, `only ${shared} of ${a.length} chunks survive a 9-byte insertion`);
});

test('chunker: asks for more data when not at EOF and short of max', () => {
  const c = new Chunker({ min: 4096, avg: 16384, max: 65536, seed: 0 });
  assert.equal(c.cut(Buffer.alloc(1000), 0, 1000, false), -1);
  assert.equal(c.cut(Buffer.alloc(1000), 0, 1000, true), 1000);
});

test('memindex: add/get/has survive growth and rehashing; first location wins', () => {
  const idx = new MemIndex(4);
  const ids = Array.from({ length: 5000 }, () => randomBytes(32));
  ids.forEach((id, i) => idx.add(id, { pack: `p${i % 7}`, offset: i, length: i + 1, type: i % 2 ? 2 : 1, flags: i % 2 }));
  idx.add(ids[0] as Buffer, { pack: 'other', offset: 9, length: 9, type: 1, flags: 0 });
  assert.equal(idx.size, 5000);
  ids.forEach((id, i) => assert.deepEqual(idx.get(id), { pack: `p${i % 7}`, offset: i, length: i + 1, type: i % 2 ? 2 : 1, flags: i % 2 }));
  assert.equal(idx.has(randomBytes(32)), false);
});

test('memindex: an index loaded from disk (known size) costs well under 64 bytes per blob', () => {
  const n = 100_000;
  const idx = new MemIndex(n);
  for (let i = 0; i < n; i++) idx.add(randomBytes(32), { pack: `p${i >> 4}`, offset: i, length: 100, type: 1, flags: 0 });
  assert.equal(idx.size, n);
  assert.ok(idx.bytes / idx.size < 56, `${idx.bytes / idx.size} bytes per blob`);
});

test('excludes: base-name globs, path globs and ** ', () => {
  const m = new ExcludeMatcher(['*.tmp', '/srv/cache', 'node_modules', 'logs/**/*.gz']);
  assert.equal(m.excluded('/a/b/x.tmp', 'x.tmp'), true);
  assert.equal(m.excluded('/a/b/x.tmpl', 'x.tmpl'), false);
  assert.equal(m.excluded('/srv/cache', 'cache'), true);
  assert.equal(m.excluded('/srv/cache2', 'cache2'), false);
  assert.equal(m.excluded('/p/node_modules', 'node_modules'), true);
  assert.equal(m.excluded('/var/logs/2026/01/a.gz', 'a.gz'), true);
  assert.equal(m.excluded('/var/logs/a.txt', 'a.txt'), false);
});
