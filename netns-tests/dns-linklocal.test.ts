// A wildcard IPv6 listener answers on link-local addresses: a client that asks the node's
// fe80:: address on their shared link (dig @fe80::…%eth0) gets the reply from that address,
// over UDP (a socket bound with the link's scope) and TCP.
//
//   client (eth0, link-local only) ──veth── node (vclient, link-local only; dns --listen [::]:PORT)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Topology, type Namespace, type Process } from './harness/netns.js';
import { fixtureServices, serviceObjects, toYaml } from '../bench/dns/fixtures.js';

const BIN = resolve('dist/cmd/kube-dataplane.js');
const PORT = 5390;
const ZONE = 'cluster.local';

/** The link-local address of `ifname`, once duplicate address detection has finished with it. */
async function linkLocal(ns: Namespace, ifname: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const out = (await ns.ip('-6', '-o', 'addr', 'show', 'dev', ifname, 'scope', 'link')).stdout;
    const m = /inet6 (fe80::[0-9a-f:]+)\/64 .*/.exec(out);
    if (m && !/tentative/.test(m[0])) return m[1];
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${ns.name}: ${ifname} has no usable link-local address after 10 s`);
}

async function dig(ns: Namespace, server: string, ...args: string[]): Promise<{ status: string; answers: string[]; raw: string }> {
  const r = await ns.exec('dig', ['+time=2', '+tries=1', '+nocookie', `@${server}`, '-p', String(PORT), ...args], { allowFailure: true, timeoutMs: 20_000 });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? `no reply (${r.code})`;
  const answers = [...r.stdout.matchAll(/^\S+\s+\d+\s+IN\s+(?:A|AAAA)\s+(\S+)$/gm)].map((m) => m[1]).sort();
  return { status, answers, raw: r.stdout };
}

describe('wildcard IPv6 listener on link-local addresses', () => {
  let topo: Topology;
  let node: Namespace;
  let client: Namespace;
  let server: Process;
  let dir: string;
  let nodeLL: string;

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first (npx tsc -p tsconfig.json)`);
    dir = mkdtempSync(join(tmpdir(), 'kdp-dns-ll-'));
    writeFileSync(join(dir, 'services.yaml'), toYaml(fixtureServices().flatMap(serviceObjects)));
    topo = await Topology.create();
    node = await topo.namespace('node');
    client = await topo.namespace('client');
    // Link-local addresses come up without duplicate address detection, so they are usable
    // (bindable) at once; linkLocal() still waits for a tentative one, should DAD run anyway.
    for (const ns of [node, client]) {
      await ns.sysctl('net.ipv6.conf.default.accept_dad', 0);
      await ns.sysctl('net.ipv6.conf.all.accept_dad', 0);
    }
    await topo.veth({ ns: client, ifname: 'eth0' }, { ns: node, ifname: 'vclient' });
    nodeLL = await linkLocal(node, 'vclient');
    await linkLocal(client, 'eth0');
    server = node.spawn('node', [
      BIN, 'dns', '--manifests', dir, '--listen', `[::]:${PORT}`, '--allow-from', 'fe80::/10,::1', '--upstream', '[::1]:5391',
      '--health-listen', '', '--ready-listen', '', '--metrics-listen', '',
    ], { label: 'dns' });
    await server.waitForOutput(/dns serving/);
  });

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers a client asking the node\'s link-local address, over UDP and TCP, from that address', async () => {
    // dig drops a reply from any other source ("reply from unexpected source"), so an answer
    // over UDP means it left from the address asked, on the client's link.
    for (const transport of ['+notcp', '+tcp']) {
      const d = await dig(client, `${nodeLL}%eth0`, transport, `web.prod.svc.${ZONE}`, 'AAAA');
      expect(d.status, d.raw).toBe('NOERROR');
      expect(d.answers).toEqual(['fd00:96::10']);
    }
  });

  it('still answers on the loopback address of the same wildcard listener', async () => {
    const d = await dig(node, '::1', '+notcp', `web.prod.svc.${ZONE}`, 'A');
    expect(d.answers).toEqual(['10.96.0.10']);
  });

  it('binds a link-local address that appears later, with its scope', async () => {
    // A second link: its link-local address is new to the listener and found by a rescan.
    await topo.veth({ ns: client, ifname: 'eth1' }, { ns: node, ifname: 'vclient2' });
    const second = await linkLocal(node, 'vclient2');
    await linkLocal(client, 'eth1');
    // Until the next rescan (every 2 s) nothing is bound there and the kernel refuses at once.
    const deadline = Date.now() + 10_000;
    let d = await dig(client, `${second}%eth1`, '+notcp', `web.prod.svc.${ZONE}`, 'AAAA');
    while (d.status !== 'NOERROR' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      d = await dig(client, `${second}%eth1`, '+notcp', `web.prod.svc.${ZONE}`, 'AAAA');
    }
    expect(d.status, d.raw).toBe('NOERROR');
    expect(d.answers).toEqual(['fd00:96::10']);
  });
});
