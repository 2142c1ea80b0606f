// The answers the main thread has given, in one SharedArrayBuffer that every DNS worker thread
// reads: a worker answers a question found here itself, and hands any other to the main thread,
// which owns the catalog, the zone, the cache and the forwarders and publishes what it answered.
// So the zone is held once, however many threads serve it.
//
// One writer (the main thread), many readers. Entries are appended to an arena and never
// changed; a bucket's head is set with Atomics.store after the entry's bytes are written, and
// read with Atomics.load, so a reader that sees an entry sees all of it. When the arena is full
// (or a reload changes the configuration) the writer empties the table: the epoch is odd while
// it does, and a reader that saw the epoch change while it read throws its reply away (a seqlock).
//
// An entry is valid while its dependency has the version it was published at: a catalog change
// bumps the versions of the services it names and of ZONE_WIDE (negative answers, reverse names,
// the apex, pods), so a change costs a few atomic increments, never a walk over the table.
// Forwarded answers carry their expiry instead, and are served with their TTLs counted down.
import { serveAnswer, type Answer } from '../cache.js';
import { serveTemplate, type Template } from '../records.js';
import { HEADER_LEN, type Query } from '../wire.js';

/** Dependency of an answer no catalog change alters (a forwarded name outside every zone). */
export const NO_CATALOG = 0;
/** Dependency of an answer any catalog change may alter. */
export const ZONE_WIDE = 1;
const DEP_SLOTS = 1 << 16;
const BUCKETS = 1 << 16;

// Header words.
const EPOCH = 0;
const TOP = 1;
const HEADER_WORDS = 16;
const DEPS_AT = HEADER_WORDS * 4;
const BUCKETS_AT = DEPS_AT + DEP_SLOTS * 4;
const ARENA_AT = BUCKETS_AT + BUCKETS * 4;

// Entry layout (little endian), 8-aligned.
const E_NEXT = 0;
const E_HASH = 4;
const E_DEP = 8;
const E_DEPVER = 12;
const E_EXPIRES = 16;
const E_RECEIVED = 24;
const E_KEYLEN = 32;
const E_BUFLEN = 34;
const E_TTLS = 36;
const E_A = 38; // template: length without additional; answer: question end
const E_B = 40; // template: additional count; answer: upstream flags
const E_KIND = 42;
const E_PLUGIN = 43;
const E_FLAGS = 44;
const E_RCODE = 45;
const E_KEY = 48;

const KIND_TEMPLATE = 1;
const KIND_ANSWER = 2;

/** Entry flags. */
export const ENTRY_CLUSTER = 1;
const ENTRY_AUTHORITATIVE = 2;
export const ENTRY_LOADBALANCE = 4;
export const ENTRY_DENIAL = 8;

/** The longest key: route (2), flags (1), a name (255), type and class (4). */
export const MAX_KEY = 262;
/** Larger replies are not published; the main thread answers them. */
export const MAX_PUBLISHED = 4096;

export const DEFAULT_TABLE_BYTES = 16 << 20;

/** A service's dependency slot, from its catalog key (`namespace/name`). */
export function serviceDependency(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return 2 + ((h >>> 0) % (DEP_SLOTS - 2));
}

/**
 * The table's key of a question on a route: the route, DO and CD, the name in lower case as on
 * the wire, its type and class. Written into `out`; returns its length.
 */
export function questionKey(msg: Buffer, q: Query, route: number, out: Uint8Array): number {
  out[0] = route & 0xff;
  out[1] = route >>> 8;
  out[2] = (q.edns?.dnssecOk ? 1 : 0) | (q.flags & 0x10 ? 2 : 0);
  let n = 3;
  const nameEnd = HEADER_LEN + q.nameWireLen;
  for (let i = HEADER_LEN; i < nameEnd; i++) {
    const c = msg[i];
    out[n++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c; // length bytes are < 64: never letters
  }
  for (let i = nameEnd; i < q.questionEnd; i++) out[n++] = msg[i];
  return n;
}

export function keyHash(key: Uint8Array, len: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < len; i++) h = Math.imul(h ^ key[i], 0x01000193);
  return h >>> 0;
}

/** What a served reply was, for the worker's metrics. */
export interface Served {
  reply: Buffer;
  plugin: number;
  flags: number;
}

