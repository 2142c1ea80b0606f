// The record logic, table-driven: each row is a question and the reply it must get from the
// fixture cluster. The dig tests in netns-tests/ are the proof; these pin the details cheaply.
import { beforeAll, describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { Catalog } from '../cluster/catalog.js';
import { networkInterfaces } from 'node:os';
import { fixtureServices, serviceObjects, type ServiceSpec } from '../bench/dns/fixtures.js';
import { logger } from '../common/log.js';
import { AnswerCache } from './cache.js';
import { Forwarder } from './forwarder.js';
import { DnsHandler, forwardEverything, type Transport } from './handler.js';
import { reverseName } from './names.js';
import { parseQuery } from './wire.js';
import { serverAddresses } from './apex-records.js';
import { ClusterZone, type PodsMode, type ZoneOptions } from './zone.js';
import { decodeReply, rdata, type Reply } from '../bench/dns/reply.js';

const UDP: Transport = { proto: 'udp', family: '1', server: 'dns://test:53' };
const TCP: Transport = { ...UDP, proto: 'tcp' };

function makeCatalog(synced = true): Catalog {
  const c = new Catalog({ kinds: ['Service', 'EndpointSlice', 'Node', 'Pod'] });
  c.batch(() => {
    for (const s of fixtureServices()) for (const o of serviceObjects(s)) c.apply((o as { kind: 'Service' | 'EndpointSlice' }).kind, o);
    c.apply('Pod', { metadata: { name: 'p1', namespace: 'prod' }, spec: {}, status: { podIP: '10.244.7.7', podIPs: [{ ip: '10.244.7.7' }] } });
    if (synced) for (const k of ['Service', 'EndpointSlice', 'Node', 'Pod'] as const) c.markSynced(k);
  });
  return c;
}

function makeHandler(catalog: Catalog, pods: PodsMode = 'insecure') {
  const zone = new ClusterZone({ domain: 'cluster.local', ttl: 5, pods }, catalog);
  zone.attach();
  const handler = new DnsHandler(zone, forwardEverything(new Forwarder([])), new AnswerCache(), undefined, logger('test'));
  return { zone, handler };
}

type Q = { name: string; type: string; edns?: number; tcp?: boolean };

async function ask(handler: DnsHandler, q: Q) {
  const buf = dnsPacket.encode({
    type: 'query',
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: q.name, type: q.type as 'A', class: 'IN' }],
    ...(q.edns ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: q.edns }] } : {}),
  } as dnsPacket.Packet);
  const reply = await handler.handle(buf, q.tcp ? TCP : UDP);
  if (!reply) throw new Error('no reply');
  return { raw: reply, msg: decodeReply(reply) };
}

const rcodeOf = (m: Reply) => m.rcode;
const data = (m: dnsPacket.DecodedPacket, type?: string) =>
  (m.answers ?? [])
    .filter((a) => !type || a.type === type)
    .map(rdata)
    .map((d) => (Array.isArray(d) ? JSON.stringify(d.map(String)) : typeof d === 'object' ? JSON.stringify(d) : String(d)))
    .sort();

