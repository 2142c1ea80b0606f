// Forwards questions outside the cluster zone to the upstream resolvers: over UDP, again over
// TCP when the answer is truncated (DNS over TLS to a `tls://` upstream, RFC 7858; DNS over
// HTTPS to an `https://` one, RFC 8484); healthy upstreams first, a failed one is probed until it
// answers again. A question costs at most `deadlineMs` (2 s) before the caller gets nothing and
// answers SERVFAIL.
import dgram from 'node:dgram';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { randomInt } from 'node:crypto';
import type { Logger } from '../common/log.js';
import { FLAG_QR, FLAG_RD, FLAG_TC, HEADER_LEN, QTYPE, skipName } from './wire.js';

export interface Upstream {
  readonly host: string;
  readonly port: number;
  /** DNS over TLS (a `tls://` upstream), with the name its certificate must carry when it is
   *  not the address (`tls://9.9.9.9%dns.quad9.net`, or the block's `tls_servername`). */
  readonly tls?: { readonly servername?: string };
  /** DNS over HTTPS (an `https://` upstream, with `tls` for its certificate): POSTs of
   *  application/dns-message to this path. */
  readonly doh?: { readonly path: string };
}

export function upstreamLabel(u: Upstream): string {
  const hostPort = u.host.includes(':') ? `[${u.host}]:${u.port}` : `${u.host}:${u.port}`;
  if (u.doh) return `https://${hostPort}${u.doh.path}`;
  return u.tls ? `tls://${hostPort}` : hostPort;
}

/** The client side of DNS over TLS, for the whole forwarder (as CoreDNS's `tls`). */
export interface TlsClientOptions {
  /** Trusted roots instead of the system's (`tls CA`, `tls CERT KEY CA`). */
  readonly ca?: Buffer;
  /** A client certificate and its key (`tls CERT KEY …`). */
  readonly cert?: Buffer;
  readonly key?: Buffer;
  /** `tls_servername`: the name every upstream's certificate must carry. */
  readonly servername?: string;
}

/** `1.2.3.4`, `1.2.3.4:5353`, `[fd00::1]:53`, `fd00::1` → an upstream. */
export function parseUpstream(s: string): Upstream {
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(s);
  if (bracketed) return check({ host: bracketed[1], port: Number(bracketed[2] ?? 53) }, s);
  if (net.isIPv6(s)) return { host: s, port: 53 };
  const m = /^([^:]+)(?::(\d{1,5}))?$/.exec(s);
  if (!m) throw new Error(`--upstream ${JSON.stringify(s)} is not HOST[:PORT]`);
  return check({ host: m[1], port: Number(m[2] ?? 53) }, s);
}

function check(u: Upstream, s: string): Upstream {
  if (!net.isIP(u.host)) throw new Error(`--upstream ${JSON.stringify(s)}: ${JSON.stringify(u.host)} is not an IP address`);
  if (!(u.port > 0 && u.port < 65536)) throw new Error(`--upstream ${JSON.stringify(s)}: bad port`);
  return u;
}

class UpstreamState {
  fails = 0;
  healthy = true;
  probing?: NodeJS.Timeout;
  constructor(readonly addr: Upstream) {}
}

