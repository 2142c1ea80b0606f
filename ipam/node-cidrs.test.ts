import { describe, expect, it } from 'vitest';
import { carveNodeCIDRs, parseClusterCIDRs } from './node-cidrs.js';

describe('carveNodeCIDRs', () => {
  const masks = { ipv4: 24, ipv6: 64 };
  it.each([
    [0, ['10.244.0.0/24', 'fd00:10:244::/64']],
    [1, ['10.244.1.0/24', 'fd00:10:244:1::/64']],
    [255, ['10.244.255.0/24', 'fd00:10:244:ff::/64']],
  ])('node %i gets %j', (i, want) => {
    expect(carveNodeCIDRs('10.244.0.0/16,fd00:10:244::/56', masks, i)).toEqual(want);
  });

  it('keeps the order of the cluster CIDRs (IPv6 first for an IPv6-primary cluster)', () => {
    expect(carveNodeCIDRs('fd00::/48,10.0.0.0/8', { ipv4: 16, ipv6: 64 }, 3)).toEqual(['fd00:0:0:3::/64', '10.3.0.0/16']);
  });

  it.each([
    ['10.244.0.0/16', { ipv4: 24, ipv6: 64 }, 256, 'node index 256 is out of range: 10.244.0.0/16 holds 256 node CIDRs of /24 (indexes 0-255)'],
    ['10.244.0.0/16', { ipv4: 8, ipv6: 64 }, 0, '--node-cidr-mask-size-ipv4 8: must be between the cluster CIDR\'s /16 and /32'],
    ['fd00::/48', { ipv4: 24, ipv6: 112 }, 0, '--node-cidr-mask-size-ipv6 112: splits fd00::/48 into 2^64 node CIDRs; at most 2^16 (use a longer cluster prefix or a shorter mask)'],
    ['10.244.0.0/16,10.0.0.0/8', masks, 0, 'cluster CIDR: two IPv4 CIDRs in 10.244.0.0/16,10.0.0.0/8 (one per family)'],
    ['10.244.1.0/16', masks, 0, 'cluster CIDR 10.244.1.0/16 has host bits set (network is 10.244.0.0/16)'],
    ['nope', masks, 0, 'cluster CIDR "nope" is not a CIDR'],
  ])('%s %j index %i: %s', (cidrs, m, i, msg) => {
    expect(() => carveNodeCIDRs(cidrs, m, i)).toThrow(msg);
  });

  it('counts node CIDRs per family', () => {
    expect(parseClusterCIDRs('10.0.0.0/8,fd00::/48', { ipv4: 24, ipv6: 64 }).map((c) => c.count)).toEqual([65536n, 65536n]);
  });
});
