// What the shared core decides and every backend renders: per service port and IP family, the
// addresses that capture traffic and the endpoints each traffic policy sends it to. A backend
// never looks at a Service or an EndpointSlice; it renders these records.
import type { IPFamily, ObjectKey, Protocol } from '../../cluster/types.js';

/** One endpoint a rule may send traffic to. */
export interface Target {
  readonly ip: string;
  readonly port: number;
  /** On this node (its nodeName is ours). */
  readonly local: boolean;
  /** The endpoint names no node (a hand-made slice): it may be on this one. */
  readonly nodeUnknown?: boolean;
  readonly ready: boolean;
}

/** One port of one service in one IP family, with the endpoints chosen for it. */
export interface ServicePortPlan {
  readonly serviceKey: ObjectKey;
  /** `namespace/name:port` (`namespace/name` for an unnamed port), as kube-proxy writes it. */
  readonly name: string;
  readonly family: IPFamily;
  readonly protocol: Protocol;
  readonly port: number;
  /** Absent when the service has no cluster IP of this family. */
  readonly clusterIP?: string;
  readonly nodePort: number;
  readonly externalIPs: readonly string[];
  readonly loadBalancerIPs: readonly string[];
  /** loadBalancerSourceRanges is set: load-balancer traffic from other sources is dropped. */
  readonly firewall: boolean;
  /** The source ranges of this family (none of this family with `firewall` set: all dropped). */
  readonly sourceRanges: readonly string[];
  /** ClientIP affinity timeout; 0 means no affinity. */
  readonly affinitySeconds: number;
  readonly internalLocal: boolean;
  readonly externalLocal: boolean;
  /** Has a node port, external IPs or load-balancer IPs. */
  readonly externallyAccessible: boolean;
  /** Endpoints for Cluster-policy traffic, sorted by ip:port. */
  readonly clusterEndpoints: readonly Target[];
  /** Endpoints for Local-policy traffic (on this node), sorted. */
  readonly localEndpoints: readonly Target[];
  /** Any ready or serving-terminating endpoint anywhere: decides REJECT (none) against DROP. */
  readonly hasAnyEndpoints: boolean;
}

/** Everything the proxy does for one service, both families. */
export interface ServicePlan {
  readonly key: ObjectKey;
  readonly namespace: string;
  readonly name: string;
  readonly ports: readonly ServicePortPlan[];
  /** eTP=Local health-check node port (0 when none). */
  readonly healthCheckNodePort: number;
  /** Ready endpoints on this node, distinct addresses (what the health-check port reports). */
  readonly localReadyEndpoints: number;
  /** `last-change-trigger-time` of its slices, for the network-programming latency. */
  readonly lastChangeTriggerTime?: number;
}

export function targetKey(t: Target): string {
  return t.ip.includes(':') ? `[${t.ip}]:${t.port}` : `${t.ip}:${t.port}`;
}