export interface ForwarderOptions {
  readonly deadlineMs?: number;
  readonly attemptMs?: number;
  /** Consecutive failures that mark an upstream down (CoreDNS's max_fails). */
  readonly maxFails?: number;
  readonly healthCheckMs?: number;
  /** UDP exchanges in flight at once, each holding a socket (a file descriptor); the excess
   *  gets no answer (SERVFAIL) rather than exhausting the process's descriptors. */
  readonly maxInflight?: number;
  /** Which healthy upstream is asked first: `random` (the default), `round_robin` (each in
   *  turn), `sequential` (always the first that is healthy), as CoreDNS's `policy`. */
  readonly policy?: 'random' | 'round_robin' | 'sequential';
  /** Every exchange and health probe over TCP (CoreDNS's `force_tcp`); otherwise UDP, and TCP
   *  again for a truncated reply. */
  readonly forceTcp?: boolean;
  readonly tls?: TlsClientOptions;
  /** `failover RCODE…`: a reply with one of these codes is answered by the next upstream not
   *  asked yet, as a timeout is; the last one's reply stands. */
  readonly failover?: ReadonlySet<number>;
  /** `failfast_all_unhealthy_upstreams`: with every upstream down, no answer (SERVFAIL) at once
   *  instead of asking one anyway. */
  readonly failfastAllDown?: boolean;
  /** `max_connect_attempts`: upstream attempts for one question at most (0: no cap; the
   *  default is one per upstream, and two with a single one). */
  readonly maxAttempts?: number;
  /** `doh_method`: how an `https://` upstream is asked (RFC 8484 §4.1); POST by default. */
  readonly dohMethod?: 'GET' | 'POST';
  readonly log?: Logger;
  readonly onExchange?: (upstream: Upstream, seconds: number, rcode: number | undefined) => void;
  readonly onHealthcheckFailure?: (upstream: Upstream) => void;
  readonly onAllDown?: () => void;
}

export class Forwarder {
  private readonly states: UpstreamState[];
  /** The UDP exchanges in flight: each ends (with no reply) when called. */
  private readonly inflight = new Set<() => void>();
  private readonly deadlineMs: number;
  private readonly attemptMs: number;
  private readonly maxFails: number;
  private readonly healthCheckMs: number;
  private readonly maxInflight: number;
  private closed = false;
  private turn = 0;

  constructor(upstreams: readonly Upstream[], private readonly opts: ForwarderOptions = {}) {
    this.states = upstreams.map((u) => new UpstreamState(u));
    this.deadlineMs = opts.deadlineMs ?? 2000;
    this.attemptMs = opts.attemptMs ?? 1000;
    this.maxFails = opts.maxFails ?? 2;
    this.healthCheckMs = opts.healthCheckMs ?? 500;
    this.maxInflight = opts.maxInflight ?? 1000;
  }

  get upstreams(): readonly Upstream[] {
    return this.states.map((s) => s.addr);
  }

  /**
   * Sends `query` upstream and resolves with the reply (the query's own ID restored), or
   * undefined when no upstream answered in time.
   */
  async exchange(query: Buffer): Promise<Buffer | undefined> {
    if (this.states.length === 0 || this.closed) return undefined;
    if (this.opts.failfastAllDown && this.states.every((s) => !s.healthy)) return undefined;
    const start = Date.now();
    const order = this.order();
    const tries = Math.min(Math.max(2, order.length), this.opts.maxAttempts || Infinity);
    let lastReply: Buffer | undefined;
    for (let i = 0; i < tries; i++) {
      const left = this.deadlineMs - (Date.now() - start);
      if (left <= 0) break;
      const st = order[i % order.length];
      const t0 = performance.now();
      let reply = await this.ask(st.addr, query, Math.min(this.attemptMs, left));
      if (reply && !this.opts.forceTcp && !st.addr.tls && (reply.readUInt16BE(2) & FLAG_TC) !== 0) {
        const rest = this.deadlineMs - (Date.now() - start);
        const full = rest > 0 ? await this.tcp(st.addr, query, rest) : undefined;
        if (full) reply = full;
      }
      this.opts.onExchange?.(st.addr, (performance.now() - t0) / 1000, reply ? reply.readUInt16BE(2) & 0xf : undefined);
      if (reply) {
        this.succeeded(st);
        // An answer, so the upstream is up; but a failover code is asked again elsewhere.
        if (i + 1 < order.length && this.opts.failover?.has(reply.readUInt16BE(2) & 0xf)) {
          lastReply = reply;
          continue;
        }
        return reply;
      }
      this.failed(st);
    }
    return lastReply;
  }

  close(): void {
    this.closed = true;
    for (const s of this.states) clearTimeout(s.probing);
    for (const end of [...this.inflight]) end();
  }

