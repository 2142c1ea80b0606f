// One query in, one reply out (or silence): the decisions between the wire and the zone, the
// cache and the forwarder. Cluster answers and cache hits are synchronous; only questions that
// go upstream return a promise.
import dnsPacket from 'dns-packet';
import type { Logger } from '../common/log.js';
import { AnswerCache, cacheKey, serveAnswer, toAnswer, type Answer } from './cache.js';
import type { Forwarder } from './forwarder.js';
import { PLUGIN, type DnsMetrics, type Listener } from './metrics.js';
import { addressRec, buildTemplate, serveTemplate, type OwnedRec, type Template } from './records.js';
import type { ClusterZone, ZoneAnswer } from './zone.js';
import { inZone } from './config.js';
import { shuffleAddressRecords } from './loadbalance.js';
import type { HostsPlugin } from './hosts.js';
import type { Peer } from './querylog.js';
import type { LoopDetector } from './loop.js';
import { ENTRY_CLUSTER, ENTRY_DENIAL, ENTRY_LOADBALANCE, NO_CATALOG, ZONE_WIDE, serviceDependency } from './workers/answer-table.js';
import {
  FLAG_AD, FLAG_CD, FLAG_QR, FLAG_RD, HEADER_LEN, MAX_UDP_SIZE, MessageWriter, QCLASS_IN, QTYPE, RCODE, WireError, emptyReply,
  parseQuery, udpLimit, type Query,
} from './wire.js';

/** Where a query came in: CoreDNS's `server` (`dns://HOST:PORT`), `proto` and `family`
 *  (1 for IPv4, 2 for IPv6). One object per listener, kept for its lifetime. */
export type Transport = Listener;

export type HandlerResult = Buffer | undefined | Promise<Buffer | undefined>;

/** What a listener hands its queries to: one server block's handler, or a router of several. */
export interface QueryHandler {
  handle(msg: Buffer, t: Transport, from?: Peer): HandlerResult;
  /** The reply to a source the ACL does not allow. */
  refuse(msg: Buffer, t: Transport): Buffer | undefined;
}

/** A server block's handler, which a router can give a query it has parsed already. */
export interface BlockHandler extends QueryHandler {
  handleQuery(msg: Buffer, q: Query, t: Transport, from?: Peer): HandlerResult;
}

export const MALFORMED = 'malformed';

/**
 * A query's question; undefined for a message that gets silence (shorter than a header, or a
 * response: answering responses invites loops between two servers reflecting each other's
 * replies); MALFORMED for one that gets FORMERR.
 */
export function questionOf(msg: Buffer): Query | typeof MALFORMED | undefined {
  if (msg.length < HEADER_LEN || (msg.readUInt16BE(2) & FLAG_QR) !== 0) return undefined;
  try {
    return parseQuery(msg);
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    return MALFORMED;
  }
}

/**
 * A plugin in front of a block's handler (log, rewrite, autopath): the question parsed once,
 * runts and responses answered with silence, a malformed question left to the inner handler
 * (its FORMERR, counted as usual), the rest to the plugin's `handleQuery`.
 */
export abstract class BlockPlugin implements BlockHandler {
  constructor(protected readonly inner: BlockHandler) {}

  abstract handleQuery(msg: Buffer, q: Query, t: Transport, from?: Peer): HandlerResult;

  handle(msg: Buffer, t: Transport, from?: Peer): HandlerResult {
    const q = questionOf(msg);
    if (q === MALFORMED) return this.inner.handle(msg, t, from);
    return q && this.handleQuery(msg, q, t, from);
  }

  refuse(msg: Buffer, t: Transport): Buffer | undefined {
    return this.inner.refuse(msg, t);
  }
}

/**
 * Where a block's answers are published for the DNS worker threads (dns/workers/): a worker
 * hands the main thread the questions its table does not hold, and the answer is published for
 * the next asker of the same question on the same route.
 */
export interface AnswerSink {
  /** Where to publish the answer to `q`, when this query came from a worker; else undefined. */
  target(msg: Buffer, q: Query): AnswerTarget | undefined;
}

