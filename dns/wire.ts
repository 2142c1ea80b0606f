// The DNS wire format, only as far as the hot path needs it: the header, the one question, the
// client's EDNS OPT record, and a small writer with name compression. Full decoding (for tests
// and diagnostics) is left to dns-packet; parsing every query with it would cost several times
// what answering from a pre-encoded template costs.

export const HEADER_LEN = 12;
/** Without EDNS a UDP reply must fit in 512 bytes (RFC 1035 4.2.1). */
export const CLASSIC_UDP_SIZE = 512;
/** Largest UDP reply we send even if the client offers more (the DNS flag day 2020 value). */
export const MAX_UDP_SIZE = 1232;

export const QTYPE = {
  A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41,
  IXFR: 251, AXFR: 252, ANY: 255,
} as const;
export const QCLASS_IN = 1;
export const QCLASS_ANY = 255;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const RCODE_NAMES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

// Header flag bits (the 16-bit word at offset 2).
export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_AD = 0x0020;
export const FLAG_CD = 0x0010;

const MAX_NAME_WIRE = 255;

export class WireError extends Error {}

// 16-bit big-endian reads and writes by index, for offsets the caller has checked: Buffer's
// readUInt16BE/writeUInt16BE validate their arguments each call, which costs 20-25 ns apiece
// (Node 24), several times per query.
export function get16(buf: Uint8Array, off: number): number {
  return (buf[off] << 8) | buf[off + 1];
}
export function put16(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 8;
  buf[off + 1] = v;
}

/** What the hot path knows about a query after reading its header and question. */
export interface Query {
  readonly id: number;
  readonly flags: number;
  readonly opcode: number;
  /** The name lower-cased, dotted, without the trailing dot ('' for the root). A '.' or '\'
   *  inside a label is escaped with '\' so that the string never aliases another name. */
  readonly name: string;
  /** Length of the name on the wire (what a reply's question takes, whatever its case). */
  readonly nameWireLen: number;
  readonly qtype: number;
  readonly qclass: number;
  /** Offset just past the question. */
  readonly questionEnd: number;
  /** The client's EDNS record, if any. */
  readonly edns?: Edns;
}

export interface Edns {
  readonly udpSize: number;
  readonly version: number;
  /** The DO bit (DNSSEC OK). */
  readonly dnssecOk: boolean;
}

const scratch = Buffer.alloc(MAX_NAME_WIRE);

/**
 * Reads a name without compression (a question name must not point anywhere: RFC 1035 allows
 * it, but no resolver sends it, and refusing it removes loops from the attack surface).
 * One pass over the bytes into a scratch buffer (length bytes become dots, ASCII upper case
 * becomes lower case), then one string: this runs for every query.
 */
function readQuestionName(buf: Buffer, start: number): { name: string; end: number } {
  let off = start;
  let n = 0;
  let plain = true;
  for (;;) {
    if (off >= buf.length) throw new WireError('name runs past the end of the message');
    const len = buf[off];
    if (len === 0) break;
    if (len >= 0xc0) throw new WireError('compressed question name');
    if (len > 63) throw new WireError('bad label type');
    if (off + 1 + len > buf.length) throw new WireError('label runs past the end of the message');
    if (n + (n > 0 ? 1 : 0) + len + 2 > MAX_NAME_WIRE) throw new WireError('name longer than 255 bytes');
    if (n > 0) scratch[n++] = 0x2e;
    for (let i = off + 1, e = off + 1 + len; i < e; i++) {
      let c = buf[i];
      if (c >= 0x41 && c <= 0x5a) c |= 0x20;
      else if (c === 0x2e || c === 0x5c) plain = false;
      scratch[n++] = c;
    }
    off += 1 + len;
  }
  if (plain) return { name: scratch.toString('latin1', 0, n), end: off + 1 };
  return { name: escapedName(buf, start), end: off + 1 };
}

/** The rare name with a '.' or '\\' inside a label: escaped, so it never aliases another name. */
function escapedName(buf: Buffer, off: number): string {
  const labels: string[] = [];
  for (let len = buf[off]; len !== 0; off += 1 + len, len = buf[off]) {
    labels.push(buf.toString('latin1', off + 1, off + 1 + len).replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/[.\\]/g, '\\$&'));
  }
  return labels.join('.');
}

