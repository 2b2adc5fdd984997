// Owns the repository crypto: sealing (ChaCha20-Poly1305 with a random nonce), keyed blob ids
// (HMAC-SHA256 over the plaintext SHA-256), the master key, and key files (scrypt-wrapped master
// keys). Format: docs/backup-format.md "Crypto".
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, scrypt as scryptCb } from 'node:crypto';
import { hostname, userInfo } from 'node:os';

export const NONCE = 12;
export const TAG = 16;
export const SEAL_OVERHEAD = NONCE + TAG;

export class AuthError extends Error {}

export interface MasterKey {
  readonly encKey: Buffer;
  readonly idKey: Buffer;
}

export function newMasterKey(): MasterKey {
  const b = randomBytes(64);
  return { encKey: b.subarray(0, 32), idKey: b.subarray(32) };
}

// Nonces come from a pool refilled 4 KiB at a time (one CSPRNG call per ~340 nonces).
let noncePool = Buffer.alloc(0);
let nonceAt = 0;
function nextNonce(): Buffer {
  if (nonceAt + NONCE > noncePool.length) {
    noncePool = randomBytes(4096);
    nonceAt = 0;
  }
  const n = noncePool.subarray(nonceAt, nonceAt + NONCE);
  nonceAt += NONCE;
  return n;
}

/** nonce ‖ ciphertext ‖ tag. */
export function seal(key: Buffer, plain: Uint8Array, aad: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(NONCE + plain.length + TAG);
  sealInto(key, plain, aad, out, 0);
  return out;
}

/** Seals into target at offset (NONCE + plain.length + TAG bytes); returns the sealed length. */
export function sealInto(key: Buffer, plain: Uint8Array, aad: Uint8Array, target: Buffer, at: number): number {
  const nonce = nextNonce();
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG });
  c.setAAD(aad, { plaintextLength: plain.length });
  nonce.copy(target, at);
  const n = c.update(plain).copy(target, at + NONCE);
  c.final();
  c.getAuthTag().copy(target, at + NONCE + n);
  return NONCE + n + TAG;
}

/** Throws AuthError when the data was altered, the key is wrong or the AAD differs. */
export function open(key: Buffer, sealed: Uint8Array, aad: Uint8Array): Buffer {
  if (sealed.length < SEAL_OVERHEAD) throw new AuthError('sealed object too short');
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const d = createDecipheriv('chacha20-poly1305', key, buf.subarray(0, NONCE), { authTagLength: TAG });
  d.setAAD(aad, { plaintextLength: buf.length - SEAL_OVERHEAD });
  d.setAuthTag(buf.subarray(buf.length - TAG));
  const plain = d.update(buf.subarray(NONCE, buf.length - TAG));
  try {
    d.final();
  } catch {
    throw new AuthError('authentication failed');
  }
  return plain;
}

export const aad = (s: string): Buffer => Buffer.from(s, 'ascii');

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

export function blobId(idKey: Buffer, sha: Uint8Array): Buffer {
  return createHmac('sha256', idKey).update(sha).digest();
}

export interface KdfParams {
  name: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
}

export interface KeyFile {
  version: 1;
  created: string;
  host: string;
  user: string;
  kdf: KdfParams;
  data: string;
  /** SHA-256 hex of the decoded data: tells a damaged key file from a wrong password. */
  dataSha256?: string;
}

function scrypt(password: string, p: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scryptCb(password, Buffer.from(p.salt, 'base64'), 32, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

/** scrypt cost; BULWARK_SCRYPT_N lowers it (tests only; never below 2^10). */
function defaultN(): number {
  const env = Number(process.env['BULWARK_SCRYPT_N']);
  return Number.isInteger(env) && env >= 1024 ? env : 1 << 15;
}

export async function makeKeyFile(password: string, mk: MasterKey, now: Date = new Date()): Promise<KeyFile> {
  const kdf: KdfParams = { name: 'scrypt', N: defaultN(), r: 8, p: 1, salt: randomBytes(32).toString('base64') };
  const wrap = await scrypt(password, kdf);
  const data = seal(wrap, Buffer.concat([mk.encKey, mk.idKey]), aad('key'));
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  return { version: 1, created: now.toISOString(), host: hostname(), user, kdf, data: data.toString('base64') };
}

/** Unwraps the master key; throws AuthError on a wrong password. */
export async function openKeyFile(password: string, kf: KeyFile): Promise<MasterKey> {
  if (kf.kdf?.name !== 'scrypt') throw new AuthError(`unknown KDF ${String(kf.kdf?.name)}`);
  const wrap = await scrypt(password, kf.kdf);
  const raw = open(wrap, Buffer.from(kf.data, 'base64'), aad('key'));
  if (raw.length !== 64) throw new AuthError('master key has the wrong length');
  return { encKey: raw.subarray(0, 32), idKey: raw.subarray(32) };
}
