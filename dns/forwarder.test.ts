import type { Answer, Packet } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { parseUpstream } from './forwarder.js';

describe('upstreams', () => {
  it('parses HOST[:PORT] for both families and names what is wrong', () => {
    expect(parseUpstream('192.0.2.53')).toEqual({ host: '192.0.2.53', port: 53 });
    expect(parseUpstream('192.0.2.53:5353')).toEqual({ host: '192.0.2.53', port: 5353 });
    expect(parseUpstream('fd00::53')).toEqual({ host: 'fd00::53', port: 53 });
    expect(parseUpstream('[fd00::53]:5353')).toEqual({ host: 'fd00::53', port: 5353 });
    expect(() => parseUpstream('dns.example')).toThrow(/--upstream "dns.example": "dns.example" is not an IP address/);
    expect(() => parseUpstream('192.0.2.1:0')).toThrow(/bad port/);
  });
});

describe('the query sent upstream', () => {
  it('is a clean query: header, the question as spelled, our OPT with the client DO bit', async () => {
    const { upstreamQuery } = await import('./handler.js');
    const { parseQuery } = await import('./wire.js');
    const dnsPacket = (await import('dns-packet')).default;
    const client = dnsPacket.encode({
      type: 'query', id: 77, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED,
      questions: [{ name: 'WWW.example.test', type: 'AAAA' }],
      answers: [{ name: 'junk.test', type: 'A', ttl: 1, data: '192.0.2.9' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK } as Answer],
    } as Packet);
    const out = dnsPacket.decode(upstreamQuery(client, parseQuery(client)));
    expect(out.questions).toEqual([{ name: 'WWW.example.test', type: 'AAAA', class: 'IN' }]);
    expect(out.answers).toEqual([]);
    expect(out.flags! & (dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED)).toBe(dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED);
    const opt = out.additionals![0] as unknown as { type: string; udpPayloadSize: number; flags: number };
    expect([opt.type, opt.udpPayloadSize, opt.flags & dnsPacket.DNSSEC_OK]).toEqual(['OPT', 1232, dnsPacket.DNSSEC_OK]);
  });
});

describe('which reply counts', () => {
  it('only ours: a response, our ID, one question equal byte for byte', async () => {
    const { isReplyTo } = await import('./forwarder.js');
    const dnsPacket = (await import('dns-packet')).default;
    const question = { name: 'Www.Example.test', type: 'A', class: 'IN' } as const;
    const query = dnsPacket.encode({ type: 'query', id: 7, questions: [question] } as Packet);
    const q = query.subarray(12);
    const reply = (p: Partial<Packet>) => dnsPacket.encode({ type: 'response', id: 7, questions: [question], ...p } as Packet);
    expect(isReplyTo(reply({}), 7, q)).toBe(true);
    expect(isReplyTo(reply({ id: 8 }), 7, q)).toBe(false);
    expect(isReplyTo(query, 7, q)).toBe(false); // not a response
    expect(isReplyTo(reply({ questions: [{ ...question, name: 'www.example.test' }] }), 7, q)).toBe(false);
    expect(isReplyTo(reply({ questions: [{ ...question, type: 'AAAA' }] }), 7, q)).toBe(false);
    expect(isReplyTo(reply({ questions: [{ ...question, class: 'CH' }] }), 7, q)).toBe(false);
    expect(isReplyTo(reply({ questions: [], flags: 3 }), 7, q)).toBe(false); // NXDOMAIN, no question
    expect(isReplyTo(reply({ questions: [question, question] }), 7, q)).toBe(false);
    expect(isReplyTo(Buffer.alloc(5), 7, q)).toBe(false);
  });
});