/** One question's place in the table; `dep` is a dependency slot and `flags` ENTRY_* bits
 *  (answer-table.ts). */
export interface AnswerTarget {
  template(tpl: Template, dep: number, plugin: number, flags: number): void;
  answer(a: Answer, expires: number, dep: number, plugin: number, flags: number): void;
}

/** One `forward` plugin of the block: the names it gets (`forward FROM … { except … }`) and
 *  its upstreams. */
export interface ForwardRoute {
  readonly forwarder: Forwarder;
  readonly from: string;
  readonly except: readonly string[];
  /** `max_concurrent`: distinct questions upstream at once; a question that would be one more
   *  gets REFUSED, as CoreDNS answers it (a capacity signal, not a failure). */
  readonly maxConcurrent?: number;
  /** `next RCODE…` / `next_on_nodata`: such a reply goes on to the next route with the name. */
  readonly next?: ReadonlySet<number>;
  readonly nextOnNodata?: boolean;
}

/** Every name to one forwarder: the flags' server, and tests. */
export function forwardEverything(forwarder: Forwarder): ForwardRoute[] {
  return [{ forwarder, from: '', except: [] }];
}

export interface BlockOptions {
  /** `loadbalance`: address records in a random order in every reply. */
  readonly loadbalance?: boolean;
  /** `loop`: counts the arrivals of its probe's name. */
  readonly loop?: LoopDetector;
  /** `serve_stale … verify`: an expired answer is served only when the upstreams fail. */
  readonly staleVerify?: boolean;
  /** `hosts`: asked before the cluster zone. */
  readonly hosts?: HostsPlugin;
  /** The worker threads' table, for a block whose answers depend on the question alone. */
  readonly sink?: AnswerSink;
  /** Whether cached forwarded answers are published too (not under `prefetch`, which counts
   *  the hits a worker would take). */
  readonly publishCache?: boolean;
}

const NOT_OURS: ZoneAnswer = Object.freeze({ kind: 'forward' });

const TCP_LIMIT = 65535;
const BADVERS = 16;

/**
 * One server block's chain, in CoreDNS's order: the cluster zone (`kubernetes`, when the block
 * has it), then the cache and the `forward` plugins for what it does not answer. A name no
 * `forward` takes gets SERVFAIL, as CoreDNS answers when no plugin is left.
 */
export class DnsHandler implements BlockHandler {
  private readonly inflight = new Map<string, Promise<Answer | undefined>>();
  /** Every route takes every name (`forward .` without `except`, the usual block). */
  private readonly takesEverything: boolean;

  constructor(
    private readonly zone: ClusterZone | undefined,
    private readonly forwardRoutes: readonly ForwardRoute[],
    private readonly cache: AnswerCache | undefined,
    private readonly metrics: DnsMetrics | undefined,
    private readonly log: Logger,
    private readonly block: BlockOptions = {},
  ) {
    this.takesEverything = forwardRoutes.every((r) => r.from === '' && r.except.length === 0);
  }

  handle(msg: Buffer, t: Transport, from?: Peer): HandlerResult {
    const t0 = performance.now();
    const q = questionOf(msg);
    if (q === MALFORMED) return this.done(t, t0, msg, undefined, emptyReply(msg, undefined, RCODE.FORMERR), PLUGIN.none);
    return q && this.handleQuery(msg, q, t, from, t0);
  }

  /** A query already parsed (by a router that chose this block for its name). */
  handleQuery(msg: Buffer, q: Query, t: Transport, _from?: Peer, t0 = performance.now()): HandlerResult {
    try {
      return this.answer(msg, q, t, t0);
    } catch (err) {
      this.metrics?.panics.inc();
      this.log.error('query failed', { name: q.name, qtype: q.qtype, error: (err as Error).stack ?? String(err) });
      return this.done(t, t0, msg, q, emptyReply(msg, q, RCODE.SERVFAIL), PLUGIN.none);
    }
  }

