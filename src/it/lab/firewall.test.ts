// The partition rules as data: which sources each host drops, and the nft script that says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dropsFor, nftScript } from './firewall.js';

test('drops are at the receiver: a one-way block drops only at its destination', () => {
  const blocks = [{ from: '198.18.1.1', to: '198.18.1.2' }];
  assert.deepEqual(dropsFor('198.18.1.2', blocks), ['198.18.1.1']);
  assert.deepEqual(dropsFor('198.18.1.1', blocks), []);
  assert.deepEqual(dropsFor('198.18.1.3', blocks), []);
});

test('a both-ways block drops at both ends; duplicates are merged', () => {
  const blocks = [
    { from: '198.18.1.1', to: '198.18.1.2' },
    { from: '198.18.1.2', to: '198.18.1.1' },
    { from: '198.18.1.3', to: '198.18.1.1' },
    { from: '198.18.1.3', to: '198.18.1.1' },
  ];
  assert.deepEqual(dropsFor('198.18.1.1', blocks), ['198.18.1.2', '198.18.1.3']);
  assert.deepEqual(dropsFor('198.18.1.2', blocks), ['198.18.1.1']);
});

test('the nft script replaces the lab table atomically, and an empty one only removes it', () => {
  const s = nftScript(['198.18.1.2']);
  assert.match(s, /^table inet bwlab\ndelete table inet bwlab\n/);
  assert.match(s, /ip saddr \{ 198\.18\.1\.2 \} drop/);
  assert.match(s, /hook input/);
  assert.doesNotMatch(s, /hook output/);
  assert.equal(nftScript([]), 'table inet bwlab\ndelete table inet bwlab\n');
});
