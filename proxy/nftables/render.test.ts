import { describe, expect, it } from 'vitest';
import type { ServicePlan, ServicePortPlan, Target } from '../core/model.js';
import { MapUndo } from './map-undo.js';
import { hairpinCounts, portChains, renderFull, renderPartial, renderService, type FamilyConfig, type ServiceNft } from './render.js';

const cfg4: FamilyConfig = { family: 'IPv4', clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, nodePortAddresses: 'all', nodeIPs: ['192.168.50.1'] };
const ep = (ip: string, local = true): Target => ({ ip, port: 8080, local, ready: true });

function port(over: Partial<ServicePortPlan> & { serviceKey: string }): ServicePortPlan {
  return {
    name: `${over.serviceKey}:p`, family: 'IPv4', protocol: 'TCP', port: 80, nodePort: 0, externalIPs: [], loadBalancerIPs: [],
    firewall: false, sourceRanges: [], affinitySeconds: 0, internalLocal: false, externalLocal: false, externallyAccessible: false,
    clusterEndpoints: [], localEndpoints: [], hasAnyEndpoints: false, ...over,
  };
}
function plan(key: string, ports: ServicePortPlan[]): ServicePlan {
  const [namespace, name] = key.split('/');
  return { key, namespace, name, ports, healthCheckNodePort: 0, localReadyEndpoints: 0 };
}
const web = (eps: Target[]) => plan('test/web', [port({ serviceKey: 'test/web', clusterIP: '10.96.0.10', clusterEndpoints: eps, localEndpoints: eps, hasAnyEndpoints: eps.length > 0 })]);

