import { describe, expect, it } from 'vitest';
import { configureLogging } from '../common/log.js';
import { Catalog } from './catalog.js';
import type { CatalogChange } from './types.js';

const lines: string[] = [];
configureLogging({ write: (l) => lines.push(l), format: 'json' });

function svc(name: string, spec: Record<string, unknown>, ns = 'default') {
  return { metadata: { name, namespace: ns, resourceVersion: '1' }, spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }], ...spec } };
}
function slice(name: string, service: string, addrs: Array<[string, boolean?, string?]>, opts: Record<string, unknown> = {}) {
  return {
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': service } },
    addressType: addrs[0]?.[0].includes(':') ? 'IPv6' : 'IPv4',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: addrs.map(([ip, ready, hostname]) => ({ addresses: [ip], conditions: ready === undefined ? {} : { ready }, ...(hostname ? { hostname } : {}) })),
    ...opts,
  };
}
function recorder(c: Catalog) {
  const changes: CatalogChange[] = [];
  c.onChange((ch) => changes.push(ch));
  return changes;
}

describe('Catalog', () => {
  it('merges the slices of a service, de-duplicating addresses with the ready one winning', () => {
    const c = new Catalog();
    c.apply('Service', svc('web', { clusterIP: '10.96.0.10' }));
    c.apply('EndpointSlice', slice('web-b', 'web', [['10.244.0.5', true], ['10.244.0.6', false]]));
    c.apply('EndpointSlice', slice('web-a', 'web', [['10.244.0.6', false], ['10.244.0.7']]));
    c.apply('EndpointSlice', slice('web-c', 'web', [['10.244.0.6', true]]));
    const eps = c.endpoints('default/web')!;
    expect(eps.endpoints.map((e) => [e.ip, e.ready])).toEqual([
      ['10.244.0.5', true],
      ['10.244.0.6', true],
      ['10.244.0.7', true],
    ]);
    expect(eps.ports).toHaveLength(1);
    expect(eps.ports[0]).toMatchObject({ name: 'http', protocol: 'TCP', port: 8080 });
    expect(eps.ports[0].endpoints.map((e) => e.ip)).toEqual(['10.244.0.5', '10.244.0.6', '10.244.0.7']);
  });

  it('applies the API defaults to endpoint conditions', () => {
    const c = new Catalog();
    c.apply('EndpointSlice', {
      ...slice('s', 'web', []),
      endpoints: [
        { addresses: ['10.0.0.1'] },
        { addresses: ['10.0.0.2'], conditions: { ready: false, terminating: true } },
        { addresses: ['10.0.0.3'], conditions: { ready: false, serving: true, terminating: true } },
      ],
    });
    const e = c.endpoints('default/web')!.endpoints;
    expect(e.map((x) => [x.ready, x.serving, x.terminating])).toEqual([
      [true, true, false],
      [false, false, true],
      [false, true, true],
    ]);
  });

  it('rejects a bad service alone, naming the field, and keeps the last good version', () => {
    const c = new Catalog();
    const changes = recorder(c);
    c.apply('Service', svc('good', { clusterIP: '10.96.0.1' }));
    c.apply('Service', svc('web', { clusterIP: '10.96.0.2' }));
    lines.length = 0;
    c.apply('Service', svc('web', { clusterIP: '10.96.0.2', ports: [{ port: 0 }] }));
    c.apply('Service', svc('bad', { clusterIPs: ['10.96.0.3', 'fd00::1'], ipFamilies: ['IPv6', 'IPv4'] }));
    expect(c.service('default/web')?.ports[0].port).toBe(80);
    expect(c.service('default/bad')).toBeUndefined();
    expect(c.service('default/good')).toBeDefined();
    expect(changes).toHaveLength(2);
    const logged = lines.map((l) => JSON.parse(l));
    expect(logged[0]).toMatchObject({ kind: 'Service', object: 'default/web', action: 'kept the last good version' });
    expect(logged[0].errors).toContain('spec.ports[0].port');
    expect(logged[1]).toMatchObject({ object: 'default/bad', action: 'ignored' });
    expect(logged[1].errors).toContain('spec.clusterIPs[0]: 10.96.0.3 is not of family IPv6');
  });

  it.each([
    ['a bad protocol', { ports: [{ port: 80, protocol: 'ICMP' }] }, 'spec.ports[0].protocol'],
    ['duplicate ports', { ports: [{ name: 'a', port: 80 }, { name: 'b', port: 80 }] }, 'spec.ports[1].port'],
    ['two unnamed ports', { ports: [{ port: 80 }, { port: 81 }] }, 'spec.ports[0].name'],
    ['a bad cluster IP', { clusterIP: '10.96.0.300' }, 'spec.clusterIP'],
    ['two IPv4 cluster IPs', { clusterIPs: ['10.96.0.1', '10.96.0.2'] }, 'spec.clusterIPs[1]'],
    ['a bad external IP', { externalIPs: ['nope'] }, 'spec.externalIPs[0]'],
    ['a bad source range', { loadBalancerSourceRanges: ['10.0.0.0/40'] }, 'spec.loadBalancerSourceRanges[0]'],
    ['a bad type', { type: 'Magic' }, 'spec.type'],
    ['a bad externalName', { type: 'ExternalName', externalName: 'not a name' }, 'spec.externalName'],
    ['a bad affinity timeout', { sessionAffinity: 'ClientIP', sessionAffinityConfig: { clientIP: { timeoutSeconds: 0 } } }, 'spec.sessionAffinityConfig.clientIP.timeoutSeconds'],
  ])('rejects %s', (_what, spec, field) => {
    const c = new Catalog();
    lines.length = 0;
    c.apply('Service', svc('x', spec));
    expect(c.service('default/x')).toBeUndefined();
    expect(JSON.parse(lines[0]).errors).toContain(field);
  });

  it('rejects a slice whose address is not of its addressType', () => {
    const c = new Catalog();
    lines.length = 0;
    c.apply('EndpointSlice', { ...slice('s', 'web', [['10.0.0.1']]), addressType: 'IPv6' });
    expect(c.endpoints('default/web')).toBeUndefined();
    expect(JSON.parse(lines[0]).errors).toContain('endpoints[0].addresses[0]');
  });

  it('normalizes a dual-stack service and its defaults', () => {
    const c = new Catalog();
    c.apply('Service', svc('web', { clusterIPs: ['10.96.0.10', 'FD00::000A'], ipFamilies: ['IPv4', 'IPv6'], selector: { app: 'web' } }));
    expect(c.service('default/web')).toMatchObject({
      type: 'ClusterIP',
      clusterIPs: ['10.96.0.10', 'fd00::a'],
      ipFamilies: ['IPv4', 'IPv6'],
      headless: false,
      sessionAffinity: 'None',
      sessionAffinityTimeoutSeconds: 10800,
      externalTrafficPolicy: 'Cluster',
      internalTrafficPolicy: 'Cluster',
      hasSelector: true,
      ports: [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 8080, nodePort: 0 }],
    });
  });

  it('delivers only real changes, with the changed service keys', () => {
    const c = new Catalog();
    const changes = recorder(c);
    c.apply('Service', svc('web', { clusterIP: '10.96.0.10' }));
    c.apply('Service', { ...svc('web', { clusterIP: '10.96.0.10' }), metadata: { name: 'web', namespace: 'default', resourceVersion: '2' } });
    c.apply('EndpointSlice', slice('web-a', 'web', [['10.244.0.5']]));
    c.apply('EndpointSlice', slice('web-a', 'web', [['10.244.0.5']]));
    c.batch(() => {
      c.apply('Service', svc('api', { clusterIP: '10.96.0.11' }));
      c.apply('Service', svc('db', { clusterIP: '10.96.0.12' }));
    });
    expect(changes.map((ch) => [...ch.services])).toEqual([['default/web'], ['default/web'], ['default/api', 'default/db']]);
    expect(changes.map((ch) => ch.generation)).toEqual([1, 2, 3]);
  });

  it('replace deletes what a relist no longer has and reports only the difference', () => {
    const c = new Catalog();
    c.replace('Service', [svc('a', { clusterIP: '10.96.0.1' }), svc('b', { clusterIP: '10.96.0.2' })]);
    const changes = recorder(c);
    c.replace('Service', [svc('a', { clusterIP: '10.96.0.1' }), svc('c', { clusterIP: '10.96.0.3' })]);
    expect([...c.services()].map((s) => s.key).sort()).toEqual(['default/a', 'default/c']);
    expect(changes).toHaveLength(1);
    expect([...changes[0].services].sort()).toEqual(['default/b', 'default/c']);
  });

  it('keeps Namespaces by name: a relist drops the gone ones, a bad name is refused, changes name them', () => {
    const c = new Catalog({ kinds: ['Namespace'] });
    const changes = recorder(c);
    c.replace('Namespace', [{ metadata: { name: 'prod' } }, { metadata: { name: 'staging' } }, { metadata: { name: 'Bad_Name' } }]);
    c.markSynced('Namespace');
    expect([c.namespace('prod')?.name, c.namespace('staging')?.name, c.namespace('Bad_Name')]).toEqual(['prod', 'staging', undefined]);
    c.replace('Namespace', [{ metadata: { name: 'prod', labels: { a: 'b' } } }]);
    expect(c.namespace('staging')).toBeUndefined();
    // The second change is the sync; a label on prod changes nothing DNS reads.
    expect(changes.map((ch) => [...ch.namespaces].sort())).toEqual([['prod', 'staging'], [], ['staging']]);
    c.delete('Namespace', '', 'prod');
    expect(c.namespace('prod')).toBeUndefined();
  });

  it('keeps ServiceCIDRs by name with their CIDRs; a bad CIDR or two of one family is refused with its field', () => {
    const c = new Catalog({ kinds: ['ServiceCIDR'] });
    const changes = recorder(c);
    const sc = (name: string, cidrs: unknown) => ({ apiVersion: 'networking.k8s.io/v1', kind: 'ServiceCIDR', metadata: { name }, spec: { cidrs } });
    lines.length = 0;
    c.replace('ServiceCIDR', [sc('kubernetes', ['10.96.0.0/16', 'fd00:96::/112']), sc('extra', ['10.100.0.0/24']), sc('bad', ['10.1.2.3']), sc('twice', ['10.0.0.0/8', '10.1.0.0/16'])]);
    const refused = lines.map((l) => JSON.parse(l) as { object: string; errors: string });
    expect(refused.map((r) => [r.object, r.errors])).toEqual([
      ['bad', 'spec.cidrs[0]: "10.1.2.3" is not a CIDR'],
      ['twice', 'spec.cidrs: two CIDRs must be of different families'],
    ]);
    c.markSynced('ServiceCIDR');
    expect([...c.serviceCIDRs()].map((s) => [s.name, s.cidrs])).toEqual([['kubernetes', ['10.96.0.0/16', 'fd00:96::/112']], ['extra', ['10.100.0.0/24']]]);
    expect(changes.map((ch) => [...ch.serviceCIDRs].sort())).toEqual([['extra', 'kubernetes'], []]);
    c.delete('ServiceCIDR', '', 'extra');
    expect([...c.serviceCIDRs()].map((s) => s.name)).toEqual(['kubernetes']);
    expect([...changes.at(-1)!.serviceCIDRs]).toEqual(['extra']);
  });

  it('becomes synced once every expected kind was listed, in one change', () => {
    const c = new Catalog({ kinds: ['Service', 'EndpointSlice'] });
    const changes = recorder(c);
    c.markSynced('Service');
    expect(c.synced).toBe(false);
    c.markSynced('EndpointSlice');
    expect(c.synced).toBe(true);
    expect(changes).toHaveLength(1);
    expect(changes[0].synced).toBe(true);
  });

  it('indexes addresses for reverse lookups and drops them with their owner', () => {
    const c = new Catalog();
    c.apply('Service', svc('db', { clusterIP: 'None' }));
    c.apply('EndpointSlice', slice('db-1', 'db', [['10.244.1.5', true, 'db-0']]));
    c.apply('Service', svc('web', { clusterIP: '10.96.0.10' }));
    c.apply('Pod', { metadata: { name: 'db-0', namespace: 'default' }, status: { podIPs: [{ ip: '10.244.1.5' }] } });
    expect(c.ownersOfIP('10.96.0.10')).toEqual([{ kind: 'service', serviceKey: 'default/web' }]);
    expect(c.ownersOfIP('10.244.1.5')).toEqual([
      { kind: 'endpoint', serviceKey: 'default/db', hostname: 'db-0' },
      { kind: 'pod', podKey: 'default/db-0' },
    ]);
    c.delete('Service', 'default', 'db');
    expect(c.ownersOfIP('10.244.1.5')).toEqual([{ kind: 'pod', podKey: 'default/db-0' }]);
    c.delete('Pod', 'default', 'db-0');
    expect(c.ownersOfIP('10.244.1.5')).toEqual([]);
    expect(c.podsByIP('10.244.1.5')).toEqual([]);
  });

  it('keeps a slice for a missing service and joins it when the service appears', () => {
    const c = new Catalog();
    c.apply('EndpointSlice', slice('late-1', 'late', [['10.244.0.9']]));
    expect(c.ownersOfIP('10.244.0.9')).toEqual([]);
    c.apply('Service', svc('late', { clusterIP: '10.96.0.99' }));
    expect(c.endpoints('default/late')?.endpoints).toHaveLength(1);
    expect(c.ownersOfIP('10.244.0.9')).toEqual([{ kind: 'endpoint', serviceKey: 'default/late' }]);
  });

  it('moves a slice between services when its label changes', () => {
    const c = new Catalog();
    c.apply('EndpointSlice', slice('s', 'a', [['10.0.0.1']]));
    c.apply('EndpointSlice', slice('s', 'b', [['10.0.0.1']]));
    expect(c.endpoints('default/a')).toBeUndefined();
    expect(c.endpoints('default/b')?.endpoints).toHaveLength(1);
  });

  it('a listener that throws does not stop the others', () => {
    const c = new Catalog();
    c.onChange(() => {
      throw new Error('boom');
    });
    const changes = recorder(c);
    c.apply('Service', svc('web', { clusterIP: '10.96.0.10' }));
    expect(changes).toHaveLength(1);
  });
});
