import { describe, expect, it } from 'vitest';
import type { NodeFacts } from '../core/backend.js';
import type { ServicePlan, ServicePortPlan, Target } from '../core/model.js';
import { admits, ListenerSet, listenersOf } from './listeners.js';

const ep = (ip: string): Target => ({ ip, port: 8080, local: true, ready: true });

function port(o: Partial<ServicePortPlan> & { name: string }): ServicePortPlan {
  return {
    serviceKey: o.name.split(':')[0],
    family: 'IPv4',
    protocol: 'TCP',
    port: 80,
    nodePort: 0,
    externalIPs: [],
    loadBalancerIPs: [],
    firewall: false,
    sourceRanges: [],
    affinitySeconds: 0,
    internalLocal: false,
    externalLocal: false,
    externallyAccessible: false,
    clusterEndpoints: [ep('10.244.0.11')],
    localEndpoints: [],
    hasAnyEndpoints: true,
    ...o,
  };
}

function plan(key: string, ports: ServicePortPlan[]): ServicePlan {
  const [namespace, name] = key.split('/');
  return { key, namespace, name, ports, healthCheckNodePort: 0, localReadyEndpoints: 0 };
}

const node: NodeFacts = { nodeIPs: { IPv4: ['192.168.50.1'], IPv6: ['fd00:50::1'] }, nodePortAddresses: { IPv4: 'all', IPv6: 'all' } };
const keys = (specs: { key: string }[]) => specs.map((s) => s.key).sort();

describe('listenersOf', () => {
  it('a port with no endpoint anywhere is marked refuse (no socket), its VIP still wanted; gaining endpoints updates it', () => {
    const empty = plan('ns/e', [port({ name: 'ns/e:http', clusterIP: '10.96.0.12', nodePort: 30082, clusterEndpoints: [], hasAnyEndpoints: false })]);
    expect(listenersOf(empty, node).specs.map((s) => [s.key, s.refuse])).toEqual([['TCP 10.96.0.12:80', true], ['TCP 0.0.0.0:30082', true]]);
    const set = new ListenerSet();
    set.apply(new Map([['ns/e', empty]]), new Set(['ns/e']), false, node);
    expect([...set.addresses()]).toEqual(['10.96.0.12']);
    const served = plan('ns/e', [port({ name: 'ns/e:http', clusterIP: '10.96.0.12', nodePort: 30082 })]);
    const d = set.apply(new Map([['ns/e', served]]), new Set(['ns/e']), false, node);
    expect(d.updated.map((s) => [s.key, s.refuse])).toEqual([['TCP 10.96.0.12:80', undefined], ['TCP 0.0.0.0:30082', undefined]]);
    expect(d.addressesRemoved).toEqual([]);
  });

  it('one listener per cluster IP, external IP, LB IP and node port; VIPs marked, node addresses not', () => {
    const p = plan('ns/web', [
      port({ name: 'ns/web:http', clusterIP: '10.96.0.10', externalIPs: ['198.51.100.20', '192.168.50.1'], loadBalancerIPs: ['198.51.100.9', '198.51.100.20'], nodePort: 30080 }),
      port({ name: 'ns/web:dns', protocol: 'UDP', port: 53, family: 'IPv6', clusterIP: 'fd00:96::10', nodePort: 30053 }),
    ]);
    const { specs, unsupported } = listenersOf(p, node);
    expect(unsupported).toEqual([]);
    expect(specs.map((s) => [s.key, s.path, s.vip])).toEqual([
      ['TCP 10.96.0.10:80', 'internal', true],
      ['TCP 198.51.100.20:80', 'external', true],
      ['TCP 192.168.50.1:80', 'external', false],
      ['TCP 198.51.100.9:80', 'external', true],
      ['TCP 0.0.0.0:30080', 'external', false],
      ['UDP [fd00:96::10]:53', 'internal', true],
      ['UDP [::]:30053', 'external', false],
    ]);
    expect(specs[0].route).toBe('ns/web:http/TCP/IPv4');
  });

  it('node ports on the chosen node-port addresses; SCTP ports reported, not served', () => {
    const p = plan('ns/np', [port({ name: 'ns/np:a', clusterIP: '10.96.0.11', nodePort: 30081 }), port({ name: 'ns/np:s', protocol: 'SCTP', clusterIP: '10.96.0.11' })]);
    const { specs, unsupported } = listenersOf(p, { ...node, nodePortAddresses: { IPv4: ['192.168.50.1', '10.0.0.5'], IPv6: [] } });
    expect(keys(specs)).toEqual(['TCP 10.0.0.5:30081', 'TCP 10.96.0.11:80', 'TCP 192.168.50.1:30081']);
    expect(unsupported.map((u) => u.name)).toEqual(['ns/np:s']);
  });
});

