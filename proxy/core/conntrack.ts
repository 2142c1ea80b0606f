// Stale UDP flows. UDP has no connection to close, so a conntrack entry keeps sending a client's
// packets to a DNAT target long after it is gone (or, for a service that had no endpoints, keeps
// the un-NATed entry that REJECT left behind). kube-proxy's rule, decided here purely:
//   - an endpoint that no longer receives a UDP port's traffic: delete the flows to each of the
//     service's addresses (and node port) that were DNATed to it;
//   - a UDP port that goes from no endpoints to some: delete the flows to its addresses and node
//     port, which were never DNATed.
import type { IPFamily } from '../../cluster/types.js';
import { targetKey, type ServicePlan, type ServicePortPlan, type Target } from './model.js';

/** One `conntrack -D` filter. */
export interface FlowFilter {
  readonly family: IPFamily;
  readonly origDst?: string;
  readonly origPortDst: number;
  readonly replySrc?: string;
  readonly replyPortSrc?: number;
}

function portId(p: ServicePortPlan): string {
  return `${p.name}/${p.protocol}/${p.family}`;
}

function reachable(p: ServicePortPlan): Map<string, Target> {
  const m = new Map<string, Target>();
  for (const t of [...p.clusterEndpoints, ...p.localEndpoints]) m.set(targetKey(t), t);
  return m;
}

function addresses(p: ServicePortPlan): { ip: string; port: number }[] {
  const out = [...(p.clusterIP ? [p.clusterIP] : []), ...p.externalIPs, ...p.loadBalancerIPs].map((ip) => ({ ip, port: p.port }));
  return out;
}

/** The flows to delete after `before` was replaced by `after` (either may be absent). */
export function staleFlows(before: ServicePlan | undefined, after: ServicePlan | undefined): FlowFilter[] {
  const out: FlowFilter[] = [];
  const oldPorts = new Map((before?.ports ?? []).filter((p) => p.protocol === 'UDP').map((p) => [portId(p), p]));
  const newPorts = new Map((after?.ports ?? []).filter((p) => p.protocol === 'UDP').map((p) => [portId(p), p]));

  for (const [id, old] of oldPorts) {
    const now = newPorts.get(id);
    const still = now ? reachable(now) : new Map<string, Target>();
    for (const [k, t] of reachable(old)) {
      if (still.has(k)) continue;
      for (const a of addresses(old)) out.push({ family: old.family, origDst: a.ip, origPortDst: a.port, replySrc: t.ip, replyPortSrc: t.port });
      if (old.nodePort > 0) out.push({ family: old.family, origPortDst: old.nodePort, replySrc: t.ip, replyPortSrc: t.port });
    }
  }
  for (const [id, now] of newPorts) {
    const old = oldPorts.get(id);
    const had = old ? reachable(old).size > 0 : false;
    if (had || reachable(now).size === 0) continue;
    for (const a of addresses(now)) out.push({ family: now.family, origDst: a.ip, origPortDst: a.port });
    if (now.nodePort > 0) out.push({ family: now.family, origPortDst: now.nodePort });
  }
  return out;
}

/** `conntrack` arguments for one filter. */
export function conntrackArgs(f: FlowFilter): string[] {
  const args = ['-D', '-f', f.family === 'IPv4' ? 'ipv4' : 'ipv6', '-p', 'udp'];
  if (f.origDst) args.push('--orig-dst', f.origDst);
  args.push('--orig-port-dst', String(f.origPortDst));
  if (f.replySrc) args.push('--reply-src', f.replySrc);
  if (f.replyPortSrc) args.push('--reply-port-src', String(f.replyPortSrc));
  return args;
}
