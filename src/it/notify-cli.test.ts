// `bulwark notify test CHANNEL`: delivers a test document to a real local receiver and exits 0;
// exits 1 with BULWARK_NOTIFY_FAILED when the receiver is gone, 2 for an unknown channel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { freePort, runCli, scratchDir } from '../testing/helpers.js';

test('bulwark notify test: 0 when delivered, 1 when the receiver is down, 2 for an unknown channel', async () => {
  const s = scratchDir();
  const got: Array<{ kind: string; test: boolean; subject: string }> = [];
  const server = createServer((req, res) => {
    let b = '';
    req.on('data', (c: Buffer) => (b += c.toString('utf8')));
    req.on('end', () => {
      got.push(JSON.parse(b) as { kind: string; test: boolean; subject: string });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  try {
    const port = (server.address() as AddressInfo).port;
    const dead = await freePort();
    writeFileSync(
      join(s.dir, 'bulwark.yaml'),
      `notify:\n  channels:\n    hook: { type: webhook, url: "http://127.0.0.1:${port}/" }\n    gone: { type: webhook, url: "http://127.0.0.1:${dead}/", attempts: 1 }\n  routes: [{ channels: [hook] }]\n`,
    );
    const ok = await runCli(['notify', 'test', 'hook', '-c', join(s.dir, 'bulwark.yaml'), '--kind', 'rpo.breached', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { ok: boolean }).ok, true);
    assert.deepEqual(got.map((g) => [g.kind, g.test]), [['rpo.breached', true]]);
    const down = await runCli(['notify', 'test', 'gone', '-c', join(s.dir, 'bulwark.yaml')]);
    assert.equal(down.code, 1);
    assert.match(down.stderr, /BULWARK_NOTIFY_FAILED/);
    const unknown = await runCli(['notify', 'test', 'nope', '-c', join(s.dir, 'bulwark.yaml')]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /BULWARK_NOTIFY_UNKNOWN_CHANNEL.*nope/);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    s.cleanup();
  }
});
