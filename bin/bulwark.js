#!/usr/bin/env node
// Entry point: the compiled CLI lives in dist/ (built by `npm run build`, which `npm install` runs).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('bulwark: dist/ is missing; run `npm run build` first\n');
  process.exit(2);
}
await import(main.href);
