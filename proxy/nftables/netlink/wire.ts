// Netlink and nfnetlink framing for nf_tables: message headers, attributes (TLVs), the error
// acknowledgement, and the uapi numbers this module uses. Pure: no sockets here.
//
// Byte orders (uapi linux/netlink.h, linux/netfilter/nfnetlink.h, nf_tables.h): the netlink
// message header and attribute headers are host order; nfgenmsg.res_id is big-endian; every
// nf_tables integer attribute (NLA_U32/NLA_U64 in nf_tables.h) is big-endian (nla_put_be32 in
// the kernel). Key and data *values* are raw bytes whose order the expression that loads them
// decides (see values.ts).
import { constants as osConstants } from 'node:os';

export const NLMSG_HDRLEN = 16;
export const NFGENMSG_LEN = 4;

export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_ECHO = 0x8;
export const NLM_F_DUMP_INTR = 0x10;
// GET modifiers
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
// NEW modifiers
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
// flags of an NLMSG_ERROR message
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

export const NLMSGERR_ATTR_MSG = 1;
export const NLMSGERR_ATTR_OFFS = 2;

export const NLA_HDRLEN = 4;
export const NLA_F_NESTED = 0x8000;
export const NLA_F_NET_BYTEORDER = 0x4000;
export const NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xffff;
/** nla_len is a u16: no attribute, nested ones included, can be longer. */
export const NLA_MAX_LEN = 0xffff;

export const NFNETLINK_V0 = 0;
export const NFNL_SUBSYS_NFTABLES = 10;
export const NFNL_MSG_BATCH_BEGIN = 16; // NLMSG_MIN_TYPE
export const NFNL_MSG_BATCH_END = 17;

export const NFPROTO_UNSPEC = 0;
export const NFPROTO_IPV4 = 2;
export const NFPROTO_IPV6 = 10;

export const NFT_MSG = {
  NEWTABLE: 0,
  GETTABLE: 1,
  DELTABLE: 2,
  NEWCHAIN: 3,
  GETCHAIN: 4,
  DELCHAIN: 5,
  NEWRULE: 6,
  GETRULE: 7,
  DELRULE: 8,
  NEWSET: 9,
  GETSET: 10,
  DELSET: 11,
  NEWSETELEM: 12,
  GETSETELEM: 13,
  DELSETELEM: 14,
  NEWGEN: 15,
  GETGEN: 16,
} as const;

/** nlmsg_type of an nf_tables message: subsystem in the high byte. */
export function nftType(msg: number): number {
  return (NFNL_SUBSYS_NFTABLES << 8) | msg;
}

export const NFTA_LIST_ELEM = 1;

export const NFTA_TABLE = { NAME: 1, FLAGS: 2, USE: 3, HANDLE: 4 } as const;
export const NFTA_CHAIN = { TABLE: 1, HANDLE: 2, NAME: 3, HOOK: 4, POLICY: 5, USE: 6, TYPE: 7, COUNTERS: 8, FLAGS: 10 } as const;
export const NFTA_RULE = { TABLE: 1, CHAIN: 2, HANDLE: 3, EXPRESSIONS: 4, POSITION: 6, USERDATA: 7 } as const;
export const NFTA_SET = {
  TABLE: 1,
  NAME: 2,
  FLAGS: 3,
  KEY_TYPE: 4,
  KEY_LEN: 5,
  DATA_TYPE: 6,
  DATA_LEN: 7,
  POLICY: 8,
  DESC: 9,
  ID: 10,
  TIMEOUT: 11,
  GC_INTERVAL: 12,
  USERDATA: 13,
  HANDLE: 16,
} as const;
export const NFTA_SET_DESC = { SIZE: 1, CONCAT: 2 } as const;
export const NFTA_SET_FIELD_LEN = 1;
export const NFTA_HOOK = { HOOKNUM: 1, PRIORITY: 2 } as const;
export const NFTA_SET_ELEM = { KEY: 1, DATA: 2, FLAGS: 3, TIMEOUT: 4, EXPIRATION: 5, USERDATA: 6, EXPR: 7, KEY_END: 10 } as const;
export const NFTA_SET_ELEM_LIST = { TABLE: 1, SET: 2, ELEMENTS: 3, SET_ID: 4 } as const;
export const NFTA_DATA = { VALUE: 1, VERDICT: 2 } as const;
export const NFTA_VERDICT = { CODE: 1, CHAIN: 2 } as const;
export const NFTA_EXPR = { NAME: 1, DATA: 2 } as const;
export const NFTA_GEN = { ID: 1 } as const;

