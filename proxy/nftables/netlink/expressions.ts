// Rule expressions, encoded as the NFTA_RULE_EXPRESSIONS payload that `newrule` takes. Each
// expression's attributes come in the order nft 1.0.6 sends them (expressions.test.ts compares
// with its bytes), so a rule built here is the rule nft would build, minus nft's own additions:
// it sends NFTA_LOOKUP_SET_ID (a transaction-local id; the kernel finds the set by name first)
// and, for `dnat … addr . port to … map`, a `meta l4proto` dependency that nft 1.0.6 cannot even
// evaluate when the map's data is `th dport` (see the test).
//
// Registers are the uapi numbers: 0 the verdict, 1–4 the 16-byte registers, 8–23 the 4-byte ones
// (NFT_REG32_00 = 8). A concatenation fills consecutive 4-byte registers, one per padded field,
// starting at the first one of register 1 (8); lookups and nat name its first register. Like the
// kernel when it dumps a rule (and nft when it sends one), a 4-byte register that starts a
// 16-byte one is written as that one (8 → 1, 12 → 2, …), so either spelling gives nft's bytes.
import { NFTA_DATA, NFTA_EXPR, NFTA_LIST_ELEM, attr, attrNest, attrStr, attrU32 } from './wire.js';
import { familyNumber, verdictAttr, type NftFamily, type Verdict } from './messages.js';

export const NFT_REG_VERDICT = 0;
export const NFT_REG_1 = 1;
export const NFT_REG32_00 = 8;

/** The canonical uapi number of a register (see the header comment). */
export function canonicalRegister(reg: number): number {
  if (!Number.isInteger(reg) || reg < 0 || (reg > 4 && reg < 8) || reg > 23) throw new Error(`not an nf_tables register: ${reg}`);
  return reg >= 8 && (reg - 8) % 4 === 0 ? (reg - 8) / 4 + 1 : reg;
}

/** The 4-byte register `n` fields after the first (for building concatenations). */
export function reg32(n: number): number {
  return canonicalRegister(NFT_REG32_00 + n);
}

const META_KEYS = { len: 0, protocol: 1, priority: 2, mark: 3, iif: 4, oif: 5, iifname: 6, oifname: 7, nfproto: 15, l4proto: 16, pkttype: 19 } as const;
const CT_KEYS = {
  state: 0,
  direction: 1,
  status: 2,
  mark: 3,
  expiration: 5,
  l3protocol: 7,
  protocol: 10,
  'proto-src': 11,
  'proto-dst': 12,
  zone: 17,
  saddr: 19, // NFT_CT_SRC_IP
  daddr: 20, // NFT_CT_DST_IP
  'ip6 saddr': 21, // NFT_CT_SRC_IP6
  'ip6 daddr': 22, // NFT_CT_DST_IP6
} as const;
const PAYLOAD_BASES = { link: 0, network: 1, transport: 2 } as const;
const CMP_OPS = { eq: 0, neq: 1, lt: 2, lte: 3, gt: 4, gte: 5 } as const;
const FIB_FLAGS = { saddr: 1, daddr: 2, mark: 4, iif: 8, oif: 16 } as const;
const FIB_RESULTS = { oif: 1, oifname: 2, addrtype: 3 } as const;

export type MetaKey = keyof typeof META_KEYS;
export type CtKey = keyof typeof CT_KEYS;

export type Expr =
  /** Load `len` bytes at `offset` of a header into `dreg` (network order, as on the wire). */
  | { kind: 'payload'; base: keyof typeof PAYLOAD_BASES; offset: number; len: number; dreg: number }
  /** Load a meta key (l4proto: 1 byte; mark: u32 host order). */
  | { kind: 'meta'; key: MetaKey; dreg: number }
  /** `meta KEY set` from a register. */
  | { kind: 'meta'; key: MetaKey; sreg: number }
  /** A u32 (host order) in 0 … modulus-1, plus offset. */
  | { kind: 'numgen'; type?: 'random' | 'incremental'; modulus: number; offset?: number; dreg: number }
  /** Set membership (`invert`: not in the set), or a map lookup into `dreg` (0 for a verdict map). */
  | { kind: 'lookup'; set: string; sreg: number; dreg?: number; invert?: boolean; setId?: number }
  | { kind: 'nat'; type: 'snat' | 'dnat'; family: NftFamily; regAddrMin?: number; regAddrMax?: number; regProtoMin?: number; regProtoMax?: number; flags?: number }
  | { kind: 'immediate'; verdict: Verdict }
  | { kind: 'immediate'; dreg: number; data: Uint8Array }
  | { kind: 'cmp'; op: keyof typeof CMP_OPS; sreg: number; data: Uint8Array }
  /** dreg = (sreg & mask) ^ xor over `len` bytes. `op: 'bool'` sends NFTA_BITWISE_OP, which nft
   *  sends for `meta mark set meta mark or …` and `… and … == …` but not for flag tests. */
  | { kind: 'bitwise'; sreg: number; dreg: number; len: number; mask: Uint8Array; xor: Uint8Array; op?: 'bool' }
  | { kind: 'fib'; flags: readonly (keyof typeof FIB_FLAGS)[]; result: keyof typeof FIB_RESULTS; dreg: number }
  | { kind: 'ct'; key: CtKey; dreg: number; direction?: 'original' | 'reply' }
  | { kind: 'counter' }
  /** `reject`: ICMP(v6) port unreachable (type 0, code 3 in ip, 4 in ip6), or a TCP reset (type 1). */
  | { kind: 'reject'; type: 'icmp' | 'tcp-reset'; code: number }
  /** `masquerade` (flags: NF_NAT_RANGE_* bits, 0x10 fully-random). */
  | { kind: 'masq'; flags?: number }
  /** `update @set { key }`: add or refresh the key from `sreg` in a dynamic set. */
  | { kind: 'dynset'; set: string; op: 'add' | 'update'; sreg: number; setId?: number }
  /** Converts `len` bytes of `size`-byte words between host and network order. */
  | { kind: 'byteorder'; op: 'ntoh' | 'hton'; sreg: number; dreg: number; len: number; size: number };

