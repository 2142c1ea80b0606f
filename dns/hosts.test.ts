// The hosts plugin through a handler of its own (no cluster zone, no forwarder): what it holds,
// what it denies, what it leaves to the next plugin, and a file edited under it.
import { describe, expect, it, vi } from 'vitest';
import dnsPacket from 'dns-packet';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logger } from '../common/log.js';
import { DnsHandler, type Transport } from './handler.js';
import { HostsPlugin, parseHosts, type HostsConfig } from './hosts.js';
import { decodeReply, rdata } from '../bench/dns/reply.js';

const UDP: Transport = { proto: 'udp', family: '1', server: 'dns://test:53' };
const base: HostsConfig = { file: '', inline: [], zones: [''], ttl: 3600, noReverse: false, reloadMs: 0 };

async function ask(h: DnsHandler, name: string, type: string) {
  const q = dnsPacket.encode({ type: 'query', id: 9, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }] });
  const reply = decodeReply((await h.handle(q, UDP))!);
  return [reply.rcode, ...(reply.answers ?? []).map((a) => `${a.type} ${String(rdata(a))} ${'ttl' in a ? a.ttl : ''}`).sort()];
}

const handlerOf = (cfg: Partial<HostsConfig>) => new DnsHandler(undefined, [], undefined, undefined, logger('test'), { hosts: new HostsPlugin({ ...base, ...cfg }, logger('test')) });

describe('hosts', () => {
  it('reads IP NAME ALIAS lines, skipping comments and lines that are not that', () => {
    const t = parseHosts('# comment\n10.0.0.1 a.example b.example # trailing\nnot-an-ip x\n fd00::1  a.example\n\n10.0.0.2\n');
    expect([...t.byName]).toEqual([['a.example', ['10.0.0.1', 'fd00::1']], ['b.example', ['10.0.0.1']]]);
  });

  it('answers A, AAAA and PTR from inline lines with its TTL; NODATA for another type of a name it has', async () => {
    const h = handlerOf({ inline: ['10.0.0.1 db.corp.example db', 'fd00::1 db.corp.example'], ttl: 60 });
    expect(await ask(h, 'DB.corp.example', 'A')).toEqual(['NOERROR', 'A 10.0.0.1 60']);
    expect(await ask(h, 'db.corp.example', 'AAAA')).toEqual(['NOERROR', 'AAAA fd00::1 60']);
    expect(await ask(h, 'db.corp.example', 'TXT')).toEqual(['NOERROR']);
    expect(await ask(h, '1.0.0.10.in-addr.arpa', 'PTR')).toEqual(['NOERROR', 'PTR db 60', 'PTR db.corp.example 60']);
  });

  it('denies a name of its zones it lacks, unless it falls through (then the next plugin: none here, SERVFAIL)', async () => {
    expect(await ask(handlerOf({ inline: ['10.0.0.1 a.example'] }), 'b.example', 'A')).toEqual(['NXDOMAIN']);
    expect(await ask(handlerOf({ inline: ['10.0.0.1 a.example'], fallthrough: [''] }), 'b.example', 'A')).toEqual(['SERVFAIL']);
    // Outside its zones it is not asked at all; no_reverse leaves PTRs alone.
    expect(await ask(handlerOf({ inline: ['10.0.0.1 a.example'], zones: ['example'] }), 'a.other', 'A')).toEqual(['SERVFAIL']);
    expect(await ask(handlerOf({ inline: ['10.0.0.1 a.example'], noReverse: true }), '1.0.0.10.in-addr.arpa', 'PTR')).toEqual(['NXDOMAIN']);
  });

  it('follows an edited file when its modification time changes, at its reload interval', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const dir = mkdtempSync(join(tmpdir(), 'kdp-hosts-'));
    try {
      const file = join(dir, 'hosts');
      writeFileSync(file, '10.0.0.1 a.example\n');
      const h = handlerOf({ file, reloadMs: 5000 });
      expect(await ask(h, 'a.example', 'A')).toEqual(['NOERROR', 'A 10.0.0.1 3600']);
      writeFileSync(file, '10.0.0.9 a.example\n');
      utimesSync(file, new Date(), new Date(Date.now() + 60_000));
      vi.advanceTimersByTime(4999);
      expect(await ask(h, 'a.example', 'A')).toEqual(['NOERROR', 'A 10.0.0.1 3600']); // not looked at yet
      vi.advanceTimersByTime(1);
      expect(await ask(h, 'a.example', 'A')).toEqual(['NOERROR', 'A 10.0.0.9 3600']);
    } finally {
      vi.useRealTimers();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
