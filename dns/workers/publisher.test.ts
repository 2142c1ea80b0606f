// What the main thread publishes into the worker threads' answer table, and when it goes
// stale, on the real zone, cache and handler (no threads: the table is read here the way a
// worker reads it). Time is vitest's fake clock.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import dnsPacket, { type Packet } from 'dns-packet';
import { Catalog } from '../../cluster/catalog.js';
import { fixtureServices, serviceObjects, type ServiceSpec } from '../../bench/dns/fixtures.js';
import { decodeReply, rdata } from '../../bench/dns/reply.js';
import { logger } from '../../common/log.js';
import { AnswerCache } from '../cache.js';
import { Forwarder } from '../forwarder.js';
import { DnsHandler, forwardEverything, type Transport } from '../handler.js';
import { PLUGIN } from '../query-metrics.js';
import { buildTemplate } from '../records.js';
import { parseQuery, udpLimit, RCODE } from '../wire.js';
import { ClusterZone } from '../zone.js';
import { AnswerTable, ENTRY_CLUSTER, MAX_KEY, NO_CATALOG, questionKey } from './answer-table.js';
import { TablePublisher } from './publisher.js';

const UDP: Transport = { proto: 'udp', family: '1', server: 'dns://test:53' };
const ROUTE = 1;

/** An upstream that answers every A question with 192.0.2.1, TTL 30. */
class Upstream extends Forwarder {
  asked = 0;
  constructor() {
    super([]);
  }
  override async exchange(query: Buffer): Promise<Buffer | undefined> {
    this.asked++;
    const q = dnsPacket.decode(query);
    return dnsPacket.encode({
      type: 'response', id: q.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: q.questions,
      answers: [{ name: q.questions![0].name, type: 'A', ttl: 30, data: '192.0.2.1' }],
    } as Packet);
  }
}

function putService(c: Catalog, s: ServiceSpec): void {
  c.batch(() => {
    for (const o of serviceObjects(s) as Array<{ kind: 'Service' | 'EndpointSlice' }>) c.apply(o.kind, o);
  });
}

function setup() {
  const catalog = new Catalog({ kinds: ['Service', 'EndpointSlice', 'Node', 'Pod'] });
  catalog.batch(() => {
    for (const s of fixtureServices()) putService(catalog, s);
    for (const k of ['Service', 'EndpointSlice', 'Node', 'Pod'] as const) catalog.markSynced(k);
  });
  const zone = new ClusterZone({ domain: 'cluster.local', ttl: 5, pods: 'insecure' }, catalog);
  zone.attach();
  const table = AnswerTable.create(1 << 20);
  const publisher = new TablePublisher(table, catalog);
  const upstream = new Upstream();
  const handler = new DnsHandler(zone, forwardEverything(upstream), new AnswerCache(), undefined, logger('test'), { sink: publisher, publishCache: true });
  const key = new Uint8Array(MAX_KEY);
  return {
    catalog, table, publisher, handler, upstream,
    /** As the main thread answers a question a worker handed over. */
    handOver: (msg: Buffer, route = ROUTE) => publisher.armedFor(route, () => handler.handle(msg, UDP)),
    /** As a worker answers from the table; undefined when the table has no answer. */
    fromTable: (msg: Buffer, route = ROUTE) => {
      const q = parseQuery(msg);
      const n = questionKey(msg, q, route, key);
      return table.serve(msg, q, key, n, udpLimit(q), Date.now())?.reply;
    },
  };
}

function query(name: string, type: string, o: { id?: number; edns?: boolean; dnssecOk?: boolean; cd?: boolean } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query', id: o.id ?? 7, flags: dnsPacket.RECURSION_DESIRED | (o.cd ? dnsPacket.CHECKING_DISABLED : 0),
    questions: [{ name, type: type as 'A', class: 'IN' }],
    ...(o.edns || o.dnssecOk ? { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: o.dnssecOk ? dnsPacket.DNSSEC_OK : 0 }] } : {}),
  } as Packet);
}

