import { describe, expect, it } from 'vitest';
import type { NodeFacts } from './backend.js';
import { familyConfig, localDetector } from './family-config.js';

const node: NodeFacts = {
  nodeIPs: { IPv4: ['192.168.50.1'], IPv6: ['fd00:1::10'] },
  nodePortAddresses: { IPv4: 'all', IPv6: ['fd00:1::10'] },
  podCIDRs: { IPv4: ['10.244.3.0/24'], IPv6: ['fd00:244:3::/64'] },
};
const opts = { clusterCIDRs: ['10.244.0.0/16', 'fd00:244::/48'], masqueradeAll: true };

describe('familyConfig', () => {
  it('keeps the cluster CIDRs and node facts of one family', () => {
    expect(familyConfig('IPv4', node, opts)).toEqual({ family: 'IPv4', clusterCIDRs: ['10.244.0.0/16'], localDetector: { mode: 'ClusterCIDR', cidr: '10.244.0.0/16' }, masqueradeAll: true, nodePortAddresses: 'all', nodeIPs: ['192.168.50.1'], serviceCIDRs: [] });
    expect(familyConfig('IPv6', node, { ...opts, masqueradeAll: false })).toEqual({ family: 'IPv6', clusterCIDRs: ['fd00:244::/48'], localDetector: { mode: 'ClusterCIDR', cidr: 'fd00:244::/48' }, masqueradeAll: false, nodePortAddresses: ['fd00:1::10'], nodeIPs: ['fd00:1::10'], serviceCIDRs: [] });
  });

  it('drops the addresses of --service-cidr and of the cluster\'s ServiceCIDR objects, each once, per family', () => {
    const withObjects: NodeFacts = { ...node, serviceCIDRs: ['10.96.0.0/16', '10.100.0.0/24', 'fd00:96::/112'] };
    const flags = { ...opts, serviceCIDRs: ['10.96.0.0/16', 'fd00:97::/112'] };
    expect(familyConfig('IPv4', withObjects, flags).serviceCIDRs).toEqual(['10.96.0.0/16', '10.100.0.0/24']);
    expect(familyConfig('IPv6', withObjects, flags).serviceCIDRs).toEqual(['fd00:97::/112', 'fd00:96::/112']);
  });

  // kube-proxy's getLocalDetectors: per family the cluster CIDR or the node's pod CIDR, or one
  // interface match for both families; nothing of a family means nothing is local in it.
  it('builds the local-traffic detector of each --detect-local-mode', () => {
    expect(localDetector('IPv4', node, { ...opts, clusterCIDRs: ['fd00:244::/48'] })).toEqual({ mode: 'ClusterCIDR' });
    expect(localDetector('IPv4', node, { ...opts, detectLocal: { mode: 'NodeCIDR' } })).toEqual({ mode: 'NodeCIDR', cidr: '10.244.3.0/24' });
    expect(localDetector('IPv6', node, { ...opts, detectLocal: { mode: 'NodeCIDR' } })).toEqual({ mode: 'NodeCIDR', cidr: 'fd00:244:3::/64' });
    expect(localDetector('IPv6', { ...node, podCIDRs: { IPv4: [], IPv6: [] } }, { ...opts, detectLocal: { mode: 'NodeCIDR' } })).toEqual({ mode: 'NodeCIDR' });
    expect(localDetector('IPv6', node, { ...opts, detectLocal: { mode: 'BridgeInterface', bridge: 'cbr0' } })).toEqual({ mode: 'BridgeInterface', bridge: 'cbr0' });
    expect(localDetector('IPv4', node, { ...opts, detectLocal: { mode: 'InterfaceNamePrefix', prefix: 'veth' } })).toEqual({ mode: 'InterfaceNamePrefix', prefix: 'veth' });
  });
});
