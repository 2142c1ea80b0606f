import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { parseQuery } from './wire.js';
import { shuffleAddressRecords } from './loadbalance.js';
import { rdata } from '../bench/dns/reply.js';

/** A reply with its owners compressed to the question (0xc00c), as resolvers write them;
 *  dns-packet spells every owner out, so the compressed records are appended by hand. */
function reply(answers: dnsPacket.Answer[], compressed: string[]): Buffer {
  const head = dnsPacket.encode({ type: 'response', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'db.example.test', type: 'A' }], answers });
  const tail = compressed.map((ip) => {
    const v6 = ip.includes(':');
    const rdata = v6 ? Buffer.from(dnsPacket.encode({ type: 'response', answers: [{ type: 'AAAA', name: 'x', data: ip }] }).subarray(-16)) : Buffer.from(ip.split('.').map(Number));
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0);
    rr.writeUInt16BE(v6 ? 28 : 1, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(5, 6);
    rr.writeUInt16BE(rdata.length, 10);
    return Buffer.concat([rr, rdata]);
  });
  const out = Buffer.concat([head, ...tail]);
  out.writeUInt16BE(answers.length + compressed.length, 6);
  return out;
}
const a = (ip: string): dnsPacket.Answer => ({ type: 'A', name: 'db.example.test', ttl: 5, data: ip });

describe('loadbalance', () => {
  it('puts the address records in every order over many replies, keeping the set and the CNAME first', () => {
    const base = reply([{ type: 'CNAME', name: 'alias.example.test', ttl: 5, data: 'db.example.test' }], ['10.0.0.1', '10.0.0.2', '10.0.0.3', 'fd00::1']);
    const q = parseQuery(Buffer.from(base).fill(0, 2, 3)); // the question end, read as a query
    const orders = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const buf = Buffer.from(base);
      shuffleAddressRecords(buf, q.questionEnd);
      const got = dnsPacket.decode(buf).answers!;
      expect(got[0]).toMatchObject({ type: 'CNAME', data: 'db.example.test' });
      expect(got.slice(1).map((r) => String(rdata(r))).sort()).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.3', 'fd00::1']);
      orders.add(got.map((r) => String(rdata(r))).join());
    }
    // 4 address records: 24 orders; 200 draws see nearly all of them.
    expect(orders.size).toBeGreaterThan(15);
  });

  it('leaves one address, and a record whose owner is spelled out, where they are', () => {
    for (const one of [reply([], ['10.0.0.1']), reply([a('10.0.0.1'), a('10.0.0.2')], [])]) {
      const q = parseQuery(Buffer.from(one).fill(0, 2, 3));
      const copy = Buffer.from(one);
      shuffleAddressRecords(copy, q.questionEnd);
      expect(copy.equals(one)).toBe(true);
    }
  });
});