/** Skips a possibly compressed name in a record (never follows pointers: the end is what counts). */
export function skipName(buf: Buffer, off: number): number {
  for (let hops = 0; hops < 128; hops++) {
    if (off >= buf.length) throw new WireError('name runs past the end of the message');
    const len = buf[off];
    if (len === 0) return off + 1;
    if (len >= 0xc0) {
      if (off + 2 > buf.length) throw new WireError('truncated compression pointer');
      return off + 2;
    }
    if (len > 63) throw new WireError('bad label type');
    off += 1 + len;
  }
  throw new WireError('name has too many labels');
}

/**
 * Parses the header, the single question and (when ARCOUNT says so) the OPT record. Throws
 * WireError for anything malformed; the caller answers FORMERR when the header is readable.
 */
export function parseQuery(buf: Buffer): Query {
  if (buf.length < HEADER_LEN) throw new WireError('shorter than a header');
  const id = get16(buf, 0);
  const flags = get16(buf, 2);
  const opcode = (flags >> 11) & 0xf;
  const qdcount = get16(buf, 4);
  const ancount = get16(buf, 6);
  const nscount = get16(buf, 8);
  const arcount = get16(buf, 10);
  if (qdcount !== 1) throw new WireError(`QDCOUNT is ${qdcount}, not 1`);
  const { name, end } = readQuestionName(buf, HEADER_LEN);
  if (end + 4 > buf.length) throw new WireError('question runs past the end of the message');
  const qtype = get16(buf, end);
  const qclass = get16(buf, end + 2);
  const questionEnd = end + 4;
  let edns: Edns | undefined;
  if (arcount > 0) {
    let off = questionEnd;
    // Queries rarely carry answer or authority records; skip them to reach the additional ones.
    const total = ancount + nscount + arcount;
    for (let i = 0; i < total; i++) {
      off = skipName(buf, off);
      if (off + 10 > buf.length) throw new WireError('record runs past the end of the message');
      const type = get16(buf, off);
      const rdlen = get16(buf, off + 8);
      if (off + 10 + rdlen > buf.length) throw new WireError('record data runs past the end of the message');
      if (type === QTYPE.OPT && i >= ancount + nscount) {
        if (edns) throw new WireError('more than one OPT record');
        if (buf[off - 1] !== 0) throw new WireError('OPT record not owned by the root');
        const ttl = ((buf[off + 4] << 24) | (buf[off + 5] << 16) | (buf[off + 6] << 8) | buf[off + 7]) >>> 0;
        edns = { udpSize: get16(buf, off + 2), version: (ttl >>> 16) & 0xff, dnssecOk: (ttl & 0x8000) !== 0 };
      }
      off += 10 + rdlen;
    }
  }
  return { id, flags, opcode, name, nameWireLen: end - HEADER_LEN, qtype, qclass, questionEnd, edns };
}

/** The largest UDP reply this client takes. */
export function udpLimit(q: Pick<Query, 'edns'>): number {
  if (!q.edns) return CLASSIC_UDP_SIZE;
  return Math.min(Math.max(q.edns.udpSize, CLASSIC_UDP_SIZE), MAX_UDP_SIZE);
}

/** Our OPT record: root owner, our UDP size, extended rcode high bits, version 0. */
export function writeOpt(buf: Buffer, off: number, extRcode = 0): number {
  buf[off] = 0;
  put16(buf, off + 1, QTYPE.OPT);
  put16(buf, off + 3, MAX_UDP_SIZE);
  buf[off + 5] = extRcode & 0xff; // the extended rcode's high bits, then version 0, no flags
  buf[off + 6] = 0;
  put16(buf, off + 7, 0);
  put16(buf, off + 9, 0);
  return off + 11;
}
export const OPT_LEN = 11;

/** The flags of a reply to `queryFlags`: QR, the query's opcode, RD and CD echoed, RA set. */
export function replyFlags(queryFlags: number, rcode: number, authoritative: boolean): number {
  return (
    FLAG_QR |
    (queryFlags & 0x7800) | // opcode
    (authoritative ? FLAG_AA : 0) |
    (queryFlags & (FLAG_RD | FLAG_CD)) |
    FLAG_RA |
    (rcode & 0xf)
  );
}

