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
