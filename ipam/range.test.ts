import { describe, expect, it } from 'vitest';
import { CniError } from './errors.js';
import { formatIP } from '../common/ip-bigint.js';
import { buildRangeSets, capacity } from './range.js';

function err(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniError) return { code: e.code, msg: e.message };
    throw e;
  }
  throw new Error('no error');
}

describe('buildRangeSets', () => {
  it('fills host-local defaults: gateway .1, start .1 (gateway skipped), end .254 for IPv4, last for IPv6', () => {
    const [v4, v6] = buildRangeSets([[{ subnet: '10.244.0.0/24' }], [{ subnet: 'fd00::/120' }]], 'ipam.ranges');
    const r = v4.ranges[0];
    expect([formatIP(4, r.gateway), formatIP(4, r.start), formatIP(4, r.end)]).toEqual(['10.244.0.1', '10.244.0.1', '10.244.0.254']);
    expect(formatIP(6, v6.ranges[0].end)).toBe('fd00::ff');
    expect(capacity(v4)).toBe(253n);
    expect(capacity(v6)).toBe(254n);
  });

  it('masks host bits in the subnet, as host-local does', () => {
    const [s] = buildRangeSets([[{ subnet: '10.244.0.9/24' }]], 'ipam.ranges');
    expect(formatIP(4, s.ranges[0].gateway)).toBe('10.244.0.1');
  });

  it.each([
    [[[{ subnet: '10.0.0.0/31' }]], 'ipam.ranges[0][0].subnet: 10.0.0.0/31 is too small to allocate from (a /31 or /32 leaves no address for pods)'],
    [[[{ subnet: '10.0.0.1/32' }]], 'ipam.ranges[0][0].subnet: 10.0.0.1/32 is too small to allocate from (a /31 or /32 leaves no address for pods)'],
    [[[{ subnet: 'fd00::/127' }]], 'ipam.ranges[0][0].subnet: fd00::/127 is too small to allocate from (a /127 or /128 leaves no address for pods)'],
    [[[{ subnet: '10.0.0.0/24' }], [{ subnet: '10.0.0.128/25' }]], 'ipam.ranges[1][0]: 10.0.0.128/25 (10.0.0.129-10.0.0.254) overlaps ipam.ranges[0][0] 10.0.0.0/24 (10.0.0.1-10.0.0.254)'],
    [[[{ subnet: '10.0.0.0/24' }, { subnet: 'fd00::/64' }]], 'ipam.ranges[0][1]: IPv6 range in a set of IPv4 ranges (one family per range set)'],
    [[[{ subnet: '10.0.0.0/24', rangeStart: '10.0.1.5' }]], 'ipam.ranges[0][0].rangeStart: 10.0.1.5 is not in subnet 10.0.0.0/24'],
    [[[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.50', rangeEnd: '10.0.0.10' }]], 'ipam.ranges[0][0]: rangeStart 10.0.0.50 is after rangeEnd 10.0.0.10'],
    [[[{ subnet: '10.0.0.0/24', gateway: 'x' }]], 'ipam.ranges[0][0].gateway: "x" is not an IP address'],
    [[[{ subnet: 'ten' }]], 'ipam.ranges[0][0].subnet: "ten" is not a CIDR'],
    [[[]], 'ipam.ranges[0]: want a non-empty list of ranges, got []'],
    [[], 'ipam.ranges: want a non-empty list of range sets (lists of ranges), got []'],
  ])('rejects %j', (spec, msg) => {
    expect(err(() => buildRangeSets(spec, 'ipam.ranges'))).toEqual({ code: 7, msg });
  });

  it('allows disjoint ranges of one subnet in one set', () => {
    const [s] = buildRangeSets([[{ subnet: '10.0.0.0/24', rangeStart: '10.0.0.10', rangeEnd: '10.0.0.19' }, { subnet: '10.0.0.0/24', rangeStart: '10.0.0.100', rangeEnd: '10.0.0.109' }]], 'r');
    expect(capacity(s)).toBe(20n);
  });
});
