// Owns the shape of bulwark.yaml: one zod schema per section, unknown keys rejected everywhere
// (a typo must not silently disable a health check). Values come out typed: durations in ms,
// sizes in bytes, percentages as ratios. Subsystem owners extend their own section here.
import { z } from 'zod';
import { address, duration, name, percent, size } from './types.js';

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
  heartbeat: z.strictObject({ ttl: duration() }).optional(),
  passive: passiveSchema.optional(),
  retries: z.number().int().min(0).max(10).default(2),
  timeouts: z
    .strictObject({
      connect: duration().default(1000),
      response: duration().default(30_000),
      idle: duration().default(60_000),
    })
    .optional(),
  failback_delay: duration().default(5000),
  slow_start: duration().default(0),
  drain_timeout: duration().default(10_000),
  close_on_down: z.boolean().default(true),
});

const dbNodeSchema = z.strictObject({
  name: name(),
  host: z.string().default('127.0.0.1'),
  port: z.number().int().min(1).max(65535),
  data_dir: z.string(),
});

const databaseSchema = z.strictObject({
  engine: z.enum(['postgres']),
  listen: address(),
  read_listen: address().optional(),
  standby: z.enum(['hot', 'warm', 'cold']).default('hot'),
  synchronous: z.boolean().default(false),
  no_sync_standby: z.enum(['block', 'async']).default('block'),
  max_lag_on_failover: size().default(16 * 1024 * 1024),
  restore_from: z.string().optional(),
  nodes: z.array(dbNodeSchema).min(1),
});

export const MEDIA = ['hdd', 'ssd', 'nas', 'tape', 'object-storage', 'optical', 'usb', 'vault', 'other'] as const;

const targetSchema = z.strictObject({
  name: name(),
  repo: z.string().min(1),
  media: z.enum(MEDIA),
  offsite: z.boolean().default(false),
  immutable: z.union([z.literal(false), duration()]).default(false),
  password_file: z.string().optional(),
  password_env: z.string().optional(),
  token_file: z.string().optional(),
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
  schedule: z.string().optional(),
  rpo: duration().optional(),
  keep: keepSchema.optional(),
  password_file: z.string().optional(),
  password_env: z.string().optional(),
  targets: z.array(targetSchema).min(1),
  verify: z
    .strictObject({
      read_data_percent: percent().optional(),
      read_data_period: duration().optional(),
      restore_drill: z.string().optional(),
    })
    .optional(),
});

const sloSchema = z.strictObject({
  service: z.string(),
  objective: percent(),
  sla: percent().optional(),
  window: z.union([z.literal('month'), duration()]).default(30 * 86_400_000),
  latency: z.strictObject({ threshold: duration() }).optional(),
  sli: z.enum(['availability', 'latency', 'probe']).optional(),
});

export const configSchema = z.strictObject({
  api: z
    .strictObject({
      listen: address().default('127.0.0.1:7070'),
      token_file: z.string().optional(),
      token_env: z.string().optional(),
    })
    .default({ listen: '127.0.0.1:7070' }),
  state_dir: z.string().default('./var'),
  log: z.strictObject({ level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info') }).optional(),
  coordination: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('local') }),
      z.strictObject({
        kind: z.literal('etcd'),
        endpoints: z.array(z.string().url()).min(1),
        prefix: z.string().default('/bulwark'),
        lease_ttl: duration().default(5000),
      }),
    ])
    .default({ kind: 'local' }),
  services: z.record(name(), serviceSchema).default({}),
  databases: z.record(name(), databaseSchema).default({}),
  backups: z.record(name(), planSchema).default({}),
  slos: z.record(name(), sloSchema).default({}),
});

/** The validated config, with defaults filled in and units converted. */
export type BulwarkConfig = z.output<typeof configSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type DatabaseConfig = z.output<typeof databaseSchema>;
export type BackupPlanConfig = z.output<typeof planSchema>;
export type BackupTargetConfig = z.output<typeof targetSchema>;
export type SloConfig = z.output<typeof sloSchema>;
