// The layering of the design brief is enforced by eslint.config.js; this test feeds the linter
// imports that break it (and ones that respect it) and checks it fails and passes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ESLint } from 'eslint';
import { REPO_ROOT } from '../testing/helpers.js';

const eslint = new ESLint({ cwd: REPO_ROOT });

async function restricted(file: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: join(REPO_ROOT, file) });
  return (result?.messages ?? []).filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

const cases: Array<[string, string, boolean]> = [
  ['src/proxy/x.ts', "import { a } from '../backup/a.js';", false],
  ['src/backup/plan/x.ts', "import { a } from '../../slo/a.js';", false],
  ['src/slo/x.ts', "import { a } from '../app/daemon.js';", false],
  ['src/health/x.ts', "import { a } from '../proxy/a.js';", false],
  ['src/health/x.ts', "import { a } from '../coord/a.js';", false],
  ['src/core/x.ts', "import { a } from '../store/a.js';", false],
  ['src/app/x.ts', "import { a } from '../cli/main.js';", false],
  ['src/store/x.ts', "import { a } from '../api/server.js';", false],
  ['src/proxy/x.ts', "import { a } from '../core/errors.js';", true],
  ['src/proxy/x.ts', "import { a } from '../health/a.js';", true],
  ['src/failover/x.ts', "import { a } from '../coord/a.js';", true],
  ['src/app/x.ts', "import { a } from '../proxy/a.js';", true],
  ['src/cli/x.ts', "import { a } from '../app/daemon.js';", true],
  ['src/backup/backends/x.ts', "import { a } from '../backend.js';", true],
];

for (const [file, source, allowed] of cases) {
  test(`${file}: ${source} is ${allowed ? 'allowed' : 'a lint error'}`, async () => {
    const msgs = await restricted(file, `${source}\nexport const b = a;\n`);
    if (allowed) assert.deepEqual(msgs, []);
    else assert.equal(msgs.length, 1, `expected a layering error for ${file}`);
  });
}
