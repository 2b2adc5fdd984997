// Regression (issue 14): a "billion laughs" YAML config printed a ReferenceError stack trace
// instead of a config error naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from './load.js';

test('config: a billion-laughs document is a config problem, not a stack trace', () => {
  const lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]'];
  for (const [i, n] of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].entries()) lines.push(`${n}: &${n} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`);
  const r = parseConfigText(lines.join('\n'), 'laughs.yaml');
  assert.equal(r.config, undefined);
  assert.equal(r.syntax, true);
  assert.match(r.problems[0]?.message ?? '', /alias/i);
});
