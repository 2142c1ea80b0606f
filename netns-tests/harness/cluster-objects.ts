// The API objects the cluster harness writes in the controllers' place: Nodes as the kubelet
// registers them (with the node IPAM controller's spec.podCIDRs once given), Services, and the
// EndpointSlices the EndpointSlice controller would make for them: endpoints with nodeName, zone
// and the hints trafficDistribution asks for. Pure builders.

/** What every pod serves: one answer per connection ("<pod> <source seen>"), and an echo. */
export const POD_PORT = 8080;
export const ECHO_PORT = 9000;

export interface NodeFacts {
  readonly name: string;
  readonly zone: string;
  readonly ip4: string;
  readonly ip6: string;
  /** spec.podCIDRs, once the node IPAM controller has given them. */
  readonly podCIDRs?: readonly string[];
  readonly taints?: readonly { key: string; value?: string; effect: string }[];
  /** metadata.deletionTimestamp is set. */
  readonly deleting?: boolean;
}

/** One endpoint: a pod's addresses and where it runs. */
export interface Backend {
  readonly name: string;
  readonly namespace: string;
  readonly ip4: string;
  readonly ip6: string;
  readonly node: { readonly name: string; readonly zone: string };
}

export interface ServiceSpec {
  name: string;
  namespace?: string;
  /** Primary family first; one per family. */
  clusterIPs: readonly string[];
  type?: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
  /** The node port of the `tcp` port (80 → 8080). */
  nodePort?: number;
  healthCheckNodePort?: number;
  externalTrafficPolicy?: 'Cluster' | 'Local';
  internalTrafficPolicy?: 'Cluster' | 'Local';
  trafficDistribution?: 'PreferClose' | 'PreferSameZone' | 'PreferSameNode';
}

export function familyOf(ip: string): 'IPv4' | 'IPv6' {
  return ip.includes(':') ? 'IPv6' : 'IPv4';
}

export function nodeObject(n: NodeFacts): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: n.name,
      labels: { 'kubernetes.io/hostname': n.name, 'topology.kubernetes.io/zone': n.zone },
      ...(n.deleting ? { deletionTimestamp: new Date().toISOString() } : {}),
    },
    spec: {
      ...(n.podCIDRs?.length ? { podCIDR: n.podCIDRs[0], podCIDRs: [...n.podCIDRs] } : {}),
      ...(n.taints?.length ? { taints: [...n.taints] } : {}),
    },
    status: {
      addresses: [{ type: 'InternalIP', address: n.ip4 }, { type: 'InternalIP', address: n.ip6 }, { type: 'Hostname', address: n.name }],
    },
  };
}

export function serviceObject(spec: ServiceSpec): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: spec.namespace ?? 'default', name: spec.name },
    spec: {
      type: spec.type ?? 'ClusterIP',
      clusterIP: spec.clusterIPs[0],
      clusterIPs: [...spec.clusterIPs],
      ipFamilies: spec.clusterIPs.map(familyOf),
      ipFamilyPolicy: spec.clusterIPs.length > 1 ? 'RequireDualStack' : 'SingleStack',
      selector: { app: spec.name },
      ports: [
        { name: 'tcp', protocol: 'TCP', port: 80, targetPort: POD_PORT, ...(spec.nodePort ? { nodePort: spec.nodePort } : {}) },
        { name: 'echo', protocol: 'TCP', port: ECHO_PORT, targetPort: ECHO_PORT },
      ],
      ...(spec.externalTrafficPolicy ? { externalTrafficPolicy: spec.externalTrafficPolicy } : {}),
      ...(spec.internalTrafficPolicy ? { internalTrafficPolicy: spec.internalTrafficPolicy } : {}),
      ...(spec.healthCheckNodePort ? { healthCheckNodePort: spec.healthCheckNodePort } : {}),
      ...(spec.trafficDistribution ? { trafficDistribution: spec.trafficDistribution } : {}),
    },
  };
}

/** The slice of `spec` for `family`, by name: one per family, as these builders write them. */
export function sliceName(spec: ServiceSpec, family: 'IPv4' | 'IPv6'): string {
  return `${spec.name}-${family.toLowerCase()}`;
}

/** The EndpointSlice controller's slices for `spec`, one per family: `terminating` backends are
 *  serving but not ready; hints as trafficDistribution asks (PreferSameNode: the endpoint's node
 *  and zone, as 1.34+ writes them; PreferClose/PreferSameZone: its zone). */
export function endpointSlices(spec: ServiceSpec, backends: readonly Backend[], terminating: ReadonlySet<Backend> = new Set()): Record<string, unknown>[] {
  const td = spec.trafficDistribution;
  return spec.clusterIPs.map(familyOf).map((family) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: spec.namespace ?? 'default', name: sliceName(spec, family), labels: { 'kubernetes.io/service-name': spec.name } },
    addressType: family,
    endpoints: backends.map((p) => ({
      addresses: [family === 'IPv4' ? p.ip4 : p.ip6],
      conditions: terminating.has(p) ? { ready: false, serving: true, terminating: true } : { ready: true, serving: true, terminating: false },
      nodeName: p.node.name,
      zone: p.node.zone,
      targetRef: { kind: 'Pod', namespace: p.namespace, name: p.name },
      ...(td ? { hints: { forZones: [{ name: p.node.zone }], ...(td === 'PreferSameNode' ? { forNodes: [{ name: p.node.name }] } : {}) } } : {}),
    })),
    ports: [
      { name: 'tcp', protocol: 'TCP', port: POD_PORT },
      { name: 'echo', protocol: 'TCP', port: ECHO_PORT },
    ],
  }));
}

/** The slice of a Service whose endpoints are hostNetwork DaemonSet pods: the node IPs. */
export function hostNetworkSlice(service: any, nodes: readonly NodeFacts[]): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { namespace: service.metadata.namespace, name: `${service.metadata.name}-nodes`, labels: { 'kubernetes.io/service-name': service.metadata.name } },
    addressType: 'IPv4',
    endpoints: nodes.map((n) => ({ addresses: [n.ip4], nodeName: n.name, zone: n.zone, conditions: { ready: true, serving: true, terminating: false } })),
    ports: (service.spec.ports as { name: string; port: number; protocol: string }[]).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
  };
}
