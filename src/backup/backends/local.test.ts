import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../../testing/helpers.js';
import { backendSuite } from '../backend.suite.js';
import { LocalBackend } from './local.js';

backendSuite('local', async () => {
  const { dir, cleanup } = scratchDir('bulwark-local-');
  return { backend: new LocalBackend(join(dir, 'repo')), cleanup: async () => cleanup() };
});

test('local: leftover temp files of a crashed write are not listed and leave no partial file', async () => {
  const { dir, cleanup } = scratchDir('bulwark-local-');
  try {
    const b = new LocalBackend(dir);
    await b.create();
    mkdirSync(join(dir, 'data', 'ab'), { recursive: true });
    writeFileSync(join(dir, 'data', 'ab', '.tmp-deadbeef'), 'partial');
    const listed: string[] = [];
    for await (const f of b.list('data')) listed.push(f.name);
    assert.deepEqual(listed, []);
    await b.write({ type: 'data', name: 'ab'.padEnd(64, '0') }, Buffer.from('x'));
    assert.deepEqual(readdirSync(join(dir, 'data', 'ab')).filter((n) => !n.startsWith('.')), ['ab'.padEnd(64, '0')]);
  } finally {
    cleanup();
  }
});