/**
 * A reply with no records: the header and, when it was readable, the question. Used for
 * FORMERR, NOTIMP, REFUSED, SERVFAIL and truncated answers.
 */
export function emptyReply(query: Buffer, q: Query | undefined, rcode: number, opts: { authoritative?: boolean; truncated?: boolean } = {}): Buffer {
  const qlen = q ? q.questionEnd - HEADER_LEN : 0;
  const withOpt = q?.edns !== undefined;
  const out = Buffer.allocUnsafe(HEADER_LEN + qlen + (withOpt ? OPT_LEN : 0));
  const queryFlags = query.length >= 4 ? query.readUInt16BE(2) : 0;
  out.writeUInt16BE(query.length >= 2 ? query.readUInt16BE(0) : 0, 0);
  out.writeUInt16BE(replyFlags(queryFlags, rcode, !!opts.authoritative) | (opts.truncated ? FLAG_TC : 0), 2);
  out.writeUInt16BE(q ? 1 : 0, 4);
  out.writeUInt32BE(0, 6);
  out.writeUInt16BE(withOpt ? 1 : 0, 10);
  if (q) query.copy(out, HEADER_LEN, HEADER_LEN, q.questionEnd);
  if (withOpt) writeOpt(out, HEADER_LEN + qlen, rcode >> 4);
  return out;
}

/** Text IP to the bytes of an A or AAAA record. The input is a normalized address. */
export function ipBytes(ip: string): Buffer {
  if (!ip.includes(':')) {
    const parts = ip.split('.').map(Number);
    return Buffer.from(parts);
  }
  const out = Buffer.alloc(16);
  const [head, tail] = ip.includes('::') ? ip.split('::') : [ip, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) takes two groups.
  const expand = (groups: string[]): number[] =>
    groups.flatMap((g) => (g.includes('.') ? ((b) => [(b[0] << 8) | b[1], (b[2] << 8) | b[3]])(g.split('.').map(Number)) : [parseInt(g, 16)]));
  const hv = expand(h);
  const tv = tail === undefined ? [] : expand(t);
  const words = [...hv, ...new Array(8 - hv.length - tv.length).fill(0), ...tv];
  words.forEach((w, i) => out.writeUInt16BE(w, i * 2));
  return out;
}

/**
 * Writes a message with name compression. Names are given dotted, lower-case; compression
 * matches case-insensitively, so pointers into the question keep the client's spelling.
 */
export class MessageWriter {
  buf: Buffer;
  off = 0;
  private readonly names = new Map<string, number>();

