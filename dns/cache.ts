// The cache of forwarded answers: TTLs honoured (and counted down in what we serve), negative
// answers kept for the SOA's minimum (RFC 2308), bounded in entries with the least recently
// used dropped first. Entries hold the upstream's bytes without its OPT record, plus where the
// TTLs are, so a hit costs a copy and a few patched words.
import { FLAG_AA, FLAG_AD, HEADER_LEN, OPT_LEN, RCODE, type Query, emptyReply, layoutReply, replyFlags, writeOpt } from './wire.js';

export interface Answer {
  /** Upstream reply without OPT. */
  readonly buf: Buffer;
  readonly rcode: number;
  readonly upstreamFlags: number;
  readonly questionEnd: number;
  readonly ttlOffsets: readonly number[];
  readonly ttls: readonly number[];
  /** When the upstream answered (ms). */
  readonly received: number;
  /** The SOA of the authority section (negative answers). */
  readonly soa?: { readonly ttl: number; readonly minimum: number };
  /** The upstream's OPT record sits among other additional records, so it stayed in `buf`
   *  (taking it out would move what compression pointers point at); such answers are passed
   *  on as they are and not cached. */
  readonly keepsOpt?: boolean;
}

export type CacheKind = 'success' | 'denial';

interface Entry {
  readonly answer: Answer;
  readonly expires: number;
  readonly kind: CacheKind;
  /** Hits since `windowStart` (prefetch counts how popular an entry is). */
  hits: number;
  windowStart: number;
  /** A refresh was asked for already: one per entry. */
  refreshing: boolean;
}

/** `prefetch AMOUNT [DURATION [PERCENTAGE%]]`: an entry asked AMOUNT times within DURATION is
 *  fetched again once less than PERCENTAGE of its TTL is left, so popular names never miss. */
export interface PrefetchOptions {
  readonly amount: number;
  readonly windowMs: number;
  readonly percentage: number;
}

export interface CacheOptions {
  readonly capacity: number;
  readonly maxTtl: number;
  readonly maxNegativeTtl: number;
  /** `serve_stale [DURATION]`: an expired entry is still served for this long (0: never). */
  readonly staleMs?: number;
  readonly prefetch?: PrefetchOptions;
}

/** A cache lookup: the answer, whether it is past its TTL (served stale, its TTLs 0), and
 *  whether it should be fetched again in the background (prefetch, or a stale one). */
export interface CacheHit {
  readonly answer: Answer;
  readonly stale: boolean;
  readonly refresh: boolean;
}

export const DEFAULT_CACHE: CacheOptions = { capacity: 10_000, maxTtl: 3600, maxNegativeTtl: 1800 };

/** Reads an upstream reply into an Answer; undefined when it is malformed. */
export function toAnswer(reply: Buffer, now: number): Answer | undefined {
  let layout;
  try {
    layout = layoutReply(reply);
  } catch {
    return undefined;
  }
  let buf = reply;
  if (layout.optAt !== undefined && !layout.optMisplaced) {
    buf = Buffer.from(reply.subarray(0, layout.optAt));
    buf.writeUInt16BE(buf.readUInt16BE(10) - 1, 10);
  }
  const flags = reply.readUInt16BE(2);
  return {
    buf,
    rcode: flags & 0xf,
    upstreamFlags: flags,
    questionEnd: layout.questionEnd,
    ttlOffsets: layout.ttlOffsets,
    ttls: layout.ttlOffsets.map((o) => buf.readUInt32BE(o)),
    received: now,
    soa: layout.soa,
    ...(layout.optMisplaced ? { keepsOpt: true } : {}),
  };
}

/** How long an answer may be cached (seconds) and as what; undefined: not cacheable. */
export function cacheLifetime(a: Answer, opts: CacheOptions = DEFAULT_CACHE): { ttl: number; kind: CacheKind } | undefined {
  if ((a.upstreamFlags & 0x0200) !== 0 || a.keepsOpt) return undefined; // truncated, or odd
  const [an, ns] = [a.buf.readUInt16BE(6), a.buf.readUInt16BE(8)];
  if (a.rcode === RCODE.NOERROR && an > 0) {
    const ttl = Math.min(...a.ttls.slice(0, an), opts.maxTtl);
    return ttl > 0 ? { ttl, kind: 'success' } : undefined;
  }
  if (a.rcode === RCODE.NXDOMAIN || (a.rcode === RCODE.NOERROR && an === 0)) {
    // Without a SOA there is no negative TTL to honour.
    const soa = ns > 0 ? a.soa : undefined;
    if (!soa) return undefined;
    const ttl = Math.min(soa.ttl, soa.minimum, opts.maxNegativeTtl);
    return ttl > 0 ? { ttl, kind: 'denial' } : undefined;
  }
  return undefined;
}

