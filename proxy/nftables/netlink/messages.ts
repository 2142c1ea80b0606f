// The operations the proxy sends to nf_tables, encoded the way `nft` 1.0.6 encodes them (flags,
// attribute order; checked byte for byte in messages.test.ts), plus the dump requests and the
// decoders of their replies. Pure: no sockets here.
import {
  NFPROTO_IPV4,
  NFPROTO_IPV6,
  NFPROTO_UNSPEC,
  NFNL_MSG_BATCH_BEGIN,
  NFNL_MSG_BATCH_END,
  NFNL_SUBSYS_NFTABLES,
  NFTA_CHAIN,
  NFTA_DATA,
  NFTA_GEN,
  NFTA_RULE,
  NFTA_SET,
  NFTA_SET_ELEM,
  NFTA_HOOK,
  NFTA_LIST_ELEM,
  NFTA_SET_DESC,
  NFTA_SET_ELEM_LIST,
  NFTA_SET_FIELD_LEN,
  NFTA_TABLE,
  NFTA_VERDICT,
  NFT_CONTINUE,
  NFT_GOTO,
  NFT_JUMP,
  NFT_MSG,
  NFT_RETURN,
  NF_ACCEPT,
  NF_DROP,
  NLA_F_NESTED,
  NLA_HDRLEN,
  NLA_MAX_LEN,
  NLM_F_ACK,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_REQUEST,
  NLMSG_HDRLEN,
  NFGENMSG_LEN,
  attr,
  attrNest,
  attrStr,
  attrU32,
  attrU64,
  nfAttrs,
  nfMessage,
  nftType,
  parseAttrList,
  parseAttrs,
  putAttrHeader,
  readStr,
  readU32,
  readU64,
  type NlMessage,
} from './wire.js';

export type NftFamily = 'ip' | 'ip6';
export type Verdict = { code: 'accept' | 'drop' | 'continue' | 'return' } | { code: 'jump' | 'goto'; chain: string };

export interface SetElement {
  key: Uint8Array;
  /** Data of a map element (the concatenation of its fields, see values.ts). */
  data?: Uint8Array;
  /** Data of a verdict-map element. */
  verdict?: Verdict;
  /** Only for sets declared with `flags timeout`. */
  timeoutMs?: number;
  /** NFTA_SET_ELEM_FLAGS, e.g. NFT_SET_ELEM_INTERVAL_END for the closing element of an interval. */
  flags?: number;
  /** The last key of a range, in a set of concatenated intervals (`flags interval` on a
   *  concatenation: the kernel's pipapo set takes key and key end in one element). */
  keyEnd?: Uint8Array;
}

/** What NFT_MSG_NEWSET declares. The kernel keeps `userdata` opaque: it is nft's own note of how
 *  to print the set (key byte order, `typeof` expressions), see set-declarations.ts. */
export interface SetSpec {
  name: string;
  /** NFTA_SET_ID: how messages of the same transaction name an anonymous set (`__map%d`). */
  id?: number;
  flags: number;
  keyType: number;
  keyLen: number;
  dataType?: number;
  dataLen?: number;
  /** Lengths of the fields of a concatenated key (NFTA_SET_DESC_CONCAT; needed with `flags interval`). */
  fieldLens?: readonly number[];
  /** NFTA_SET_DESC_SIZE. */
  size?: number;
  timeoutMs?: number;
  userdata?: Uint8Array;
}

/** A base chain's hook (`type nat hook prerouting priority dstnat ; policy accept ;`). */
export interface ChainHook {
  type: 'filter' | 'nat';
  hooknum: number;
  priority: number;
  policy: 'accept' | 'drop';
}

export type Op =
  | { op: 'newtable'; family: NftFamily; table: string }
  | { op: 'deltable'; family: NftFamily; table: string }
  | { op: 'newset'; family: NftFamily; table: string; set: SetSpec }
  | { op: 'delset'; family: NftFamily; table: string; set: string }
  | { op: 'newsetelem'; family: NftFamily; table: string; set: string; setId?: number; elements: readonly SetElement[] }
  | { op: 'delsetelem'; family: NftFamily; table: string; set: string; elements: readonly SetElement[] }
  /** Elements already encoded into one message's list (ElementListBuilder): a bulk load. */
  | { op: 'newsetelem-list'; family: NftFamily; table: string; set: string; list: EncodedElementList }
  | { op: 'flushset'; family: NftFamily; table: string; set: string }
  | { op: 'newchain'; family: NftFamily; table: string; chain: string; hook?: ChainHook }
  | { op: 'flushchain'; family: NftFamily; table: string; chain: string }
  /** Every rule of every chain of the table (`nft flush table`: sets keep their elements). */
  | { op: 'flushrules'; family: NftFamily; table: string }
  | { op: 'delchain'; family: NftFamily; table: string; chain: string }
  | { op: 'newrule'; family: NftFamily; table: string; chain: string; expressions: Uint8Array }
  | { op: 'delrule'; family: NftFamily; table: string; chain: string; handle: bigint };

