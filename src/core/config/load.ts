// Owns reading bulwark.yaml: YAML parsing with positions, schema validation, cross-field checks
// and secret references, every problem reported as file:line:column, key path and what is allowed.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isPair, isScalar, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { BulwarkError } from '../errors.js';
import { readSecret } from '../secrets.js';
import { bindInstance, clusterChecks } from './cluster.js';
import { configSchema, type BulwarkConfig, type ClusterInstanceConfig } from './schema.js';
import { isLoopbackHost, parseHostPort } from './types.js';

export interface ConfigProblem {
  line: number;
  column: number;
  path: string;
  message: string;
}

export interface LoadedConfig {
  config: BulwarkConfig;
  /** Absolute path of the file. */
  file: string;
  /** Directory relative paths in the config resolve against. */
  baseDir: string;
  /** Cluster mode: the instance this process is (set by loadInstanceConfig). */
  instance?: ClusterInstanceConfig | undefined;
}

type PathKey = string | number;

/** Finds the position of the node at `path` (or the nearest ancestor that exists). */
function locate(doc: Document, lc: LineCounter, path: readonly PathKey[], unknownKey?: string): { line: number; column: number } {
  let p = [...path];
  for (;;) {
    const node = (p.length === 0 ? doc.contents : doc.getIn(p, true)) as YamlNode | null | undefined;
    if (node && typeof node === 'object' && 'range' in node && node.range) {
      let offset = node.range[0];
      if (unknownKey !== undefined && isMap(node)) {
        const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === unknownKey);
        const keyNode = pair && isScalar(pair.key) ? pair.key : undefined;
        if (keyNode?.range) offset = keyNode.range[0];
      }
      const pos = lc.linePos(offset);
      return { line: pos.line, column: pos.col };
    }
    if (p.length === 0) return { line: 1, column: 1 };
    p = p.slice(0, -1);
  }
}

function pathText(path: readonly PathKey[]): string {
  if (path.length === 0) return '(top level)';
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
}

function allowedKeys(schemaAt: readonly PathKey[]): string[] {
  // Walk the zod schema along the path to list the keys an object accepts.
  let s: unknown = configSchema;
  for (const k of schemaAt) {
    s = unwrap(s);
    const def = (s as { def?: { type?: string; shape?: Record<string, unknown>; valueType?: unknown; element?: unknown; options?: unknown[] } }).def;
    if (!def) return [];
    if (def.type === 'object' && def.shape) s = def.shape[String(k)];
    else if (def.type === 'record') s = def.valueType;
    else if (def.type === 'array') s = def.element;
    else return [];
  }
  s = unwrap(s);
  const def = (s as { def?: { type?: string; shape?: Record<string, unknown> } }).def;
  return def?.type === 'object' && def.shape ? Object.keys(def.shape) : [];
}

function unwrap(s: unknown): unknown {
  for (let i = 0; i < 10; i++) {
    const def = (s as { def?: { type?: string; innerType?: unknown; in?: unknown } } | undefined)?.def;
    if (!def) return s;
    if (def.type === 'default' || def.type === 'optional' || def.type === 'nullable' || def.type === 'prefault') s = def.innerType;
    else if (def.type === 'pipe') s = def.in;
    else return s;
  }
  return s;
}

