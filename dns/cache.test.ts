import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { AnswerCache, cacheKey, cacheLifetime, serveAnswer, toAnswer } from './cache.js';
import { parseQuery } from './wire.js';

const Q = dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'www.Example.test', type: 'A' }] });

function reply(p: Partial<dnsPacket.Packet>): Buffer {
  return dnsPacket.encode({ type: 'response', id: 1, flags: dnsPacket.RECURSION_AVAILABLE, questions: [{ name: 'www.example.test', type: 'A' }], ...p } as dnsPacket.Packet);
}

const soa = (ttl: number, minimum: number) => ({
  name: 'example.test', type: 'SOA', ttl,
  data: { mname: 'ns.example.test', rname: 'h.example.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
}) as dnsPacket.Answer;

describe('answer cache', () => {
  it('serves with the client ID and question case, TTLs counted down', () => {
    const a = toAnswer(reply({ answers: [{ name: 'www.example.test', type: 'A', ttl: 60, data: '192.0.2.1' }] }), 1_000_000)!;
    expect(cacheLifetime(a)).toEqual({ ttl: 60, kind: 'success' });
    const q = parseQuery(Q);
    const out = dnsPacket.decode(serveAnswer(a, Q, q, 512, 1_000_000 + 12_500));
    expect(out.id).toBe(9);
    expect(out.questions![0].name).toBe('www.Example.test');
    expect((out.answers![0] as { ttl: number }).ttl).toBe(48);
  });

  it('caches negative answers for the SOA minimum, not without a SOA, and never SERVFAIL', () => {
    const nx = toAnswer(reply({ flags: 3, authorities: [soa(300, 30)] } as Partial<dnsPacket.Packet>), 0)!;
    expect(cacheLifetime(nx)).toEqual({ ttl: 30, kind: 'denial' });
    expect(cacheLifetime(toAnswer(reply({ flags: 3 } as Partial<dnsPacket.Packet>), 0)!)).toBeUndefined();
    expect(cacheLifetime(toAnswer(reply({ flags: 2 } as Partial<dnsPacket.Packet>), 0)!)).toBeUndefined();
    expect(cacheLifetime(toAnswer(reply({ answers: [{ name: 'www.example.test', type: 'A', ttl: 0, data: '192.0.2.1' }] }), 0)!)).toBeUndefined();
  });

  it('passes on, uncached, a reply whose OPT record is not last', () => {
    const r = reply({
      answers: [{ name: 'www.example.test', type: 'A', ttl: 60, data: '192.0.2.1' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer, { name: 'www.example.test', type: 'A', ttl: 60, data: '192.0.2.2' }],
    });
    const a = toAnswer(r, 0)!;
    expect(a.keepsOpt).toBe(true);
    expect(cacheLifetime(a)).toBeUndefined();
    const out = dnsPacket.decode(serveAnswer(a, Q, parseQuery(Q), 1232, 0));
    expect(out.additionals!.map((x) => x.type)).toEqual(['OPT', 'A']);
  });

  it('expires entries, and drops the least recently used beyond its capacity', () => {
    const events: string[] = [];
    const cache = new AnswerCache({ capacity: 2, maxTtl: 3600, maxNegativeTtl: 1800 }, { hit: (k) => events.push(`hit ${k}`), miss: () => events.push('miss'), evict: (k) => events.push(`evict ${k}`) });
    const a = toAnswer(reply({ answers: [{ name: 'www.example.test', type: 'A', ttl: 10, data: '192.0.2.1' }] }), 0)!;
    cache.put('a', a);
    cache.put('b', a);
    expect(cache.get('a', 1000)).toBe(a); // a is now the most recent
    cache.put('c', a);
    expect(cache.get('b', 1000)).toBeUndefined();
    expect(cache.get('a', 1000)).toBe(a);
    expect(cache.get('a', 10_000)).toBeUndefined();
    expect(cache.size.success).toBe(1);
    expect(events).toEqual(['hit success', 'evict success', 'miss', 'hit success', 'miss']);
  });

  it('keys on name case-insensitively, type, class and DO/CD', () => {
    const q1 = parseQuery(Q);
    const q2 = parseQuery(dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'WWW.example.TEST', type: 'A' }] }));
    const q3 = parseQuery(dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'www.example.test', type: 'AAAA' }] }));
    expect(cacheKey(q1)).toBe(cacheKey(q2));
    expect(cacheKey(q1)).not.toBe(cacheKey(q3));
  });
});
