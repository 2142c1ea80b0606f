import { describe, expect, it } from 'vitest';
import {
  NLA_F_NESTED,
  NLMSG_ERROR,
  NLM_F_ACK_TLVS,
  attr,
  attrNest,
  attrStr,
  attrU32,
  attrU64,
  decodeError,
  errnoName,
  nfMessage,
  nftType,
  NFT_MSG,
  parseAttrList,
  parseAttrs,
  parseMessages,
  readStr,
  readU32,
  readU64,
} from './wire.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('attributes', () => {
  it('pads to 4 bytes, with the unpadded length in the header; strings end in NUL', () => {
    // nft --debug=mnl: `a0 00 03 00 73 76 63 2d 61 00 00 00` is NFTA_CHAIN_NAME "svc-a" (len 10)
    expect(hex(attrStr(3, 'svc-a'))).toBe('0a0003007376632d61000000');
    expect(hex(attr(1, Uint8Array.of(6)))).toBe('0500010006000000');
  });

  it('u32 and u64 are big-endian (nf_tables uses nla_put_be32/be64)', () => {
    expect(hex(attrU32(1, 0xfffffffd))).toBe('08000100fffffffd');
    expect(hex(attrU64(3, 10n))).toBe('0c000300000000000000000a');
  });

  it('nested attributes carry NLA_F_NESTED and round-trip', () => {
    const n = attrNest(2, [attrU32(1, 7), attrStr(2, 'x')]);
    expect(n.readUInt16LE(2)).toBe(2 | NLA_F_NESTED);
    const [outer] = parseAttrList(n);
    expect(outer!.type).toBe(2);
    const inner = parseAttrs(outer!.value);
    expect(readU32(inner.get(1))).toBe(7);
    expect(readStr(inner.get(2))).toBe('x');
    expect(readU64(attrU64(1, 2n ** 40n).subarray(4))).toBe(2n ** 40n);
  });

  it('refuses an attribute longer than a u16 length can say', () => {
    expect(() => attr(3, new Uint8Array(70_000))).toThrow(/more than 65535/);
  });
});

describe('messages', () => {
  it('nlmsghdr (host order) + nfgenmsg (res_id big-endian) round-trip', () => {
    const m = nfMessage({ type: nftType(NFT_MSG.GETGEN), flags: 5, seq: 0x01020304, pid: 9 }, 0, 10, [attrU32(1, 1)]);
    expect(hex(m.subarray(0, 20))).toBe('1c000000100a050004030201090000000000000a');
    const [p] = parseMessages(Buffer.concat([m, m]));
    expect(p).toMatchObject({ type: 0x0a10, flags: 5, seq: 0x01020304, pid: 9 });
    expect(parseMessages(Buffer.concat([m, m]))).toHaveLength(2);
  });

  it('rejects a length that runs past the datagram', () => {
    const m = nfMessage({ type: 0x10, flags: 1, seq: 1 }, 0, 10, []);
    m.writeUInt32LE(200, 0);
    expect(() => parseMessages(m)).toThrow(/malformed netlink message/);
  });
});

describe('error acknowledgements', () => {
  // What the kernel answered `nft -f` for `delete element ip kdp service-ips { 10.9.9.9 . tcp . 1 }`
  // (an element that is not there), captured with `strace -e recvmsg -e read=all`; nft asks for
  // NETLINK_EXT_ACK, so the reply carries NLM_F_ACK_TLVS and the offset of the offending attribute
  // after the whole echoed request (no NLM_F_CAPPED). Outer seq/pid zeroed.
  const ENOENT_ACK =
    '64000000020000020000000000000000feffffff480000000e0a0100010000000000000002000000080001006b64700010000200736572766963652d697073001c0003801800018014000180100001000a09090906000000000100000800020030000000';

  it('gives the errno, the header of the request it answers, and the extended ACK offset', () => {
    const [msg] = parseMessages(Buffer.from(ENOENT_ACK, 'hex'));
    expect(msg!.type).toBe(NLMSG_ERROR);
    expect(msg!.flags & NLM_F_ACK_TLVS).toBeTruthy();
    const e = decodeError(msg!);
    expect(e.errno).toBe(2);
    expect(errnoName(e.errno)).toBe('ENOENT');
    expect(e.request).toMatchObject({ type: nftType(NFT_MSG.DELSETELEM), seq: 1, len: 0x48 });
    expect(e.extOffset).toBe(0x30);
    expect(e.extMessage).toBeUndefined();
  });

  it('decodes a capped ACK with a message text, and a plain ACK', () => {
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(40, 0);
    hdr.writeUInt16LE(0x0a0c, 4);
    hdr.writeUInt32LE(77, 8);
    const errno = Buffer.alloc(4);
    errno.writeInt32LE(-17);
    const body = Buffer.concat([errno, hdr, attrStr(1, 'Could not process rule')]);
    const m = nfMessage({ type: NLMSG_ERROR, flags: 0x100 | 0x200, seq: 77 }, 0, 0, []).subarray(0, 16);
    const buf = Buffer.concat([m, body]);
    buf.writeUInt32LE(buf.length, 0);
    const e = decodeError(parseMessages(buf)[0]!);
    expect(e).toMatchObject({ errno: 17, request: { seq: 77, type: 0x0a0c }, extMessage: 'Could not process rule' });
    expect(errnoName(17)).toBe('EEXIST');
    expect(errnoName(4242)).toBe('errno 4242');
  });
});
