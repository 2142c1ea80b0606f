// Which sockets the userspace mode wants: one listener per service address and port (cluster IP,
// external IPs, load-balancer IPs, node port at the node-port addresses or the family's
// wildcard), and the VIPs that must be local for them to bind. A sync changes this set only for
// the services it names (all of them when full); the result says what to open, close and
// retarget, so the sockets are touched in proportion to the change.
import type { IPFamily, ObjectKey } from '../../cluster/types.js';
import { cidrContains } from '../../common/ip.js';
import type { NodeFacts } from '../core/backend.js';
import type { ServicePlan, ServicePortPlan } from '../core/model.js';
import { firewallAdmitsNode } from '../core/port-decisions.js';

/** Cluster-IP traffic follows internalTrafficPolicy; the rest externalTrafficPolicy. */
export type TrafficPath = 'internal' | 'external';

export interface ListenerSpec {
  /** `TCP 10.96.0.10:80`, `UDP [::]:30080`: what one socket binds, unique on the node. */
  readonly key: string;
  readonly service: ObjectKey;
  /** The service port (`namespace/name:port`), for logs. */
  readonly portName: string;
  /** Which service port's endpoints serve it (see routeKey). */
  readonly route: string;
  readonly protocol: 'TCP' | 'UDP';
  readonly family: IPFamily;
  readonly host: string;
  readonly port: number;
  readonly path: TrafficPath;
  /** The host is a service address that must be put on the VIP interface to bind. */
  readonly vip: boolean;
  /**
   * Set on a load-balancer IP listener of a service with loadBalancerSourceRanges: the only
   * sources served (none: every source is refused). Absent: every source is served.
   */
  readonly sourceRanges?: readonly string[];
  /**
   * The service port has no endpoint anywhere. kube-proxy REJECTs such traffic, so the client is
   * refused at connect: no socket is kept for it (the kernel answers a TCP SYN with a reset and a
   * UDP datagram with port unreachable), while its address stays local so that the kernel, not a
   * route elsewhere, answers. Accepting and then resetting would tell the client it connected.
   */
  readonly refuse?: true;
}

export interface ListenerDelta {
  readonly added: ListenerSpec[];
  readonly removed: ListenerSpec[];
  /** Same socket, other service, port, path or VIP role. */
  readonly updated: ListenerSpec[];
  /** Wanted by a second service port while another holds it; the holder keeps it. */
  readonly conflicts: { spec: ListenerSpec; holder: ListenerSpec }[];
  /** Service ports of the synced services that cannot be served (SCTP). */
  readonly unsupported: ServicePortPlan[];
  readonly addressesAdded: string[];
  readonly addressesRemoved: string[];
}

export function routeKey(p: Pick<ServicePortPlan, 'name' | 'protocol' | 'family'>): string {
  return `${p.name}/${p.protocol}/${p.family}`;
}

export function listenerKey(protocol: string, host: string, port: number): string {
  return host.includes(':') ? `${protocol} [${host}]:${port}` : `${protocol} ${host}:${port}`;
}

/** Whether a listener serves a client: its source ranges hold the client's address. */
export function admits(spec: Pick<ListenerSpec, 'sourceRanges'>, clientIP: string): boolean {
  return !spec.sourceRanges || spec.sourceRanges.some((cidr) => cidrContains(cidr, clientIP));
}

/**
 * The sources a load-balancer IP of `p` serves, as the rule-based modes' firewall chain: the
 * plan's ranges of this family, and the LB IPs themselves when a range holds one of the node's
 * addresses — the node's own connection to a local LB IP has that IP as its source.
 */
export function loadBalancerSources(p: ServicePortPlan, node: NodeFacts): readonly string[] | undefined {
  if (!p.firewall) return undefined;
  const self = firewallAdmitsNode(p, node.nodeIPs[p.family]) ? p.loadBalancerIPs.map((ip) => `${ip}/${p.family === 'IPv4' ? 32 : 128}`) : [];
  return [...p.sourceRanges, ...self];
}

export const WILDCARD: Readonly<Record<IPFamily, string>> = { IPv4: '0.0.0.0', IPv6: '::' };

/** The listeners one service wants on this node, and its ports that cannot be served. */
export function listenersOf(plan: ServicePlan, node: NodeFacts): { specs: ListenerSpec[]; unsupported: ServicePortPlan[] } {
  const specs: ListenerSpec[] = [];
  const unsupported: ServicePortPlan[] = [];
  const seen = new Set<string>();
  for (const p of plan.ports) {
    if (p.protocol !== 'TCP' && p.protocol !== 'UDP') {
      unsupported.push(p);
      continue;
    }
    const protocol = p.protocol;
    const local = new Set(node.nodeIPs[p.family]);
    const add = (host: string, port: number, path: TrafficPath, service: boolean, sourceRanges?: readonly string[]) => {
      const key = listenerKey(protocol, host, port);
      // An external IP that is also the LB IP: one socket, unfiltered, as in the rule-based
      // modes, where the external IP's DNAT comes before the LB IP's firewall.
      if (seen.has(key)) return;
      seen.add(key);
      const spec: ListenerSpec = {
        key, service: plan.key, portName: p.name, route: routeKey(p), protocol, family: p.family, host, port, path, vip: service && !local.has(host),
        ...(sourceRanges ? { sourceRanges } : {}),
        ...(p.hasAnyEndpoints ? {} : { refuse: true as const }),
      };
      specs.push(spec);
    };
    if (p.clusterIP) add(p.clusterIP, p.port, 'internal', true);
    for (const ip of p.externalIPs) add(ip, p.port, 'external', true);
    const lbSources = loadBalancerSources(p, node);
    for (const ip of p.loadBalancerIPs) add(ip, p.port, 'external', true, lbSources);
    if (p.nodePort > 0) {
      const at = node.nodePortAddresses[p.family];
      for (const host of at === 'all' ? [WILDCARD[p.family]] : at) add(host, p.nodePort, 'external', false);
    }
  }
  return { specs, unsupported };
}

