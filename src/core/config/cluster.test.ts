import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { scratchDir } from '../../testing/helpers.js';
import { BulwarkError } from '../errors.js';
import { bindInstance, instanceName } from './cluster.js';
import { loadInstanceConfig, parseConfigText } from './load.js';

const CLUSTER = `
cluster:
  name: prod
  instances:
    - { name: bw-1, api: 10.0.0.1:7070, zone: a }
    - { name: bw-2, api: 10.0.0.2:7070, zone: b }
    - { name: bw-3, api: 10.0.0.3:7070, zone: c }
api: { token_env: TEST_CLUSTER_TOKEN }
state_dir: ./var
coordination: { kind: etcd, endpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379, http://10.0.0.3:2379] }
databases:
  main:
    engine: postgres
    listen: 0.0.0.0:6432
    nodes:
      - { name: pg-1, instance: bw-1, host: 10.0.0.1, port: 5432, data_dir: /var/lib/bulwark/pg-1 }
      - { name: pg-2, instance: bw-2, host: 10.0.0.2, port: 5432, data_dir: /var/lib/bulwark/pg-2 }
`;

process.env['TEST_CLUSTER_TOKEN'] = 'cluster-test-token';

function messages(text: string): string[] {
  return parseConfigText(text, '/tmp/bulwark.yaml').problems.map((p) => `${p.path}: ${p.message}`);
}

test('a three-instance cluster on etcd validates', () => {
  const r = parseConfigText(CLUSTER, '/tmp/bulwark.yaml');
  assert.deepEqual(r.problems, []);
  assert.equal(r.config?.cluster?.instances.length, 3);
  assert.equal(r.config?.databases['main']?.nodes[1]?.instance, 'bw-2');
});

test('validate rejects a cluster on local coordination', () => {
  const m = messages(CLUSTER.replace(/coordination: .*\n/, 'coordination: { kind: local }\n'));
  assert.equal(m.length, 1, m.join('\n'));
  assert.match(m[0] ?? '', /^coordination: cluster mode needs coordination: \{ kind: etcd/);
});

test('validate rejects a node whose instance is not listed, and a node without an instance', () => {
  const m = messages(CLUSTER.replace('instance: bw-2,', 'instance: bw-9,').replace('{ name: pg-1, instance: bw-1,', '{ name: pg-1,'));
  assert.equal(m.length, 2, m.join('\n'));
  assert.ok(m.some((x) => x.startsWith("databases.main.nodes[1].instance: no instance named 'bw-9'") && x.includes('bw-1, bw-2, bw-3')), m.join('\n'));
  assert.ok(m.some((x) => x.startsWith('databases.main.nodes[0]: in cluster mode every node names the instance')), m.join('\n'));
});

test('validate rejects a remote host outside cluster mode, and instance: without a cluster', () => {
  const single = `
databases:
  main:
    engine: postgres
    listen: 127.0.0.1:6432
    nodes:
      - { name: pg-1, host: 127.0.0.1, port: 5433, data_dir: ./pg-1 }
      - { name: pg-2, host: 10.0.0.2, port: 5434, data_dir: ./pg-2 }
      - { name: pg-3, instance: bw-3, port: 5435, data_dir: ./pg-3 }
`;
  const m = messages(single);
  assert.equal(m.length, 2, m.join('\n'));
  assert.ok(m.some((x) => x.startsWith('databases.main.nodes[1].host: host 10.0.0.2 is not this machine')), m.join('\n'));
  assert.ok(m.some((x) => x.startsWith("databases.main.nodes[2].instance: instance: 'bw-3' needs a cluster: section")), m.join('\n'));
  // the same nodes on loopback are fine
  assert.deepEqual(messages(single.replace('10.0.0.2', '127.0.0.1').replace('instance: bw-3, ', '')), []);
});

test('validate rejects duplicate instances, a wildcard api address, and an api off loopback without a token', () => {
  const m = messages(
    CLUSTER.replace('{ name: bw-2, api: 10.0.0.2:7070', '{ name: bw-1, api: 10.0.0.1:7070').replace('10.0.0.3:7070', '0.0.0.0:7070').replace('api: { token_env: TEST_CLUSTER_TOKEN }\n', ''),
  );
  assert.ok(m.some((x) => x.includes("two instances are named 'bw-1'")), m.join('\n'));
  assert.ok(m.some((x) => x.includes('uses the API address 10.0.0.1:7070 of instance bw-1')), m.join('\n'));
  assert.ok(m.some((x) => x.includes('not a wildcard')), m.join('\n'));
  assert.ok(m.some((x) => x.includes('cluster mode requires api.token_file or api.token_env')), m.join('\n'));
});

test('standby: cold is refused in cluster mode with the reason', () => {
  const text = CLUSTER.replace('    listen: 0.0.0.0:6432\n', '    listen: 0.0.0.0:6432\n    standby: cold\n    restore_from: p\n    wal_archive: /srv/wal\n') + `
backups:
  p:
    paths: [./data]
    targets: [{ name: a, repo: /srv/a, media: hdd }]
`;
  const m = messages(text);
  assert.ok(m.some((x) => x.startsWith('databases.main.standby: standby: cold is not supported in cluster mode yet')), m.join('\n'));
});

test('binding an instance: its api address, its own state directory; unknown or missing names are refused', () => {
  const config = parseConfigText(CLUSTER, '/tmp/bulwark.yaml').config;
  assert.ok(config);
  const b = bindInstance({ ...config, state_dir: '/srv/bulwark/var' }, 'bw-2', '/tmp/bulwark.yaml');
  assert.equal(b.instance?.zone, 'b');
  assert.equal(b.config.api.listen, '10.0.0.2:7070');
  assert.equal(b.config.state_dir, '/srv/bulwark/var/bw-2');
  assert.throws(() => bindInstance(config, 'bw-7', '/tmp/bulwark.yaml'), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_CLUSTER_INSTANCE' && /bw-1, bw-2, bw-3/.test(e.hint ?? ''));
  assert.throws(() => bindInstance(config, undefined, '/tmp/bulwark.yaml'), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_CLUSTER_INSTANCE' && /--instance NAME or set BULWARK_INSTANCE/.test(e.hint ?? ''));
  const single = parseConfigText('', '/tmp/bulwark.yaml').config;
  assert.ok(single);
  assert.throws(() => bindInstance(single, 'bw-1', '/tmp/bulwark.yaml'), (e: unknown) => e instanceof BulwarkError && e.code === 'BULWARK_CLUSTER_INSTANCE');
  assert.equal(bindInstance(single, undefined, '/tmp/bulwark.yaml').config, single);
});

test('the instance comes from --instance, else BULWARK_INSTANCE', () => {
  assert.equal(instanceName('bw-1', { BULWARK_INSTANCE: 'bw-2' }), 'bw-1');
  assert.equal(instanceName(undefined, { BULWARK_INSTANCE: 'bw-2' }), 'bw-2');
  assert.equal(instanceName(undefined, { BULWARK_INSTANCE: '' }), undefined);
});

test('loadInstanceConfig resolves state_dir against the file, then adds the instance', () => {
  const dir = scratchDir('bulwark-cluster-config-');
  const file = join(dir.dir, 'bulwark.yaml');
  writeFileSync(file, CLUSTER);
  const l = loadInstanceConfig(file, 'bw-3');
  assert.equal(l.config.state_dir, join(dir.dir, 'var', 'bw-3'));
  assert.equal(l.instance?.name, 'bw-3');
  dir.cleanup();
});
