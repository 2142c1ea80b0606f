import { describe, expect, it } from 'vitest';
import { Catalog } from '../../cluster/catalog.js';
import { configureLogging } from '../../common/log.js';
import type { ServicePlan } from '../core/model.js';
import { planService } from '../core/plan.js';
import { cleanupRestore } from './backend.js';
import { parseSave, renderFull, renderPartial, renderService, type FamilyConfig, type ServiceRules } from './render.js';
import { RuleSet, trace, type Outcome, type Packet } from './tracer.js';

configureLogging({ write: () => {} });

const ME = 'node-a';
const NODE_IP = '192.168.1.10';
const CFG: FamilyConfig = { family: 'IPv4', clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, nodePortAddresses: 'all', nodeIPs: [NODE_IP] };
const CFG6: FamilyConfig = { family: 'IPv6', clusterCIDRs: ['fd00:244::/48'], masqueradeAll: false, nodePortAddresses: 'all', nodeIPs: ['fd00:1::10'] };
const EMPTY = parseSave('');

function service(name: string, spec: Record<string, unknown>) {
  return {
    metadata: { name, namespace: 'ns', resourceVersion: '1' },
    spec: { ports: [{ name: 'p', port: 80, targetPort: 8080, protocol: 'TCP' }], ...spec },
  };
}
type EP = { ip: string; node?: string; ready?: boolean; serving?: boolean; terminating?: boolean };
function slice(svc: string, eps: EP[], port = { name: 'p', port: 8080, protocol: 'TCP' }, name = `${svc}-1`) {
  return {
    metadata: { name, namespace: 'ns', labels: { 'kubernetes.io/service-name': svc } },
    addressType: eps[0]?.ip.includes(':') ? 'IPv6' : 'IPv4',
    ports: [port],
    endpoints: eps.map((e) => ({
      addresses: [e.ip],
      nodeName: e.node ?? 'node-b',
      conditions: { ready: e.ready ?? true, serving: e.serving ?? e.ready ?? true, terminating: e.terminating ?? false },
    })),
  };
}

function plans(objs: { services: unknown[]; slices: unknown[] }): ServicePlan[] {
  const c = new Catalog();
  for (const s of objs.services) c.apply('Service', s);
  for (const s of objs.slices) c.apply('EndpointSlice', s);
  return [...c.services()].map((s) => planService(s, c.endpoints(s.key), { nodeName: ME })).filter((p): p is ServicePlan => !!p);
}

function load(ps: ServicePlan[], cfg = CFG): { rules: RuleSet; rendered: ServiceRules[]; text: string } {
  const rendered = ps.map((p) => renderService(p, cfg)).filter((r): r is ServiceRules => !!r);
  const text = renderFull(rendered, cfg, EMPTY);
  const rules = new RuleSet();
  rules.apply(text);
  return { rules, rendered, text };
}

/** Outcomes summarised: verdict, target and masquerade, with probabilities summed. */
function where(rules: RuleSet, pkt: Partial<Packet> & { dst: string }, nodeIPs = [NODE_IP]): Record<string, number> {
  const full: Packet = { src: '203.0.113.7', protocol: 'tcp', dport: 80, ...pkt };
  const out: Record<string, number> = {};
  for (const o of trace(rules, full, nodeIPs)) {
    const k = label(o);
    out[k] = Math.round(((out[k] ?? 0) + o.probability) * 1000) / 1000;
  }
  return out;
}
function label(o: Outcome): string {
  return `${o.verdict}${o.dnat ? ` ${o.dnat}` : ''}${o.masquerade ? ' masq' : ''}`;
}

