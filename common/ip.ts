// IP address and CIDR parsing into one canonical text form, so that the same address written two
// ways ("FD00:0::1", "fd00::1") is one key everywhere: catalog indexes, rules, DNS answers.
import { isIPv4, isIPv6 } from 'node:net';
import type { IPFamily } from '../cluster/types.js';
import { own } from './strings.js';

export interface ParsedIP {
  readonly ip: string;
  readonly family: IPFamily;
}

/** Canonical form of an IPv4 or IPv6 address, or undefined if `s` is not one. IPv4 with
 *  leading zeros ("010.0.0.1") is refused, as the API server refuses it: it is ambiguous. */
export function parseIP(s: unknown): ParsedIP | undefined {
  if (typeof s !== 'string') return undefined;
  // Addresses are kept by the catalog for as long as their objects live: an own copy, so that
  // one parsed out of a manifest does not keep the manifest's text alive (see strings.ts).
  if (isIPv4(s)) return { ip: own(s), family: 'IPv4' };
  if (isIPv6(s) && !s.includes('%')) return { ip: own(canonicalIPv6(s)), family: 'IPv6' };
  return undefined;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run of zero groups as `::`. */
function canonicalIPv6(s: string): string {
  return formatIPv6Groups(ipv6Groups(s));
}

/** RFC 5952 text of eight 16-bit groups: the longest run of two or more zero groups (the first,
 *  on a tie) becomes `::`. Shared by everything that prints IPv6: catalog, DNS, IPAM. */
export function formatIPv6Groups(groups: readonly number[]): string {
  let bestStart = -1;
  let bestLen = 1; // a single zero group is not shortened
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** The eight 16-bit groups of a valid IPv6 address (embedded IPv4 allowed). */
export function ipv6Groups(s: string): number[] {
  // An embedded dotted quad becomes its two hex groups, so one path parses everything.
  const text = s.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a, b, c, d) =>
    `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`);
  const parse = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const cut = text.indexOf('::');
  if (cut < 0) return parse(text);
  const head = parse(text.slice(0, cut));
  const tail = parse(text.slice(cut + 2));
  return [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
}

export function familyOf(ip: string): IPFamily {
  return ip.includes(':') ? 'IPv6' : 'IPv4';
}

export interface ParsedCIDR {
  /** Canonical `network/prefix`, host bits cleared. */
  readonly cidr: string;
  readonly family: IPFamily;
  readonly prefix: number;
}

/** Parses `addr/prefix`; host bits are cleared (10.0.0.5/24 → 10.0.0.0/24), as the API does. */
export function parseCIDR(s: unknown): ParsedCIDR | undefined {
  if (typeof s !== 'string') return undefined;
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const addr = parseIP(s.slice(0, slash));
  const prefixText = s.slice(slash + 1);
  if (!addr || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  const bits = addr.family === 'IPv4' ? 32 : 128;
  if (prefix > bits) return undefined;
  const value = ipToBigInt(addr.ip);
  const mask = prefix === 0 ? 0n : ((1n << BigInt(prefix)) - 1n) << BigInt(bits - prefix);
  return { cidr: `${bigIntToIP(value & mask, addr.family)}/${prefix}`, family: addr.family, prefix };
}

export function ipToBigInt(ip: string): bigint {
  if (!ip.includes(':')) return ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
  return ipv6Groups(ip).reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
}

export function bigIntToIP(v: bigint, family: IPFamily): string {
  if (family === 'IPv4') return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  return formatIPv6Groups(groups);
}

/** Whether `ip` lies inside `cidr` (both canonical, same family or not). */
export function cidrContains(cidr: string, ip: string): boolean {
  const parsed = parseCIDR(cidr);
  if (!parsed || parsed.family !== familyOf(ip)) return false;
  const bits = parsed.family === 'IPv4' ? 32 : 128;
  const shift = BigInt(bits - parsed.prefix);
  return ipToBigInt(ip) >> shift === ipToBigInt(parsed.cidr.split('/')[0]) >> shift;
}
