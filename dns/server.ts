// UDP and TCP listeners on one address. TCP follows RFC 7766: length-prefixed messages, several
// per connection, pipelined and answered as they complete, closed when idle. A client that
// trickles a message byte by byte (slow-loris) or never finishes one is cut off after the idle
// timeout; a client with too many questions in flight stops being read until they are answered.
import net from 'node:net';
import { networkInterfaces } from 'node:os';
import type { Logger } from '../common/log.js';
import type { ListenAddress } from '../common/http-server.js';
import type { HandlerResult, QueryHandler, Transport } from './handler.js';
import type { Peer } from './querylog.js';
import { batchUnavailable, openBatchSocket } from './udp/batch-socket.js';
import { openDgramSocket } from './udp/dgram-socket.js';
import type { UdpOpener, UdpSocket } from './udp/socket.js';

export interface ServerOptions {
  readonly idleMs?: number;
  readonly maxConnections?: number;
  readonly maxInflightPerConnection?: number;
  /** How often a wildcard listener looks for new local addresses. */
  readonly rescanMs?: number;
  /** Whether a source address may ask; others get REFUSED (dns/acl.ts). Absent: everyone. */
  readonly allows?: (address: string) => boolean;
  /** SO_REUSEPORT on the UDP sockets: several threads (dns/workers/) bind the same address and
   *  the kernel spreads the clients over them. */
  readonly reusePort?: boolean;
  /** UDP only (a worker thread: TCP stays with the main thread). */
  readonly udpOnly?: boolean;
}

/** How this build makes UDP sockets: batched (dns/udp/batch-socket.ts) where its binding is
 *  built, else node:dgram, with the reason. */
export const defaultUdp: { open: UdpOpener; fallbackReason?: string } = batchUnavailable === undefined
  ? { open: openBatchSocket }
  : { open: openDgramSocket, fallbackReason: batchUnavailable };