describe('loadBalancerSourceRanges', () => {
  const fw = (o: Partial<ServicePortPlan>) => plan('ns/fw', [port({ name: 'ns/fw:http', clusterIP: '10.96.0.50', externalIPs: ['198.51.100.20'], loadBalancerIPs: ['198.51.100.10', '198.51.100.20'], nodePort: 30083, firewall: true, ...o })]);
  const byKey = (p: ServicePlan, n: NodeFacts = node) => new Map(listenersOf(p, n).specs.map((s) => [s.key, s]));

  it('only the LB IP listener is filtered: not the cluster IP, the node port, nor an LB IP that is also an external IP', () => {
    const specs = byKey(fw({ sourceRanges: ['203.0.113.0/24'] }));
    expect(specs.get('TCP 198.51.100.10:80')!.sourceRanges).toEqual(['203.0.113.0/24']);
    for (const k of ['TCP 10.96.0.50:80', 'TCP 0.0.0.0:30083', 'TCP 198.51.100.20:80']) expect(specs.get(k)!.sourceRanges, k).toBeUndefined();
  });

  it('a range holding a node address admits the LB IPs themselves (the node\'s own source); no range of the family admits nobody', () => {
    const lb = byKey(fw({ sourceRanges: ['192.168.50.0/24'] })).get('TCP 198.51.100.10:80')!;
    expect(lb.sourceRanges).toEqual(['192.168.50.0/24', '198.51.100.10/32', '198.51.100.20/32']);
    expect([admits(lb, '192.168.50.2'), admits(lb, '198.51.100.10'), admits(lb, '203.0.113.5'), admits(lb, 'fd00:50::2')]).toEqual([true, true, false, false]);
    const none = byKey(fw({ sourceRanges: [] })).get('TCP 198.51.100.10:80')!;
    expect(admits(none, '192.168.50.2')).toBe(false);
    const v6 = byKey(plan('ns/fw6', [port({ name: 'ns/fw6:http', family: 'IPv6', loadBalancerIPs: ['2001:db8::10'], firewall: true, sourceRanges: ['fd00:50::/64'] })])).get('TCP [2001:db8::10]:80')!;
    expect(v6.sourceRanges).toEqual(['fd00:50::/64', '2001:db8::10/128']);
    expect([admits(v6, 'fd00:50::2'), admits(v6, 'fd00:51::2')]).toEqual([true, false]);
    const open = byKey(fw({ firewall: false })).get('TCP 198.51.100.10:80')!;
    expect(admits(open, '203.0.113.5')).toBe(true);
  });

  it('a change of the ranges retargets the listener in place', () => {
    const set = new ListenerSet();
    set.apply(new Map([['ns/fw', fw({ sourceRanges: ['203.0.113.0/24'] })]]), new Set(), true, node);
    const d = set.apply(new Map([['ns/fw', fw({ sourceRanges: ['203.0.114.0/24'] })]]), new Set(['ns/fw']), false, node);
    expect([keys(d.added), keys(d.removed), keys(d.updated)]).toEqual([[], [], ['TCP 198.51.100.10:80']]);
    expect(d.updated[0].sourceRanges).toEqual(['203.0.114.0/24']);
  });
});

