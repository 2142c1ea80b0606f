// The handler's dealings with the forwarder and the cache, on the real zone, cache and handler;
// the upstream is a Forwarder whose exchange is scripted per test, and time is vitest's fake clock.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import dnsPacket, { type Packet } from 'dns-packet';
import { Catalog } from '../cluster/catalog.js';
import { fixtureServices, serviceObjects } from '../bench/dns/fixtures.js';
import { logger } from '../common/log.js';
import { AnswerCache } from './cache.js';
import { Forwarder } from './forwarder.js';
import { DnsHandler, type BlockOptions, type ForwardRoute, type Transport } from './handler.js';
import { DnsMetrics } from './metrics.js';
import { ClusterZone } from './zone.js';

const UDP: Transport = { proto: 'udp', family: '1', server: 'dns://test:53' };

/** A Forwarder whose every exchange is the next step of a script. */
class ScriptedForwarder extends Forwarder {
  readonly asked: string[] = [];
  constructor(private readonly steps: ((query: Buffer) => Promise<Buffer | undefined>)[]) {
    super([]);
  }
  override exchange(query: Buffer): Promise<Buffer | undefined> {
    this.asked.push(dnsPacket.decode(query).questions![0].name);
    const step = this.steps.shift();
    if (!step) throw new Error('the script has no more steps');
    return step(query);
  }
}

/** The upstream's answer to `query`: one A record with `ttl`. */
function answer(query: Buffer, ttl: number): Buffer {
  const q = dnsPacket.decode(query);
  return dnsPacket.encode({
    type: 'response', id: q.id, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: q.questions,
    answers: [{ name: q.questions![0].name, type: 'A', ttl, data: '192.0.2.1' }],
  } as Packet);
}

function setup(steps: ((query: Buffer) => Promise<Buffer | undefined>)[], block: BlockOptions = {}, metrics?: DnsMetrics, route: Partial<ForwardRoute> = {}) {
  const catalog = new Catalog({ kinds: ['Service', 'EndpointSlice', 'Node'] });
  catalog.batch(() => {
    for (const s of fixtureServices()) for (const o of serviceObjects(s)) catalog.apply((o as { kind: 'Service' | 'EndpointSlice' }).kind, o);
    for (const k of ['Service', 'EndpointSlice', 'Node'] as const) catalog.markSynced(k);
  });
  const zone = new ClusterZone({ domain: 'cluster.local', ttl: 5, pods: 'insecure' }, catalog);
  zone.attach();
  const forwarder = new ScriptedForwarder(steps);
  return { forwarder, handler: new DnsHandler(zone, [{ forwarder, from: '', except: [], ...route }], new AnswerCache(), metrics, logger('test'), block) };
}

async function ask(handler: DnsHandler, name: string) {
  const r = await handler.handle(dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] } as Packet), UDP);
  expect(r).toBeDefined();
  const p = dnsPacket.decode(r!) as Packet & { rcode?: string };
  return { rcode: p.rcode, answers: (p.answers ?? []).map((a) => `${a.name} ${'ttl' in a ? a.ttl : ''} ${a.type} ${'data' in a ? String(a.data) : ''}`) };
}

