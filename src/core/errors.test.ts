import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BulwarkError, ERROR_CODES } from './errors.js';

const doc = readFileSync(fileURLToPath(new URL('../../docs/errors.md', import.meta.url)), 'utf8');
const rows = new Map<string, string>();
for (const line of doc.split('\n')) {
  const m = /^\|\s*(BULWARK_[A-Z0-9_]+)\s*\|\s*(\d)\s*\|/.exec(line);
  if (m) rows.set(m[1] as string, m[2] as string);
}

test('every registered error code has a row in docs/errors.md with the same exit code', () => {
  for (const [code, spec] of Object.entries(ERROR_CODES)) {
    assert.ok(rows.has(code), `docs/errors.md lacks a row for ${code}`);
    assert.equal(rows.get(code), String(spec.exit), `docs/errors.md gives ${code} a different exit code`);
  }
});

test('docs/errors.md lists no code the registry lacks', () => {
  for (const code of rows.keys()) assert.ok(code in ERROR_CODES, `docs/errors.md lists ${code}, which is not in the registry`);
});

test('codes follow BULWARK_<AREA>_<WHAT>', () => {
  for (const code of Object.keys(ERROR_CODES)) assert.match(code, /^BULWARK_[A-Z0-9]+_[A-Z0-9_]+$/);
});

test('BulwarkError carries its exit code and formats hint and details', () => {
  const e = new BulwarkError('BULWARK_CONFIG_INVALID', 'bad', { hint: 'fix it', details: ['a:1:2: x: y'] });
  assert.equal(e.exitCode, 1);
  assert.equal(e.format(), 'error BULWARK_CONFIG_INVALID: bad\n  a:1:2: x: y\nhint: fix it');
});
