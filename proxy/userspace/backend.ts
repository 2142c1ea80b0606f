// The userspace mode: service addresses are made local on a VIP interface the backend owns, and
// Node listeners on them (and on the node ports) forward each connection or UDP session to an
// endpoint. A partial sync touches only the changed services' listeners and addresses; a full
// sync reconciles everything, including addresses left on the interface from before and
// listeners that could not bind earlier. A listener that cannot bind is logged and retried at
// the next reconcile tick (a full pass here); it never fails the sync for the others.
import type net from 'node:net';
import type { ObjectKey } from '../../cluster/types.js';
import type { Logger } from '../../common/log.js';
import type { Backend, SyncRequest, SyncResult } from '../core/backend.js';
import type { Target } from '../core/model.js';
import { ListenerSet, routeKey, type ListenerSpec } from './listeners.js';
import { DEFAULT_MAX_UDP_SESSIONS, SessionBudget } from './sessions.js';
import { PortRoute } from './route.js';
import type { Router } from './router.js';
import { TcpListener } from './tcp.js';
import { UdpListener } from './udp.js';
import { VipInterface } from './vips.js';

type Listener = TcpListener | UdpListener;

export interface UserspaceOptions {
  /** The VIP interface (default kdp-vips0). */
  interfaceName?: string;
  /** UDP session idle timeout, ms (default 30 s). */
  udpIdleMs?: number;
  /** UDP sessions (sockets) one service may hold at once (default 1000). */
  maxUdpSessionsPerService?: number;
}

export class UserspaceBackend implements Backend, Router {
  readonly name = 'userspace';
  /** Endpoints see the node as the client: no NAT flows to clear. */
  readonly natFlows = false;
  private readonly set = new ListenerSet();
  private readonly bound = new Map<string, Listener>();
  private readonly routes = new Map<string, PortRoute>();
  private readonly routesOf = new Map<ObjectKey, string[]>();
  private readonly unsupportedLogged = new Set<string>();
  /** Spliced TCP sockets, so cleanup can end them. */
  private readonly live = new Set<net.Socket>();
  /** Closed TCP listeners whose connections go on: their address stays until they end. */
  private readonly draining = new Set<TcpListener>();
  /** Addresses no longer wanted, kept for draining connections. */
  private readonly lingering = new Set<string>();
  /** Per service; dropped at a full sync once the service has neither sessions nor routes. */
  private readonly budgets = new Map<ObjectKey, SessionBudget>();
  readonly vips: VipInterface;
  private prepared = false;

  constructor(private readonly opts: UserspaceOptions, private readonly log: Logger) {
    this.vips = new VipInterface(log, opts.interfaceName);
  }

  /** The VIPs are local addresses but not the node's: counted as such, a sync would serve node ports on them. */
  get ownedInterface(): string {
    return this.vips.name;
  }

  /** Creates the VIP interface now, so a start without the rights to do so fails clearly. */
  async prepare(): Promise<void> {
    await this.vips.ensure();
    this.prepared = true;
  }

  pick(spec: ListenerSpec, clientIP: string, avoid?: ReadonlySet<string>): Target | undefined {
    return this.routes.get(spec.route)?.balancer(spec.path).pick(clientIP, avoid);
  }

  has(spec: ListenerSpec, target: Target): boolean {
    return !!this.routes.get(spec.route)?.balancer(spec.path).has(target);
  }

