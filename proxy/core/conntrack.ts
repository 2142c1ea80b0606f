// Stale UDP flows. UDP has no connection to close, so a conntrack entry keeps sending a client's
// packets to a DNAT target long after it is gone (or, for a service that had no endpoints, keeps
// an entry that was never DNATed). The rule is kube-proxy's (1.32+, pkg/proxy/conntrack
// CleanStaleEntries), decided here purely from one dump of the table per family and sync:
//   - for every UDP service port with at least one serving endpoint, an entry whose original
//     destination is one of its addresses (cluster IP, external IPs, load-balancer IPs) and port,
//     or whose original destination port is its node port, and whose reply source is NOT the IP
//     of one of those serving endpoints, is stale;
//   - a port without serving endpoints is left alone (nothing could replace its entries), and so
//     is every entry to an address or port no UDP service has.
// Serving endpoints are taken whatever the traffic policy, topology or terminating state: those
// decide new flows, and existing flows keep their endpoint as TCP connections do.
// Because the decision compares the table with what is wanted now, it needs no memory of the
// previous state: a restarted proxy deletes only what is stale, never every UDP service's flows.
import type { IPFamily, ObjectKey, ServiceEndpoints } from '../../cluster/types.js';
import type { ServicePlan, ServicePortPlan } from './model.js';

/** One UDP entry of `conntrack -L -p udp -o extended`. */
export interface UdpFlow {
  readonly family: IPFamily;
  readonly origSrc: string;
  readonly origDst: string;
  readonly origPortDst: number;
  readonly replySrc: string;
}

/** One deletion, as kube-proxy words its filters: by service address and port, or by node port. */
export interface FlowFilter {
  readonly family: IPFamily;
  readonly origDst?: string;
  readonly origPortDst: number;
  readonly replySrc: string;
}

/** What is wanted: service address:port (or node port) → IPs of its serving endpoints. */
export interface ServingIndex {
  readonly byAddress: Map<string, Set<string>>;
  readonly byNodePort: Map<number, Set<string>>;
}

const addressKey = (ip: string, port: number) => `${ip}|${port}`;

/** The port's name in its EndpointSlices: the plan names it `namespace/name:port`. */
function portName(p: ServicePortPlan): string {
  return p.name.length > p.serviceKey.length ? p.name.slice(p.serviceKey.length + 1) : '';
}

function servingIPs(p: ServicePortPlan, eps: ServiceEndpoints | undefined): Set<string> {
  const ips = new Set<string>();
  const name = portName(p);
  for (const ep of eps?.ports ?? []) {
    if (ep.name !== name || ep.protocol !== 'UDP') continue;
    for (const e of ep.endpoints) if (e.family === p.family && e.serving) ips.add(e.ip);
  }
  return ips;
}

export function servingIndex(
  plans: Iterable<ServicePlan>,
  endpointsOf: (key: ObjectKey) => ServiceEndpoints | undefined,
  family: IPFamily,
): ServingIndex {
  const byAddress = new Map<string, Set<string>>();
  const byNodePort = new Map<number, Set<string>>();
  for (const plan of plans) {
    let eps: ServiceEndpoints | undefined;
    let looked = false;
    for (const p of plan.ports) {
      if (p.protocol !== 'UDP' || p.family !== family) continue;
      if (!looked) {
        eps = endpointsOf(plan.key);
        looked = true;
      }
      const ips = servingIPs(p, eps);
      if (ips.size === 0) continue;
      for (const ip of [...(p.clusterIP ? [p.clusterIP] : []), ...p.externalIPs, ...p.loadBalancerIPs]) byAddress.set(addressKey(ip, p.port), ips);
      if (p.nodePort > 0) byNodePort.set(p.nodePort, ips);
    }
  }
  return { byAddress, byNodePort };
}

export function isEmpty(index: ServingIndex): boolean {
  return index.byAddress.size === 0 && index.byNodePort.size === 0;
}

/**
 * Parses `conntrack -L -f FAMILY -p udp -o extended`: "ipv4 2 udp 17 TTL src= dst= sport= dport=
 * [flags] src= dst= sport= dport= …". The first src/dst/dport are the original direction, the
 * second src is the reply source (the DNAT target, or the address itself when not NATed).
 */
export function parseFlows(text: string): UdpFlow[] {
  const out: UdpFlow[] = [];
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words.length < 4 || words[2] !== 'udp') continue;
    const family: IPFamily | undefined = words[0] === 'ipv4' ? 'IPv4' : words[0] === 'ipv6' ? 'IPv6' : undefined;
    if (!family) continue;
    const src: string[] = [];
    const dst: string[] = [];
    const dport: string[] = [];
    for (const w of words) {
      if (w.startsWith('src=')) src.push(w.slice(4));
      else if (w.startsWith('dst=')) dst.push(w.slice(4));
      else if (w.startsWith('dport=')) dport.push(w.slice(6));
    }
    if (src.length < 2 || dst.length < 1 || dport.length < 1) continue;
    const port = Number(dport[0]);
    if (!Number.isInteger(port)) continue;
    out.push({ family, origSrc: src[0], origDst: dst[0], origPortDst: port, replySrc: src[1] });
  }
  return out;
}

/** The deletions for `flows` given what is wanted; one filter per distinct match. */
export function staleFilters(flows: readonly UdpFlow[], index: ServingIndex): FlowFilter[] {
  const out = new Map<string, FlowFilter>();
  for (const f of flows) {
    const want = index.byAddress.get(addressKey(f.origDst, f.origPortDst));
    if (want && !want.has(f.replySrc)) {
      const filter = { family: f.family, origDst: f.origDst, origPortDst: f.origPortDst, replySrc: f.replySrc };
      out.set(`a|${filter.origDst}|${filter.origPortDst}|${filter.replySrc}`, filter);
    }
    const wantNp = index.byNodePort.get(f.origPortDst);
    if (wantNp && !wantNp.has(f.replySrc)) {
      out.set(`n|${f.family}|${f.origPortDst}|${f.replySrc}`, { family: f.family, origPortDst: f.origPortDst, replySrc: f.replySrc });
    }
  }
  return [...out.values()];
}

/** `conntrack` arguments that delete what one filter matches. */
export function conntrackArgs(f: FlowFilter): string[] {
  const args = ['-D', '-f', f.family === 'IPv4' ? 'ipv4' : 'ipv6', '-p', 'udp'];
  if (f.origDst) args.push('--orig-dst', f.origDst);
  args.push('--orig-port-dst', String(f.origPortDst), '--reply-src', f.replySrc);
  return args;
}
