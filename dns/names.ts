// Names the Kubernetes DNS specification derives from addresses: reverse names (in-addr.arpa,
// nibble-form ip6.arpa), dashed addresses (endpoint and pod names), and back.
import { isIPv4, isIPv6 } from 'node:net';
import { formatIPv6Groups } from '../common/ip.js';
import { ipBytes } from './wire.js';

/** `10.0.0.1` → `1.0.0.10.in-addr.arpa`; IPv6 in nibble form under `ip6.arpa`. */
export function reverseName(ip: string): string {
  if (isIPv4(ip)) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const b = ipBytes(ip);
  const nibbles: string[] = [];
  for (let i = 15; i >= 0; i--) nibbles.push((b[i] & 0xf).toString(16), (b[i] >> 4).toString(16));
  return `${nibbles.join('.')}.ip6.arpa`;
}

/**
 * The address a reverse name spells, in canonical form (what the catalog indexes), or undefined
 * when it spells none: every label of the address present, decimal octets without leading zeros,
 * single lower-case hex nibbles. Partial names (`96.10.in-addr.arpa`) spell no address.
 */
export function ipFromReverse(name: string): string | undefined {
  if (name.endsWith('.in-addr.arpa')) {
    const labels = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (labels.length !== 4) return undefined;
    for (const l of labels) if (!/^(0|[1-9]\d{0,2})$/.test(l) || Number(l) > 255) return undefined;
    return `${labels[3]}.${labels[2]}.${labels[1]}.${labels[0]}`;
  }
  if (name.endsWith('.ip6.arpa')) {
    const nibbles = name.slice(0, -'.ip6.arpa'.length);
    // 32 nibbles and 31 dots, least significant first.
    if (nibbles.length !== 63 || !/^([0-9a-f]\.){31}[0-9a-f]$/.test(nibbles)) return undefined;
    const b = Buffer.alloc(16);
    for (let i = 0; i < 32; i++) {
      const v = parseInt(nibbles[62 - 2 * i], 16);
      b[i >> 1] |= i % 2 === 0 ? v << 4 : v;
    }
    return canonicalIPv6(b);
  }
  return undefined;
}

/** `10.0.0.1` → `10-0-0-1`, `fd00::1` → `fd00--1` (CoreDNS's endpoint and pod spelling). */
export function dashedIP(ip: string): string {
  return ip.replace(/[.:]/g, '-');
}

/** The canonical text of an IPv6 address (RFC 5952): lower case, longest zero run as `::`. */
export function canonicalIPv6(bytes: Buffer): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push(bytes.readUInt16BE(i));
  return formatIPv6Groups(words);
}

/**
 * The address a pod name's first label spells (`10-244-0-5`, `fd00-244--5`), in canonical
 * form, or undefined when it spells none.
 */
export function ipFromDashed(label: string): { ip: string; family: 'IPv4' | 'IPv6' } | undefined {
  if (/^\d{1,3}(-\d{1,3}){3}$/.test(label)) {
    const ip = label.replace(/-/g, '.');
    if (!isIPv4(ip)) return undefined;
    // Leading zeros would spell the same address twice; the canonical form is what pods have.
    return { ip: ip.split('.').map((p) => String(Number(p))).join('.'), family: 'IPv4' };
  }
  if (!/^[0-9a-f-]+$/.test(label) || !label.includes('-')) return undefined;
  const text = label.replace(/-/g, ':');
  if (!isIPv6(text)) return undefined;
  return { ip: canonicalIPv6(ipBytes(text)), family: 'IPv6' };
}
