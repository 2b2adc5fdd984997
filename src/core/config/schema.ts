// Owns the shape of bulwark.yaml: one zod schema per section, unknown keys rejected everywhere
// (a typo must not silently disable a health check). Values come out typed: durations in ms,
// sizes in bytes, percentages as ratios. Subsystem owners extend their own section here.
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';
import { address, duration, name, percent, size } from './types.js';
import { notifySchema } from './notify-schema.js';

const healthSchema = z.strictObject({
  http: z
    .strictObject({
      path: z.string().startsWith('/', { message: "expected a path starting with '/'" }).default('/health'),
      expect: z.number().int().min(100).max(599).default(200),
      body: z.string().optional(),
      host: z.string().optional(),
    })
    .optional(),
  tcp: z.strictObject({}).optional(),
  exec: z.strictObject({ command: z.array(z.string()).min(1), env: z.record(z.string(), z.string()).optional() }).optional(),
  interval: duration().default(1000),
  fast_interval: duration().optional(),
  timeout: duration().default(500),
  rise: z.number().int().min(1).default(2),
  fall: z.number().int().min(1).default(2),
  jitter: percent().default(0.1),
});

const backendSchema = z.strictObject({
  name: name(),
  address: address(),
  standby: z.boolean().default(false),
  weight: z.number().int().min(0).max(1000).default(1),
  /** The zone the backend runs in (cluster mode: instances prefer backends of their own zone). */
  zone: z.string().optional(),
});

const passiveSchema = z.strictObject({
  consecutive_failures: z.number().int().min(1).default(3),
  count_5xx: z.boolean().default(false),
  base_ejection: duration().default(5000),
  max_ejection: duration().default(60_000),
  max_ejected_percent: percent().default(0.5),
});

const serviceSchema = z.strictObject({
  protocol: z.enum(['http', 'tcp']).default('http'),
  listen: address(),
  mode: z.enum(['active-active', 'active-passive']).default('active-active'),
  balance: z.enum(['round-robin', 'least-request', 'random-two']).default('least-request'),
  backends: z.array(backendSchema).min(1, { message: 'expected at least one backend' }),
  health: healthSchema.optional(),
  heartbeat: z
    .strictObject({
      ttl: duration(),
      /** A token that may only POST this service's heartbeats (give it to the nodes instead of the admin token). */
      token_file: z.string().optional(),
      token_env: z.string().optional(),
    })
    .optional(),
  passive: passiveSchema.optional(),
  retries: z.number().int().min(0).max(10).default(2),
  timeouts: z
    .strictObject({
      connect: duration().default(1000),
      response: duration().default(30_000),
      /** HTTP: longest wait for one attempt's response head; then an idempotent request is retried on another backend (default: response). */
      per_try: duration().optional(),
      idle: duration().default(60_000),
    })
    .optional(),
  failback_delay: duration().default(5000),
  slow_start: duration().default(0),
  drain_timeout: duration().default(10_000),
  close_on_down: z.boolean().default(true),
}).superRefine((svc, ctx) => {
  const seen = new Set<string>();
  svc.backends.forEach((b, i) => {
    if (seen.has(b.name)) ctx.addIssue({ code: 'custom', path: ['backends', i, 'name'], message: `duplicate backend name '${b.name}' (names must be unique within a service)`, input: b.name });
    seen.add(b.name);
  });
  if (svc.mode === 'active-passive' && !svc.backends.some((b) => !b.standby)) {
    ctx.addIssue({ code: 'custom', path: ['backends'], message: 'active-passive needs at least one backend without standby: true', input: svc.backends });
  }
});

// databases: (owned by failover/) — PostgreSQL clusters. Without cluster: every node runs on this
// machine; in cluster mode each node names the Bulwark instance that runs beside it.
const dbNodeSchema = z.strictObject({
  name: name(),
  /** cluster mode: the instance (under cluster.instances) on whose host this node runs; only it touches data_dir. */
  instance: name().optional(),
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(1).max(65535),
  data_dir: z.string(),
  /** The zone of the node (default: its instance's zone). */
  zone: z.string().optional(),
});

