// Benchmarks a 3-2-1 plan: one plan run into N targets (files read, chunked and hashed once)
// against N separate `bulwark backup create` runs (one per repository, what restic/borg users do
// for N copies), on the same data and machine. Also one plan into a local disk plus a loopback
// vault (the offsite path over HTTP). Prints seconds, MB/s and ratios. Never asserted in tests.
// Usage: node bench/plans.mjs [--data DIR] [--targets 3]
// (default data: bench/data from bench/dataset.mjs; try `node bench/dataset.mjs --dir /tmp/d --scale 0.25`)
import { spawnSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';

const here = dirname(fileURLToPath(import.meta.url));
const bin = join(here, '..', 'bin', 'bulwark.js');
const args = process.argv.slice(2);
const opt = (n, d) => (args.includes(n) ? args[args.indexOf(n) + 1] : d);
const data = opt('--data', join(here, 'data'));
const n = Number(opt('--targets', '3'));

function size(p) {
  const st = statSync(p);
  if (!st.isDirectory()) return st.isFile() ? st.size : 0;
  return readdirSync(p).reduce((a, f) => a + size(join(p, f)), 0);
}
const bytes = size(data);
const work = mkdtempSync(join(tmpdir(), 'bulwark-bench-plans-'));
const env = { ...process.env, BULWARK_PASSWORD: 'bench', BULWARK_LOG_LEVEL: 'warn' };
function run(argv) {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [bin, ...argv], { env, encoding: 'utf8', maxBuffer: 1 << 26 });
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`bulwark ${argv.join(' ')} exited ${r.status}\n${r.stderr}`);
  return s;
}
const mbps = (s) => (bytes / 1e6 / s).toFixed(1);
try {
  console.log(`dataset ${data}: ${(bytes / 2 ** 20).toFixed(0)} MiB; ${n} targets`);
  // A: one plan, N local targets
  const targets = Array.from({ length: n }, (_, i) => ({ name: `t${i}`, repo: join(work, `plan-${i}`), media: i % 2 ? 'ssd' : 'hdd' }));
  writeFileSync(join(work, 'plan.yaml'), JSON.stringify({ state_dir: join(work, 'var'), backups: { bench: { paths: [data], targets } } }));
  const plan = run(['backup', 'plan', 'run', 'bench', '-c', join(work, 'plan.yaml')]);
  // B: N separate backups
  let separate = 0;
  for (let i = 0; i < n; i++) {
    const repo = join(work, `sep-${i}`);
    separate += run(['backup', 'init', '--repo', repo]);
    separate += run(['backup', 'create', '--repo', repo, data]);
  }
  // C: local + loopback vault
  const token = randomBytes(16).toString('hex');
  writeFileSync(join(work, 'tokens.yaml'), `admin: ${randomBytes(16).toString('hex')}\nclients:\n  - { name: b, token: ${token} }\n`);
  writeFileSync(join(work, 'tok'), token);
  const vault = spawn(process.execPath, [bin, 'vault', 'serve', '--root', join(work, 'vault'), '--listen', '127.0.0.1:0', '--tokens', join(work, 'tokens.yaml'), '--append-only'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
  const addr = await new Promise((resolve, reject) => {
    let out = '';
    vault.stdout.on('data', (d) => {
      out += d;
      const m = /http:\/\/(\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    vault.on('exit', () => reject(new Error('vault exited')));
  });
  writeFileSync(join(work, 'vault.yaml'), JSON.stringify({ state_dir: join(work, 'var2'), backups: { bench: { paths: [data], targets: [{ name: 'disk', repo: join(work, 'v-disk'), media: 'hdd' }, { name: 'vault', repo: `vault://${addr}/bench`, media: 'vault', offsite: true, immutable: '1d', token_file: join(work, 'tok') }] } } }));
  const withVault = run(['backup', 'plan', 'run', 'bench', '-c', join(work, 'vault.yaml')]);
  vault.kill('SIGTERM');
  console.log(`plan run, ${n} local targets (one read):      ${plan.toFixed(1)} s  ${mbps(plan)} MB/s of source`);
  console.log(`${n} x backup create (one read per repo):     ${separate.toFixed(1)} s  ${mbps(separate)} MB/s of source`);
  console.log(`plan speed-up over separate backups:       ${(separate / plan).toFixed(2)}x`);
  console.log(`plan run, local disk + loopback vault:     ${withVault.toFixed(1)} s  ${mbps(withVault)} MB/s of source`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