function closest(word: string, options: string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const o of options) {
    const d = editDistance(word, o);
    if (d < bestD) {
      bestD = d;
      best = o;
    }
  }
  return bestD <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0] as number;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j] as number;
      dp[j] = Math.min((dp[j] as number) + 1, (dp[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length] as number;
}

function describeInput(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return `'${v}'`;
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${String(v)}`;
}

/** Turns one zod issue into problems with positions. */
function issueToProblems(issue: z.core.$ZodIssue, doc: Document, lc: LineCounter): ConfigProblem[] {
  const path = issue.path as PathKey[];
  if (issue.code === 'unrecognized_keys') {
    const allowed = allowedKeys(path);
    return issue.keys.map((key) => {
      const guess = closest(key, allowed);
      const pos = locate(doc, lc, path, key);
      return {
        ...pos,
        path: pathText([...path, key]),
        message: `unknown key '${key}'${guess ? ` (did you mean '${guess}'?)` : ''}; allowed here: ${allowed.join(', ')}`,
      };
    });
  }
  const input = (issue as { input?: unknown }).input;
  let message: string;
  switch (issue.code) {
    case 'invalid_value':
      message = `expected one of ${issue.values.map((v) => String(v)).join(', ')}, got ${describeInput(input)}`;
      break;
    case 'invalid_type':
      message = input === undefined ? `required key is missing (expected ${issue.expected})` : `expected ${issue.expected}, got ${describeInput(input)}`;
      break;
    case 'invalid_union': {
      // Prefer the most specific message among the alternatives.
      const inner = issue.errors.flat().find((e) => e.code === 'custom') ?? issue.errors.flat()[0];
      message = inner ? inner.message : `invalid value ${describeInput(input)}`;
      break;
    }
    case 'too_small':
      message = issue.origin === 'array' ? `expected at least ${String(issue.minimum)} item(s)` : `expected at least ${String(issue.minimum)}, got ${describeInput(input)}`;
      break;
    case 'too_big':
      message = `expected at most ${String(issue.maximum)}, got ${describeInput(input)}`;
      break;
    default:
      message = issue.message;
  }
  return [{ ...locate(doc, lc, path), path: pathText(path), message }];
}

/** Checks that need more than one key, or the file system. */
function crossChecks(config: BulwarkConfig, baseDir: string): Array<{ path: PathKey[]; message: string }> {
  const out: Array<{ path: PathKey[]; message: string }> = [];
  const api = parseHostPort(config.api.listen);
  if (api && !isLoopbackHost(api.host) && !config.api.token_file && !config.api.token_env) {
    out.push({ path: ['api', 'listen'], message: `listening on ${config.api.listen} (beyond loopback) requires api.token_file or api.token_env` });
  }
  secret(out, baseDir, ['api'], { file: config.api.token_file, env: config.api.token_env }, 'token');
  out.push(...clusterChecks(config));
  secret(out, baseDir, ['api'], { file: config.api.read_token_file, env: config.api.read_token_env }, 'read_token');
  if ((config.api.read_token_file || config.api.read_token_env) && !config.api.token_file && !config.api.token_env) {
    out.push({ path: ['api', 'read_token_file'], message: 'a read-only token needs an admin token too (api.token_file or api.token_env): without one, anyone could change state' });
  }
  for (const [svc, sc] of Object.entries(config.services)) {
    if (sc.heartbeat) secret(out, baseDir, ['services', svc, 'heartbeat'], { file: sc.heartbeat.token_file, env: sc.heartbeat.token_env }, 'token');
  }
  for (const [ch, c] of Object.entries(config.notify?.channels ?? {})) {
    if (c.type === 'webhook') secret(out, baseDir, ['notify', 'channels', ch], { file: c.secret_file, env: c.secret_env }, 'secret');
    if (c.type === 'email') secret(out, baseDir, ['notify', 'channels', ch], { file: c.password_file, env: c.password_env }, 'password');
  }

  const listens = new Map<string, string>();
  const claim = (addr: string, path: PathKey[]): void => {
    const hp = parseHostPort(addr);
    if (!hp || hp.port === 0) return;
    const key = `${hp.host}:${hp.port}`;
    const prev = listens.get(key);
    if (prev) out.push({ path, message: `address ${addr} is already used by ${prev}` });
    else listens.set(key, pathText(path));
  };
  claim(config.api.listen, ['api', 'listen']);

  for (const [svc, s] of Object.entries(config.services)) {
    claim(s.listen, ['services', svc, 'listen']);
    const seen = new Set<string>();
    s.backends.forEach((b, i) => {
      if (seen.has(b.name)) out.push({ path: ['services', svc, 'backends', i, 'name'], message: `duplicate backend name '${b.name}'` });
      seen.add(b.name);
    });
    if (s.mode === 'active-passive' && !s.backends.some((b) => !b.standby)) {
      out.push({ path: ['services', svc, 'backends'], message: 'active-passive needs at least one backend without standby: true (the primary)' });
    }
    if (s.health && !s.health.http && !s.health.tcp && !s.health.exec) {
      out.push({ path: ['services', svc, 'health'], message: 'a health check needs one of http, tcp or exec' });
    }
  }
  for (const [db, d] of Object.entries(config.databases)) {
    claim(d.listen, ['databases', db, 'listen']);
    if (d.read_listen) claim(d.read_listen, ['databases', db, 'read_listen']);
    if (d.standby === 'cold') {
      // failover/ builds a new primary from the newest base backup of restore_from plus the WAL archive (docs/failover.md)
      const at = (k: string): Array<string | number> => ['databases', db, k];
      if (!d.restore_from) {
        out.push({ path: at('standby'), message: 'standby: cold needs restore_from: the name of a plan under backups: whose targets hold the base backups (BULWARK_DB_COLD_CONFIG)' });
      } else if (!config.backups[d.restore_from]) {
        const known = Object.keys(config.backups);
        out.push({ path: at('restore_from'), message: `no backup plan named '${d.restore_from}' under backups:${known.length ? ` (plans: ${known.join(', ')})` : ' (add one)'} (BULWARK_DB_COLD_CONFIG)` });
      }
      if (!d.wal_archive) {
        out.push({ path: at('standby'), message: 'standby: cold needs wal_archive: a directory (on another disk than the nodes) that archive_command fills with WAL (BULWARK_DB_COLD_CONFIG)' });
      } else {
        const walAbs = resolve(baseDir, d.wal_archive);
        d.nodes.forEach((n, i) => {
          const dataAbs = resolve(baseDir, n.data_dir);
          if (walAbs === dataAbs || walAbs.startsWith(`${dataAbs}/`) || dataAbs.startsWith(`${walAbs}/`)) {
            out.push({ path: ['databases', db, 'nodes', i, 'data_dir'], message: `wal_archive (${walAbs}) must not be inside a node's data_dir or contain it: losing the data directory would lose the archive too (BULWARK_DB_COLD_CONFIG)` });
          }
        });
      }
      if (d.synchronous) {
        out.push({ path: at('synchronous'), message: 'synchronous: true needs a running standby to acknowledge commits; a cold standby has none (use standby: hot or warm, or synchronous: false) (BULWARK_DB_COLD_CONFIG)' });
      }
    } else if (d.restore_from !== undefined || d.wal_archive !== undefined) {
      out.push({ path: ['databases', db, d.restore_from !== undefined ? 'restore_from' : 'wal_archive'], message: `restore_from and wal_archive apply to standby: cold only (this database is ${d.standby})` });
    }
    const names = new Set<string>();
    d.nodes.forEach((n, i) => {
      if (names.has(n.name)) out.push({ path: ['databases', db, 'nodes', i, 'name'], message: `duplicate node name '${n.name}'` });
      names.add(n.name);
    });
  }
  for (const [plan, p] of Object.entries(config.backups)) {
    secret(out, baseDir, ['backups', plan], { file: p.password_file, env: p.password_env }, 'password');
    const names = new Set<string>();
    p.targets.forEach((t, i) => {
      if (names.has(t.name)) out.push({ path: ['backups', plan, 'targets', i, 'name'], message: `duplicate target name '${t.name}'` });
      names.add(t.name);
      secret(out, baseDir, ['backups', plan, 'targets', i], { file: t.password_file, env: t.password_env }, 'password');
      if (t.token_file) secret(out, baseDir, ['backups', plan, 'targets', i], { file: t.token_file, env: undefined }, 'token');
    });
  }
  for (const [slo, s] of Object.entries(config.slos)) {
    if (!config.services[s.service] && !config.databases[s.service]) {
      out.push({ path: ['slos', slo, 'service'], message: `no service named '${s.service}' under services` });
    }
    if (s.sla !== undefined && s.sla >= s.objective) {
      out.push({ path: ['slos', slo, 'sla'], message: `the SLA (${(s.sla * 100).toString()}%) must be looser than the objective (${(s.objective * 100).toString()}%): keep a margin between what you promise and what you aim for` });
    }
    if (s.objective >= 1) out.push({ path: ['slos', slo, 'objective'], message: 'an objective of 100% leaves no error budget; use at most 99.999%' });
  }
  return out;
}

