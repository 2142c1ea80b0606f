// Strategic merge patch with the kinds' strategies: what kubectl apply, edit and patch send.
import { describe, expect, it } from 'vitest';
import { PatchError, type Json } from './errors.js';
import { strategicMergePatch } from './strategic-merge-patch.js';
import { strategiesOf } from './strategies.js';

const svc: Json = {
  metadata: { name: 'web', labels: { app: 'web', tier: 'backend' }, finalizers: ['a'] },
  spec: {
    clusterIP: '10.96.0.80',
    clusterIPs: ['10.96.0.80', 'fd00:96::80'],
    selector: { app: 'web' },
    ports: [{ name: 'http', port: 80, targetPort: 8080 }, { name: 'dns', port: 53, protocol: 'UDP' }],
  },
};
const slice: Json = {
  metadata: { name: 'web-1', labels: { 'kubernetes.io/service-name': 'web' } },
  addressType: 'IPv4',
  endpoints: [{ addresses: ['10.244.0.11'], conditions: { ready: true } }, { addresses: ['10.244.0.12'], conditions: { ready: true } }],
  ports: [{ name: 'http', port: 8080 }],
};
const service = (patch: Json) => strategicMergePatch(svc, patch, strategiesOf('Service'));

describe('strategicMergePatch', () => {
  it('merges Service ports by port: an element updates its match, a new port is appended', () => {
    const out = service({ spec: { ports: [{ port: 80, targetPort: 9090 }, { name: 'https', port: 443, targetPort: 8443 }] } }) as any;
    expect(out.spec.ports).toEqual([
      { name: 'http', port: 80, targetPort: 9090 },
      { name: 'dns', port: 53, protocol: 'UDP' },
      { name: 'https', port: 443, targetPort: 8443 },
    ]);
  });

  it('takes what kubectl apply sends when a port is added: $setElementOrder orders the result', () => {
    const out = service({ spec: { '$setElementOrder/ports': [{ port: 443 }, { port: 80 }, { port: 53 }], ports: [{ name: 'https', port: 443 }] } }) as any;
    expect(out.spec.ports.map((p: any) => p.port)).toEqual([443, 80, 53]);
  });

  it('deletes a list element with $patch: delete, and replaces a list with $patch: replace', () => {
    expect((service({ spec: { ports: [{ port: 53, $patch: 'delete' }] } }) as any).spec.ports).toEqual([{ name: 'http', port: 80, targetPort: 8080 }]);
    expect((service({ spec: { ports: [{ $patch: 'replace' }, { name: 'x', port: 1 }] } }) as any).spec.ports).toEqual([{ name: 'x', port: 1 }]);
  });

  it('replaces lists without a strategy (clusterIPs; EndpointSlice endpoints and ports)', () => {
    expect((service({ spec: { clusterIPs: ['10.96.0.81'] } }) as any).spec.clusterIPs).toEqual(['10.96.0.81']);
    const out = strategicMergePatch(slice, { endpoints: [{ addresses: ['10.244.0.11'] }] }, strategiesOf('EndpointSlice')) as any;
    expect(out.endpoints).toEqual([{ addresses: ['10.244.0.11'] }]);
    expect(out.ports).toEqual([{ name: 'http', port: 8080 }]);
  });

  it('merges labels, annotations and the selector as maps; null removes a key', () => {
    const out = service({ metadata: { labels: { tier: 'api', app: null }, annotations: { note: 'x' } }, spec: { selector: { version: 'v2' } } }) as any;
    expect(out.metadata.labels).toEqual({ tier: 'api' });
    expect(out.metadata.annotations).toEqual({ note: 'x' });
    expect(out.spec.selector).toEqual({ app: 'web', version: 'v2' });
  });

  it('replaces a map with $patch: replace and removes it with $patch: delete', () => {
    expect((service({ spec: { selector: { $patch: 'replace', app: 'api' } } }) as any).spec.selector).toEqual({ app: 'api' });
    expect((service({ spec: { selector: { $patch: 'delete' } } }) as any).spec.selector).toBeUndefined();
  });

  it('unions primitive merge lists (finalizers, Node podCIDRs) and deletes from them with $deleteFromPrimitiveList', () => {
    expect((service({ metadata: { finalizers: ['b', 'a'] } }) as any).metadata.finalizers).toEqual(['a', 'b']);
    expect((service({ metadata: { '$deleteFromPrimitiveList/finalizers': ['a'] } }) as any).metadata.finalizers).toEqual([]);
    const node = strategicMergePatch({ spec: { podCIDRs: ['10.244.0.0/24'] } }, { spec: { podCIDRs: ['fd00:244::/64'] } }, strategiesOf('Node')) as any;
    expect(node.spec.podCIDRs).toEqual(['10.244.0.0/24', 'fd00:244::/64']);
  });

  it('merges Pod containers by name and their env by name', () => {
    const pod: Json = { spec: { containers: [{ name: 'app', image: 'a:1', env: [{ name: 'A', value: '1' }] }, { name: 'side', image: 's:1' }] } };
    const out = strategicMergePatch(pod, { spec: { containers: [{ name: 'app', image: 'a:2', env: [{ name: 'B', value: '2' }] }] } }, strategiesOf('Pod')) as any;
    expect(out.spec.containers).toEqual([
      { name: 'app', image: 'a:2', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] },
      { name: 'side', image: 's:1' },
    ]);
  });

  it('keeps only $retainKeys when given', () => {
    expect((service({ spec: { $retainKeys: ['ports', 'selector'], selector: { app: 'web' } } }) as any).spec).toEqual({
      selector: { app: 'web' }, ports: (svc as any).spec.ports,
    });
  });

  it('refuses merge-list elements without their key (422) and patches that are not objects (400)', () => {
    const fail = (patch: Json) => {
      try {
        service(patch);
      } catch (err) {
        return err instanceof PatchError ? `${err.code} ${err.message}` : String(err);
      }
      return 'applied';
    };
    expect(fail({ spec: { ports: [{ name: 'no-port' }] } })).toMatch(/^422 spec\.ports: .* merge key port/);
    expect(fail(['x'])).toMatch(/^400/);
    expect(fail({ spec: { selector: { $patch: 'frob' } } })).toMatch(/^400 spec\.selector: unknown \$patch directive/);
  });
});
