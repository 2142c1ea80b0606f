// The Corefile's acl: CoreDNS's rule order and actions, on real query bytes; the block behind
// it answers NOERROR with one A record, so a passed question is told from a refused one.
import { describe, expect, it } from 'vitest';
import dnsPacket, { type Packet } from 'dns-packet';
import { decodeReply } from '../bench/dns/reply.js';
import { AclHandler, type AclPolicy } from './acl-plugin.js';
import type { BlockHandler, Transport } from './handler.js';
import { DnsMetrics } from './metrics.js';
import { RCODE, emptyReply, type Query } from './wire.js';

const UDP: Transport = { proto: 'udp', family: '1', server: 'dns://test:53' };

/** The block behind acl: remembers what reached it, answers NOERROR. */
class Block implements BlockHandler {
  readonly reached: string[] = [];
  handle(): Buffer | undefined {
    throw new Error('acl hands parsed questions on');
  }
  handleQuery(msg: Buffer, q: Query): Buffer {
    this.reached.push(`${q.name}/${q.qtype}`);
    const r = emptyReply(msg, q, RCODE.NOERROR);
    r.writeUInt16BE(0xbeef, 0); // marks "answered by the block"
    return r;
  }
  refuse(msg: Buffer): Buffer {
    return emptyReply(msg, undefined, RCODE.REFUSED);
  }
}

function ask(h: AclHandler, name: string, type: 'A' | 'AAAA' | 'TXT', from: string) {
  const msg = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type }] } as Packet);
  const r = h.handle(msg, UDP, { address: from, port: 5353 }) as Buffer | undefined;
  if (r === undefined) return 'silence';
  return r.readUInt16BE(0) === 0xbeef ? 'passed' : decodeReply(r).rcode;
}

describe('acl', () => {
  it('first matching rule decides: allow a subnet, block the rest of its network, others pass', () => {
    const block = new Block();
    const h = new AclHandler([{ zones: [''], rules: [{ action: 'allow', nets: ['192.168.1.0/24'] }, { action: 'block', nets: ['192.168.0.0/16'] }] }], block);
    expect(ask(h, 'a.example', 'A', '192.168.1.9')).toBe('passed');
    expect(ask(h, 'a.example', 'A', '192.168.7.9')).toBe('REFUSED');
    expect(ask(h, 'a.example', 'A', '10.0.0.1')).toBe('passed');
    expect(ask(h, 'a.example', 'A', '::ffff:192.168.7.9')).toBe('REFUSED'); // a dual-stack socket's IPv4 sender
    expect(block.reached).toEqual(['a.example/1', 'a.example/1']);
  });

  it('filter answers NOERROR with nothing; types narrow a rule; a policy applies in its zones only', () => {
    const policies: AclPolicy[] = [
      { zones: ['secret.example'], rules: [{ action: 'block' }] },
      { zones: [''], rules: [{ action: 'filter', types: [28], nets: ['10.0.0.0/8', 'fd00::1'] }] },
    ];
    const metrics = new DnsMetrics('cluster.local.', false);
    const h = new AclHandler(policies, new Block(), metrics);
    expect(ask(h, 'x.secret.example', 'TXT', '203.0.113.1')).toBe('REFUSED');
    expect(ask(h, 'open.example', 'AAAA', '10.1.2.3')).toBe('NOERROR'); // filtered: empty
    expect(ask(h, 'open.example', 'AAAA', 'fd00::1')).toBe('NOERROR');
    expect(ask(h, 'open.example', 'A', '10.1.2.3')).toBe('passed');
    expect(ask(h, 'open.example', 'AAAA', '203.0.113.1')).toBe('passed');
    const count = async (c: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> }) => (await c.get()).values.map((v) => [v.labels.zone, v.value]);
    return Promise.all([count(metrics.aclBlocked), count(metrics.aclFiltered)]).then(([blocked, filtered]) => {
      expect(blocked).toEqual([['secret.example.', 1]]);
      expect(filtered).toEqual([['.', 2]]);
    });
  });

  it('allow ends the checking, as CoreDNS: a later policy does not see an allowed question; drop answers nothing; what passes is counted', async () => {
    const policies: AclPolicy[] = [
      { zones: [''], rules: [{ action: 'allow', nets: ['10.0.0.10'] }, { action: 'drop', types: [16] }] },
      { zones: [''], rules: [{ action: 'block', nets: ['10.0.0.0/24'] }] },
    ];
    const metrics = new DnsMetrics('cluster.local.', false);
    const block = new Block();
    const h = new AclHandler(policies, block, metrics);
    expect(ask(h, 'a.example', 'TXT', '10.0.0.10')).toBe('passed'); // allowed before drop and block
    expect(ask(h, 'a.example', 'TXT', '10.0.0.2')).toBe('silence');
    expect(ask(h, 'a.example', 'A', '10.0.0.2')).toBe('REFUSED'); // no rule of the first policy: the second decides
    expect(ask(h, 'a.example', 'A', '192.0.2.1')).toBe('passed'); // no rule anywhere
    expect(block.reached).toEqual(['a.example/16', 'a.example/1']);
    const values = async (c: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, unknown> }> }> }) => (await c.get()).values.map((v) => [v.labels.zone ?? '-', v.value]);
    expect(await values(metrics.aclAllowed)).toEqual([['-', 2]]);
    expect(await values(metrics.aclDropped)).toEqual([['.', 1]]);
    expect(await values(metrics.aclBlocked)).toEqual([['.', 1]]);
  });
});
