import { describe, expect, it } from 'vitest';
import { formatIP, parseCIDR, parseIP, prefixesOverlap, prefixString } from './ip-bigint.js';

describe('parseIP / formatIP', () => {
  it.each([
    ['10.244.0.1', '10.244.0.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
    ['fd00::1', 'fd00::1'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:10.0.0.1', '::ffff:a00:1'],
    ['fd00:10:244:1::a', 'fd00:10:244:1::a'],
  ])('%s → %s', (input, canonical) => {
    const ip = parseIP(input);
    expect(ip).not.toBeNull();
    expect(formatIP(ip!.family, ip!.value)).toBe(canonical);
  });

  it.each(['', '10.0.0', '10.0.0.256', '10.0.0.01', '1.2.3.4.5', 'fd00:::1', '1::2::3', '1:2:3:4:5:6:7:8:9', 'fe80::1%eth0', 'g::1', 'abc'])(
    'rejects %j',
    (input) => expect(parseIP(input)).toBeNull(),
  );
});

describe('parseCIDR', () => {
  it('keeps the address and clears host bits in the prefix', () => {
    const c = parseCIDR('10.244.3.7/16')!;
    expect(formatIP(4, c.address.value)).toBe('10.244.3.7');
    expect(prefixString(c.prefix)).toBe('10.244.0.0/16');
    expect(prefixString(parseCIDR('fd00:1:2:3::9/48')!.prefix)).toBe('fd00:1:2::/48');
  });
  it.each(['10.0.0.0', '10.0.0.0/33', 'fd00::/129', '10.0.0.0/x', 'x/8'])('rejects %j', (s) => expect(parseCIDR(s)).toBeNull());
  it('detects overlap within a family only', () => {
    const p = (s: string) => parseCIDR(s)!.prefix;
    expect(prefixesOverlap(p('10.0.0.0/8'), p('10.1.0.0/16'))).toBe(true);
    expect(prefixesOverlap(p('10.0.0.0/16'), p('10.1.0.0/16'))).toBe(false);
    expect(prefixesOverlap(p('::/0'), p('10.0.0.0/8'))).toBe(false);
  });
});
