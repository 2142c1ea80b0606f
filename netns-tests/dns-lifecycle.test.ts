// The server's life around the catalog: before the catalog has synced, cluster names get
// SERVFAIL and /ready says not ready; once synced, both turn. The server runs in this process
// on loopback, on a catalog the test feeds by hand; no upstream is asked.
import { afterAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { parseFlags } from '../cli/flags.js';
import { Catalog } from '../cluster/catalog.js';
import { startDns, type RunningDns } from '../dns/command.js';
import { fixtureServices, serviceObjects } from '../bench/dns/fixtures.js';
import { encodeQuery } from '../bench/dns/fuzz.js';
import { decodeReply, rdata, type Reply } from '../bench/dns/reply.js';

describe('DNS server lifecycle', () => {
  let dns: RunningDns | undefined;
  afterAll(async () => {
    await dns?.stop();
  });

  async function ask(name: string): Promise<Reply> {
    const s = dgram.createSocket('udp4');
    try {
      return await new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no reply')), 3000);
        s.on('message', (m) => {
          clearTimeout(t);
          resolve(decodeReply(m));
        });
        s.send(encodeQuery(5, name, 1), dns!.addresses[0].port, '127.0.0.1');
      });
    } finally {
      s.close();
    }
  }

  const get = async (path: string) => {
    const a = dns!.http[path];
    const r = await fetch(`http://127.0.0.1:${a.port}${path}`);
    return { status: r.status, body: await r.text() };
  };

  it('is not ready and answers SERVFAIL for the cluster zone until the catalog syncs', async () => {
    const catalog = new Catalog({ kinds: ['Service', 'EndpointSlice', 'Node'] });
    const opts = parseFlags('dns', [
      '--manifests', '/nonexistent', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9',
      '--health-listen', '127.0.0.1:0', '--ready-listen', '127.0.0.1:0', '--metrics-listen', '127.0.0.1:0',
    ]);
    dns = await startDns(opts, catalog);
    expect((await get('/health')).status).toBe(200);
    expect((await get('/ready')).status).toBe(503);
    const early = await ask('web.prod.svc.cluster.local');
    // CoreDNS's SERVFAIL before its sync carries the zone's SOA, authoritatively.
    expect([early.rcode, (early.flags ?? 0) & 0x0400, (early.authorities ?? []).map((a) => `${a.name} ${a.type}`)]).toEqual(['SERVFAIL', 0x0400, ['cluster.local SOA']]);

    catalog.batch(() => {
      for (const s of fixtureServices()) for (const o of serviceObjects(s)) catalog.apply((o as { kind: 'Service' | 'EndpointSlice' }).kind, o);
      for (const k of ['Service', 'EndpointSlice', 'Node'] as const) catalog.markSynced(k);
    });
    expect((await get('/ready')).status).toBe(200);
    const r = await ask('web.prod.svc.cluster.local');
    expect(r.rcode).toBe('NOERROR');
    expect(rdata(r.answers?.[0])).toBe('10.96.0.10');
    const metrics = (await get('/metrics')).body;
    expect(metrics).toMatch(/coredns_dns_responses_total\{[^}]*rcode="SERVFAIL",plugin="kubernetes"\} 1/);
  });
});
