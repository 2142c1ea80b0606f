// Stale UDP conntrack entries, cleaned as kube-proxy 1.32+ does (issue 11, item 8): after each
// sync, one dump of the UDP entries per family and one batch of deletions, of only the entries
// to a UDP service (address:port, or node port) whose reply source is not a serving endpoint. A
// restarted proxy flushes nothing that is still good.
//
// The entries are made with `conntrack -I` in the test's node namespace and read back with
// `conntrack -L` there. A `conntrack` wrapper first in the proxy's PATH logs each invocation, so
// the test counts the processes a sync costs.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE_IP4, ProxyEnv, serviceYaml } from './proxy-env.js';

const VIP4 = '10.96.7.10';
const VIP6 = 'fd00:96::7:10';
const NODE_PORT = 30753;
const GONE4 = '10.244.0.99'; // an endpoint no slice lists
const GONE6 = 'fd00:244::99';

describe('proxy: stale UDP conntrack entries (kube-proxy 1.32+ rules)', () => {
  let env: ProxyEnv;
  const wrappers = mkdtempSync(join(tmpdir(), 'kdp-ct-wrap-'));
  const calls = join(wrappers, 'calls.log');
  let podA4: string, podA6: string, podB4: string, podB6: string;

  const dnsService = (endpoints: { ip: string }[]) =>
    serviceYaml({
      name: 'dns', clusterIPs: [VIP4, VIP6], endpoints,
      ports: [{ name: 'dns', port: 53, targetPort: 5353, protocol: 'UDP', nodePort: NODE_PORT }],
      spec: { type: 'NodePort' },
    });

  /** `conntrack -I` of one UDP entry in the node namespace: orig src:sport → dst:dport, replied by rsrc:rport. */
  async function insert(proto: 'udp' | 'tcp', src: string, dst: string, dport: number, rsrc: string, rport: number, sport: number): Promise<void> {
    const state = proto === 'tcp' ? ['--state', 'ESTABLISHED'] : [];
    await env.node.exec('conntrack', ['-I', '-p', proto, '-s', src, '-d', dst, '--sport', String(sport), '--dport', String(dport),
      '-r', rsrc, '-q', src, '--reply-port-src', String(rport), '--reply-port-dst', String(sport), '-t', '600', ...state]);
  }

  /** The node's entries as "proto dst:dport<-replysrc", sorted. */
  async function table(): Promise<string[]> {
    const out: string[] = [];
    for (const f of ['ipv4', 'ipv6']) {
      const r = await env.node.exec('conntrack', ['-L', '-f', f, '-o', 'extended'], { allowFailure: true });
      for (const line of r.stdout.split('\n')) {
        const w = line.trim().split(/\s+/);
        if (w.length < 4 || (w[2] !== 'udp' && w[2] !== 'tcp')) continue; // the kernel's own IGMP entries
        const get = (k: string, i: number) => w.filter((x) => x.startsWith(`${k}=`))[i]?.slice(k.length + 1);
        out.push(`${w[2]} ${get('dst', 0)}:${get('dport', 0)}<-${get('src', 1)}`);
      }
    }
    return out.sort();
  }

  const callLog = () => readFileSync(calls, 'utf8').trim().split('\n').filter(Boolean);

  beforeAll(async () => {
    writeFileSync(join(wrappers, 'conntrack'), `#!/bin/sh\necho "$*" >> ${calls}\nexec /usr/sbin/conntrack "$@"\n`);
    chmodSync(join(wrappers, 'conntrack'), 0o755);
    writeFileSync(calls, '');
    env = await ProxyEnv.create({ pods: ['pod-a', 'pod-b'] });
    [podA4, podA6, podB4, podB6] = [env.pods[0].ip4, env.pods[0].ip6, env.pods[1].ip4, env.pods[1].ip6];
  });

  afterAll(async () => {
    await env?.destroy();
    rmSync(wrappers, { recursive: true, force: true });
  });

  it('the first sync after a (re)start deletes only the entries to gone endpoints, with one dump per family', async () => {
    env.write('dns.yaml', dnsService([{ ip: podA4 }, { ip: podA6 }]));
    // What a proxy that ran before us left in the table: flows its rules DNATed.
    await insert('udp', '10.244.0.12', VIP4, 53, podA4, 5353, 40001); // to a serving endpoint: keep
    await insert('udp', '10.244.0.12', VIP4, 53, GONE4, 5353, 40002); // to a gone endpoint: delete
    await insert('udp', 'fd00:244::12', VIP6, 53, podA6, 5353, 40003); // keep
    await insert('udp', 'fd00:244::12', VIP6, 53, GONE6, 5353, 40004); // delete
    await insert('udp', '192.168.50.2', NODE_IP4, NODE_PORT, podA4, 5353, 40005); // node port, serving: keep
    await insert('udp', '192.168.50.2', NODE_IP4, NODE_PORT, GONE4, 5353, 40006); // node port, gone: delete
    await insert('udp', '10.244.0.12', '192.168.60.2', 53, '192.168.60.2', 53, 40007); // no service: keep
    await insert('tcp', '10.244.0.12', VIP4, 53, GONE4, 5353, 40008); // TCP: keep
    await env.startProxy({ pods: [], env: { ...process.env, PATH: `${wrappers}:${process.env.PATH}` } });
    await env.eventually('the stale entries deleted', table, (t) => !t.some((e) => e.startsWith('udp') && (e.endsWith(GONE4) || e.endsWith(GONE6))));
    expect(await table()).toEqual([
      `tcp ${VIP4}:53<-${GONE4}`,
      `udp 192.168.50.1:${NODE_PORT}<-${podA4}`,
      `udp 192.168.60.2:53<-192.168.60.2`,
      `udp ${VIP4}:53<-${podA4}`,
      `udp ${VIP6}:53<-${podA6}`,
    ].sort());
    // One dump per family, one batch of deletions: no process per filter.
    const log = callLog();
    expect(log.filter((l) => l.startsWith('-L')).sort()).toEqual(['-L -f ipv4 -p udp -o extended', '-L -f ipv6 -p udp -o extended']);
    expect(log.filter((l) => l.startsWith('-R'))).toHaveLength(1);
    expect(log.filter((l) => l.startsWith('-D'))).toEqual([]);
  });

  it('an endpoint replaced: its entries go, the new endpoint\'s stay; one dump per family and sync', async () => {
    await insert('udp', '10.244.0.13', VIP4, 53, podB4, 5353, 41001);
    await insert('udp', 'fd00:244::13', VIP6, 53, podB6, 5353, 41002);
    writeFileSync(calls, '');
    env.write('dns.yaml', dnsService([{ ip: podB4 }, { ip: podB6 }]));
    await env.eventually('pod-a\'s entries deleted', table, (t) => !t.some((e) => e.startsWith('udp') && (e.endsWith(podA4) || e.endsWith(podA6))));
    expect(await table()).toEqual([
      `tcp ${VIP4}:53<-${GONE4}`,
      `udp 192.168.60.2:53<-192.168.60.2`,
      `udp ${VIP4}:53<-${podB4}`,
      `udp ${VIP6}:53<-${podB6}`,
    ].sort());
    const log = callLog();
    const dumps = log.filter((l) => l.startsWith('-L')).length;
    const batches = log.filter((l) => l.startsWith('-R')).length;
    expect(batches).toBeGreaterThanOrEqual(1);
    expect(dumps).toBeLessThanOrEqual(2 * (batches + 1)); // at most the syncs' dumps, no more
    expect(log.filter((l) => l.startsWith('-D'))).toEqual([]);
  });

  it('a service without serving endpoints keeps its entries (kube-proxy leaves them)', async () => {
    await insert('udp', '10.244.0.14', VIP4, 53, podB4, 5353, 42001);
    env.write('dns.yaml', dnsService([]));
    await env.eventually('the empty service programmed', async () => env.proxy!.stderr, (s) => (s.match(/rules synced/g) ?? []).length > 0);
    writeFileSync(calls, '');
    // A marker service makes the proxy sync once more, so the check below follows a sync.
    env.write('marker.yaml', serviceYaml({ name: 'marker', clusterIPs: ['10.96.7.20'], endpoints: [{ ip: podA4 }], ports: [{ name: 'm', port: 99, targetPort: 5353, protocol: 'UDP' }] }));
    await env.eventually('a sync after the change', async () => callLog(), (l) => l.some((x) => x.startsWith('-L -f ipv4')));
    // The one from the previous test and this one: both kept.
    expect((await table()).filter((e) => e.startsWith(`udp ${VIP4}`))).toEqual([`udp ${VIP4}:53<-${podB4}`, `udp ${VIP4}:53<-${podB4}`]);
  });
});
