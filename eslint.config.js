// Lint rules, and the layering of the design brief enforced as import restrictions:
// core <- shared services (health, coord, store) <- subsystems <- app <- edges (cli, api, web).
// A subsystem importing another subsystem, or anything importing app/, cli/ or api/ from below, fails.
import tseslint from 'typescript-eslint';

const SUBSYSTEMS = ['proxy', 'failover', 'backup', 'slo', 'audit', 'drill', 'notify'];
const SERVICES = ['health', 'coord', 'store'];
const EDGES = ['app', 'cli', 'api', 'web'];

/** A regex that matches a relative import of `src/<dir>/...` from anywhere under src/. */
const dirRegex = (dirs) => `^(\\.\\./)+(${dirs.join('|')})(/|$)`;

function restrict(files, forbidden, why) {
  return {
    files,
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: dirRegex(forbidden), message: why }] }],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/out/**', 'bench/data/**', 'var/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  restrict(['src/core/**'], [...SERVICES, ...SUBSYSTEMS, ...EDGES], 'core/ is the bottom layer: it imports nothing from src/ above it'),
  ...SERVICES.map((s) =>
    restrict([`src/${s}/**`], [...SERVICES.filter((x) => x !== s), ...SUBSYSTEMS, ...EDGES],
      `${s}/ is a shared service: it may import only core/ (talk to others through events and small interfaces)`)),
  ...SUBSYSTEMS.map((s) =>
    restrict([`src/${s}/**`], [...SUBSYSTEMS.filter((x) => x !== s), ...EDGES],
      `${s}/ is a subsystem: it may import core/, health/, coord/ and store/, never another subsystem or app/cli/api/web`)),
  restrict(['src/app/**'], ['cli', 'api', 'web'], 'app/ is the composition root: edges (cli, api, web) import it, not the reverse'),
  restrict(['src/web/**'], ['cli', 'api', 'app', ...SUBSYSTEMS, ...SERVICES], 'web/ holds static dashboard assets; it talks to the API over HTTP'),
  {
    files: ['**/*.js', '**/*.mjs'],
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