describe('forwarded questions', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2026-12-01T00:00:00Z') });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a failed exchange leaves no in-flight entry behind: the next identical question goes upstream again', async () => {
    const { handler, forwarder } = setup([
      () => Promise.reject(new Error('upstream socket broke')),
      async (q) => answer(q, 60),
    ]);
    expect(await ask(handler, 'www.example.test')).toEqual({ rcode: 'SERVFAIL', answers: [] });
    expect(await ask(handler, 'www.example.test')).toEqual({ rcode: 'NOERROR', answers: ['www.example.test 60 A 192.0.2.1'] });
    expect(forwarder.asked).toEqual(['www.example.test', 'www.example.test']);
  });

  it('an ExternalName chased through the cache counts the target\'s TTLs down', async () => {
    const { handler, forwarder } = setup([async (q) => answer(q, 300)]);
    const cname = 'ext.prod.svc.cluster.local 5 CNAME www.example.test';
    expect(await ask(handler, 'ext.prod.svc.cluster.local')).toEqual({ rcode: 'NOERROR', answers: [cname, 'www.example.test 300 A 192.0.2.1'] });
    vi.advanceTimersByTime(100_000);
    expect(await ask(handler, 'ext.prod.svc.cluster.local')).toEqual({ rcode: 'NOERROR', answers: [cname, 'www.example.test 200 A 192.0.2.1'] });
    // The same cached answer asked directly says the same.
    expect(await ask(handler, 'www.example.test')).toEqual({ rcode: 'NOERROR', answers: ['www.example.test 200 A 192.0.2.1'] });
    expect(forwarder.asked).toEqual(['www.example.test']);
  });

  it('several forward plugins: a name goes to the first whose zone has it; next hands an NXDOMAIN on, and a later route\'s answer stands', async () => {
    const rcode = (q: Buffer, code: number) => {
      const d = dnsPacket.decode(q);
      return dnsPacket.encode({ type: 'response', id: d.id, flags: dnsPacket.RECURSION_AVAILABLE | code, questions: d.questions } as Packet);
    };
    const lab = new ScriptedForwarder([async (q) => answer(q, 30)]);
    const first = new ScriptedForwarder([async (q) => rcode(q, 3), async (q) => rcode(q, 2)]);
    const last = new ScriptedForwarder([async (q) => answer(q, 40)]);
    const zone = new ClusterZone({ domain: 'cluster.local', ttl: 5, pods: 'insecure' }, new Catalog({ kinds: [] }));
    const handler = new DnsHandler(zone, [
      { forwarder: lab, from: 'lab.example.local', except: [] },
      { forwarder: first, from: '', except: [], next: new Set([3]) },
      { forwarder: last, from: '', except: [] },
    ], new AnswerCache(), undefined, logger('test'));
    expect(await ask(handler, 'db.lab.example.local')).toEqual({ rcode: 'NOERROR', answers: ['db.lab.example.local 30 A 192.0.2.1'] });
    expect(await ask(handler, 'gone.example.test')).toEqual({ rcode: 'NOERROR', answers: ['gone.example.test 40 A 192.0.2.1'] }); // NXDOMAIN handed on
    expect(await ask(handler, 'broken.example.test')).toEqual({ rcode: 'SERVFAIL', answers: [] }); // SERVFAIL is not in next
    expect([lab.asked, first.asked, last.asked]).toEqual([['db.lab.example.local'], ['gone.example.test', 'broken.example.test'], ['gone.example.test']]);
  });

  it('max_concurrent: a distinct question past the limit is REFUSED and counted; one in flight already is shared', async () => {
    const release: Array<() => void> = [];
    const held = (q: Buffer) => new Promise<Buffer>((resolve) => release.push(() => resolve(answer(q, 60))));
    const metrics = new DnsMetrics('cluster.local.', false);
    const { handler, forwarder } = setup([held, held, async (q) => answer(q, 60)], {}, metrics, { maxConcurrent: 2 });
    const a = ask(handler, 'a.example.test');
    const b = ask(handler, 'b.example.test');
    const aAgain = ask(handler, 'a.example.test'); // joins a's exchange
    expect(await ask(handler, 'c.example.test')).toEqual({ rcode: 'REFUSED', answers: [] });
    expect(forwarder.asked).toEqual(['a.example.test', 'b.example.test']);
    expect((await metrics.maxConcurrentRejects.get()).values[0].value).toBe(1);
    release.shift()!();
    expect((await a).answers).toEqual(['a.example.test 60 A 192.0.2.1']);
    expect((await aAgain).answers).toEqual(['a.example.test 60 A 192.0.2.1']);
    // a is done: room for one more.
    expect(await ask(handler, 'c.example.test')).toEqual({ rcode: 'NOERROR', answers: ['c.example.test 60 A 192.0.2.1'] });
    release.shift()!();
    expect((await b).rcode).toBe('NOERROR');
  });
});