describe('iptables rules (traced)', () => {
  const web = () => plans({
    services: [service('web', { clusterIP: '10.96.0.10' })],
    slices: [slice('web', [{ ip: '10.244.1.5' }, { ip: '10.244.2.6' }, { ip: '10.244.3.7' }])],
  });

  it('a cluster IP spreads new connections evenly over every endpoint', () => {
    const { rules } = load(web());
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.10' })).toEqual({
      'ACCEPT 10.244.1.5:8080': 0.333,
      'ACCEPT 10.244.2.6:8080': 0.333,
      'ACCEPT 10.244.3.7:8080': 0.333,
    });
  });

  it('only the service port is captured', () => {
    const { rules } = load(web());
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.10', dport: 81 })).toEqual({ ACCEPT: 1 });
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.10', protocol: 'udp' })).toEqual({ ACCEPT: 1 });
  });

  it('clients outside the cluster CIDR are masqueraded, pods are not', () => {
    const { rules } = load(web());
    const out = where(rules, { src: '203.0.113.7', dst: '10.96.0.10' });
    expect(Object.keys(out).every((k) => k.endsWith('masq'))).toBe(true);
    const inside = where(rules, { src: '10.244.9.9', dst: '10.96.0.10' });
    expect(Object.keys(inside).some((k) => k.endsWith('masq'))).toBe(false);
  });

  // kube-proxy writes one rule with the detector's match; with two cluster CIDRs of a family the
  // old `! -s A` and `! -s B` rules ORed and a pod in A was masqueraded by B's rule.
  it('local traffic per --detect-local-mode: the detector decides who is masqueraded', () => {
    const pod = { src: '10.244.1.9', dst: '10.96.0.10', iif: 'cbr0' };
    const outside = { src: '203.0.113.7', dst: '10.96.0.10', iif: 'eth0' };
    const podOtherRange = { src: '10.245.1.9', dst: '10.96.0.10', iif: 'veth123' };
    const bridge = load(web(), { ...CFG, localDetector: { mode: 'BridgeInterface', bridge: 'cbr0' } }).rules;
    expect(Object.keys(where(bridge, pod)).every((k) => !k.endsWith('masq'))).toBe(true);
    expect(Object.keys(where(bridge, podOtherRange)).every((k) => k.endsWith('masq'))).toBe(true);
    expect(Object.keys(where(bridge, outside)).every((k) => k.endsWith('masq'))).toBe(true);
    // The node's own traffic has no input interface: not local, as with kube-proxy.
    expect(Object.keys(where(bridge, { src: NODE_IP, dst: '10.96.0.10', fromNode: true })).every((k) => k.endsWith('masq'))).toBe(true);
    const prefix = load(web(), { ...CFG, localDetector: { mode: 'InterfaceNamePrefix', prefix: 'veth' } }).rules;
    expect(Object.keys(where(prefix, podOtherRange)).every((k) => !k.endsWith('masq'))).toBe(true);
    expect(Object.keys(where(prefix, pod)).every((k) => k.endsWith('masq'))).toBe(true);
    const nodeCIDR = load(web(), { ...CFG, localDetector: { mode: 'NodeCIDR', cidr: '10.245.1.0/24' } }).rules;
    expect(Object.keys(where(nodeCIDR, podOtherRange)).every((k) => !k.endsWith('masq'))).toBe(true);
    expect(Object.keys(where(nodeCIDR, pod)).every((k) => k.endsWith('masq'))).toBe(true);
    // No CIDR known (NodeCIDR before the Node has one): no rule depends on it, nothing masqueraded.
    const none = load(web(), { ...CFG, localDetector: { mode: 'NodeCIDR' } });
    expect(none.text.split('\n').filter((l) => l.startsWith('-A KUBE-SVC-') && l.includes('KUBE-MARK-MASQ'))).toEqual([]);
    expect(Object.keys(where(none.rules, outside)).every((k) => !k.endsWith('masq'))).toBe(true);
  });

  it('--masquerade-all masquerades pods too', () => {
    const { rules } = load(web(), { ...CFG, masqueradeAll: true });
    const inside = where(rules, { src: '10.244.9.9', dst: '10.96.0.10' });
    expect(Object.keys(inside).every((k) => k.endsWith('masq'))).toBe(true);
  });

  it('hairpin: an endpoint reaching itself through the service is masqueraded', () => {
    const { rules } = load(web());
    const out = where(rules, { src: '10.244.1.5', dst: '10.96.0.10' });
    expect(out['ACCEPT 10.244.1.5:8080 masq']).toBeCloseTo(0.333, 2);
    expect(out['ACCEPT 10.244.2.6:8080']).toBeCloseTo(0.333, 2);
  });

  it('no endpoints: REJECT at once', () => {
    const { rules } = load(plans({ services: [service('web', { clusterIP: '10.96.0.10' })], slices: [] }));
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.10' })).toEqual({ REJECT: 1 });
  });

  it('only not-ready endpoints: REJECT; a serving-terminating one is used when no other', () => {
    let { rules } = load(plans({ services: [service('web', { clusterIP: '10.96.0.10' })], slices: [slice('web', [{ ip: '10.244.1.5', ready: false }])] }));
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.10' })).toEqual({ REJECT: 1 });
    ({ rules } = load(plans({
      services: [service('web', { clusterIP: '10.96.0.10' })],
      slices: [slice('web', [{ ip: '10.244.1.5', ready: false, serving: true, terminating: true }, { ip: '10.244.1.6', ready: false }])],
    })));
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.10' })).toEqual({ 'ACCEPT 10.244.1.5:8080': 1 });
  });

  it('internalTrafficPolicy Local: local endpoints only; none local → DROP', () => {
    const local = plans({
      services: [service('web', { clusterIP: '10.96.0.10', internalTrafficPolicy: 'Local' })],
      slices: [slice('web', [{ ip: '10.244.1.5', node: ME }, { ip: '10.244.2.6' }])],
    });
    expect(where(load(local).rules, { src: '10.244.9.9', dst: '10.96.0.10' })).toEqual({ 'ACCEPT 10.244.1.5:8080': 1 });
    const remote = plans({
      services: [service('web', { clusterIP: '10.96.0.10', internalTrafficPolicy: 'Local' })],
      slices: [slice('web', [{ ip: '10.244.2.6' }])],
    });
    expect(where(load(remote).rules, { src: '10.244.9.9', dst: '10.96.0.10' })).toEqual({ DROP: 1 });
  });

  describe('NodePort', () => {
    const np = (etp: 'Cluster' | 'Local', eps: EP[]) => plans({
      services: [service('np', { type: 'NodePort', clusterIP: '10.96.0.20', externalTrafficPolicy: etp, ports: [{ name: 'p', port: 80, targetPort: 8080, nodePort: 30080 }] })],
      slices: [slice('np', eps)],
    });

    it('Cluster policy: any endpoint, masqueraded', () => {
      const { rules } = load(np('Cluster', [{ ip: '10.244.1.5', node: ME }, { ip: '10.244.2.6' }]));
      expect(where(rules, { dst: NODE_IP, dport: 30080 })).toEqual({ 'ACCEPT 10.244.1.5:8080 masq': 0.5, 'ACCEPT 10.244.2.6:8080 masq': 0.5 });
      expect(where(rules, { dst: '192.168.1.99', dport: 30080 })).toEqual({ ACCEPT: 1 }); // not a node address
    });

    // kube-proxy's iptables mode, --iptables-localhost-nodeports (default true): 127.0.0.1 is a
    // node port, DNATed and masqueraded (for either traffic policy: the source is the node's);
    // packets to 127.0.0.0/8 from elsewhere that are not DNATed are dropped (CVE-2020-8558).
    it('--iptables-localhost-nodeports: 127.0.0.1 from the node is DNATed and masqueraded; martians to loopback dropped', () => {
      const eps = [{ ip: '10.244.1.5', node: ME }];
      const on = load(np('Cluster', eps), { ...CFG, localhostNodePorts: true }).rules;
      const fromLo = { src: '127.0.0.1', dst: '127.0.0.1', dport: 30080, fromNode: true };
      expect(where(on, fromLo)).toEqual({ 'ACCEPT 10.244.1.5:8080 masq': 1 });
      expect(where(load(np('Local', eps), { ...CFG, localhostNodePorts: true }).rules, fromLo)).toEqual({ 'ACCEPT 10.244.1.5:8080 masq': 1 });
      expect(where(on, { src: '203.0.113.7', dst: '127.0.0.1', dport: 22 })).toEqual({ DROP: 1 });
      expect(where(on, { src: '127.0.0.1', dst: '127.0.0.1', dport: 22, fromNode: true })).toEqual({ ACCEPT: 1 });
      // Off (and always for IPv6): loopback is not a node port and nothing is dropped for it.
      const off = load(np('Cluster', eps)).rules;
      expect(where(off, fromLo)).toEqual({ ACCEPT: 1 });
      expect(where(off, { src: '203.0.113.7', dst: '127.0.0.1', dport: 22 })).toEqual({ ACCEPT: 1 });
    });

    it('Local policy: local endpoints only, client source kept', () => {
      const { rules } = load(np('Local', [{ ip: '10.244.1.5', node: ME }, { ip: '10.244.2.6' }]));
      expect(where(rules, { dst: NODE_IP, dport: 30080 })).toEqual({ 'ACCEPT 10.244.1.5:8080': 1 });
    });

    it('Local policy: pods and the node itself still reach every endpoint', () => {
      const { rules } = load(np('Local', [{ ip: '10.244.1.5', node: ME }, { ip: '10.244.2.6' }]));
      expect(where(rules, { src: '10.244.9.9', dst: NODE_IP, dport: 30080 })).toEqual({ 'ACCEPT 10.244.1.5:8080': 0.5, 'ACCEPT 10.244.2.6:8080': 0.5 });
      expect(where(rules, { src: NODE_IP, dst: NODE_IP, dport: 30080, fromNode: true })).toEqual({ 'ACCEPT 10.244.1.5:8080 masq': 0.5, 'ACCEPT 10.244.2.6:8080 masq': 0.5 });
    });

    it('Local policy without local endpoints: DROP from outside', () => {
      const { rules } = load(np('Local', [{ ip: '10.244.2.6' }]));
      expect(where(rules, { dst: NODE_IP, dport: 30080 })).toEqual({ DROP: 1 });
    });

    it('no endpoints at all: REJECT', () => {
      const { rules } = load(np('Cluster', []));
      expect(where(rules, { dst: NODE_IP, dport: 30080 })).toEqual({ REJECT: 1 });
    });

    it('--nodeport-addresses limits node ports to the given addresses', () => {
      const { rules } = load(np('Cluster', [{ ip: '10.244.2.6' }]), { ...CFG, nodePortAddresses: [NODE_IP] });
      expect(where(rules, { dst: NODE_IP, dport: 30080 })).toEqual({ 'ACCEPT 10.244.2.6:8080 masq': 1 });
      // Another local address is not captured: the packet goes to whatever listens there.
      expect(where(rules, { dst: '192.168.2.10', dport: 30080 }, [NODE_IP, '192.168.2.10'])).toEqual({ ACCEPT: 1 });
    });
  });

  describe('external and load-balancer IPs', () => {
    const lb = (spec: Record<string, unknown>, eps: EP[]) => plans({
      services: [{ ...service('lb', { type: 'LoadBalancer', clusterIP: '10.96.0.30', externalIPs: ['198.51.100.5'], ports: [{ name: 'p', port: 80, targetPort: 8080, nodePort: 30090 }], ...spec }), status: { loadBalancer: { ingress: [{ ip: '198.51.100.9' }] } } }],
      slices: [slice('lb', eps)],
    });

    it('external IP and load-balancer IP reach the endpoints, masqueraded', () => {
      const { rules } = load(lb({}, [{ ip: '10.244.2.6' }]));
      expect(where(rules, { dst: '198.51.100.5' })).toEqual({ 'ACCEPT 10.244.2.6:8080 masq': 1 });
      expect(where(rules, { dst: '198.51.100.9' })).toEqual({ 'ACCEPT 10.244.2.6:8080 masq': 1 });
    });

    it('loadBalancerSourceRanges: allowed sources pass, others are dropped', () => {
      const { rules } = load(lb({ loadBalancerSourceRanges: ['203.0.113.0/24'] }, [{ ip: '10.244.2.6' }]));
      expect(where(rules, { src: '203.0.113.7', dst: '198.51.100.9' })).toEqual({ 'ACCEPT 10.244.2.6:8080 masq': 1 });
      expect(where(rules, { src: '198.18.0.1', dst: '198.51.100.9' })).toEqual({ DROP: 1 });
      // The ranges guard the load-balancer IP, not the node port (as kube-proxy).
      expect(where(rules, { src: '198.18.0.1', dst: NODE_IP, dport: 30090 })).toEqual({ 'ACCEPT 10.244.2.6:8080 masq': 1 });
    });

    it('no endpoints: external IP and load-balancer IP REJECT', () => {
      const { rules } = load(lb({}, []));
      expect(where(rules, { dst: '198.51.100.5' })).toEqual({ REJECT: 1 });
      expect(where(rules, { dst: '198.51.100.9' })).toEqual({ REJECT: 1 });
    });
  });

  it('session affinity: a check per endpoint before the random rules, and recent --set in each endpoint', () => {
    const { text, rules } = load(plans({
      services: [service('web', { clusterIP: '10.96.0.10', sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 600 } } })],
      slices: [slice('web', [{ ip: '10.244.1.5' }, { ip: '10.244.2.6' }])],
    }));
    expect(text.match(/--rcheck --seconds 600 --reap/g)).toHaveLength(2);
    expect(text.match(/--rsource --set -p tcp -m tcp -j DNAT/g)).toHaveLength(2);
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.10' })).toEqual({ 'ACCEPT 10.244.1.5:8080': 0.5, 'ACCEPT 10.244.2.6:8080': 0.5 });
  });

  it('IPv6 endpoints are written in brackets and only IPv6 services render in the IPv6 table', () => {
    const ps = plans({
      services: [service('v6', { clusterIP: 'fd00:96::10', clusterIPs: ['fd00:96::10'], ipFamilies: ['IPv6'] }), service('web', { clusterIP: '10.96.0.10' })],
      slices: [slice('v6', [{ ip: 'fd00:244::5' }])],
    });
    const { rules, rendered } = load(ps, CFG6);
    expect(rendered.map((r) => r.key)).toEqual(['ns/v6']);
    expect(where(rules, { src: 'fd00:244::9', dst: 'fd00:96::10' })).toEqual({ 'ACCEPT [fd00:244::5]:8080': 1 });
  });
});

