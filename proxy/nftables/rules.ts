// The words our rules are made of, each spelled twice from one definition: as nft writes it (the
// `nft -f` path, `nft list table`) and as the kernel's expressions (the netlink path). A rule is
// a sequence of these parts, so the two spellings cannot drift apart; the netns test loads the
// same table both ways and compares the kernel's dumps. Expressions follow what nft 1.0.6 sends
// for the same text (register use, nft's shortening of `!= 127.0.0.0/8` to a one-byte compare,
// the byte-order conversion of `meta l4proto` inside an interval concatenation).
import type { IPFamily } from '../../cluster/types.js';
import { reg32, type Expr } from './netlink/expressions.js';
import type { NftFamily, Verdict } from './netlink/messages.js';
import { ipv4, ipv6, l4proto, port, u32host } from './netlink/values.js';

export interface RulePart {
  readonly text: string;
  readonly exprs: readonly Expr[];
  /** `numgen … vmap { … }`: an anonymous map this rule needs made first (slot → verdict). */
  readonly slotMap?: readonly Verdict[];
}

export interface Rule {
  readonly text: string;
  readonly exprs: readonly Expr[];
  readonly slotMap?: readonly Verdict[];
}

export function rule(...parts: readonly RulePart[]): Rule {
  const slotMaps = parts.filter((p) => p.slotMap);
  if (slotMaps.length > 1) throw new Error('a rule holds at most one anonymous map');
  const r: { text: string; exprs: Expr[]; slotMap?: readonly Verdict[] } = { text: parts.map((p) => p.text).join(' '), exprs: parts.flatMap((p) => p.exprs) };
  if (slotMaps[0]) r.slotMap = slotMaps[0].slotMap;
  return r;
}

/** A family's words: payload offsets and the keyword nft uses. */
export interface Fam {
  readonly family: IPFamily;
  readonly nft: NftFamily;
  readonly word: 'ip' | 'ip6';
  readonly addrLen: number;
  readonly saddr: number;
  readonly daddr: number;
  readonly addr: (s: string) => Uint8Array;
}

export function fam(family: IPFamily): Fam {
  return family === 'IPv4'
    ? { family, nft: 'ip', word: 'ip', addrLen: 4, saddr: 12, daddr: 16, addr: ipv4 }
    : { family, nft: 'ip6', word: 'ip6', addrLen: 16, saddr: 8, daddr: 24, addr: ipv6 };
}

/** Fields a key is made of: the packet's addresses, `meta l4proto`, `th dport`. */
export type KeyField = 'saddr' | 'daddr' | 'l4proto' | 'dport';

function fieldText(f: Fam, k: KeyField): string {
  return k === 'l4proto' ? 'meta l4proto' : k === 'dport' ? 'th dport' : `${f.word} ${k}`;
}

function fieldBytes(f: Fam, k: KeyField): number {
  return k === 'l4proto' ? 1 : k === 'dport' ? 2 : f.addrLen;
}

function load(f: Fam, k: KeyField, dreg: number): Expr {
  switch (k) {
    case 'l4proto':
      return { kind: 'meta', key: 'l4proto', dreg };
    case 'dport':
      return { kind: 'payload', base: 'transport', offset: 2, len: 2, dreg };
    default:
      return { kind: 'payload', base: 'network', offset: k === 'saddr' ? f.saddr : f.daddr, len: f.addrLen, dreg };
  }
}

/** Registers (4-byte units) a key takes. */
function keyWords(f: Fam, fields: readonly KeyField[]): number {
  return fields.reduce((n, k) => n + Math.ceil(fieldBytes(f, k) / 4), 0);
}

/** The key `ip daddr . meta l4proto . th dport` loaded from register 1 on, one padded field after
 *  another. In a key of an interval set, `meta l4proto` is turned to network order as nft does. */
