import { describe, expect, it } from 'vitest';
import type { ServicePlan, ServicePortPlan, Target } from '../core/model.js';
import { countChainRules, parseCountChain } from './layout.js';
import { MapUndo } from './map-undo.js';
import { diffServices, hairpinCounts, partialLines, portChains, renderFull, renderService, type FamilyConfig, type MapElement } from './render.js';

const cfg4: FamilyConfig = { family: 'IPv4', clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, nodePortAddresses: 'all', nodeIPs: ['192.168.50.1'], serviceCIDRs: ['10.96.0.0/16'] };
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
const ruleTexts = (rules: readonly { text: string }[] | undefined) => rules?.map((r) => r.text);
const texts = (els: readonly MapElement[], map?: string) => els.filter((e) => !map || e.map === map).map((e) => (e.value === undefined ? `${e.map} ${e.key}` : `${e.map} ${e.key} : ${e.value}`));

describe('nftables render: services as elements', () => {
  it('a ClusterIP service is one verdict element, one endpoint element per slot and its cluster IP; no chain of its own', () => {
    const s = renderService(web([ep('10.244.0.11'), ep('10.244.0.12')]), cfg4)!;
    expect(texts(s.elements)).toEqual([
      'cluster-ips 10.96.0.10',
      'service-ips 10.96.0.10 . tcp . 80 : goto cluster-2',
      'endpoints 10.96.0.10 . tcp . 80 . 0 : 10.244.0.11 . 8080',
      'endpoints 10.96.0.10 . tcp . 80 . 1 : 10.244.0.12 . 8080',
    ]);
    expect(s.chains.size).toBe(0);
    expect([...s.countChains]).toEqual(['cluster-2']);
    expect(s.endpointIPs).toEqual(['10.244.0.11', '10.244.0.12']);
  });

  it('hairpin entries only for this node\'s endpoints and those naming no node: only they can reach themselves here', () => {
    const s = renderService(web([ep('10.244.0.11'), ep('10.244.1.12', false), { ...ep('10.244.2.13', false), nodeUnknown: true }]), cfg4)!;
    expect(s.endpointIPs).toEqual(['10.244.0.11', '10.244.2.13']);
  });

  it('the shared chain of n endpoints masquerades off-cluster clients and picks numgen mod n', () => {
    expect(ruleTexts(countChainRules('cluster', 7, cfg4))).toEqual([
      'ip saddr != @cluster-cidrs jump mark-for-masquerade',
      'dnat ip addr . port to ip daddr . meta l4proto . th dport . numgen random mod 7 map @endpoints',
    ]);
    expect(countChainRules('cluster', 3, { ...cfg4, masqueradeAll: true })[0].text).toBe('jump mark-for-masquerade');
    expect(ruleTexts(countChainRules('nodeport', 2, { ...cfg4, family: 'IPv6', clusterCIDRs: [] }))).toEqual([
      'jump mark-for-masquerade',
      'dnat ip6 addr . port to meta l4proto . th dport . numgen random mod 2 map @nodeport-endpoints',
    ]);
    expect(parseCountChain('nodeport-local-0')).toEqual({ kind: 'nodeport-local', n: 0 });
    expect(parseCountChain('external-12')).toEqual({ kind: 'external', n: 12 });
    expect(parseCountChain('svc-ABC')).toBeUndefined();
  });

  it('no endpoints: a reject element in the filter map; Local with none here: drop, with short-cuts for pods and the node', () => {
    expect(texts(renderService(web([]), cfg4)!.elements)).toEqual(['cluster-ips 10.96.0.10', 'service-filter 10.96.0.10 . tcp . 80 : goto reject-service']);
    const remote = plan('test/remote', [port({
      serviceKey: 'test/remote', clusterIP: '10.96.1.3', nodePort: 30082, externalLocal: true, externallyAccessible: true,
      clusterEndpoints: [ep('10.244.0.13', false)], localEndpoints: [], hasAnyEndpoints: true,
    })]);
    const r = renderService(remote, cfg4)!;
    expect(texts(r.elements)).toEqual(expect.arrayContaining([
      'service-nodeports tcp . 30082 : goto nodeport-local-0',
      'nodeport-shortcuts tcp . 30082 : goto nodeport-shortcut-1',
      'nodeport-shortcut-endpoints tcp . 30082 . 0 : 10.244.0.13 . 8080',
      'nodeport-filter tcp . 30082 : drop',
    ]));
    expect(ruleTexts(countChainRules('nodeport-local', 0, cfg4))).toEqual([
      'ip saddr @cluster-cidrs meta l4proto . th dport vmap @nodeport-shortcuts',
      'fib saddr type local jump mark-for-masquerade',
      'fib saddr type local meta l4proto . th dport vmap @nodeport-shortcuts',
    ]);
  });

  it('load balancer with source ranges: the firewall chain checks address . port . source, the rest is dropped', () => {
    const lb = plan('test/lb', [port({
      serviceKey: 'test/lb', clusterIP: '10.96.2.1', loadBalancerIPs: ['203.0.113.7'], firewall: true, sourceRanges: ['198.51.100.0/24', '192.168.50.0/24'],
      externallyAccessible: true, clusterEndpoints: [ep('10.244.0.11')], localEndpoints: [], hasAnyEndpoints: true,
    })]);
    const r = renderService(lb, cfg4)!;
    expect(new Set(texts(r.elements).filter((t) => t.includes('203.0.113.7')))).toEqual(new Set([
      'service-ips 203.0.113.7 . tcp . 80 : goto firewall',
      'firewall-ips 203.0.113.7 . tcp . 80 : goto external-1',
      'firewall-allow 203.0.113.7 . tcp . 80 . 198.51.100.0/24',
      'firewall-allow 203.0.113.7 . tcp . 80 . 192.168.50.0/24',
      // A range holds the node's address: the LB IP itself may be the source (VIP-style LBs).
      'firewall-allow 203.0.113.7 . tcp . 80 . 203.0.113.7',
      'service-filter 203.0.113.7 . tcp . 80 : drop',
      'endpoints 203.0.113.7 . tcp . 80 . 0 : 10.244.0.11 . 8080',
    ]));
  });

  it('ClientIP affinity keeps chains of its own: an ep chain and a timeout set per endpoint', () => {
    const p = port({ serviceKey: 'test/sticky', family: 'IPv6', clusterIP: 'fd00:96::11', affinitySeconds: 300, clusterEndpoints: [{ ...ep('fd00:244::b') }], hasAnyEndpoints: true });
    const s = renderService(plan('test/sticky', [p]), { ...cfg4, family: 'IPv6', clusterCIDRs: [] })!;
    const [set, seconds] = [...s.sets][0];
    expect(seconds).toBe(300);
    expect(renderFull([s], { ...cfg4, family: 'IPv6', clusterCIDRs: [] }).lines).toContain(`add set ip6 kube-dataplane ${set} { type ipv6_addr ; flags dynamic,timeout ; timeout 300s ; }`);
    const epChain = set.replace('aff-', 'ep-');
    expect(ruleTexts(s.chains.get(epChain))).toEqual([`update @${set} { ip6 saddr }`, 'meta l4proto tcp dnat to [fd00:244::b]:8080']);
    expect(ruleTexts(s.chains.get(portChains(p).svc))).toEqual([`ip6 saddr @${set} goto ${epChain}`, `numgen random mod 1 vmap { 0 : goto ${epChain} }`]);
    expect(s.countChains.size).toBe(0);
  });

  it('a full render: the table anew when its state is unknown, else flushed; the chain count follows endpoint counts, not services', () => {
    const many = Array.from({ length: 50 }, (_, i) => renderService(plan(`test/s${i}`, [port({
      serviceKey: `test/s${i}`, clusterIP: `10.96.3.${i}`, clusterEndpoints: [ep('10.244.1.1'), ep('10.244.1.2'), ...(i % 2 ? [ep('10.244.1.3')] : [])], hasAnyEndpoints: true,
    })]), cfg4)!);
    const fresh = renderFull(many, cfg4);
    expect(fresh.lines.slice(0, 3)).toEqual(['add table ip kube-dataplane', 'delete table ip kube-dataplane', 'add table ip kube-dataplane']);
    expect(fresh.lines.filter((l) => l.startsWith('add chain ip kube-dataplane cluster-'))).toEqual(['add chain ip kube-dataplane cluster-2', 'add chain ip kube-dataplane cluster-3']);
    expect(fresh.lines).toContain('add rule ip kube-dataplane filter-forward ct state new ip daddr @cluster-ips goto reject-service');
    expect(fresh.lines).toContain('add rule ip kube-dataplane filter-output ct state new ip daddr @service-cidrs drop');
    expect(fresh.lines).toContain('add element ip kube-dataplane service-cidrs { 10.96.0.0/16 }');
    expect(fresh.elements).toBe(50 + 50 + 125);
    const again = renderFull(many.slice(0, 1), cfg4, { chains: new Set(['svc-OLD']), sets: new Set(['aff-OLD']), countChains: fresh.countChains });
    expect(again.lines.slice(0, 2)).toEqual(['add table ip kube-dataplane', 'flush table ip kube-dataplane']);
    // Endpoint maps are declared anew (nft cannot write rules against them once in the kernel).
    expect(again.lines).toContain('delete map ip kube-dataplane endpoints');
    expect(again.lines).toContain('flush map ip kube-dataplane service-ips');
    expect(again.lines.slice(-3)).toEqual(['delete chain ip kube-dataplane svc-OLD', 'delete chain ip kube-dataplane cluster-3', 'delete set ip kube-dataplane aff-OLD']);
  });

  it('two services claiming one external IP and port: the first keeps the whole path', () => {
    const a = renderService(plan('test/a', [port({ serviceKey: 'test/a', externalIPs: ['198.51.100.20'], externallyAccessible: true, clusterEndpoints: [ep('10.244.0.11')], hasAnyEndpoints: true })]), cfg4)!;
    const b = renderService(plan('test/b', [port({ serviceKey: 'test/b', externalIPs: ['198.51.100.20'], externallyAccessible: true, clusterEndpoints: [ep('10.244.0.12'), ep('10.244.0.13')], hasAnyEndpoints: true })]), cfg4)!;
    const both = renderFull([a, b], cfg4);
    expect(both.owners.get('a 198.51.100.20 . tcp . 80')).toBe('test/a');
    expect(both.lines.filter((l) => l.includes('198.51.100.20'))).toEqual([
      'add element ip kube-dataplane service-ips { 198.51.100.20 . tcp . 80 : goto external-1 }',
      'add element ip kube-dataplane endpoints { 198.51.100.20 . tcp . 80 . 0 : 10.244.0.11 . 8080 }',
    ]);
  });

  it('--nodeport-addresses: node ports only on those addresses', () => {
    const lines = renderFull([], { ...cfg4, nodePortAddresses: ['192.168.50.1'] }).lines;
    expect(lines).toContain('add rule ip kube-dataplane services ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports');
    expect(lines).toContain('add element ip kube-dataplane nodeport-ips { 192.168.50.1 }');
    expect(lines.join('\n')).not.toMatch(/fib daddr type local ip daddr/);
  });
});

