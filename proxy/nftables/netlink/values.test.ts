import { describe, expect, it } from 'vitest';
import { concat, decodeConcat, formatAddress, ipv4, ipv6, l4proto, port, readPort, readU32host, u32be, u32host } from './values.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('element values', () => {
  it('match the key and data nft sends for a numgen map element', () => {
    // `add element ip kdp endpoints { 10.96.0.1 . tcp . 80 . 1 : 10.0.0.1 . 8080 }` on
    // `map endpoints { typeof ip daddr . meta l4proto . th dport . numgen random mod 1 : ip daddr . th dport }`
    // (nft --debug=mnl): key 0a600001 06000000 00500000 01000000, data 0a000001 1f900000 — each
    // field padded to 4 bytes, the numgen slot in host order (little-endian here).
    expect(hex(concat(ipv4('10.96.0.1'), l4proto('tcp'), port(80), u32host(1)))).toBe('0a600001060000000050000001000000');
    expect(hex(concat(ipv4('10.0.0.1'), port(8080)))).toBe('0a0000011f900000');
  });

  it('ipv6 fields are 16 bytes; a concatenation after one keeps 4-byte alignment', () => {
    // `add element ip6 kdp endpoints { fd00::1 . tcp . 80 . 1 : fd00::2 . 8080 }`
    expect(hex(concat(ipv6('fd00::1'), l4proto('tcp'), port(80), u32host(1)))).toBe('fd000000000000000000000000000001' + '06000000' + '00500000' + '01000000');
    expect(hex(ipv6('::ffff:10.0.0.1'))).toBe('00000000000000000000ffff0a000001');
  });

  it('protocols by name or number; bad input is refused with what was wrong', () => {
    expect([...l4proto('udp'), ...l4proto('sctp'), ...l4proto(47)]).toEqual([17, 132, 47]);
    expect(() => ipv4('fd00::1')).toThrow(/not an IPv4 address/);
    expect(() => ipv6('10.0.0.1')).toThrow(/not an IPv6 address/);
    expect(() => port(70000)).toThrow(/not a port/);
    expect(() => l4proto(300)).toThrow(/not an IP protocol/);
    expect(hex(u32be(0x4000))).toBe('00004000');
  });

  it('decodeConcat undoes concat', () => {
    const key = concat(ipv4('10.96.0.10'), l4proto('udp'), port(53), u32host(7));
    const [addr, proto, p, slot] = decodeConcat(key, [4, 1, 2, 4]);
    expect(formatAddress(addr!)).toBe('10.96.0.10');
    expect(proto![0]).toBe(17);
    expect(readPort(p!)).toBe(53);
    expect(readU32host(slot!)).toBe(7);
    expect(formatAddress(decodeConcat(concat(ipv6('fd00::a'), port(1)), [16, 2])[0]!)).toBe('fd00::a');
    expect(() => decodeConcat(key, [4, 2])).toThrow(/needs 8 bytes, got 16/);
  });
});
