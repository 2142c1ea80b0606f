// autopath on the real catalog, zone and handler: which asker gets a walk, and that what it
// remembers per asker (its search path) and per question (the walk's reply) follows the catalog.
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { Catalog } from '../cluster/catalog.js';
import { fixtureServices, serviceObjects } from '../bench/dns/fixtures.js';
import { logger } from '../common/log.js';
import { AnswerCache } from './cache.js';
import { Forwarder } from './forwarder.js';
import { AutopathHandler } from './autopath.js';
import { DnsHandler, forwardEverything, type Transport } from './handler.js';
import { ClusterZone } from './zone.js';

const UDP: Transport = { proto: 'udp', family: '1', server: 'dns://test:53' };
const ASKER = '10.244.9.9';

function podAt(namespace: string, ip: string) {
  return { metadata: { name: 'client', namespace }, spec: {}, status: { podIP: ip, podIPs: [{ ip }] } };
}

function setup() {
  const catalog = new Catalog({ kinds: ['Service', 'EndpointSlice', 'Node', 'Pod'] });
  catalog.batch(() => {
    for (const s of fixtureServices()) for (const o of serviceObjects(s)) catalog.apply((o as { kind: 'Service' | 'EndpointSlice' }).kind, o);
    for (const k of ['Service', 'EndpointSlice', 'Node', 'Pod'] as const) catalog.markSynced(k);
  });
  const zone = new ClusterZone({ domain: 'cluster.local', ttl: 5, pods: 'verified' }, catalog);
  zone.attach();
  const inner = new DnsHandler(zone, forwardEverything(new Forwarder([])), new AnswerCache(), undefined, logger('test'));
  const autopath = new AutopathHandler({ domain: 'cluster.local', zones: [''], extraSearch: [] }, catalog, inner);
  return { catalog, autopath };
}

/** The reply's rcode and answers as `name TYPE data`, asked by `from`. */
async function ask(h: AutopathHandler, name: string, from: string) {
  const msg = dnsPacket.encode({ type: 'query', id: 77, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] });
  const r = await h.handle(msg, UDP, { address: from, port: 5353 });
  if (!r) throw new Error('no reply');
  const p = dnsPacket.decode(r) as dnsPacket.DecodedPacket & { rcode?: string };
  expect(p.id).toBe(77);
  return { rcode: p.rcode, answers: (p.answers ?? []).map((a) => `${a.name} ${a.type} ${'data' in a ? String(a.data) : ''}`) };
}

describe('autopath', () => {
  it('walks the search path of the pod that asks, and only of a pod', async () => {
    const { catalog, autopath } = setup();
    // No pod has the address yet: the question is answered as asked.
    expect((await ask(autopath, 'web.staging.prod.svc.cluster.local', ASKER)).rcode).toBe('NXDOMAIN');
    catalog.apply('Pod', podAt('prod', ASKER));
    const walked = await ask(autopath, 'web.staging.prod.svc.cluster.local', ASKER);
    expect(walked.answers).toEqual(['web.staging.prod.svc.cluster.local CNAME web.staging.svc.cluster.local', 'web.staging.svc.cluster.local A 10.96.1.10']);
    // Asked again (the walk's reply remembered): the same answer, with this question's ID.
    expect((await ask(autopath, 'web.staging.prod.svc.cluster.local', ASKER)).answers).toEqual(walked.answers);
    // Another address is still no pod's.
    expect((await ask(autopath, 'web.staging.prod.svc.cluster.local', '10.244.9.10')).rcode).toBe('NXDOMAIN');
  });

  it('follows a pod whose address moves to another namespace', async () => {
    const { catalog, autopath } = setup();
    catalog.apply('Pod', podAt('prod', ASKER));
    expect((await ask(autopath, 'web.staging.prod.svc.cluster.local', ASKER)).answers).toHaveLength(2);
    catalog.delete('Pod', 'prod', 'client');
    catalog.apply('Pod', podAt('staging', ASKER));
    // Its first search domain is staging's now: a name ending in prod's is not a walk's first step.
    expect((await ask(autopath, 'web.staging.prod.svc.cluster.local', ASKER)).rcode).toBe('NXDOMAIN');
    expect((await ask(autopath, 'web.prod.staging.svc.cluster.local', ASKER)).answers).toEqual([
      'web.prod.staging.svc.cluster.local CNAME web.prod.svc.cluster.local', 'web.prod.svc.cluster.local A 10.96.0.10',
    ]);
  });
});
