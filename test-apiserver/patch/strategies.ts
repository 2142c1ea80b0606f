// The patch strategies of the kinds the server holds: which lists a strategic merge patch merges
// (by which key) instead of replacing. They are the `patchStrategy`/`patchMergeKey` tags of the
// real Go types (k8s.io/api core/v1 and discovery/v1); a list not named here is replaced whole,
// as EndpointSlice `endpoints` and `ports` are (atomic lists, no strategy). Paths name list
// elements with `[]`.

/** A merged list: of maps matched by `key`, or of primitives (a set union) without one. */
export interface ListStrategy {
  readonly key?: string;
}

export type Strategies = ReadonlyMap<string, ListStrategy>;

const METADATA: Record<string, ListStrategy> = {
  'metadata.finalizers': {},
  'metadata.ownerReferences': { key: 'uid' },
};

const CONTAINER: Record<string, ListStrategy> = {
  ports: { key: 'containerPort' },
  env: { key: 'name' },
  volumeMounts: { key: 'mountPath' },
  volumeDevices: { key: 'devicePath' },
};

function containers(list: string): Record<string, ListStrategy> {
  const out: Record<string, ListStrategy> = { [`spec.${list}`]: { key: 'name' } };
  for (const [field, s] of Object.entries(CONTAINER)) out[`spec.${list}[].${field}`] = s;
  return out;
}

const BY_KIND: Record<string, Record<string, ListStrategy>> = {
  Service: { 'spec.ports': { key: 'port' }, 'status.conditions': { key: 'type' } },
  EndpointSlice: {},
  Node: { 'spec.podCIDRs': {}, 'status.conditions': { key: 'type' }, 'status.addresses': { key: 'type' } },
  Pod: {
    ...containers('containers'),
    ...containers('initContainers'),
    ...containers('ephemeralContainers'),
    'spec.volumes': { key: 'name' },
    'spec.imagePullSecrets': { key: 'name' },
    'spec.hostAliases': { key: 'ip' },
    'status.conditions': { key: 'type' },
    'status.podIPs': { key: 'ip' },
  },
  Namespace: { 'status.conditions': { key: 'type' } },
};

export function strategiesOf(kind: string): Strategies {
  return new Map(Object.entries({ ...METADATA, ...BY_KIND[kind] }));
}
