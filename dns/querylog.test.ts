import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { parseQuery } from './wire.js';
import { QueryLog, classify, COMMON_LOG_FORMAT } from './querylog.js';

const query = parseQuery(dnsPacket.encode({
  type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'Web.prod.svc.cluster.local', type: 'A' }],
  additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer],
}));
// dns-packet takes the rcode in the low bits of `flags`.
const RCODES: Record<string, number> = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 };
const reply = (rcode: string, answers: dnsPacket.Answer[]) =>
  dnsPacket.encode({ type: 'response', id: 4242, flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_DESIRED | RCODES[rcode], questions: [{ name: 'web.prod.svc.cluster.local', type: 'A' }], answers });
const ok = reply('NOERROR', [{ type: 'A', name: 'web.prod.svc.cluster.local', ttl: 5, data: '10.96.0.10' }]);

describe('query log', () => {
  it('writes CoreDNS common log format lines', () => {
    const lines: string[] = [];
    const log = new QueryLog({ zones: [''], classes: new Set(['success', 'denial', 'error']), format: COMMON_LOG_FORMAT }, (l) => lines.push(l));
    log.record(query, 'udp', 66, ok, { address: '10.244.1.7', port: 40212 }, 0.000071);
    log.record(query, 'tcp', 66, ok, { address: 'fd00::7', port: 5353 }, 0.25);
    expect(lines).toEqual([
      `[INFO] 10.244.1.7:40212 - 4242 "A IN web.prod.svc.cluster.local. udp 66 true 1232" NOERROR qr,aa,rd ${ok.length} 0.000071s\n`,
      `[INFO] [fd00::7]:5353 - 4242 "A IN web.prod.svc.cluster.local. tcp 66 true 1232" NOERROR qr,aa,rd ${ok.length} 0.25s\n`,
    ]);
  });

  it('logs only the zones and response classes it is given, in the format given', () => {
    const lines: string[] = [];
    const log = new QueryLog({ zones: ['example.test'], classes: new Set(['denial']), format: '{name} {rcode} {common}' }, (l) => lines.push(l));
    log.record(query, 'udp', 66, reply('NXDOMAIN', []), undefined, 0.001); // not its zone
    const other = parseQuery(dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'x.example.test', type: 'A' }] }));
    log.record(other, 'udp', 30, reply('NOERROR', [{ type: 'A', name: 'x', ttl: 1, data: '1.2.3.4' }]), undefined, 0.001); // success
    log.record(other, 'udp', 30, reply('NXDOMAIN', []), undefined, 0.001);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\[INFO\] x\.example\.test\. NXDOMAIN -:- - 1 "A IN x\.example\.test\. udp 30 false 512" NXDOMAIN qr,aa,rd \d+ 0\.001s\n$/);
  });

  it('classifies replies as CoreDNS does: answers, denial (NXDOMAIN, NODATA), error', () => {
    expect([ok, reply('NOERROR', []), reply('NXDOMAIN', []), reply('SERVFAIL', []), reply('REFUSED', [])].map(classify)).toEqual(['success', 'denial', 'denial', 'error', 'error']);
  });
});
