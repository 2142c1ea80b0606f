// What a backend needs to decide about one service port before it writes anything: which policy
// chains exist, where each kind of traffic goes, and what traffic with nowhere to go meets. Made
// here once so the iptables and nftables renderers cannot drift apart; they only name and spell it.
import { cidrContains } from '../../common/ip.js';
import type { ServicePortPlan } from './model.js';
import { usesClusterEndpoints, usesLocalEndpoints } from './topology.js';

/** Which of the two policy chains (Cluster: every endpoint; Local: this node's) traffic goes to. */
export type Policy = 'cluster' | 'local';

export interface PortDecisions {
  /** Ready or serving-terminating endpoints exist somewhere. */
  readonly hasEndpoints: boolean;
  /** The Cluster-policy chain is written: it has endpoints and some traffic uses it. */
  readonly usesCluster: boolean;
  /** The Local-policy chain is written: it has endpoints and some traffic uses it. */
  readonly usesLocal: boolean;
  /** The policy chain cluster-IP traffic goes to. */
  readonly internalPolicy: Policy;
  /** Cluster-IP traffic has endpoints to go to (else it is blocked). */
  readonly hasInternal: boolean;
  /** The policy chain external traffic (node port, external and load-balancer IPs) ends in. */
  readonly externalPolicy: Policy;
  /** External traffic has endpoints to go to (else it is blocked). */
  readonly hasExternal: boolean;
  /** The external chain is written: every external destination comes through it. */
  readonly usesExternalChain: boolean;
  /** The load-balancer firewall chain is written (loadBalancerSourceRanges with LB IPs). */
  readonly usesFirewall: boolean;
  /** Where load-balancer IP traffic goes first. */
  readonly loadBalancerChain: 'firewall' | 'external';
  /** Traffic with no endpoints for its policy: refused at once when there are none anywhere,
   *  silently dropped when there are some, only not for this policy (as kube-proxy). */
  readonly blocked: 'reject' | 'drop';
  /** In the external chain: all external traffic is masqueraded (Cluster external policy). */
  readonly masqueradeExternal: boolean;
  /** In the external chain (Local external policy): pods and the node itself reach external
   *  destinations as if from outside and back in, so they take the Cluster policy; the node's own
   *  traffic is masqueraded on the way. */
  readonly externalShortcuts: boolean;
}

export function portDecisions(p: ServicePortPlan): PortDecisions {
  const hasEndpoints = p.hasAnyEndpoints;
  const usesCluster = p.clusterEndpoints.length > 0 && usesClusterEndpoints(p);
  const usesLocal = p.localEndpoints.length > 0 && usesLocalEndpoints(p);
  const internalPolicy: Policy = p.internalLocal ? 'local' : 'cluster';
  const externalPolicy: Policy = p.externalLocal ? 'local' : 'cluster';
  const usesExternalChain = hasEndpoints && p.externallyAccessible;
  const usesFirewall = hasEndpoints && p.firewall && p.loadBalancerIPs.length > 0;
  return {
    hasEndpoints,
    usesCluster,
    usesLocal,
    internalPolicy,
    hasInternal: hasEndpoints && (internalPolicy === 'local' ? usesLocal : usesCluster),
    externalPolicy,
    hasExternal: hasEndpoints && (externalPolicy === 'local' ? usesLocal : usesCluster),
    usesExternalChain,
    usesFirewall,
    loadBalancerChain: usesFirewall ? 'firewall' : 'external',
    blocked: hasEndpoints ? 'drop' : 'reject',
    masqueradeExternal: usesExternalChain && !p.externalLocal,
    externalShortcuts: usesExternalChain && p.externalLocal && usesCluster,
  };
}

/** A source range holds one of this node's addresses: the node itself may reach the load
 *  balancer, including a local VIP-style LB IP, which loops back with the VIP as its source. */
export function firewallAdmitsNode(p: Pick<ServicePortPlan, 'sourceRanges'>, nodeIPs: readonly string[]): boolean {
  return p.sourceRanges.some((cidr) => nodeIPs.some((ip) => cidrContains(cidr, ip)));
}

/** A backend's names for the chains of one service port. */
export interface PortChains {
  /** Cluster policy: every chosen endpoint. */
  readonly svc: string;
  /** Local policy: this node's endpoints. */
  readonly svl: string;
  /** External destinations: masquerade or short-cuts, then the external policy. */
  readonly ext: string;
  /** loadBalancerSourceRanges. */
  readonly fw: string;
}

/** Which of a port's chains cluster-IP, external (after the external chain) and load-balancer
 *  traffic go to. */
export function policyTargets(d: PortDecisions, c: PortChains): { internal: string; external: string; loadBalancer: string } {
  const chainOf = (policy: Policy) => (policy === 'local' ? c.svl : c.svc);
  return { internal: chainOf(d.internalPolicy), external: chainOf(d.externalPolicy), loadBalancer: d.loadBalancerChain === 'firewall' ? c.fw : c.ext };
}
