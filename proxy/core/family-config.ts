// The per-family settings every backend renders with, taken from the node's facts and the
// proxy's options in one place so both backends see the same cluster CIDRs and node addresses.
import type { IPFamily } from '../../cluster/types.js';
import type { NodeFacts } from './backend.js';

/** kube-proxy's --detect-local-mode values. */
export type DetectLocalMode = 'ClusterCIDR' | 'NodeCIDR' | 'BridgeInterface' | 'InterfaceNamePrefix';

/**
 * What makes a packet cluster-local in one family (kube-proxy's LocalTrafficDetector): local
 * traffic to a cluster IP keeps its source; other traffic is masqueraded so that replies from an
 * endpoint on another node come back through this one. A CIDR detector without a CIDR (no
 * --cluster-cidr of this family, or a Node without spec.podCIDRs yet) knows nothing local, and
 * then, as kube-proxy's no-op detector, no rule depends on it.
 */
export type LocalDetector =
  | { readonly mode: 'ClusterCIDR' | 'NodeCIDR'; readonly cidr?: string }
  | { readonly mode: 'BridgeInterface'; readonly bridge: string }
  | { readonly mode: 'InterfaceNamePrefix'; readonly prefix: string };

export interface FamilyConfig {
  readonly family: IPFamily;
  /** Cluster (pod) CIDRs of this family; traffic from elsewhere to a cluster IP is masqueraded. */
  readonly clusterCIDRs: readonly string[];
  /** How local traffic is told apart; absent means ClusterCIDR on `clusterCIDRs[0]`. */
  readonly localDetector?: LocalDetector;
  readonly masqueradeAll: boolean;
  /** Where node ports are accepted: every local address but loopback, or these addresses. */
  readonly nodePortAddresses: 'all' | readonly string[];
  /** This node's addresses of this family (a source range that holds one lets the node in). */
  readonly nodeIPs: readonly string[];
  /** Service CIDRs of this family (--service-cidr): an address in them that no service has is dropped (nftables mode). */
  readonly serviceCIDRs?: readonly string[];
  /** iptables mode, IPv4: node ports answer on 127.0.0.1 (--iptables-localhost-nodeports). */
  readonly localhostNodePorts?: boolean;
}

export interface DetectLocalOptions {
  readonly mode: DetectLocalMode;
  /** --pod-bridge-interface. */
  readonly bridge?: string;
  /** --pod-interface-name-prefix. */
  readonly prefix?: string;
}

export interface FamilyOptions {
  /** Cluster CIDRs of both families (--cluster-cidr), at most one per family. */
  readonly clusterCIDRs: readonly string[];
  readonly masqueradeAll: boolean;
  /** Service CIDRs of both families (--service-cidr). */
  readonly serviceCIDRs?: readonly string[];
  /** --detect-local-mode and its interface flags; absent means ClusterCIDR. */
  readonly detectLocal?: DetectLocalOptions;
  /** --iptables-localhost-nodeports (iptables mode only; kube-proxy's nftables mode has none). */
  readonly localhostNodePorts?: boolean;
}

const ofFamily = (family: IPFamily, cidrs: readonly string[]) => cidrs.filter((c) => (family === 'IPv6') === c.includes(':'));

/** The detector of one family, as kube-proxy's getLocalDetectors builds it: the first CIDR of the
 *  family (cluster or node pod CIDRs), or the interface match, which is the same for both. */
export function localDetector(family: IPFamily, node: NodeFacts, opts: FamilyOptions): LocalDetector {
  const d = opts.detectLocal ?? { mode: 'ClusterCIDR' };
  switch (d.mode) {
    case 'ClusterCIDR':
    case 'NodeCIDR': {
      const cidr = ofFamily(family, d.mode === 'ClusterCIDR' ? opts.clusterCIDRs : node.podCIDRs?.[family] ?? [])[0];
      return cidr ? { mode: d.mode, cidr } : { mode: d.mode };
    }
    case 'BridgeInterface':
      return { mode: d.mode, bridge: d.bridge ?? '' };
    case 'InterfaceNamePrefix':
      return { mode: d.mode, prefix: d.prefix ?? '' };
  }
}

export function familyConfig(family: IPFamily, node: NodeFacts, opts: FamilyOptions): FamilyConfig {
  return {
    family,
    clusterCIDRs: ofFamily(family, opts.clusterCIDRs),
    localDetector: localDetector(family, node, opts),
    masqueradeAll: opts.masqueradeAll,
    nodePortAddresses: node.nodePortAddresses[family],
    nodeIPs: node.nodeIPs[family],
    serviceCIDRs: ofFamily(family, [...new Set([...(opts.serviceCIDRs ?? []), ...(node.serviceCIDRs ?? [])])]),
    ...(opts.localhostNodePorts && family === 'IPv4' ? { localhostNodePorts: true } : {}),
  };
}
