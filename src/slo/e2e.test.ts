// End to end: `bulwark up` with the default subsystems (health, proxy, slo) in front of one real
// HTTP backend. The backend goes away for a while and comes back; the SLO report (from the running
// daemon, then offline from the state store) charges exactly the time the service had no healthy
// backend, and requests that failed through the proxy count against the availability SLO.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { exited, freePort, runCli, scratchDir, startCli, waitFor } from '../testing/helpers.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Report } from './engine.js';

function backend(port: number): Promise<Server> {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(req.url === '/health' ? 'ok' : 'hello');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function closeServer(s: Server): Promise<void> {
  return new Promise((resolve) => {
    s.close(() => resolve());
    s.closeAllConnections();
  });
}

async function get(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

interface Ev {
  at: number;
  kind: string;
  subject: string;
  message: string;
}

test('after the only backend of a live service is down for a measured time, the report charges that time to the budget', async () => {
  const { dir, cleanup } = scratchDir('bulwark-slo-e2e-');
  const [apiPort, listenPort, backendPort] = [await freePort(), await freePort(), await freePort()];
  const file = join(dir, 'bulwark.yaml');
  writeFileSync(
    file,
    `api: { listen: 127.0.0.1:${apiPort} }
state_dir: ${join(dir, 'var')}
services:
  web:
    listen: 127.0.0.1:${listenPort}
    backends: [{ name: web-1, address: 127.0.0.1:${backendPort} }]
    health: { http: { path: /health }, interval: 100ms, timeout: 200ms, rise: 1, fall: 1 }
slos:
  web-probe: { service: web, sli: probe, objective: 99.9%, sla: 99.5%, window: 30d }
  web-availability: { service: web, objective: 99.9%, window: 30d }
`,
  );
  let server = await backend(backendPort);
  const child = startCli(['up', '-c', file]);
  const api = `http://127.0.0.1:${apiPort}`;
  const proxied = `http://127.0.0.1:${listenPort}/`;
  try {
    await waitFor(async () => (await get(proxied)) === 200, { timeoutMs: 20_000, what: 'the proxy to serve through web-1' });
    for (let i = 0; i < 20; i++) assert.equal(await get(proxied), 200);

    // The outage: the backend goes away for about two seconds; clients keep calling.
    await closeServer(server);
    const downAt = Date.now();
    let failed = 0;
    while (Date.now() - downAt < 2000) {
      if ((await get(proxied)) !== 200) failed++;
      await new Promise((r) => setTimeout(r, 20));
    }
    server = await backend(backendPort);
    const measured = Date.now() - downAt;
    await waitFor(async () => (await get(proxied)) === 200, { timeoutMs: 10_000, what: 'the proxy to recover' });
    assert.ok(failed > 0, 'requests failed during the outage');

    // The health subsystem's own record of the outage (transitions, timestamped by the daemon).
    const events = await waitFor(async () => {
      const body = (await (await fetch(`${api}/v1/events?limit=200`)).json()) as { events: Ev[] };
      const t = body.events.filter((e) => e.kind === 'health.transition' && e.subject === 'web/web-1').reverse();
      const down = t.find((e) => /-> down/.test(e.message));
      const up = down && t.find((e) => e.at > down.at && /-> up/.test(e.message));
      return down && up ? { down, up } : undefined;
    }, { what: 'the down and up transitions of web-1' });
    const outage = events.up.at - events.down.at;

    const online = await runCli(['slo', 'report', '-c', file, '--json']);
    assert.equal(online.code, 0, online.stderr);
    const live = JSON.parse(online.stdout) as Report & { source: string };
    assert.equal(live.source, 'daemon');
    const probe = live.slos.find((s) => s.name === 'web-probe');
    assert.ok(probe);
    const consumed = probe.total - probe.good;
    // Exactly the time the daemon had no healthy backend for the service...
    assert.equal(consumed, outage, `charged ${consumed} ms, health saw ${outage} ms`);
    assert.ok(Math.abs(probe.budget.consumed_minutes * 60_000 - outage) < 1e-6);
    assert.ok(Math.abs(probe.budget.consumed_ratio - outage / (0.001 * 30 * 86_400_000)) < 1e-12);
    // ...which is the measured outage, give or take the detection lag of the probes (interval 100ms, timeout 200ms).
    assert.ok(consumed > measured - 1500 && consumed < measured + 1500, `charged ${consumed} ms for an outage measured at ${measured} ms`);
    assert.equal(probe.sla?.status, probe.value !== null && probe.value >= 0.999 ? 'met' : probe.value !== null && probe.value >= 0.995 ? 'at-risk' : 'breached');
    assert.ok(probe.missing_data_ms > 0, 'the window before Bulwark started is missing data');
    assert.ok(probe.predicted && probe.predicted.parts.length === 2);

    const avail = live.slos.find((s) => s.name === 'web-availability');
    assert.ok(avail);
    assert.ok(avail.total - avail.good > 0, 'failed requests through the proxy count');
    assert.ok(avail.good >= 21);

    const human = await runCli(['slo', 'report', '-c', file]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /from the running daemon/);
    assert.match(human.stdout, /web-probe .*probe/);

    // Maintenance windows through the API; alerts list.
    const post = await fetch(`${api}/v1/maintenance`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ duration: '10m', services: ['web'], reason: 'drill' }) });
    assert.equal(post.status, 200);
    const added = (await post.json()) as { id: number; services: string[] };
    assert.deepEqual(added.services, ['web']);
    const listed = (await (await fetch(`${api}/v1/maintenance`)).json()) as { windows: Array<{ id: number; reason: string }> };
    assert.deepEqual(listed.windows.map((w) => [w.id, w.reason]), [[added.id, 'drill']]);
    const badPost = await fetch(`${api}/v1/maintenance`, { method: 'POST', body: JSON.stringify({ end: 'tomorrow' }) });
    assert.equal(badPost.status, 400);
    assert.equal(((await badPost.json()) as { error: { code: string } }).error.code, 'BULWARK_SLO_MAINTENANCE_INVALID');
    assert.equal((await fetch(`${api}/v1/maintenance/${added.id}`, { method: 'DELETE' })).status, 200);
    const again = await fetch(`${api}/v1/maintenance/${added.id}`, { method: 'DELETE' });
    assert.equal(again.status, 404);
    assert.equal(((await again.json()) as { error: { code: string } }).error.code, 'BULWARK_SLO_MAINTENANCE_NOT_FOUND');
    const alerts = (await (await fetch(`${api}/v1/slo/alerts`)).json()) as { alerts: unknown[] };
    assert.ok(Array.isArray(alerts.alerts));
    const status = (await (await fetch(`${api}/v1/status`)).json()) as { subsystems: { slo: { rows: Array<Record<string, string>> } } };
    assert.deepEqual(status.subsystems.slo.rows.map((r) => r['slo']), ['web-probe', 'web-availability']);
    assert.match(status.subsystems.slo.rows[0]?.['value'] ?? '', /^\d+\.\d{4}%$/);

    // Offline: the daemon stops; the report comes from the state store, with the same charge.
    child.kill('SIGTERM');
    assert.equal((await exited(child)).code, 0, child.output().stderr);
    const offline = await runCli(['slo', 'report', '-c', file, '--json']);
    assert.equal(offline.code, 0, offline.stderr);
    const stored = JSON.parse(offline.stdout) as Report & { source: string };
    assert.equal(stored.source, 'state-store');
    const probe2 = stored.slos.find((s) => s.name === 'web-probe');
    assert.equal((probe2?.total ?? 0) - (probe2?.good ?? 0), outage);
    const avail2 = stored.slos.find((s) => s.name === 'web-availability');
    assert.ok((avail2?.total ?? 0) >= avail.total);
    const text = await runCli(['slo', 'report', '-c', file]);
    assert.match(text.stdout, /from the state store/);
  } finally {
    child.kill('SIGKILL');
    await exited(child);
    await closeServer(server);
    cleanup();
  }
});

