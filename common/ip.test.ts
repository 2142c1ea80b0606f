import { describe, expect, it } from 'vitest';
import { cidrContains, parseCIDR, parseIP } from './ip.js';

describe('parseIP', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1', 'IPv4'],
    ['FD00:0::0001', 'fd00::1', 'IPv6'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1', 'IPv6'],
    ['::', '::', 'IPv6'],
    ['::1', '::1', 'IPv6'],
    ['1::', '1::', 'IPv6'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1', 'IPv6'],
    ['::ffff:10.1.2.3', '::ffff:a01:203', 'IPv6'],
  ])('%s → %s', (input, ip, family) => {
    expect(parseIP(input)).toEqual({ ip, family });
  });

  it.each(['', '10.0.0', '010.0.0.1', '10.0.0.256', 'fe80::1%eth0', 'None', 42, null])('refuses %j', (input) => {
    expect(parseIP(input)).toBeUndefined();
  });
});

describe('parseCIDR', () => {
  it('clears host bits and canonicalizes', () => {
    expect(parseCIDR('10.244.3.7/16')).toEqual({ cidr: '10.244.0.0/16', family: 'IPv4', prefix: 16 });
    expect(parseCIDR('FD00:0:0:5::1/64')).toEqual({ cidr: 'fd00:0:0:5::/64', family: 'IPv6', prefix: 64 });
    expect(parseCIDR('0.0.0.0/0')?.cidr).toBe('0.0.0.0/0');
  });
  it.each(['10.0.0.0', '10.0.0.0/33', 'fd00::/129', 'x/8', '10.0.0.0/-1'])('refuses %s', (s) => {
    expect(parseCIDR(s)).toBeUndefined();
  });
  it('tests containment per family', () => {
    expect(cidrContains('10.244.0.0/16', '10.244.9.1')).toBe(true);
    expect(cidrContains('10.244.0.0/16', '10.245.0.1')).toBe(false);
    expect(cidrContains('fd00::/64', 'fd00::9')).toBe(true);
    expect(cidrContains('fd00::/64', '10.0.0.1')).toBe(false);
  });
});
