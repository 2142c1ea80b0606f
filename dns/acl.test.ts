import { describe, expect, it } from 'vitest';
import { buildAcl } from './acl.js';

describe('who may ask', () => {
  it('by default: the cluster CIDRs, the node\'s own addresses and loopback', () => {
    let local = ['10.0.0.10', 'fd00::10'];
    const acl = buildAcl({ allowFrom: [], clusterCIDRs: ['10.244.0.0/16', 'fd00:244::/48'] }, () => local);
    for (const a of ['10.244.3.7', 'fd00:244::7', '10.0.0.10', 'fd00::10', '127.0.0.1', '127.0.0.53', '::1', '::ffff:10.244.0.1']) expect(acl.allows(a), a).toBe(true);
    for (const a of ['10.245.0.1', '192.0.2.1', 'fd00:245::1', 'fe80::1%eth0', 'not-an-ip', '']) expect(acl.allows(a), a).toBe(false);
    // The node's addresses are read again on refresh: a new one is allowed, a gone one is not.
    local = ['10.0.0.11'];
    acl.refresh();
    expect([acl.allows('10.0.0.11'), acl.allows('10.0.0.10')]).toEqual([true, false]);
    expect(acl.clusterless).toBe(false);
  });

  it('--allow-from replaces the default entirely (loopback included); bare addresses are hosts', () => {
    const acl = buildAcl({ allowFrom: ['192.0.2.0/24', 'fe80::/10', '198.51.100.7'], clusterCIDRs: ['10.244.0.0/16'] }, () => ['10.0.0.10']);
    for (const a of ['192.0.2.200', 'fe80::1%eth0', '198.51.100.7']) expect(acl.allows(a), a).toBe(true);
    for (const a of ['198.51.100.8', '10.244.0.1', '10.0.0.10', '127.0.0.1']) expect(acl.allows(a), a).toBe(false);
  });

  it('names the flag and the value that is wrong', () => {
    expect(() => buildAcl({ allowFrom: ['10.0.0.0/33'], clusterCIDRs: [] })).toThrow('--allow-from "10.0.0.0/33" is not an IP network');
    expect(() => buildAcl({ allowFrom: [], clusterCIDRs: ['pods'] })).toThrow('--cluster-cidr "pods" is not an IP network');
    expect(buildAcl({ allowFrom: [], clusterCIDRs: [] }, () => []).clusterless).toBe(true);
  });
});
