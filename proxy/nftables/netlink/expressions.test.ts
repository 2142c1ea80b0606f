// Fixtures: the NFTA_RULE_EXPRESSIONS payload nft 1.0.6 sent for `add rule FAMILY kdp svc-a RULE`
// (captured with `strace -e sendmsg -e write=all nft -f FILE` in a scratch namespace; the same
// bytes `nft --debug=mnl` prints), on
//   table ip kdp {
//     map endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . tcp dport ; }
//     map nodeport-endpoints { typeof meta l4proto . th dport . numgen random mod 1 : ip daddr . tcp dport ; }
//     map service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; }
//     set cluster-cidrs { type ipv4_addr ; flags interval ; }
//     chain mark-for-masquerade { }  chain svc-a { }
//   }
// and `table ip6 kdp` with ip6 daddr / ipv6_addr. Two things are nft's own and are taken out of
// its bytes before comparing:
// - NFTA_LOOKUP_SET_ID (the set's id in nft's transaction; the kernel finds the set by name);
// - for the dnat rules, the two leading expressions `meta load l4proto => reg 1; cmp eq reg 1 6`:
//   nft 1.0.6 refuses these rules outright when the map's data is `ip daddr . th dport` (the
//   proxy's map: "conflicting protocols specified: ip vs. th"), and with data `ip daddr . tcp
//   dport` it adds that tcp-only dependency. The rest of its bytes is the rule we want.
import { describe, expect, it } from 'vitest';
import { canonicalRegister, encodeExpressions, reg32, type Expr } from './expressions.js';
import { ipv4, ipv6, l4proto, port, u32host } from './values.js';

interface RawAttr {
  rawType: number;
  value: Buffer;
}
function raw(b: Buffer): RawAttr[] {
  const out: RawAttr[] = [];
  for (let off = 0; off + 4 <= b.length; ) {
    const len = b.readUInt16LE(off);
    out.push({ rawType: b.readUInt16LE(off + 2), value: b.subarray(off + 4, off + len) });
    off += (len + 3) & ~3;
  }
  return out;
}
function put(attrs: RawAttr[]): Buffer {
  return Buffer.concat(
    attrs.map(({ rawType, value }) => {
      const b = Buffer.alloc((4 + value.length + 3) & ~3);
      b.writeUInt16LE(4 + value.length, 0);
      b.writeUInt16LE(rawType, 2);
      value.copy(b, 4);
      return b;
    }),
  );
}
/** nft's expressions without what it adds of its own (see the header comment). */
function normalize(hex: string, opts: { dropLeading?: number } = {}): string {
  const exprs = raw(Buffer.from(hex, 'hex')).slice(opts.dropLeading ?? 0);
  return put(
    exprs.map((e) => {
      const [name, data] = raw(e.value);
      if (name!.value.toString('latin1').replace(/\0+$/, '') !== 'lookup') return e;
      const kept = raw(data!.value).filter((a) => (a.rawType & 0x3fff) !== 4); // NFTA_LOOKUP_SET_ID
      return { rawType: e.rawType, value: put([name!, { rawType: data!.rawType, value: put(kept) }]) };
    }),
  ).toString('hex');
}
const hex = (exprs: Expr[]) => encodeExpressions(exprs).toString('hex');

// Loads of the concatenation `ip daddr . meta l4proto . th dport`, one 4-byte register per field.
const daddr4 = (first: number): Expr => ({ kind: 'payload', base: 'network', offset: 16, len: 4, dreg: reg32(first) });
const daddr6 = (first: number): Expr => ({ kind: 'payload', base: 'network', offset: 24, len: 16, dreg: reg32(first) });
const proto = (r: number): Expr => ({ kind: 'meta', key: 'l4proto', dreg: reg32(r) });
const dport = (r: number): Expr => ({ kind: 'payload', base: 'transport', offset: 2, len: 2, dreg: reg32(r) });
const numgen = (modulus: number, r: number): Expr => ({ kind: 'numgen', type: 'random', modulus, dreg: reg32(r) });
const jumpMasq: Expr = { kind: 'immediate', verdict: { code: 'jump', chain: 'mark-for-masquerade' } };

