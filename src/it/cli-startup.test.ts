// Lazy imports: `bulwark --version` loads only commander and the version; `--help` and client
// commands do not load the daemon, etcd (grpc, protobufjs), the AWS SDK, SQLite or zod. Checked
// by a module resolve hook, so the test says what is loaded, never how fast (bench/startup.mjs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, scratchDir } from '../testing/helpers.js';

function loaded(args: string[]): string[] {
  const s = scratchDir();
  try {
    const out = join(s.dir, 'mods');
    writeFileSync(join(s.dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';\nexport async function resolve(spec, ctx, next) { const r = await next(spec, ctx); if (!r.url.startsWith('node:')) appendFileSync(${JSON.stringify(out)}, r.url + '\\n'); return r; }\n`);
    writeFileSync(join(s.dir, 'hook.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${join(s.dir, 'hooks.mjs')}`)});\n`);
    const r = spawnSync(process.execPath, ['--import', join(s.dir, 'hook.mjs'), BIN, ...args], { encoding: 'utf8' });
    assert.ok(r.status !== null && r.status <= 2, `bulwark ${args.join(' ')}: ${r.stderr}`);
    return [...new Set(readFileSync(out, 'utf8').split('\n').filter(Boolean))];
  } finally {
    s.cleanup();
  }
}

const HEAVY = /node_modules\/(etcd3|@grpc|protobufjs|@aws-sdk|better-sqlite3|zod|pg|ssh2|pino|prom-client|nodemailer|yaml)\//;

test('bulwark --version loads the entry, commander and the version, nothing else', () => {
  const mods = loaded(['--version']);
  const ours = mods.filter((m) => m.includes('/dist/')).map((m) => m.replace(/.*\/dist\//, ''));
  assert.deepEqual(ours.sort(), ['cli/exit.js', 'cli/main.js', 'core/errors.js', 'core/version.js']);
  assert.deepEqual(mods.filter((m) => m.includes('node_modules/') && !m.includes('node_modules/commander/')), []);
});

test('--help and client commands load no daemon, etcd, SDK, SQLite or schema', () => {
  for (const args of [['--help'], ['status', '--api', 'http://127.0.0.1:9'], ['nines', '99.9'], ['db', 'status', 'main', '--api', 'http://127.0.0.1:9']]) {
    const mods = loaded(args);
    assert.deepEqual(mods.filter((m) => HEAVY.test(m)), [], args.join(' '));
    assert.ok(!mods.some((m) => /dist\/(app|proxy|failover|health|coord|backup)\//.test(m)), `${args.join(' ')} loads a subsystem`);
  }
  // And the hook does see heavy modules when a command needs them (the check can fail).
  assert.ok(loaded(['validate', '-c', '/nonexistent.yaml']).some((m) => /node_modules\/zod\//.test(m)));
});
