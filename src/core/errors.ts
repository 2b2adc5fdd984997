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
  BULWARK_API_FORBIDDEN: { exit: 1, summary: 'The API refused a request it understood: the read-only token cannot change state, or a web page from another origin (or a non-loopback Host on a tokenless API) sent it.' },
  // store
  BULWARK_STORE_OPEN: { exit: 1, summary: 'The embedded state store in state_dir could not be opened or migrated.' },
  BULWARK_STORE_NEWER_SCHEMA: { exit: 1, summary: 'state_dir was written by a newer Bulwark with a schema this version does not know.' },
  // health
  BULWARK_HEALTH_UNKNOWN_NODE: { exit: 1, summary: 'A heartbeat named a service or node that is not in the config.' },
  BULWARK_HEALTH_NO_HEARTBEAT: { exit: 1, summary: 'A heartbeat was sent for a service that has no heartbeat section.' },
  BULWARK_HEALTH_BAD_HEARTBEAT: { exit: 2, summary: 'A heartbeat request body was malformed (not a JSON object, unknown field, bad status).' },
  // proxy
  BULWARK_PROXY_LISTEN: { exit: 1, summary: 'The proxy could not listen on a service or database listen address.' },
  BULWARK_PROXY_CONFIG: { exit: 1, summary: 'A services/databases section is inconsistent (duplicate backend names, two listeners on one address).' },
  BULWARK_PROXY_WORKER: { exit: 1, summary: 'A proxy worker process (proxy.workers) failed to start its listeners or exited while starting.' },
  // backup storage backends (every Backend implementation maps its failures to these)
  BULWARK_BACKEND_NOT_FOUND: { exit: 1, summary: 'A file the repository needs is missing from the storage backend.' },
  BULWARK_BACKEND_EXISTS: { exit: 1, summary: 'A write would overwrite an existing file; repository files are never rewritten in place.' },
  BULWARK_BACKEND_UNREACHABLE: { exit: 1, summary: 'The storage backend cannot be reached (host down, connection refused, DNS, timeout).' },
  BULWARK_BACKEND_AUTH: { exit: 1, summary: 'The storage backend refused the credentials (key, password, token, access key).' },
  BULWARK_BACKEND_FULL: { exit: 1, summary: 'The storage backend is out of space or quota; nothing partial was kept.' },
  BULWARK_BACKEND_REFUSED: { exit: 1, summary: 'The storage backend refused the operation by policy (append-only, retention lock, permissions).' },
  BULWARK_BACKEND_IO: { exit: 1, summary: 'Another storage error (read or write failed); the message says which file and why.' },
  BULWARK_BACKEND_URL: { exit: 2, summary: 'A repository URL is malformed or names an unknown scheme.' },
  // backup engine (repository format, create/restore/check/forget/prune)
  BULWARK_REPO_NOT_FOUND: { exit: 1, summary: 'No repository at that location (no config file).' },
  BULWARK_REPO_EXISTS: { exit: 1, summary: '`init` found a repository (a config file) already at that location.' },
  BULWARK_REPO_NO_PASSWORD: { exit: 2, summary: 'No repository password was given.' },
  BULWARK_REPO_PASSWORD: { exit: 1, summary: 'The password opens none of the repository\'s keys.' },
  BULWARK_REPO_VERSION: { exit: 1, summary: 'The repository format version is not one this Bulwark reads.' },
  BULWARK_REPO_CORRUPT: { exit: 1, summary: 'A repository file failed authentication or is malformed; the message names the file.' },
  BULWARK_REPO_LOCKED: { exit: 1, summary: 'Another process holds a conflicting lock on the repository (prune vs backup).' },
  BULWARK_REPO_CHECK_FAILED: { exit: 1, summary: '`backup check` found damage or inconsistencies; the output names the files.' },
  BULWARK_REPO_KEY: { exit: 2, summary: 'A key operation was refused (unknown key id, or removing the last key or the key in use).' },
  BULWARK_BACKUP_PATH: { exit: 2, summary: 'A path to back up does not exist or two paths share a base name.' },
  BULWARK_BACKUP_PARTIAL: { exit: 3, summary: 'The backup finished but some files were unreadable or vanished; they are listed and counted.' },
  BULWARK_BACKUP_SNAPSHOT_NOT_FOUND: { exit: 2, summary: 'No snapshot matches that id (or the repository has none, for `latest`).' },
  BULWARK_BACKUP_RESTORE_FAILED: { exit: 1, summary: 'A restore could not write or verify some files; they are listed.' },
  // coord (leases and leader election)
  BULWARK_COORD_UNAVAILABLE: { exit: 1, summary: 'The coordination service (etcd) cannot be reached, so the leader lease cannot be taken or kept.' },
  BULWARK_COORD_LEASE_LOST: { exit: 1, summary: 'This instance lost the leader lease (expired, revoked, or etcd unreachable) and stopped acting as leader.' },
  // cluster (Bulwark across hosts)
  BULWARK_CLUSTER_CONFIG: { exit: 2, summary: 'The cluster: section does not fit the rest of the config (local coordination, an unknown instance, a node without an instance, a remote host outside cluster mode).' },
  BULWARK_CLUSTER_INSTANCE: { exit: 2, summary: 'This process was not told which listed cluster instance it is (or was told one that is not listed).' },
  BULWARK_CLUSTER_REMOTE: { exit: 1, summary: 'Another instance of the cluster could not be reached or refused a request.' },
  // db (PostgreSQL failover)
  BULWARK_DB_UNKNOWN: { exit: 2, summary: 'No database or node with that name is configured under databases.' },
  BULWARK_DB_TOOL_FAILED: { exit: 1, summary: 'A PostgreSQL tool (initdb, pg_ctl, pg_basebackup, pg_rewind) failed.' },
  BULWARK_DB_NOT_LEADER: { exit: 1, summary: 'This Bulwark instance does not hold the leader lease for the database, so it may not change roles.' },
  BULWARK_DB_SWITCHOVER: { exit: 1, summary: 'A planned switchover could not proceed (target not a healthy standby, not caught up, or a step failed).' },
  BULWARK_DB_NO_PRIMARY: { exit: 1, summary: 'The database has no usable primary (and none could be promoted safely).' },
  BULWARK_DB_COLD_CONFIG: { exit: 2, summary: 'A cold-standby database is misconfigured (restore_from plan, wal_archive, synchronous mode).' },
  BULWARK_DB_BASE_BACKUP: { exit: 1, summary: 'A base backup (pg_basebackup, then a snapshot into the restore_from plan) failed.' },
  BULWARK_DB_WAL_ARCHIVE: { exit: 1, summary: 'A WAL file could not be archived (the archive holds different content under that name, or it cannot be written).' },
  BULWARK_DB_COLD_RESTORE: { exit: 1, summary: 'Building a new primary from the latest base backup and archived WAL failed.' },
  // backup plans, vault server, audit (3-2-1-1-0)
  BULWARK_PLAN_UNKNOWN: { exit: 2, summary: 'No backup plan (or target) with that name is configured under backups.' },
  BULWARK_PLAN_TARGET_FAILED: { exit: 1, summary: 'A plan run, copy or verification failed for at least one target; the others completed.' },
  BULWARK_PLAN_DRILL_FAILED: { exit: 1, summary: 'A restore drill could not restore the snapshot, or restored bytes differ from the snapshot.' },
  BULWARK_PLAN_BUSY: { exit: 1, summary: 'A job of this plan (run, verification or drill) is already running; the new one was not started.' },
  BULWARK_PLAN_SCHEDULE: { exit: 1, summary: 'A plan schedule (or verify.restore_drill) is not a valid cron expression.' },
  BULWARK_VAULT_TOKENS: { exit: 1, summary: 'The vault tokens file is missing, unreadable or malformed.' },
  BULWARK_VAULT_LISTEN: { exit: 1, summary: 'The vault server could not listen on --listen (address in use, or not permitted).' },
  BULWARK_VAULT_TLS: { exit: 1, summary: 'The vault TLS certificate or key cannot be read or does not parse.' },
  BULWARK_VAULT_ROOT: { exit: 1, summary: 'The vault root directory cannot be created or written.' },
  BULWARK_AUDIT_VIOLATION: { exit: 1, summary: 'The audit found a plan that breaks 3-2-1-1-0 (copies, media, offsite, immutable, errors), or a single point of failure.' },
  // slo (SLIs, SLOs, error budgets, alerts, maintenance windows)
  BULWARK_SLO_UNKNOWN: { exit: 2, summary: 'No SLO with that name is configured under slos.' },
  BULWARK_SLO_MAINTENANCE_INVALID: { exit: 2, summary: 'A maintenance window sent to the API is malformed (bad times, end not after start, unknown service).' },
  BULWARK_SLO_MAINTENANCE_NOT_FOUND: { exit: 2, summary: 'No maintenance window with that id (windows from the config cannot be deleted through the API).' },
  BULWARK_SLO_NO_STATE: { exit: 1, summary: 'An offline SLO report found no state store in state_dir (the daemon has never recorded there).' },
  BULWARK_SLO_WEBHOOK_FAILED: { exit: 1, summary: 'An alert webhook could not be delivered (recorded with the alert and logged; the alert still counts).' },
  // notify
  BULWARK_NOTIFY_FAILED: { exit: 1, summary: 'A notification could not be delivered through a channel after every attempt (recorded as a notify.failed event and logged).' },
  BULWARK_NOTIFY_UNKNOWN_CHANNEL: { exit: 2, summary: 'No notification channel with that name is configured under notify.channels.' },
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
