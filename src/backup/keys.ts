// Owns key files (docs/backup-format.md "Keys"): parsing them defensively (a bad value is a
// BULWARK_REPO_CORRUPT naming the file, never a RangeError from scrypt), opening the master key by
// trying every key file (a damaged or hostile one is reported and skipped), and adding, listing and
// removing keys.
import { randomBytes } from 'node:crypto';
import { BulwarkError } from '../core/errors.js';
import { filePath, type Backend } from './backend.js';
import { AuthError, makeKeyFile, openKeyFile, sha256, type KeyFile, type MasterKey } from './crypto.js';

/** Key files are small JSON documents; anything larger is not one. */
export const MAX_KEY_FILE = 16 * 1024;
/** scrypt cost bounds: below 2^10 is no protection, above 2^20 takes a GiB of memory per try. */
const MIN_N = 1 << 10;
const MAX_N = 1 << 20;

export interface KeyProblem {
  file: string;
  message: string;
}

function bad(file: string, what: string): BulwarkError {
  return new BulwarkError('BULWARK_REPO_CORRUPT', `${file} is not a valid key file: ${what}`, {
    hint: 'another key (password) may still open the repository; remove the damaged key with `bulwark backup key remove ID` once in',
  });
}

const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * Parses and validates a key file without trusting any of it: the KDF parameters bound the work
 * and memory scrypt may be asked for, and the wrapped key must have the one right length.
 * Shared with the vault, which refuses a malformed key upload (it has no password: framing only).
 */
export function parseKeyFile(raw: Buffer, file: string): KeyFile {
  if (raw.length > MAX_KEY_FILE) throw bad(file, `${raw.length} bytes (a key file is under ${MAX_KEY_FILE})`);
  let v: unknown;
  try {
    v = JSON.parse(raw.toString('utf8'));
  } catch {
    throw bad(file, 'not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(file, 'not a JSON object');
  const o = v as Record<string, unknown>;
  if (o['version'] !== 1) throw bad(file, `version ${JSON.stringify(o['version'])} (expected 1)`);
  for (const k of ['created', 'host', 'user'] as const) if (typeof o[k] !== 'string' || (o[k] as string).length > 1024) throw bad(file, `'${k}' is not a short string`);
  const kdf = o['kdf'] as Record<string, unknown> | undefined;
  if (typeof kdf !== 'object' || kdf === null) throw bad(file, "'kdf' is missing");
  if (kdf['name'] !== 'scrypt') throw bad(file, `unknown KDF ${JSON.stringify(kdf['name'])}`);
  const N = kdf['N'];
  if (typeof N !== 'number' || !Number.isInteger(N) || N < MIN_N || N > MAX_N || (N & (N - 1)) !== 0) throw bad(file, `scrypt N ${JSON.stringify(N)} (must be a power of two from ${MIN_N} to ${MAX_N})`);
  const r = kdf['r'];
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r > 32) throw bad(file, `scrypt r ${JSON.stringify(r)} (must be 1..32)`);
  const p = kdf['p'];
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 16) throw bad(file, `scrypt p ${JSON.stringify(p)} (must be 1..16)`);
  if (128 * N * r > 1024 * 1024 * 1024) throw bad(file, `scrypt N*r ${N * r} needs more than 1 GiB of memory`);
  const salt = kdf['salt'];
  if (typeof salt !== 'string' || !B64.test(salt) || Buffer.from(salt, 'base64').length < 16 || salt.length > 256) throw bad(file, "'kdf.salt' is not base64 of 16 bytes or more");
  const data = o['data'];
  if (typeof data !== 'string' || !B64.test(data) || Buffer.from(data, 'base64').length !== 64 + 28) throw bad(file, "'data' is not base64 of a wrapped 64-byte key");
  const check = o['dataSha256'];
  if (check !== undefined) {
    if (typeof check !== 'string' || !/^[0-9a-f]{64}$/.test(check)) throw bad(file, "'dataSha256' is not a SHA-256 hex");
    if (sha256(Buffer.from(data, 'base64')).toString('hex') !== check) throw bad(file, "its 'data' does not match its checksum (the file is damaged)");
  }
  return { version: 1, created: o['created'] as string, host: o['host'] as string, user: o['user'] as string, kdf: { name: 'scrypt', N, r, p, salt }, data, ...(check !== undefined ? { dataSha256: check as string } : {}) };
}

async function listNames(b: Backend): Promise<string[]> {
  const out: string[] = [];
  for await (const f of b.list('keys')) out.push(f.name);
  return out.sort();
}

