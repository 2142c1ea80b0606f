// Which endpoints serve which traffic: one pure function, decided once for every backend.
//
// - Cluster traffic goes to ready endpoints (narrowed by topology when it applies); when none is
//   ready, to serving and terminating ones, so a rolling update never drops a service to zero.
// - Local traffic (internalTrafficPolicy or externalTrafficPolicy Local) goes to this node's
//   ready endpoints, else to this node's serving-terminating ones.
// - Topology, as kube-proxy's CategorizeEndpoints (pkg/proxy/topology.go, topologyModeFromHints):
//   only the hints count. The EndpointSlice controller turns `trafficDistribution` (PreferClose,
//   PreferSameZone, PreferSameNode) and the `service.kubernetes.io/topology-mode` annotation into
//   hints; kube-proxy reads neither and never applies locality without hints, so we do not either
//   (a proxy guessing locality on its own would overload the one local endpoint the controller
//   deliberately did not pick). When every ready endpoint has a node hint and one names this
//   node, those endpoints (PreferSameNode, GA in 1.35); otherwise when every ready endpoint has a
//   zone hint and one names this node's zone, those; otherwise all.
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
  /** `spec.trafficDistribution`: carried for logs; it acts only through the hints it makes. */
  readonly trafficDistribution?: string;
}

export interface Selection {
  readonly cluster: readonly Endpoint[];
  readonly local: readonly Endpoint[];
  /** Ready or serving-terminating endpoints exist somewhere. */
  readonly hasAny: boolean;
  /** How topology narrowed the cluster set, for logs and tests. */
  readonly topology: 'none' | 'hints-node' | 'hints-zone';
}

/** Cluster-policy endpoints are needed when internal traffic uses them, or external traffic
 *  does, or external traffic from pods and the node itself (which always follows Cluster). */
export function usesClusterEndpoints(s: Pick<SelectionInput, 'internalLocal' | 'externallyAccessible'>): boolean {
  return !s.internalLocal || s.externallyAccessible;
}

export function usesLocalEndpoints(s: Pick<SelectionInput, 'internalLocal' | 'externalLocal' | 'externallyAccessible'>): boolean {
  return s.internalLocal || (s.externallyAccessible && s.externalLocal);
}

function isLocal(ep: Endpoint, nodeName: string): boolean {
  return ep.nodeName !== undefined && ep.nodeName === nodeName;
}

function topologyFilter(input: SelectionInput): { keep: (ep: Endpoint) => boolean; kind: Selection['topology'] } {
  let allNodeHints = true;
  let forNode = false;
  let allZoneHints = true;
  let forZone = false;
  const zone = input.zone;
  for (const ep of input.endpoints) {
    if (!ep.ready) continue;
    const nodes = ep.hints?.forNodes ?? [];
    if (nodes.length === 0) allNodeHints = false;
    else if (nodes.includes(input.nodeName)) forNode = true;
    const zones = ep.hints?.forZones ?? [];
    if (zones.length === 0) allZoneHints = false;
    else if (zone !== undefined && zones.includes(zone)) forZone = true;
  }
  // forNode / forZone imply a ready endpoint, so "every ready endpoint" is never vacuous here.
  if (allNodeHints && forNode) return { keep: (ep) => ep.hints?.forNodes.includes(input.nodeName) ?? false, kind: 'hints-node' };
  if (allZoneHints && forZone) return { keep: (ep) => (zone !== undefined && ep.hints?.forZones.includes(zone)) ?? false, kind: 'hints-zone' };
  return { keep: () => true, kind: 'none' };
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