  /**
   * The reply to a source the ACL does not allow: REFUSED with the question, whatever it
   * asks, as CoreDNS's acl `block` does. Responses and runts still get silence.
   */
  refuse(msg: Buffer, t: Transport): Buffer | undefined {
    const t0 = performance.now();
    if (msg.length < HEADER_LEN || (msg.readUInt16BE(2) & FLAG_QR) !== 0) return undefined;
    let q: Query | undefined;
    try {
      q = parseQuery(msg);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
    }
    this.metrics?.aclBlocked.labels(t.server, '.', '').inc();
    return this.done(t, t0, msg, q, emptyReply(msg, q, RCODE.REFUSED), PLUGIN.acl);
  }

  private answer(msg: Buffer, q: Query, t: Transport, t0: number): HandlerResult {
    this.block.loop?.saw(q.name);
    if (q.opcode !== 0) return this.done(t, t0, msg, q, emptyReply(msg, q, RCODE.NOTIMP), PLUGIN.none);
    if (q.edns && q.edns.version > 0) return this.done(t, t0, msg, q, emptyReply(msg, q, BADVERS), PLUGIN.none);
    if (q.qtype === QTYPE.AXFR || q.qtype === QTYPE.IXFR) return this.done(t, t0, msg, q, emptyReply(msg, q, RCODE.REFUSED), PLUGIN.none);
    const limit = t.proto === 'udp' ? udpLimit(q) : TCP_LIMIT;
    const h = this.block.hosts?.lookup(msg, q);
    if (h?.kind === 'reply') return this.done(t, t0, msg, q, serveTemplate(h.tpl, msg, q, limit), PLUGIN.hosts);
    const z = this.zone ? this.zone.lookup(msg, q) : NOT_OURS;
    const pub = this.block.sink && this.block.loop?.name !== q.name ? this.block.sink.target(msg, q) : undefined;
    switch (z.kind) {
      case 'reply':
        if (pub) this.publishZone(pub, q, z.tpl);
        return this.done(t, t0, msg, q, serveTemplate(z.tpl, msg, q, limit), PLUGIN.kubernetes, true);
      case 'refused':
        return this.done(t, t0, msg, q, emptyReply(msg, q, RCODE.REFUSED), PLUGIN.kubernetes, true);
      case 'external':
        return this.external(msg, q, z.cname, z.target, limit).then((r) => this.done(t, t0, msg, q, r, PLUGIN.kubernetes, true));
      case 'forward':
        break;
    }
    const routes = this.routesFor(q.name);
    if (routes.length === 0) return this.done(t, t0, msg, q, emptyReply(msg, q, RCODE.SERVFAIL), PLUGIN.none);
    const key = cacheKey(q);
    const now = Date.now();
    const hit = this.cache?.lookup(key, now);
    if (hit) {
      // `serve_stale verify`: an expired answer only when the upstreams give none.
      if (hit.stale && this.block.staleVerify) {
        return this.fetch(key, msg, q, routes).then((a) => this.done(t, t0, msg, q, serveAnswer(a ?? hit.answer, msg, q, limit, Date.now()), PLUGIN.cache));
      }
      // Prefetch, or `serve_stale` (immediate): served now, fetched again behind it.
      if (hit.refresh) void this.fetch(key, msg, q, routes);
      else if (pub) this.publishCached(pub, key, q, now);
      return this.done(t, t0, msg, q, serveAnswer(hit.answer, msg, q, limit, now), PLUGIN.cache);
    }
    if (!this.admits(key, routes)) return this.done(t, t0, msg, q, emptyReply(msg, q, RCODE.REFUSED), PLUGIN.forward);
    return this.fetch(key, msg, q, routes).then((a) => {
      if (a && pub) this.publishCached(pub, key, q, Date.now());
      return this.done(t, t0, msg, q, a ? serveAnswer(a, msg, q, limit, Date.now()) : emptyReply(msg, q, RCODE.SERVFAIL), PLUGIN.forward);
    });
  }

  /** A cluster answer the zone keeps, published with what makes it stale. */
  private publishZone(pub: AnswerTarget, q: Query, tpl: Template): void {
    const on = this.zone?.answerDependency(q, tpl);
    if (on === undefined) return;
    pub.template(tpl, on === '' ? ZONE_WIDE : serviceDependency(on), PLUGIN.kubernetes, ENTRY_CLUSTER | (this.block.loadbalance ? ENTRY_LOADBALANCE : 0));
  }

