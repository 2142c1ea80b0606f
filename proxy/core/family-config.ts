// The per-family settings every backend renders with, taken from the node's facts and the
// proxy's options in one place so both backends see the same cluster CIDRs and node addresses.
import type { IPFamily } from '../../cluster/types.js';
import type { NodeFacts } from './backend.js';

export interface FamilyConfig {
  readonly family: IPFamily;
  /** Cluster (pod) CIDRs of this family; traffic from elsewhere to a cluster IP is masqueraded. */
  readonly clusterCIDRs: readonly string[];
  readonly masqueradeAll: boolean;
  /** Where node ports are accepted: every local address but loopback, or these addresses. */
  readonly nodePortAddresses: 'all' | readonly string[];
  /** This node's addresses of this family (a source range that holds one lets the node in). */
  readonly nodeIPs: readonly string[];
  /** Service CIDRs of this family (--service-cidr): an address in them that no service has is dropped (nftables mode). */
  readonly serviceCIDRs?: readonly string[];
}

export interface FamilyOptions {
  /** Cluster CIDRs of both families (--cluster-cidr). */
  readonly clusterCIDRs: readonly string[];
  readonly masqueradeAll: boolean;
  /** Service CIDRs of both families (--service-cidr). */
  readonly serviceCIDRs?: readonly string[];
}

export function familyConfig(family: IPFamily, node: NodeFacts, opts: FamilyOptions): FamilyConfig {
  return {
    family,
    clusterCIDRs: opts.clusterCIDRs.filter((c) => (family === 'IPv6') === c.includes(':')),
    masqueradeAll: opts.masqueradeAll,
    nodePortAddresses: node.nodePortAddresses[family],
    nodeIPs: node.nodeIPs[family],
    serviceCIDRs: (opts.serviceCIDRs ?? []).filter((c) => (family === 'IPv6') === c.includes(':')),
  };
}