function keyExprs(f: Fam, fields: readonly KeyField[], interval = false): Expr[] {
  const out: Expr[] = [];
  let w = 0;
  for (const k of fields) {
    const r = reg32(w);
    out.push(load(f, k, r));
    if (interval && k === 'l4proto' && fields.length > 1) out.push({ kind: 'byteorder', op: 'hton', sreg: r, dreg: r, len: 1, size: 2 });
    w += Math.ceil(fieldBytes(f, k) / 4);
  }
  return out;
}

const keyText = (f: Fam, fields: readonly KeyField[]) => fields.map((k) => fieldText(f, k)).join(' . ');

// ---------------------------------------------------------------- matches

/** `KEY @set` (or `KEY != @set`). `interval`: the set has `flags interval`. */
export function inSet(f: Fam, fields: readonly KeyField[], set: string, opts: { invert?: boolean; interval?: boolean } = {}): RulePart {
  const lookup: Expr = { kind: 'lookup', set, sreg: 1, ...(opts.invert ? { invert: true } : {}) };
  return { text: `${keyText(f, fields)} ${opts.invert ? '!= ' : ''}@${set}`, exprs: [...keyExprs(f, fields, opts.interval), lookup] };
}

/** `KEY vmap @map`: the map's verdict ends the rule. */
export function vmap(f: Fam, fields: readonly KeyField[], map: string): RulePart {
  return { text: `${keyText(f, fields)} vmap @${map}`, exprs: [...keyExprs(f, fields), { kind: 'lookup', set: map, sreg: 1, dreg: 0 }] };
}

/** `ip daddr 10.96.0.10`. */
export function addrIs(f: Fam, which: 'saddr' | 'daddr', ip: string): RulePart {
  return { text: `${f.word} ${which} ${ip}`, exprs: [load(f, which, 1), { kind: 'cmp', op: 'eq', sreg: 1, data: f.addr(ip) }] };
}

/** `ip saddr 10.0.0.0/9`: as nft encodes a prefix — the whole address when it is one, the
 *  prefix's bytes alone when it ends on a byte, else a mask first. */
export function addrInPrefix(f: Fam, which: 'saddr' | 'daddr', cidr: string): RulePart {
  const [ip, lenText] = cidr.split('/');
  const bits = lenText === undefined ? f.addrLen * 8 : Number(lenText);
  if (!Number.isInteger(bits) || bits < 0 || bits > f.addrLen * 8) throw new Error(`not a ${f.family} prefix: ${cidr}`);
  const addr = f.addr(ip);
  const mask = new Uint8Array(f.addrLen);
  for (let i = 0; i < f.addrLen; i++) mask[i] = (0xff00 >> Math.max(0, Math.min(8, bits - i * 8))) & 0xff;
  const net = addr.map((b, i) => b & mask[i]);
  const text = `${f.word} ${which} ${cidr}`;
  const offset = which === 'saddr' ? f.saddr : f.daddr;
  if (bits === f.addrLen * 8) return { text, exprs: [load(f, which, 1), { kind: 'cmp', op: 'eq', sreg: 1, data: net }] };
  if (bits > 0 && bits % 8 === 0) {
    return { text, exprs: [{ kind: 'payload', base: 'network', offset, len: bits / 8, dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: net.slice(0, bits / 8) }] };
  }
  return {
    text,
    exprs: [load(f, which, 1), { kind: 'bitwise', sreg: 1, dreg: 1, len: f.addrLen, mask, xor: new Uint8Array(f.addrLen) }, { kind: 'cmp', op: 'eq', sreg: 1, data: net }],
  };
}

/** `ip daddr != 127.0.0.0/8` (`ip6 daddr != ::1`): nft compares the first byte alone. */
export function notLoopback(f: Fam): RulePart {
  if (f.family === 'IPv4') {
    return { text: 'ip daddr != 127.0.0.0/8', exprs: [{ kind: 'payload', base: 'network', offset: f.daddr, len: 1, dreg: 1 }, { kind: 'cmp', op: 'neq', sreg: 1, data: Uint8Array.of(127) }] };
  }
  return { text: 'ip6 daddr != ::1', exprs: [load(f, 'daddr', 1), { kind: 'cmp', op: 'neq', sreg: 1, data: f.addr('::1') }] };
}

