// API discovery for the kinds the server holds, in both forms kubectl knows: the aggregated
// document (apidiscovery.k8s.io v2 or v2beta1 APIGroupDiscoveryList, one answer for /api and one
// for /apis), which kubectl 1.32 asks for first, and the legacy per-group-version documents
// (APIVersions, APIGroupList, APIGroup, APIResourceList) it falls back to when a server answers
// /api and /apis with plain JSON.
import { preferredVersion } from './accept.js';
import { RESOURCE_TYPES, VERBS, type ResourceType } from './resources.js';

export interface DiscoveryAnswer {
  readonly contentType: string;
  readonly body: unknown;
}

const JSON_TYPE = 'application/json';
const AGGREGATED_GROUP = 'apidiscovery.k8s.io';
const AGGREGATED_VERSIONS = ['v2', 'v2beta1'] as const;

/** The groups other than the core one, each with its one version. */
function groups(): Map<string, ResourceType[]> {
  const out = new Map<string, ResourceType[]>();
  for (const t of RESOURCE_TYPES) if (t.group !== '') out.set(t.group, [...(out.get(t.group) ?? []), t]);
  return out;
}

/** The aggregated discovery version the client asked for first, if any. */
export function aggregatedVersion(accept: string | undefined): (typeof AGGREGATED_VERSIONS)[number] | undefined {
  return preferredVersion(accept, AGGREGATED_GROUP, 'APIGroupDiscoveryList', AGGREGATED_VERSIONS);
}

/** The answer for a discovery path, or undefined when `path` is not one. */
export function discover(path: string, accept: string | undefined, serverAddress: string): DiscoveryAnswer | undefined {
  const path0 = path.replace(/\/+$/, '') || '/';
  const aggregated = aggregatedVersion(accept);
  if (path0 === '/api' || path0 === '/apis') {
    if (aggregated) {
      const items = path0 === '/api'
        ? [groupDiscovery('', RESOURCE_TYPES.filter((t) => t.group === ''))]
        : [...groups()].map(([name, types]) => groupDiscovery(name, types));
      return {
        contentType: `${JSON_TYPE};g=${AGGREGATED_GROUP};v=${aggregated};as=APIGroupDiscoveryList`,
        body: { kind: 'APIGroupDiscoveryList', apiVersion: `${AGGREGATED_GROUP}/${aggregated}`, metadata: {}, items },
      };
    }
    if (path0 === '/api') {
      const serverAddressByClientCIDRs = [{ clientCIDR: '0.0.0.0/0', serverAddress }];
      return json({ kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs });
    }
    return json({ kind: 'APIGroupList', apiVersion: 'v1', groups: [...groups().keys()].map((g) => apiGroup(g)) });
  }
  if (path0 === '/api/v1') return json(resourceList('v1', RESOURCE_TYPES.filter((t) => t.group === '')));
  for (const [name, types] of groups()) {
    if (path0 === `/apis/${name}`) return json({ kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(name) });
    if (path0 === `/apis/${name}/${types[0].version}`) return json(resourceList(`${name}/${types[0].version}`, types));
  }
  return undefined;
}

function json(body: unknown): DiscoveryAnswer {
  return { contentType: JSON_TYPE, body };
}

function apiGroup(name: string): Record<string, unknown> {
  const version = { groupVersion: `${name}/v1`, version: 'v1' };
  return { name, versions: [version], preferredVersion: version };
}

function resourceList(groupVersion: string, types: readonly ResourceType[]): Record<string, unknown> {
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion,
    resources: types.map((t) => ({
      name: t.plural,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: [...VERBS],
      ...(t.shortNames.length ? { shortNames: [...t.shortNames] } : {}),
      ...(t.categories.length ? { categories: [...t.categories] } : {}),
    })),
  };
}

function groupDiscovery(name: string, types: readonly ResourceType[]): Record<string, unknown> {
  return {
    metadata: name === '' ? {} : { name },
    versions: [{
      version: types[0].version,
      freshness: 'Current',
      resources: types.map((t) => ({
        resource: t.plural,
        responseKind: { group: t.group, version: t.version, kind: t.kind },
        scope: t.namespaced ? 'Namespaced' : 'Cluster',
        singularResource: t.singular,
        verbs: [...VERBS],
        ...(t.shortNames.length ? { shortNames: [...t.shortNames] } : {}),
        ...(t.categories.length ? { categories: [...t.categories] } : {}),
      })),
    }],
  };
}