/**
 * The reply to `query` from an answer: the client's ID and question bytes, TTLs less the
 * seconds since the upstream answered, our OPT when the client sent one, TC when it does not fit.
 */
export function serveAnswer(a: Answer, query: Buffer, q: Query, limit: number, now: number): Buffer {
  const opt = q.edns && !a.keepsOpt ? OPT_LEN : 0;
  const rcode = a.rcode;
  if (a.buf.length + opt > limit) return emptyReply(query, q, rcode, { truncated: true });
  const out = Buffer.allocUnsafe(a.buf.length + opt);
  a.buf.copy(out);
  out.writeUInt16BE(q.id, 0);
  // Upstream AA and AD stand; RD/CD echo the client, RA is ours.
  out.writeUInt16BE(replyFlags(q.flags, rcode, false) | (a.upstreamFlags & (FLAG_AA | FLAG_AD)), 2);
  if (a.questionEnd === q.questionEnd) query.copy(out, HEADER_LEN, HEADER_LEN, q.questionEnd);
  const elapsed = Math.floor((now - a.received) / 1000);
  if (elapsed > 0) {
    for (let i = 0; i < a.ttlOffsets.length; i++) out.writeUInt32BE(Math.max(0, a.ttls[i] - elapsed), a.ttlOffsets[i]);
  }
  if (opt) {
    out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
    writeOpt(out, a.buf.length);
  }
  return out;
}

export function cacheKey(q: Query): string {
  // DO and CD change what an upstream returns; they are part of the question for the cache.
  return `${q.qtype}|${q.qclass}|${q.edns?.dnssecOk ? 1 : 0}${q.flags & 0x10 ? 1 : 0}|${q.name}`;
}

export interface CacheEvents {
  hit(kind: CacheKind): void;
  miss(): void;
  evict(kind: CacheKind): void;
}

export class AnswerCache {
  private readonly entries = new Map<string, Entry>();
  private readonly counts: Record<CacheKind, number> = { success: 0, denial: 0 };

  constructor(private readonly opts: CacheOptions = DEFAULT_CACHE, private readonly events?: CacheEvents) {}

  get size(): Readonly<Record<CacheKind, number>> {
    return this.counts;
  }

  /** A fresh answer, or undefined. */
  get(key: string, now: number): Answer | undefined {
    const hit = this.lookup(key, now, false);
    return hit?.answer;
  }

  /** A fresh answer, or with `serve_stale` an expired one within its window. */
  lookup(key: string, now: number, allowStale = true): CacheHit | undefined {
    const e = this.entries.get(key);
    if (!e) {
      this.events?.miss();
      return undefined;
    }
    const stale = e.expires <= now;
    if (stale && (!allowStale || now >= e.expires + (this.opts.staleMs ?? 0))) {
      if (now >= e.expires + (this.opts.staleMs ?? 0)) this.drop(key, e);
      this.events?.miss();
      return undefined;
    }
    // Least recently used goes first: a hit moves the entry to the end of the map's order.
    this.entries.delete(key);
    this.entries.set(key, e);
    this.events?.hit(e.kind);
    let refresh = false;
    if (stale) refresh = true;
    else if (this.opts.prefetch) {
      const p = this.opts.prefetch;
      if (now - e.windowStart > p.windowMs) {
        e.windowStart = now;
        e.hits = 0;
      }
      e.hits++;
      const ttlMs = e.expires - e.answer.received;
      refresh = e.hits >= p.amount && e.expires - now < (ttlMs * p.percentage) / 100;
    }
    if (refresh && e.refreshing) refresh = false;
    else if (refresh) e.refreshing = true;
    return { answer: e.answer, stale, refresh };
  }

  /** The entry for `key` while it is fresh, without counting a hit or touching its place in
   *  the order (what the worker threads may serve until it expires). */
  fresh(key: string, now: number): { readonly answer: Answer; readonly expires: number; readonly kind: CacheKind } | undefined {
    const e = this.entries.get(key);
    return e && e.expires > now ? e : undefined;
  }

  /** Stores the answer if it may be cached; returns whether it did. */
  put(key: string, a: Answer): boolean {
    const life = cacheLifetime(a, this.opts);
    if (!life) return false;
    const old = this.entries.get(key);
    if (old) this.drop(key, old);
    while (this.entries.size >= this.opts.capacity) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry];
      this.drop(oldestKey, oldest);
      this.events?.evict(oldest.kind);
    }
    this.entries.set(key, { answer: a, expires: a.received + life.ttl * 1000, kind: life.kind, hits: 0, windowStart: a.received, refreshing: false });
    this.counts[life.kind]++;
    return true;
  }

  /** A background refresh found no answer: the next hit may ask again. */
  refreshFailed(key: string): void {
    const e = this.entries.get(key);
    if (e) e.refreshing = false;
  }

  private drop(key: string, e: Entry): void {
    this.entries.delete(key);
    this.counts[e.kind]--;
  }
}
