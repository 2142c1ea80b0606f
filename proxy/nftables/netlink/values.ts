// Key and data bytes of set elements, field by field, laid out as nft lays them out (checked with
// `nft --debug=mnl`): addresses and ports in network order, a protocol as one byte, numgen's
// value in host order (the kernel's numgen writes a host u32 into the register), and every field
// of a concatenation padded with zeros to a multiple of 4 bytes (one 32-bit register each).
import { formatIP, parseIP } from '../../../common/ip-bigint.js';

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Writes dotted-quad `s` at `off` of `out`; false (nothing trusted written) when it is not one.
 *  By hand, not a regular expression: a full load encodes 100k+ addresses. */
export function putIPv4(out: Uint8Array, off: number, s: string): boolean {
  let part = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46; // a final '.'
    if (c === 46) {
      if (digits === 0 || part > 3) return false;
      out[off + part++] = value;
      digits = 0;
      value = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && value === 0) return false; // no leading zeros
      value = value * 10 + (c - 48);
      if (++digits > 3 || value > 255) return false;
    } else return false;
  }
  return part === 4;
}

function addressBytes(s: string, family: 4 | 6): Uint8Array {
  if (family === 4 && typeof s === 'string') {
    const out = new Uint8Array(4);
    if (putIPv4(out, 0, s)) return out;
  }
  const m = family === 4 && typeof s === 'string' ? V4.exec(s) : null;
  if (m) return Uint8Array.of(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]));
  const ip = parseIP(s);
  if (!ip || ip.family !== family) throw new Error(`not an IPv${family} address: ${JSON.stringify(s)}`);
  const n = family === 4 ? 4 : 16;
  const out = new Uint8Array(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function ipv4(s: string): Uint8Array {
  return addressBytes(s, 4);
}

export function ipv6(s: string): Uint8Array {
  return addressBytes(s, 6);
}

const PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17, sctp: 132, icmp: 1, icmpv6: 58 };

export function l4proto(p: 'tcp' | 'udp' | 'sctp' | number): Uint8Array {
  const n = typeof p === 'number' ? p : PROTOCOLS[p];
  if (n === undefined || !Number.isInteger(n) || n < 0 || n > 255) throw new Error(`not an IP protocol: ${JSON.stringify(p)}`);
  return Uint8Array.of(n);
}

export function port(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw new Error(`not a port: ${n}`);
  return Uint8Array.of(n >> 8, n & 0xff);
}

/** A u32 in host order: what `numgen` and `meta mark` put in a register. */
export function u32host(n: number): Uint8Array {
  const b = new Uint8Array(4);
  putU32host(b, 0, n);
  return b;
}

export const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function putU32host(b: Uint8Array, off: number, n: number): void {
  n >>>= 0;
  if (HOST_LITTLE_ENDIAN) {
    b[off] = n & 0xff;
    b[off + 1] = (n >>> 8) & 0xff;
    b[off + 2] = (n >>> 16) & 0xff;
    b[off + 3] = n >>> 24;
  } else {
    b[off] = n >>> 24;
    b[off + 1] = (n >>> 16) & 0xff;
    b[off + 2] = (n >>> 8) & 0xff;
    b[off + 3] = n & 0xff;
  }
}

/** A u32 in network order. */
export function u32be(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, false);
  return b;
}

function padded(n: number): number {
  return (n + 3) & ~3;
}

/** The concatenation `a . b . c`: each field padded to a 32-bit register, as the kernel expects
 *  of a set whose key length is the padded sum. A set of one field (`type inet_proto`) takes the
 *  field itself, unpadded: the kernel wants exactly the set's key length. */
export function concat(...fields: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(fields.reduce((n, f) => n + padded(f.length), 0));
  let off = 0;
  for (const f of fields) {
    out.set(f, off);
    off += padded(f.length);
  }
  return out;
}

/** Splits a concatenation back into its fields, given each field's unpadded width. */
export function decodeConcat(bytes: Uint8Array, widths: readonly number[]): Uint8Array[] {
  const want = widths.reduce((n, w) => n + padded(w), 0);
  if (bytes.length !== want) throw new Error(`concatenation of ${widths.join('+')} bytes needs ${want} bytes, got ${bytes.length}`);
  const out: Uint8Array[] = [];
  let off = 0;
  for (const w of widths) {
    out.push(bytes.slice(off, off + w));
    off += padded(w);
  }
  return out;
}

/** Text of a 4- or 16-byte address field. */
export function formatAddress(b: Uint8Array): string {
  if (b.length !== 4 && b.length !== 16) throw new Error(`an address is 4 or 16 bytes, got ${b.length}`);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return formatIP(b.length === 4 ? 4 : 6, v);
}

export function readPort(b: Uint8Array): number {
  return (b[0]! << 8) | b[1]!;
}

export function readU32host(b: Uint8Array): number {
  return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, new Uint8Array(new Uint16Array([1]).buffer)[0] === 1);
}