export const NFT_SET_FLAGS = {
  ANONYMOUS: 0x1,
  CONSTANT: 0x2,
  INTERVAL: 0x4,
  MAP: 0x8,
  TIMEOUT: 0x10,
  EVAL: 0x20,
  OBJECT: 0x40,
  CONCAT: 0x80,
} as const;
export const NFT_SET_ELEM_INTERVAL_END = 0x1;
/** NFTA_SET_DATA_TYPE of a verdict map (nft's TYPE_VERDICT, the kernel's NFT_DATA_VERDICT). */
export const NFT_DATA_VERDICT = 0xffffff00;

export const NF_DROP = 0;
export const NF_ACCEPT = 1;
export const NFT_CONTINUE = -1;
export const NFT_BREAK = -2;
export const NFT_JUMP = -3;
export const NFT_GOTO = -4;
export const NFT_RETURN = -5;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// Encoding

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** Writes an attribute header at `off`; returns the offset of its payload. */
export function putAttrHeader(b: Buffer, off: number, len: number, type: number): number {
  if (len > NLA_MAX_LEN) throw new RangeError(`netlink attribute type ${type & NLA_TYPE_MASK} is ${len} bytes, more than ${NLA_MAX_LEN}`);
  if (LITTLE_ENDIAN) {
    b.writeUInt16LE(len, off);
    b.writeUInt16LE(type, off + 2);
  } else {
    b.writeUInt16BE(len, off);
    b.writeUInt16BE(type, off + 2);
  }
  return off + NLA_HDRLEN;
}

/** One attribute: header, payload, zero padding to 4 bytes. */
export function attr(type: number, payload: Uint8Array): Buffer {
  const len = NLA_HDRLEN + payload.length;
  if (len > NLA_MAX_LEN) throw new RangeError(`netlink attribute type ${type & NLA_TYPE_MASK} is ${len} bytes, more than ${NLA_MAX_LEN}`);
  const b = Buffer.alloc(align4(len));
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  v.setUint16(0, len, LITTLE_ENDIAN);
  v.setUint16(2, type, LITTLE_ENDIAN);
  b.set(payload, NLA_HDRLEN);
  return b;
}

export function attrU32(type: number, value: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(value >>> 0);
  return attr(type, p);
}

export function attrU64(type: number, value: bigint): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64BE(BigInt.asUintN(64, value));
  return attr(type, p);
}

export function attrStr(type: number, s: string): Buffer {
  return attr(type, Buffer.from(`${s}\0`, 'utf8'));
}

/** A nested attribute; its children are already-encoded attributes. */
export function attrNest(type: number, children: readonly Uint8Array[]): Buffer {
  return attr(type | NLA_F_NESTED, Buffer.concat(children));
}

export interface MessageHeader {
  type: number;
  flags: number;
  seq: number;
  pid?: number;
}

/** nlmsghdr + nfgenmsg + attributes. */
export function nfMessage(h: MessageHeader, family: number, resId: number, attrs: readonly Uint8Array[]): Buffer {
  const body = Buffer.concat(attrs);
  const len = NLMSG_HDRLEN + NFGENMSG_LEN + body.length;
  const b = Buffer.alloc(len);
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  v.setUint32(0, len, LITTLE_ENDIAN);
  v.setUint16(4, h.type, LITTLE_ENDIAN);
  v.setUint16(6, h.flags, LITTLE_ENDIAN);
  v.setUint32(8, h.seq >>> 0, LITTLE_ENDIAN);
  v.setUint32(12, (h.pid ?? 0) >>> 0, LITTLE_ENDIAN);
  b[16] = family;
  b[17] = NFNETLINK_V0;
  v.setUint16(18, resId, false);
  b.set(body, NLMSG_HDRLEN + NFGENMSG_LEN);
  return b;
}

// ---------------------------------------------------------------------------------------------
// Decoding

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** Everything after the 16-byte header (for nf_tables: nfgenmsg, then attributes). */
  payload: Buffer;
}

