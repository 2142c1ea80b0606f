// The DNS server on a node as real nodes are: systemd-resolved's stub holds 127.0.0.53:53 and
// /etc/resolv.conf names only that stub. A dnsmasq plays the stub (it answers example.test with
// 192.0.2.53 so we can tell who answered); another namespace holds the real upstream, the one
// systemd-resolved's own resolv.conf would name (192.0.2.1).
//
//   pod (10.0.0.2) ──veth── node (10.0.0.10, 10.0.1.1; stub 127.0.0.53) ──veth── upstream (10.0.1.53)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Topology, type Namespace, type Process } from './harness/netns.js';
import { fixtureServices, serviceObjects, toYaml } from '../bench/dns/fixtures.js';

const BIN = resolve('dist/cmd/kube-dataplane.js');
const NODE = '10.0.0.10';
const UPSTREAM = '10.0.1.53';
const STUB = '127.0.0.53';
const NO_HTTP = ['--health-listen', '', '--ready-listen', '', '--metrics-listen', ''];

async function dig(ns: Namespace, ...args: string[]): Promise<{ status: string; answers: string[] }> {
  const r = await ns.exec('dig', ['+time=2', '+tries=1', '+nocookie', '+noall', '+comments', '+answer', ...args], { allowFailure: true, timeoutMs: 20_000 });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? `no reply (${r.code})`;
  const answers = r.stdout.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.split(/\s+/).slice(4).join(' ')).sort();
  return { status, answers };
}

describe('DNS on a node with systemd-resolved', () => {
  let topo: Topology;
  let node: Namespace;
  let pod: Namespace;
  let dir: string;

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run make build first`);
    dir = mkdtempSync(join(tmpdir(), 'kdp-dns-node-'));
    writeFileSync(join(dir, 'services.yaml'), toYaml(fixtureServices().flatMap(serviceObjects)));
    topo = await Topology.create();
    node = await topo.namespace('node');
    pod = await topo.namespace('pod');
    const upstream = await topo.namespace('up');
    await topo.veth({ ns: pod, ifname: 'eth0', addresses: ['10.0.0.2/24'] }, { ns: node, ifname: 'vpod', addresses: [`${NODE}/24`] });
    await topo.veth({ ns: node, ifname: 'vup', addresses: ['10.0.1.1/24'] }, { ns: upstream, ifname: 'eth0', addresses: [`${UPSTREAM}/24`] });
    const dnsmasq = (ns: Namespace, at: string, answer: string, label: string): Process =>
      ns.spawn('dnsmasq', [
        '--no-daemon', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', `--listen-address=${at}`, '--bind-interfaces', '--port=53',
        `--pid-file=${join(dir, `${label}.pid`)}`, `--address=/example.test/${answer}`, '--log-facility=-',
      ], { label });
    const stub = dnsmasq(node, STUB, '192.0.2.53', 'stub');
    const real = dnsmasq(upstream, UPSTREAM, '192.0.2.1', 'upstream');
    await Promise.all([stub.waitForOutput(/started/), real.waitForOutput(/started/)]);
    // A veth gets its carrier a moment after both ends are up, and a wildcard listener binds
    // only running interfaces' addresses: wait for it rather than race it.
    for (let i = 0; i < 100 && !/\bUP\b/.test((await node.ip('-br', 'link', 'show', 'vpod')).stdout); i++) await new Promise((r) => setTimeout(r, 50));
    // What an Ubuntu node's /etc/resolv.conf says (ip netns exec mounts it over /etc/resolv.conf).
    node.writeResolvConf(`nameserver ${STUB}\noptions edns0 trust-ad\nsearch .\n`);
  });

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a wildcard listener starts beside the stub and forwards through it (127.0.0.53 is not us)', async () => {
    const server = node.spawn('node', [BIN, 'dns', '--manifests', dir, '--listen', '0.0.0.0:53', ...NO_HTTP], { label: 'dns-wildcard' });
    try {
      await server.waitForOutput(/dns serving/);
      const d = await dig(pod, `@${NODE}`, 'www.example.test', 'A');
      expect(d).toEqual({ status: 'NOERROR', answers: ['192.0.2.53'] });
      expect(await dig(pod, `@${NODE}`, '+tcp', 'web.prod.svc.cluster.local', 'A')).toEqual({ status: 'NOERROR', answers: ['10.96.0.10'] });
    } finally {
      await server.stop();
    }
  });

  it('reads systemd-resolved\'s own resolv.conf when resolv.conf names only the stub, and says so', async () => {
    writeFileSync(join(dir, 'resolv.conf'), `nameserver ${STUB}\noptions edns0 trust-ad\n`);
    writeFileSync(join(dir, 'systemd-resolv.conf'), `# This is /run/systemd/resolve/resolv.conf managed by systemd-resolved\nnameserver ${UPSTREAM}\n`);
    const server = node.spawn('node', [
      BIN, 'dns', '--manifests', dir, '--listen', `${NODE}:53`, '--resolv-conf', join(dir, 'resolv.conf'),
      '--systemd-resolv-conf', join(dir, 'systemd-resolv.conf'), ...NO_HTTP,
    ], { label: 'dns-systemd' });
    try {
      await server.waitForOutput(/dns serving/);
      expect(server.stdout + server.stderr).toMatch(new RegExp(`upstreams from resolv.conf path=${join(dir, 'systemd-resolv.conf')} reason=.*only systemd-resolved's stub.* upstreams=${UPSTREAM}:53`));
      expect(await dig(pod, `@${NODE}`, 'www.example.test', 'A')).toEqual({ status: 'NOERROR', answers: ['192.0.2.1'] });
    } finally {
      await server.stop();
    }
  });
});
