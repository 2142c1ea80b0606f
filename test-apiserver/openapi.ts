// A minimal OpenAPI for kubectl. v3: per group version, the PATCH operation of each kind with the
// `fieldValidation` query parameter, which is how kubectl (1.27+: apply, create, replace) learns
// that the server validates fields itself and leaves its client-side schema check out. v2 (what
// older kubectl, such as Debian's 1.20, downloads before apply, in protobuf): a document with no
// paths and no definitions. Neither carries type schemas, so kubectl validates nothing on the
// client and computes strategic merge patches from its own compiled-in types, as it does for any
// server without them. What the server checks under `fieldValidation` is in field-validation.ts.
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
          description: 'Ignore, Warn or Strict: what to do with fields the server does not know.',
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

const V2_INFO = { title: 'kube-dataplane test API server', version: 'v1' };
// What kube-apiserver names it in the response ('@', as in the Accept header clients send, is not
// a valid media-type character and Go's mime parser refuses it).
const PROTOBUF_V2 = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

/** A length-delimited protobuf field (wire type 2); every length here is under 128 bytes. */
function field(num: number, body: Buffer | string): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return Buffer.concat([Buffer.from([(num << 3) | 2, bytes.length]), bytes]);
}

/** /openapi/v2 (and the older /swagger-2.0.0.pb-v1): gnostic's openapi.v2.Document in protobuf
 *  when asked for it (swagger = 1, info = 2 {title = 1, version = 2}, paths = 8), else JSON. */
export function openapiV2(path: string, accept: string | undefined): { contentType: string; body: Buffer | string } | undefined {
  if (path !== '/openapi/v2' && path !== '/swagger-2.0.0.pb-v1') return undefined;
  if ((accept ?? '').includes('protobuf') || path.endsWith('.pb-v1')) {
    const info = Buffer.concat([field(1, V2_INFO.title), field(2, V2_INFO.version)]);
    const body = Buffer.concat([field(1, '2.0'), field(2, info), field(8, Buffer.alloc(0))]);
    return { contentType: PROTOBUF_V2, body };
  }
  return { contentType: 'application/json', body: JSON.stringify({ swagger: '2.0', info: V2_INFO, paths: {} }) };
}

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
