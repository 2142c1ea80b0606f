import { describe, expect, it } from 'vitest';
import type { FamilyConfig } from '../core/family-config.js';
import { MAPS, countChainRules } from './layout.js';
import { encodeElement, freshTableOps, intervalElements, refillOps } from './netlink-writer.js';
import { collectTable, fullLines } from './render.js';
import { encodeExpressions, reg32, type Expr } from './netlink/expressions.js';

const cfg4: FamilyConfig = { family: 'IPv4', clusterCIDRs: ['10.244.0.0/16'], masqueradeAll: false, nodePortAddresses: 'all', nodeIPs: [], serviceCIDRs: [] };
const cfg6: FamilyConfig = { ...cfg4, family: 'IPv6', clusterCIDRs: ['fd00:244::/48'] };
const hex = (b: Uint8Array | undefined) => (b ? Buffer.from(b).toString('hex') : undefined);

describe('netlink writer: elements from their nft spelling', () => {
  it('an endpoint slot: address . protocol . port . slot → address . port, each field in a 4-byte register', () => {
    const e = encodeElement('IPv4', MAPS.endpoints, '10.96.0.1 . udp . 53 . 2', '10.244.0.5 . 5353');
    const slot = hex(new Uint8Array(new Uint32Array([2]).buffer)); // host order, as numgen writes it
    expect(hex(e.key)).toBe(`0a600001` + `11000000` + `00350000` + slot);
    expect(hex(e.data)).toBe('0af40005' + '14e90000');
  });

  it('a verdict element, an IPv6 key, and a delete carries the key only', () => {
    const e = encodeElement('IPv6', MAPS['service-ips'], 'fd00:96::10 . tcp . 80', 'goto cluster-3');
    expect(hex(e.key)).toBe('fd000096000000000000000000000010' + '06000000' + '00500000');
    expect(e.verdict).toEqual({ code: 'goto', chain: 'cluster-3' });
    expect(encodeElement('IPv4', MAPS['service-filter'], '10.96.0.1 . tcp . 81', 'drop', true)).toEqual({ key: encodeElement('IPv4', MAPS['service-filter'], '10.96.0.1 . tcp . 81', 'drop').key });
  });

  it('a source range is a key and a key end (a concatenation of intervals), a single address a range of one', () => {
    const r = encodeElement('IPv4', MAPS['firewall-allow'], '203.0.113.7 . tcp . 80 . 198.51.100.0/24');
    expect(hex(r.key)).toBe('cb007107' + '06000000' + '00500000' + 'c6336400');
    expect(hex(r.keyEnd)).toBe('cb007107' + '06000000' + '00500000' + 'c63364ff');
    const one = encodeElement('IPv4', MAPS['firewall-allow'], '203.0.113.7 . tcp . 80 . 203.0.113.7');
    expect(hex(one.keyEnd)).toBe(hex(one.key));
  });

  it('refuses a key with the wrong number of fields, naming the map', () => {
    expect(() => encodeElement('IPv4', MAPS.endpoints, '10.96.0.1 . tcp . 80', '10.244.0.5 . 80')).toThrow(/endpoints: key .* has 3 fields, the map 4/);
  });
});

describe('netlink writer: the shared per-count chains', () => {
  it('the dnat rule is the one nft builds (registers as nft picks them, checked against its bytes in netlink/expressions.test.ts)', () => {
    const load = (offset: number, len: number, r: number, base: 'network' | 'transport' = 'network'): Expr => ({ kind: 'payload', base, offset, len, dreg: reg32(r) });
    const proto = (r: number): Expr => ({ kind: 'meta', key: 'l4proto', dreg: reg32(r) });
    const v4: Expr[] = [load(16, 4, 0), proto(1), load(2, 2, 2, 'transport'), { kind: 'numgen', type: 'random', modulus: 3, dreg: reg32(3) }, { kind: 'lookup', set: 'endpoints', sreg: 1, dreg: 1 }, { kind: 'nat', type: 'dnat', family: 'ip', regAddrMin: 1, regProtoMin: reg32(1) }];
    expect(encodeExpressions(countChainRules('cluster', 3, cfg4)[1].exprs).equals(encodeExpressions(v4))).toBe(true);
    const v6: Expr[] = [proto(0), load(2, 2, 1, 'transport'), { kind: 'numgen', type: 'random', modulus: 7, dreg: reg32(2) }, { kind: 'lookup', set: 'nodeport-endpoints', sreg: 1, dreg: 1 }, { kind: 'nat', type: 'dnat', family: 'ip6', regAddrMin: 1, regProtoMin: reg32(4) }];
    expect(encodeExpressions(countChainRules('nodeport', 7, cfg6)[1].exprs).equals(encodeExpressions(v6))).toBe(true);
  });
});

