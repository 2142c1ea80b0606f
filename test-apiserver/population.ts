// Object builders and a generated population (N services × M endpoints), for tests, benchmarks
// and the standalone server. Addresses come from documentation-only or private ranges and are
// never contacted: they only fill the catalog.
import yaml from 'js-yaml';
export interface ServiceSpec {
  namespace?: string;
  name: string;
  clusterIP: string;
  port?: number;
  protocol?: 'TCP' | 'UDP';
}

export function service(s: ServiceSpec): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace: s.namespace ?? 'default', name: s.name },
    spec: {
      type: 'ClusterIP',
      clusterIP: s.clusterIP,
      clusterIPs: [s.clusterIP],
      ipFamilies: [s.clusterIP.includes(':') ? 'IPv6' : 'IPv4'],
      selector: { app: s.name },
      ports: [{ name: 'http', protocol: s.protocol ?? 'TCP', port: s.port ?? 80, targetPort: 8080 }],
    },
  };
}

export interface SliceSpec {
  namespace?: string;
  service: string;
  /** Default `<service>-abc`. */
  name?: string;
  addresses: readonly string[];
  ready?: boolean;
  nodeName?: string;
  port?: number;
}

export function endpointSlice(s: SliceSpec): Record<string, unknown> {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      namespace: s.namespace ?? 'default',
      name: s.name ?? `${s.service}-abc`,
      labels: { 'kubernetes.io/service-name': s.service, 'endpointslice.kubernetes.io/managed-by': 'test-apiserver' },
    },
    addressType: s.addresses[0]?.includes(':') ? 'IPv6' : 'IPv4',
    endpoints: s.addresses.map((ip) => ({
      addresses: [ip],
      conditions: { ready: s.ready ?? true, serving: s.ready ?? true, terminating: false },
      ...(s.nodeName ? { nodeName: s.nodeName } : {}),
    })),
    ports: [{ name: 'http', protocol: 'TCP', port: s.port ?? 8080 }],
  };
}

export function node(name: string, podCIDRs: readonly string[], internalIP: string): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: { name, labels: { 'kubernetes.io/hostname': name, 'topology.kubernetes.io/zone': 'zone-a' } },
    spec: { podCIDR: podCIDRs[0], podCIDRs: [...podCIDRs] },
    status: { addresses: [{ type: 'InternalIP', address: internalIP }, { type: 'Hostname', address: name }] },
  };
}

/** Objects as one multi-document YAML file, what `kubectl apply -f` reads. */
export function manifest(objects: readonly Record<string, unknown>[]): string {
  return objects.map((o) => yaml.dump(o, { flowLevel: 3 })).join('---\n');
}

/** The i-th service's cluster IP in 10.96.0.0/12 (room for a million). */
export function serviceIP(i: number): string {
  const n = 0x0a600000 + 10 + i;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** The j-th endpoint of the i-th service in 10.0.0.0/9 (pods). */
export function endpointIP(i: number, j: number, perService: number): string {
  const n = 0x0a000000 + 2 + i * perService + j;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Population {
  services: number;
  endpointsPerService: number;
  nodes?: number;
  namespaces?: number;
}

/** `services` Services, each with one EndpointSlice of `endpointsPerService` ready endpoints,
 *  spread over `namespaces` namespaces and `nodes` nodes. */
export function* population(p: Population): Generator<Record<string, unknown>> {
  const nodes = p.nodes ?? 10;
  const namespaces = p.namespaces ?? 10;
  for (let n = 0; n < nodes; n++) {
    yield node(`node-${n}`, [`10.244.${n}.0/24`], `192.168.${Math.floor(n / 250)}.${(n % 250) + 2}`);
  }
  for (let i = 0; i < p.services; i++) {
    const namespace = `ns-${i % namespaces}`;
    const name = `svc-${i}`;
    yield service({ namespace, name, clusterIP: serviceIP(i) });
    const addresses = Array.from({ length: p.endpointsPerService }, (_, j) => endpointIP(i, j, p.endpointsPerService));
    yield endpointSlice({ namespace, service: name, addresses, nodeName: `node-${i % nodes}` });
  }
}
