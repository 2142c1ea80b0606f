// The resource types the test API server serves, and how their URLs and objects are named. The
// discovery fields (singular, short names, verbs, categories) are kube-apiserver's for the same
// resources, so kubectl's `svc`, `no`, `po`, `ns` and `all` resolve as they do on a cluster.
// ServiceCIDR is served as Kubernetes 1.33 made it (networking.k8s.io/v1); the rest is 1.32's.
export interface ResourceType {
  /** URL plural: `services`. */
  readonly plural: string;
  readonly singular: string;
  readonly kind: string;
  readonly listKind: string;
  /** `''` for the core (legacy) group. */
  readonly group: string;
  readonly version: string;
  readonly apiVersion: string;
  /** URL prefix of the group version: `/api/v1` or `/apis/discovery.k8s.io/v1`. */
  readonly prefix: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
}

/** What the server does with every kind; no subresources, no deletecollection. */
export const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] as const;

function core(plural: string, kind: string, namespaced: boolean, shortNames: string[], categories: string[] = []): ResourceType {
  return {
    plural, singular: kind.toLowerCase(), kind, listKind: `${kind}List`, group: '', version: 'v1', apiVersion: 'v1',
    prefix: '/api/v1', namespaced, shortNames, categories,
  };
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  core('services', 'Service', true, ['svc'], ['all']),
  {
    plural: 'endpointslices', singular: 'endpointslice', kind: 'EndpointSlice', listKind: 'EndpointSliceList',
    group: 'discovery.k8s.io', version: 'v1', apiVersion: 'discovery.k8s.io/v1', prefix: '/apis/discovery.k8s.io/v1',
    namespaced: true, shortNames: [], categories: [],
  },
  core('nodes', 'Node', false, ['no']),
  core('pods', 'Pod', true, ['po'], ['all']),
  core('namespaces', 'Namespace', false, ['ns']),
  {
    plural: 'servicecidrs', singular: 'servicecidr', kind: 'ServiceCIDR', listKind: 'ServiceCIDRList',
    group: 'networking.k8s.io', version: 'v1', apiVersion: 'networking.k8s.io/v1', prefix: '/apis/networking.k8s.io/v1',
    namespaced: false, shortNames: [], categories: [],
  },
];

export const NAMESPACE_TYPE = RESOURCE_TYPES.find((r) => r.kind === 'Namespace')!;

const BY_KIND = new Map(RESOURCE_TYPES.map((r) => [r.kind, r]));

export function resourceByKind(kind: string): ResourceType {
  const r = BY_KIND.get(kind);
  if (!r) throw new Error(`test-apiserver: kind ${JSON.stringify(kind)} is not served (one of ${[...BY_KIND.keys()].join(', ')})`);
  return r;
}

/** What a request path names: a collection (all namespaces or one) or one object. */
export interface ResourcePath {
  readonly type: ResourceType;
  readonly namespace?: string;
  readonly name?: string;
}

export function parseResourcePath(path: string): ResourcePath | undefined {
  for (const type of RESOURCE_TYPES) {
    if (!path.startsWith(type.prefix + '/')) continue;
    const parts = path.slice(type.prefix.length + 1).split('/').map(decodeURIComponent);
    if (parts[0] === type.plural && parts.length <= 2) {
      if (type.namespaced && parts.length === 2) continue; // a namespaced object needs its namespace
      return { type, name: parts[1] };
    }
    if (type.namespaced && parts[0] === 'namespaces' && parts[2] === type.plural && parts.length <= 4 && parts[1]) {
      return { type, namespace: parts[1], name: parts[3] };
    }
  }
  return undefined;
}

/** The store key: `namespace/name`, or the name of a cluster-scoped object. */
export function storeKey(type: ResourceType, namespace: string | undefined, name: string): string {
  return type.namespaced ? `${namespace ?? ''}/${name}` : name;
}
