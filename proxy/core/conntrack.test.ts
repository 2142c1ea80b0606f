import { describe, expect, it } from 'vitest';
import { conntrackArgs, staleFlows } from './conntrack.js';
import type { ServicePlan, ServicePortPlan, Target } from './model.js';

const t = (ip: string, port = 5353): Target => ({ ip, port, local: true, ready: true });
function port(over: Partial<ServicePortPlan>): ServicePortPlan {
  return {
    serviceKey: 'ns/dns', name: 'ns/dns:dns', family: 'IPv4', protocol: 'UDP', port: 53, clusterIP: '10.96.0.10', nodePort: 0,
    externalIPs: [], loadBalancerIPs: [], firewall: false, sourceRanges: [], affinitySeconds: 0, internalLocal: false, externalLocal: false,
    externallyAccessible: false, clusterEndpoints: [], localEndpoints: [], hasAnyEndpoints: false, ...over,
  };
}
const plan = (...ports: ServicePortPlan[]): ServicePlan => ({ key: 'ns/dns', namespace: 'ns', name: 'dns', ports, healthCheckNodePort: 0, localReadyEndpoints: 0 });

describe('staleFlows', () => {
  it('an endpoint removed from a UDP port: flows DNATed to it, per service address and node port', () => {
    const before = plan(port({ clusterEndpoints: [t('10.244.0.5'), t('10.244.0.6')], externalIPs: ['198.51.100.1'], nodePort: 30053, hasAnyEndpoints: true }));
    const after = plan(port({ clusterEndpoints: [t('10.244.0.6')], externalIPs: ['198.51.100.1'], nodePort: 30053, hasAnyEndpoints: true }));
    expect(staleFlows(before, after)).toEqual([
      { family: 'IPv4', origDst: '10.96.0.10', origPortDst: 53, replySrc: '10.244.0.5', replyPortSrc: 5353 },
      { family: 'IPv4', origDst: '198.51.100.1', origPortDst: 53, replySrc: '10.244.0.5', replyPortSrc: 5353 },
      { family: 'IPv4', origPortDst: 30053, replySrc: '10.244.0.5', replyPortSrc: 5353 },
    ]);
  });

  it('a UDP port going from no endpoints to some: the un-NATed flows to its addresses', () => {
    expect(staleFlows(plan(port({})), plan(port({ clusterEndpoints: [t('10.244.0.5')], hasAnyEndpoints: true })))).toEqual([
      { family: 'IPv4', origDst: '10.96.0.10', origPortDst: 53 },
    ]);
    // A brand-new service counts as "from none".
    expect(staleFlows(undefined, plan(port({ clusterEndpoints: [t('10.244.0.5')] })))).toHaveLength(1);
  });

  it('TCP ports and unchanged endpoints need nothing', () => {
    const tcp = (eps: Target[]) => plan(port({ protocol: 'TCP', clusterEndpoints: eps }));
    expect(staleFlows(tcp([t('10.244.0.5')]), tcp([]))).toEqual([]);
    const udp = plan(port({ clusterEndpoints: [t('10.244.0.5')] }));
    expect(staleFlows(udp, udp)).toEqual([]);
  });

  it('a service removed: every endpoint it had is stale', () => {
    const f = staleFlows(plan(port({ clusterEndpoints: [t('10.244.0.5')] }), port({ family: 'IPv6', clusterIP: 'fd00::10', clusterEndpoints: [t('fd00:244::5')] })), undefined);
    expect(f.map((x) => [x.family, x.replySrc])).toEqual([['IPv4', '10.244.0.5'], ['IPv6', 'fd00:244::5']]);
  });

  it('conntrack arguments', () => {
    expect(conntrackArgs({ family: 'IPv6', origDst: 'fd00::10', origPortDst: 53, replySrc: 'fd00:244::5', replyPortSrc: 5353 })).toEqual([
      '-D', '-f', 'ipv6', '-p', 'udp', '--orig-dst', 'fd00::10', '--orig-port-dst', '53', '--reply-src', 'fd00:244::5', '--reply-port-src', '5353',
    ]);
  });
});