  constructor(size = 512) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private room(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  u8(v: number): void { this.room(1); this.buf[this.off++] = v; }
  u16(v: number): void { this.room(2); this.buf.writeUInt16BE(v, this.off); this.off += 2; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32BE(v >>> 0, this.off); this.off += 4; }
  bytes(b: Buffer | Uint8Array): void { this.room(b.length); this.buf.set(b, this.off); this.off += b.length; }

  /** Makes the suffixes of a name already in the message (the question) compression targets. */
  knowName(name: string, at: number): void {
    let rest = name;
    let off = at;
    while (rest) {
      if (!this.names.has(rest)) this.names.set(rest, off);
      const dot = nextDot(rest);
      const label = dot < 0 ? rest : rest.slice(0, dot);
      off += 1 + unescapedLength(label);
      rest = dot < 0 ? '' : rest.slice(dot + 1);
    }
  }

  name(name: string): void {
    let rest = name;
    while (rest) {
      const ptr = this.names.get(rest);
      if (ptr !== undefined && ptr < 0x3fff) {
        this.u16(0xc000 | ptr);
        return;
      }
      if (this.off < 0x3fff) this.names.set(rest, this.off);
      const dot = nextDot(rest);
      const label = unescape(dot < 0 ? rest : rest.slice(0, dot));
      if (label.length > 63 || label.length === 0) throw new WireError(`bad label in ${JSON.stringify(name)}`);
      this.u8(label.length);
      this.room(label.length);
      this.off += this.buf.write(label, this.off, 'latin1');
      rest = dot < 0 ? '' : rest.slice(dot + 1);
    }
    this.u8(0);
  }

  /** Starts a record; returns the offset of RDLENGTH, to be closed with `endRecord`. */
  record(owner: string, type: number, ttl: number): number {
    this.name(owner);
    this.u16(type);
    this.u16(QCLASS_IN);
    this.u32(ttl);
    const at = this.off;
    this.u16(0);
    return at;
  }

  endRecord(rdlenAt: number): void {
    this.buf.writeUInt16BE(this.off - rdlenAt - 2, rdlenAt);
  }

  done(): Buffer {
    return this.buf.subarray(0, this.off);
  }
}

function nextDot(s: string): number {
  let i = s.indexOf('.');
  // Skip escaped dots (a '.' inside a label); rare, so the fast path is the plain indexOf.
  while (i > 0 && s[i - 1] === '\\' && !isEscapedBackslash(s, i - 1)) i = s.indexOf('.', i + 1);
  return i;
}

function isEscapedBackslash(s: string, i: number): boolean {
  let n = 0;
  while (i - 1 - n >= 0 && s[i - 1 - n] === '\\') n++;
  return n % 2 === 1;
}

function unescape(label: string): string {
  return label.includes('\\') ? label.replace(/\\(.)/g, '$1') : label;
}

function unescapedLength(label: string): number {
  return unescape(label).length;
}

/** Wire length of a dotted name (for offsets of pointers). */
export function nameWireLength(name: string): number {
  if (!name) return 1;
  let n = 1;
  let rest = name;
  while (rest) {
    const dot = nextDot(rest);
    n += 1 + unescapedLength(dot < 0 ? rest : rest.slice(0, dot));
    rest = dot < 0 ? '' : rest.slice(dot + 1);
  }
  return n;
}

/**
 * Walks the records of a reply and returns where their TTLs are, so a cached reply can be
 * served with the time it spent in the cache taken off. Also finds the OPT record.
 */
export interface ReplyLayout {
  readonly ttlOffsets: number[];
  readonly counts: [number, number, number];
  /** Offset of the OPT record when it is the last record, else undefined. */
  readonly optAt?: number;
  /** True when an OPT record exists but is not last (we then do not cache the reply). */
  readonly optMisplaced: boolean;
  /** For negative answers: TTL and MINIMUM of the SOA in the authority section. */
  readonly soa?: { ttl: number; minimum: number };
  readonly questionEnd: number;
}

export function layoutReply(buf: Buffer): ReplyLayout {
  if (buf.length < HEADER_LEN) throw new WireError('shorter than a header');
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  const ns = buf.readUInt16BE(8);
  const ar = buf.readUInt16BE(10);
  let off = HEADER_LEN;
  for (let i = 0; i < qd; i++) {
    off = skipName(buf, off) + 4;
    if (off > buf.length) throw new WireError('question runs past the end of the message');
  }
  const questionEnd = off;
  const ttlOffsets: number[] = [];
  let optAt: number | undefined;
  let optMisplaced = false;
  let soa: { ttl: number; minimum: number } | undefined;
  const total = an + ns + ar;
  for (let i = 0; i < total; i++) {
    const start = off;
    off = skipName(buf, off);
    if (off + 10 > buf.length) throw new WireError('record runs past the end of the message');
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    if (off + 10 + rdlen > buf.length) throw new WireError('record data runs past the end of the message');
    if (type === QTYPE.OPT) {
      if (optAt !== undefined || i !== total - 1) optMisplaced = true;
      optAt = start;
    } else {
      ttlOffsets.push(off + 4);
      if (type === QTYPE.SOA && i >= an && i < an + ns && rdlen >= 22) {
        soa = { ttl: buf.readUInt32BE(off + 4), minimum: buf.readUInt32BE(off + 10 + rdlen - 4) };
      }
    }
    off += 10 + rdlen;
  }
  return { ttlOffsets, counts: [an, ns, ar], optAt: optMisplaced ? undefined : optAt, optMisplaced, soa, questionEnd };
}

/** The query with its question's name replaced; the header and what follows the question stay. */
export function queryWithName(msg: Buffer, q: Query, name: string): Buffer {
  const w = new MessageWriter(msg.length + name.length + 16);
  w.bytes(msg.subarray(0, HEADER_LEN));
  w.name(name);
  w.bytes(msg.subarray(q.questionEnd - 4, q.questionEnd)); // type and class
  w.bytes(msg.subarray(q.questionEnd));
  return Buffer.from(w.done());
}
