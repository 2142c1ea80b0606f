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

  it('serve_stale: an expired entry is served within its window, asked to be refreshed once, then dropped', () => {
    const cache = new AnswerCache({ capacity: 10, maxTtl: 3600, maxNegativeTtl: 1800, staleMs: 60_000 });
    const a = toAnswer(reply({ answers: [{ name: 'www.example.test', type: 'A', ttl: 10, data: '192.0.2.1' }] }), 0)!;
    cache.put('a', a);
    expect(cache.lookup('a', 5_000)).toEqual({ answer: a, stale: false, refresh: false });
    expect(cache.get('a', 10_000)).toBeUndefined(); // fresh only: past its TTL
    expect(cache.lookup('a', 10_000)).toEqual({ answer: a, stale: true, refresh: true });
    expect(cache.lookup('a', 20_000)).toEqual({ answer: a, stale: true, refresh: false }); // one refresh at a time
    cache.refreshFailed('a');
    expect(cache.lookup('a', 30_000)?.refresh).toBe(true);
    // Served stale, its TTLs are 0.
    expect((dnsPacket.decode(serveAnswer(a, Q, parseQuery(Q), 512, 30_000)).answers![0] as { ttl: number }).ttl).toBe(0);
    expect(cache.lookup('a', 70_000)).toBeUndefined();
    expect(cache.size.success).toBe(0);
  });

  it('prefetch: a popular entry near its end is asked to be refreshed, an unpopular one is not', () => {
    const cache = new AnswerCache({ capacity: 10, maxTtl: 3600, maxNegativeTtl: 1800, prefetch: { amount: 3, windowMs: 120_000, percentage: 20 } });
    const a = toAnswer(reply({ answers: [{ name: 'www.example.test', type: 'A', ttl: 100, data: '192.0.2.1' }] }), 0)!;
    cache.put('popular', a);
    cache.put('quiet', a);
    expect([1_000, 2_000].map((t) => cache.lookup('popular', t)?.refresh)).toEqual([false, false]);
    expect(cache.lookup('popular', 79_000)?.refresh).toBe(false); // third hit, 21 % of its TTL left
    expect(cache.lookup('popular', 81_000)?.refresh).toBe(true); // popular, and under 20 % left
    expect(cache.lookup('popular', 82_000)?.refresh).toBe(false); // asked once
    expect(cache.lookup('quiet', 90_000)?.refresh).toBe(false); // one hit is not popular
    // Hits older than the window do not count.
    const later = new AnswerCache({ capacity: 10, maxTtl: 3600, maxNegativeTtl: 1800, prefetch: { amount: 2, windowMs: 10_000, percentage: 20 } });
    later.put('x', a);
    expect([1_000, 85_000].map((t) => later.lookup('x', t)?.refresh)).toEqual([false, false]);
    expect(later.lookup('x', 86_000)?.refresh).toBe(true);
  });

  it('keys on name case-insensitively, type, class and DO/CD', () => {
    const q1 = parseQuery(Q);
    const q2 = parseQuery(dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'WWW.example.TEST', type: 'A' }] }));
    const q3 = parseQuery(dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'www.example.test', type: 'AAAA' }] }));
    expect(cacheKey(q1)).toBe(cacheKey(q2));
    expect(cacheKey(q1)).not.toBe(cacheKey(q3));
  });
});
