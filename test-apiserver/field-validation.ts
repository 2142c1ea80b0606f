// `fieldValidation` (Ignore | Warn | Strict, default Warn as kube-apiserver): fields the server
// does not know. Known here are the fields of the real types at the top level, in metadata, and
// where kube-dataplane reads (Service spec and ports, EndpointSlice endpoints, conditions, hints
// and ports); deeper parts of Node and Pod are not checked. Strict refuses the object with a 400,
// Warn answers with one `Warning` header per field.
const OBJECT_META = ['name', 'generateName', 'namespace', 'selfLink', 'uid', 'resourceVersion', 'generation', 'creationTimestamp',
  'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'ownerReferences', 'finalizers', 'managedFields'];
const WITH_SPEC = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

/** For each kind, the known fields by path (`[]` is every element of a list). */
const KNOWN: Record<string, Record<string, readonly string[]>> = {
  Service: {
    '': WITH_SPEC,
    spec: ['ports', 'selector', 'clusterIP', 'clusterIPs', 'type', 'externalIPs', 'sessionAffinity', 'loadBalancerIP',
      'loadBalancerSourceRanges', 'externalName', 'externalTrafficPolicy', 'healthCheckNodePort', 'publishNotReadyAddresses',
      'sessionAffinityConfig', 'ipFamilies', 'ipFamilyPolicy', 'allocateLoadBalancerNodePorts', 'loadBalancerClass',
      'internalTrafficPolicy', 'trafficDistribution'],
    'spec.ports[]': ['name', 'protocol', 'appProtocol', 'port', 'targetPort', 'nodePort'],
  },
  EndpointSlice: {
    '': ['apiVersion', 'kind', 'metadata', 'addressType', 'endpoints', 'ports'],
    'endpoints[]': ['addresses', 'conditions', 'hostname', 'targetRef', 'nodeName', 'zone', 'hints', 'deprecatedTopology'],
    'endpoints[].conditions': ['ready', 'serving', 'terminating'],
    'endpoints[].hints': ['forZones', 'forNodes'],
    'ports[]': ['name', 'protocol', 'port', 'appProtocol'],
  },
  Node: { '': WITH_SPEC },
  Pod: { '': WITH_SPEC },
  Namespace: { '': WITH_SPEC },
};

export type FieldValidation = 'Ignore' | 'Warn' | 'Strict';

export function parseFieldValidation(v: string | undefined): FieldValidation {
  if (v === undefined || v === '') return 'Warn';
  if (v === 'Ignore' || v === 'Warn' || v === 'Strict') return v;
  throw new TypeError(`fieldValidation ${JSON.stringify(v)}: not one of Ignore, Warn, Strict`);
}

/** What `mode` makes of the unknown fields of an object being written: Strict throws (a 400 with
 *  kube-apiserver's wording), Warn returns the `Warning` header values, Ignore nothing. */
export function checkFields(kind: string, version: string, obj: Record<string, unknown>, mode: FieldValidation): string[] {
  if (mode === 'Ignore') return [];
  const unknown = unknownFields(kind, obj).map((f) => `unknown field ${JSON.stringify(f)}`);
  if (unknown.length && mode === 'Strict') {
    throw new TypeError(`${kind} in version "${version}" cannot be handled as a ${kind}: strict decoding error: ${unknown.join(', ')}`);
  }
  return unknown.map((w) => `299 - ${JSON.stringify(w)}`);
}

/** The unknown fields of `obj`, as paths (`spec.ports[0].prot`). */
export function unknownFields(kind: string, obj: Record<string, unknown>): string[] {
  const known: Record<string, readonly string[]> = { ...KNOWN[kind], metadata: OBJECT_META };
  const out: string[] = [];
  const walk = (value: unknown, shape: string, shown: string): void => {
    if (Array.isArray(value)) {
      value.forEach((v, i) => walk(v, `${shape}[]`, `${shown}[${i}]`));
      return;
    }
    if (typeof value !== 'object' || value === null) return;
    const fields = known[shape];
    for (const [key, v] of Object.entries(value)) {
      const childShape = shape ? `${shape}.${key}` : key;
      const childShown = shown ? `${shown}.${key}` : key;
      if (fields && !fields.includes(key)) out.push(childShown);
      else walk(v, childShape, childShown);
    }
  };
  walk(obj, '', '');
  return out;
}
