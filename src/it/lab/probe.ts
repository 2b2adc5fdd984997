// Owns the small program the lab runs inside a namespace to look at the lab from there (the
// test process lives in the root namespace and cannot reach lab addresses itself). Prints one
// JSON line and exits 0 whatever happened, except `serve`, which runs until killed.
//   probe.js serve PORT                 TCP (answers "hello" and closes) + UDP (prints "udp FROM MSG")
//   probe.js tcp HOST PORT [TIMEOUT_MS] {"ok":true,"data":"..."} or {"ok":false,"error":"..."}
//   probe.js udp HOST PORT MSG          sends one datagram
//   probe.js sql HOST PORT SQL          {"ok":true,"rows":[...]} (PGUSER, PGPASSWORD, PGDATABASE from env)
//   probe.js http URL [TOKEN_FILE]      {"ok":true,"status":200,"body":...} (Bearer token read from the file)
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import pg from 'pg';

type Result = Record<string, unknown>;

function out(r: Result): void {
  process.stdout.write(JSON.stringify(r) + '\n');
}

function serve(port: number): void {
  const tcp = createServer((s) => {
    s.on('error', () => undefined);
    s.end('hello\n');
  });
  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => process.stdout.write(`udp ${rinfo.address} ${msg.toString()}\n`));
  let ready = 0;
  const up = (): void => {
    if (++ready === 2) process.stdout.write('ready\n');
  };
  tcp.listen(port, '0.0.0.0', up);
  udp.bind(port, '0.0.0.0', up);
}

function tcp(host: string, port: number, timeoutMs: number): Promise<Result> {
  return new Promise((resolve) => {
    let data = '';
    const s = connect({ host, port });
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ ok: false, error: 'timeout' });
    }, timeoutMs);
    s.on('data', (d) => (data += d.toString()));
    s.on('end', () => {
      clearTimeout(timer);
      resolve({ ok: true, data });
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ ok: false, error: err.code ?? err.message });
    });
  });
}

function udp(host: string, port: number, msg: string): Promise<Result> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.send(msg, port, host, (err) => {
      s.close();
      resolve(err ? { ok: false, error: err.message } : { ok: true });
    });
  });
}

async function sql(host: string, port: number, text: string): Promise<Result> {
  const c = new pg.Client({
    host,
    port,
    user: process.env['PGUSER'] ?? 'postgres',
    database: process.env['PGDATABASE'] ?? 'postgres',
    connectionTimeoutMillis: 2000,
    query_timeout: 10_000,
    keepAlive: true,
  });
  c.on('error', () => undefined);
  try {
    await c.connect();
    const r = await c.query(text);
    return { ok: true, rows: r.rows };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  } finally {
    void c.end().catch(() => undefined);
  }
}

async function http(url: string, tokenFile: string | undefined): Promise<Result> {
  try {
    const headers: Record<string, string> = {};
    if (tokenFile) headers['authorization'] = `Bearer ${readFileSync(tokenFile, 'utf8').trim()}`;
    const r = await fetch(url, { headers, signal: AbortSignal.timeout(3000) });
    const text = await r.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { ok: true, status: r.status, body };
  } catch (err) {
    return { ok: false, error: (err as Error).cause ? String((err as Error).cause) : (err as Error).message };
  }
}

async function main(argv: string[]): Promise<void> {
  const [cmd, a, b, c, d] = argv;
  switch (cmd) {
    case 'serve':
      serve(Number(a));
      return;
    case 'tcp':
      out(await tcp(a ?? '', Number(b), Number(c ?? 1000)));
      break;
    case 'udp':
      out(await udp(a ?? '', Number(b), c ?? ''));
      break;
    case 'sql':
      out(await sql(a ?? '', Number(b), c ?? ''));
      break;
    case 'http':
      out(await http(a ?? '', b));
      break;
    default:
      out({ ok: false, error: `unknown probe command ${cmd} ${d ?? ''}` });
  }
  process.exit(0);
}

void main(process.argv.slice(2));