describe('ListenerSet', () => {
  const web = plan('ns/web', [port({ name: 'ns/web:http', clusterIP: '10.96.0.10' }), port({ name: 'ns/web:dns', protocol: 'UDP', port: 53, clusterIP: '10.96.0.10' })]);
  const api = plan('ns/api', [port({ name: 'ns/api', clusterIP: '10.96.0.20', externalIPs: ['198.51.100.20'] })]);

  it('a full sync opens everything and adds every VIP once', () => {
    const set = new ListenerSet();
    const d = set.apply(new Map([[web.key, web], [api.key, api]]), new Set(), true, node);
    expect(keys(d.added)).toEqual(['TCP 10.96.0.10:80', 'TCP 10.96.0.20:80', 'TCP 198.51.100.20:80', 'UDP 10.96.0.10:53']);
    expect(d.addressesAdded.sort()).toEqual(['10.96.0.10', '10.96.0.20', '198.51.100.20']);
    expect(d.removed).toEqual([]);
    expect(set.size).toBe(4);
  });

  it('a partial sync touches only the changed service: removed port closes, shared VIP stays until its last port goes', () => {
    const set = new ListenerSet();
    set.apply(new Map([[web.key, web], [api.key, api]]), new Set(), true, node);
    const webTcpOnly = plan('ns/web', [web.ports[0]]);
    let d = set.apply(new Map([[web.key, webTcpOnly], [api.key, api]]), new Set([web.key]), false, node);
    expect(keys(d.removed)).toEqual(['UDP 10.96.0.10:53']);
    expect(d.added).toEqual([]);
    expect(d.addressesRemoved).toEqual([]);
    d = set.apply(new Map([[api.key, api]]), new Set([web.key]), false, node);
    expect(keys(d.removed)).toEqual(['TCP 10.96.0.10:80']);
    expect(d.addressesRemoved).toEqual(['10.96.0.10']);
    expect([...set.addresses()].sort()).toEqual(['10.96.0.20', '198.51.100.20']);
    expect(set.keysOf(web.key)).toEqual([]);
  });

  it('an endpoint-only change opens and closes nothing; a policy change retargets in place', () => {
    const set = new ListenerSet();
    set.apply(new Map([[web.key, web]]), new Set(), true, node);
    const moved = plan('ns/web', [{ ...web.ports[0], clusterEndpoints: [ep('10.244.0.12')] }, web.ports[1]]);
    let d = set.apply(new Map([[web.key, moved]]), new Set([web.key]), false, node);
    expect([d.added, d.removed, d.updated]).toEqual([[], [], []]);
    const renamed = plan('ns/web', [{ ...web.ports[0], name: 'ns/web:web' }, web.ports[1]]);
    d = set.apply(new Map([[web.key, renamed]]), new Set([web.key]), false, node);
    expect(keys(d.updated)).toEqual(['TCP 10.96.0.10:80']);
    expect(d.updated[0].route).toBe('ns/web:web/TCP/IPv4');
  });

  it('two services wanting one address and port: the holder keeps it, the other is a conflict, and gets it once freed', () => {
    const set = new ListenerSet();
    set.apply(new Map([[api.key, api]]), new Set(), true, node);
    const other = plan('ns/aaa', [port({ name: 'ns/aaa', clusterIP: '10.96.0.30', externalIPs: ['198.51.100.20'] })]);
    const plans = new Map([[api.key, api], [other.key, other]]);
    let d = set.apply(plans, new Set([other.key]), false, node);
    expect(d.conflicts.map((c) => [c.spec.portName, c.holder.portName])).toEqual([['ns/aaa', 'ns/api']]);
    // A full sync keeps the incumbent although ns/aaa sorts first.
    d = set.apply(plans, new Set(), true, node);
    expect(d.conflicts.map((c) => c.spec.portName)).toEqual(['ns/aaa']);
    expect(set.get('TCP 198.51.100.20:80')!.service).toBe('ns/api');
    d = set.apply(new Map([[other.key, other]]), new Set([api.key]), false, node);
    expect(keys(d.removed)).toEqual(['TCP 10.96.0.20:80', 'TCP 198.51.100.20:80']);
    d = set.apply(new Map([[other.key, other]]), new Set(), true, node);
    expect(keys(d.added)).toEqual(['TCP 198.51.100.20:80']);
    expect(set.get('TCP 198.51.100.20:80')!.service).toBe('ns/aaa');
  });

  it('a full sync drops services that are gone and follows node-port address changes', () => {
    const np = plan('ns/np', [port({ name: 'ns/np', clusterIP: '10.96.0.40', nodePort: 30080 })]);
    const set = new ListenerSet();
    set.apply(new Map([[np.key, np], [web.key, web]]), new Set(), true, node);
    const d = set.apply(new Map([[np.key, np]]), new Set(), true, { ...node, nodePortAddresses: { IPv4: ['192.168.50.1'], IPv6: [] } });
    expect(keys(d.removed)).toEqual(['TCP 0.0.0.0:30080', 'TCP 10.96.0.10:80', 'UDP 10.96.0.10:53']);
    expect(keys(d.added)).toEqual(['TCP 192.168.50.1:30080']);
    expect(d.addressesRemoved).toEqual(['10.96.0.10']);
  });
});
