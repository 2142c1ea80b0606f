// One UDP listener of the userspace mode: a socket on a service address and port, and a session
// per client address:port with its own socket connected to the endpoint chosen for the session's
// first datagram. Replies go back through the listener socket, so a client sees them from the
// address and port it asked. A session ends after IDLE_MS without traffic either way, when its
// endpoint reports an error (ICMP unreachable), when the endpoint leaves the route (the next
// datagram then picks a live one), or with its listener. No endpoint: the datagram is dropped.
// The service's SessionBudget bounds its sessions (and so its sockets): past it, new ones are
// dropped.
import dgram from 'node:dgram';
import type { Logger } from '../../common/log.js';
import type { Target } from '../core/model.js';
import { admits, type ListenerSpec } from './listeners.js';
import { plainAddress, type Router } from './router.js';
import type { SessionBudget } from './sessions.js';

export const IDLE_MS = 30_000;
/** Datagrams kept for a session while its socket connects; more are dropped. */
const QUEUE_MAX = 64;

class UdpSession {
  private readonly up: dgram.Socket;
  private connected = false;
  private closed = false;
  private queue: Buffer[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly target: Target,
    private readonly listener: dgram.Socket,
    private readonly client: { address: string; port: number },
    family: 'udp4' | 'udp6',
    idleMs: number,
    private readonly onClose: () => void,
  ) {
    this.timer = setTimeout(() => this.close(), idleMs);
    this.timer.unref();
    this.up = dgram.createSocket(family);
    this.up.on('message', (m) => {
      this.timer.refresh();
      this.listener.send(m, this.client.port, this.client.address, () => {});
    });
    this.up.on('error', () => this.close());
    this.up.connect(target.port, target.ip, () => {
      this.connected = true;
      for (const m of this.queue) this.up.send(m);
      this.queue = [];
    });
  }

  send(m: Buffer): void {
    if (this.closed) return;
    this.timer.refresh();
    if (this.connected) this.up.send(m, (err) => err && this.close());
    else if (this.queue.length < QUEUE_MAX) this.queue.push(m);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    try {
      this.up.close();
    } catch {
      // already closed by an error
    }
    this.onClose();
  }
}

export class UdpListener {
  private readonly socket: dgram.Socket;
  private readonly sessions = new Map<string, UdpSession>();

  constructor(
    public spec: ListenerSpec,
    private readonly router: Router,
    private readonly log: Logger,
    /** The budget of the service a new session belongs to (looked up per session: a sync may hand the socket to another service). */
    private readonly budgetOf: (spec: ListenerSpec) => SessionBudget,
    private readonly idleMs = IDLE_MS,
  ) {
    const type = spec.family === 'IPv6' ? 'udp6' : 'udp4';
    this.socket = dgram.createSocket({ type, ipv6Only: type === 'udp6' });
    this.socket.on('message', (m, r) => this.receive(m, r));
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  /** The port bound (the spec's, or the kernel's choice for port 0). */
  boundPort(): number {
    return (this.socket.address() as { port: number }).port;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const failed = (err: Error) => reject(err);
      this.socket.once('error', failed);
      this.socket.bind({ address: this.spec.host, port: this.spec.port, exclusive: true }, () => {
        this.socket.off('error', failed);
        this.socket.on('error', (err) => this.log.warn('UDP listener error', { listener: this.spec.key, service: this.spec.portName, error: err.message }));
        resolve();
      });
    });
  }

  /** Ends the sessions whose endpoint no longer serves this listener. */
  prune(): number {
    let n = 0;
    for (const s of [...this.sessions.values()]) {
      if (!this.router.has(this.spec, s.target)) {
        s.close();
        n++;
      }
    }
    return n;
  }

  close(): void {
    for (const s of [...this.sessions.values()]) s.close();
    try {
      this.socket.close();
    } catch {
      // never bound
    }
  }

  private receive(m: Buffer, r: dgram.RemoteInfo): void {
    const key = `${r.address} ${r.port}`;
    let s = this.sessions.get(key);
    if (!s) {
      // Outside loadBalancerSourceRanges: dropped, as the rule-based modes' firewall does.
      if (!admits(this.spec, plainAddress(r.address))) return;
      const t = this.router.pick(this.spec, plainAddress(r.address));
      if (!t) return;
      const budget = this.budgetOf(this.spec);
      if (!budget.take()) return;
      const session: UdpSession = new UdpSession(t, this.socket, { address: r.address, port: r.port }, this.spec.family === 'IPv6' ? 'udp6' : 'udp4', this.idleMs, () => {
        budget.release();
        if (this.sessions.get(key) === session) this.sessions.delete(key);
      });
      s = session;
      this.sessions.set(key, s);
    }
    s.send(m);
  }
}