const databaseSchema = z.strictObject({
  engine: z.enum(['postgres']),
  listen: address(),
  read_listen: address().optional(),
  standby: z.enum(['hot', 'warm', 'cold']).default('hot'),
  synchronous: z.boolean().default(false),
  no_sync_standby: z.enum(['block', 'async']).default('block'),
  max_lag_on_failover: size().default(16 * 1024 * 1024),
  /** standby: cold — the backup plan (under backups:) whose targets hold the base backups a new primary is built from. */
  restore_from: z.string().optional(),
  /** standby: cold — directory archive_command writes WAL segments into (put it on another disk than the nodes). */
  wal_archive: z.string().optional(),
  /** standby: cold — how often a base backup is taken (one is also taken at start when the plan has none). */
  base_backup_interval: duration().default(24 * 3600_000),
  /** standby: cold — how often newly archived WAL is also snapshotted into the restore_from plan's targets (bounds the RPO when the WAL archive's disk is lost too). */
  wal_upload_interval: duration().default(60_000),
  /** standby: cold — archive_timeout: a partly filled WAL segment is archived after this long (bounds the RPO). */
  archive_timeout: duration().default(60_000),
  nodes: z.array(dbNodeSchema).min(1),
  /** How often every node is observed over SQL. */
  probe_interval: duration().default(500),
  /** Consecutive failed observations of the primary before failover (a vanished postmaster counts at once). */
  fall: z.number().int().min(1).max(100).default(3),
  /** Time a standby gets to catch up during a planned switchover. */
  switchover_timeout: duration().default(30_000),
  /** Database role Bulwark connects as (trust over loopback, set up by Bulwark at initdb). */
  superuser: z.string().default('postgres'),
  /** Directory holding initdb, pg_ctl, pg_basebackup, pg_rewind. */
  bin_dir: z.string().default('/usr/lib/postgresql/15/bin'),
  /** Operating-system user the PostgreSQL tools run as when Bulwark runs as root. */
  os_user: z.string().default('postgres'),
  /** Extra pg_hba.conf lines written at initdb (clones copy them), e.g. "host all app 10.0.2.0/24 scram-sha-256". Cluster mode adds trust lines for the nodes' and instances' hosts only. */
  hba: z.array(z.string().regex(/^(local|host|hostssl|hostnossl|hostgssenc|hostnogssenc)\s+\S+/, { message: 'expected a pg_hba.conf line like "host all all 10.0.0.0/24 scram-sha-256"' })).default([]),
  /** Extra postgresql.conf settings written at initdb (e.g. shared_buffers: 16MB). */
  settings: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
  /** Rewind (or re-clone) a former primary and start it as a standby automatically. */
  auto_rejoin: z.boolean().default(true),
  /** Stop the PostgreSQL nodes when Bulwark stops (the demo and tests; a production service may prefer false). */
  stop_nodes_on_exit: z.boolean().default(true),
});

export const MEDIA = ['hdd', 'ssd', 'nas', 'tape', 'object-storage', 'optical', 'usb', 'vault', 'other'] as const;

const targetSchema = z.strictObject({
  name: name(),
  /** A path, file:///path, sftp://user@host:port/path, s3://bucket/prefix?endpoint=…, vault://host:port/name[?ca=FILE]. */
  repo: z.string().min(1),
  media: z.enum(MEDIA),
  offsite: z.boolean().default(false),
  /** false, or how long what is written stays undeletable (S3 Object Lock, vault retention). */
  immutable: z.union([z.literal(false), duration()]).default(false),
  password_file: z.string().optional(),
  password_env: z.string().optional(),
  /** vault:// bearer token. */
  token_file: z.string().optional(),
  token_env: z.string().optional(),
  /** sftp:// private key, and the expected host key fingerprint ("SHA256:…", from ssh-keygen -lf). */
  key_file: z.string().optional(),
  host_key: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}=?$/, { message: "expected a fingerprint like 'SHA256:…' as `ssh-keygen -lf` prints it" }).optional(),
  /** s3:// credentials (else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). */
  access_key_id_file: z.string().optional(),
  secret_access_key_file: z.string().optional(),
  /** Bandwidth caps per second for this target (sizes, like 10MB). */
  upload_limit: size().optional(),
  download_limit: size().optional(),
  /** Attempts per storage operation before the target fails (retry with backoff). */
  retries: z.number().int().min(1).max(20).default(5),
});

const CRON_WORDS: Record<string, string> = { hourly: '@hourly', daily: '@daily', weekly: '@weekly', monthly: '@monthly', yearly: '@yearly' };

