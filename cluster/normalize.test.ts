import { describe, expect, it } from 'vitest';
import { normalizeEndpointSlice, normalizeNode, normalizePod, normalizeService, type FieldError } from './normalize.js';

const HOSTILE = 'x" -j ACCEPT\n-I INPUT 1 -j ACCEPT';

function svc(meta: Record<string, unknown>, ports: unknown[] = [{ name: 'http', port: 80 }]) {
  return { metadata: { namespace: 'ns', ...meta }, spec: { clusterIP: '10.96.0.1', ports } };
}
function errorsOf(r: { ok: true } | { ok: false; errors: FieldError[] }): FieldError[] {
  return r.ok ? [] : r.errors;
}

describe('names at the catalog boundary', () => {
  it('a Service name must be an RFC 1035 label, named in the error', () => {
    expect(normalizeService(svc({ name: 'web' })).ok).toBe(true);
    for (const name of [HOSTILE, '1web', 'Web', 'web.x']) {
      const errs = errorsOf(normalizeService(svc({ name })));
      expect(errs.map((e) => e.field), name).toEqual(['metadata.name']);
      expect(errs[0].reason).toContain(JSON.stringify(name));
    }
  });

  it('a namespace must be an RFC 1123 label', () => {
    const errs = errorsOf(normalizeService(svc({ name: 'web', namespace: 'ns"; -j ACCEPT' })));
    expect(errs.map((e) => e.field)).toEqual(['metadata.namespace']);
  });

  it('service port names are RFC 1123 labels (as ValidateServicePort), named targetPorts IANA service names', () => {
    expect(normalizeService(svc({ name: 'web' }, [{ name: 'metrics-exporter-http', port: 80, targetPort: 'metrics' }])).ok).toBe(true);
    const bad = errorsOf(normalizeService(svc({ name: 'web' }, [{ name: 'a"b', port: 80 }, { name: 'c', port: 81, targetPort: 'x"y' }])));
    expect(bad.map((e) => e.field)).toEqual(['spec.ports[0].name', 'spec.ports[1].targetPort']);
  });

  it('label values are checked; a bad one names its key', () => {
    const errs = errorsOf(normalizeService(svc({ name: 'web', labels: { 'service.kubernetes.io/service-proxy-name': 'a" b' } })));
    expect(errs.map((e) => e.field)).toEqual(['metadata.labels["service.kubernetes.io/service-proxy-name"]']);
  });

  it('EndpointSlice, Node and Pod names are RFC 1123 subdomains; so are endpoint node names', () => {
    const slice = (name: string, ep: Record<string, unknown> = {}, portName = 'http') => ({
      metadata: { name, namespace: 'ns', labels: { 'kubernetes.io/service-name': 'web' } },
      addressType: 'IPv4',
      ports: [{ name: portName, port: 8080 }],
      endpoints: [{ addresses: ['10.0.0.1'], ...ep }],
    });
    expect(normalizeEndpointSlice(slice('web-abc.1')).ok).toBe(true);
    expect(errorsOf(normalizeEndpointSlice(slice(HOSTILE))).map((e) => e.field)).toEqual(['metadata.name']);
    expect(errorsOf(normalizeEndpointSlice(slice('s', {}, 'a b'))).map((e) => e.field)).toEqual(['ports[0].name']);
    expect(errorsOf(normalizeEndpointSlice(slice('s', { nodeName: 'n"x' }))).map((e) => e.field)).toEqual(['endpoints[0].nodeName']);
    expect(errorsOf(normalizeEndpointSlice(slice('s', { zone: 'z one' }))).map((e) => e.field)).toEqual(['endpoints[0].zone']);
    expect(errorsOf(normalizeEndpointSlice(slice('s', { hints: { forZones: [{ name: 'z"' }] } }))).map((e) => e.field)).toEqual(['endpoints[0].hints.forZones[0].name']);
    expect(errorsOf(normalizeNode({ metadata: { name: 'Node_1' } })).map((e) => e.field)).toEqual(['metadata.name']);
    expect(errorsOf(normalizePod({ metadata: { name: 'p o d', namespace: 'ns' } })).map((e) => e.field)).toEqual(['metadata.name']);
  });
});