describe('registers', () => {
  it('4-byte registers that start a 16-byte one are written as that one, like the kernel dumps them', () => {
    expect([8, 9, 12, 13, 20, 23, 1, 0].map(canonicalRegister)).toEqual([1, 9, 2, 13, 4, 23, 1, 0]);
    expect(() => canonicalRegister(5)).toThrow(/not an nf_tables register/);
    expect(() => canonicalRegister(24)).toThrow(/not an nf_tables register/);
  });
});

describe('encodeExpressions matches nft byte for byte', () => {
  it('dnat ip addr . port to ip daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints', () => {
    const nft =
      '24000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c6f61640024000280080001000000000108000200000000010800030000000010080004000000000424000180090001006d657461000000001400028008000200000000100800010000000009340001800c0001007061796c6f61640024000280080001000000000a080002000000000208000300000000020800040000000002340001800b0001006e756d67656e000024000280080001000000000b0800020000000003080003000000000108000400000000003c0001800b0001006c6f6f6b757000002c000280080002000000000108000300000000010e000100656e64706f696e7473000000080004000000000130000180080001006e617400240002800800010000000001080002000000000208000300000000010800050000000009';
    // nft --debug=netlink: payload load 4b @ network header + 16 => reg 1; meta load l4proto =>
    // reg 9; payload load 2b @ transport header + 2 => reg 10; numgen reg 11 = random mod 3;
    // lookup reg 1 set endpoints dreg 1; nat dnat ip addr_min reg 1 proto_min reg 9
    const ours: Expr[] = [
      daddr4(0),
      proto(1),
      dport(2),
      numgen(3, 3),
      { kind: 'lookup', set: 'endpoints', sreg: 1, dreg: 1 },
      { kind: 'nat', type: 'dnat', family: 'ip', regAddrMin: 1, regProtoMin: reg32(1) },
    ];
    expect(hex(ours)).toBe(normalize(nft, { dropLeading: 2 }));
  });

  it('dnat ip addr . port to meta l4proto . th dport . numgen random mod 7 map @nodeport-endpoints', () => {
    const nft =
      '24000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001000600000024000180090001006d657461000000001400028008000200000000100800010000000001340001800c0001007061796c6f616400240002800800010000000009080002000000000208000300000000020800040000000002340001800b0001006e756d67656e000024000280080001000000000a080002000000000708000300000000010800040000000000440001800b0001006c6f6f6b757000003400028008000200000000010800030000000001170001006e6f6465706f72742d656e64706f696e74730000080004000000000230000180080001006e617400240002800800010000000001080002000000000208000300000000010800050000000009';
    const ours: Expr[] = [proto(0), dport(1), numgen(7, 2), { kind: 'lookup', set: 'nodeport-endpoints', sreg: 1, dreg: 1 }, { kind: 'nat', type: 'dnat', family: 'ip', regAddrMin: 1, regProtoMin: reg32(1) }];
    expect(hex(ours)).toBe(normalize(nft, { dropLeading: 2 }));
  });

  it('dnat ip6 addr . port to ip6 daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints', () => {
    const nft =
      '24000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c6f61640024000280080001000000000108000200000000010800030000000018080004000000001024000180090001006d657461000000001400028008000200000000100800010000000002340001800c0001007061796c6f61640024000280080001000000000d080002000000000208000300000000020800040000000002340001800b0001006e756d67656e000024000280080001000000000e0800020000000003080003000000000108000400000000003c0001800b0001006c6f6f6b757000002c000280080002000000000108000300000000010e000100656e64706f696e7473000000080004000000000530000180080001006e617400240002800800010000000001080002000000000a08000300000000010800050000000002';
    // The 16-byte address fills registers 8–11, so the protocol lands in 12 (written as reg 2),
    // the port in 13, the slot in 14; the map's data (address . port) puts the port in 12 too.
    const ours: Expr[] = [daddr6(0), proto(4), dport(5), numgen(3, 6), { kind: 'lookup', set: 'endpoints', sreg: 1, dreg: 1 }, { kind: 'nat', type: 'dnat', family: 'ip6', regAddrMin: 1, regProtoMin: reg32(4) }];
    expect(hex(ours)).toBe(normalize(nft, { dropLeading: 2 }));
  });

  it('dnat ip6 addr . port to meta l4proto . th dport . numgen random mod 7 map @nodeport-endpoints', () => {
    const nft =
      '24000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c000380050001000600000024000180090001006d657461000000001400028008000200000000100800010000000001340001800c0001007061796c6f616400240002800800010000000009080002000000000208000300000000020800040000000002340001800b0001006e756d67656e000024000280080001000000000a080002000000000708000300000000010800040000000000440001800b0001006c6f6f6b757000003400028008000200000000010800030000000001170001006e6f6465706f72742d656e64706f696e74730000080004000000000630000180080001006e617400240002800800010000000001080002000000000a08000300000000010800050000000002';
    const ours: Expr[] = [proto(0), dport(1), numgen(7, 2), { kind: 'lookup', set: 'nodeport-endpoints', sreg: 1, dreg: 1 }, { kind: 'nat', type: 'dnat', family: 'ip6', regAddrMin: 1, regProtoMin: reg32(4) }];
    expect(hex(ours)).toBe(normalize(nft, { dropLeading: 2 }));
  });

  it('jump mark-for-masquerade', () => {
    expect(hex([jumpMasq])).toBe('480001800e000100696d6d656469617465000000340002800800010000000000280002802400028008000100fffffffd180002006d61726b2d666f722d6d61737175657261646500');
  });

  it('ip saddr != @cluster-cidrs jump mark-for-masquerade (and ip6)', () => {
    const nft4 =
      '340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000000c0800040000000004400001800b0001006c6f6f6b7570000030000280080002000000000112000100636c75737465722d636964727300000008000400000000040800050000000001480001800e000100696d6d656469617465000000340002800800010000000000280002802400028008000100fffffffd180002006d61726b2d666f722d6d61737175657261646500';
    expect(hex([{ kind: 'payload', base: 'network', offset: 12, len: 4, dreg: 1 }, { kind: 'lookup', set: 'cluster-cidrs', sreg: 1, invert: true }, jumpMasq])).toBe(normalize(nft4));
    const nft6 =
      '340001800c0001007061796c6f616400240002800800010000000001080002000000000108000300000000080800040000000010400001800b0001006c6f6f6b7570000030000280080002000000000112000100636c75737465722d636964727300000008000400000000070800050000000001480001800e000100696d6d656469617465000000340002800800010000000000280002802400028008000100fffffffd180002006d61726b2d666f722d6d61737175657261646500';
    expect(hex([{ kind: 'payload', base: 'network', offset: 8, len: 16, dreg: 1 }, { kind: 'lookup', set: 'cluster-cidrs', sreg: 1, invert: true }, jumpMasq])).toBe(normalize(nft6));
  });

  it('ip daddr . meta l4proto . th dport vmap @service-ips', () => {
    const nft =
      '340001800c0001007061796c6f61640024000280080001000000000108000200000000010800030000000010080004000000000424000180090001006d657461000000001400028008000200000000100800010000000009340001800c0001007061796c6f61640024000280080001000000000a0800020000000002080003000000000208000400000000023c0001800b0001006c6f6f6b757000002c0002800800020000000001080003000000000010000100736572766963652d697073000800040000000003';
    expect(hex([daddr4(0), proto(1), dport(2), { kind: 'lookup', set: 'service-ips', sreg: 1, dreg: 0 }])).toBe(normalize(nft));
  });

  it('meta mark set meta mark or 0x4000; meta mark set 0x4000; meta mark and 0x4000 == 0 return', () => {
    const or =
      '24000180090001006d6574610000000014000280080002000000000308000100000000014c0001800c00010062697477697365003c00028008000100000000010800020000000001080006000000000008000300000000040c00048008000100ffbfffff0c000580080001000040000024000180090001006d657461000000001400028008000200000000030800030000000001';
    expect(
      hex([
        { kind: 'meta', key: 'mark', dreg: 1 },
        { kind: 'bitwise', op: 'bool', sreg: 1, dreg: 1, len: 4, mask: u32host(~0x4000), xor: u32host(0x4000) },
        { kind: 'meta', key: 'mark', sreg: 1 },
      ]),
    ).toBe(or);
    const set = '2c0001800e000100696d6d6564696174650000001800028008000100000000010c000280080001000040000024000180090001006d657461000000001400028008000200000000030800030000000001';
    expect(hex([{ kind: 'immediate', dreg: 1, data: u32host(0x4000) }, { kind: 'meta', key: 'mark', sreg: 1 }])).toBe(set);
    const test =
      '24000180090001006d6574610000000014000280080002000000000308000100000000014c0001800c00010062697477697365003c00028008000100000000010800020000000001080006000000000008000300000000040c00048008000100004000000c00058008000100000000002c00018008000100636d700020000280080001000000000108000200000000000c0003800800010000000000300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c00028008000100fffffffb';
    expect(
      hex([
        { kind: 'meta', key: 'mark', dreg: 1 },
        { kind: 'bitwise', op: 'bool', sreg: 1, dreg: 1, len: 4, mask: u32host(0x4000), xor: u32host(0) },
        { kind: 'cmp', op: 'eq', sreg: 1, data: u32host(0) },
        { kind: 'immediate', verdict: { code: 'return' } },
      ]),
    ).toBe(test);
  });

  it('fib daddr type local jump …', () => {
    const nft =
      '2800018008000100666962001c0002800800030000000002080002000000000308000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800800010002000000480001800e000100696d6d656469617465000000340002800800010000000000280002802400028008000100fffffffd180002006d61726b2d666f722d6d61737175657261646500';
    expect(hex([{ kind: 'fib', flags: ['daddr'], result: 'addrtype', dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: u32host(2) /* RTN_LOCAL */ }, jumpMasq])).toBe(nft);
  });

  it('ct state established,related accept; ct status dnat accept (flag tests: bitwise without OP)', () => {
    const state =
      '2000018007000100637400001400028008000200000000000800010000000001440001800c0001006269747769736500340002800800010000000001080002000000000108000300000000040c00048008000100060000000c00058008000100000000002c00018008000100636d700020000280080001000000000108000200000000010c0003800800010000000000300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000001';
    const flagTest = (key: 'state' | 'status', mask: number): Expr[] => [
      { kind: 'ct', key, dreg: 1 },
      { kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: u32host(mask), xor: u32host(0) },
      { kind: 'cmp', op: 'neq', sreg: 1, data: u32host(0) },
      { kind: 'immediate', verdict: { code: 'accept' } },
    ];
    expect(hex(flagTest('state', 0x6))).toBe(state);
    const status =
      '2000018007000100637400001400028008000200000000020800010000000001440001800c0001006269747769736500340002800800010000000001080002000000000108000300000000040c00048008000100200000000c00058008000100000000002c00018008000100636d700020000280080001000000000108000200000000010c0003800800010000000000300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000001';
    expect(hex(flagTest('status', 0x20 /* IPS_DST_NAT */))).toBe(status);
  });

  it('ct original ip daddr / ip6 daddr / proto-dst (direction is a u8)', () => {
    const accept: Expr = { kind: 'immediate', verdict: { code: 'accept' } };
    const d4 =
      '2800018007000100637400001c0002800800020000000014080001000000000105000300000000002c00018008000100636d700020000280080001000000000108000200000000000c000380080001000a600001300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000001';
    expect(hex([{ kind: 'ct', key: 'daddr', direction: 'original', dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: ipv4('10.96.0.1') }, accept])).toBe(d4);
    const d6 =
      '2800018007000100637400001c0002800800020000000016080001000000000105000300000000003800018008000100636d70002c000280080001000000000108000200000000001800038014000100fd000000000000000000000000000001300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000001';
    expect(hex([{ kind: 'ct', key: 'ip6 daddr', direction: 'original', dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: ipv6('fd00::1') }, accept])).toBe(d6);
    // meta l4proto tcp ct original proto-dst 80 accept
    const pd =
      '24000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c00038005000100060000002800018007000100637400001c000280080002000000000c080001000000000105000300000000002c00018008000100636d700020000280080001000000000108000200000000000c0003800600010000500000300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000001';
    expect(
      hex([
        { kind: 'meta', key: 'l4proto', dreg: 1 },
        { kind: 'cmp', op: 'eq', sreg: 1, data: l4proto('tcp') },
        { kind: 'ct', key: 'proto-dst', direction: 'original', dreg: 1 },
        { kind: 'cmp', op: 'eq', sreg: 1, data: port(80) },
        accept,
      ]),
    ).toBe(pd);
  });

  it('ip daddr 10.96.0.10 meta l4proto tcp th dport 80 goto svc-a; … counter return; meta l4proto udp drop', () => {
    const gotoRule =
      '340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000001008000400000000042c00018008000100636d700020000280080001000000000108000200000000000c000380080001000a60000a24000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010006000000340001800c0001007061796c6f6164002400028008000100000000010800020000000002080003000000000208000400000000022c00018008000100636d700020000280080001000000000108000200000000000c00038006000100005000003c0001800e000100696d6d6564696174650000002800028008000100000000001c0002801800028008000100fffffffc0a0002007376632d61000000';
    expect(
      hex([
        { kind: 'payload', base: 'network', offset: 16, len: 4, dreg: 1 },
        { kind: 'cmp', op: 'eq', sreg: 1, data: ipv4('10.96.0.10') },
        { kind: 'meta', key: 'l4proto', dreg: 1 },
        { kind: 'cmp', op: 'eq', sreg: 1, data: l4proto('tcp') },
        { kind: 'payload', base: 'transport', offset: 2, len: 2, dreg: 1 },
        { kind: 'cmp', op: 'eq', sreg: 1, data: port(80) },
        { kind: 'immediate', verdict: { code: 'goto', chain: 'svc-a' } },
      ]),
    ).toBe(gotoRule);
    const counter =
      '340001800c0001007061796c6f6164002400028008000100000000010800020000000001080003000000001008000400000000042c00018008000100636d700020000280080001000000000108000200000000000c000380080001000a60000a140001800c000100636f756e7465720004000280300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c00028008000100fffffffb';
    expect(
      hex([
        { kind: 'payload', base: 'network', offset: 16, len: 4, dreg: 1 },
        { kind: 'cmp', op: 'eq', sreg: 1, data: ipv4('10.96.0.10') },
        { kind: 'counter' },
        { kind: 'immediate', verdict: { code: 'return' } },
      ]),
    ).toBe(counter);
    const drop =
      '24000180090001006d6574610000000014000280080002000000001008000100000000012c00018008000100636d700020000280080001000000000108000200000000000c0003800500010011000000300001800e000100696d6d6564696174650000001c0002800800010000000000100002800c0002800800010000000000';
    expect(hex([{ kind: 'meta', key: 'l4proto', dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: l4proto('udp') }, { kind: 'immediate', verdict: { code: 'drop' } }])).toBe(drop);
  });

  it('refuses nonsense with what was wrong', () => {
    expect(() => encodeExpressions([{ kind: 'numgen', modulus: 0, dreg: 1 }])).toThrow(/modulus/);
    expect(() => encodeExpressions([{ kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: u32host(1), xor: Uint8Array.of(0) }])).toThrow(/4 bytes/);
    expect(() => encodeExpressions([{ kind: 'payload', base: 'network', offset: -1, len: 4, dreg: 1 }])).toThrow(/payload offset/);
  });
});