function secret(out: Array<{ path: PathKey[]; message: string }>, baseDir: string, at: PathKey[], ref: { file: string | undefined; env: string | undefined }, kind: string): void {
  const key = ref.file !== undefined ? `${kind}_file` : `${kind}_env`;
  try {
    readSecret(ref, baseDir, pathText([...at, key]));
  } catch (err) {
    out.push({ path: [...at, key], message: (err as Error).message.replace(/^[^:]+: /, '') });
  }
}

/** Parses and validates config text. Returns the config or every problem found. */
export function parseConfigText(text: string, file: string): { config?: BulwarkConfig; problems: ConfigProblem[]; syntax: boolean } {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      syntax: true,
      problems: doc.errors.map((e) => {
        const pos = lc.linePos(e.pos[0]);
        return { line: pos.line, column: pos.col, path: '(yaml)', message: e.message.split('\n')[0] ?? e.message };
      }),
    };
  }
  let raw: unknown;
  try {
    raw = doc.toJS() ?? {};
  } catch (err) {
    // e.g. a "billion laughs" document: the yaml library refuses to expand it (resource exhaustion)
    return { syntax: true, problems: [{ line: 1, column: 1, path: '(yaml)', message: `${(err as Error).message} (aliases expand to too much)` }] };
  }
  const result = configSchema.safeParse(raw, { reportInput: true });
  if (!result.success) {
    const problems = result.error.issues.flatMap((i) => issueToProblems(i, doc, lc));
    return { syntax: false, problems: sortProblems(problems) };
  }
  const baseDir = dirname(resolve(file));
  const problems = crossChecks(result.data, baseDir).map((c) => ({ ...locate(doc, lc, c.path), path: pathText(c.path), message: c.message }));
  return problems.length > 0 ? { syntax: false, problems: sortProblems(problems) } : { config: result.data, problems: [], syntax: false };
}