export function familyNumber(f: NftFamily): number {
  return f === 'ip' ? NFPROTO_IPV4 : NFPROTO_IPV6;
}

export function familyName(n: number): NftFamily | undefined {
  return n === NFPROTO_IPV4 ? 'ip' : n === NFPROTO_IPV6 ? 'ip6' : undefined;
}

const VERDICT_CODES: Record<Verdict['code'], number> = {
  accept: NF_ACCEPT,
  drop: NF_DROP,
  continue: NFT_CONTINUE,
  return: NFT_RETURN,
  jump: NFT_JUMP,
  goto: NFT_GOTO,
};

/** NFTA_DATA_VERDICT { CODE, CHAIN } — the same layout in set elements and immediate. */
export function verdictAttr(type: number, v: Verdict): Buffer {
  const inner = [attrU32(NFTA_VERDICT.CODE, VERDICT_CODES[v.code])];
  if (v.code === 'jump' || v.code === 'goto') inner.push(attrStr(NFTA_VERDICT.CHAIN, v.chain));
  return attrNest(type, [attrNest(NFTA_DATA.VERDICT, inner)]);
}

export function decodeVerdict(b: Buffer): Verdict {
  const a = parseAttrs(b);
  const code = a.get(NFTA_VERDICT.CODE)?.readInt32BE(0);
  const chain = readStr(a.get(NFTA_VERDICT.CHAIN));
  switch (code) {
    case NF_ACCEPT:
      return { code: 'accept' };
    case NF_DROP:
      return { code: 'drop' };
    case NFT_CONTINUE:
      return { code: 'continue' };
    case NFT_RETURN:
      return { code: 'return' };
    case NFT_JUMP:
    case NFT_GOTO:
      if (chain === undefined) throw new Error(`verdict ${code === NFT_JUMP ? 'jump' : 'goto'} without a chain`);
      return { code: code === NFT_JUMP ? 'jump' : 'goto', chain };
    default:
      throw new Error(`unsupported verdict code ${code}`);
  }
}

function verdictText(v: Verdict): string {
  return v.code === 'jump' || v.code === 'goto' ? `${v.code} ${v.chain}` : v.code;
}

// Element lists are the bulk of what the proxy sends (100k+ elements), so an element is sized
// arithmetically and written in place instead of being built from attribute buffers.

const pad4 = (n: number) => (n + 3) & ~3;

function verdictChainBytes(v: Verdict | undefined): number {
  return v && (v.code === 'jump' || v.code === 'goto') ? Buffer.byteLength(v.chain) + 1 : 0;
}

/** Bytes of one NFTA_LIST_ELEM of NFTA_SET_ELEM_LIST_ELEMENTS, header included. */
function elementSize(e: SetElement, keyOnly: boolean): number {
  let n = NLA_HDRLEN;
  if (e.flags) n += 8;
  if (!keyOnly && e.timeoutMs !== undefined) n += 12;
  n += 2 * NLA_HDRLEN + pad4(e.key.length);
  if (e.keyEnd) n += 2 * NLA_HDRLEN + pad4(e.keyEnd.length);
  if (!keyOnly) {
    if (e.data && e.verdict) throw new Error('a set element has data or a verdict, not both');
    if (e.data) n += 2 * NLA_HDRLEN + pad4(e.data.length);
    if (e.verdict) {
      const chain = verdictChainBytes(e.verdict);
      n += 2 * NLA_HDRLEN + 8 + (chain ? NLA_HDRLEN + pad4(chain) : 0);
    }
  }
  return n;
}

/** Writes one element at `off` of a zero-filled buffer; returns the offset after it. nft numbers
 *  the list entries 1, 2, … in the attribute type (the kernel ignores it); `index` keeps that,
 *  so the bytes match nft's. Order as nft: flags, timeout, key, data. */