describe('partial syncs', () => {
  const base = () => ({
    services: [service('a', { clusterIP: '10.96.0.1' }), service('b', { clusterIP: '10.96.0.2' })],
    slices: [slice('a', [{ ip: '10.244.1.1' }, { ip: '10.244.1.2' }]), slice('b', [{ ip: '10.244.2.1' }])],
  });

  function state(ps: ServicePlan[]) {
    return new Map(ps.map((p) => [p.key, renderService(p, CFG)!]));
  }

  it('nothing changed: nothing to restore', () => {
    const s = state(plans(base()));
    expect(renderPartial([{ before: s.get('ns/a'), after: s.get('ns/a') }])).toBeUndefined();
  });

  it('one endpoint gone: its chain deleted, the service chain rewritten, other chains and services untouched', () => {
    const before = state(plans(base()));
    const changedObjs = base();
    changedObjs.slices[0] = slice('a', [{ ip: '10.244.1.1' }]);
    const after = state(plans(changedObjs));
    const text = renderPartial([{ before: before.get('ns/a'), after: after.get('ns/a') }])!;
    const declared = text.split('\n').filter((l) => l.startsWith(':'));
    expect(declared).toHaveLength(2); // KUBE-SVC-a (rewritten), the gone KUBE-SEP
    expect(text).toMatch(/^-X KUBE-SEP-/m);
    expect(text).not.toContain('10.96.0.2');
    expect(text).not.toContain('*filter');

    // Applied on top of the full ruleset, it gives the same packet paths as a fresh full sync.
    const rules = new RuleSet();
    rules.apply(renderFull(before.values(), CFG, EMPTY));
    rules.apply(text);
    const fresh = new RuleSet();
    fresh.apply(renderFull(after.values(), CFG, EMPTY));
    for (const dst of ['10.96.0.1', '10.96.0.2']) {
      expect(where(rules, { src: '10.244.9.9', dst })).toEqual(where(fresh, { src: '10.244.9.9', dst }));
    }
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.1' })).toEqual({ 'ACCEPT 10.244.1.1:8080': 1 });
  });

  it('last endpoint gone: DNAT dispatch deleted, REJECT added; and back', () => {
    const before = state(plans(base()));
    const objs = base();
    objs.slices[0] = slice('a', []);
    const after = state(plans(objs));
    const text = renderPartial([{ before: before.get('ns/a'), after: after.get('ns/a') }])!;
    const rules = new RuleSet();
    rules.apply(renderFull(before.values(), CFG, EMPTY));
    rules.apply(text);
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.1' })).toEqual({ REJECT: 1 });
    rules.apply(renderPartial([{ before: after.get('ns/a'), after: before.get('ns/a') }])!);
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.1' })).toEqual({ 'ACCEPT 10.244.1.1:8080': 0.5, 'ACCEPT 10.244.1.2:8080': 0.5 });
  });

  it('a new service is inserted before the node-port jump, which stays last', () => {
    const ps = plans(base());
    const s = state(ps.filter((p) => p.key === 'ns/a'));
    const rules = new RuleSet();
    rules.apply(renderFull(s.values(), CFG, EMPTY));
    rules.apply(renderPartial([{ after: state(ps).get('ns/b') }])!);
    const chain = rules.chain('nat', 'KUBE-SERVICES')!;
    expect(chain[chain.length - 1].join(' ')).toContain('KUBE-NODEPORTS');
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.2' })).toEqual({ 'ACCEPT 10.244.2.1:8080': 1 });
  });

  it('a service removed: every chain of it deleted, nothing referencing them left', () => {
    const s = state(plans(base()));
    const rules = new RuleSet();
    rules.apply(renderFull(s.values(), CFG, EMPTY));
    rules.apply(renderPartial([{ before: s.get('ns/b') }])!); // -X of a referenced chain would throw
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.2' })).toEqual({ ACCEPT: 1 });
    expect([...rules.tables.get('nat')!.keys()].filter((c) => /^KUBE-(SVC|SEP)/.test(c))).toHaveLength(3);
  });
});