  /** A cached forwarded answer, published until it expires (a worker serves it as a hit). */
  private publishCached(pub: AnswerTarget, key: string, q: Query, now: number): void {
    const e = this.block.publishCache ? this.cache?.fresh(key, now) : undefined;
    if (!e) return;
    const dep = this.zone?.forwardFollowsCatalog(q.name) ? ZONE_WIDE : NO_CATALOG;
    pub.answer(e.answer, e.expires, dep, PLUGIN.cache, (e.kind === 'denial' ? ENTRY_DENIAL : 0) | (this.block.loadbalance ? ENTRY_LOADBALANCE : 0));
  }

  /** The block's `forward` routes that take the name, in their order (none: SERVFAIL). */
  private routesFor(name: string): readonly ForwardRoute[] {
    return this.takesEverything ? this.forwardRoutes : this.forwardRoutes.filter((r) => takes(r, name));
  }

  /** Whether `key` may go upstream now: it is in flight already (its askers share the
   *  exchange), or there is room under the first route's `max_concurrent`. A refusal is
   *  counted. */
  private admits(key: string, routes: readonly ForwardRoute[]): boolean {
    const max = routes[0]?.maxConcurrent ?? Infinity;
    if (this.inflight.has(key) || this.inflight.size < max) return true;
    this.metrics?.maxConcurrentRejects.inc();
    return false;
  }

  /** The first route with the name answers, unless its reply is one its `next` hands on. */
  private async exchange(routes: readonly ForwardRoute[], query: Buffer): Promise<Buffer | undefined> {
    for (let i = 0; i < routes.length; i++) {
      const reply = await routes[i].forwarder.exchange(query);
      if (!reply || i === routes.length - 1 || !handsOn(routes[i], reply)) return reply;
    }
    return undefined;
  }

