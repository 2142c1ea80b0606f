// IP addresses and prefixes as bigints: small, exact for both families, and cheap to load (the
// IPAM plugin's start time is paid by every pod, so no address library on this path). The
// canonical text forms of common/ip.ts are computed here too.

export type Family = 4 | 6;

export interface IP {
  family: Family;
  value: bigint;
}

export interface Prefix {
  family: Family;
  /** The network address (host bits cleared). */
  network: bigint;
  length: number;
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

export function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

function parseV4(s: string): bigint | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || (p.length > 1 && p[0] === '0')) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseV6(s: string): bigint | null {
  if (s.includes('%')) return null; // zone ids name an interface, not an address to allocate
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.', lastColon)) {
    // An embedded IPv4 tail ("::ffff:1.2.3.4") is two 16-bit groups written as a dotted quad.
    const v4 = parseV4(s.slice(lastColon + 1));
    if (v4 === null) return null;
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const dbl = s.indexOf('::');
  if (dbl !== s.lastIndexOf('::')) return null;
  let groups: string[];
  if (dbl >= 0) {
    const left = dbl > 0 ? s.slice(0, dbl).split(':') : [];
    const right = dbl + 2 < s.length ? s.slice(dbl + 2).split(':') : [];
    const missing = 8 - left.length - right.length;
    if (missing < 1) return null;
    groups = [...left, ...Array<string>(missing).fill('0'), ...right];
  } else {
    groups = s.split(':');
  }
  if (groups.length !== 8) return null;
  let v = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  return v;
}

export function parseIP(s: string): IP | null {
  if (typeof s !== 'string') return null;
  if (s.includes(':')) {
    const v = parseV6(s);
    return v === null ? null : { family: 6, value: v };
  }
  const v = parseV4(s);
  return v === null ? null : { family: 4, value: v };
}

/** Canonical text: dotted quad, or RFC 5952 (lower case, longest zero run compressed). */
export function formatIP(family: Family, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => Number((value >> s) & 255n)).join('.');
  }
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  return formatIPv6Groups(g);
}

export function ipString(ip: IP): string {
  return formatIP(ip.family, ip.value);
}

export function hostMask(family: Family, length: number): bigint {
  return (1n << BigInt(bits(family) - length)) - 1n;
}

/**
 * Parses "ADDR/LEN". The address keeps its host bits (`address`); `prefix.network` has them
 * cleared, so callers can tell "10.0.0.5/24" (an interface address) from "10.0.0.0/24".
 */
export function parseCIDR(s: string): { address: IP; prefix: Prefix } | null {
  if (typeof s !== 'string') return null;
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const address = parseIP(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (!address || !/^\d{1,3}$/.test(lenText)) return null;
  const length = Number(lenText);
  if (length > bits(address.family)) return null;
  const network = address.value & ~hostMask(address.family, length);
  return { address, prefix: { family: address.family, network, length } };
}

export function prefixString(p: Prefix): string {
  return `${formatIP(p.family, p.network)}/${p.length}`;
}

export function lastAddress(p: Prefix): bigint {
  return p.network | hostMask(p.family, p.length);
}

export function prefixContains(p: Prefix, ip: IP): boolean {
  return ip.family === p.family && (ip.value & ~hostMask(p.family, p.length)) === p.network;
}

export function prefixesOverlap(a: Prefix, b: Prefix): boolean {
  if (a.family !== b.family) return false;
  const len = Math.min(a.length, b.length);
  const m = ~hostMask(a.family, len);
  return (a.network & m) === (b.network & m);
}