const RTN_LOCAL = 2;

/** `fib saddr type local` / `fib daddr type local`. */
export function fibLocal(which: 'saddr' | 'daddr'): RulePart {
  return { text: `fib ${which} type local`, exprs: [{ kind: 'fib', flags: [which], result: 'addrtype', dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: u32host(RTN_LOCAL) }] };
}

/** A flag test on a u32 in host order: `(reg & bits) != 0`. */
function flagSet(load0: Expr, bits: number): Expr[] {
  return [load0, { kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: u32host(bits), xor: u32host(0) }, { kind: 'cmp', op: 'neq', sreg: 1, data: u32host(0) }];
}

const CT_STATES = { invalid: 1, established: 2, related: 4, new: 8 } as const;

/** `ct state new`. */
export function ctState(state: keyof typeof CT_STATES): RulePart {
  return { text: `ct state ${state}`, exprs: flagSet({ kind: 'ct', key: 'state', dreg: 1 }, CT_STATES[state]) };
}

const IPS_DST_NAT = 0x20;

/** `ct status dnat`: the flow was destination-NATed. */
export function ctStatusDnat(): RulePart {
  return { text: 'ct status dnat', exprs: flagSet({ kind: 'ct', key: 'status', dreg: 1 }, IPS_DST_NAT) };
}

/** `iifname "cbr0"` (`!= …`); a name ending in `*` matches its prefix, as nft compares it. */
export function iifname(name: string, invert = false): RulePart {
  const wildcard = name.endsWith('*');
  const text = wildcard ? name.slice(0, -1) : name;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0 || bytes.length > 15) throw new Error(`not an interface name: ${JSON.stringify(name)}`);
  // An exact name is compared with its NUL padding to IFNAMSIZ, a prefix alone.
  const data = wildcard ? Uint8Array.from(bytes) : Uint8Array.from(Buffer.concat([bytes, Buffer.alloc(16 - bytes.length)]));
  return { text: `iifname ${invert ? '!= ' : ''}"${name}"`, exprs: [{ kind: 'meta', key: 'iifname', dreg: 1 }, { kind: 'cmp', op: invert ? 'neq' : 'eq', sreg: 1, data }] };
}

/** `meta l4proto tcp`. */
export function l4protoIs(proto: 'tcp' | 'udp' | 'sctp'): RulePart {
  return { text: `meta l4proto ${proto}`, exprs: [{ kind: 'meta', key: 'l4proto', dreg: 1 }, { kind: 'cmp', op: 'eq', sreg: 1, data: l4proto(proto) }] };
}

const hex = (n: number) => `0x${n.toString(16)}`;
const mark = (): Expr => ({ kind: 'meta', key: 'mark', dreg: 1 });

/** `meta mark & MASK == 0`. */
export function markClear(mask: number): RulePart {
  return {
    text: `meta mark & ${hex(mask)} == 0`,
    exprs: [mark(), { kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: u32host(mask), xor: u32host(0), op: 'bool' }, { kind: 'cmp', op: 'eq', sreg: 1, data: u32host(0) }],
  };
}

// ---------------------------------------------------------------- statements and verdicts

/** `meta mark set meta mark | BITS`. */
export function markSetOr(bits: number): RulePart {
  return {
    text: `meta mark set meta mark | ${hex(bits)}`,
    exprs: [mark(), { kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: u32host(~bits >>> 0), xor: u32host(bits), op: 'bool' }, { kind: 'meta', key: 'mark', sreg: 1 }],
  };
}

/** `meta mark set meta mark ^ BITS`. */
export function markSetXor(bits: number): RulePart {
  return {
    text: `meta mark set meta mark ^ ${hex(bits)}`,
    exprs: [mark(), { kind: 'bitwise', sreg: 1, dreg: 1, len: 4, mask: u32host(0xffffffff), xor: u32host(bits), op: 'bool' }, { kind: 'meta', key: 'mark', sreg: 1 }],
  };
}

const NF_NAT_RANGE_PROTO_SPECIFIED = 0x2;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY = 0x10;

