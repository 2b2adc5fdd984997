// Owns the error-code registry: every error Bulwark reports has a code from here, an exit code,
// and a row in docs/errors.md (src/core/errors.test.ts keeps the two in sync).

/** Exit codes of the command-line contract. */
export const EXIT = {
  OK: 0,
  FAILURE: 1, // failure, or a violation found
  USAGE: 2, // bad usage or bad input
  PARTIAL: 3, // backup finished but some files were unreadable
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

interface ErrorSpec {
  /** Exit code a command returns when this error ends it. */
  readonly exit: ExitCode;
  /** One line for docs/errors.md: what it means. */
  readonly summary: string;
}

/**
 * The registry. Codes are BULWARK_<AREA>_<WHAT>. Add new codes to the area's block and a row to
 * docs/errors.md (the test fails until both agree).
 */
export const ERROR_CODES = {
  // core / config
  BULWARK_CONFIG_NOT_FOUND: { exit: 2, summary: 'The config file does not exist or cannot be read.' },
  BULWARK_CONFIG_SYNTAX: { exit: 1, summary: 'The config file is not valid YAML.' },
  BULWARK_CONFIG_INVALID: { exit: 1, summary: 'The config file is valid YAML but breaks the schema (unknown key, bad value, missing key).' },
  BULWARK_CONFIG_SECRET_MISSING: { exit: 1, summary: 'A secret named in the config (a *_file path or an environment variable) cannot be read.' },
  BULWARK_UNITS_DURATION: { exit: 2, summary: 'A duration is not of the form 500ms, 2s, 5m, 1h, 30d.' },
  BULWARK_UNITS_SIZE: { exit: 2, summary: 'A size is not of the form 512B, 16MB, 1GiB.' },
  BULWARK_UNITS_PERCENT: { exit: 2, summary: 'A percentage is not of the form 99.9% (or a number between 0 and 100).' },
  // cli
  BULWARK_CLI_USAGE: { exit: 2, summary: 'A command was called with bad arguments or flags.' },
  BULWARK_CLI_NOT_IMPLEMENTED: { exit: 2, summary: 'The command is part of the contract but not built yet.' },
  // daemon / api
  BULWARK_API_UNREACHABLE: { exit: 1, summary: 'The CLI could not reach the daemon API (is `bulwark up` running, and is api.listen right?).' },
  BULWARK_API_UNAUTHORIZED: { exit: 1, summary: 'The API refused the request: missing or wrong bearer token.' },
  BULWARK_API_TOKEN_REQUIRED: { exit: 1, summary: 'api.listen is not a loopback address and no api.token_file (or BULWARK_API_TOKEN) is set.' },
  BULWARK_API_LISTEN: { exit: 1, summary: 'The API could not listen on api.listen (address in use, or not permitted).' },
  BULWARK_API_BAD_REQUEST: { exit: 2, summary: 'An API request was malformed (bad path, body or parameters).' },
  // store
  BULWARK_STORE_OPEN: { exit: 1, summary: 'The embedded state store in state_dir could not be opened or migrated.' },
  BULWARK_STORE_NEWER_SCHEMA: { exit: 1, summary: 'state_dir was written by a newer Bulwark with a schema this version does not know.' },
  // backup storage backends (every Backend implementation maps its failures to these)
  BULWARK_BACKEND_NOT_FOUND: { exit: 1, summary: 'A file the repository needs is missing from the storage backend.' },
  BULWARK_BACKEND_EXISTS: { exit: 1, summary: 'A write would overwrite an existing file; repository files are never rewritten in place.' },
  BULWARK_BACKEND_UNREACHABLE: { exit: 1, summary: 'The storage backend cannot be reached (host down, connection refused, DNS, timeout).' },
  BULWARK_BACKEND_AUTH: { exit: 1, summary: 'The storage backend refused the credentials (key, password, token, access key).' },
  BULWARK_BACKEND_FULL: { exit: 1, summary: 'The storage backend is out of space or quota; nothing partial was kept.' },
  BULWARK_BACKEND_REFUSED: { exit: 1, summary: 'The storage backend refused the operation by policy (append-only, retention lock, permissions).' },
  BULWARK_BACKEND_IO: { exit: 1, summary: 'Another storage error (read or write failed); the message says which file and why.' },
  BULWARK_BACKEND_URL: { exit: 2, summary: 'A repository URL is malformed or names an unknown scheme.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** An error with a registry code, a message naming what is wrong, and an optional hint for the fix. */
export class BulwarkError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: readonly string[];
  /** HTTP status the API answers with when this error ends a request (default 500). */
  readonly httpStatus: number | undefined;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; details?: readonly string[]; cause?: unknown; httpStatus?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'BulwarkError';
    this.code = code;
    this.hint = opts.hint;
    this.details = opts.details ?? [];
    this.httpStatus = opts.httpStatus;
  }

  get exitCode(): ExitCode {
    return ERROR_CODES[this.code].exit;
  }

  /** The text a command prints to stderr. */
  format(): string {
    const lines = [`error ${this.code}: ${this.message}`, ...this.details.map((d) => `  ${d}`)];
    if (this.hint) lines.push(`hint: ${this.hint}`);
    return lines.join('\n');
  }

  toJSON(): { code: ErrorCode; message: string; hint?: string; details?: readonly string[] } {
    return {
      code: this.code,
      message: this.message,
      ...(this.hint ? { hint: this.hint } : {}),
      ...(this.details.length ? { details: this.details } : {}),
    };
  }
}

export function isBulwarkError(e: unknown): e is BulwarkError {
  return e instanceof BulwarkError;
}

/** A short description of any thrown value, for logs and messages. */
export function describeError(e: unknown): string {
  if (e instanceof BulwarkError) return `${e.code}: ${e.message}`;
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}