function reg(type: number, r: number): Buffer {
  return attrU32(type, canonicalRegister(r));
}

function dataValue(type: number, b: Uint8Array): Buffer {
  return attrNest(type, [attr(NFTA_DATA.VALUE, b)]);
}

function checkU32(what: string, n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`${what} must be a u32, got ${n}`);
  return n;
}

/** [name, data attributes] of one expression. */
function body(e: Expr): [string, Buffer[]] {
  switch (e.kind) {
    case 'payload':
      return ['payload', [reg(1, e.dreg), attrU32(2, PAYLOAD_BASES[e.base]), attrU32(3, checkU32('payload offset', e.offset)), attrU32(4, checkU32('payload len', e.len))]];
    case 'meta':
      return ['meta', 'dreg' in e ? [attrU32(2, META_KEYS[e.key]), reg(1, e.dreg)] : [attrU32(2, META_KEYS[e.key]), reg(3, e.sreg)]];
    case 'numgen':
      if (!(e.modulus >= 1)) throw new Error(`numgen modulus must be at least 1, got ${e.modulus}`);
      return ['numgen', [reg(1, e.dreg), attrU32(2, checkU32('numgen modulus', e.modulus)), attrU32(3, e.type === 'incremental' ? 0 : 1), attrU32(4, checkU32('numgen offset', e.offset ?? 0))]];
    case 'lookup': {
      const a = [reg(2, e.sreg)];
      if (e.dreg !== undefined) a.push(reg(3, e.dreg));
      a.push(attrStr(1, e.set));
      if (e.setId !== undefined) a.push(attrU32(4, e.setId)); // NFTA_LOOKUP_SET_ID: an anonymous set of this transaction
      if (e.invert) a.push(attrU32(5, 1)); // NFT_LOOKUP_F_INV
      return ['lookup', a];
    }
    case 'nat': {
      const a = [attrU32(1, e.type === 'snat' ? 0 : 1), attrU32(2, familyNumber(e.family))];
      if (e.regAddrMin !== undefined) a.push(reg(3, e.regAddrMin));
      if (e.regAddrMax !== undefined) a.push(reg(4, e.regAddrMax));
      if (e.regProtoMin !== undefined) a.push(reg(5, e.regProtoMin));
      if (e.regProtoMax !== undefined) a.push(reg(6, e.regProtoMax));
      if (e.flags) a.push(attrU32(7, e.flags));
      return ['nat', a];
    }
    case 'immediate':
      return 'verdict' in e ? ['immediate', [reg(1, NFT_REG_VERDICT), verdictAttr(2, e.verdict)]] : ['immediate', [reg(1, e.dreg), dataValue(2, e.data)]];
    case 'cmp':
      return ['cmp', [reg(1, e.sreg), attrU32(2, CMP_OPS[e.op]), dataValue(3, e.data)]];
    case 'bitwise': {
      if (e.mask.length !== e.len || e.xor.length !== e.len) throw new Error(`bitwise mask and xor must be ${e.len} bytes`);
      const a = [reg(1, e.sreg), reg(2, e.dreg)];
      if (e.op) a.push(attrU32(6, 0)); // NFT_BITWISE_BOOL
      a.push(attrU32(3, e.len), dataValue(4, e.mask), dataValue(5, e.xor));
      return ['bitwise', a];
    }
    case 'fib':
      return ['fib', [attrU32(3, e.flags.reduce((f, k) => f | FIB_FLAGS[k], 0)), attrU32(2, FIB_RESULTS[e.result]), reg(1, e.dreg)]];
    case 'ct': {
      const a = [attrU32(2, CT_KEYS[e.key]), reg(1, e.dreg)];
      if (e.direction) a.push(attr(3, Uint8Array.of(e.direction === 'original' ? 0 : 1))); // NLA_U8
      return ['ct', a];
    }
    case 'counter':
      return ['counter', []];
    case 'reject':
      return ['reject', [attrU32(1, e.type === 'icmp' ? 0 : 1), attr(2, Uint8Array.of(e.code))]];
    case 'masq':
      return ['masq', e.flags ? [attrU32(1, e.flags)] : []];
    case 'dynset': {
      const a = [attrStr(1, e.set)];
      if (e.setId !== undefined) a.push(attrU32(2, e.setId));
      a.push(attrU32(3, e.op === 'add' ? 0 : 1), reg(4, e.sreg));
      return ['dynset', a];
    }
    case 'byteorder':
      return ['byteorder', [reg(1, e.sreg), reg(2, e.dreg), attrU32(3, e.op === 'ntoh' ? 0 : 1), attrU32(4, e.len), attrU32(5, e.size)]];
  }
}

/** One expression as an NFTA_LIST_ELEM { NFTA_EXPR_NAME, NFTA_EXPR_DATA }. */
export function encodeExpression(e: Expr): Buffer {
  const [name, data] = body(e);
  return attrNest(NFTA_LIST_ELEM, [attrStr(NFTA_EXPR.NAME, name), attrNest(NFTA_EXPR.DATA, data)]);
}

/** The NFTA_RULE_EXPRESSIONS payload of a rule, for `{ op: 'newrule', expressions }`. */
export function encodeExpressions(exprs: readonly Expr[]): Buffer {
  return Buffer.concat(exprs.map(encodeExpression));
}