function writeElement(b: Buffer, off: number, index: number, e: SetElement, keyOnly: boolean, size: number): number {
  const start = off;
  off = putAttrHeader(b, off, size, index | NLA_F_NESTED);
  if (e.flags) {
    off = putAttrHeader(b, off, 8, NFTA_SET_ELEM.FLAGS);
    off = b.writeUInt32BE(e.flags >>> 0, off);
  }
  if (!keyOnly && e.timeoutMs !== undefined) {
    off = putAttrHeader(b, off, 12, NFTA_SET_ELEM.TIMEOUT);
    off = b.writeBigUInt64BE(BigInt(Math.max(0, Math.round(e.timeoutMs))), off);
  }
  const value = (type: number, v: Uint8Array) => {
    off = putAttrHeader(b, off, 2 * NLA_HDRLEN + pad4(v.length), type | NLA_F_NESTED); // a nest's length counts its padding
    off = putAttrHeader(b, off, NLA_HDRLEN + v.length, NFTA_DATA.VALUE);
    b.set(v, off);
    off += pad4(v.length);
  };
  value(NFTA_SET_ELEM.KEY, e.key);
  if (e.keyEnd) value(NFTA_SET_ELEM.KEY_END, e.keyEnd);
  if (!keyOnly && e.data) value(NFTA_SET_ELEM.DATA, e.data);
  if (!keyOnly && e.verdict) {
    const chain = verdictChainBytes(e.verdict);
    const verdictLen = NLA_HDRLEN + 8 + (chain ? NLA_HDRLEN + pad4(chain) : 0);
    off = putAttrHeader(b, off, NLA_HDRLEN + verdictLen, NFTA_SET_ELEM.DATA | NLA_F_NESTED);
    off = putAttrHeader(b, off, verdictLen, NFTA_DATA.VERDICT | NLA_F_NESTED);
    off = putAttrHeader(b, off, 8, NFTA_VERDICT.CODE);
    off = b.writeInt32BE(VERDICT_CODES[e.verdict.code], off);
    if (chain) {
      off = putAttrHeader(b, off, NLA_HDRLEN + chain, NFTA_VERDICT.CHAIN);
      b.write((e.verdict as { chain: string }).chain, off, 'utf8');
      off += pad4(chain);
    }
  }
  if (off - start !== size) throw new Error(`internal: set element encoded as ${off - start} bytes, sized ${size}`);
  return off;
}

/** Largest payload of NFTA_SET_ELEM_LIST_ELEMENTS: nla_len is a u16. */
const MAX_ELEMENTS_PAYLOAD = NLA_MAX_LEN - NLA_HDRLEN;

/** How an element op is cut into messages: [first, end) element indexes and the list's bytes. */
function elementChunks(op: Extract<Op, { elements: readonly SetElement[] }>): { sizes: number[]; chunks: { start: number; end: number; bytes: number }[] } {
  const keyOnly = op.op === 'delsetelem';
  const sizes = op.elements.map((e) => elementSize(e, keyOnly));
  const chunks: { start: number; end: number; bytes: number }[] = [];
  let start = 0;
  let bytes = 0;
  sizes.forEach((n, i) => {
    if (n > MAX_ELEMENTS_PAYLOAD) throw new Error(`${describeOp(op)}: one element is ${n} bytes, too long for a netlink attribute`);
    if (bytes + n > MAX_ELEMENTS_PAYLOAD) {
      chunks.push({ start, end: i, bytes });
      start = i;
      bytes = 0;
    }
    bytes += n;
  });
  chunks.push({ start, end: sizes.length, bytes });
  return { sizes, chunks };
}

function elementHead(op: Extract<Op, { set: string }>): Buffer[] {
  const head = [attrStr(NFTA_SET_ELEM_LIST.TABLE, op.table), attrStr(NFTA_SET_ELEM_LIST.SET, op.set)];
  if (op.op === 'newsetelem' && op.setId !== undefined) head.push(attrU32(NFTA_SET_ELEM_LIST.SET_ID, op.setId));
  return head;
}

/** NFTA_SET_ELEM_LIST_ELEMENTS of one message, written by ElementListBuilder. */
export interface EncodedElementList {
  readonly attr: Buffer;
  readonly count: number;
}

/**
 * Writes elements straight into message-sized lists as they come, so a bulk load keeps no
 * object per element (a million of them at 100k services, each with its key and data arrays,
 * lived until the whole batch was sent). `add` reads its element at once: a caller may pass the
 * same object each time with new contents.
 */
export class ElementListBuilder {
  private readonly buf: Buffer;
  private off = NLA_HDRLEN;
  private count = 0;

  /** `maxBytes`: of each list, at most what one attribute holds (less for a small batch). */
  constructor(maxBytes = NLA_HDRLEN + MAX_ELEMENTS_PAYLOAD) {
    this.buf = Buffer.alloc(Math.min(maxBytes, NLA_HDRLEN + MAX_ELEMENTS_PAYLOAD));
  }

