// Owns snapshot files: listing them with a damaged or forged one reported by name and skipped
// (the others stay listable, restorable and forgettable), finding one by id prefix or 'latest',
// and saving one. A snapshot's shape is checked before anything trusts it.
import { BulwarkError } from '../core/errors.js';
import { filePath } from './backend.js';
import { aad, sha256 } from './crypto.js';
import { CorruptFile, readSealed, type Damage, type Opener } from './repoindex.js';
import type { Snapshot, SnapshotInfo } from './types.js';

const HEX64 = /^[0-9a-f]{64}$/;
/** A snapshot is a small JSON document; a larger file is not read (it could exhaust memory). */
export const MAX_SNAPSHOT = 64 * 1024 * 1024;

function validate(v: unknown, file: string): Snapshot {
  const s = v as Record<string, unknown>;
  const fail = (what: string): never => {
    throw new CorruptFile(`${file} is malformed: ${what}`);
  };
  if (typeof s !== 'object' || s === null || Array.isArray(s)) fail('not a JSON object');
  if (typeof s['time'] !== 'string' || Number.isNaN(Date.parse(s['time']))) fail("'time' is not a date");
  if (typeof s['tree'] !== 'string' || !HEX64.test(s['tree'])) fail("'tree' is not a SHA-256");
  if (typeof s['host'] !== 'string') fail("'host' is not a string");
  if (!Array.isArray(s['paths']) || !(s['paths'] as unknown[]).every((p) => typeof p === 'string')) fail("'paths' is not a list of strings");
  if (s['tags'] === undefined) s['tags'] = [];
  if (!Array.isArray(s['tags']) || !(s['tags'] as unknown[]).every((p) => typeof p === 'string')) fail("'tags' is not a list of strings");
  if (typeof s['summary'] !== 'object' || s['summary'] === null) fail("'summary' is missing");
  return s as unknown as Snapshot;
}

export async function readSnapshot(r: Opener, name: string): Promise<Snapshot> {
  const plain = await readSealed(r, 'snapshots', name, 'snapshot');
  let v: unknown;
  try {
    v = JSON.parse(plain.toString('utf8'));
  } catch {
    throw new CorruptFile(`${filePath({ type: 'snapshots', name })} is not JSON`);
  }
  return validate(v, filePath({ type: 'snapshots', name }));
}

/** Every readable snapshot, oldest first; unreadable ones in `damaged` (backend errors still throw). */
export async function readSnapshots(r: Opener): Promise<{ snapshots: SnapshotInfo[]; damaged: Damage[] }> {
  const snapshots: SnapshotInfo[] = [];
  const damaged: Damage[] = [];
  const names: string[] = [];
  for await (const f of r.backend.list('snapshots')) {
    if (f.size > MAX_SNAPSHOT) damaged.push({ file: filePath({ type: 'snapshots', name: f.name }), message: `snapshots/${f.name} is ${f.size} bytes, too large to be a snapshot` });
    else names.push(f.name);
  }
  for (const name of names) {
    try {
      snapshots.push({ ...(await readSnapshot(r, name)), id: name });
    } catch (err) {
      if (!(err instanceof CorruptFile)) throw err;
      damaged.push({ file: filePath({ type: 'snapshots', name }), message: err.message });
    }
  }
  snapshots.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
  return { snapshots, damaged };
}

/** 'latest' or an id prefix (at least 4 hex digits). A damaged snapshot that matches is named, not ignored. */
export function pickSnapshot(all: readonly SnapshotInfo[], damaged: readonly Damage[], ref: string, location: string): SnapshotInfo {
  if (ref === 'latest') {
    const s = all.at(-1);
    if (!s) throw new BulwarkError('BULWARK_BACKUP_SNAPSHOT_NOT_FOUND', `the repository at ${location} has no ${damaged.length ? 'readable ' : ''}snapshots${damaged.length ? ` (${damaged.length} damaged)` : ''}`);
    return s;
  }
  const want = ref.toLowerCase();
  const m = all.filter((s) => s.id.startsWith(want));
  if (m.length === 0 && ref.length >= 4) {
    const d = damaged.find((x) => x.file.slice('snapshots/'.length).startsWith(want));
    if (d) throw new BulwarkError('BULWARK_REPO_CORRUPT', d.message, { hint: 'restore another snapshot; `bulwark backup check` lists the damage' });
  }
  if (m.length !== 1 || ref.length < 4) {
    throw new BulwarkError('BULWARK_BACKUP_SNAPSHOT_NOT_FOUND', m.length > 1 ? `snapshot id '${ref}' is ambiguous (${m.length} match)` : `no snapshot '${ref}' in ${location}`, { hint: '`bulwark backup snapshots` lists them' });
  }
  return m[0] as SnapshotInfo;
}

export async function writeSnapshot(r: Opener, s: Snapshot): Promise<string> {
  const sealed = r.seal(Buffer.from(JSON.stringify(s)), aad('snapshot'));
  const name = sha256(sealed).toString('hex');
  await r.backend.write({ type: 'snapshots', name }, sealed);
  return name;
}
