// IP address and CIDR parsing into one canonical text form, so that the same address written two
// ways ("FD00:0::1", "fd00::1") is one key everywhere: catalog indexes, rules, DNS answers. The
// arithmetic behind it is ip-bigint.ts's, which the IPAM plugin uses too.
import { isIPv4, isIPv6 } from 'node:net';
import type { IPFamily } from '../cluster/types.js';
import { formatIP, parseCIDR as parseValueCIDR, parseIP as parseValue, prefixContains, prefixString } from './ip-bigint.js';
import { own } from './strings.js';

export { formatIPv6Groups } from './ip-bigint.js';

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
  if (!isIPv6(s) || s.includes('%')) return undefined;
  const v = parseValue(s);
  // RFC 5952 text: lower case, no leading zeros, the longest run of zero groups as `::`.
  return v ? { ip: own(formatIP(6, v.value)), family: 'IPv6' } : undefined;
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
  const c = addr && parseValueCIDR(`${addr.ip}${s.slice(slash)}`);
  return addr && c ? { cidr: prefixString(c.prefix), family: addr.family, prefix: c.prefix.length } : undefined;
}

/** Whether `ip` lies inside `cidr` (both canonical, same family or not). */
export function cidrContains(cidr: string, ip: string): boolean {
  const c = parseValueCIDR(cidr);
  const v = parseValue(ip);
  return !!c && !!v && prefixContains(c.prefix, v);
}