  /** Adds `e`; returns the list it did not fit in any more, when it started a new one. */
  add(e: SetElement): EncodedElementList | undefined {
    const n = elementSize(e, false);
    if (NLA_HDRLEN + n > this.buf.length) throw new Error(`one set element is ${n} bytes, more than a list of ${this.buf.length}`);
    const full = this.off + n > this.buf.length ? this.finish() : undefined;
    this.off = writeElement(this.buf, this.off, ++this.count, e, false, n);
    return full;
  }

  /** The list so far (undefined when empty); the builder starts a new one. */
  finish(): EncodedElementList | undefined {
    if (this.count === 0) return undefined;
    const attr = Buffer.from(this.buf.subarray(0, this.off));
    putAttrHeader(attr, 0, attr.length, NFTA_SET_ELEM_LIST.ELEMENTS | NLA_F_NESTED);
    const out = { attr, count: this.count };
    this.buf.fill(0, 0, this.off); // writeElement leaves padding as it finds it
    this.off = NLA_HDRLEN;
    this.count = 0;
    return out;
  }
}

function setAttrs(table: string, s: SetSpec): Buffer[] {
  const a = [attrStr(NFTA_SET.TABLE, table), attrStr(NFTA_SET.NAME, s.name)];
  if (s.flags) a.push(attrU32(NFTA_SET.FLAGS, s.flags));
  a.push(attrU32(NFTA_SET.KEY_TYPE, s.keyType), attrU32(NFTA_SET.KEY_LEN, s.keyLen));
  if (s.dataType !== undefined) a.push(attrU32(NFTA_SET.DATA_TYPE, s.dataType), attrU32(NFTA_SET.DATA_LEN, s.dataLen ?? 0));
  const desc: Buffer[] = [];
  if (s.size !== undefined) desc.push(attrU32(NFTA_SET_DESC.SIZE, s.size));
  if (s.fieldLens?.length) desc.push(attrNest(NFTA_SET_DESC.CONCAT, s.fieldLens.map((n) => attrNest(NFTA_LIST_ELEM, [attrU32(NFTA_SET_FIELD_LEN, n)]))));
  if (desc.length) a.push(attrNest(NFTA_SET.DESC, desc));
  if (s.id !== undefined) a.push(attrU32(NFTA_SET.ID, s.id));
  if (s.timeoutMs !== undefined) a.push(attrU64(NFTA_SET.TIMEOUT, BigInt(s.timeoutMs)));
  if (s.userdata) a.push(attr(NFTA_SET.USERDATA, s.userdata));
  return a;
}

const NF_POLICY = { drop: NF_DROP, accept: NF_ACCEPT } as const;

interface MessageSpec {
  type: number;
  flags: number;
  family: number;
  attrs: Buffer[];
}

/** The netlink messages of one op: an element op is split so each message's element list fits
 *  in one attribute (as nft does for large element lists). */