describe('full syncs over an existing ruleset', () => {
  it('deletes stale chains of ours, keeps others, and inserts only missing jumps', () => {
    const saved = [
      '*nat',
      ':PREROUTING ACCEPT [0:0]',
      ':KUBE-SERVICES - [0:0]',
      ':KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]',
      ':KUBE-SEP-BBBBBBBBBBBBBBBB - [0:0]',
      ':CNI-HOSTPORT-DNAT - [0:0]',
      '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
      'COMMIT',
      '*filter',
      ':INPUT ACCEPT [0:0]',
      'COMMIT',
    ].join('\n');
    const text = renderFull([], CFG, parseSave(saved));
    expect(text).toContain('-X KUBE-SVC-AAAAAAAAAAAAAAAA');
    expect(text).toContain('-X KUBE-SEP-BBBBBBBBBBBBBBBB');
    expect(text).not.toContain('CNI-HOSTPORT-DNAT');
    expect(text).not.toMatch(/-I PREROUTING/);
    expect(text).toMatch(/-I OUTPUT 1 .*-j KUBE-SERVICES/);
    expect(text).toMatch(/-I INPUT 1 .*KUBE-PROXY-FIREWALL/);
  });

  it('cleanup deletes our jumps and chains and nothing else', () => {
    const { text } = load(plans({ services: [service('web', { clusterIP: '10.96.0.10' })], slices: [slice('web', [{ ip: '10.244.1.5' }])] }));
    // What iptables-save would print after that restore, plus a foreign chain and rule.
    const rules = new RuleSet();
    rules.apply(text);
    const lines: string[] = [];
    for (const [table, chains] of rules.tables) {
      lines.push(`*${table}`);
      for (const c of chains.keys()) lines.push(`:${c} - [0:0]`);
      lines.push(':OTHER - [0:0]', '-A OTHER -j ACCEPT', '-A FORWARD -j OTHER');
      for (const [c, rs] of chains) for (const r of rs) lines.push(`-A ${c} ${r.map((t) => (t.includes(' ') ? `"${t}"` : t)).join(' ')}`);
      lines.push('COMMIT');
    }
    const cleanup = cleanupRestore(lines.join('\n'))!;
    expect(cleanup).not.toMatch(/OTHER/);
    expect(cleanup).toMatch(/^-D PREROUTING .*KUBE-SERVICES$/m);
    expect(cleanup).toMatch(/^-X KUBE-SEP-/m);
    expect(cleanup).toMatch(/^-X KUBE-MARK-MASQ$/m);
  });
});

