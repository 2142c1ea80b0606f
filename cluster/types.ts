// The normalized catalog records every consumer (proxy, dns, ipam) reads. They are built once,
// when an API object arrives, hold only what the data plane needs, and are never mutated:
// a consumer may keep a record from an older change and compare it with a newer one.

export type IPFamily = 'IPv4' | 'IPv6';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';
export type TrafficPolicy = 'Cluster' | 'Local';

/** `namespace/name`: the key of services, slices, nodes (name only) and pods everywhere. */
export type ObjectKey = string;

export function objectKey(namespace: string, name: string): ObjectKey {
  return `${namespace}/${name}`;
}

/** One entry of `spec.ports`. */
export interface ServicePort {
  /** '' for the single unnamed port a service may have. */
  readonly name: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** A number, or the name of a container port (resolved by the endpoint controller). */
  readonly targetPort: number | string;
  /** 0 when the service has no node port for this port. */
  readonly nodePort: number;
  readonly appProtocol?: string;
}

export interface Service {
  readonly key: ObjectKey;
  readonly namespace: string;
  readonly name: string;
  readonly resourceVersion: string;
  readonly type: ServiceType;
  /** `spec.clusterIP: None`. Headless services have no cluster IPs. */
  readonly headless: boolean;
  /** Normalized (canonical text form), primary family first, at most one per family. */
  readonly clusterIPs: readonly string[];
  readonly ipFamilies: readonly IPFamily[];
  /** For ExternalName services: the target name, lower case, without a trailing dot. */
  readonly externalName?: string;
  readonly externalIPs: readonly string[];
  /** `status.loadBalancer.ingress[].ip`, normalized. */
  readonly loadBalancerIPs: readonly string[];
  /** CIDRs, normalized; empty means any source. */
  readonly loadBalancerSourceRanges: readonly string[];
  readonly sessionAffinity: 'None' | 'ClientIP';
  /** Only meaningful with ClientIP affinity; default 10800 as in the API. */
  readonly sessionAffinityTimeoutSeconds: number;
  readonly externalTrafficPolicy: TrafficPolicy;
  readonly internalTrafficPolicy: TrafficPolicy;
  /** 0 when none; set for LoadBalancer services with externalTrafficPolicy Local. */
  readonly healthCheckNodePort: number;
  readonly publishNotReadyAddresses: boolean;
  /** `spec.trafficDistribution`, e.g. 'PreferClose'. */
  readonly trafficDistribution?: string;
  /** Whether `spec.selector` is set (selector-less services take hand-made slices). */
  readonly hasSelector: boolean;
  /** `service.kubernetes.io/service-proxy-name` label: kube-proxy ignores such services. */
  readonly serviceProxyName?: string;
  readonly ports: readonly ServicePort[];
}

export interface EndpointHints {
  readonly forZones: readonly string[];
  readonly forNodes: readonly string[];
}

/** One address of an EndpointSlice endpoint (an endpoint with two addresses is two Endpoints). */
export interface Endpoint {
  readonly ip: string;
  readonly family: IPFamily;
  /** Conditions, with the API's defaults applied: ready unset → true, serving unset → ready,
   *  terminating unset → false. */
  readonly ready: boolean;
  readonly serving: boolean;
  readonly terminating: boolean;
  readonly hostname?: string;
  readonly nodeName?: string;
  readonly zone?: string;
  readonly hints?: EndpointHints;
  /** `targetRef` when it names a Pod: `namespace/name`. */
  readonly podKey?: ObjectKey;
}

/** The endpoints that serve one port of a service, merged over all its slices. */
export interface EndpointPort {
  /** Matches `ServicePort.name`. */
  readonly name: string;
  readonly protocol: Protocol;
  /** The port on the endpoints (the resolved target port). */
  readonly port: number;
  readonly appProtocol?: string;
  /** De-duplicated by IP as kube-proxy does (a ready duplicate wins), sorted by IP. */
  readonly endpoints: readonly Endpoint[];
}