  /** Healthy upstreams first, the first one by the policy so the load spreads; then the rest. */
  private order(): UpstreamState[] {
    const healthy = this.states.filter((s) => s.healthy);
    const down = this.states.filter((s) => !s.healthy);
    if (healthy.length > 1 && this.opts.policy !== 'sequential') {
      const k = this.opts.policy === 'round_robin' ? this.turn++ % healthy.length : randomInt(healthy.length);
      healthy.push(...healthy.splice(0, k));
    }
    if (healthy.length === 0) this.opts.onAllDown?.();
    return [...healthy, ...down];
  }

  private succeeded(st: UpstreamState): void {
    st.fails = 0;
    if (!st.healthy) this.opts.log?.info('upstream answers again', { upstream: upstreamLabel(st.addr) });
    st.healthy = true;
  }

  private failed(st: UpstreamState): void {
    st.fails++;
    if (st.healthy && st.fails >= this.maxFails) {
      st.healthy = false;
      this.opts.log?.warn('upstream marked down after failures', { upstream: upstreamLabel(st.addr), fails: st.fails });
      this.probe(st);
    }
  }

  /** Asks a down upstream for the root's NS until it answers. */
  private probe(st: UpstreamState): void {
    if (this.closed || st.probing) return;
    st.probing = setTimeout(async () => {
      st.probing = undefined;
      if (this.closed) return;
      const reply = await this.ask(st.addr, healthQuery(), this.attemptMs);
      if (reply) this.succeeded(st);
      else {
        this.opts.onHealthcheckFailure?.(st.addr);
        this.probe(st);
      }
    }, this.healthCheckMs);
    st.probing.unref();
  }

  /** What a `tls://` or `https://` upstream's connection verifies and presents: the name its
   *  certificate must carry (its own, else `tls_servername`), the block's CA and client cert. */
  private tlsOptions(u: Upstream): tls.ConnectionOptions {
    const t = this.opts.tls;
    const servername = u.tls?.servername ?? t?.servername;
    return { ...(servername ? { servername } : {}), ...(t?.ca ? { ca: t.ca } : {}), ...(t?.cert ? { cert: t.cert, key: t.key } : {}) };
  }

  private ask(u: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
    if (u.doh) return this.https(u, u.doh.path, query, timeoutMs);
    return this.opts.forceTcp || u.tls ? this.tcp(u, query, timeoutMs) : this.udp(u, query, timeoutMs);
  }

