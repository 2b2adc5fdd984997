// Unit tests of the single-point-of-failure audit: pure logic over parsed configs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configSchema } from '../core/config/schema.js';
import { auditSpof } from './spof.js';

const cfg = (raw: unknown) => configSchema.parse(raw);
const svc = (backends: Array<{ name: string; address: string; standby?: boolean }>, extra: Record<string, unknown> = {}) => ({
  listen: '10.0.0.1:8080',
  backends,
  health: { tcp: {}, interval: '1s' },
  ...extra,
});
const etcd = { kind: 'etcd', endpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379', 'http://10.0.0.3:2379'] };

test('spof: two backends on two hosts behind several instances on etcd is redundant at every layer', () => {
  const f = auditSpof(cfg({ coordination: etcd, services: { web: svc([{ name: 'a', address: '10.0.1.1:80' }, { name: 'b', address: '10.0.1.2:80' }]) } }));
  assert.deepEqual(f, []);
});

test('spof: a service with one backend is a violation naming the backend', () => {
  const f = auditSpof(cfg({ coordination: etcd, services: { web: svc([{ name: 'only', address: '10.0.1.1:80' }]) } }));
  assert.deepEqual(f.map((x) => [x.subject, x.severity]), [['services.web', 'violation']]);
  assert.match(f[0]?.problem ?? '', /one backend \(only\)/);
});

test('spof: every backend on one host (loopback counts as one machine) is a violation', () => {
  const f = auditSpof(cfg({ coordination: etcd, services: { web: svc([{ name: 'a', address: '127.0.0.1:81' }, { name: 'b', address: '127.0.0.2:82' }]) } }));
  assert.equal(f.length, 1);
  assert.match(f[0]?.problem ?? '', /every backend runs on this machine/);
});

test('spof: one Bulwark instance in the data path is a control-plane violation; a backup-only config is not', () => {
  const f = auditSpof(cfg({ services: { web: svc([{ name: 'a', address: '10.0.1.1:80' }, { name: 'b', address: '10.0.1.2:80' }]) } }));
  assert.deepEqual(f.map((x) => [x.layer, x.severity]), [['control-plane', 'violation']]);
  assert.match(f[0]?.fix ?? '', /coordination: \{ kind: etcd \}/);
  assert.deepEqual(auditSpof(cfg({})), []);
});

test('spof: databases with one node, or every node on one host, are violations; a cold single node is a warning', () => {
  const node = (name: string, host: string, port: number) => ({ name, host, port, data_dir: `/var/lib/${name}` });
  const one = auditSpof(cfg({ coordination: etcd, databases: { main: { engine: 'postgres', listen: '10.0.0.1:6432', nodes: [node('pg-1', '10.0.2.1', 5432)] } } }));
  assert.deepEqual(one.map((x) => [x.subject, x.severity]), [['databases.main', 'violation']]);
  const sameHost = auditSpof(cfg({ coordination: etcd, databases: { main: { engine: 'postgres', listen: '10.0.0.1:6432', nodes: [node('pg-1', '10.0.2.1', 5432), node('pg-2', '10.0.2.1', 5433)] } } }));
  assert.match(sameHost[0]?.problem ?? '', /every node runs on 10\.0\.2\.1/);
  const sync = auditSpof(cfg({ coordination: etcd, databases: { main: { engine: 'postgres', listen: '10.0.0.1:6432', synchronous: true, nodes: [node('pg-1', '10.0.2.1', 5432), node('pg-2', '10.0.2.2', 5432)] } } }));
  assert.deepEqual(sync.map((x) => x.severity), ['warning']);
});

test('spof: a service without health checks and etcd with one endpoint are warnings', () => {
  const f = auditSpof(
    cfg({
      coordination: { kind: 'etcd', endpoints: ['http://10.0.0.1:2379'] },
      services: { web: { listen: '10.0.0.1:8080', backends: [{ name: 'a', address: '10.0.1.1:80' }, { name: 'b', address: '10.0.1.2:80' }] } },
    }),
  );
  assert.deepEqual(f.map((x) => [x.subject, x.severity]), [
    ['services.web', 'warning'],
    ['coordination.endpoints', 'warning'],
  ]);
});
