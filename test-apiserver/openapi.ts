// A minimal OpenAPI v3 for kubectl: per group version, the PATCH operation of each kind with the
// `fieldValidation` query parameter, which is how kubectl (apply, create, replace) learns that the
// server validates fields itself and leaves its client-side schema check out. There are no type
// schemas: kubectl then computes strategic merge patches from its own compiled-in types, as it
// does for any server without them. What the server checks under `fieldValidation` is in
// field-validation.ts.
import { createHash } from 'node:crypto';
import { RESOURCE_TYPES, type ResourceType } from './resources.js';

/** `api/v1`, `apis/discovery.k8s.io/v1`: the keys of the v3 root document. */
function groupVersionPath(t: ResourceType): string {
  return t.prefix.slice(1);
}

function groupVersionDoc(types: readonly ResourceType[]): Record<string, unknown> {
  const paths: Record<string, unknown> = {};
  for (const t of types) {
    const path = t.namespaced ? `${t.prefix}/namespaces/{namespace}/${t.plural}/{name}` : `${t.prefix}/${t.plural}/{name}`;
    paths[path] = {
      patch: {
        operationId: `patch${t.namespaced ? 'Namespaced' : ''}${t.kind}`,
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': { group: t.group, version: t.version, kind: t.kind },
        parameters: [{
          name: 'fieldValidation',
          in: 'query',
          description: 'Ignore, Warn or Strict: what to do with fields the server does not know (field-validation.ts says which it checks).',
          schema: { type: 'string', uniqueItems: true },
        }],
        responses: { '200': { description: 'OK' } },
      },
    };
  }
  return { openapi: '3.0.0', info: { title: 'kube-dataplane test API server', version: 'v1' }, paths, components: { schemas: {} } };
}

const DOCS: ReadonlyMap<string, string> = (() => {
  const byPath = new Map<string, ResourceType[]>();
  for (const t of RESOURCE_TYPES) byPath.set(groupVersionPath(t), [...(byPath.get(groupVersionPath(t)) ?? []), t]);
  return new Map([...byPath].map(([p, types]) => [p, JSON.stringify(groupVersionDoc(types))]));
})();

/** The answer (JSON text) for an /openapi/v3 path, or undefined when `path` is not one we serve. */
export function openapiV3(path: string): string | undefined {
  if (path === '/openapi/v3' || path === '/openapi/v3/') {
    const paths: Record<string, unknown> = {};
    for (const [p, doc] of DOCS) {
      const hash = createHash('sha512').update(doc).digest('hex').slice(0, 32).toUpperCase();
      paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash}` };
    }
    return JSON.stringify({ paths });
  }
  return path.startsWith('/openapi/v3/') ? DOCS.get(path.slice('/openapi/v3/'.length)) : undefined;
}
