// Resource records as the zone holds them, and the encoding of whole replies from them. A reply
// built here for one question is a template: any later query for the same name and type gets a
// copy with its own ID, flags and question bytes patched in (see `serveTemplate`).
import { FLAG_TC, HEADER_LEN, MessageWriter, OPT_LEN, QTYPE, type Query, emptyReply, ipBytes, put16, replyFlags, writeOpt } from './wire.js';

export type Rec =
  | { readonly type: typeof QTYPE.A | typeof QTYPE.AAAA; readonly ip: string }
  | { readonly type: typeof QTYPE.CNAME | typeof QTYPE.PTR | typeof QTYPE.NS; readonly target: string }
  | { readonly type: typeof QTYPE.SRV; readonly priority: number; readonly weight: number; readonly port: number; readonly target: string }
  | { readonly type: typeof QTYPE.TXT; readonly text: string }
  | { readonly type: typeof QTYPE.SOA; readonly mname: string; readonly rname: string; readonly serial: number; readonly minimum: number };

export interface OwnedRec {
  readonly owner: string;
  readonly ttl: number;
  readonly rec: Rec;
}

export function addressRec(ip: string): Rec {
  return { type: ip.includes(':') ? QTYPE.AAAA : QTYPE.A, ip };
}

export function writeRec(w: MessageWriter, r: OwnedRec): void {
  const { rec } = r;
  const at = w.record(r.owner, rec.type, r.ttl);
  switch (rec.type) {
    case QTYPE.A:
    case QTYPE.AAAA:
      w.bytes(ipBytes(rec.ip)); // encoded once per template, not kept: 10k names stay small
      break;
    case QTYPE.CNAME:
    case QTYPE.PTR:
    case QTYPE.NS:
      w.name(rec.target);
      break;
    case QTYPE.SRV:
      w.u16(rec.priority);
      w.u16(rec.weight);
      w.u16(rec.port);
      w.name(rec.target);
      break;
    case QTYPE.TXT: {
      const b = Buffer.from(rec.text, 'utf8');
      w.u8(b.length);
      w.bytes(b);
      break;
    }
    case QTYPE.SOA:
      w.name(rec.mname);
      w.name(rec.rname);
      w.u32(rec.serial);
      w.u32(7200); // refresh
      w.u32(1800); // retry
      w.u32(86400); // expire
      w.u32(rec.minimum);
      break;
  }
  w.endRecord(at);
}

/** A reply encoded once, served many times. */
export interface Template {
  readonly buf: Buffer;
  readonly rcode: number;
  readonly authoritative: boolean;
  /** Length without the additional section, for a reply that only fits without it. */
  readonly lenWithoutAdditional: number;
  readonly arcount: number;
}

export interface ReplyParts {
  rcode: number;
  authoritative: boolean;
  answer: readonly OwnedRec[];
  authority?: readonly OwnedRec[];
  additional?: readonly OwnedRec[];
}

/** Encodes a reply to `q` (question copied from `query`) without OPT: OPT is per client. */
export function buildTemplate(query: Buffer, q: Query, parts: ReplyParts): Template {
  const w = new MessageWriter(512);
  w.u16(q.id);
  w.u16(replyFlags(q.flags, parts.rcode, parts.authoritative));
  w.u16(1);
  w.u16(parts.answer.length);
  w.u16(parts.authority?.length ?? 0);
  w.u16(parts.additional?.length ?? 0);
  w.bytes(query.subarray(HEADER_LEN, q.questionEnd));
  w.knowName(q.name, HEADER_LEN);
  for (const r of parts.answer) writeRec(w, r);
  for (const r of parts.authority ?? []) writeRec(w, r);
  const lenWithoutAdditional = w.off;
  for (const r of parts.additional ?? []) writeRec(w, r);
  return {
    buf: Buffer.from(w.done()),
    rcode: parts.rcode,
    authoritative: parts.authoritative,
    lenWithoutAdditional,
    arcount: parts.additional?.length ?? 0,
  };
}

/**
 * A copy of `tpl` for this query: its ID, flags and question bytes (so the reply keeps the
 * question's case), our OPT when the client sent one, and within `limit` bytes: first by
 * dropping the additional section, else with as many answer records as fit and TC set, as
 * CoreDNS answers (a headless service of 5000 endpoints does not fit even TCP's 65535 bytes:
 * its client gets 4000-odd addresses, not none); an empty reply with TC when not one fits.
 */
export function serveTemplate(tpl: Template, query: Buffer, q: Query, limit: number): Buffer {
  const opt = q.edns ? OPT_LEN : 0;
  let len = tpl.buf.length;
  let arcount = tpl.arcount;
  if (len + opt > limit) {
    len = tpl.lenWithoutAdditional;
    arcount = 0;
    if (len + opt > limit) return servePartial(tpl, query, q, limit - opt);
  }
  const out = Buffer.allocUnsafe(len + opt);
  // TypedArray#set and a plain loop: Buffer#copy's argument handling costs more than these
  // few dozen bytes.
  out.set(len === tpl.buf.length ? tpl.buf : tpl.buf.subarray(0, len));
  put16(out, 0, q.id);
  put16(out, 2, replyFlags(q.flags, tpl.rcode, tpl.authoritative));
  for (let i = HEADER_LEN, e = q.questionEnd; i < e; i++) out[i] = query[i];
  if (opt) {
    put16(out, 10, arcount + 1);
    writeOpt(out, len);
  } else put16(out, 10, arcount);
  return out;
}

/** `tpl`'s first answer records that fit in `max` bytes (the OPT aside), with TC set; authority
 *  and additional sections left out. */
function servePartial(tpl: Template, query: Buffer, q: Query, max: number): Buffer {
  const buf = tpl.buf;
  let end = skipName(buf, HEADER_LEN) + 4; // the question
  let count = 0;
  for (const ancount = buf.readUInt16BE(6); count < ancount; count++) {
    const rdata = skipName(buf, end) + 10;
    const next = rdata + buf.readUInt16BE(rdata - 2);
    if (next > max) break;
    end = next;
  }
  if (count === 0) return emptyReply(query, q, tpl.rcode, { authoritative: tpl.authoritative, truncated: true });
  const opt = q.edns ? OPT_LEN : 0;
  const out = Buffer.allocUnsafe(end + opt);
  buf.copy(out, 0, 0, end);
  put16(out, 0, q.id);
  put16(out, 2, replyFlags(q.flags, tpl.rcode, tpl.authoritative) | FLAG_TC);
  query.copy(out, HEADER_LEN, HEADER_LEN, q.questionEnd);
  put16(out, 6, count);
  put16(out, 8, 0);
  put16(out, 10, opt ? 1 : 0);
  if (opt) writeOpt(out, end);
  return out;
}

/** The offset after the (possibly compressed) name at `off`, in a message we wrote. */
function skipName(buf: Buffer, off: number): number {
  for (;;) {
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2;
    off += len + 1;
  }
}