test('slo report: no daemon and no state store is a clear error; an unknown SLO is a usage error', async () => {
  const { dir, cleanup } = scratchDir('bulwark-slo-cli-');
  try {
    const port = await freePort();
    const file = join(dir, 'bulwark.yaml');
    writeFileSync(file, `api: { listen: 127.0.0.1:${port} }
state_dir: ${join(dir, 'var')}
services:
  web: { listen: 127.0.0.1:0, backends: [{ name: web-1, address: 127.0.0.1:1 }] }
slos:
  web-availability: { service: web, objective: 99.9% }
`);
    const r = await runCli(['slo', 'report', '-c', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /BULWARK_SLO_NO_STATE/);
    const noDaemon = await runCli(['slo', 'report', '--api', `http://127.0.0.1:${port}`]);
    assert.equal(noDaemon.code, 1);
    assert.match(noDaemon.stderr, /BULWARK_API_UNREACHABLE/);
    const offlineNoConfig = await runCli(['slo', 'report', '--offline']);
    assert.equal(offlineNoConfig.code, 2);
    SqliteStore.open(join(dir, 'var')).close(); // a state store the daemon never recorded in
    const unknown = await runCli(['slo', 'report', '-c', file, '--slo', 'nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /BULWARK_SLO_UNKNOWN: no SLO named 'nope'/);
    const empty = await runCli(['slo', 'report', '-c', file, '--json']);
    assert.equal(empty.code, 0, empty.stderr);
    const report = JSON.parse(empty.stdout) as Report & { source: string };
    assert.equal(report.source, 'state-store');
    assert.equal(report.slos[0]?.value, null);
    assert.equal(report.slos[0]?.budget.remaining_ratio, 1);
    const text = await runCli(['slo', 'report', '-c', file]);
    assert.match(text.stdout, /web-availability .*no data/);
  } finally {
    cleanup();
  }
});
