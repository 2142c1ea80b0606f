import { describe, expect, it } from 'vitest';
import { ipFromReverse, reverseName } from './names.js';

describe('ipFromReverse', () => {
  it('is the inverse of reverseName for canonical addresses', () => {
    for (const ip of ['10.96.0.10', '0.0.0.0', '255.255.255.255', 'fd00:96::10', '::1', '2001:db8::ff00:42:8329', 'fe80::1:2:3:4']) {
      expect(ipFromReverse(reverseName(ip))).toBe(ip);
    }
  });

  it('spells no address for partial, padded or malformed names', () => {
    for (const name of [
      '96.10.in-addr.arpa',
      '1.0.96.10.10.in-addr.arpa',
      '010.0.96.10.in-addr.arpa',
      '256.0.96.10.in-addr.arpa',
      'a.0.96.10.in-addr.arpa',
      '.0.96.10.in-addr.arpa',
      '0.1.0.0.ip6.arpa',
      reverseName('fd00::1').replace(/^1/, '10'),
      reverseName('fd00::1').replace(/^1/, 'g'),
      'web.prod.svc.cluster.local',
    ]) {
      expect(ipFromReverse(name), name).toBeUndefined();
    }
  });
});