  /** One exchange over HTTPS (HTTP/2, one session each, as DoT has one connection each): the
   *  query POSTed (or in a GET's `dns` parameter, base64url) with ID 0 (RFC 8484 §4.1), a 200
   *  with a DNS message that answers it back. The certificate must verify, as for DoT. */
  private https(u: Upstream, path: string, query: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const authority = `https://${net.isIPv6(u.host) ? `[${u.host}]` : u.host}:${u.port}`;
      const clientId = query.readUInt16BE(0);
      const out = Buffer.from(query);
      out.writeUInt16BE(0, 0);
      const session = http2.connect(authority, this.tlsOptions(u));
      let ended = false;
      const done = (r: Buffer | undefined) => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        session.destroy();
        if (r) r.writeUInt16BE(clientId, 0);
        resolve(r);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      session.on('error', () => done(undefined));
      const get = this.opts.dohMethod === 'GET';
      const req = session.request(get
        ? { ':method': 'GET', ':path': `${path}${path.includes('?') ? '&' : '?'}dns=${out.toString('base64url')}`, accept: 'application/dns-message' }
        : { ':method': 'POST', ':path': path, 'content-type': 'application/dns-message', accept: 'application/dns-message', 'content-length': out.length });
      const chunks: Buffer[] = [];
      let ok = false;
      req.on('response', (h) => (ok = h[':status'] === 200 && String(h['content-type'] ?? '').startsWith('application/dns-message')));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        done(ok && isReplyTo(body, 0, questionOf(query)) ? body : undefined);
      });
      req.on('error', () => done(undefined));
      req.end(get ? undefined : out);
    });
  }

  /**
   * One UDP exchange on a socket of its own. The kernel gives each new socket a random
   * ephemeral port, so a forger must guess the port as well as the 16-bit ID (what RFC 5452
   * asks of resolvers; one long-lived socket per family left the ID as the only secret). The
   * socket is connected to the upstream, so the kernel drops datagrams from anyone else, and
   * a reply must still pass `isReplyTo` before it counts; anything else is ignored and the
   * exchange goes on waiting for the real answer until its time is up.
   */
  private udp(u: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
    if (this.closed || this.inflight.size >= this.maxInflight) return Promise.resolve(undefined);
    const id = randomInt(65536);
    const clientId = query.readUInt16BE(0);
    const out = Buffer.from(query);
    out.writeUInt16BE(id, 0);
    const question = questionOf(query);
    return new Promise((resolve) => {
      const sock = dgram.createSocket(net.isIPv6(u.host) ? 'udp6' : 'udp4');
      let ended = false;
      const end = (reply: Buffer | undefined) => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        this.inflight.delete(stop);
        sock.close();
        if (reply) reply.writeUInt16BE(clientId, 0);
        resolve(reply);
      };
      const stop = () => end(undefined);
      const timer = setTimeout(stop, timeoutMs);
      this.inflight.add(stop);
      sock.unref();
      sock.on('error', stop);
      sock.on('message', (msg, rinfo) => {
        if (rinfo.port === u.port && sameAddress(rinfo.address, u.host) && isReplyTo(msg, id, question)) end(Buffer.from(msg));
      });
      sock.connect(u.port, u.host, () => sock.send(out, (err) => err && stop()));
    });
  }

  /** One exchange over TCP, or TLS for a `tls://` upstream (whose certificate must verify:
   *  an unverified one is no answer, as a forged reply would be). */
  private tcp(u: Upstream, query: Buffer, timeoutMs: number): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const sock = u.tls ? tls.connect({ host: u.host, port: u.port, ...this.tlsOptions(u) }) : net.connect({ host: u.host, port: u.port });
      let buf = Buffer.alloc(0);
      const done = (r: Buffer | undefined) => {
        clearTimeout(timer);
        sock.destroy();
        resolve(r);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      sock.on('error', () => done(undefined));
      sock.on('close', () => done(undefined));
      sock.on(u.tls ? 'secureConnect' : 'connect', () => {
        const len = Buffer.allocUnsafe(2);
        len.writeUInt16BE(query.length);
        sock.end(Buffer.concat([len, query]));
      });
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const reply = buf.subarray(2, 2 + buf.readUInt16BE(0));
          done(isReplyTo(reply, query.readUInt16BE(0), questionOf(query)) ? Buffer.from(reply) : undefined);
        }
      });
    });
  }
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  return a.replace(/^::ffff:/, '') === b.replace(/^::ffff:/, '');
}

function questionOf(msg: Buffer): Buffer {
  try {
    const end = skipName(msg, HEADER_LEN) + 4;
    return msg.subarray(HEADER_LEN, Math.min(end, msg.length));
  } catch {
    return msg.subarray(HEADER_LEN);
  }
}

/**
 * Whether `msg` is the reply to our query `id` about `question` (name bytes, type, class): a
 * response with that ID and exactly one question, byte for byte ours. CoreDNS's forward plugin
 * also drops replies whose question does not match (request.Match), but compares the name
 * case-insensitively; we send the name as the client spelled it and a resolver copies the
 * question, so any other spelling is a forgery's guess. A reply without the question, error
 * or not, is dropped too: accepting one let a forger end an exchange with no question to
 * match at all.
 */
export function isReplyTo(msg: Buffer, id: number, question: Buffer): boolean {
  if (msg.length < HEADER_LEN + question.length) return false;
  if (msg.readUInt16BE(0) !== id || (msg.readUInt16BE(2) & FLAG_QR) === 0 || msg.readUInt16BE(4) !== 1) return false;
  return msg.subarray(HEADER_LEN, HEADER_LEN + question.length).equals(question);
}

function healthQuery(): Buffer {
  const b = Buffer.alloc(HEADER_LEN + 5);
  b.writeUInt16BE(FLAG_RD, 2);
  b.writeUInt16BE(1, 4);
  b[HEADER_LEN] = 0; // the root
  b.writeUInt16BE(QTYPE.NS, HEADER_LEN + 1);
  b.writeUInt16BE(1, HEADER_LEN + 3);
  return b;
}
