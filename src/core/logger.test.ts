import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from './logger.js';

test('log lines are JSON and secrets are redacted by key name', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const log = createLogger({ level: 'info', destination: sink });
  log.info({ token: 'tok-123', password: 'pw-456', target: { password: 'pw-789', name: 'nas' }, headers: { authorization: 'Bearer x' } }, 'hello');
  const out = lines.join('');
  for (const secret of ['tok-123', 'pw-456', 'pw-789', 'Bearer x']) assert.ok(!out.includes(secret), `${secret} leaked into the log`);
  const rec = JSON.parse(out) as { msg: string; target: { name: string; password: string } };
  assert.equal(rec.msg, 'hello');
  assert.equal(rec.target.name, 'nas');
  assert.equal(rec.target.password, '[redacted]');
});
