import { describe, expect, it } from 'vitest';
import type { ServicePortPlan, Target } from './model.js';
import { firewallAdmitsNode, policyTargets, portDecisions } from './port-decisions.js';

const local: Target = { ip: '10.244.0.11', port: 8080, local: true, ready: true };
const remote: Target = { ip: '10.244.1.12', port: 8080, local: false, ready: true };

function port(over: Partial<ServicePortPlan> = {}): ServicePortPlan {
  return {
    serviceKey: 'test/web', name: 'test/web:http', family: 'IPv4', protocol: 'TCP', port: 80, clusterIP: '10.96.0.10', nodePort: 0,
    externalIPs: [], loadBalancerIPs: [], firewall: false, sourceRanges: [], affinitySeconds: 0, internalLocal: false, externalLocal: false,
    externallyAccessible: false, clusterEndpoints: [local, remote], localEndpoints: [], hasAnyEndpoints: true, ...over,
  };
}

describe('portDecisions', () => {
  it('a ClusterIP service with endpoints: the Cluster chain only, no external or firewall chain', () => {
    expect(portDecisions(port())).toEqual({
      hasEndpoints: true, usesCluster: true, usesLocal: false, internalPolicy: 'cluster', hasInternal: true, externalPolicy: 'cluster',
      hasExternal: true, usesExternalChain: false, usesFirewall: false, loadBalancerChain: 'external', blocked: 'drop',
      masqueradeExternal: false, externalShortcuts: false,
    });
  });

  it('no endpoints anywhere: nothing is written and blocked traffic is rejected', () => {
    const d = portDecisions(port({ clusterEndpoints: [], hasAnyEndpoints: false, nodePort: 30080, externallyAccessible: true, firewall: true, loadBalancerIPs: ['203.0.113.7'] }));
    expect(d).toMatchObject({ hasInternal: false, hasExternal: false, usesCluster: false, usesExternalChain: false, usesFirewall: false, blocked: 'reject' });
  });

  it('only terminating endpoints elsewhere count as endpoints: Local traffic is dropped, not rejected', () => {
    const d = portDecisions(port({ internalLocal: true, clusterEndpoints: [], localEndpoints: [], hasAnyEndpoints: true }));
    expect(d).toMatchObject({ internalPolicy: 'local', hasInternal: false, usesLocal: false, blocked: 'drop' });
  });

  it('externalTrafficPolicy Local with no local endpoint: external traffic blocked, pods and the node take the Cluster chain', () => {
    const d = portDecisions(port({ nodePort: 30080, externallyAccessible: true, externalLocal: true, localEndpoints: [] }));
    expect(d).toMatchObject({ externalPolicy: 'local', hasExternal: false, hasInternal: true, usesCluster: true, usesLocal: false, usesExternalChain: true, masqueradeExternal: false, externalShortcuts: true });
  });

  it('externalTrafficPolicy Local with a local endpoint and internalTrafficPolicy Local: both chains, no shortcut when Cluster has no endpoints', () => {
    const both = portDecisions(port({ nodePort: 30080, externallyAccessible: true, externalLocal: true, localEndpoints: [local] }));
    expect(both).toMatchObject({ usesCluster: true, usesLocal: true, hasExternal: true, externalShortcuts: true });
    const onlyLocal = portDecisions(port({ internalLocal: true, clusterEndpoints: [], localEndpoints: [local] }));
    expect(onlyLocal).toMatchObject({ usesCluster: false, usesLocal: true, internalPolicy: 'local', hasInternal: true, usesExternalChain: false, externalShortcuts: false });
  });

  it('Cluster external policy masquerades all external traffic; source ranges on LB IPs put the firewall chain first', () => {
    const d = portDecisions(port({ loadBalancerIPs: ['203.0.113.7'], externallyAccessible: true, firewall: true, sourceRanges: ['192.168.0.0/16'] }));
    expect(d).toMatchObject({ usesExternalChain: true, masqueradeExternal: true, externalShortcuts: false, usesFirewall: true, loadBalancerChain: 'firewall' });
    expect(portDecisions(port({ firewall: true, externallyAccessible: true, nodePort: 30080 }))).toMatchObject({ usesFirewall: false, loadBalancerChain: 'external' });
  });
});

describe('firewallAdmitsNode', () => {
  it('is true when a source range holds one of the node addresses of that family', () => {
    expect(firewallAdmitsNode({ sourceRanges: ['172.16.0.0/12', '192.168.50.0/24'] }, ['192.168.50.1'])).toBe(true);
    expect(firewallAdmitsNode({ sourceRanges: ['172.16.0.0/12'] }, ['192.168.50.1'])).toBe(false);
    expect(firewallAdmitsNode({ sourceRanges: [] }, ['192.168.50.1'])).toBe(false);
    expect(firewallAdmitsNode({ sourceRanges: ['fd00:1::/64'] }, ['fd00:1::10'])).toBe(true);
  });
});

describe('policyTargets', () => {
  const c = { svc: 'SVC', svl: 'SVL', ext: 'EXT', fw: 'FW' };
  it('sends each kind of traffic to the chain of its policy; load balancers through the firewall chain when it is used', () => {
    expect(policyTargets(portDecisions(port()), c)).toEqual({ internal: 'SVC', external: 'SVC', loadBalancer: 'EXT' });
    const lb = port({ internalLocal: true, externalLocal: true, localEndpoints: [local], loadBalancerIPs: ['203.0.113.7'], externallyAccessible: true, firewall: true, sourceRanges: ['10.0.0.0/8'] });
    expect(policyTargets(portDecisions(lb), c)).toEqual({ internal: 'SVL', external: 'SVL', loadBalancer: 'FW' });
    expect(policyTargets(portDecisions(port({ externalLocal: true, nodePort: 30080, externallyAccessible: true })), c)).toEqual({ internal: 'SVC', external: 'SVL', loadBalancer: 'EXT' });
  });
});
