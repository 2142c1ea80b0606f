// The DNS server on a node as real nodes are: systemd-resolved's stub holds 127.0.0.53:53 and
// /etc/resolv.conf names only that stub. A dnsmasq plays the stub (it answers example.test with
// 192.0.2.53 so we can tell who answered); another namespace holds the real upstream, the one
// systemd-resolved's own resolv.conf would name (192.0.2.1).
//
// A third upstream (10.0.1.54, a plain UDP socket) is hostile: before its true answer it sends
// forged ones, each wrong in one way, to see that none is taken or cached.
//
//   pod (10.0.0.2) ──veth── node (10.0.0.10, 10.0.1.1; stub 127.0.0.53) ──veth── upstream (10.0.1.53, 10.0.1.54)
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
const SPOOFER = '10.0.1.54';
const PODS = ['--cluster-cidr', '10.0.0.0/24'];
const NO_HTTP = ['--health-listen', '', '--ready-listen', '', '--metrics-listen', ''];

// The hostile upstream. The first label of the question picks the forgery; the true answer
// (192.0.2.1) follows 100 ms later from the right address, port, ID and question.
const SPOOF_UPSTREAM = `
const dgram = require('node:dgram');
const pkt = require('dns-packet');
const main = dgram.createSocket('udp4');
const other = dgram.createSocket('udp4');
const flip = (s) => s.replace(/[a-z]/gi, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()));
const reply = (q, { id = q.id, questions = q.questions, rcode = 0, ip = '192.0.2.1' } = {}) => pkt.encode({
  type: 'response', id, flags: pkt.RECURSION_DESIRED | pkt.RECURSION_AVAILABLE | rcode, questions,
  answers: ip ? [{ name: q.questions[0].name, type: 'A', ttl: 300, data: ip }] : [],
});
main.on('message', (m, r) => {
  const q = pkt.decode(m);
  const qq = q.questions[0];
  console.log('query ' + qq.name + ' from ' + r.port);
  const send = (b, sock = main) => sock.send(b, r.port, r.address);
  switch (qq.name.split('.')[0].toLowerCase()) {
    case 'port': send(reply(q, { ip: '6.6.6.1' }), other); break;
    case 'id': send(reply(q, { id: q.id ^ 1, ip: '6.6.6.2' })); break;
    case 'case': send(reply(q, { questions: [{ ...qq, name: flip(qq.name) }], ip: '6.6.6.3' })); break;
    case 'type': send(reply(q, { questions: [{ ...qq, type: 'AAAA' }], ip: '6.6.6.4' })); break;
    case 'class': send(reply(q, { questions: [{ ...qq, class: 'CH' }], ip: '6.6.6.5' })); break;
    case 'noquestion': send(reply(q, { questions: [], rcode: 3, ip: '' })); break;
  }
  setTimeout(() => send(reply(q)), 100);
});
other.bind(5300, '${SPOOFER}');
main.bind(53, '${SPOOFER}', () => console.log('spoofer ready'));
`;