  /**
   * One upstream exchange per distinct question in flight, through `routes` (the question's);
   * the answer goes into the cache. However the exchange ends, its entry goes, and a failure is
   * no answer (SERVFAIL): an entry left behind by a rejected exchange handed the same rejection
   * to every later asker of that question, for the life of the process. Over `max_concurrent`
   * this is no answer too: a stale answer under `verify` is served, a refresh is skipped, an
   * ExternalName's CNAME stands alone.
   */
  private fetch(key: string, msg: Buffer, q: Query, routes: readonly ForwardRoute[]): Promise<Answer | undefined> {
    let p = this.inflight.get(key);
    if (!p) {
      if (routes.length === 0 || !this.admits(key, routes)) return Promise.resolve(undefined);
      p = this.exchange(routes, upstreamQuery(msg, q))
        .then((reply) => {
          const a = reply ? toAnswer(reply, Date.now()) : undefined;
          if (a) this.cache?.put(key, a);
          else this.cache?.refreshFailed(key);
          return a;
        })
        .catch((err: unknown) => {
          this.log.warn('upstream exchange failed', { name: q.name, qtype: q.qtype, error: err instanceof Error ? err.message : String(err) });
          this.cache?.refreshFailed(key);
          return undefined;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  /**
   * An ExternalName: the CNAME, followed by the target's records (from the cluster zone, or
   * resolved through the upstreams). When the target does not resolve the CNAME stands alone,
   * which lets the client chase it itself.
   */
  private async external(msg: Buffer, q: Query, cname: OwnedRec, target: string, limit: number): Promise<Buffer> {
    let chased: OwnedRec[] = [];
    let rcode: number = RCODE.NOERROR;
    if (this.zone?.isClusterName(target)) {
      chased = this.zone.addresses(target, q.qtype);
    } else {
      const routes = this.routesFor(target);
      const sub = targetQuery(target, q.qtype);
      const sq = parseQuery(sub);
      const key = cacheKey(sq);
      const a = routes.length === 0 ? undefined : (this.cache?.get(key, Date.now()) ?? (await this.fetch(key, sub, sq, routes)));
      if (a) ({ records: chased, rcode } = recordsOf(a, Date.now()));
    }
    const tpl = buildTemplate(msg, q, { rcode: rcode === RCODE.NXDOMAIN ? RCODE.NXDOMAIN : RCODE.NOERROR, authoritative: true, answer: [cname, ...chased] });
    return serveTemplate(tpl, msg, q, limit);
  }

  private done(t: Transport, t0: number, msg: Buffer, q: Query | undefined, reply: Buffer | undefined, plugin: number, cluster = false): Buffer | undefined {
    if (this.block.loadbalance && reply && q) shuffleAddressRecords(reply, q.questionEnd);
    if (this.metrics && reply) {
      const seconds = (performance.now() - t0) / 1000;
      this.metrics.observe(t, cluster && q !== undefined, plugin, q?.qtype ?? 0, reply.readUInt16BE(2) & 0xf, msg.length, reply.length, seconds);
    }
    return reply;
  }
}

/**
 * What goes upstream for a client's question: a clean query of our own (header, the question
 * as the client spelled it, our OPT with the client's DO bit) rather than the client's bytes,
 * so whatever else a client put in its message never reaches the upstream, and every answer
 * we cache was fetched with the same EDNS size, whoever asked first.
 */
export function upstreamQuery(msg: Buffer, q: Query): Buffer {
  const qlen = q.questionEnd - HEADER_LEN;
  const out = Buffer.alloc(HEADER_LEN + qlen + 11);
  out.writeUInt16BE(q.flags & (FLAG_RD | FLAG_CD | FLAG_AD), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, 10);
  msg.copy(out, HEADER_LEN, HEADER_LEN, q.questionEnd);
  const opt = HEADER_LEN + qlen;
  out[opt] = 0;
  out.writeUInt16BE(QTYPE.OPT, opt + 1);
  out.writeUInt16BE(MAX_UDP_SIZE, opt + 3);
  out.writeUInt32BE(q.edns?.dnssecOk ? 0x8000 : 0, opt + 5);
  return out;
}

/** A recursive query for `name`/`qtype`, as we send it upstream for a CNAME's target. */
export function targetQuery(name: string, qtype: number): Buffer {
  const w = new MessageWriter(64);
  w.u16(0);
  w.u16(FLAG_RD);
  w.u16(1);
  w.u16(0);
  w.u16(0);
  w.u16(0);
  w.name(name);
  w.u16(qtype);
  w.u16(QCLASS_IN);
  return Buffer.from(w.done());
}

/**
 * The address and CNAME records of an upstream answer (what a CNAME chase may append), their
 * TTLs counted down by the time the answer has spent in the cache, as `serveAnswer` does for a
 * direct hit: the chased records are the same cached data, served later.
 */
function recordsOf(a: Answer, now: number): { records: OwnedRec[]; rcode: number } {
  const records: OwnedRec[] = [];
  const elapsed = Math.max(0, Math.floor((now - a.received) / 1000));
  try {
    const p = dnsPacket.decode(a.buf);
    for (const r of p.answers ?? []) {
      const owner = r.name.toLowerCase();
      const ttl = Math.max(0, ('ttl' in r ? (r.ttl ?? 0) : 0) - elapsed);
      if (r.type === 'A' || r.type === 'AAAA') records.push({ owner, ttl, rec: addressRec(r.data) });
      else if (r.type === 'CNAME') records.push({ owner, ttl, rec: { type: QTYPE.CNAME, target: r.data.toLowerCase() } });
    }
  } catch {
    return { records: [], rcode: RCODE.SERVFAIL };
  }
  return { records, rcode: a.rcode };
}

/** Whether the route's zone has the name, and its `except` does not. */
export function takes(r: Pick<ForwardRoute, 'from' | 'except'>, name: string): boolean {
  return inZone(name, r.from) && !r.except.some((z) => inZone(name, z));
}

/** Whether a route's `next` (or `next_on_nodata`) passes this reply to the next route. */
function handsOn(r: ForwardRoute, reply: Buffer): boolean {
  const rcode = reply.readUInt16BE(2) & 0xf;
  if (r.next?.has(rcode)) return true;
  return r.nextOnNodata === true && rcode === RCODE.NOERROR && reply.readUInt16BE(6) === 0;
}
