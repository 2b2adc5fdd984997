import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, parseDuration, parsePercent, parseSize } from './units.js';

test('parseDuration accepts the units of the design', () => {
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('2s'), 2000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('30d'), 30 * 86_400_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('0'), 0);
});

test('parseDuration names what is wrong', () => {
  assert.throws(() => parseDuration('2 seconds', 'services.web.health.interval'), {
    code: 'BULWARK_UNITS_DURATION',
    message: "services.web.health.interval: expected a duration like 500ms or 2s, got '2 seconds'",
  });
  for (const bad of ['', 's', '5x', '-1s', '1h 30m']) assert.throws(() => parseDuration(bad), { code: 'BULWARK_UNITS_DURATION' });
});

test('parseSize distinguishes decimal and binary units', () => {
  assert.equal(parseSize('16MB'), 16_000_000);
  assert.equal(parseSize('1GiB'), 1024 ** 3);
  assert.equal(parseSize('512B'), 512);
  assert.equal(parseSize('512'), 512);
  assert.equal(parseSize('64k'), 65536);
  assert.throws(() => parseSize('16 parsecs'), { code: 'BULWARK_UNITS_SIZE' });
});

test('parsePercent returns a ratio and rejects values outside 0-100', () => {
  assert.equal(parsePercent('99.9%'), 0.999);
  assert.equal(parsePercent(99.5), 0.995);
  assert.equal(parsePercent('100%'), 1);
  assert.throws(() => parsePercent('101%'), { code: 'BULWARK_UNITS_PERCENT' });
  assert.throws(() => parsePercent('abc'), { code: 'BULWARK_UNITS_PERCENT' });
});

test('formatDuration uses three significant digits', () => {
  assert.equal(formatDuration(8.766 * 3_600_000), '8.77 h');
  assert.equal(formatDuration(43.83 * 60_000), '43.8 min');
  assert.equal(formatDuration(3.6525 * 86_400_000), '3.65 days');
  assert.equal(formatDuration(26.3 * 1000), '26.3 s');
});
