// The server-side tables: kubectl's durations, and the cells of the printers for these kinds.
import { describe, expect, it } from 'vitest';
import { service } from './population.js';
import { resourceByKind } from './resources.js';
import { humanDuration, table, tableRequest } from './tables.js';

const NOW = Date.parse('2026-12-03T12:00:00Z');
const at = (ago: number) => ({ creationTimestamp: new Date(NOW - ago).toISOString() });
const cells = (kind: string, obj: Record<string, any>) => (table(resourceByKind(kind), { version: 'v1', includeObject: 'None' }, [obj], {}, NOW).rows as any[])[0].cells;

describe('server-side tables', () => {
  it('formats ages as kubectl does', () => {
    expect([0, 59_000, 119_000, 120_000, 185_000, 600_000, 3 * 3600_000, 7.5 * 3600_000, 30 * 3600_000, 50 * 3600_000, 400 * 86400_000, 3 * 365 * 86400_000 + 86400_000]
      .map(humanDuration)).toEqual(['0s', '59s', '119s', '2m', '3m5s', '10m', '3h', '7h30m', '30h', '2d2h', '400d', '3y1d']);
    expect(humanDuration(-5000)).toBe('<invalid>');
  });

  it('prints a Service by type: cluster IP, external IP, ports with node ports, selector', () => {
    const svc = { ...service({ name: 'web', clusterIP: '10.96.0.80' }), metadata: { name: 'web', ...at(90_000) } } as Record<string, any>;
    expect(cells('Service', svc)).toEqual(['web', 'ClusterIP', '10.96.0.80', '<none>', '80/TCP', '90s', 'app=web']);
    svc.spec = { ...svc.spec, type: 'LoadBalancer', ports: [{ port: 443, nodePort: 30443, protocol: 'TCP' }] };
    expect(cells('Service', svc).slice(1, 5)).toEqual(['LoadBalancer', '10.96.0.80', '<pending>', '443:30443/TCP']);
    expect(cells('Service', { metadata: { name: 'docs' }, spec: { type: 'ExternalName', externalName: 'docs.example.test' } }).slice(1, 5))
      .toEqual(['ExternalName', '<none>', 'docs.example.test', '<none>']);
  });

  it('prints an EndpointSlice with its first three addresses', () => {
    const slice = { metadata: { name: 's', ...at(1000) }, addressType: 'IPv4', ports: [{ port: 8080 }], endpoints: [1, 2, 3, 4, 5].map((i) => ({ addresses: [`10.0.0.${i}`] })) };
    expect(cells('EndpointSlice', slice)).toEqual(['s', 'IPv4', '8080', '10.0.0.1,10.0.0.2,10.0.0.3 + 2 more...', '1s']);
    expect(cells('EndpointSlice', { metadata: { name: 'e' }, addressType: 'IPv4' }).slice(2, 4)).toEqual(['<unset>', '<unset>']);
  });

  it('is asked for by the Accept header, and carries the object metadata by default', () => {
    const accept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json';
    expect(tableRequest(accept, undefined)).toEqual({ version: 'v1', includeObject: 'Metadata' });
    expect(tableRequest('application/json', undefined)).toBeUndefined();
    expect(() => tableRequest(accept, 'All')).toThrow(/includeObject "All"/);
    const t = table(resourceByKind('Namespace'), { version: 'v1', includeObject: 'Metadata' }, [{ metadata: { name: 'demo' }, status: { phase: 'Active' } }], { resourceVersion: '7' }, NOW) as any;
    expect(t).toMatchObject({ kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: '7' } });
    expect(t.columnDefinitions.map((c: any) => c.name)).toEqual(['Name', 'Status', 'Age']);
    expect(t.rows[0].object).toEqual({ kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'demo' } });
  });
});