/** An HTTP GET from inside `ns`: the status, or the error's code when nothing answers. */
async function httpGet(ns: Namespace, url: string): Promise<string> {
  const script = `fetch(${JSON.stringify(url)}, { signal: AbortSignal.timeout(3000) }).then((r) => console.log(r.status), (e) => console.log(e.cause?.code ?? e.name))`;
  return (await ns.exec('node', ['-e', script])).stdout.trim();
}

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
    await pod.addRoute('default', 'via', NODE);
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
    // The same, and what systemd-resolved keeps in /run/systemd/resolve/resolv.conf, as files
    // the server is pointed at (--resolv-conf, --systemd-resolv-conf).
    writeFileSync(join(dir, 'resolv.conf'), `nameserver ${STUB}\noptions edns0 trust-ad\n`);
    writeFileSync(join(dir, 'systemd-resolv.conf'), `# This is /run/systemd/resolve/resolv.conf managed by systemd-resolved\nnameserver ${UPSTREAM}\n`);
  });

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a wildcard listener starts beside the stub and forwards through it (127.0.0.53 is not us)', async () => {
    const server = node.spawn('node', [BIN, 'dns', '--manifests', dir, ...PODS, '--listen', '0.0.0.0:53', ...NO_HTTP], { label: 'dns-wildcard' });
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
    const server = node.spawn('node', [
      BIN, 'dns', '--manifests', dir, ...PODS, '--listen', `${NODE}:53`, '--resolv-conf', join(dir, 'resolv.conf'),
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

  it('takes only the reply to the question asked, from the upstream asked, on a fresh source port per query; caches no forgery', async () => {
    const up = topo.namespaces.find((n) => n.name.endsWith('-up'))!;
    await up.ip('addr', 'add', `${SPOOFER}/24`, 'dev', 'eth0');
    const spoofer = up.spawn('node', ['-e', SPOOF_UPSTREAM], { label: 'spoofer' });
    await spoofer.waitForOutput(/spoofer ready/);
    const server = node.spawn('node', [BIN, 'dns', '--manifests', dir, ...PODS, '--listen', `${NODE}:53`, '--upstream', `${SPOOFER}:53`, ...NO_HTTP], { label: 'dns-spoofed' });
    try {
      await server.waitForOutput(/dns serving/);
      const kinds = ['port', 'id', 'Case', 'type', 'class', 'noquestion'];
      for (const kind of kinds) {
        const name = `${kind}.Example.test`;
        expect(await dig(pod, `@${NODE}`, name, 'A'), `${kind}: first answer`).toEqual({ status: 'NOERROR', answers: ['192.0.2.1'] });
        expect(await dig(pod, `@${NODE}`, name, 'A'), `${kind}: from the cache`).toEqual({ status: 'NOERROR', answers: ['192.0.2.1'] });
      }
      const asked = spoofer.stdout.split('\n').filter((l) => l.startsWith('query '));
      // Each name reached the upstream once: the second answer came from the cache, and it was
      // the true one.
      expect(asked.map((l) => l.split(' ')[1])).toEqual(kinds.map((k) => `${k}.Example.test`));
      // Each query left from a port of its own, so a forger must guess it as well as the ID.
      expect(new Set(asked.map((l) => l.split(' ')[3])).size).toBe(kinds.length);
    } finally {
      await server.stop();
      await spoofer.stop();
    }
  });

  it('with its default listen addresses, starts beside the stub and serves pods on 169.254.20.10, not on node addresses', async () => {
    const server = node.spawn('node', [
      BIN, 'dns', '--manifests', dir, ...PODS, '--resolv-conf', join(dir, 'resolv.conf'), '--systemd-resolv-conf', join(dir, 'systemd-resolv.conf'),
    ], { label: 'dns-defaults' });
    try {
      await server.waitForOutput(/dns serving/);
      expect(await dig(pod, '@169.254.20.10', 'web.prod.svc.cluster.local', 'A')).toEqual({ status: 'NOERROR', answers: ['10.96.0.10'] });
      expect(await dig(pod, '@169.254.20.10', '+tcp', 'www.example.test', 'A')).toMatchObject({ status: 'NOERROR' });
      // Nothing listens on the node's own addresses, for DNS or HTTP.
      expect((await dig(pod, `@${NODE}`, 'web.prod.svc.cluster.local', 'A')).status).toMatch(/^no reply/);
      for (const port of [8080, 8181, 9153]) expect(await httpGet(pod, `http://${NODE}:${port}/`)).toBe('ECONNREFUSED');
      // Health, readiness and metrics are on the node's loopback, where kubelet probes them.
      expect(await httpGet(node, 'http://127.0.0.1:8080/health')).toBe('200');
      expect(await httpGet(node, 'http://127.0.0.1:8181/ready')).toBe('200');
      expect(await httpGet(node, 'http://127.0.0.1:9153/metrics')).toBe('200');
    } finally {
      await server.stop();
    }
  });

  it('answers REFUSED to sources outside --allow-from (default: cluster CIDRs, node addresses, loopback), over UDP and TCP', async () => {
    const up = topo.namespaces.find((n) => n.name.endsWith('-up'))!;
    const start = async (label: string, ...flags: string[]) => {
      const p = node.spawn('node', [BIN, 'dns', '--manifests', dir, '--listen', `${NODE}:53`, '--listen', '10.0.1.1:53', '--listen', '127.0.0.1:53', '--upstream', `${UPSTREAM}:53`, ...NO_HTTP, ...flags], { label });
      await p.waitForOutput(/dns serving/);
      return p;
    };
    const status = async (ns: Namespace, at: string, ...args: string[]) => (await dig(ns, `@${at}`, ...args)).status;
    let server = await start('dns-acl-default', '--cluster-cidr', '10.0.0.0/24');
    try {
      for (const transport of ['+notcp', '+tcp']) {
        expect(await status(pod, NODE, transport, 'web.prod.svc.cluster.local', 'A')).toBe('NOERROR'); // a pod
        expect(await status(node, '10.0.1.1', transport, 'www.example.test', 'A')).toBe('NOERROR'); // the node itself
        expect(await status(node, '127.0.0.1', transport, 'www.example.test', 'A')).toBe('NOERROR'); // loopback
        // 10.0.1.53 is none of those: no recursion, and no cluster names either.
        expect(await status(up, '10.0.1.1', transport, 'www.example.test', 'A')).toBe('REFUSED');
        expect(await status(up, '10.0.1.1', transport, 'web.prod.svc.cluster.local', 'A')).toBe('REFUSED');
      }
    } finally {
      await server.stop();
    }
    server = await start('dns-acl-explicit', '--allow-from', '10.0.1.0/24');
    try {
      expect(await status(up, '10.0.1.1', 'www.example.test', 'A')).toBe('NOERROR');
      expect(await status(pod, NODE, 'web.prod.svc.cluster.local', 'A')).toBe('REFUSED');
    } finally {
      await server.stop();
    }
  });
});
