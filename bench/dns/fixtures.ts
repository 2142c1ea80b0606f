// Kubernetes objects for DNS tests and the benchmark: plain API-shaped Services and
// EndpointSlices (what a manifest directory or the API server would hold), as objects or YAML.

export interface ServiceSpec {
  namespace: string;
  name: string;
  /** Cluster IPs; absent or [] with `headless` for a headless service. */
  clusterIPs?: string[];
  headless?: boolean;
  externalName?: string;
  publishNotReadyAddresses?: boolean;
  ports?: Array<{ name?: string; port: number; protocol?: string; targetPort?: number }>;
  /** `pod`: the endpoint's targetRef names that Pod (in the service's namespace). */
  endpoints?: Array<{ ip: string; ready?: boolean; hostname?: string; pod?: string }>;
}

export function serviceObjects(s: ServiceSpec): object[] {
  const ports = (s.ports ?? []).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol ?? 'TCP', targetPort: p.targetPort ?? p.port }));
  const spec: Record<string, unknown> = { ports };
  if (s.externalName) {
    spec.type = 'ExternalName';
    spec.externalName = s.externalName;
  } else if (s.headless) {
    spec.clusterIP = 'None';
    spec.selector = { app: s.name };
  } else {
    const ips = s.clusterIPs ?? [];
    spec.clusterIP = ips[0];
    spec.clusterIPs = ips;
    spec.ipFamilies = ips.map((ip) => (ip.includes(':') ? 'IPv6' : 'IPv4'));
    spec.selector = { app: s.name };
  }
  if (s.publishNotReadyAddresses) spec.publishNotReadyAddresses = true;
  const out: object[] = [{ apiVersion: 'v1', kind: 'Service', metadata: { name: s.name, namespace: s.namespace }, spec }];
  const eps = s.endpoints ?? [];
  for (const family of ['IPv4', 'IPv6'] as const) {
    const mine = eps.filter((e) => (e.ip.includes(':') ? 'IPv6' : 'IPv4') === family);
    if (mine.length === 0) continue;
    out.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${s.name}-${family.toLowerCase()}`, namespace: s.namespace, labels: { 'kubernetes.io/service-name': s.name } },
      addressType: family,
      ports: (s.ports ?? []).map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.targetPort ?? p.port, protocol: p.protocol ?? 'TCP' })),
      endpoints: mine.map((e) => ({
        addresses: [e.ip],
        conditions: { ready: e.ready ?? true },
        ...(e.hostname ? { hostname: e.hostname } : {}),
        ...(e.pod ? { targetRef: { kind: 'Pod', namespace: s.namespace, name: e.pod } } : {}),
      })),
    });
  }
  return out;
}

/** Multi-document YAML (JSON is YAML: one document per object). */
export function toYaml(objs: readonly object[]): string {
  return objs.map((o) => JSON.stringify(o)).join('\n---\n') + '\n';
}

/** The fixture cluster every DNS test answers from. */
export function fixtureServices(): ServiceSpec[] {
  return [
    { namespace: 'prod', name: 'web', clusterIPs: ['10.96.0.10', 'fd00:96::10'], ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'dns', port: 53, protocol: 'UDP' }] },
    { namespace: 'prod', name: 'v4only', clusterIPs: ['10.96.0.11'], ports: [{ port: 443 }] },
    {
      namespace: 'prod', name: 'db', headless: true, ports: [{ name: 'mysql', port: 3306 }],
      endpoints: [
        { ip: '10.244.1.5', hostname: 'db-0' },
        { ip: '10.244.1.6', hostname: 'db-1' },
        { ip: '10.244.1.7', ready: false, hostname: 'db-2' },
        { ip: '10.244.1.8' },
        { ip: 'fd00:244::8' },
      ],
    },
    { namespace: 'prod', name: 'empty', headless: true, ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.244.2.1', ready: false }] },
    { namespace: 'prod', name: 'pub', headless: true, publishNotReadyAddresses: true, ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.244.3.1', ready: false, hostname: 'pub-0' }] },
    { namespace: 'prod', name: 'ext', externalName: 'www.example.test' },
    { namespace: 'prod', name: 'alias', externalName: 'web.prod.svc.cluster.local' },
    {
      namespace: 'prod', name: 'big', headless: true, ports: [{ name: 'http', port: 80 }],
      endpoints: Array.from({ length: 100 }, (_, i) => ({ ip: `10.244.${10 + (i >> 8)}.${i & 255}` })),
    },
    { namespace: 'staging', name: 'web', clusterIPs: ['10.96.1.10'], ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.244.4.1', hostname: 'web-0' }] },
  ];
}

/**
 * A large cluster for the benchmark: `services` services over 100 namespaces, every tenth one
 * headless, `endpointsPerService` endpoints each.
 */
export function largeCluster(services: number, endpointsPerService: number): ServiceSpec[] {
  const out: ServiceSpec[] = [];
  for (let i = 0; i < services; i++) {
    const headless = i % 10 === 9;
    out.push({
      namespace: `ns${i % 100}`,
      name: `svc${i}`,
      headless,
      clusterIPs: headless ? undefined : [`10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`],
      ports: [{ name: 'http', port: 80, targetPort: 8080 }],
      endpoints: Array.from({ length: endpointsPerService }, (_, j) => {
        const n = i * endpointsPerService + j;
        return { ip: `10.${128 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}` };
      }),
    });
  }
  return out;
}