export class AnswerTable {
  readonly sab: SharedArrayBuffer;
  private readonly header: Int32Array;
  private readonly deps: Int32Array;
  private readonly buckets: Int32Array;
  private readonly view: DataView;
  private readonly bytes: Uint8Array;
  /** Reader side: entries decoded once per epoch, by offset. */
  private decoded = new Map<number, Template | Answer>();
  private decodedEpoch = -1;
  private readonly served: Served = { reply: Buffer.alloc(0), plugin: 0, flags: 0 };

  private constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.header = new Int32Array(sab, 0, HEADER_WORDS);
    this.deps = new Int32Array(sab, DEPS_AT, DEP_SLOTS);
    this.buckets = new Int32Array(sab, BUCKETS_AT, BUCKETS);
    this.view = new DataView(sab);
    this.bytes = new Uint8Array(sab);
  }

  /** A new, empty table (the writer's side). */
  static create(bytes = DEFAULT_TABLE_BYTES): AnswerTable {
    if (bytes < ARENA_AT + 64 * 1024) throw new Error(`an answer table needs at least ${ARENA_AT + 64 * 1024} bytes`);
    const t = new AnswerTable(new SharedArrayBuffer(bytes));
    Atomics.store(t.header, TOP, ARENA_AT);
    return t;
  }

  /** The table another thread created (a reader's side). */
  static attach(sab: SharedArrayBuffer): AnswerTable {
    return new AnswerTable(sab);
  }

  /** How full the arena is, 0..1 (for tests and the log). */
  get fill(): number {
    return (Atomics.load(this.header, TOP) - ARENA_AT) / (this.sab.byteLength - ARENA_AT);
  }

  // ---- writer ----

  /** Answers depending on `dep` are stale from now on. */
  bump(dep: number): void {
    Atomics.add(this.deps, dep, 1);
  }

  /** Forgets every entry (a reload, or a full arena). */
  clear(): void {
    Atomics.add(this.header, EPOCH, 1);
    this.buckets.fill(0);
    Atomics.store(this.header, TOP, ARENA_AT);
    Atomics.add(this.header, EPOCH, 1);
  }

  publishTemplate(key: Uint8Array, keyLen: number, dep: number, tpl: Template, plugin: number, flags: number): void {
    if (tpl.buf.length > MAX_PUBLISHED) return;
    const at = this.append(key, keyLen, dep, 0, KIND_TEMPLATE, plugin, flags | (tpl.authoritative ? ENTRY_AUTHORITATIVE : 0), tpl.rcode, tpl.buf, 0);
    if (at === 0) return;
    this.view.setUint16(at + E_A, tpl.lenWithoutAdditional, true);
    this.view.setUint16(at + E_B, tpl.arcount, true);
    this.link(at);
  }

  publishAnswer(key: Uint8Array, keyLen: number, dep: number, a: Answer, expires: number, plugin: number, flags: number): void {
    if (a.buf.length > MAX_PUBLISHED || a.keepsOpt) return;
    const n = a.ttlOffsets.length;
    const at = this.append(key, keyLen, dep, expires, KIND_ANSWER, plugin, flags, a.rcode, a.buf, n);
    if (at === 0) return;
    const v = this.view;
    v.setFloat64(at + E_RECEIVED, a.received, true);
    v.setUint16(at + E_A, a.questionEnd, true);
    v.setUint16(at + E_B, a.upstreamFlags, true);
    let off = ttlsAt(at, keyLen);
    for (let i = 0; i < n; i++, off += 6) {
      v.setUint16(off, a.ttlOffsets[i], true);
      v.setUint32(off + 2, a.ttls[i], true);
    }
    this.link(at);
  }

  /** Writes an entry's common part and its reply bytes; 0 when there is no room even after
   *  emptying the table. */
  private append(key: Uint8Array, keyLen: number, dep: number, expires: number, kind: number, plugin: number, flags: number, rcode: number, buf: Buffer, ttls: number): number {
    const size = align8(ttlsAt(0, keyLen) + ttls * 6 + buf.length);
    let at = Atomics.load(this.header, TOP);
    if (at + size > this.sab.byteLength) {
      if (ARENA_AT + size > this.sab.byteLength) return 0;
      this.clear();
      at = ARENA_AT;
    }
    const v = this.view;
    v.setUint32(at + E_HASH, keyHash(key, keyLen), true); // read back by link()
    v.setUint32(at + E_DEP, dep, true);
    v.setInt32(at + E_DEPVER, Atomics.load(this.deps, dep), true);
    v.setFloat64(at + E_EXPIRES, expires, true);
    v.setUint16(at + E_KEYLEN, keyLen, true);
    v.setUint16(at + E_BUFLEN, buf.length, true);
    v.setUint16(at + E_TTLS, ttls, true);
    v.setUint8(at + E_KIND, kind);
    v.setUint8(at + E_PLUGIN, plugin);
    v.setUint8(at + E_FLAGS, flags);
    v.setUint8(at + E_RCODE, rcode);
    this.bytes.set(key.subarray(0, keyLen), at + E_KEY);
    this.bytes.set(buf, bufAt(at, keyLen, ttls));
    Atomics.store(this.header, TOP, at + size);
    return at;
  }

  /** Makes the entry visible: the newest of its bucket. */
  private link(at: number): void {
    const b = this.view.getUint32(at + E_HASH, true) & (BUCKETS - 1);
    this.view.setUint32(at + E_NEXT, Atomics.load(this.buckets, b), true);
    Atomics.store(this.buckets, b, at);
  }

  // ---- reader ----

  /**
   * The reply to `msg` from the table, or undefined (not there, stale, expired, or the table
   * changed under us). The returned object is reused by the next call.
   */
  serve(msg: Buffer, q: Query, key: Uint8Array, keyLen: number, limit: number, now: number): Served | undefined {
    const epoch = Atomics.load(this.header, EPOCH);
    if (epoch & 1) return undefined;
    if (epoch !== this.decodedEpoch) {
      this.decoded = new Map();
      this.decodedEpoch = epoch;
    }
    const hash = keyHash(key, keyLen);
    const v = this.view;
    for (let at = Atomics.load(this.buckets, hash & (BUCKETS - 1)); at !== 0; at = v.getUint32(at + E_NEXT, true)) {
      if (v.getUint32(at + E_HASH, true) !== hash || v.getUint16(at + E_KEYLEN, true) !== keyLen || !this.sameKey(at, key, keyLen)) continue;
      // The newest entry of a key decides: older ones are older answers.
      if (v.getInt32(at + E_DEPVER, true) !== Atomics.load(this.deps, v.getUint32(at + E_DEP, true))) return undefined;
      const expires = v.getFloat64(at + E_EXPIRES, true);
      if (expires !== 0 && now >= expires) return undefined;
      let d = this.decoded.get(at);
      if (!d) this.decoded.set(at, (d = this.decode(at, keyLen)));
      const kind = v.getUint8(at + E_KIND);
      const reply = kind === KIND_TEMPLATE ? serveTemplate(d as Template, msg, q, limit) : serveAnswer(d as Answer, msg, q, limit, now);
      const s = this.served;
      s.plugin = v.getUint8(at + E_PLUGIN);
      s.flags = v.getUint8(at + E_FLAGS);
      if (Atomics.load(this.header, EPOCH) !== epoch) return undefined;
      s.reply = reply;
      return s;
    }
    return undefined;
  }

  private sameKey(at: number, key: Uint8Array, keyLen: number): boolean {
    const b = this.bytes;
    const base = at + E_KEY;
    for (let i = 0; i < keyLen; i++) if (b[base + i] !== key[i]) return false;
    return true;
  }

  /** The entry as the object serveTemplate/serveAnswer take; its bytes are a view of the table. */
  private decode(at: number, keyLen: number): Template | Answer {
    const v = this.view;
    const n = v.getUint16(at + E_TTLS, true);
    const buf = Buffer.from(this.sab, bufAt(at, keyLen, n), v.getUint16(at + E_BUFLEN, true));
    const rcode = v.getUint8(at + E_RCODE);
    if (v.getUint8(at + E_KIND) === KIND_TEMPLATE) {
      return { buf, rcode, authoritative: (v.getUint8(at + E_FLAGS) & ENTRY_AUTHORITATIVE) !== 0, lenWithoutAdditional: v.getUint16(at + E_A, true), arcount: v.getUint16(at + E_B, true) };
    }
    const ttlOffsets: number[] = [];
    const ttls: number[] = [];
    for (let i = 0, off = ttlsAt(at, keyLen); i < n; i++, off += 6) {
      ttlOffsets.push(v.getUint16(off, true));
      ttls.push(v.getUint32(off + 2, true));
    }
    return { buf, rcode, upstreamFlags: v.getUint16(at + E_B, true), questionEnd: v.getUint16(at + E_A, true), ttlOffsets, ttls, received: v.getFloat64(at + E_RECEIVED, true) };
  }
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

function ttlsAt(at: number, keyLen: number): number {
  return at + E_KEY + keyLen;
}

function bufAt(at: number, keyLen: number, ttls: number): number {
  return ttlsAt(at, keyLen) + ttls * 6;
}
