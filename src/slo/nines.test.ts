import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration } from '../core/units.js';
import { availabilityFor, downtimeFor, MONTH_MS, ninesOf, parallel, serial } from './nines.js';

// The standard table (year = 365.25 days, month = year / 12).
const TABLE: Array<[number, string, string, string]> = [
  [0.99, '3.65 days', '7.31 h', '1.68 h'],
  [0.999, '8.77 h', '43.8 min', '10.1 min'],
  [0.9999, '52.6 min', '4.38 min', '1.01 min'],
  [0.99999, '5.26 min', '26.3 s', '6.05 s'],
];

test('downtime per year, month and week matches the standard table', () => {
  for (const [a, year, month, week] of TABLE) {
    const t = downtimeFor(a);
    assert.equal(formatDuration(t.downtime_ms.year), year, `${a} per year`);
    assert.equal(formatDuration(t.downtime_ms.month), month, `${a} per month`);
    assert.equal(formatDuration(t.downtime_ms.week), week, `${a} per week`);
  }
});

test('the reverse: 43.83 minutes a month is 99.9%', () => {
  assert.ok(Math.abs(availabilityFor(0.001 * MONTH_MS, 'month') - 0.999) < 1e-12);
});

test('serial and parallel composition', () => {
  assert.ok(Math.abs(serial([0.99, 0.99]) - 0.9801) < 1e-12);
  assert.ok(Math.abs(parallel([0.99, 0.99]) - 0.9999) < 1e-12);
  assert.equal(parallel([]), 0);
  assert.equal(serial([]), 1);
});

test('nines of the standard availabilities', () => {
  const golden: Array<[number, number]> = [[0.9, 1], [0.99, 2], [0.999, 3], [0.9995, 3.3010299956639813], [0.9999, 4], [0.99999, 5]];
  for (const [a, n] of golden) assert.ok(Math.abs(ninesOf(a) - n) < 1e-9, `${a}: ${ninesOf(a)}`);
  assert.equal(ninesOf(1), Infinity);
  // 99.95% allows 21.9 minutes a month and 4.38 hours a year.
  assert.equal(formatDuration(downtimeFor(0.9995).downtime_ms.month), '21.9 min');
  assert.equal(formatDuration(downtimeFor(0.9995).downtime_ms.year), '4.38 h');
});
