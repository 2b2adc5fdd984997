// Owns probe I/O: one HTTP, TCP or exec check of one node, bounded by a timeout, answering
// { ok, detail }. Each probe uses a fresh connection (a pooled one could hide a dead listener).
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { connect } from 'node:net';
import { parseHostPort } from '../core/config/types.js';

export interface ProbeSpec {
  readonly http?: { path: string; expect: number; body?: string | undefined; host?: string | undefined } | undefined;
  readonly tcp?: object | undefined;
  readonly exec?: { command: string[]; env?: Record<string, string> | undefined } | undefined;
  readonly timeout: number;
}

export interface ProbeTarget {
  readonly service: string;
  readonly node: string;
  readonly address: string;
}

export interface ProbeResult {
  readonly ok: boolean;
  readonly detail: string;
}

/** Runs one probe; never rejects. */
export type Prober = (target: ProbeTarget, spec: ProbeSpec) => Promise<ProbeResult>;

const MAX_BODY = 64 * 1024;

export const runProbe: Prober = (target, spec) => {
  if (spec.exec) return execProbe(target, spec.exec, spec.timeout);
  if (spec.http) return httpProbe(target.address, spec.http, spec.timeout);
  return tcpProbe(target.address, spec.timeout);
};

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ?? e.message ?? String(err);
}

export function httpProbe(address: string, http: NonNullable<ProbeSpec['http']>, timeout: number): Promise<ProbeResult> {
  const hp = parseHostPort(address);
  if (!hp) return Promise.resolve({ ok: false, detail: `bad address ${address}` });
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const headers: Record<string, string> = { 'user-agent': 'bulwark-health', connection: 'close' };
    if (http.host) headers['host'] = http.host;
    const req = request({ host: hp.host, port: hp.port, path: http.path, method: 'GET', agent: false, headers }, (res) => {
      const status = res.statusCode ?? 0;
      if (status !== http.expect) {
        res.resume();
        finish({ ok: false, detail: `http ${status} from ${http.path} (expected ${http.expect})` });
        return;
      }
      if (http.body === undefined) {
        res.resume();
        finish({ ok: true, detail: `http ${status}` });
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        if (body.length < MAX_BODY) body += d;
      });
      res.on('end', () =>
        finish(body.includes(http.body as string) ? { ok: true, detail: `http ${status}, body matched` } : { ok: false, detail: `http ${status} but the body does not contain '${http.body as string}'` }),
      );
      res.on('error', (err) => finish({ ok: false, detail: `http body: ${errText(err)}` }));
    });
    const timer = setTimeout(() => finish({ ok: false, detail: `http timeout after ${timeout} ms` }), timeout);
    req.on('error', (err) => finish({ ok: false, detail: `http ${errText(err)}` }));
    req.end();
  });
}

export function tcpProbe(address: string, timeout: number): Promise<ProbeResult> {
  const hp = parseHostPort(address);
  if (!hp) return Promise.resolve({ ok: false, detail: `bad address ${address}` });
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const sock = connect({ host: hp.host, port: hp.port }, () => finish({ ok: true, detail: 'tcp connect' }));
    sock.on('error', (err) => finish({ ok: false, detail: `tcp ${errText(err)}` }));
    const timer = setTimeout(() => finish({ ok: false, detail: `tcp connect timeout after ${timeout} ms` }), timeout);
  });
}

export function execProbe(target: ProbeTarget, exec: NonNullable<ProbeSpec['exec']>, timeout: number): Promise<ProbeResult> {
  const [cmd, ...args] = exec.command as [string, ...string[]];
  return new Promise((resolve) => {
    // stdout is discarded and only the tail of stderr kept: a passing check that prints a lot must
    // still pass (execFile's maxBuffer would kill it and fail the probe).
    const child = spawn(cmd, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...exec.env, BULWARK_SERVICE: target.service, BULWARK_NODE: target.node, BULWARK_ADDRESS: target.address },
    });
    let stderr = '';
    let done = false;
    const finish = (r: ProbeResult): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      // Answer at once: a grandchild still holding stderr open must not stretch the probe past its timeout.
      child.kill('SIGKILL');
      child.stderr?.destroy();
      finish({ ok: false, detail: `exec timeout after ${timeout} ms` });
    }, timeout);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      stderr = (stderr + d).slice(-4096);
    });
    child.once('error', (err) => finish({ ok: false, detail: `exec ${errText(err)}` }));
    child.once('close', (code) => {
      if (code === 0) return finish({ ok: true, detail: 'exit 0' });
      const tail = stderr.trim().split('\n').pop()?.slice(0, 200) ?? '';
      finish({ ok: false, detail: typeof code === 'number' ? `exit ${code}${tail ? `: ${tail}` : ''}` : `exec killed by ${child.signalCode ?? 'a signal'}` });
    });
  });
}