describe('the answer table, as the main thread fills it', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-12-03T00:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('serves a handed-over cluster answer to later askers byte for byte as the handler does', async () => {
    const t = setup();
    const questions: Array<[string, string]> = [
      ['web.prod.svc.cluster.local', 'A'], ['web.prod.svc.cluster.local', 'AAAA'], ['_http._tcp.web.prod.svc.cluster.local', 'SRV'],
      ['db.prod.svc.cluster.local', 'A'], ['db-0.db.prod.svc.cluster.local', 'A'], ['web.prod.svc.cluster.local.prod.svc.cluster.local', 'A'],
      ['10.0.96.10.in-addr.arpa', 'PTR'], ['svc.cluster.local', 'A'], ['web.prod.svc.cluster.local', 'TXT'],
    ];
    for (const [name, type] of questions) {
      expect(t.fromTable(query(name, type))).toBeUndefined();
      await t.handOver(query(name, type));
      // Another client: its own ID, its own spelling, with EDNS.
      const later = query(name.toUpperCase(), type, { id: 4321, edns: true });
      const served = t.fromTable(later);
      expect(served, `${name} ${type}`).toBeDefined();
      expect(served!.equals((await t.handler.handle(later, UDP)) as Buffer), `${name} ${type}`).toBe(true);
    }
  });

  it('publishes nothing the main thread answered on its own socket', async () => {
    const t = setup();
    await t.handler.handle(query('web.prod.svc.cluster.local', 'A'), UDP);
    expect(t.fromTable(query('web.prod.svc.cluster.local', 'A'))).toBeUndefined();
  });

  it('keys an answer by route, type, DO and CD', async () => {
    const t = setup();
    await t.handOver(query('web.prod.svc.cluster.local', 'A'));
    expect(t.fromTable(query('web.prod.svc.cluster.local', 'A'))).toBeDefined();
    expect(t.fromTable(query('web.prod.svc.cluster.local', 'A'), ROUTE + 1)).toBeUndefined();
    expect(t.fromTable(query('web.prod.svc.cluster.local', 'AAAA'))).toBeUndefined();
    expect(t.fromTable(query('web.prod.svc.cluster.local', 'A', { dnssecOk: true }))).toBeUndefined();
    expect(t.fromTable(query('web.prod.svc.cluster.local', 'A', { cd: true }))).toBeUndefined();
  });

  it('a change to a service makes its answers stale, and the negative ones, but not other services\' answers', async () => {
    const t = setup();
    const names = ['web.prod.svc.cluster.local', '_http._tcp.web.prod.svc.cluster.local', 'web.staging.svc.cluster.local', 'nope.prod.svc.cluster.local'];
    for (const n of names) await t.handOver(query(n, n.startsWith('_') ? 'SRV' : 'A'));
    for (const n of names) expect(t.fromTable(query(n, n.startsWith('_') ? 'SRV' : 'A')), n).toBeDefined();
    putService(t.catalog, { namespace: 'prod', name: 'web', clusterIPs: ['10.96.0.99'], ports: [{ name: 'http', port: 80 }] });
    expect(t.fromTable(query('web.prod.svc.cluster.local', 'A'))).toBeUndefined();
    expect(t.fromTable(query('_http._tcp.web.prod.svc.cluster.local', 'SRV'))).toBeUndefined();
    expect(t.fromTable(query('nope.prod.svc.cluster.local', 'A'))).toBeUndefined();
    expect(t.fromTable(query('web.staging.svc.cluster.local', 'A'))).toBeDefined();
    // Handed over again, the new address is what the table gives.
    await t.handOver(query('web.prod.svc.cluster.local', 'A'));
    const a = decodeReply(t.fromTable(query('web.prod.svc.cluster.local', 'A'))!).answers!;
    expect(a.map(rdata)).toEqual(['10.96.0.99']);
  });

  it('never publishes answers that follow the clock or the interfaces: pods, the NS name, ExternalNames', async () => {
    const t = setup();
    for (const [name, type] of [['10-244-7-7.prod.pod.cluster.local', 'A'], ['ns.dns.cluster.local', 'A'], ['alias.prod.svc.cluster.local', 'A']]) {
      const r = await t.handOver(query(name, type));
      expect(r).toBeDefined();
      expect(t.fromTable(query(name, type)), name).toBeUndefined();
    }
  });

  it('serves a forwarded answer as a cache hit with its TTL counted down, until it expires', async () => {
    const t = setup();
    await t.handOver(query('www.example.test', 'A'));
    expect(t.upstream.asked).toBe(1);
    vi.advanceTimersByTime(10_000);
    const later = query('www.example.test', 'A', { id: 99, edns: true });
    const served = t.fromTable(later);
    expect(served).toBeDefined();
    const first = decodeReply(served!).answers![0];
    expect('ttl' in first ? first.ttl : undefined).toBe(20);
    expect(served!.equals((await t.handler.handle(later, UDP)) as Buffer)).toBe(true);
    vi.advanceTimersByTime(20_000);
    expect(t.fromTable(later)).toBeUndefined();
    expect(t.upstream.asked).toBe(1);
  });

  it('a new configuration empties the table, and an answer begun before it is not published', async () => {
    const t = setup();
    await t.handOver(query('web.prod.svc.cluster.local', 'A'));
    const late = t.handOver(query('late.example.test', 'A'));
    t.publisher.clear();
    await late;
    expect(t.fromTable(query('web.prod.svc.cluster.local', 'A'))).toBeUndefined();
    expect(t.fromTable(query('late.example.test', 'A'))).toBeUndefined();
  });
});

describe('AnswerTable', () => {
  it('empties itself when its arena is full and goes on serving what comes after', () => {
    const table = AnswerTable.create(600_000);
    const key = new Uint8Array(MAX_KEY);
    const published: Buffer[] = [];
    for (let i = 0; i < 2000; i++) {
      const msg = query(`name-${i}.example.test`, 'A');
      const q = parseQuery(msg);
      const n = questionKey(msg, q, ROUTE, key);
      table.publishTemplate(key, n, NO_CATALOG, buildTemplate(msg, q, { rcode: RCODE.NXDOMAIN, authoritative: true, answer: [] }), PLUGIN.kubernetes, ENTRY_CLUSTER);
      published.push(msg);
    }
    const serve = (msg: Buffer) => {
      const q = parseQuery(msg);
      const n = questionKey(msg, q, ROUTE, key);
      return table.serve(msg, q, key, n, udpLimit(q), 0);
    };
    expect(serve(published[0])).toBeUndefined();
    const last = serve(published[1999]);
    expect(last).toBeDefined();
    expect(last!.plugin).toBe(PLUGIN.kubernetes);
    expect(last!.flags & ENTRY_CLUSTER).toBe(ENTRY_CLUSTER);
    expect(decodeReply(last!.reply).rcode).toBe('NXDOMAIN');
    expect(table.fill).toBeGreaterThan(0);
    expect(table.fill).toBeLessThan(1);
  });
});