describe('nftables render', () => {
  it('a ClusterIP service: one map element, one chain with the masquerade rule and a numgen dnat', () => {
    const s = renderService(web([ep('10.244.0.11'), ep('10.244.0.12')]), cfg4)!;
    const svc = portChains({ name: 'test/web:p', protocol: 'TCP' }).svc;
    expect(svc).toMatch(/^svc-[A-Z2-7]{16}-test\/web\/p\/tcp$/);
    expect(s.elements).toEqual([{ map: 'service-ips', key: '10.96.0.10 . tcp . 80', value: `goto ${svc}` }]);
    expect(s.chains.get(svc)).toEqual([
      'ip daddr 10.96.0.10 ip saddr != @cluster-cidrs jump mark-for-masquerade',
      'meta l4proto tcp dnat ip addr . port to numgen random mod 2 map { 0 : 10.244.0.11 . 8080, 1 : 10.244.0.12 . 8080 }',
    ]);
    expect(s.endpointIPs).toEqual(['10.244.0.11', '10.244.0.12']);
  });

  it('no endpoints: a reject element in the filter map and no chain; Local with none here: drop', () => {
    const s = renderService(web([]), cfg4)!;
    expect(s.chains.size).toBe(0);
    expect(s.elements).toEqual([{ map: 'service-filter', key: '10.96.0.10 . tcp . 80', value: 'goto reject-service' }]);
    const remote = plan('test/remote', [port({
      serviceKey: 'test/remote', clusterIP: '10.96.1.3', nodePort: 30082, externalLocal: true, externallyAccessible: true,
      clusterEndpoints: [ep('10.244.0.13', false)], localEndpoints: [], hasAnyEndpoints: true,
    })]);
    const r = renderService(remote, cfg4)!;
    const c = portChains({ name: 'test/remote:p', protocol: 'TCP' });
    expect(r.elements).toContainEqual({ map: 'nodeport-filter', key: 'tcp . 30082', value: 'drop' });
    expect(r.elements).toContainEqual({ map: 'service-nodeports', key: 'tcp . 30082', value: `goto ${c.ext}` });
    // Pods and the node itself still go to the Cluster policy; outside clients fall through.
    expect(r.chains.get(c.ext)).toEqual([`ip saddr @cluster-cidrs goto ${c.svc}`, 'fib saddr type local jump mark-for-masquerade', `fib saddr type local goto ${c.svc}`]);
  });

  it('ClientIP affinity: an ep chain and a timeout set per endpoint; IPv6 targets bracketed', () => {
    const p = port({ serviceKey: 'test/sticky', family: 'IPv6', clusterIP: 'fd00:96::11', affinitySeconds: 300, clusterEndpoints: [{ ...ep('fd00:244::b') }], hasAnyEndpoints: true });
    const s = renderService(plan('test/sticky', [p]), { ...cfg4, family: 'IPv6', clusterCIDRs: [] })!;
    const [set, spec] = [...s.sets][0];
    expect(spec).toBe('{ type ipv6_addr ; flags dynamic,timeout ; timeout 300s ; }');
    const epChain = set.replace('aff-', 'ep-');
    expect(s.chains.get(epChain)).toEqual([`update @${set} { ip6 saddr }`, 'meta l4proto tcp dnat to [fd00:244::b]:8080']);
    const svc = s.chains.get(portChains(p).svc)!;
    expect(svc).toEqual([`ip6 saddr @${set} goto ${epChain}`, `numgen random mod 1 vmap { 0 : goto ${epChain} }`]);
  });

  it('a full render recreates the table when the state is unknown, flushes it otherwise and deletes what went away', () => {
    const s = renderService(web([ep('10.244.0.11')]), cfg4)!;
    const fresh = renderFull([s], cfg4).lines;
    expect(fresh.slice(0, 3)).toEqual(['add table ip kube-dataplane', 'delete table ip kube-dataplane', 'add table ip kube-dataplane']);
    expect(fresh).toContain('add element ip kube-dataplane hairpin { 10.244.0.11 . 10.244.0.11 }');
    expect(fresh).toContain('add rule ip kube-dataplane services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports');
    const again = renderFull([s], cfg4, { chains: new Set(['svc-OLD']), sets: new Set(['aff-OLD']) }).lines;
    expect(again.slice(0, 2)).toEqual(['add table ip kube-dataplane', 'flush table ip kube-dataplane']);
    expect(again).toContain('flush map ip kube-dataplane service-ips');
    expect(again.slice(-2)).toEqual(['delete chain ip kube-dataplane svc-OLD', 'delete set ip kube-dataplane aff-OLD']);
    // Two services claiming one external IP and port: the first keeps it, nft gets one element.
    const a = renderService(plan('test/a', [port({ serviceKey: 'test/a', externalIPs: ['198.51.100.20'], externallyAccessible: true, clusterEndpoints: [ep('10.244.0.11')], hasAnyEndpoints: true })]), cfg4)!;
    const b = renderService(plan('test/b', [port({ serviceKey: 'test/b', externalIPs: ['198.51.100.20'], externallyAccessible: true, clusterEndpoints: [ep('10.244.0.12')], hasAnyEndpoints: true })]), cfg4)!;
    const both = renderFull([a, b], cfg4);
    expect(both.owners.get('service-ips 198.51.100.20 . tcp . 80')).toBe('test/a');
    expect(both.lines.filter((l) => l.includes('198.51.100.20')).length).toBe(1);
  });

  it('--nodeport-addresses: node ports only on those addresses', () => {
    const lines = renderFull([], { ...cfg4, nodePortAddresses: ['192.168.50.1'] }).lines;
    expect(lines).toContain('add rule ip kube-dataplane services ip daddr { 192.168.50.1 } meta l4proto . th dport vmap @service-nodeports');
    expect(lines.join('\n')).not.toMatch(/fib daddr type local ip daddr/);
  });

  it('a partial render touches only the changed service: its chain, its elements, hairpin counts', () => {
    const before = renderService(web([ep('10.244.0.11'), ep('10.244.0.12')]), cfg4)!;
    const other = renderService(plan('test/other', [port({ serviceKey: 'test/other', clusterIP: '10.96.0.20', clusterEndpoints: [ep('10.244.0.12')], hasAnyEndpoints: true })]), cfg4)!;
    const full = renderFull([before, other], cfg4);
    const hairpin = hairpinCounts([before, other]);
    const after = renderService(web([ep('10.244.0.11')]), cfg4)!;
    const lines = renderPartial([{ key: 'test/web', before, after }], 'IPv4', full.owners, hairpin)!;
    const svc = portChains({ name: 'test/web:p', protocol: 'TCP' }).svc;
    expect(lines).toEqual([
      `add chain ip kube-dataplane ${svc}`,
      `flush chain ip kube-dataplane ${svc}`,
      `add rule ip kube-dataplane ${svc} ip daddr 10.96.0.10 ip saddr != @cluster-cidrs jump mark-for-masquerade`,
      `add rule ip kube-dataplane ${svc} meta l4proto tcp dnat to 10.244.0.11:8080`,
    ]);
    expect(lines.join('\n')).not.toMatch(/other|flush table|service-ips/);
    // 10.244.0.12 is still used by test/other: its hairpin entry stays.
    expect(hairpin.get('10.244.0.12')).toBe(1);

    // The service goes away: its element, chain and (now unused) hairpin entry go.
    const gone = renderPartial([{ key: 'test/web', before: after }], 'IPv4', full.owners, hairpin)!;
    expect(gone).toEqual([
      'delete element ip kube-dataplane service-ips { 10.96.0.10 . tcp . 80 }',
      'delete element ip kube-dataplane hairpin { 10.244.0.11 . 10.244.0.11 }',
      `flush chain ip kube-dataplane ${svc}`,
      `delete chain ip kube-dataplane ${svc}`,
    ]);
    expect(full.owners.has('service-ips 10.96.0.10 . tcp . 80')).toBe(false);
    expect(renderPartial([{ key: 'test/other', before: other, after: other }], 'IPv4', full.owners, hairpin)).toBeUndefined();
  });

  it('a partial render records its changes to the owners and hairpin maps; rolled back, both are as before', () => {
    const before = renderService(web([ep('10.244.0.11'), ep('10.244.0.12')]), cfg4)!;
    const other = renderService(plan('test/other', [port({ serviceKey: 'test/other', clusterIP: '10.96.0.20', clusterEndpoints: [ep('10.244.0.12')], hasAnyEndpoints: true })]), cfg4)!;
    const owners = renderFull([before, other], cfg4).owners;
    const hairpin = hairpinCounts([before, other]);
    const [ownersWas, hairpinWas] = [new Map(owners), new Map(hairpin)];
    const after = renderService(web([ep('10.244.0.13')]), cfg4)!;
    const undo = new MapUndo();
    renderPartial([{ key: 'test/web', before, after }, { key: 'test/other', before: other }], 'IPv4', owners, hairpin, undo);
    expect(owners).not.toEqual(ownersWas);
    expect(hairpin).toEqual(new Map([['10.244.0.13', 1]]));
    undo.rollback();
    expect(owners).toEqual(ownersWas);
    expect(hairpin).toEqual(hairpinWas);
  });

  it('a service losing its endpoints swaps the map element for a reject in one transaction', () => {
    const before = renderService(web([ep('10.244.0.11')]), cfg4)!;
    const after = renderService(web([]), cfg4)!;
    const owners = renderFull([before], cfg4).owners;
    const lines = renderPartial([{ key: 'test/web', before, after }], 'IPv4', owners, hairpinCounts([before]))!;
    expect(lines).toContain('delete element ip kube-dataplane service-ips { 10.96.0.10 . tcp . 80 }');
    expect(lines).toContain('add element ip kube-dataplane service-filter { 10.96.0.10 . tcp . 80 : goto reject-service }');
    expect(lines.indexOf('delete element ip kube-dataplane service-ips { 10.96.0.10 . tcp . 80 }')).toBeLessThan(lines.findIndex((l) => l.startsWith('delete chain')));
  });
});

// Keeps the type import used when the file is read alone.
export type { ServiceNft };