describe('odd input', () => {
  it('a service with 1,000 ports renders every port, and its neighbours are untouched', () => {
    const many = Array.from({ length: 1000 }, (_, i) => ({ name: `p${i}`, port: 10_000 + i, targetPort: 20_000 + i, protocol: 'TCP' }));
    const ps = plans({
      services: [service('big', { clusterIP: '10.96.0.50', ports: many }), service('web', { clusterIP: '10.96.0.10' })],
      slices: [
        { ...slice('big', [{ ip: '10.244.1.5' }]), ports: many.map((p) => ({ name: p.name, port: p.targetPort, protocol: 'TCP' })) },
        slice('web', [{ ip: '10.244.2.6' }]),
      ],
    });
    const { rules } = load(ps);
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.50', dport: 10_999 })).toEqual({ 'ACCEPT 10.244.1.5:20999': 1 });
    expect(where(rules, { src: '10.244.9.9', dst: '10.96.0.10' })).toEqual({ 'ACCEPT 10.244.2.6:8080': 1 });
  });

  it('duplicate ports in a hand-written manifest: the first one wins, no duplicate chains', () => {
    const ps = plans({
      services: [service('dup', { clusterIP: '10.96.0.60', ports: [{ name: 'p', port: 80, targetPort: 8080, protocol: 'TCP' }, { name: 'p', port: 81, targetPort: 8080, protocol: 'TCP' }] })],
      slices: [slice('dup', [{ ip: '10.244.1.5' }])],
    });
    // Whether the catalog refuses the object or the plan drops the second port, nothing breaks.
    for (const p of ps) expect(p.ports.filter((x) => x.family === 'IPv4')).toHaveLength(1);
    expect(() => load(ps)).not.toThrow();
  });

  it('endpoints whose slice names no port of the service get no rules; the service rejects', () => {
    const ps = plans({
      services: [service('web', { clusterIP: '10.96.0.10' })],
      slices: [slice('web', [{ ip: '10.244.1.5' }], { name: 'other', port: 9090, protocol: 'TCP' })],
    });
    expect(where(load(ps).rules, { src: '10.244.9.9', dst: '10.96.0.10' })).toEqual({ REJECT: 1 });
  });
});