/** Reads a key file, refusing one too large to be a key file before reading it. */
async function readKey(backend: Backend, name: string): Promise<Buffer> {
  const st = await backend.stat({ type: 'keys', name });
  if (st.size > MAX_KEY_FILE) throw bad(filePath({ type: 'keys', name }), `${st.size} bytes (a key file is under ${MAX_KEY_FILE})`);
  return backend.read({ type: 'keys', name });
}

/** Tries every key file; a damaged one is reported and skipped. */
export async function findKey(backend: Backend, password: string): Promise<{ key: MasterKey; name: string; problems: KeyProblem[] }> {
  const names = await listNames(backend);
  if (names.length === 0) {
    throw new BulwarkError('BULWARK_REPO_CORRUPT', `${backend.location}: the repository has no key files (keys/ is empty)`, { hint: 'restore keys/ from another copy of the repository' });
  }
  // Every key file is validated first (cheap), so each damaged one is reported whichever opens.
  const problems: KeyProblem[] = [];
  const usable: { name: string; kf: KeyFile }[] = [];
  for (const name of names) {
    const file = filePath({ type: 'keys', name });
    try {
      usable.push({ name, kf: parseKeyFile(await readKey(backend, name), file) });
    } catch (err) {
      if (!(err instanceof BulwarkError) || err.code !== 'BULWARK_REPO_CORRUPT') throw err;
      problems.push({ file, message: err.message });
    }
  }
  const tried = usable.length;
  for (const { name, kf } of usable) {
    try {
      return { key: await openKeyFile(password, kf), name, problems };
    } catch (err) {
      if (!(err instanceof AuthError)) problems.push({ file: filePath({ type: 'keys', name }), message: `${filePath({ type: 'keys', name })}: ${(err as Error).message}` });
    }
  }
  if (problems.length) {
    throw new BulwarkError('BULWARK_REPO_CORRUPT', `${backend.location}: the password opens none of the ${tried} readable key(s), and ${problems.length} key file(s) are damaged: ${problems.map((p) => p.message).join('; ')}`, {
      hint: 'if the password is right, its key file is the damaged one: restore keys/ from another copy, or use another password added with `bulwark backup key add`',
    });
  }
  throw new BulwarkError('BULWARK_REPO_PASSWORD', `wrong password: it opens none of the ${names.length} key(s) of ${backend.location}`, { hint: 'set BULWARK_PASSWORD or --password-file to a password added with `bulwark backup key add`' });
}

export async function newKeyFile(password: string, mk: MasterKey): Promise<Buffer> {
  const kf = await makeKeyFile(password, mk);
  kf.dataSha256 = sha256(Buffer.from(kf.data, 'base64')).toString('hex');
  return Buffer.from(JSON.stringify(kf));
}

export async function writeKey(backend: Backend, password: string, mk: MasterKey): Promise<string> {
  const name = randomBytes(16).toString('hex');
  await backend.write({ type: 'keys', name }, await newKeyFile(password, mk));
  return name;
}

export interface KeyListing {
  id: string;
  created: string;
  host: string;
  user: string;
  current: boolean;
  damaged?: string;
}

export async function listKeys(backend: Backend, current: string): Promise<KeyListing[]> {
  const out: KeyListing[] = [];
  for (const name of await listNames(backend)) {
    try {
      const kf = parseKeyFile(await readKey(backend, name), filePath({ type: 'keys', name }));
      out.push({ id: name, created: kf.created, host: kf.host, user: kf.user, current: name === current });
    } catch (err) {
      out.push({ id: name, created: '?', host: '?', user: '?', current: false, damaged: (err as Error).message });
    }
  }
  return out.sort((a, b) => a.created.localeCompare(b.created));
}

export async function removeKey(backend: Backend, current: string, prefix: string): Promise<string> {
  const keys = await listKeys(backend, current);
  const m = keys.filter((k) => k.id.startsWith(prefix));
  if (m.length !== 1) throw new BulwarkError('BULWARK_REPO_KEY', m.length ? `key id '${prefix}' is ambiguous` : `no key '${prefix}'`, { hint: '`bulwark backup key list` shows the ids' });
  const k = m[0] as KeyListing;
  if (k.current) throw new BulwarkError('BULWARK_REPO_KEY', `key ${k.id} is the one this password opened; remove it with another password`);
  if (keys.filter((x) => !x.damaged).length === 1 && !k.damaged) throw new BulwarkError('BULWARK_REPO_KEY', 'refusing to remove the last key');
  await backend.remove({ type: 'keys', name: k.id });
  return k.id;
}
