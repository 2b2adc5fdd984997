// Owns the four kinds of channel and how each delivers a notification document: webhook (JSON POST
// signed with HMAC-SHA256, retried), command hook (JSON on stdin, BULWARK_EVENT_* in the
// environment, kind/state/subject as arguments like Patroni's callbacks), Alertmanager (API v2,
// active alerts re-sent until resolved) and email (SMTP through nodemailer).
import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import type { Clock, Timer } from '../core/clock.js';
import type { NotifyChannelConfig } from '../core/config/notify-schema.js';
import { BulwarkError, describeError } from '../core/errors.js';
import { readSecret } from '../core/secrets.js';
import { VERSION } from '../core/version.js';
import { textBody, title, type NotificationDocument } from './message.js';
import { PermanentError, withRetries } from './retry.js';

export interface Channel {
  readonly name: string;
  readonly type: NotifyChannelConfig['type'];
  /** Delivers one notification; throws BULWARK_NOTIFY_FAILED when every attempt failed. */
  send(doc: NotificationDocument, key: string): Promise<void>;
  close(): void;
}

export interface ChannelDeps {
  clock: Clock;
  baseDir: string;
}

/** The signature header value for a body: "sha256=" and the hex HMAC-SHA256 of the raw bytes. */
export function signBody(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

function failed(channel: string, err: unknown): BulwarkError {
  if (err instanceof BulwarkError) return err;
  return new BulwarkError('BULWARK_NOTIFY_FAILED', `notification channel '${channel}' failed: ${describeError(err)}`, {
    hint: `check the receiver and the channel's settings under notify.channels.${channel}; try \`bulwark notify test ${channel} -c FILE\``,
    cause: err,
  });
}

/** POSTs JSON; 2xx is success, 4xx (but 429) is permanent, the rest is retried. */
async function postJson(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'user-agent': `bulwark/${VERSION}`, ...headers }, body, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
    throw new Error(`${url}: ${cause}`);
  }
  const text = await res.text().catch(() => '');
  if (res.ok) return;
  const msg = `${url} answered ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
  if (res.status >= 400 && res.status < 500 && res.status !== 429) throw new PermanentError(msg);
  throw new Error(msg);
}

class WebhookChannel implements Channel {
  readonly type = 'webhook';
  readonly #cfg: Extract<NotifyChannelConfig, { type: 'webhook' }>;
  readonly #secret: string | undefined;
  readonly #clock: Clock;

  constructor(readonly name: string, cfg: Extract<NotifyChannelConfig, { type: 'webhook' }>, deps: ChannelDeps) {
    this.#cfg = cfg;
    this.#clock = deps.clock;
    this.#secret = readSecret({ file: cfg.secret_file, env: cfg.secret_env }, deps.baseDir, `notify.channels.${name}`);
  }

  async send(doc: NotificationDocument): Promise<void> {
    const body = JSON.stringify(doc);
    const headers: Record<string, string> = { ...this.#cfg.headers, 'x-bulwark-event': doc.kind, 'x-bulwark-delivery': doc.id };
    if (this.#secret !== undefined) headers['x-bulwark-signature-256'] = signBody(this.#secret, body);
    try {
      await withRetries(this.#clock, this.#cfg.attempts, () => postJson(this.#cfg.url, body, headers, this.#cfg.timeout));
    } catch (err) {
      throw failed(this.name, err);
    }
  }

  close(): void {}
}

class CommandChannel implements Channel {
  readonly type = 'command';
  readonly #cfg: Extract<NotifyChannelConfig, { type: 'command' }>;
  readonly #clock: Clock;
  readonly #cwd: string;

  constructor(readonly name: string, cfg: Extract<NotifyChannelConfig, { type: 'command' }>, deps: ChannelDeps) {
    this.#cfg = cfg;
    this.#clock = deps.clock;
    this.#cwd = deps.baseDir;
  }

  async send(doc: NotificationDocument): Promise<void> {
    try {
      await withRetries(this.#clock, this.#cfg.attempts, () => this.#run(doc));
    } catch (err) {
      throw failed(this.name, err);
    }
  }

  #run(doc: NotificationDocument): Promise<void> {
    const [cmd, ...args] = this.#cfg.command as [string, ...string[]];
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.#cfg.env,
      BULWARK_EVENT_ID: doc.id,
      BULWARK_EVENT_KIND: doc.kind,
      BULWARK_EVENT_SEVERITY: doc.severity,
      BULWARK_EVENT_STATE: doc.state,
      BULWARK_EVENT_SUBJECT: doc.subject,
      BULWARK_EVENT_MESSAGE: doc.message,
      BULWARK_EVENT_AT: doc.at,
      BULWARK_EVENT_COUNT: String(doc.count),
      BULWARK_EVENT_TEST: doc.test ? '1' : '0',
    };
    return new Promise<void>((resolve, reject) => {
      const child = spawn(cmd, [...args, doc.kind, doc.state, doc.subject], { cwd: this.#cwd, env, stdio: ['pipe', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => {
        stderr = (stderr + c.toString('utf8')).slice(-1000);
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), this.#cfg.timeout);
      child.on('error', (err) => {
        clearTimeout(timer);
        reject(new PermanentError(`cannot run ${cmd}: ${err.message}`));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`${cmd} ${signal ? `was killed (${signal}${signal === 'SIGKILL' ? `, timeout ${this.#cfg.timeout} ms` : ''})` : `exited ${code ?? '?'}`}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' / ')}` : ''}`));
      });
      child.stdin.on('error', () => {}); // a hook that does not read stdin is fine
      child.stdin.end(`${JSON.stringify(doc)}\n`);
    });
  }

  close(): void {}
}

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
}