function opMessages(op: Op): MessageSpec[] {
  const family = familyNumber(op.family);
  const T = (m: number) => nftType(m);
  switch (op.op) {
    case 'newsetelem':
    case 'delsetelem': {
      if (op.elements.length === 0) throw new Error(`${describeOp(op)}: no elements (flushset empties a set)`);
      const keyOnly = op.op === 'delsetelem';
      const head = elementHead(op);
      const { sizes, chunks } = elementChunks(op);
      return chunks.map(({ start, end, bytes }) => {
        const list = Buffer.alloc(NLA_HDRLEN + bytes);
        let off = putAttrHeader(list, 0, list.length, NFTA_SET_ELEM_LIST.ELEMENTS | NLA_F_NESTED);
        for (let i = start; i < end; i++) off = writeElement(list, off, i - start + 1, op.elements[i]!, keyOnly, sizes[i]!);
        return {
          type: T(op.op === 'newsetelem' ? NFT_MSG.NEWSETELEM : NFT_MSG.DELSETELEM),
          flags: op.op === 'newsetelem' ? NLM_F_CREATE : 0,
          family,
          attrs: [...head, list],
        };
      });
    }
    case 'newsetelem-list':
      return [{ type: T(NFT_MSG.NEWSETELEM), flags: NLM_F_CREATE, family, attrs: [...elementHead(op), op.list.attr] }];
    case 'flushset':
      // nft puts the set name before the table here.
      return [{ type: T(NFT_MSG.DELSETELEM), flags: 0, family, attrs: [attrStr(NFTA_SET_ELEM_LIST.SET, op.set), attrStr(NFTA_SET_ELEM_LIST.TABLE, op.table)] }];
    case 'newtable':
      return [{ type: T(NFT_MSG.NEWTABLE), flags: NLM_F_CREATE, family, attrs: [attrStr(NFTA_TABLE.NAME, op.table)] }];
    case 'deltable':
      return [{ type: T(NFT_MSG.DELTABLE), flags: 0, family, attrs: [attrStr(NFTA_TABLE.NAME, op.table)] }];
    case 'newset':
      return [{ type: T(NFT_MSG.NEWSET), flags: NLM_F_CREATE, family, attrs: setAttrs(op.table, op.set) }];
    case 'delset':
      return [{ type: T(NFT_MSG.DELSET), flags: 0, family, attrs: [attrStr(NFTA_SET.TABLE, op.table), attrStr(NFTA_SET.NAME, op.set)] }];
    case 'newchain': {
      const attrs = [attrStr(NFTA_CHAIN.TABLE, op.table), attrStr(NFTA_CHAIN.NAME, op.chain)];
      if (op.hook) {
        const h = op.hook;
        const prio = Buffer.alloc(4);
        prio.writeInt32BE(h.priority);
        attrs.push(
          attrNest(NFTA_CHAIN.HOOK, [attrU32(NFTA_HOOK.HOOKNUM, h.hooknum), attr(NFTA_HOOK.PRIORITY, prio)]),
          attrU32(NFTA_CHAIN.POLICY, NF_POLICY[h.policy]),
          attrStr(NFTA_CHAIN.TYPE, h.type),
        );
      }
      return [{ type: T(NFT_MSG.NEWCHAIN), flags: NLM_F_CREATE, family, attrs }];
    }
    case 'flushchain':
      return [{ type: T(NFT_MSG.DELRULE), flags: 0, family, attrs: [attrStr(NFTA_RULE.TABLE, op.table), attrStr(NFTA_RULE.CHAIN, op.chain)] }];
    case 'flushrules':
      return [{ type: T(NFT_MSG.DELRULE), flags: 0, family, attrs: [attrStr(NFTA_RULE.TABLE, op.table)] }];
    case 'delchain':
      return [{ type: T(NFT_MSG.DELCHAIN), flags: 0, family, attrs: [attrStr(NFTA_CHAIN.TABLE, op.table), attrStr(NFTA_CHAIN.NAME, op.chain)] }];
    case 'newrule':
      return [
        {
          type: T(NFT_MSG.NEWRULE),
          flags: NLM_F_CREATE | NLM_F_APPEND,
          family,
          attrs: [attrStr(NFTA_RULE.TABLE, op.table), attrStr(NFTA_RULE.CHAIN, op.chain), attr(NFTA_RULE.EXPRESSIONS | NLA_F_NESTED, op.expressions)],
        },
      ];
    case 'delrule':
      return [{ type: T(NFT_MSG.DELRULE), flags: 0, family, attrs: [attrStr(NFTA_RULE.TABLE, op.table), attrStr(NFTA_RULE.CHAIN, op.chain), attrU64(NFTA_RULE.HANDLE, op.handle)] }];
  }
}

function batchMarker(type: number, seq: number): Buffer {
  return nfMessage({ type, flags: NLM_F_REQUEST, seq }, NFPROTO_UNSPEC, NFNL_SUBSYS_NFTABLES, []);
}

/** Bytes of BATCH_BEGIN + BATCH_END. */
export const BATCH_OVERHEAD = 2 * (NLMSG_HDRLEN + NFGENMSG_LEN);

export interface EncodedBatch {
  buffer: Buffer;
  /** seqs[i]: the sequence number of op i's first message; op i owns seqs[i] … seqs[i+1]-1. */
  seqs: number[];
  beginSeq: number;
  endSeq: number;
}

/**
 * One transaction: BATCH_BEGIN, every op (NLM_F_REQUEST|NLM_F_ACK, plus what nft sets: CREATE for
 * new chains and elements, CREATE|APPEND for rules), BATCH_END. Every op message is acknowledged,
 * so a caller knows the kernel has answered all of it; the kernel applies all or nothing.
 */
export function encodeBatch(ops: readonly Op[], firstSeq: number): EncodedBatch {
  const parts: Buffer[] = [batchMarker(NFNL_MSG_BATCH_BEGIN, firstSeq)];
  const seqs: number[] = [];
  let seq = firstSeq + 1;
  const messages = ops.map(opMessages);
  for (let i = 0; i < ops.length; i++) {
    seqs.push(seq);
    const ms = messages[i]!;
    for (let j = 0; j < ms.length; j++) {
      const m = ms[j]!;
      // Only the last message asks for an ACK: the kernel reports every failing message anyway,
      // all of them before that ACK, so it says the batch was processed. An ACK per message is
      // one reply per rule in a large load (tens of thousands with affinity chains), which
      // overflowed the receive buffer.
      const ack = i === ops.length - 1 && j === ms.length - 1 ? NLM_F_ACK : 0;
      parts.push(nfMessage({ type: m.type, flags: NLM_F_REQUEST | ack | m.flags, seq: seq++ }, m.family, 0, m.attrs));
    }
  }
  parts.push(batchMarker(NFNL_MSG_BATCH_END, seq));
  return { buffer: Buffer.concat(parts), seqs, beginSeq: firstSeq, endSeq: seq };
}

