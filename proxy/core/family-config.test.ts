import { describe, expect, it } from 'vitest';
import type { NodeFacts } from './backend.js';
import { familyConfig } from './family-config.js';

const node: NodeFacts = {
  nodeIPs: { IPv4: ['192.168.50.1'], IPv6: ['fd00:1::10'] },
  nodePortAddresses: { IPv4: 'all', IPv6: ['fd00:1::10'] },
};
const opts = { clusterCIDRs: ['10.244.0.0/16', 'fd00:244::/48', '10.245.0.0/16'], masqueradeAll: true };

describe('familyConfig', () => {
  it('keeps the cluster CIDRs and node facts of one family', () => {
    expect(familyConfig('IPv4', node, opts)).toEqual({ family: 'IPv4', clusterCIDRs: ['10.244.0.0/16', '10.245.0.0/16'], masqueradeAll: true, nodePortAddresses: 'all', nodeIPs: ['192.168.50.1'], serviceCIDRs: [] });
    expect(familyConfig('IPv6', node, { ...opts, masqueradeAll: false })).toEqual({ family: 'IPv6', clusterCIDRs: ['fd00:244::/48'], masqueradeAll: false, nodePortAddresses: ['fd00:1::10'], nodeIPs: ['fd00:1::10'], serviceCIDRs: [] });
  });
});