/** Alertmanager API v2: firing alerts are re-sent every minute (endsAt 5 min ahead) until resolved, as Prometheus does. */
class AlertmanagerChannel implements Channel {
  readonly type = 'alertmanager';
  static readonly RESEND_MS = 60_000;
  readonly #cfg: Extract<NotifyChannelConfig, { type: 'alertmanager' }>;
  readonly #clock: Clock;
  readonly #active = new Map<string, AmAlert>();
  #timer: Timer | undefined;

  constructor(readonly name: string, cfg: Extract<NotifyChannelConfig, { type: 'alertmanager' }>, deps: ChannelDeps) {
    this.#cfg = cfg;
    this.#clock = deps.clock;
  }

  /** The alert for a document; its labels (alertname, key, subject) are its identity across firing and resolved. */
  alertFor(doc: NotificationDocument, key: string): AmAlert {
    const now = this.#clock.now();
    const oneShot = doc.one_shot;
    const alertname = `Bulwark_${key.split(':')[0] ?? doc.kind}`.replace(/[^A-Za-z0-9_]/g, '_');
    return {
      labels: { alertname, severity: doc.severity, subject: doc.subject, bulwark_key: key, instance: doc.instance, ...(doc.test ? { test: 'true' } : {}) },
      annotations: { summary: doc.message, kind: doc.kind, description: textBody(doc) },
      startsAt: doc.first_at,
      endsAt: new Date(doc.state === 'resolved' ? now : oneShot ? Date.parse(doc.at) + this.#cfg.one_shot_ttl : now + 5 * AlertmanagerChannel.RESEND_MS).toISOString(),
    };
  }

  async send(doc: NotificationDocument, key: string): Promise<void> {
    const alert = this.alertFor(doc, key);
    if (doc.state === 'firing' && !doc.one_shot && !doc.test) this.#active.set(key, alert);
    else this.#active.delete(key);
    this.#schedule();
    try {
      await this.#post([alert]);
    } catch (err) {
      throw failed(this.name, err);
    }
  }

  #post(alerts: AmAlert[]): Promise<void> {
    const url = `${this.#cfg.url.replace(/\/+$/, '')}/api/v2/alerts`;
    return withRetries(this.#clock, this.#cfg.attempts, () => postJson(url, JSON.stringify(alerts), {}, this.#cfg.timeout));
  }

  #schedule(): void {
    if (this.#timer || this.#active.size === 0) return;
    this.#timer = this.#clock.setTimeout(() => {
      this.#timer = undefined;
      const until = new Date(this.#clock.now() + 5 * AlertmanagerChannel.RESEND_MS).toISOString();
      const alerts = [...this.#active.values()].map((a) => ({ ...a, endsAt: until }));
      void this.#post(alerts).catch(() => undefined); // the next resend tries again
      this.#schedule();
    }, AlertmanagerChannel.RESEND_MS);
  }

  close(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }
}

class EmailChannel implements Channel {
  readonly type = 'email';
  readonly #cfg: Extract<NotifyChannelConfig, { type: 'email' }>;
  readonly #clock: Clock;
  readonly #password: string | undefined;

  constructor(readonly name: string, cfg: Extract<NotifyChannelConfig, { type: 'email' }>, deps: ChannelDeps) {
    this.#cfg = cfg;
    this.#clock = deps.clock;
    this.#password = readSecret({ file: cfg.password_file, env: cfg.password_env }, deps.baseDir, `notify.channels.${name}`);
  }

  async send(doc: NotificationDocument): Promise<void> {
    const { createTransport } = await import('nodemailer');
    const [, host = '', port = '25'] = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(this.#cfg.smtp) ?? [];
    const t = this.#cfg.timeout;
    const transport = createTransport({
      host: host.replace(/^\[|\]$/g, ''),
      port: Number(port),
      secure: this.#cfg.tls,
      requireTLS: this.#cfg.require_tls,
      connectionTimeout: t,
      greetingTimeout: t,
      socketTimeout: t,
      ...(this.#cfg.username !== undefined ? { auth: { user: this.#cfg.username, pass: this.#password ?? '' } } : {}),
    });
    try {
      await withRetries(this.#clock, this.#cfg.attempts, () =>
        transport.sendMail({
          from: this.#cfg.from,
          to: this.#cfg.to,
          subject: title(doc),
          text: textBody(doc),
          headers: { 'X-Bulwark-Event': doc.kind, 'X-Bulwark-Severity': doc.severity, 'X-Bulwark-State': doc.state, 'X-Bulwark-Delivery': doc.id },
        }),
      );
    } catch (err) {
      throw failed(this.name, err);
    } finally {
      transport.close();
    }
  }

  close(): void {}
}

/** Builds a channel from its config; reads its secrets now (a missing secret fails the start, not the first incident). */
export function buildChannel(name: string, cfg: NotifyChannelConfig, deps: ChannelDeps): Channel {
  switch (cfg.type) {
    case 'webhook':
      return new WebhookChannel(name, cfg, deps);
    case 'command':
      return new CommandChannel(name, cfg, deps);
    case 'alertmanager':
      return new AlertmanagerChannel(name, cfg, deps);
    case 'email':
      return new EmailChannel(name, cfg, deps);
  }
}