/** Bytes `op` adds to a batch. */
export function encodedSize(op: Op): number {
  if (op.op === 'newsetelem' || op.op === 'delsetelem') {
    const headBytes = NLMSG_HDRLEN + NFGENMSG_LEN + elementHead(op).reduce((k, a) => k + a.length, 0) + NLA_HDRLEN;
    if (op.elements.length === 0) return headBytes;
    return elementChunks(op).chunks.reduce((n, c) => n + headBytes + c.bytes, 0);
  }
  return opMessages(op).reduce((n, m) => n + NLMSG_HDRLEN + NFGENMSG_LEN + m.attrs.reduce((k, a) => k + a.length, 0), 0);
}

/** Number of netlink messages (sequence numbers) `op` takes. */
export function messageCount(op: Op): number {
  return op.op === 'newsetelem' || op.op === 'delsetelem' ? elementChunks(op).chunks.length : 1;
}

/**
 * Splits ops into batches of at most `maxBytes` each (BATCH_BEGIN/END included), cutting large
 * element ops into several; op order is kept. Each batch is atomic, the sequence is not: use it
 * only for changes that are correct at every cut (adding elements before the rules that use them).
 */
export function splitOps(ops: readonly Op[], maxBytes: number): Op[][] {
  const out: Op[][] = [];
  let cur: Op[] = [];
  let size = BATCH_OVERHEAD;
  const close = () => {
    if (cur.length > 0) out.push(cur);
    cur = [];
    size = BATCH_OVERHEAD;
  };
  for (const op of ops) {
    if (op.op !== 'newsetelem' && op.op !== 'delsetelem') {
      const n = encodedSize(op);
      if (size + n > maxBytes) close();
      if (BATCH_OVERHEAD + n > maxBytes) throw new Error(`${describeOp(op)}: ${n} bytes do not fit in a ${maxBytes}-byte batch`);
      cur.push(op);
      size += n;
      continue;
    }
    // Element by element, counting the header of every message the element list is cut into.
    const keyOnly = op.op === 'delsetelem';
    const msgOverhead = NLMSG_HDRLEN + NFGENMSG_LEN + elementHead(op).reduce((k, a) => k + a.length, 0) + NLA_HDRLEN;
    let slice: SetElement[] = [];
    let payload = 0; // of the current message's element list; 0: no message open
    const closeSlice = () => {
      if (slice.length > 0) cur.push({ ...op, elements: slice });
      slice = [];
      payload = 0;
    };
    for (const e of op.elements) {
      const n = elementSize(e, keyOnly);
      if (BATCH_OVERHEAD + msgOverhead + n > maxBytes || n > MAX_ELEMENTS_PAYLOAD) throw new Error(`${describeOp(op)}: one element does not fit in a ${maxBytes}-byte batch`);
      let cost = payload > 0 && payload + n <= MAX_ELEMENTS_PAYLOAD ? n : msgOverhead + n;
      if (size + cost > maxBytes) {
        closeSlice();
        close();
        cost = msgOverhead + n;
      }
      payload = cost === n ? payload + n : n;
      slice.push(e);
      size += cost;
    }
    closeSlice();
  }
  close();
  return out;
}