export function serverLabel(a: ListenAddress): string {
  return `dns://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

export class DnsListener {
  /** UDP sockets by local address ('' for a specific --listen address). */
  private readonly udp = new Map<string, UdpSocket>();
  /** Local addresses a wildcard listener failed to bind, so each failure is logged once. */
  private readonly unbindable = new Set<string>();
  /** TCP listeners, keyed as `udp`. */
  private readonly tcp = new Map<string, net.Server>();
  private rescanTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly sessions = new Set<net.Socket>();
  private readonly idleMs: number;
  private readonly maxInflight: number;
  private readonly v6: boolean;
  private readonly wildcard: boolean;
  private readonly allows?: (address: string) => boolean;
  private udpTransport?: Transport;
  private tcpTransport?: Transport;
  /** The address actually bound (port 0 becomes a real port). */
  bound?: ListenAddress;

  constructor(
    private readonly addr: ListenAddress,
    private handler: QueryHandler,
    private readonly log: Logger,
    private readonly opts: ServerOptions = {},
  ) {
    this.idleMs = opts.idleMs ?? 10_000;
    this.maxInflight = opts.maxInflightPerConnection ?? 128;
    this.v6 = net.isIPv6(addr.host);
    this.wildcard = addr.host === '0.0.0.0' || addr.host === '::';
    this.allows = opts.allows;
  }

  /**
   * Binds UDP and TCP: on a specific address, one socket each; on a wildcard address, one pair
   * per local address of that family, rescanned every `rescanMs`. A reply from a wildcard UDP
   * socket leaves from whatever address the kernel picks for the route back, and a client that
   * asked a secondary address (a DNS VIP added to an interface) drops it as coming from a
   * stranger; Node cannot set the source per reply (no IP_PKTINFO), so we bind each address, as
   * dnsmasq's --bind-dynamic does. TCP is bound per address too: a wildcard TCP bind of :53
   * fails outright on a node where systemd-resolved holds 127.0.0.53:53, and that address (not
   * an interface address) is then simply not ours.
   */
  /** Queries from now on go to `handler` (a reloaded configuration); the sockets stay. */
  setHandler(handler: QueryHandler): void {
    this.handler = handler;
  }

  async start(): Promise<ListenAddress> {
    const v6 = this.v6;
    const family = v6 ? '2' : '1';
    this.bound = { host: this.addr.host, port: this.addr.port };
    if (!this.wildcard) {
      try {
        this.bound.port = await this.bindPair(this.addr.host, this.addr.port, '');
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const why = e.code === 'EADDRINUSE' ? 'the address is in use by another process'
          : e.code === 'EADDRNOTAVAIL' ? 'no interface of this node has that address' : e.message;
        throw new Error(`--listen ${serverLabel(this.addr)}: cannot listen: ${why} (${e.code ?? 'error'})`);
      }
    } else {
      await this.rescan();
      const every = this.opts.rescanMs ?? 2000;
      const tick = () => {
        this.rescanTimer = setTimeout(() => void this.rescan().finally(() => !this.stopped && tick()), every);
        this.rescanTimer.unref();
      };
      tick();
    }
    const label = serverLabel(this.bound);
    this.tcpTransport = { proto: 'tcp', family, server: label };
    this.udpTransport = { proto: 'udp', family, server: label };
    return this.bound;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.rescanTimer);
    const socks = [...this.udp.values()];
    const servers = [...this.tcp.values()];
    this.udp.clear();
    this.tcp.clear();
    await Promise.all(socks.map((u) => u.close()));
    for (const s of this.sessions) s.destroy();
    await Promise.all(servers.map((t) => new Promise<void>((resolve) => t.close(() => resolve()))));
  }

  /** Binds the local addresses that appeared since the last scan, closes the vanished ones. */
  private async rescan(): Promise<void> {
    if (this.stopped || !this.bound) return;
    const now = new Set<string>();
    for (const [ifname, list] of Object.entries(networkInterfaces())) {
      for (const a of list ?? []) {
        if ((a.family === 'IPv6') !== this.v6) continue;
        // A link-local address exists once per link, so it is bound with its scope
        // (fe80::1%eth0); replies then leave on that link. Node gives a link-local sender's
        // address with its scope too (rinfo.address 'fe80::2%eth0'), which is what send needs.
        now.add(a.family === 'IPv6' && a.scopeid ? `${a.address}%${ifname}` : a.address);
      }
    }
    for (const host of [...this.udp.keys()]) if (!now.has(host)) this.unbind(host);
    for (const host of this.unbindable) if (!now.has(host)) this.unbindable.delete(host);
    for (const host of now) {
      if (this.udp.has(host)) continue;
      try {
        const port = await this.bindPair(host, this.bound.port, host);
        // Port 0: the first address picks the port, every other address shares it.
        if (this.bound.port === 0) this.bound.port = port;
        this.unbindable.delete(host);
      } catch (err) {
        // Retried on every scan (an IPv6 address is unbindable until duplicate address
        // detection ends, about a second after its link comes up), but said once.
        if (this.unbindable.has(host)) continue;
        this.unbindable.add(host);
        this.log.warn('cannot listen on a local address (retrying)', { listen: serverLabel({ host, port: this.bound.port }), error: err as Error });
      }
    }
  }

  private unbind(key: string): void {
    void this.udp.get(key)?.close();
    this.udp.delete(key);
    this.tcp.get(key)?.close();
    this.tcp.delete(key);
  }

  /** UDP and TCP on one address and port, both or neither; returns the port bound. */
  private async bindPair(host: string, port: number, key: string): Promise<number> {
    const bound = (await this.bindUdp(host, port, key)).port;
    if (this.opts.udpOnly) return bound;
    try {
      await this.bindTcp(host, bound, key);
    } catch (err) {
      this.unbind(key);
      throw err;
    }
    return bound;
  }

  private async bindTcp(host: string, port: number, key: string): Promise<void> {
    const tcp = net.createServer({ allowHalfOpen: true }, (sock) => {
      const t = this.tcpTransport;
      if (!t) return void sock.destroy();
      this.session(sock, t);
    });
    tcp.maxConnections = this.opts.maxConnections ?? 1000;
    await new Promise<void>((resolve, reject) => {
      tcp.once('error', reject);
      tcp.listen({ host, port, ipv6Only: this.v6 }, () => {
        tcp.off('error', reject);
        resolve();
      });
    });
    tcp.on('error', (err) => this.log.warn('tcp listener error', { listen: serverLabel({ host, port }), error: err }));
    this.tcp.set(key, tcp);
  }

  private async bindUdp(host: string, port: number, key: string): Promise<UdpSocket> {
    const onError = (err: Error) => this.log.warn('udp socket error', { listen: serverLabel({ host, port }), error: err });
    const udp = await defaultUdp.open({ host, port, reusePort: this.opts.reusePort === true, bufferBytes: 4 << 20, onError }, (msg, from) => this.query(msg, from));
    this.udp.set(key, udp);
    return udp;
  }

  /** One UDP query's answer; a failure is logged here and answers nothing (the client retries). */
  private query(msg: Buffer, from: Peer): HandlerResult {
    const t = this.udpTransport;
    if (!t) return undefined;
    let r: HandlerResult;
    try {
      r = this.allows && !this.allows(from.address) ? this.handler.refuse(msg, t) : this.handler.handle(msg, t, from);
    } catch (err) {
      this.log.error('udp query failed', { error: (err as Error).stack ?? String(err) });
      return undefined;
    }
    if (r === undefined || Buffer.isBuffer(r)) return r;
    return r.catch((err: unknown) => {
      this.log.error('udp query failed', { error: String(err) });
      return undefined;
    });
  }

  private session(sock: net.Socket, t: Transport): void {
    this.sessions.add(sock);
    const refused = this.allows !== undefined && !this.allows(sock.remoteAddress ?? '');
    const peer = { address: sock.remoteAddress ?? '', port: sock.remotePort ?? 0 };
    let buf: Buffer = Buffer.alloc(0);
    let inflight = 0;
    let ended = false;
    let partialTimer: NodeJS.Timeout | undefined;
    const close = () => {
      clearTimeout(partialTimer);
      sock.destroy();
    };
    sock.setNoDelay(true);
    // No byte either way for the idle time: gone.
    sock.setTimeout(this.idleMs, close);
    sock.on('error', close);
    sock.on('close', () => {
      clearTimeout(partialTimer);
      this.sessions.delete(sock);
    });
    const maybeEnd = () => {
      if (ended && inflight === 0 && !sock.destroyed) sock.end();
    };
    const send = (reply: Buffer | undefined) => {
      inflight--;
      if (reply && !sock.destroyed && sock.writable) {
        const framed = Buffer.allocUnsafe(reply.length + 2);
        framed.writeUInt16BE(reply.length, 0);
        reply.copy(framed, 2);
        sock.write(framed);
      }
      if (inflight < this.maxInflight && sock.isPaused() && !ended) sock.resume();
      maybeEnd();
    };
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      let completed = false;
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len === 0) return close(); // no DNS message is empty: this is not a DNS client
        if (buf.length < 2 + len) break;
        const msg = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        completed = true;
        inflight++;
        let r: HandlerResult;
        try {
          r = refused ? this.handler.refuse(msg, t) : this.handler.handle(msg, t, peer);
        } catch (err) {
          this.log.error('tcp query failed', { error: (err as Error).stack ?? String(err) });
          r = undefined;
        }
        if (r === undefined || Buffer.isBuffer(r)) send(r);
        else r.then(send, () => send(undefined));
      }
      // A message begun must be finished within the idle time, however slowly its bytes come.
      if (completed || buf.length === 0) {
        clearTimeout(partialTimer);
        partialTimer = undefined;
      }
      if (buf.length > 0 && !partialTimer) partialTimer = setTimeout(close, this.idleMs);
      if (inflight >= this.maxInflight) sock.pause();
    });
    sock.on('end', () => {
      ended = true;
      maybeEnd();
    });
  }
}