describe('netlink writer: a table made anew', () => {
  it("a one-field interval set gets nft's elements: an end at zero, then each range's start and the end after it", () => {
    const els = intervalElements('IPv4', ['10.0.0.0/9', '10.128.0.0/9', '192.168.0.0/16', '192.168.1.0/24']);
    // Adjacent ranges stay apart (nft lists them as written); an overlapping one is merged.
    expect(els.map((e) => `${hex(e.key)}${e.flags ? ' end' : ''}`)).toEqual(['00000000 end', '0a000000', '0a800000 end', '0a800000', '0b000000 end', 'c0a80000', 'c0a90000 end']);
    // A range reaching the top of the space has no end element.
    expect(intervalElements('IPv6', ['::/0']).map((e) => `${hex(e.key)}${e.flags ? ' end' : ''}`)).toEqual(['00000000000000000000000000000000']);
  });

  it('sets, chains and rules before elements; the hooked chains\' rules apart, so a staged load sees no packet until its last step', () => {
    const content = collectTable([], { ...cfg4, serviceCIDRs: ['10.96.0.0/16'] });
    const { skeleton, elements, hooked } = freshTableOps(content);
    expect(skeleton.slice(0, 3).map((o) => o.op)).toEqual(['newtable', 'deltable', 'newtable']);
    const firstRule = skeleton.findIndex((o) => o.op === 'newrule');
    expect(skeleton.slice(firstRule).every((o) => o.op === 'newrule' || o.op === 'newset' || o.op === 'newsetelem')).toBe(true);
    expect(skeleton.slice(0, firstRule).filter((o) => o.op === 'newchain').length).toBe(10);
    const hookedChains = new Set(hooked.map((o) => (o.op === 'newrule' ? o.chain : '')));
    expect([...hookedChains].sort()).toEqual(['filter-forward', 'filter-input', 'filter-output', 'masquerading', 'nat-output', 'nat-prerouting']);
    expect([...elements]).toEqual([]); // no services
    const cidrs = skeleton.find((o) => o.op === 'newsetelem' && o.set === 'service-cidrs');
    expect(cidrs && cidrs.op === 'newsetelem' ? cidrs.elements.length : 0).toBe(3);
  });
});

describe('netlink writer: a refill of the table we trust', () => {
  const previous = { chains: new Set(['ep-gone']), sets: new Set(['aff-gone']), countChains: new Set(['cluster-9']) };
  const ops = [...refillOps(collectTable([], cfg4), previous)];
  const on = (name: string) => ops.filter((o) => ('set' in o && (o.set === name || (typeof o.set === 'object' && o.set.name === name))) || ('chain' in o && o.chain === name)).map((o) => o.op);

  it('flushes every rule, then each map and set it fills, and deletes what the previous sync had and this one has not', () => {
    expect(ops.slice(0, 2).map((o) => o.op)).toEqual(['newtable', 'flushrules']);
    expect(on('service-ips')).toEqual(['newset', 'flushset']);
    expect(on('endpoints')).toEqual(['newset', 'flushset']);
    expect(ops.slice(-3).map((o) => `${o.op} ${'chain' in o ? o.chain : 'set' in o ? o.set : ''}`)).toEqual(['delchain ep-gone', 'delchain cluster-9', 'delset aff-gone']);
  });

  it('remakes the concatenated interval set instead of flushing it (the kernel refills one in O(n²))', () => {
    expect(on('firewall-allow')).toEqual(['newset', 'delset', 'newset']);
    expect(fullLines(collectTable([], cfg4), previous).filter((l) => l.split(' ').includes('firewall-allow')).map((l) => l.split(' ').slice(0, 2).join(' '))).toEqual(['add set', 'delete set', 'add set']);
  });
});