/** A cron expression (five fields, UTC) or hourly/daily/weekly/monthly/yearly. */
const cron = () =>
  z.string().superRefine((s, ctx) => {
    try {
      CronExpressionParser.parse(CRON_WORDS[s.trim()] ?? s.trim(), { tz: 'UTC' });
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected a cron expression like '0 * * * *' (minute hour day month weekday, UTC) or hourly/daily/weekly/monthly, got '${s}'`, input: s });
    }
  });

const keepSchema = z.strictObject({
  last: z.number().int().min(0).optional(),
  hourly: z.number().int().min(0).optional(),
  daily: z.number().int().min(0).optional(),
  weekly: z.number().int().min(0).optional(),
  monthly: z.number().int().min(0).optional(),
  yearly: z.number().int().min(0).optional(),
  within: duration().optional(),
});

const planSchema = z.strictObject({
  paths: z.array(z.string()).min(1),
  exclude: z.array(z.string()).default([]),
  /** cron: when the daemon runs the plan. */
  schedule: cron().optional(),
  /** Alert when the newest verified snapshot (of the plan, of a target) is older. Default 24h. */
  rpo: duration().optional(),
  keep: keepSchema.optional(),
  password_file: z.string().optional(),
  password_env: z.string().optional(),
  tags: z.array(z.string()).default([]),
  /** cluster mode: only this instance (under cluster.instances) runs the plan's scheduled jobs: its paths live on that host. */
  instance: name().optional(),
  targets: z
    .array(targetSchema)
    .min(1)
    .superRefine((ts, ctx) => {
      const names = new Set<string>();
      const repos = new Set<string>();
      ts.forEach((t, i) => {
        if (names.has(t.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `two targets are named '${t.name}'; target names must be unique in a plan`, input: t.name });
        if (repos.has(t.repo)) ctx.addIssue({ code: 'custom', path: [i, 'repo'], message: `two targets use the repository ${t.repo}: they would be one copy, not two`, input: t.repo });
        names.add(t.name);
        repos.add(t.repo);
      });
    }),
  verify: z
    .strictObject({
      /** cron: when the daemon runs a read-data verification of every target. */
      schedule: cron().optional(),
      /** Share of packs each verification reads (the rotation covers all in ceil(1/share) runs). */
      read_data_percent: percent().optional(),
      /** Or: every pack is re-read at least once within this period (with `schedule`). */
      read_data_period: duration().optional(),
      /** cron: when the daemon runs a restore drill of each target. */
      restore_drill: cron().optional(),
      /** Share of files a drill restores (default all). */
      drill_sample: percent().optional(),
    })
    .optional(),
});

// --- slos: (owned by src/slo) ---
/** An ISO 8601 time ("2026-03-01T02:00:00Z"), as epoch ms. */
const instant = () =>
  z.string().transform((v, ctx): number => {
    const t = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/.test(v) ? Date.parse(v) : NaN;
    if (Number.isNaN(t)) {
      ctx.addIssue({ code: 'custom', message: `expected a time like 2026-03-01T02:00:00Z (with Z or an offset), got '${v}'`, input: v });
      return z.NEVER;
    }
    return t;
  });

const maintenanceSchema = z
  .strictObject({
    /** Services the window applies to; every service when omitted. */
    services: z.array(name()).optional(),
    start: instant(),
    end: instant(),
    reason: z.string().default(''),
  })
  .superRefine((m, ctx) => {
    if (m.end <= m.start) ctx.addIssue({ code: 'custom', path: ['end'], message: 'the end of a maintenance window must come after its start', input: m.end });
  });

const alertTierSchema = z
  .strictObject({
    severity: z.enum(['page', 'ticket']),
    long: duration(),
    short: duration(),
    /** Share of the whole budget spent within `long` that fires the tier (the Workbook's 2%, 5%, 10%). */
    budget: percent().optional(),
    /** An explicit burn-rate threshold instead of `budget`. */
    burn_rate: z.number().positive().optional(),
  })
  .superRefine((t, ctx) => {
    if ((t.budget === undefined) === (t.burn_rate === undefined)) ctx.addIssue({ code: 'custom', message: 'give an alert tier either budget (like 2%) or burn_rate (like 14.4), not both or neither', input: t });
    if (t.short >= t.long) ctx.addIssue({ code: 'custom', path: ['short'], message: 'the short window of an alert tier must be shorter than its long window', input: t.short });
  });

const sloSchema = z.strictObject({
  service: z.string(),
  objective: percent(),
  sla: percent().optional(),
  window: z.union([z.literal('month'), duration()]).default(30 * 86_400_000),
  latency: z.strictObject({ threshold: duration() }).optional(),
  /** availability (requests through the proxy), latency (share under latency.threshold) or probe (time with a healthy backend). Default: latency when latency is set, else availability. */
  sli: z.enum(['availability', 'latency', 'probe']).optional(),
  /** Response statuses counted as bad for availability ('5xx', '4xx' or a code); connection failures and timeouts always are. */
  bad_status: z.array(z.union([z.enum(['5xx', '4xx']), z.number().int().min(100).max(599)])).default(['5xx']),
  alerts: z
    .strictObject({
      /** JSON POST when an alert fires and when it resolves. */
      webhook: z.string().url().optional(),
      /** The long window must hold this many requests before a tier may fire (request SLIs). */
      min_events: z.number().int().min(0).default(20),
      /** Default: the SRE Workbook tiers (page 2%/1h/5m, page 5%/6h/30m, ticket 10%/3d/6h). */
      tiers: z.array(alertTierSchema).min(1).optional(),
    })
    .optional(),
  /** Availability assumed for parts without measured history, for predicted availability. */
  predicted: z.strictObject({ backend: percent().default(0.99), proxy: percent().default(0.9995) }).optional(),
});

// cluster: (owned by coord/) — every Bulwark instance of a deployment across hosts. The same file
// is used on every host; each instance is told which one it is (--instance or BULWARK_INSTANCE).
const instanceSchema = z.strictObject({
  name: name(),
  /** Where this instance's API listens (and where the others reach it). */
  api: address(),
  zone: z.string().optional(),
});

const clusterSchema = z.strictObject({
  name: name(),
  instances: z.array(instanceSchema).min(1, { message: 'expected at least one instance' }),
});

export const configSchema = z.strictObject({
  cluster: clusterSchema.optional(),
  api: z
    .strictObject({
      listen: address().default('127.0.0.1:7070'),
      token_file: z.string().optional(),
      token_env: z.string().optional(),
      /** Read-only token: GET requests and /metrics (Prometheus), never a state change. */
      read_token_file: z.string().optional(),
      read_token_env: z.string().optional(),
    })
    .default({ listen: '127.0.0.1:7070' }),
  state_dir: z.string().default('./var'),
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info') }).optional(),
  coordination: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('local') }),
      // coordination: (owned by coord/) — who may act as leader (promote, fence, switch over).
      z.strictObject({
        kind: z.literal('etcd'),
        endpoints: z.array(z.string().url()).min(1),
        prefix: z.string().default('/bulwark'),
        lease_ttl: duration().default(5000),
        /** Name this instance is known by in the lease (default: hostname and pid). */
        instance: z.string().optional(),
      }),
    ])
    .default({ kind: 'local' }),
  /** The proxy's data path (owned by proxy/): workers: 1 runs it in the daemon; N or auto (one per core) in worker processes that share the listeners, with health, ejections and stats kept by the daemon. */
  proxy: z.strictObject({ workers: z.union([z.literal('auto'), z.number().int().min(1).max(64)]).default(1) }).default({ workers: 1 }),
  services: z.record(name(), serviceSchema).default({}),
  databases: z.record(name(), databaseSchema).default({}),
  backups: z.record(name(), planSchema).default({}),
  slos: z.record(name(), sloSchema).default({}),
  /** Maintenance windows excluded from every SLO budget of the services they name (owned by src/slo). */
  maintenance: z.array(maintenanceSchema).default([]),
  /** Notifications of incidents (owned by src/notify). */
  notify: notifySchema.optional(),
});

/** The validated config, with defaults filled in and units converted. */
export type BulwarkConfig = z.output<typeof configSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type DatabaseConfig = z.output<typeof databaseSchema>;
export type DatabaseNodeConfig = z.output<typeof dbNodeSchema>;
export type ClusterConfig = z.output<typeof clusterSchema>;
export type ClusterInstanceConfig = z.output<typeof instanceSchema>;
export type CoordinationConfig = z.output<typeof configSchema>['coordination'];
export type BackupPlanConfig = z.output<typeof planSchema>;
export type BackupTargetConfig = z.output<typeof targetSchema>;
export type SloConfig = z.output<typeof sloSchema>;
export type MaintenanceConfig = z.output<typeof maintenanceSchema>;
export type AlertTierConfig = z.output<typeof alertTierSchema>;
