// Generates the backup benchmark dataset, deterministically, into bench/data/ (gitignored):
// a realistic mix of source-like text trees (many small files), compressible logs,
// incompressible media-like files, sparse VM-image-like files and duplicates. About 1.2 GiB.
// Usage: node bench/dataset.mjs [--dir bench/data] [--scale 1.0]
import { mkdirSync, writeFileSync, existsSync, readFileSync, copyFileSync, openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const root = opt('--dir', join(here, 'data'));
const scale = Number(opt('--scale', '1'));
const VERSION = `bulwark-bench-dataset-v1 scale=${scale}`;
const MiB = 1024 * 1024;

if (existsSync(join(root, '.complete')) && readFileSync(join(root, '.complete'), 'utf8') === VERSION) {
  console.log(`${root}: dataset already generated (${VERSION})`);
  process.exit(0);
}

let state = 0x12345678;
function rnd() {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 4294967296;
}
function randomBytes(n, seed) {
  const words = new Uint32Array(Math.ceil(n / 4));
  let s = seed >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s >>> 0;
  }
  return Buffer.from(words.buffer, 0, n);
}

const WORDS = 'const let var function return if else for while import export from class extends new this await async try catch throw switch case break default type interface string number boolean null undefined value result error config options data buffer index count total item list map set get add remove update create delete handler request response server client stream file path name size time date user id key token state event queue worker task job'.split(' ');
function textFile(bytes) {
  const lines = [];
  let n = 0;
  let depth = 0;
  while (n < bytes) {
    const k = 3 + Math.floor(rnd() * 9);
    const w = [];
    for (let i = 0; i < k; i++) w.push(WORDS[Math.floor(rnd() * WORDS.length)]);
    if (rnd() < 0.1) w.push(String(Math.floor(rnd() * 100000)));
    const line = `${'  '.repeat(depth)}${w.join(rnd() < 0.3 ? '.' : ' ')}${rnd() < 0.5 ? ';' : ' {'}`;
    if (line.endsWith('{')) depth = Math.min(depth + 1, 6);
    else if (rnd() < 0.3 && depth > 0) depth--;
    lines.push(line);
    n += line.length + 1;
  }
  return `${lines.join('\n')}\n`;
}

let files = 0;
let bytes = 0;
function put(p, data) {
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, data);
  files++;
  bytes += data.length;
}

// 1. Source trees: ~300 MiB in ~25k files (many small ones).
const srcTarget = 300 * MiB * scale;
let projects = 0;
let srcBytes = 0;
while (srcBytes < srcTarget) {
  const proj = join(root, 'src', `project-${projects++}`);
  const nfiles = 200 + Math.floor(rnd() * 1200);
  for (let i = 0; i < nfiles && srcBytes < srcTarget; i++) {
    const size = Math.floor(200 + rnd() * rnd() * 60000);
    const d = join(proj, `pkg${Math.floor(rnd() * 20)}`, `mod${Math.floor(rnd() * 8)}`);
    const t = textFile(size);
    put(join(d, `file${i}.${['ts', 'js', 'go', 'py', 'md', 'json'][i % 6]}`), t);
    srcBytes += t.length;
  }
}
// 2. Logs: ~160 MiB of compressible text in large files.
for (let i = 0; i < Math.ceil(8 * scale); i++) {
  const lines = [];
  let n = 0;
  while (n < 20 * MiB) {
    const l = `2026-01-${String(1 + (i % 28)).padStart(2, '0')}T${String(Math.floor(rnd() * 24)).padStart(2, '0')}:${String(Math.floor(rnd() * 60)).padStart(2, '0')}:00Z INFO request id=${Math.floor(rnd() * 1e9)} path=/api/${WORDS[Math.floor(rnd() * WORDS.length)]} status=${rnd() < 0.95 ? 200 : 500} ms=${Math.floor(rnd() * 900)}`;
    lines.push(l);
    n += l.length + 1;
  }
  put(join(root, 'logs', `app-${i}.log`), `${lines.join('\n')}\n`);
}
// 3. Media: ~500 MiB incompressible in 2-40 MiB files.
const mediaTarget = 500 * MiB * scale;
let mediaBytes = 0;
const media = [];
for (let i = 0; mediaBytes < mediaTarget; i++) {
  const size = Math.min(mediaTarget - mediaBytes, Math.floor((2 + rnd() * 38) * MiB));
  const p = join(root, 'media', `clip-${i}.mp4`);
  put(p, randomBytes(size, 1000 + i));
  media.push(p);
  mediaBytes += size;
}
// 4. Duplicates: copies of some media and one source project (~130 MiB).
let dup = 0;
for (let i = 0; i < media.length && dup < 100 * MiB * scale; i += 3) {
  const to = join(root, 'backup-of-media', `copy-${i}.mp4`);
  mkdirSync(dirname(to), { recursive: true });
  copyFileSync(media[i], to);
  const n = readFileSync(to).length;
  dup += n;
  files++;
  bytes += n;
}
// 5. A sparse disk image: 256 MiB apparent, ~8 MiB of data.
mkdirSync(join(root, 'vm'), { recursive: true });
const fd = openSync(join(root, 'vm', 'disk.img'), 'w');
for (let i = 0; i < 8; i++) writeSync(fd, randomBytes(MiB, 5000 + i), 0, MiB, i * 32 * MiB);
ftruncateSync(fd, 256 * MiB);
closeSync(fd);
files++;
bytes += 256 * MiB;

writeFileSync(join(root, '.complete'), VERSION);
console.log(`${root}: ${files} files, ${(bytes / MiB).toFixed(0)} MiB apparent (${(mediaBytes / MiB).toFixed(0)} MiB media, ${(srcBytes / MiB).toFixed(0)} MiB source, ${(dup / MiB).toFixed(0)} MiB duplicates)`);