/** Everything the EndpointSlices of one service say, merged. */
export interface ServiceEndpoints {
  readonly serviceKey: ObjectKey;
  /** Every distinct endpoint address over all slices and ports (for DNS), sorted by IP. */
  readonly endpoints: readonly Endpoint[];
  readonly ports: readonly EndpointPort[];
  /** Latest `endpoints.kubernetes.io/last-change-trigger-time` over the slices, ms since epoch. */
  readonly lastChangeTriggerTime?: number;
}

export interface NodeAddress {
  readonly type: string; // InternalIP, ExternalIP, Hostname, …
  readonly address: string;
}

export interface Node {
  readonly key: ObjectKey; // the node name
  readonly name: string;
  readonly podCIDRs: readonly string[];
  readonly addresses: readonly NodeAddress[];
  /** `topology.kubernetes.io/zone` label. */
  readonly zone?: string;
  readonly labels: Readonly<Record<string, string>>;
  /** metadata.deletionTimestamp is set: the node is being deleted. */
  readonly deleting?: true;
  /** The keys of spec.taints. */
  readonly taintKeys?: readonly string[];
}

export interface Pod {
  readonly key: ObjectKey;
  readonly namespace: string;
  readonly name: string;
  readonly podIPs: readonly string[];
  readonly nodeName?: string;
  readonly hostNetwork: boolean;
  readonly phase?: string;
}

export interface Namespace {
  readonly key: ObjectKey;
  readonly name: string;
}

/** A ServiceCIDR (networking.k8s.io/v1): ranges the cluster allocates service IPs from. */
export interface ServiceCIDR {
  readonly key: ObjectKey;
  readonly name: string;
  /** spec.cidrs: at most one per family. */
  readonly cidrs: readonly string[];
}

/** What an IP address is, for reverse lookups. */
export type IPOwner =
  | { readonly kind: 'service'; readonly serviceKey: ObjectKey }
  | { readonly kind: 'endpoint'; readonly serviceKey: ObjectKey; readonly hostname?: string }
  | { readonly kind: 'pod'; readonly podKey: ObjectKey };

/** A batch of changes, delivered after the catalog applied it. Keys name what changed
 *  (added, updated or removed); consumers look the new state up in the catalog. */
export interface CatalogChange {
  /** Increases by one per delivered change. */
  readonly generation: number;
  /** Services whose Service or EndpointSlices changed. */
  readonly services: ReadonlySet<ObjectKey>;
  readonly nodes: ReadonlySet<ObjectKey>;
  readonly pods: ReadonlySet<ObjectKey>;
  readonly namespaces: ReadonlySet<ObjectKey>;
  readonly serviceCIDRs: ReadonlySet<ObjectKey>;
  /** True when this change is the first complete view (every source listed once). */
  readonly synced: boolean;
}

/** Read access to the current state. Records are immutable; the maps behind the view are
 *  updated between changes, so read what you need inside the change callback or keep records. */
export interface CatalogView {
  readonly synced: boolean;
  readonly generation: number;
  service(key: ObjectKey): Service | undefined;
  endpoints(serviceKey: ObjectKey): ServiceEndpoints | undefined;
  services(): IterableIterator<Service>;
  node(name: string): Node | undefined;
  nodes(): IterableIterator<Node>;
  pod(key: ObjectKey): Pod | undefined;
  podsByIP(ip: string): readonly Pod[];
  /** Whether a pod with an address is in the namespace (the pods' own DNS names are below it). */
  hasAddressedPods(namespace: string): boolean;
  /** Every owner of an address (service cluster IP, endpoint, pod), for PTR answers. */
  ownersOfIP(ip: string): readonly IPOwner[];
  /** A Namespace object, when the catalog watches them (DNS: an existing namespace is a name). */
  namespace(name: string): Namespace | undefined;
  /** The ServiceCIDR objects, when the catalog watches them (the proxy drops traffic to their
   *  addresses that no service has). */
  serviceCIDRs(): IterableIterator<ServiceCIDR>;
  /** Calls `fn` after every applied batch; returns an unsubscribe function. */
  onChange(fn: (change: CatalogChange) => void): () => void;
}
