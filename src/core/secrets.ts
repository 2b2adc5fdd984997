// Owns reading secrets: from a file (trailing newline trimmed) or an environment variable,
// never from the config inline. Relative paths resolve against the config file's directory.
import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { BulwarkError } from './errors.js';

export interface SecretRef {
  file?: string | undefined;
  env?: string | undefined;
}

/** Resolves a secret path relative to the directory of the config file. */
export function secretPath(file: string, baseDir: string): string {
  return isAbsolute(file) ? file : resolve(baseDir, file);
}

/** Reads a secret; returns undefined when neither file nor env is set. Throws BULWARK_CONFIG_SECRET_MISSING. */
export function readSecret(ref: SecretRef, baseDir: string, what: string): string | undefined {
  if (ref.file !== undefined) {
    const p = secretPath(ref.file, baseDir);
    let text: string;
    try {
      text = readFileSync(p, 'utf8');
    } catch (err) {
      throw new BulwarkError('BULWARK_CONFIG_SECRET_MISSING', `${what}: cannot read secret file ${p} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
        hint: 'create the file with the secret in it (mode 0600), or point the option at the right path',
      });
    }
    const value = text.replace(/\r?\n$/, '');
    if (value.length === 0) {
      throw new BulwarkError('BULWARK_CONFIG_SECRET_MISSING', `${what}: secret file ${p} is empty`, { hint: 'write the secret into the file' });
    }
    return value;
  }
  if (ref.env !== undefined) {
    const value = process.env[ref.env];
    if (value === undefined || value === '') {
      throw new BulwarkError('BULWARK_CONFIG_SECRET_MISSING', `${what}: environment variable ${ref.env} is not set`, {
        hint: `export ${ref.env}=... before starting, or use a *_file option instead`,
      });
    }
    return value;
  }
  return undefined;
}
