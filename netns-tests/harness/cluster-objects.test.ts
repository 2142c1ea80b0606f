// The EndpointSlice controller's part as the harness plays it (pure): hints per
// trafficDistribution, terminating conditions, one slice per family; Nodes with and without
// pod CIDRs, taints and deletion.
import { describe, expect, it } from 'vitest';
import { endpointSlices, nodeObject, type Backend } from './cluster-objects.js';

const pod = (name: string, node: string, zone: string, n: number): Backend => ({
  name, namespace: 'default', ip4: `10.244.${n}.5`, ip6: `fd00:244:0:${n}::5`, node: { name: node, zone },
});
const a = pod('a', 'node-1', 'zone-a', 1);
const b = pod('b', 'node-2', 'zone-b', 2);

describe('endpointSlices', () => {
  it('one slice per family of the service, endpoints with nodeName and zone, no hints without trafficDistribution', () => {
    const slices = endpointSlices({ name: 'web', clusterIPs: ['10.96.0.1', 'fd00::1'] }, [a, b]) as any[];
    expect(slices.map((s) => [s.metadata.name, s.addressType])).toEqual([['web-ipv4', 'IPv4'], ['web-ipv6', 'IPv6']]);
    expect(slices[1].endpoints.map((e: any) => [e.addresses[0], e.nodeName, e.zone])).toEqual([['fd00:244:0:1::5', 'node-1', 'zone-a'], ['fd00:244:0:2::5', 'node-2', 'zone-b']]);
    expect(slices[0].endpoints.every((e: any) => e.hints === undefined)).toBe(true);
    expect(slices[0].metadata.labels).toEqual({ 'kubernetes.io/service-name': 'web' });
  });

  it('PreferSameZone hints zones; PreferSameNode hints nodes and zones; terminating is serving, not ready', () => {
    const [zonal] = endpointSlices({ name: 'z', clusterIPs: ['10.96.0.2'], trafficDistribution: 'PreferSameZone' }, [a]) as any[];
    expect(zonal.endpoints[0].hints).toEqual({ forZones: [{ name: 'zone-a' }] });
    const [nodal] = endpointSlices({ name: 'n', clusterIPs: ['10.96.0.3'], trafficDistribution: 'PreferSameNode' }, [a, b], new Set([b])) as any[];
    expect(nodal.endpoints[1].hints).toEqual({ forZones: [{ name: 'zone-b' }], forNodes: [{ name: 'node-2' }] });
    expect(nodal.endpoints.map((e: any) => e.conditions)).toEqual([
      { ready: true, serving: true, terminating: false },
      { ready: false, serving: true, terminating: true },
    ]);
  });
});

describe('nodeObject', () => {
  it('spec.podCIDRs only once given; taints and deletionTimestamp when set', () => {
    const base = { name: 'node-1', zone: 'zone-a', ip4: '192.168.50.11', ip6: 'fd00:50::11' };
    expect((nodeObject(base) as any).spec).toEqual({});
    const full = nodeObject({ ...base, podCIDRs: ['10.244.1.0/24', 'fd00:244:0:1::/64'], taints: [{ key: 'k', effect: 'NoSchedule' }], deleting: true }) as any;
    expect(full.spec).toEqual({ podCIDR: '10.244.1.0/24', podCIDRs: ['10.244.1.0/24', 'fd00:244:0:1::/64'], taints: [{ key: 'k', effect: 'NoSchedule' }] });
    expect(full.metadata.deletionTimestamp).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(full.metadata.labels['topology.kubernetes.io/zone']).toBe('zone-a');
    expect(full.status.addresses.filter((x: any) => x.type === 'InternalIP').map((x: any) => x.address)).toEqual(['192.168.50.11', 'fd00:50::11']);
  });
});