describe('nftables render: partial changes', () => {
  it('an endpoint removal changes only that service\'s elements: the verdict to the smaller count, the last slot deleted', () => {
    const before = renderService(web([ep('10.244.0.11'), ep('10.244.0.12')]), cfg4)!;
    const other = renderService(plan('test/other', [port({ serviceKey: 'test/other', clusterIP: '10.96.0.20', clusterEndpoints: [ep('10.244.0.12')], hasAnyEndpoints: true })]), cfg4)!;
    const full = renderFull([before, other], cfg4);
    const hairpin = hairpinCounts([before, other]);
    const after = renderService(web([ep('10.244.0.11')]), cfg4)!;
    const change = diffServices([{ key: 'test/web', before, after }], full.owners, hairpin, full.countChains)!;
    expect(partialLines(change, cfg4)).toEqual([
      'delete element ip kube-dataplane service-ips { 10.96.0.10 . tcp . 80 }',
      'delete element ip kube-dataplane endpoints { 10.96.0.10 . tcp . 80 . 1 }',
      'add element ip kube-dataplane service-ips { 10.96.0.10 . tcp . 80 : goto cluster-1 }',
    ]);
    // cluster-1 exists (test/other uses it); 10.244.0.12 is still used by test/other.
    expect(hairpin.get('10.244.0.12')).toBe(1);

    // A count no service had before: its chain is made first, in the same transaction.
    const three = renderService(web([ep('10.244.0.11'), ep('10.244.0.12'), ep('10.244.0.14')]), cfg4)!;
    const grow = partialLines(diffServices([{ key: 'test/web', before: after, after: three }], full.owners, hairpin, full.countChains)!, cfg4);
    expect(grow.slice(0, 3)).toEqual([
      'add chain ip kube-dataplane cluster-3',
      'add rule ip kube-dataplane cluster-3 ip saddr != @cluster-cidrs jump mark-for-masquerade',
      'add rule ip kube-dataplane cluster-3 dnat ip addr . port to ip daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints',
    ]);
    expect(grow).toContain('add element ip kube-dataplane hairpin { 10.244.0.14 . 10.244.0.14 }');

    // The service goes away: its elements and its unused hairpin entries go; nothing of test/other.
    const gone = partialLines(diffServices([{ key: 'test/web', before: three }], full.owners, hairpin, full.countChains)!, cfg4);
    expect(gone.join('\n')).not.toMatch(/10\.96\.0\.20/);
    expect(gone).toContain('delete element ip kube-dataplane cluster-ips { 10.96.0.10 }');
    expect(gone).toContain('delete element ip kube-dataplane hairpin { 10.244.0.11 . 10.244.0.11 }');
    expect(gone).not.toContain('delete element ip kube-dataplane hairpin { 10.244.0.12 . 10.244.0.12 }');
    expect(full.owners.has('a 10.96.0.10 . tcp . 80')).toBe(false);
    expect(diffServices([{ key: 'test/other', before: other, after: other }], full.owners, hairpin, full.countChains)).toBeUndefined();
  });

  it('records its changes to the owners and hairpin maps; rolled back, both are as before', () => {
    const before = renderService(web([ep('10.244.0.11'), ep('10.244.0.12')]), cfg4)!;
    const other = renderService(plan('test/other', [port({ serviceKey: 'test/other', clusterIP: '10.96.0.20', clusterEndpoints: [ep('10.244.0.12')], hasAnyEndpoints: true })]), cfg4)!;
    const full = renderFull([before, other], cfg4);
    const owners = full.owners;
    const hairpin = hairpinCounts([before, other]);
    const [ownersWas, hairpinWas] = [new Map(owners), new Map(hairpin)];
    const after = renderService(web([ep('10.244.0.13')]), cfg4)!;
    const undo = new MapUndo();
    diffServices([{ key: 'test/web', before, after }, { key: 'test/other', before: other }], owners, hairpin, full.countChains, undo);
    expect(owners).not.toEqual(ownersWas);
    expect(hairpin).toEqual(new Map([['10.244.0.13', 1]]));
    undo.rollback();
    expect(owners).toEqual(ownersWas);
    expect(hairpin).toEqual(hairpinWas);
  });

  it('a service losing its endpoints swaps its verdict and slots for a reject in one transaction', () => {
    const before = renderService(web([ep('10.244.0.11')]), cfg4)!;
    const after = renderService(web([]), cfg4)!;
    const full = renderFull([before], cfg4);
    const lines = partialLines(diffServices([{ key: 'test/web', before, after }], full.owners, hairpinCounts([before]), full.countChains)!, cfg4);
    expect(lines).toEqual([
      'delete element ip kube-dataplane service-ips { 10.96.0.10 . tcp . 80 }',
      'delete element ip kube-dataplane endpoints { 10.96.0.10 . tcp . 80 . 0 }',
      'delete element ip kube-dataplane hairpin { 10.244.0.11 . 10.244.0.11 }',
      'add element ip kube-dataplane service-filter { 10.96.0.10 . tcp . 80 : goto reject-service }',
    ]);
  });

  it('a path freed by its owner is not taken by the other claimant in a partial sync', () => {
    const a = renderService(plan('test/a', [port({ serviceKey: 'test/a', externalIPs: ['198.51.100.20'], externallyAccessible: true, clusterEndpoints: [ep('10.244.0.11')], hasAnyEndpoints: true })]), cfg4)!;
    const b = renderService(plan('test/b', [port({ serviceKey: 'test/b', externalIPs: ['198.51.100.20'], externallyAccessible: true, clusterEndpoints: [ep('10.244.0.12')], hasAnyEndpoints: true })]), cfg4)!;
    const full = renderFull([a, b], cfg4);
    const hairpin = hairpinCounts([a, b]);
    // b changes while a holds the path: nothing of the path is written for b.
    const b2 = renderService(plan('test/b', [port({ serviceKey: 'test/b', externalIPs: ['198.51.100.20'], externallyAccessible: true, clusterEndpoints: [ep('10.244.0.15')], hasAnyEndpoints: true })]), cfg4)!;
    const lines = partialLines(diffServices([{ key: 'test/b', before: b, after: b2 }], full.owners, hairpin, full.countChains)!, cfg4);
    expect(lines.join('\n')).not.toMatch(/198\.51\.100\.20/);
  });
});