function sameRanges(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (!a || !b) return a === b;
  return a.length === b.length && a.every((c, i) => c === b[i]);
}

function sameSpec(a: ListenerSpec, b: ListenerSpec): boolean {
  return a.service === b.service && a.route === b.route && a.path === b.path && a.vip === b.vip && a.portName === b.portName && a.refuse === b.refuse && sameRanges(a.sourceRanges, b.sourceRanges);
}

/** The wanted listeners and VIPs of every service, changed one sync at a time. */
export class ListenerSet {
  private readonly wanted = new Map<string, ListenerSpec>();
  private readonly byService = new Map<ObjectKey, string[]>();
  private readonly addressRefs = new Map<string, number>();

  get size(): number {
    return this.wanted.size;
  }

  all(): IterableIterator<ListenerSpec> {
    return this.wanted.values();
  }

  get(key: string): ListenerSpec | undefined {
    return this.wanted.get(key);
  }

  /** The keys a service holds. */
  keysOf(service: ObjectKey): readonly string[] {
    return this.byService.get(service) ?? [];
  }

  addresses(): IterableIterator<string> {
    return this.addressRefs.keys();
  }

  wantsAddress(addr: string): boolean {
    return this.addressRefs.has(addr);
  }

  /**
   * Re-derives the listeners of the `changed` services (of every service when `full`) from their
   * plans. Ties go to the service that already held the socket, then to the first by key.
   */
  apply(plans: ReadonlyMap<ObjectKey, ServicePlan>, changed: ReadonlySet<ObjectKey>, full: boolean, node: NodeFacts): ListenerDelta {
    const services = full ? new Set([...this.byService.keys(), ...plans.keys()]) : changed;
    const before = new Map<string, ListenerSpec>();
    const refsBefore = new Map<string, number>();
    const ref = (addr: string, d: number) => {
      if (!refsBefore.has(addr)) refsBefore.set(addr, this.addressRefs.get(addr) ?? 0);
      const n = (this.addressRefs.get(addr) ?? 0) + d;
      if (n > 0) this.addressRefs.set(addr, n);
      else this.addressRefs.delete(addr);
    };
    for (const svc of services) {
      for (const key of this.byService.get(svc) ?? []) {
        const spec = this.wanted.get(key)!;
        before.set(key, spec);
        this.wanted.delete(key);
        if (spec.vip) ref(spec.host, -1);
      }
      this.byService.delete(svc);
    }

    const conflicts: ListenerDelta['conflicts'] = [];
    const unsupported: ServicePortPlan[] = [];
    const candidates: ListenerSpec[] = [];
    for (const svc of [...services].sort()) {
      const plan = plans.get(svc);
      if (!plan) continue;
      const r = listenersOf(plan, node);
      candidates.push(...r.specs);
      unsupported.push(...r.unsupported);
    }
    const take = (spec: ListenerSpec) => {
      const holder = this.wanted.get(spec.key);
      if (holder) {
        conflicts.push({ spec, holder });
        return;
      }
      this.wanted.set(spec.key, spec);
      const keys = this.byService.get(spec.service);
      if (keys) keys.push(spec.key);
      else this.byService.set(spec.service, [spec.key]);
      if (spec.vip) ref(spec.host, +1);
    };
    // Incumbents first, so a newcomer never takes a socket from a service that still wants it.
    for (const spec of candidates) if (before.get(spec.key)?.service === spec.service) take(spec);
    for (const spec of candidates) if (before.get(spec.key)?.service !== spec.service) take(spec);

    const added: ListenerSpec[] = [];
    const removed: ListenerSpec[] = [];
    const updated: ListenerSpec[] = [];
    for (const [key, old] of before) {
      const now = this.wanted.get(key);
      if (!now) removed.push(old);
      else if (!sameSpec(old, now)) updated.push(now);
    }
    for (const svc of services) for (const key of this.byService.get(svc) ?? []) if (!before.has(key)) added.push(this.wanted.get(key)!);
    const addressesAdded: string[] = [];
    const addressesRemoved: string[] = [];
    for (const [addr, n] of refsBefore) {
      const now = this.addressRefs.get(addr) ?? 0;
      if (n === 0 && now > 0) addressesAdded.push(addr);
      if (n > 0 && now === 0) addressesRemoved.push(addr);
    }
    return { added, removed, updated, conflicts, unsupported, addressesAdded, addressesRemoved };
  }
}
