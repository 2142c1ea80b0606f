// Which endpoints serve which traffic: one pure function, decided once for every backend.
//
// - Cluster traffic goes to ready endpoints (narrowed by topology when it applies); when none is
//   ready, to serving and terminating ones, so a rolling update never drops a service to zero.
// - Local traffic (internalTrafficPolicy or externalTrafficPolicy Local) goes to this node's
//   ready endpoints, else to this node's serving-terminating ones.
// - Topology: when every ready endpoint carries zone hints (set by the EndpointSlice controller
//   for trafficDistribution or topology-aware routing), follow the hints for this node, then for
//   this zone, else use all. Without hints, `trafficDistribution` PreferClose (and PreferSameZone /
//   PreferSameNode) prefers ready endpoints on this node, then in this zone, else all.
import type { Endpoint } from '../../cluster/types.js';

export interface SelectionInput {
  /** The endpoints of one port, one family. */
  readonly endpoints: readonly Endpoint[];
  readonly nodeName: string;
  /** This node's zone label, if known. */
  readonly zone?: string;
  readonly internalLocal: boolean;
  readonly externalLocal: boolean;
  readonly externallyAccessible: boolean;
  readonly trafficDistribution?: string;
}

export interface Selection {
  readonly cluster: readonly Endpoint[];
  readonly local: readonly Endpoint[];
  /** Ready or serving-terminating endpoints exist somewhere. */
  readonly hasAny: boolean;
  /** How topology narrowed the cluster set, for logs and tests. */
  readonly topology: 'none' | 'hints-node' | 'hints-zone' | 'same-node' | 'same-zone';
}

/** Cluster-policy endpoints are needed when internal traffic uses them, or external traffic
 *  does, or external traffic from pods and the node itself (which always follows Cluster). */
export function usesClusterEndpoints(s: Pick<SelectionInput, 'internalLocal' | 'externallyAccessible'>): boolean {
  return !s.internalLocal || s.externallyAccessible;
}

export function usesLocalEndpoints(s: Pick<SelectionInput, 'internalLocal' | 'externalLocal' | 'externallyAccessible'>): boolean {
  return s.internalLocal || (s.externallyAccessible && s.externalLocal);
}

const PREFER_CLOSE = new Set(['PreferClose', 'PreferSameZone', 'PreferSameNode']);

function isLocal(ep: Endpoint, nodeName: string): boolean {
  return ep.nodeName !== undefined && ep.nodeName === nodeName;
}

function topologyFilter(input: SelectionInput): { keep: (ep: Endpoint) => boolean; kind: Selection['topology'] } {
  const ready = input.endpoints.filter((ep) => ep.ready);
  const all = { keep: () => true, kind: 'none' as const };
  if (ready.length === 0) return all;

  const hinted = ready.every((ep) => (ep.hints?.forZones.length ?? 0) > 0);
  if (hinted) {
    if (ready.some((ep) => ep.hints?.forNodes.includes(input.nodeName))) {
      return { keep: (ep) => ep.hints?.forNodes.includes(input.nodeName) ?? false, kind: 'hints-node' };
    }
    const zone = input.zone;
    if (zone !== undefined && ready.some((ep) => ep.hints?.forZones.includes(zone))) {
      return { keep: (ep) => ep.hints?.forZones.includes(zone) ?? false, kind: 'hints-zone' };
    }
    return all;
  }

  if (input.trafficDistribution && PREFER_CLOSE.has(input.trafficDistribution)) {
    if (ready.some((ep) => isLocal(ep, input.nodeName))) return { keep: (ep) => isLocal(ep, input.nodeName), kind: 'same-node' };
    const zone = input.zone;
    if (zone !== undefined && ready.some((ep) => ep.zone === zone)) return { keep: (ep) => ep.zone === zone, kind: 'same-zone' };
  }
  return all;
}

export function selectEndpoints(input: SelectionInput): Selection {
  const eps = input.endpoints;
  let cluster: Endpoint[] = [];
  let topology: Selection['topology'] = 'none';
  if (usesClusterEndpoints(input)) {
    const t = topologyFilter(input);
    topology = t.kind;
    cluster = eps.filter((ep) => ep.ready && t.keep(ep));
    if (cluster.length === 0) cluster = eps.filter((ep) => ep.serving && ep.terminating);
  }

  const hasAny = eps.some((ep) => ep.ready || (ep.serving && ep.terminating));
  let local: Endpoint[] = [];
  if (usesLocalEndpoints(input)) {
    local = eps.filter((ep) => ep.ready && isLocal(ep, input.nodeName));
    if (local.length === 0) local = eps.filter((ep) => ep.serving && ep.terminating && isLocal(ep, input.nodeName));
  }
  return { cluster, local, hasAny, topology };
}
