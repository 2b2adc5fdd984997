import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../../testing/helpers.js';
import { loadConfig, parseConfigText } from './load.js';

const GOOD = `
api: { listen: 127.0.0.1:7070 }
state_dir: ./var
services:
  web:
    protocol: http
    listen: 127.0.0.1:8080
    backends:
      - { name: web-1, address: 127.0.0.1:9001 }
      - { name: web-2, address: 127.0.0.1:9002 }
    health: { http: { path: /health, expect: 200 }, interval: 1s, timeout: 500ms, rise: 2, fall: 2 }
slos:
  web-availability: { service: web, objective: 99.9%, sla: 99.5%, window: 30d }
`;

function problems(text: string): Array<{ line: number; column: number; path: string; message: string }> {
  return parseConfigText(text, '/tmp/bulwark.yaml').problems;
}

test('a good config loads with units converted and defaults filled', () => {
  const r = parseConfigText(GOOD, '/tmp/bulwark.yaml');
  assert.deepEqual(r.problems, []);
  const web = r.config?.services['web'];
  assert.equal(web?.health?.interval, 1000);
  assert.equal(web?.health?.timeout, 500);
  assert.equal(web?.mode, 'active-active');
  assert.equal(r.config?.slos['web-availability']?.objective, 0.999);
  assert.equal(r.config?.coordination.kind, 'local');
});

test('an empty file is a valid config with every default', () => {
  const r = parseConfigText('', '/tmp/bulwark.yaml');
  assert.deepEqual(r.problems, []);
  assert.equal(r.config?.api.listen, '127.0.0.1:7070');
});

test('a mistyped key is an error at its line and column, with a suggestion', () => {
  const p = problems(GOOD.replace('interval: 1s', 'intervl: 1s'));
  assert.equal(p.length, 1);
  assert.equal(p[0]?.path, 'services.web.health.intervl');
  assert.equal(p[0]?.line, 11);
  assert.equal(p[0]?.column, GOOD.split('\n')[10]!.indexOf('interval') + 1);
  assert.match(p[0]?.message ?? '', /unknown key 'intervl' \(did you mean 'interval'\?\)/);
});

test('a bad duration names the key path and what is allowed', () => {
  const p = problems(GOOD.replace('interval: 1s', "interval: '2 seconds'"));
  assert.equal(p.length, 1);
  assert.equal(p[0]?.path, 'services.web.health.interval');
  assert.equal(p[0]?.line, 11);
  assert.equal(p[0]?.message, "expected a duration like 500ms or 2s, got '2 seconds'");
});

test('every problem is listed, not just the first', () => {
  const text = GOOD.replace('interval: 1s', 'interval: soon').replace('protocol: http', 'protocol: htp').replace('rise: 2', 'rise: 0');
  const p = problems(text);
  assert.deepEqual(
    p.map((x) => x.path),
    ['services.web.protocol', 'services.web.health.interval', 'services.web.health.rise'],
  );
  assert.match(p[0]?.message ?? '', /expected one of http, tcp, got 'htp'/);
});

test('unknown top-level keys and bad addresses are errors', () => {
  const p = problems('servics: {}\napi: { listen: nowhere }\n');
  assert.deepEqual(p.map((x) => [x.line, x.path]), [
    [1, 'servics'],
    [2, 'api.listen'],
  ]);
  assert.match(p[0]?.message ?? '', /did you mean 'services'/);
});

test('YAML syntax errors give a position', () => {
  const r = parseConfigText('services:\n  web: [1, 2\n', '/tmp/bulwark.yaml');
  assert.equal(r.syntax, true);
  assert.ok(r.problems.length > 0);
  assert.ok((r.problems[0]?.line ?? 0) >= 2);
});

test('an SLA tighter than its objective is rejected', () => {
  const p = problems(GOOD.replace('sla: 99.5%', 'sla: 99.95%'));
  assert.equal(p.length, 1);
  assert.equal(p[0]?.path, 'slos.web-availability.sla');
  assert.match(p[0]?.message ?? '', /must be looser than the objective/);
});

test('an SLO naming a missing service is rejected', () => {
  const p = problems(GOOD.replace('service: web,', 'service: api,'));
  assert.equal(p[0]?.path, 'slos.web-availability.service');
});

test('the API beyond loopback without a token is rejected', () => {
  const p = problems('api: { listen: 0.0.0.0:7070 }\n');
  assert.equal(p[0]?.path, 'api.listen');
  assert.match(p[0]?.message ?? '', /requires api.token_file/);
});

test('a missing secret file is an error naming the key and the path, relative to the config file', () => {
  const { dir, cleanup } = scratchDir();
  try {
    const file = join(dir, 'bulwark.yaml');
    writeFileSync(file, 'api:\n  listen: 127.0.0.1:7070\n  token_file: ./secrets/api-token\n');
    assert.throws(() => loadConfig(file), (err: Error & { code?: string; details?: string[] }) => {
      assert.equal(err.code, 'BULWARK_CONFIG_INVALID');
      assert.equal(err.details?.length, 1);
      assert.match(err.details?.[0] ?? '', new RegExp(`^${file}:3:15: api.token_file: cannot read secret file ${join(dir, 'secrets/api-token')} \\(ENOENT\\)`));
      return true;
    });
    writeFileSync(join(dir, 'token'), 's3cret\n');
    writeFileSync(file, 'api:\n  listen: 127.0.0.1:7070\n  token_file: ./token\n');
    assert.equal(loadConfig(file).config.api.token_file, './token');
  } finally {
    cleanup();
  }
});

test('state_dir is resolved against the config file directory, not the working directory', () => {
  const { dir, cleanup } = scratchDir();
  try {
    const file = join(dir, 'bulwark.yaml');
    writeFileSync(file, 'state_dir: ./var\n');
    assert.equal(loadConfig(file).config.state_dir, join(dir, 'var'));
  } finally {
    cleanup();
  }
});

test('a missing config file is BULWARK_CONFIG_NOT_FOUND', () => {
  assert.throws(() => loadConfig('/nonexistent/bulwark.yaml'), { code: 'BULWARK_CONFIG_NOT_FOUND' });
});

test('duplicate keys in YAML are an error, not a silent override', () => {
  const r = parseConfigText('state_dir: a\nstate_dir: b\n', '/tmp/bulwark.yaml');
  assert.ok(r.problems.length > 0);
});