function sortProblems(p: ConfigProblem[]): ConfigProblem[] {
  return p.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** Loads and validates a config file. Throws BulwarkError listing every problem as file:line:column. */
export function loadConfig(file: string): LoadedConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new BulwarkError('BULWARK_CONFIG_NOT_FOUND', `cannot read config file ${abs} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'pass the right path with -c, or create bulwark.yaml (see README: Configuration)',
    });
  }
  const r = parseConfigText(text, abs);
  if (!r.config) {
    const code = r.syntax ? 'BULWARK_CONFIG_SYNTAX' : 'BULWARK_CONFIG_INVALID';
    const n = r.problems.length;
    throw new BulwarkError(code, `${abs}: ${n} problem${n === 1 ? '' : 's'} found`, {
      details: r.problems.map((p) => `${abs}:${p.line}:${p.column}: ${p.path}: ${p.message}`),
      hint: 'fix each line above; `bulwark validate -c FILE` checks again without starting anything',
    });
  }
  const baseDir = dirname(abs);
  // state_dir, like every other path in the file, is relative to the config file's directory.
  const config = { ...r.config, state_dir: resolve(baseDir, r.config.state_dir) };
  return { config, file: abs, baseDir };
}

/**
 * Loads a config for one running instance: in cluster mode `instance` (from --instance or
 * BULWARK_INSTANCE) must name a listed instance, whose API address and state directory
 * (state_dir/<instance>) the returned config uses. Outside cluster mode it is loadConfig.
 */
export function loadInstanceConfig(file: string, instance: string | undefined): LoadedConfig {
  const loaded = loadConfig(file);
  const bound = bindInstance(loaded.config, instance, loaded.file);
  return { ...loaded, config: bound.config, instance: bound.instance };
}