  async sync(req: SyncRequest): Promise<SyncResult> {
    // A reconcile tick is a full pass here: reading the interface's addresses and retrying the
    // listeners that could not bind is what this mode's repair is, and it costs little.
    const full = req.full || req.reconcile;
    const present = full || !this.prepared ? await this.vips.ensure() : undefined;
    this.prepared = true;
    const services = full ? new Set([...this.routesOf.keys(), ...req.plans.keys()]) : req.changed;
    this.updateRoutes(req, services);
    const delta = this.set.apply(req.plans, req.changed, full, req.node);

    for (const p of delta.unsupported) {
      const id = routeKey(p);
      if (this.unsupportedLogged.has(id)) continue;
      this.unsupportedLogged.add(id);
      this.log.warn('SCTP is not supported in userspace mode; this service port is not served', { service: p.name, port: p.port, family: p.family });
    }
    for (const { spec, holder } of delta.conflicts) {
      this.log.warn('service address and port already served by another service; not listening', { service: spec.portName, listener: spec.key, heldBy: holder.portName });
    }

    // Addresses first: the new listeners bind on them.
    let add = delta.addressesAdded;
    let remove = delta.addressesRemoved;
    if (present) {
      const wanted = new Set(this.set.addresses());
      add = [...wanted].filter((a) => !present.has(a));
      remove = [...present].filter((a) => !wanted.has(a));
    }
    const unusable = new Set<string>();
    for (const f of await this.vips.change(add, [])) {
      unusable.add(f.address);
      this.log.warn('cannot add a service address to the VIP interface; its listeners wait for the next reconcile tick', { address: f.address, interface: this.vips.name, error: f.error });
    }

    for (const spec of delta.removed) this.closeListener(spec.key);
    for (const spec of delta.updated) {
      const l = this.bound.get(spec.key);
      if (!l) continue;
      // Its last endpoint went: stop accepting, so new clients are refused at connect.
      if (spec.refuse) this.closeListener(spec.key);
      else l.spec = spec;
    }
    const toOpen = (full ? [...this.set.all()].filter((s) => !this.bound.has(s.key)) : delta.added.concat(delta.updated.filter((s) => !this.bound.has(s.key))))
      .filter((s) => !s.refuse);
    const opened = await Promise.all(toOpen.map((spec) => this.open(spec, unusable.has(spec.host))));

    // Sessions to endpoints that left: the next datagram picks a live one.
    for (const svc of services) {
      for (const key of this.set.keysOf(svc)) {
        const l = this.bound.get(key);
        if (l instanceof UdpListener) {
          const n = l.prune();
          if (n) this.log.debug('UDP sessions to removed endpoints closed', { listener: key, sessions: n });
        }
      }
    }

    // An address still carrying connections of a closed listener stays until they end, so they
    // can finish; it is removed at the first sync after that.
    const held = new Set<string>();
    for (const l of this.draining) {
      if (l.active > 0) held.add(l.spec.host);
      else this.draining.delete(l);
    }
    for (const a of this.lingering) if (!held.has(a) && !this.set.wantsAddress(a) && !remove.includes(a)) remove.push(a);
    this.lingering.clear();
    remove = remove.filter((a) => {
      if (!held.has(a)) return true;
      this.lingering.add(a);
      return false;
    });
    for (const f of await this.vips.change([], remove)) {
      this.log.warn('cannot remove a service address from the VIP interface', { address: f.address, interface: this.vips.name, error: f.error });
    }
    if (full) {
      for (const r of this.routes.values()) r.expire();
      for (const [svc, b] of this.budgets) if (b.count === 0 && !this.routesOf.has(svc)) this.budgets.delete(svc);
    }
    return {
      rules: { listeners: this.bound.size, addresses: [...this.set.addresses()].length },
      written: { listeners: opened.filter(Boolean).length, addresses: add.length + remove.length },
    };
  }

  private updateRoutes(req: SyncRequest, services: Iterable<ObjectKey>): void {
    for (const svc of services) {
      const plan = req.plans.get(svc);
      const keep = new Set<string>();
      for (const p of plan?.ports ?? []) {
        const k = routeKey(p);
        keep.add(k);
        const r = this.routes.get(k);
        if (r) r.update(p);
        else this.routes.set(k, new PortRoute(p));
      }
      for (const k of this.routesOf.get(svc) ?? []) {
        if (keep.has(k)) continue;
        this.routes.delete(k);
        this.unsupportedLogged.delete(k);
      }
      if (keep.size) this.routesOf.set(svc, [...keep]);
      else this.routesOf.delete(svc);
    }
  }

  private async open(spec: ListenerSpec, addressMissing: boolean): Promise<boolean> {
    if (addressMissing) return false;
    const l: Listener = spec.protocol === 'TCP' ? new TcpListener(spec, this, this.live, this.log) : new UdpListener(spec, this, this.log, (s) => this.budgetOf(s), this.opts.udpIdleMs);
    try {
      await l.listen();
    } catch (err) {
      l.close();
      this.log.warn('cannot listen for a service; retried at the next reconcile tick', { service: spec.portName, listener: spec.key, error: (err as NodeJS.ErrnoException).code ?? (err as Error).message });
      return false;
    }
    this.bound.set(spec.key, l);
    return true;
  }

  private budgetOf(spec: ListenerSpec): SessionBudget {
    let b = this.budgets.get(spec.service);
    if (!b) {
      const max = this.opts.maxUdpSessionsPerService ?? DEFAULT_MAX_UDP_SESSIONS;
      b = new SessionBudget(max, () =>
        this.log.warn('UDP session limit reached; datagrams that would start a new session are dropped', { service: spec.service, max }),
      );
      this.budgets.set(spec.service, b);
    }
    return b;
  }

  private closeListener(key: string): void {
    const l = this.bound.get(key);
    if (!l) return;
    l.close();
    this.bound.delete(key);
    if (l instanceof TcpListener && l.spec.vip && l.active > 0) this.draining.add(l);
  }

  /** The listeners now bound, by key (tests). */
  listenerKeys(): string[] {
    return [...this.bound.keys()].sort();
  }

  /** Closes every listener, UDP session and spliced connection; the addresses stay. */
  close(): void {
    for (const key of [...this.bound.keys()]) this.closeListener(key);
    for (const s of this.live) s.destroy();
    this.live.clear();
    this.draining.clear();
    this.lingering.clear();
  }

  /** Closes everything and deletes the VIP interface with its addresses. */
  async cleanup(): Promise<void> {
    this.close();
    if (await this.vips.remove()) this.log.info('VIP interface removed', { interface: this.vips.name });
    this.prepared = false;
  }
}