describe('cluster zone', () => {
  let handler: DnsHandler;
  beforeAll(() => {
    ({ handler } = makeHandler(makeCatalog()));
  });

  const rows: Array<{ q: Q; rcode: string; answers?: string[]; soa?: boolean; why: string }> = [
    { q: { name: 'web.prod.svc.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: ['10.96.0.10'], why: 'ClusterIP A' },
    { q: { name: 'web.prod.svc.cluster.local', type: 'AAAA' }, rcode: 'NOERROR', answers: ['fd00:96::10'], why: 'dual-stack AAAA' },
    { q: { name: 'v4only.prod.svc.cluster.local', type: 'AAAA' }, rcode: 'NOERROR', answers: [], soa: true, why: 'NODATA for a missing family' },
    { q: { name: 'WEB.Prod.SVC.cluster.LOCAL', type: 'A' }, rcode: 'NOERROR', answers: ['10.96.0.10'], why: 'case-insensitive' },
    { q: { name: '_http._tcp.web.prod.svc.cluster.local', type: 'SRV' }, rcode: 'NOERROR', answers: [JSON.stringify({ priority: 0, weight: 100, port: 80, target: 'web.prod.svc.cluster.local' })], why: 'SRV of a named port' },
    { q: { name: '_dns._udp.web.prod.svc.cluster.local', type: 'SRV' }, rcode: 'NOERROR', answers: [JSON.stringify({ priority: 0, weight: 100, port: 53, target: 'web.prod.svc.cluster.local' })], why: 'SRV over UDP' },
    {
      q: { name: 'web.prod.svc.cluster.local', type: 'SRV' }, rcode: 'NOERROR', why: 'SRV of the service name: every port',
      answers: [80, 53].map((port) => JSON.stringify({ priority: 0, weight: 50, port, target: 'web.prod.svc.cluster.local' })).sort(),
    },
    {
      q: { name: 'pub.prod.svc.cluster.local', type: 'SRV' }, rcode: 'NOERROR', why: 'SRV of a headless service name: every endpoint and port',
      answers: [JSON.stringify({ priority: 0, weight: 100, port: 80, target: 'pub-0.pub.prod.svc.cluster.local' })],
    },
    { q: { name: '_http._udp.web.prod.svc.cluster.local', type: 'SRV' }, rcode: 'NXDOMAIN', soa: true, why: 'wrong protocol' },
    { q: { name: '_tcp.web.prod.svc.cluster.local', type: 'SRV' }, rcode: 'NOERROR', answers: [], soa: true, why: 'empty non-terminal under a service' },
    { q: { name: 'prod.svc.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: [], soa: true, why: 'namespace is an empty non-terminal' },
    { q: { name: 'svc.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: [], soa: true, why: 'svc is an empty non-terminal' },
    { q: { name: 'nosuch.svc.cluster.local', type: 'A' }, rcode: 'NXDOMAIN', soa: true, why: 'unknown namespace' },
    { q: { name: 'nope.prod.svc.cluster.local', type: 'A' }, rcode: 'NXDOMAIN', soa: true, why: 'unknown service' },
    { q: { name: 'web.prod.svc.cluster.local.prod.svc.cluster.local', type: 'A' }, rcode: 'NXDOMAIN', soa: true, why: 'search-path miss, no upstream' },
    { q: { name: 'db.prod.svc.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: ['10.244.1.5', '10.244.1.6', '10.244.1.8'], why: 'headless: ready endpoints only' },
    { q: { name: 'db.prod.svc.cluster.local', type: 'AAAA' }, rcode: 'NOERROR', answers: ['fd00:244::8'], why: 'headless AAAA' },
    { q: { name: 'db-0.db.prod.svc.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: ['10.244.1.5'], why: 'endpoint hostname' },
    { q: { name: '10-244-1-8.db.prod.svc.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: ['10.244.1.8'], why: 'endpoint without hostname: dashed IP' },
    { q: { name: 'fd00-244--8.db.prod.svc.cluster.local', type: 'AAAA' }, rcode: 'NOERROR', answers: ['fd00:244::8'], why: 'IPv6 dashed endpoint' },
    { q: { name: 'db-2.db.prod.svc.cluster.local', type: 'A' }, rcode: 'NXDOMAIN', soa: true, why: 'not-ready endpoint unpublished' },
    {
      q: { name: '_mysql._tcp.db.prod.svc.cluster.local', type: 'SRV' }, rcode: 'NOERROR', why: 'headless SRV per ready endpoint',
      answers: ['10-244-1-8', 'db-0', 'db-1', 'fd00-244--8'].map((h) => JSON.stringify({ priority: 0, weight: 25, port: 3306, target: `${h}.db.prod.svc.cluster.local` })).sort(),
    },
    { q: { name: 'empty.prod.svc.cluster.local', type: 'A' }, rcode: 'NXDOMAIN', soa: true, why: 'headless without ready endpoints' },
    { q: { name: 'pub.prod.svc.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: ['10.244.3.1'], why: 'publishNotReadyAddresses' },
    { q: { name: 'pub-0.pub.prod.svc.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: ['10.244.3.1'], why: 'publishNotReadyAddresses hostname' },
    { q: { name: 'ext.prod.svc.cluster.local', type: 'CNAME' }, rcode: 'NOERROR', answers: ['www.example.test'], why: 'ExternalName CNAME' },
    { q: { name: 'ext.prod.svc.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: ['www.example.test'], why: 'ExternalName with no upstream: CNAME alone' },
    { q: { name: 'dns-version.cluster.local', type: 'TXT' }, rcode: 'NOERROR', answers: ['["1.1.0"]'], why: 'schema version' },
    { q: { name: 'cluster.local', type: 'SOA' }, rcode: 'NOERROR', why: 'apex SOA' },
    { q: { name: '10.0.96.10.in-addr.arpa', type: 'PTR' }, rcode: 'NOERROR', answers: ['web.prod.svc.cluster.local'], why: 'PTR of a cluster IP' },
    { q: { name: '0.1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.0.d.f.ip6.arpa', type: 'PTR' }, rcode: 'NOERROR', answers: ['web.prod.svc.cluster.local'], why: 'PTR of an IPv6 cluster IP, nibbles' },
    { q: { name: '5.1.244.10.in-addr.arpa', type: 'PTR' }, rcode: 'NOERROR', answers: ['db-0.db.prod.svc.cluster.local'], why: 'PTR of a headless endpoint' },
    { q: { name: '10-244-7-7.prod.pod.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: ['10.244.7.7'], why: 'pod A (insecure)' },
    { q: { name: '10-244-9-9.other.pod.cluster.local', type: 'A' }, rcode: 'NOERROR', answers: ['10.244.9.9'], why: 'pod A insecure: any address' },
    { q: { name: 'fd00-1--2.prod.pod.cluster.local', type: 'AAAA' }, rcode: 'NOERROR', answers: ['fd00:1::2'], why: 'pod AAAA' },
    { q: { name: '10-244-300-1.prod.pod.cluster.local', type: 'A' }, rcode: 'NXDOMAIN', soa: true, why: 'not an address' },
  ];

  for (const row of rows) {
    it(`${row.why}: ${row.q.name} ${row.q.type} → ${row.rcode}`, async () => {
      const { msg } = await ask(handler, row.q);
      expect(rcodeOf(msg)).toBe(row.rcode);
      expect(msg.flags! & 0x0400).toBe(0x0400); // AA
      if (row.answers) expect(data(msg, row.q.type === 'A' && row.q.name.startsWith('ext') ? 'CNAME' : undefined)).toEqual(row.answers);
      if (row.soa) expect((msg.authorities ?? []).map((a) => a.type)).toEqual(['SOA']);
      // The reply keeps the question exactly as asked.
      expect(msg.questions![0].name).toBe(row.q.name);
      expect(msg.id).toBe(4242);
    });
  }

  it('an ExternalName whose target is in the cluster is chased in the zone', async () => {
    const { msg } = await ask(handler, { name: 'alias.prod.svc.cluster.local', type: 'A' });
    expect(msg.rcode).toBe('NOERROR');
    expect((msg.answers ?? []).map((a) => `${a.name} ${a.type} ${rdata(a)}`)).toEqual([
      'alias.prod.svc.cluster.local CNAME web.prod.svc.cluster.local',
      'web.prod.svc.cluster.local A 10.96.0.10',
    ]);
  });

  it('a headless service with 100 endpoints truncates over UDP and is complete over TCP', async () => {
    const udp = await ask(handler, { name: 'big.prod.svc.cluster.local', type: 'A', edns: 1232 });
    expect(udp.msg.flags! & 0x0200).toBe(0x0200);
    expect(udp.raw.length).toBeLessThanOrEqual(1232);
    const tcp = await ask(handler, { name: 'big.prod.svc.cluster.local', type: 'A', tcp: true });
    expect(tcp.msg.flags! & 0x0200).toBe(0);
    expect(tcp.msg.answers).toHaveLength(100);
  });

  it('a headless service too large even for TCP answers as many of its addresses as fit, with TC, as CoreDNS does', async () => {
    const endpoints = Array.from({ length: 5000 }, (_, i) => ({ ip: `10.1.${i >> 8}.${i & 255}` }));
    const { handler: h } = makeHandler(catalogOf([{ namespace: 'prod', name: 'huge', clusterIPs: ['None'], ports: [{ name: 'http', port: 80 }], endpoints }]));
    const tcp = await ask(h, { name: 'huge.prod.svc.cluster.local', type: 'A', tcp: true });
    expect(tcp.msg.flags! & 0x0200).toBe(0x0200);
    expect(tcp.raw.length).toBeLessThanOrEqual(65535);
    const got = data(tcp.msg, 'A');
    expect(got.length).toBeGreaterThan(4000);
    expect(new Set(got).size).toBe(got.length);
    for (const a of got) expect(endpoints.some((e) => e.ip === a)).toBe(true);
    const udp = await ask(h, { name: 'huge.prod.svc.cluster.local', type: 'A', edns: 1232 });
    expect(udp.msg.flags! & 0x0200).toBe(0x0200);
    expect(udp.raw.length).toBeLessThanOrEqual(1232);
    expect(data(udp.msg, 'A').length).toBeGreaterThan(50);
  });

  it('SRV additional records are dropped before setting TC', async () => {
    const full = await ask(handler, { name: '_mysql._tcp.db.prod.svc.cluster.local', type: 'SRV', tcp: true });
    expect(full.msg.additionals!.length).toBe(4);
    const small = await ask(handler, { name: '_mysql._tcp.db.prod.svc.cluster.local', type: 'SRV' });
    expect(small.raw.length).toBeLessThanOrEqual(512);
    expect(small.msg.answers).toHaveLength(4);
  });
});

describe('catalog changes', () => {
  it('answers follow a service update, removal and the sync state', async () => {
    const catalog = makeCatalog(false);
    const { handler } = makeHandler(catalog);
    // SERVFAIL before the sync, authoritative and with the zone's SOA (CoreDNS's answer).
    const early = (await ask(handler, { name: 'web.prod.svc.cluster.local', type: 'A' })).msg;
    expect([early.rcode, early.flags! & 0x0400, (early.authorities ?? []).map((a) => `${a.name} ${a.type}`)]).toEqual(['SERVFAIL', 0x0400, ['cluster.local SOA']]);
    catalog.batch(() => {
      for (const k of ['Service', 'EndpointSlice', 'Node', 'Pod'] as const) catalog.markSynced(k);
    });
    expect(data((await ask(handler, { name: 'web.prod.svc.cluster.local', type: 'A' })).msg)).toEqual(['10.96.0.10']);
    const [svc] = serviceObjects({ namespace: 'prod', name: 'web', clusterIPs: ['10.96.0.99'], ports: [{ name: 'http', port: 80 }] });
    catalog.apply('Service', svc);
    expect(data((await ask(handler, { name: 'web.prod.svc.cluster.local', type: 'A' })).msg)).toEqual(['10.96.0.99']);
    expect((await ask(handler, { name: '10.0.96.10.in-addr.arpa', type: 'PTR' })).msg.rcode).toBe('SERVFAIL'); // forwarded, no upstream
    expect(data((await ask(handler, { name: '99.0.96.10.in-addr.arpa', type: 'PTR' })).msg)).toEqual(['web.prod.svc.cluster.local']);
    catalog.delete('Service', 'prod', 'web');
    expect((await ask(handler, { name: 'web.prod.svc.cluster.local', type: 'A' })).msg.rcode).toBe('NXDOMAIN');
    // A name asked before it existed is not stuck in the negative cache.
    expect((await ask(handler, { name: 'new.prod.svc.cluster.local', type: 'A' })).msg.rcode).toBe('NXDOMAIN');
    catalog.apply('Service', serviceObjects({ namespace: 'prod', name: 'new', clusterIPs: ['10.96.0.77'] })[0]);
    expect(data((await ask(handler, { name: 'new.prod.svc.cluster.local', type: 'A' })).msg)).toEqual(['10.96.0.77']);
  });

  it('verified pods need a pod with that address in that namespace', async () => {
    const { handler } = makeHandler(makeCatalog(), 'verified');
    expect(data((await ask(handler, { name: '10-244-7-7.prod.pod.cluster.local', type: 'A' })).msg)).toEqual(['10.244.7.7']);
    expect((await ask(handler, { name: '10-244-7-7.other.pod.cluster.local', type: 'A' })).msg.rcode).toBe('NXDOMAIN');
    expect((await ask(handler, { name: '10-244-9-9.prod.pod.cluster.local', type: 'A' })).msg.rcode).toBe('NXDOMAIN');
  });

  it('verified pods: a namespace with a pod has names below it (NODATA, RFC 8020), one without does not', async () => {
    const catalog = makeCatalog();
    const { handler } = makeHandler(catalog, 'verified');
    const answer = async (name: string) => {
      const { msg } = await ask(handler, { name, type: 'A' });
      return [msg.rcode, msg.answers?.length, (msg.authorities ?? []).map((a) => a.type).join()];
    };
    expect(await answer('prod.pod.cluster.local')).toEqual(['NOERROR', 0, 'SOA']);
    expect(await answer('pod.cluster.local')).toEqual(['NOERROR', 0, 'SOA']);
    expect(await answer('other.pod.cluster.local')).toEqual(['NXDOMAIN', 0, 'SOA']);
    // It follows the pods: the namespace's last addressed pod goes, and so does the name.
    catalog.apply('Pod', { metadata: { name: 'o1', namespace: 'other' }, spec: {}, status: { podIP: '10.244.8.8', podIPs: [{ ip: '10.244.8.8' }] } });
    expect(await answer('other.pod.cluster.local')).toEqual(['NOERROR', 0, 'SOA']);
    catalog.delete('Pod', 'prod', 'p1');
    expect(await answer('prod.pod.cluster.local')).toEqual(['NXDOMAIN', 0, 'SOA']);
    // A pod without an address yet owns no name.
    catalog.apply('Pod', { metadata: { name: 'p2', namespace: 'prod' }, spec: {}, status: {} });
    expect(await answer('prod.pod.cluster.local')).toEqual(['NXDOMAIN', 0, 'SOA']);
  });

  it('an existing namespace without services is a name (NODATA), as CoreDNS answers; it goes with its Namespace', async () => {
    const catalog = makeCatalog();
    const { handler } = makeHandler(catalog);
    const answer = async (name: string) => {
      const { msg } = await ask(handler, { name, type: 'A' });
      return [msg.rcode, msg.answers?.length, (msg.authorities ?? []).map((a) => a.type).join()];
    };
    expect(await answer('quiet.svc.cluster.local')).toEqual(['NXDOMAIN', 0, 'SOA']);
    catalog.apply('Namespace', { metadata: { name: 'quiet' } });
    expect(await answer('quiet.svc.cluster.local')).toEqual(['NOERROR', 0, 'SOA']);
    // Only the namespace's own name: a service in it still does not exist.
    expect(await answer('web.quiet.svc.cluster.local')).toEqual(['NXDOMAIN', 0, 'SOA']);
    catalog.delete('Namespace', '', 'quiet');
    expect(await answer('quiet.svc.cluster.local')).toEqual(['NXDOMAIN', 0, 'SOA']);
  });

  it('disabled pods have no records', async () => {
    const { handler } = makeHandler(makeCatalog(), 'disabled');
    expect((await ask(handler, { name: '10-244-7-7.prod.pod.cluster.local', type: 'A' })).msg.rcode).toBe('NXDOMAIN');
  });
});

describe('protocol', () => {
  let handler: DnsHandler;
  beforeAll(() => {
    ({ handler } = makeHandler(makeCatalog()));
  });

  it('AXFR is refused, other opcodes are not implemented, garbage gets FORMERR or silence', async () => {
    expect((await ask(handler, { name: 'cluster.local', type: 'AXFR' })).msg.rcode).toBe('REFUSED');
    const q = dnsPacket.encode({ type: 'query', id: 7, flags: 2 << 11, questions: [{ name: 'cluster.local', type: 'SOA' }] });
    expect(decodeReply((await handler.handle(q, UDP))!).rcode).toBe('NOTIMP');
    expect(await handler.handle(Buffer.from([1, 2, 3]), UDP)).toBeUndefined();
    const bad = Buffer.from(q);
    bad.writeUInt16BE(3, 4); // three questions announced, one present
    expect(decodeReply((await handler.handle(bad, UDP))!).rcode).toBe('FORMERR');
    const resp = Buffer.from(q);
    resp.writeUInt16BE(0x8000, 2); // a response: never answered
    expect(await handler.handle(resp, UDP)).toBeUndefined();
  });

  it('echoes EDNS and honours the size limit', async () => {
    const r = await ask(handler, { name: 'web.prod.svc.cluster.local', type: 'A', edns: 4096 });
    const opt = (r.msg.additionals ?? []).find((a) => a.type === 'OPT');
    expect(opt).toBeDefined();
    const plain = await ask(handler, { name: 'web.prod.svc.cluster.local', type: 'A' });
    expect((plain.msg.additionals ?? []).length).toBe(0);
  });
});

/** A catalog with the given services only, synced. */
function catalogOf(specs: ServiceSpec[]): Catalog {
  const c = new Catalog({ kinds: ['Service', 'EndpointSlice'] });
  c.batch(() => {
    for (const s of specs) putService(c, s);
    for (const k of ['Service', 'EndpointSlice'] as const) c.markSynced(k);
  });
  return c;
}

/** Applies a service and its slices, deleting the slice of a family it no longer has. */
function putService(c: Catalog, s: ServiceSpec): void {
  c.batch(() => {
    const objs = serviceObjects(s) as Array<{ kind: 'Service' | 'EndpointSlice'; metadata: { name: string } }>;
    for (const o of objs) c.apply(o.kind, o);
    for (const family of ['ipv4', 'ipv6']) {
      const slice = `${s.name}-${family}`;
      if (!objs.some((o) => o.metadata.name === slice)) c.delete('EndpointSlice', s.namespace, slice);
    }
  });
}

function dropService(c: Catalog, namespace: string, name: string): void {
  c.batch(() => {
    c.delete('Service', namespace, name);
    for (const family of ['ipv4', 'ipv6']) c.delete('EndpointSlice', namespace, `${name}-${family}`);
  });
}

/** What the zone decides for a question, without a handler (a forward stays visible). */
function decide(zone: ClusterZone, name: string, type: string) {
  const buf = dnsPacket.encode({ type: 'query', id: 1, flags: 0, questions: [{ name, type: type as 'A', class: 'IN' }] });
  return zone.lookup(buf, parseQuery(buf));
}

/** A reply reduced to what must not depend on how the index got there (no SOA serial). */
async function summary(handler: DnsHandler, name: string, type: string): Promise<string> {
  const { msg } = await ask(handler, { name, type, tcp: true });
  const rr = (a: dnsPacket.Answer) => `${a.name} ${a.type} ${a.type === 'SOA' ? '' : JSON.stringify(rdata(a))}`;
  return [msg.rcode, ...(msg.answers ?? []).map(rr).sort(), '|', ...(msg.authorities ?? []).map(rr), '|', ...(msg.additionals ?? []).map(rr).sort()].join('\n');
}

describe("the kubernetes plugin's naming options", () => {
  const specs: ServiceSpec[] = [
    { namespace: 'a', name: 'web', clusterIPs: ['10.96.5.1'], ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.244.5.1', pod: 'web-7d9f-x2' }, { ip: '10.244.5.2', hostname: 'named', pod: 'web-7d9f-y3' }, { ip: '10.244.5.3', pod: 'Not_A_Label' }] },
    { namespace: 'a', name: 'idle', clusterIPs: ['10.96.5.2'], ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.244.5.9', ready: false }] },
    { namespace: 'a', name: 'db', headless: true, ports: [{ name: 'sql', port: 5432 }], endpoints: [{ ip: '10.244.6.1', pod: 'db-0' }] },
    { namespace: 'b', name: 'web', clusterIPs: ['10.96.6.1'], ports: [{ name: 'http', port: 80 }] },
  ];
  const zoneWith = (extra: Partial<ZoneOptions>) => {
    const zone = new ClusterZone({ domain: 'cluster.local', ttl: 5, pods: 'insecure', ...extra }, catalogOf(specs));
    zone.attach();
    return { zone, handler: new DnsHandler(zone, forwardEverything(new Forwarder([])), new AnswerCache(), undefined, logger('test')) };
  };
  const a = async (h: DnsHandler, name: string, type = 'A') => {
    const { msg } = await ask(h, { name, type });
    return [msg.rcode, ...data(msg)];
  };

  it('endpoint_pod_names: an endpoint without a hostname is named by its pod, when that is a DNS label', async () => {
    const { zone, handler: h } = zoneWith({ naming: { endpointPodNames: true } });
    expect(await a(h, 'web-7d9f-x2.web.a.svc.cluster.local')).toEqual(['NOERROR', '10.244.5.1']);
    expect(await a(h, 'named.web.a.svc.cluster.local')).toEqual(['NOERROR', '10.244.5.2']); // the hostname wins
    expect(await a(h, '10-244-5-3.web.a.svc.cluster.local')).toEqual(['NOERROR', '10.244.5.3']); // not a label: dashed
    expect(await a(h, '10-244-5-1.web.a.svc.cluster.local')).toEqual(['NXDOMAIN']);
    expect(await a(h, '1.5.244.10.in-addr.arpa', 'PTR')).toEqual(['NOERROR', 'web-7d9f-x2.web.a.svc.cluster.local']);
    expect(await a(h, '_sql._tcp.db.a.svc.cluster.local', 'SRV')).toEqual(['NOERROR', JSON.stringify({ priority: 0, weight: 100, port: 5432, target: 'db-0.db.a.svc.cluster.local' })]);
    // Without the option, the dashed address.
    expect(await a(zoneWith({}).handler, '10-244-5-1.web.a.svc.cluster.local')).toEqual(['NOERROR', '10.244.5.1']);
  });

  it('noendpoints: no endpoint names, no headless services, no endpoint PTRs; cluster IPs still answer', async () => {
    const { zone, handler: h } = zoneWith({ naming: { noEndpoints: true } });
    expect(await a(h, 'web.a.svc.cluster.local')).toEqual(['NOERROR', '10.96.5.1']);
    expect(await a(h, 'named.web.a.svc.cluster.local')).toEqual(['NXDOMAIN']);
    expect(await a(h, 'db.a.svc.cluster.local')).toEqual(['NXDOMAIN']);
    expect(decide(zone, reverseName('10.244.5.2'), 'PTR').kind).toBe('forward');
  });

  it('ignore empty_service: a ClusterIP service without a ready endpoint is NXDOMAIN', async () => {
    const { zone, handler: h } = zoneWith({ naming: { ignoreEmptyService: true } });
    expect(await a(h, 'idle.a.svc.cluster.local')).toEqual(['NXDOMAIN']);
    expect(await a(h, '_http._tcp.idle.a.svc.cluster.local', 'SRV')).toEqual(['NXDOMAIN']);
    expect(await a(h, 'web.a.svc.cluster.local')).toEqual(['NOERROR', '10.96.5.1']);
    expect(await a(zoneWith({}).handler, 'idle.a.svc.cluster.local')).toEqual(['NOERROR', '10.96.5.2']);
  });

  it('namespaces: only the listed namespaces are in the zone', async () => {
    const { zone, handler: h } = zoneWith({ namespaces: ['b'] });
    expect(await a(h, 'web.b.svc.cluster.local')).toEqual(['NOERROR', '10.96.6.1']);
    expect(await a(h, 'web.a.svc.cluster.local')).toEqual(['NXDOMAIN']);
    expect(await a(h, 'a.svc.cluster.local')).toEqual(['NXDOMAIN']);
  });
});

describe('reverse names from the catalog', () => {
  const specs: ServiceSpec[] = [
    { namespace: 'a', name: 'web', clusterIPs: ['10.96.5.1', 'fd00:96::5:1'], ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.244.5.1' }] },
    {
      namespace: 'a', name: 'db', headless: true, ports: [{ name: 'sql', port: 5432 }],
      endpoints: [{ ip: '10.244.6.1', hostname: 'db-0' }, { ip: '10.244.6.2', ready: false }, { ip: 'fd00:244::6:3' }],
    },
    { namespace: 'b', name: 'db2', headless: true, ports: [{ name: 'sql', port: 5432 }], endpoints: [{ ip: '10.244.6.1', hostname: 'zz' }] },
    { namespace: 'a', name: 'pub', headless: true, publishNotReadyAddresses: true, endpoints: [{ ip: '10.244.7.1', ready: false }] },
  ];

  it('answers cluster IPs and published headless endpoints; everything else is forwarded', async () => {
    const c = catalogOf(specs);
    const { zone, handler } = makeHandler(c);
    const ptr = async (ip: string) => data((await ask(handler, { name: reverseName(ip), type: 'PTR' })).msg);
    expect(await ptr('10.96.5.1')).toEqual(['web.a.svc.cluster.local']);
    expect(await ptr('fd00:96::5:1')).toEqual(['web.a.svc.cluster.local']);
    // An address in two headless services points at both names, sorted.
    expect(await ptr('10.244.6.1')).toEqual(['db-0.db.a.svc.cluster.local', 'zz.db2.b.svc.cluster.local']);
    expect(await ptr('fd00:244::6:3')).toEqual(['fd00-244--6-3.db.a.svc.cluster.local']);
    expect(await ptr('10.244.7.1')).toEqual(['10-244-7-1.pub.a.svc.cluster.local']);
    // An endpoint of a ClusterIP service points at its endpoint name, as CoreDNS answers.
    expect(await ptr('10.244.5.1')).toEqual(['10-244-5-1.web.a.svc.cluster.local']);
    // …and that name answers, while a name of no endpoint of it is NXDOMAIN.
    const a = async (name: string) => (await ask(handler, { name, type: 'A' })).msg;
    expect(data(await a('10-244-5-1.web.a.svc.cluster.local'))).toEqual(['10.244.5.1']);
    expect((await a('10-244-5-9.web.a.svc.cluster.local')).rcode).toBe('NXDOMAIN');
    // Not ready, an unknown address, a partial name.
    for (const name of [reverseName('10.244.6.2'), reverseName('10.244.99.1'), '96.10.in-addr.arpa']) {
      expect(decide(zone, name, 'PTR').kind, name).toBe('forward');
    }
    // Ours, another type: NODATA with the reverse zone's SOA.
    const { msg } = await ask(handler, { name: reverseName('10.96.5.1'), type: 'A' });
    expect([msg.rcode, msg.answers?.length, msg.authorities?.[0]?.name]).toEqual(['NOERROR', 0, 'in-addr.arpa']);
  });

  it('a cached PTR answer follows its service: hostname change, headless → ClusterIP, removal', async () => {
    const c = catalogOf(specs);
    const { zone, handler } = makeHandler(c);
    const ptr = async (ip: string) => data((await ask(handler, { name: reverseName(ip), type: 'PTR' })).msg);
    expect(await ptr('10.244.6.1')).toEqual(['db-0.db.a.svc.cluster.local', 'zz.db2.b.svc.cluster.local']);
    putService(c, { ...specs[2], endpoints: [{ ip: '10.244.6.1', hostname: 'yy' }] });
    expect(await ptr('10.244.6.1')).toEqual(['db-0.db.a.svc.cluster.local', 'yy.db2.b.svc.cluster.local']);
    putService(c, { ...specs[2], headless: false, clusterIPs: ['10.96.5.2'], endpoints: [{ ip: '10.244.6.1', hostname: 'yy' }] });
    expect(await ptr('10.244.6.1')).toEqual(['db-0.db.a.svc.cluster.local', 'yy.db2.b.svc.cluster.local']);
    putService(c, { ...specs[2], headless: false, clusterIPs: ['10.96.5.2'], endpoints: [{ ip: '10.244.6.9', hostname: 'yy' }] });
    expect(await ptr('10.244.6.1')).toEqual(['db-0.db.a.svc.cluster.local']);
    expect(await ptr('10.96.5.2')).toEqual(['db2.b.svc.cluster.local']);
    dropService(c, 'a', 'db');
    expect(decide(zone, reverseName('10.244.6.1'), 'PTR').kind).toBe('forward');
    // Endpoints whose service is gone point nowhere.
    c.delete('Service', 'a', 'pub');
    expect(decide(zone, reverseName('10.244.7.1'), 'PTR').kind).toBe('forward');
  });
});

describe('index exactness', () => {
  /** A small seeded generator, so a failure replays. */
  function rng(seed: number) {
    let s = seed >>> 0;
    return (n: number) => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s % n;
    };
  }

  function randomService(r: (n: number) => number, namespace: string, name: string, i: number): ServiceSpec {
    const kind = r(4);
    // One port, maybe unnamed, or two named ones (the API requires names then).
    const first = { name: ['http', 'grpc', ''][r(3)], port: 80 + r(3), protocol: ['TCP', 'UDP'][r(2)] };
    const ports = first.name && r(2) ? [first, { name: 'm', port: 9090 }] : [first];
    const endpoints = Array.from({ length: r(4) }, (_, k) => ({
      ip: r(4) === 0 ? `fd00:244::${i}:${r(3)}` : `10.244.${i}.${r(5)}`,
      ready: r(3) !== 0,
      ...(r(2) ? { hostname: `h${k}` } : {}),
    })).filter((e, k, all) => all.findIndex((x) => x.ip === e.ip) === k);
    if (kind === 0) return { namespace, name, externalName: r(2) ? 'web.a.svc.cluster.local' : 'x.example.test' };
    if (kind === 1) return { namespace, name, headless: true, publishNotReadyAddresses: r(2) === 0, ports, endpoints };
    return { namespace, name, clusterIPs: r(2) ? [`10.96.${i}.${r(3)}`] : [`10.96.${i}.${r(3)}`, `fd00:96::${i}:${r(3)}`], ports, endpoints };
  }

  it('after many adds, updates and removals the index holds what a fresh index of the final catalog holds', async () => {
    const r = rng(7);
    const c = catalogOf([]);
    const { zone, handler } = makeHandler(c);
    const seen = { names: new Set<string>(), ips: new Set<string>() };
    const note = (s: ServiceSpec) => {
      const base = `${s.name}.${s.namespace}.svc.cluster.local`;
      seen.names.add(base).add(`_tcp.${base}`).add(`_udp.${base}`).add(`${s.namespace}.svc.cluster.local`);
      for (const p of s.ports ?? []) if (p.name) seen.names.add(`_${p.name}._${(p.protocol ?? 'TCP').toLowerCase()}.${base}`);
      for (const e of s.endpoints ?? []) {
        seen.ips.add(e.ip);
        seen.names.add(`${e.hostname ?? e.ip.replace(/[.:]/g, '-')}.${base}`);
      }
      for (const ip of s.clusterIPs ?? []) seen.ips.add(ip);
    };
    for (let step = 0; step < 400; step++) {
      const i = r(12);
      const namespace = `ns${i % 3}`;
      const name = `s${i}`;
      if (r(6) === 0) dropService(c, namespace, name);
      else {
        const s = randomService(r, namespace, name, i);
        note(s);
        putService(c, s);
      }
      // Fill the caches with answers that later steps must replace.
      for (const n of [...seen.names].slice(-12)) await ask(handler, { name: n, type: ['A', 'SRV', 'AAAA'][r(3)] });
      for (const ip of [...seen.ips].slice(-6)) await ask(handler, { name: reverseName(ip), type: 'PTR' });
    }
    const fresh = makeHandler(c);
    expect(zone.contents()).toEqual(fresh.zone.contents());
    expect(zone.contents().services.length).toBeGreaterThan(5);
    for (const n of seen.names) {
      for (const type of ['A', 'AAAA', 'SRV', 'CNAME']) expect(await summary(handler, n, type), `${n} ${type}`).toBe(await summary(fresh.handler, n, type));
    }
    for (const ip of seen.ips) {
      const name = reverseName(ip);
      expect(decide(zone, name, 'PTR'), name).toEqual(decide(fresh.zone, name, 'PTR').kind === 'forward' ? { kind: 'forward' } : expect.objectContaining({ kind: 'reply' }));
      if (decide(zone, name, 'PTR').kind === 'reply') expect(await summary(handler, name, 'PTR')).toBe(await summary(fresh.handler, name, 'PTR'));
    }
  });
});

describe('ns.dns.<zone>', () => {
  const dnsService: ServiceSpec = {
    namespace: 'kube-system', name: 'kube-dns', clusterIPs: ['10.96.0.53', 'fd00:96::53'], ports: [{ name: 'dns', port: 53, protocol: 'UDP' }],
    endpoints: [{ ip: '10.244.0.2' }, { ip: '10.244.0.3' }],
  };

  function nsZone(c: Catalog, own: string[]) {
    const zone = new ClusterZone({ domain: 'cluster.local', ttl: 5, pods: 'insecure', ownAddresses: () => own }, c);
    zone.attach();
    return { zone, handler: new DnsHandler(zone, forwardEverything(new Forwarder([])), new AnswerCache(), undefined, logger('test')) };
  }
  const ns = async (handler: DnsHandler, type: string) => {
    const { msg } = await ask(handler, { name: 'ns.dns.cluster.local', type });
    return { rcode: msg.rcode, answers: data(msg), owners: [...new Set((msg.answers ?? []).map((a) => a.name))], soa: (msg.authorities ?? []).map((a) => a.type) };
  };

  it('answers the cluster IPs of the service this server is an endpoint of', async () => {
    const { handler } = nsZone(catalogOf([dnsService, fixtureServices()[0]]), ['192.168.1.5', '10.244.0.3']);
    expect(await ns(handler, 'A')).toEqual({ rcode: 'NOERROR', answers: ['10.96.0.53'], owners: ['ns.dns.cluster.local'], soa: [] });
    expect((await ns(handler, 'AAAA')).answers).toEqual(['fd00:96::53']);
    expect(await ns(handler, 'TXT')).toEqual({ rcode: 'NOERROR', answers: [], owners: [], soa: ['SOA'] });
    // dns.<zone> stays an empty non-terminal.
    const { msg } = await ask(handler, { name: 'dns.cluster.local', type: 'A' });
    expect([msg.rcode, msg.answers?.length]).toEqual(['NOERROR', 0]);
  });

  it('a headless DNS service gives its published endpoints', async () => {
    const headless = { ...dnsService, clusterIPs: undefined, headless: true, endpoints: [...dnsService.endpoints!, { ip: '10.244.0.4', ready: false }] };
    const { handler } = nsZone(catalogOf([headless]), ['10.244.0.2']);
    expect((await ns(handler, 'A')).answers).toEqual(['10.244.0.2', '10.244.0.3']);
  });

  it('falls back to the own addresses, and follows the catalog', async () => {
    const c = catalogOf([{ ...dnsService, endpoints: [{ ip: '10.244.0.9' }] }]);
    const { handler } = nsZone(c, ['10.244.0.3', '0:0:0:0:0:0:0:fd01', 'not-an-address']);
    expect((await ns(handler, 'A')).answers).toEqual(['10.244.0.3']);
    expect((await ns(handler, 'AAAA')).answers).toEqual(['::fd01']);
    putService(c, dnsService); // now 10.244.0.3 is one of kube-dns's endpoints
    expect((await ns(handler, 'A')).answers).toEqual(['10.96.0.53']);
  });

  it('the apex NS answer carries the NS name\'s addresses as glue, and follows the catalog', async () => {
    const c = catalogOf([{ ...dnsService, endpoints: [{ ip: '10.244.0.9' }] }]);
    const { handler } = nsZone(c, ['10.244.0.3']);
    const apex = async () => {
      const { msg } = await ask(handler, { name: 'cluster.local', type: 'NS' });
      return { answers: data(msg), glue: (msg.additionals ?? []).filter((r): r is dnsPacket.StringAnswer => r.type === 'A' || r.type === 'AAAA').map((r) => `${r.name} ${r.type} ${r.data}`) };
    };
    expect(await apex()).toEqual({ answers: ['ns.dns.cluster.local'], glue: ['ns.dns.cluster.local A 10.244.0.3'] });
    putService(c, dnsService);
    expect((await apex()).glue.sort()).toEqual(['ns.dns.cluster.local A 10.96.0.53', 'ns.dns.cluster.local AAAA fd00:96::53']);
  });

  it('without own addresses the name exists with no addresses', async () => {
    const { handler } = nsZone(catalogOf([]), []);
    expect(await ns(handler, 'A')).toEqual({ rcode: 'NOERROR', answers: [], owners: [], soa: ['SOA'] });
  });

  it('the server addresses: the addresses it serves on, never loopback or wildcards', () => {
    const all = Object.values(networkInterfaces()).flat().filter((a) => a !== undefined);
    const external = all.filter((a) => !a.internal && !a.address.startsWith('fe80:'));
    const v4 = external.filter((a) => a.family === 'IPv4').map((a) => a.address);
    expect(v4.length).toBeGreaterThan(0); // the machine's own, so the cases below can differ
    // Bound to specific addresses: those alone, not the other interfaces'.
    expect(serverAddresses(['10.1.2.3', 'fd00::53'])()).toEqual(['10.1.2.3', 'fd00::53']);
    // A wildcard of one family adds that family's interface addresses; `::` both.
    expect(serverAddresses(['10.1.2.3', '0.0.0.0'])()).toEqual(['10.1.2.3', ...v4]);
    const both = serverAddresses(['10.1.2.3', '0.0.0.0', '::', 'fd00::53'])();
    expect(both).toEqual(expect.arrayContaining(['10.1.2.3', 'fd00::53', ...external.map((a) => a.address)]));
    for (const a of ['0.0.0.0', '::', ...all.filter((x) => x.internal).map((x) => x.address)]) expect(both).not.toContain(a);
  });
});
