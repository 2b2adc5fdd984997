#!/usr/bin/env node
// Startup cost of CLI commands: wall time and peak RSS (from /usr/bin/time -v) of `bulwark
// --version`, `--help`, a client command and `notify kinds`, as the median of N runs, and the
// number of modules each loads (counted by a resolve hook: independent of machine load).
// `--baseline DIR` runs DIR/bin/bulwark.js too (an older checkout, built) and prints the ratio.
//   node bench/startup.mjs [--runs 15] [--baseline /tmp/old-bulwark]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : dflt;
};
const RUNS = Number(opt('runs', '15'));
const baseline = opt('baseline', undefined);
const here = fileURLToPath(new URL('../', import.meta.url));
const COMMANDS = [['--version'], ['--help'], ['status', '--api', 'http://127.0.0.1:9'], ['nines', '99.9']];

const tmp = mkdtempSync(join(tmpdir(), 'bulwark-startup-'));
writeFileSync(join(tmp, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';\nexport async function resolve(s, c, next) { const r = await next(s, c); if (!r.url.startsWith('node:')) appendFileSync(${JSON.stringify(join(tmp, 'mods'))}, r.url + '\\n'); return r; }\n`);
writeFileSync(join(tmp, 'hook.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${join(tmp, 'hooks.mjs')}`)});\n`);

function once(root, cmd) {
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, join(root, 'bin/bulwark.js'), ...cmd], { encoding: 'utf8' });
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
  const ms = wall ? ((Number(wall[1] ?? 0) * 60 + Number(wall[2])) * 60 + Number(wall[3])) * 1000 : NaN;
  return { ms, rssMb: rss ? Number(rss[1]) / 1024 : NaN };
}

function modules(root, cmd) {
  rmSync(join(tmp, 'mods'), { force: true });
  spawnSync(process.execPath, ['--import', join(tmp, 'hook.mjs'), join(root, 'bin/bulwark.js'), ...cmd], { encoding: 'utf8' });
  let text = '';
  try {
    text = readFileSync(join(tmp, 'mods'), 'utf8');
  } catch {
    return 0;
  }
  return new Set(text.split('\n').filter(Boolean)).size;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

const roots = [['now', here], ...(baseline ? [['baseline', baseline]] : [])];
console.log(`startup, median of ${RUNS} runs (wall ms / peak RSS MiB / modules loaded)`);
for (const cmd of COMMANDS) {
  const res = {};
  for (const [name] of roots) res[name] = { ms: [], rss: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const [name, root] of roots) {
      const r = once(root, cmd);
      res[name].ms.push(r.ms);
      res[name].rss.push(r.rssMb);
    }
  }
  const line = roots.map(([name, root]) => `${name} ${median(res[name].ms).toFixed(0)} ms / ${median(res[name].rss).toFixed(0)} MiB / ${modules(root, cmd)} modules`);
  if (baseline) line.push(`ratio ${(median(res.baseline.ms) / median(res.now.ms)).toFixed(1)}x faster`);
  console.log(`bulwark ${cmd.join(' ').padEnd(36)} ${line.join('  |  ')}`);
}
rmSync(tmp, { recursive: true, force: true });
