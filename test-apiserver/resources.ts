// The resource types the test API server serves, and how their URLs and objects are named.
export interface ResourceType {
  /** URL plural: `services`. */
  readonly plural: string;
  readonly kind: string;
  readonly listKind: string;
  readonly apiVersion: string;
  /** URL prefix of the group version: `/api/v1` or `/apis/discovery.k8s.io/v1`. */
  readonly prefix: string;
  readonly namespaced: boolean;
}

export const RESOURCE_TYPES: readonly ResourceType[] = [
  { plural: 'services', kind: 'Service', listKind: 'ServiceList', apiVersion: 'v1', prefix: '/api/v1', namespaced: true },
  { plural: 'endpointslices', kind: 'EndpointSlice', listKind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', prefix: '/apis/discovery.k8s.io/v1', namespaced: true },
  { plural: 'nodes', kind: 'Node', listKind: 'NodeList', apiVersion: 'v1', prefix: '/api/v1', namespaced: false },
  { plural: 'pods', kind: 'Pod', listKind: 'PodList', apiVersion: 'v1', prefix: '/api/v1', namespaced: true },
];

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