/** Splits a datagram into its netlink messages. Throws on a malformed length. */
export function parseMessages(buf: Buffer): NlMessage[] {
  const out: NlMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= buf.length) {
    const len = LITTLE_ENDIAN ? buf.readUInt32LE(off) : buf.readUInt32BE(off);
    if (len < NLMSG_HDRLEN || off + len > buf.length) throw new Error(`malformed netlink message at offset ${off}: length ${len} in a ${buf.length}-byte datagram`);
    const u16 = (o: number) => (LITTLE_ENDIAN ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
    const u32 = (o: number) => (LITTLE_ENDIAN ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
    out.push({ type: u16(off + 4), flags: u16(off + 6), seq: u32(off + 8), pid: u32(off + 12), payload: buf.subarray(off + NLMSG_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

export interface Attr {
  /** Type without the NESTED / NET_BYTEORDER flags. */
  type: number;
  value: Buffer;
}

/** All attributes in order (repeated types, as in lists, are kept). */
export function parseAttrList(buf: Buffer): Attr[] {
  const out: Attr[] = [];
  let off = 0;
  while (off + NLA_HDRLEN <= buf.length) {
    const len = LITTLE_ENDIAN ? buf.readUInt16LE(off) : buf.readUInt16BE(off);
    const type = LITTLE_ENDIAN ? buf.readUInt16LE(off + 2) : buf.readUInt16BE(off + 2);
    if (len < NLA_HDRLEN || off + len > buf.length) throw new Error(`malformed netlink attribute at offset ${off}: length ${len} of ${buf.length}`);
    out.push({ type: type & NLA_TYPE_MASK, value: buf.subarray(off + NLA_HDRLEN, off + len) });
    off += align4(len);
  }
  return out;
}

/** Attributes by type (the last one wins for a repeated type). */
export function parseAttrs(buf: Buffer): Map<number, Buffer> {
  const m = new Map<number, Buffer>();
  for (const a of parseAttrList(buf)) m.set(a.type, a.value);
  return m;
}

/** The attributes of an nf_tables message (after nfgenmsg), and its family. */
export function nfAttrs(msg: NlMessage): { family: number; attrs: Map<number, Buffer> } {
  return { family: msg.payload[0] ?? 0, attrs: parseAttrs(msg.payload.subarray(NFGENMSG_LEN)) };
}

export function readStr(b: Buffer | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

export function readU32(b: Buffer | undefined): number | undefined {
  return b && b.length >= 4 ? b.readUInt32BE(0) : undefined;
}

export function readU64(b: Buffer | undefined): bigint | undefined {
  return b && b.length >= 8 ? b.readBigUInt64BE(0) : undefined;
}

export interface NlError {
  /** Positive errno; 0 for an acknowledgement. */
  errno: number;
  /** Header of the message this answers. */
  request: { len: number; type: number; flags: number; seq: number; pid: number };
  /** Extended ACK text (only when the socket asked for NETLINK_EXT_ACK). */
  extMessage?: string;
  /** Extended ACK: offset of the offending attribute in the request. */
  extOffset?: number;
}

/** Decodes the payload of an NLMSG_ERROR message (struct nlmsgerr, then optional ACK TLVs). */
export function decodeError(msg: NlMessage): NlError {
  const p = msg.payload;
  if (p.length < 4 + NLMSG_HDRLEN) throw new Error(`short NLMSG_ERROR (${p.length} bytes)`);
  const v = new DataView(p.buffer, p.byteOffset, p.length);
  const errno = -v.getInt32(0, LITTLE_ENDIAN);
  const request = {
    len: v.getUint32(4, LITTLE_ENDIAN),
    type: v.getUint16(8, LITTLE_ENDIAN),
    flags: v.getUint16(10, LITTLE_ENDIAN),
    seq: v.getUint32(12, LITTLE_ENDIAN),
    pid: v.getUint32(16, LITTLE_ENDIAN),
  };
  const out: NlError = { errno, request };
  if (msg.flags & NLM_F_ACK_TLVS) {
    // Without NLM_F_CAPPED the whole request is echoed before the TLVs.
    const echoed = msg.flags & NLM_F_CAPPED ? NLMSG_HDRLEN : align4(request.len);
    const tlvs = parseAttrs(p.subarray(Math.min(p.length, 4 + echoed)));
    out.extMessage = readStr(tlvs.get(NLMSGERR_ATTR_MSG));
    const offs = tlvs.get(NLMSGERR_ATTR_OFFS);
    if (offs && offs.length >= 4) out.extOffset = LITTLE_ENDIAN ? offs.readUInt32LE(0) : offs.readUInt32BE(0);
  }
  return out;
}

/** The error carried by NLMSG_DONE of a dump (0 when it ended well). */
export function decodeDoneErrno(msg: NlMessage): number {
  if (msg.payload.length < 4) return 0;
  return -(LITTLE_ENDIAN ? msg.payload.readInt32LE(0) : msg.payload.readInt32BE(0));
}

const ERRNO_NAMES = new Map<number, string>();
for (const [name, n] of Object.entries(osConstants.errno)) if (!ERRNO_NAMES.has(n)) ERRNO_NAMES.set(n, name);

/** "ENOENT" for 2; "errno 999" for what Node does not know. */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}