export function masquerade(): RulePart {
  return { text: 'masquerade fully-random', exprs: [{ kind: 'masq', flags: NF_NAT_RANGE_PROTO_RANDOM_FULLY }] };
}

export function rejectTcpReset(): RulePart {
  return { text: 'reject with tcp reset', exprs: [{ kind: 'reject', type: 'tcp-reset', code: 0 }] };
}

/** `reject`: ICMP port unreachable (ICMPv6 code 4). */
export function reject(f: Fam): RulePart {
  return { text: 'reject', exprs: [{ kind: 'reject', type: 'icmp', code: f.family === 'IPv4' ? 3 : 4 }] };
}

export function verdict(v: Verdict): RulePart {
  return { text: v.code === 'jump' || v.code === 'goto' ? `${v.code} ${v.chain}` : v.code, exprs: [{ kind: 'immediate', verdict: v }] };
}

export const jump = (chain: string) => verdict({ code: 'jump', chain });
export const goTo = (chain: string) => verdict({ code: 'goto', chain });
export const drop = () => verdict({ code: 'drop' });
export const ret = () => verdict({ code: 'return' });

/** `dnat ip addr . port to KEY . numgen random mod n map @map`: slot `numgen` of the path's
 *  endpoints, looked up by the packet's own key; the data `addr . port` lands in register 1, the
 *  port in the word after the address. */
export function dnatBySlot(f: Fam, fields: readonly KeyField[], n: number, map: string): RulePart {
  if (!(n >= 1)) throw new Error(`numgen modulus must be at least 1, got ${n}`);
  return {
    text: `dnat ${f.word} addr . port to ${keyText(f, fields)} . numgen random mod ${n} map @${map}`,
    exprs: [
      ...keyExprs(f, fields),
      { kind: 'numgen', type: 'random', modulus: n, dreg: reg32(keyWords(f, fields)) },
      { kind: 'lookup', set: map, sreg: 1, dreg: 1 },
      { kind: 'nat', type: 'dnat', family: f.nft, regAddrMin: 1, regProtoMin: reg32(f.addrLen / 4) },
    ],
  };
}

/** `dnat to 10.244.0.5:8080` (`[fd00::5]:8080`). */
export function dnatTo(f: Fam, ip: string, p: number): RulePart {
  const text = f.family === 'IPv4' ? `${ip}:${p}` : `[${ip}]:${p}`;
  return {
    text: `dnat to ${text}`,
    exprs: [
      { kind: 'immediate', dreg: 1, data: f.addr(ip) },
      { kind: 'immediate', dreg: 2, data: port(p) },
      { kind: 'nat', type: 'dnat', family: f.nft, regAddrMin: 1, regProtoMin: 2, flags: NF_NAT_RANGE_PROTO_SPECIFIED },
    ],
  };
}

/** `update @set { ip saddr }`. */
export function updateSaddr(f: Fam, set: string): RulePart {
  return { text: `update @${set} { ${f.word} saddr }`, exprs: [load(f, 'saddr', 1), { kind: 'dynset', set, op: 'update', sreg: 1 }] };
}

/** `numgen random mod n vmap { 0 : goto a, 1 : goto b }`: the map is anonymous; the caller makes
 *  it in the same transaction and fills in its id (`withSlotMapId`). */
export function numgenVmap(targets: readonly Verdict[]): RulePart {
  const text = `numgen random mod ${targets.length} vmap { ${targets.map((v, i) => `${i} : ${verdict(v).text}`).join(', ')} }`;
  return { text, exprs: [{ kind: 'numgen', type: 'random', modulus: targets.length, dreg: 1 }, { kind: 'lookup', set: '__map%d', sreg: 1, dreg: 0 }], slotMap: targets };
}

/** The rule's expressions with its anonymous map's transaction id filled in. */
export function withSlotMapId(exprs: readonly Expr[], id: number): Expr[] {
  return exprs.map((e) => (e.kind === 'lookup' && e.set === '__map%d' ? { ...e, setId: id } : e));
}