/** "add element ip kube-dataplane service-ips (3 elements)", for error messages and logs. */
export function describeOp(op: Op): string {
  const n = (k: number) => `${k} element${k === 1 ? '' : 's'}`;
  switch (op.op) {
    case 'newtable':
      return `add table ${op.family} ${op.table}`;
    case 'deltable':
      return `delete table ${op.family} ${op.table}`;
    case 'newset':
      return `add set ${op.family} ${op.table} ${op.set.name}`;
    case 'delset':
      return `delete set ${op.family} ${op.table} ${op.set}`;
    case 'newsetelem':
      return `add element ${op.family} ${op.table} ${op.set} (${n(op.elements.length)})`;
    case 'newsetelem-list':
      return `add element ${op.family} ${op.table} ${op.set} (${n(op.list.count)})`;
    case 'delsetelem':
      return `delete element ${op.family} ${op.table} ${op.set} (${n(op.elements.length)})`;
    case 'flushset':
      return `flush set ${op.family} ${op.table} ${op.set}`;
    case 'newchain':
      return `add chain ${op.family} ${op.table} ${op.chain}`;
    case 'flushchain':
      return `flush chain ${op.family} ${op.table} ${op.chain}`;
    case 'flushrules':
      return `flush table ${op.family} ${op.table}`;
    case 'delchain':
      return `delete chain ${op.family} ${op.table} ${op.chain}`;
    case 'newrule':
      return `add rule ${op.family} ${op.table} ${op.chain} (${op.expressions.length} bytes of expressions)`;
    case 'delrule':
      return `delete rule ${op.family} ${op.table} ${op.chain} handle ${op.handle}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Requests that read

/** NFT_MSG_GETGEN: answered by NFT_MSG_NEWGEN, then the ACK. */
export function encodeGetGen(seq: number): Buffer {
  return nfMessage({ type: nftType(NFT_MSG.GETGEN), flags: NLM_F_REQUEST | NLM_F_ACK, seq }, NFPROTO_UNSPEC, 0, []);
}

/** NFT_MSG_GETTABLE of one table: NEWTABLE then ACK, or ENOENT. */
export function encodeGetTable(family: NftFamily, table: string, seq: number): Buffer {
  return nfMessage({ type: nftType(NFT_MSG.GETTABLE), flags: NLM_F_REQUEST | NLM_F_ACK, seq }, familyNumber(family), 0, [attrStr(NFTA_TABLE.NAME, table)]);
}

/** A dump of chains, sets or rules of one table (chains: the kernel filters by family only, so
 *  callers filter by table too), or of the elements of one set. Ends with NLMSG_DONE. */
export function encodeDump(
  what: { kind: 'chains' | 'sets' | 'rules'; family: NftFamily; table: string } | { kind: 'elements'; family: NftFamily; table: string; set: string },
  seq: number,
): Buffer {
  const fam = familyNumber(what.family);
  const h = (m: number) => ({ type: nftType(m), flags: NLM_F_REQUEST | NLM_F_DUMP, seq });
  switch (what.kind) {
    case 'chains':
      return nfMessage(h(NFT_MSG.GETCHAIN), fam, 0, [attrStr(NFTA_CHAIN.TABLE, what.table)]);
    case 'sets':
      return nfMessage(h(NFT_MSG.GETSET), fam, 0, [attrStr(NFTA_SET.TABLE, what.table)]);
    case 'rules':
      return nfMessage(h(NFT_MSG.GETRULE), fam, 0, [attrStr(NFTA_RULE.TABLE, what.table)]);
    case 'elements':
      return nfMessage(h(NFT_MSG.GETSETELEM), fam, 0, [attrStr(NFTA_SET_ELEM_LIST.TABLE, what.table), attrStr(NFTA_SET_ELEM_LIST.SET, what.set)]);
  }
}

export function decodeGen(msg: NlMessage): number {
  const id = readU32(nfAttrs(msg).attrs.get(NFTA_GEN.ID));
  if (id === undefined) throw new Error('NEWGEN without NFTA_GEN_ID');
  return id;
}

export interface ChainInfo {
  family: NftFamily | undefined;
  table: string;
  name: string;
  handle: bigint;
  /** Present for base chains. */
  hook?: { hooknum: number; priority: number };
  type?: string;
}

export function decodeChain(msg: NlMessage): ChainInfo {
  const { family, attrs } = nfAttrs(msg);
  const hook = attrs.get(NFTA_CHAIN.HOOK);
  const info: ChainInfo = {
    family: familyName(family),
    table: readStr(attrs.get(NFTA_CHAIN.TABLE)) ?? '',
    name: readStr(attrs.get(NFTA_CHAIN.NAME)) ?? '',
    handle: readU64(attrs.get(NFTA_CHAIN.HANDLE)) ?? 0n,
  };
  if (hook) {
    const h = parseAttrs(hook);
    info.hook = { hooknum: readU32(h.get(1)) ?? 0, priority: h.get(2)?.readInt32BE(0) ?? 0 };
  }
  const type = readStr(attrs.get(NFTA_CHAIN.TYPE));
  if (type !== undefined) info.type = type;
  return info;
}

export interface SetInfo {
  family: NftFamily | undefined;
  table: string;
  name: string;
  handle: bigint;
  flags: number;
  keyType: number;
  keyLen: number;
  /** Maps only; NFT_DATA_VERDICT (0xffffff00) for verdict maps. */
  dataType?: number;
  dataLen?: number;
  timeoutMs?: number;
  /** Elements in the set (NFTA_SET_COUNT, kernels since 6.x report it). */
  count?: number;
}

const NFTA_SET_COUNT = 20;

export function decodeSet(msg: NlMessage): SetInfo {
  const { family, attrs } = nfAttrs(msg);
  const info: SetInfo = {
    family: familyName(family),
    table: readStr(attrs.get(NFTA_SET.TABLE)) ?? '',
    name: readStr(attrs.get(NFTA_SET.NAME)) ?? '',
    handle: readU64(attrs.get(NFTA_SET.HANDLE)) ?? 0n,
    flags: readU32(attrs.get(NFTA_SET.FLAGS)) ?? 0,
    keyType: readU32(attrs.get(NFTA_SET.KEY_TYPE)) ?? 0,
    keyLen: readU32(attrs.get(NFTA_SET.KEY_LEN)) ?? 0,
  };
  const dataType = readU32(attrs.get(NFTA_SET.DATA_TYPE));
  if (dataType !== undefined) info.dataType = dataType;
  const dataLen = readU32(attrs.get(NFTA_SET.DATA_LEN));
  if (dataLen !== undefined) info.dataLen = dataLen;
  const timeout = readU64(attrs.get(NFTA_SET.TIMEOUT));
  if (timeout !== undefined) info.timeoutMs = Number(timeout);
  const count = readU32(attrs.get(NFTA_SET_COUNT));
  if (count !== undefined) info.count = count;
  return info;
}

export interface RuleInfo {
  family: NftFamily | undefined;
  table: string;
  chain: string;
  handle: bigint;
  /** The NFTA_RULE_EXPRESSIONS payload, as `newrule` takes it. */
  expressions: Buffer;
}

export function decodeRule(msg: NlMessage): RuleInfo {
  const { family, attrs } = nfAttrs(msg);
  return {
    family: familyName(family),
    table: readStr(attrs.get(NFTA_RULE.TABLE)) ?? '',
    chain: readStr(attrs.get(NFTA_RULE.CHAIN)) ?? '',
    handle: readU64(attrs.get(NFTA_RULE.HANDLE)) ?? 0n,
    // A copy: the datagram it points into is otherwise kept alive by every rule read.
    expressions: Buffer.from(attrs.get(NFTA_RULE.EXPRESSIONS) ?? Buffer.alloc(0)),
  };
}

export interface DumpedSetElement extends SetElement {
  /** Time left before the element expires, for elements with a timeout. */
  expirationMs?: number;
}

export interface SetElementsReply {
  table: string;
  set: string;
  elements: DumpedSetElement[];
}

function dataValue(b: Buffer | undefined): Buffer | undefined {
  return b ? parseAttrs(b).get(NFTA_DATA.VALUE) : undefined;
}

/** One NEWSETELEM message of a GETSETELEM dump (each carries a slice of the set). */
export function decodeSetElems(msg: NlMessage): SetElementsReply {
  const { attrs } = nfAttrs(msg);
  const elements: DumpedSetElement[] = [];
  const list = attrs.get(NFTA_SET_ELEM_LIST.ELEMENTS);
  for (const item of list ? parseAttrList(list) : []) {
    const a = parseAttrs(item.value);
    const key = dataValue(a.get(NFTA_SET_ELEM.KEY));
    if (!key) throw new Error('set element without a key');
    const e: DumpedSetElement = { key: Uint8Array.from(key) };
    const keyEnd = dataValue(a.get(NFTA_SET_ELEM.KEY_END));
    if (keyEnd) e.keyEnd = Uint8Array.from(keyEnd);
    const data = a.get(NFTA_SET_ELEM.DATA);
    if (data) {
      const d = parseAttrs(data);
      const verdict = d.get(NFTA_DATA.VERDICT);
      if (verdict) e.verdict = decodeVerdict(verdict);
      const value = d.get(NFTA_DATA.VALUE);
      if (value) e.data = Uint8Array.from(value);
    }
    const flags = readU32(a.get(NFTA_SET_ELEM.FLAGS));
    if (flags) e.flags = flags;
    const timeout = readU64(a.get(NFTA_SET_ELEM.TIMEOUT));
    if (timeout !== undefined) e.timeoutMs = Number(timeout);
    const expiration = readU64(a.get(NFTA_SET_ELEM.EXPIRATION));
    if (expiration !== undefined) e.expirationMs = Number(expiration);
    elements.push(e);
  }
  return { table: readStr(attrs.get(NFTA_SET_ELEM_LIST.TABLE)) ?? '', set: readStr(attrs.get(NFTA_SET_ELEM_LIST.SET)) ?? '', elements };
}

/** Text of a verdict, as nft writes it. */
export { verdictText };
