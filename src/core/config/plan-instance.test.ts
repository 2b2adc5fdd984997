// Tests of backups.<plan>.instance: in cluster mode a plan may name the instance whose host holds
// its paths; validate rejects an unknown instance there, and the key outside cluster mode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from './load.js';

const BASE = `
cluster:
  name: prod
  instances:
    - { name: bw-1, api: 127.0.0.1:7071, zone: a }
    - { name: bw-2, api: 127.0.0.1:7072, zone: b }
coordination: { kind: etcd, endpoints: [http://127.0.0.1:2379] }
backups:
  app:
    paths: [./data]
    instance: INST
    targets:
      - { name: nas, repo: ./repo, media: hdd }
`;

const messages = (text: string): string[] => parseConfigText(text, '/tmp/bulwark.yaml').problems.map((p) => `${p.path}: ${p.message}`);

test('a plan that names a listed instance validates', () => {
  const r = parseConfigText(BASE.replace('INST', 'bw-2'), '/tmp/bulwark.yaml');
  assert.deepEqual(r.problems, []);
  assert.equal(r.config?.backups['app']?.instance, 'bw-2');
});

test('validate rejects a plan whose instance is not listed, naming the instances', () => {
  const m = messages(BASE.replace('INST', 'bw-9'));
  assert.equal(m.length, 1, m.join('\n'));
  assert.match(m[0] ?? '', /^backups\.app\.instance: no instance named 'bw-9' under cluster\.instances \(instances: bw-1, bw-2\)/);
});

test('validate rejects instance: on a plan outside cluster mode', () => {
  const single = BASE.replace(/cluster:[\s\S]*?coordination: .*\n/, '').replace('INST', 'bw-1');
  const m = messages(single);
  assert.equal(m.length, 1, m.join('\n'));
  assert.match(m[0] ?? '', /^backups\.app\.instance: instance: 'bw-1' needs a cluster: section/);
});
