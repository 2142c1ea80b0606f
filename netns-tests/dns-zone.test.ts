// Cluster DNS, proven with real dig: a node namespace runs `kube-dataplane dns` on a manifest
// directory, a pod namespace resolves through its own resolv.conf, and an upstream namespace
// runs dnsmasq as the only resolver outside the cluster.
//
//   pod (10.0.0.2) ──veth── node (10.0.0.10 DNS, 10.0.1.1) ──veth── upstream (10.0.1.53 dnsmasq)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Topology, type Namespace, type Process } from './harness/netns.js';
import { fixtureServices, serviceObjects, toYaml } from '../bench/dns/fixtures.js';

const BIN = resolve('dist/cmd/kube-dataplane.js');
const DNS = '10.0.0.10';
const DNS2 = '10.0.0.11';
const DNS6 = 'fd00::10';
const UPSTREAM = '10.0.1.53';
const ZONE = 'cluster.local';
// The pod network: --allow-from's default lets these ask (and REFUSES everyone else).
const PODS = ['--cluster-cidr', '10.0.0.0/24,fd00::/64'];

interface Dig {
  status: string;
  flags: string[];
  answers: string[][];
  authority: string[][];
  raw: string;
}

/** Runs dig in `ns` and reads its reply: status, header flags, answer and authority rows. */
async function dig(ns: Namespace, ...args: string[]): Promise<Dig> {
  const r = await ns.exec('dig', ['+time=3', '+tries=1', '+nocookie', ...args], { allowFailure: true, timeoutMs: 20_000 });
  const raw = r.stdout;
  const status = /status: (\w+)/.exec(raw)?.[1] ?? `no reply (${r.code})`;
  const flags = (/;; flags: ([^;]*);/.exec(raw)?.[1] ?? '').trim().split(/\s+/);
  const section = (name: string) => {
    const m = new RegExp(`;; ${name} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(raw);
    return m ? m[1].split('\n').filter(Boolean).map((l) => l.split(/\s+/)) : [];
  };
  return { status, flags, answers: section('ANSWER'), authority: section('AUTHORITY'), raw };
}

const values = (d: Dig, type?: string) => d.answers.filter((a) => !type || a[3] === type).map((a) => a.slice(4).join(' ')).sort();

describe('cluster DNS from a pod namespace', () => {
  let topo: Topology;
  let node: Namespace;
  let pod: Namespace;
  let upstream: Namespace;
  let server: Process;
  let dnsmasq: Process;
  let dir: string;

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first (npx tsc -p tsconfig.json)`);
    dir = mkdtempSync(join(tmpdir(), 'kdp-dns-'));
    writeFileSync(join(dir, 'services.yaml'), toYaml(fixtureServices().flatMap(serviceObjects)));
    // A headless service too large for one TCP message (5000 addresses: ~80 KB of answers).
    const huge = Array.from({ length: 5000 }, (_, i) => ({ ip: `10.1.${i >> 8}.${i & 255}` }));
    writeFileSync(join(dir, 'huge.yaml'), toYaml(serviceObjects({ namespace: 'prod', name: 'huge', headless: true, ports: [{ name: 'http', port: 80 }], endpoints: huge })));
    topo = await Topology.create();
    node = await topo.namespace('node');
    pod = await topo.namespace('pod');
    upstream = await topo.namespace('up');
    await topo.veth({ ns: pod, ifname: 'eth0', addresses: ['10.0.0.2/24', 'fd00::2/64'] }, { ns: node, ifname: 'vpod', addresses: [`${DNS}/24`, `${DNS2}/24`, `${DNS6}/64`] });
    await topo.veth({ ns: node, ifname: 'vup', addresses: ['10.0.1.1/24'] }, { ns: upstream, ifname: 'eth0', addresses: [`${UPSTREAM}/24`] });
    pod.writeResolvConf(`nameserver ${DNS}\nsearch prod.svc.${ZONE} svc.${ZONE} ${ZONE}\noptions ndots:5\n`);
    dnsmasq = upstream.spawn('dnsmasq', [
      '--no-daemon', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--log-queries', '--log-facility=-',
      `--listen-address=${UPSTREAM}`, '--bind-interfaces', '--port=53', `--pid-file=${join(dir, 'dnsmasq.pid')}`,
      '--address=/example.test/192.0.2.1', '--address=/example.test/2001:db8::1', '--local-ttl=60',
      `--txt-record=big.example.test,${Array.from({ length: 8 }, (_, i) => `${i}${'x'.repeat(199)}`).join(',')}`,
    ], { label: 'dnsmasq' });
    await dnsmasq.waitForOutput(/started/);
    server = node.spawn('node', [
      BIN, 'dns', '--manifests', dir, ...PODS, '--listen', `${DNS}:53`, '--listen', `[${DNS6}]:53`, '--upstream', `${UPSTREAM}:53`,
      '--health-listen', `${DNS}:8080`, '--ready-listen', `${DNS}:8181`, '--metrics-listen', `${DNS}:9153`,
    ], { label: 'dns' });
    await server.waitForOutput(/dns serving/);
  });

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('answers A and AAAA of a dual-stack ClusterIP service over UDP and TCP, authoritatively', async () => {
    for (const transport of ['+notcp', '+tcp']) {
      const a = await dig(pod, transport, `web.prod.svc.${ZONE}`, 'A');
      expect(a.status).toBe('NOERROR');
      expect(a.flags).toEqual(expect.arrayContaining(['qr', 'aa', 'rd', 'ra']));
      expect(values(a, 'A')).toEqual(['10.96.0.10']);
      const aaaa = await dig(pod, transport, `web.prod.svc.${ZONE}`, 'AAAA');
      expect(values(aaaa, 'AAAA')).toEqual(['fd00:96::10']);
    }
  });

  it('listens on IPv6 too, over UDP and TCP', async () => {
    for (const transport of ['+notcp', '+tcp']) {
      const d = await dig(pod, `@${DNS6}`, transport, `web.prod.svc.${ZONE}`, 'AAAA');
      expect(values(d, 'AAAA')).toEqual(['fd00:96::10']);
    }
  });

  it('answers from the address asked when listening on a wildcard, including addresses added later', async () => {
    const wild = node.spawn('node', [
      BIN, 'dns', '--manifests', dir, ...PODS, '--listen', '0.0.0.0:5353', '--upstream', `${UPSTREAM}:53`,
      '--health-listen', '', '--ready-listen', '', '--metrics-listen', '',
    ], { label: 'dns-wildcard' });
    try {
      await wild.waitForOutput(/dns serving/);
      // 10.0.0.11 is a secondary address: a reply from a plain wildcard socket would leave
      // from 10.0.0.10 and dig would drop it.
      for (const at of [DNS, DNS2]) expect(values(await dig(pod, `@${at}`, '-p', '5353', `web.prod.svc.${ZONE}`, 'A'), 'A')).toEqual(['10.96.0.10']);
      await node.ip('addr', 'add', '10.0.0.12/24', 'dev', 'vpod');
      let got: string[] = [];
      for (let i = 0; i < 20 && got.length === 0; i++) got = values(await dig(pod, '@10.0.0.12', '-p', '5353', `web.prod.svc.${ZONE}`, 'A'), 'A');
      expect(got).toEqual(['10.96.0.10']);
    } finally {
      await wild.stop();
    }
  });

  it('with --pods verified, answers pod names only for pods that exist in that namespace', async () => {
    const podDir = mkdtempSync(join(tmpdir(), 'kdp-dns-pods-'));
    writeFileSync(join(podDir, 'pod.yaml'), toYaml([{ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p1', namespace: 'prod' }, spec: {}, status: { podIP: '10.244.0.7', podIPs: [{ ip: '10.244.0.7' }] } }]));
    const verified = node.spawn('node', [
      BIN, 'dns', '--manifests', podDir, ...PODS, '--listen', `${DNS2}:5354`, '--pods', 'verified', '--upstream', `${UPSTREAM}:53`,
      '--health-listen', '', '--ready-listen', '', '--metrics-listen', '',
    ], { label: 'dns-verified' });
    try {
      await verified.waitForOutput(/dns serving/);
      const ask = (name: string) => dig(pod, `@${DNS2}`, '-p', '5354', name, 'A');
      expect(values(await ask(`10-244-0-7.prod.pod.${ZONE}`), 'A')).toEqual(['10.244.0.7']);
      expect((await ask(`10-244-0-7.other.pod.${ZONE}`)).status).toBe('NXDOMAIN');
      expect((await ask(`10-244-0-8.prod.pod.${ZONE}`)).status).toBe('NXDOMAIN');
      // A namespace with a pod has a name below it: NODATA with the SOA, never NXDOMAIN.
      const ns = await ask(`prod.pod.${ZONE}`);
      expect([ns.status, ns.answers.length, ns.authority.map((r) => r[3])]).toEqual(['NOERROR', 0, ['SOA']]);
    } finally {
      await verified.stop();
      rmSync(podDir, { recursive: true, force: true });
    }
  });

  it('keeps the question\'s case and matches case-insensitively', async () => {
    const d = await dig(pod, `WeB.PROD.svc.Cluster.Local`, 'A');
    expect(values(d, 'A')).toEqual(['10.96.0.10']);
    expect(d.answers[0][0]).toBe('WeB.PROD.svc.Cluster.Local.');
  });

  it('resolves a short name through the pod\'s search path', async () => {
    const d = await dig(pod, '+search', 'web', 'A');
    expect(values(d, 'A')).toEqual(['10.96.0.10']);
    const other = await dig(pod, '+search', 'web.staging', 'A');
    expect(values(other, 'A')).toEqual(['10.96.1.10']);
  });

  it('answers SRV for named ports, with the target addresses in the additional section', async () => {
    const d = await dig(pod, `_http._tcp.web.prod.svc.${ZONE}`, 'SRV', '+additional');
    expect(values(d, 'SRV')).toEqual([`0 100 80 web.prod.svc.${ZONE}.`]);
    expect(d.raw).toMatch(/ADDITIONAL SECTION:[\s\S]*10\.96\.0\.10/);
    const headless = await dig(pod, `_mysql._tcp.db.prod.svc.${ZONE}`, 'SRV');
    expect(values(headless, 'SRV')).toEqual(['10-244-1-8', 'db-0', 'db-1', 'fd00-244--8'].map((h) => `0 25 3306 ${h}.db.prod.svc.${ZONE}.`));
  });

  it('answers PTR for cluster IPs (IPv4 and IPv6 nibbles) and headless endpoints', async () => {
    expect(values(await dig(pod, '-x', '10.96.0.10'), 'PTR')).toEqual([`web.prod.svc.${ZONE}.`]);
    expect(values(await dig(pod, '-x', 'fd00:96::10'), 'PTR')).toEqual([`web.prod.svc.${ZONE}.`]);
    expect(values(await dig(pod, '-x', '10.244.1.5'), 'PTR')).toEqual([`db-0.db.prod.svc.${ZONE}.`]);
  });

  it('answers the endpoint names of a ClusterIP service and their PTRs, as CoreDNS does', async () => {
    expect(values(await dig(pod, `web-0.web.staging.svc.${ZONE}`, 'A'), 'A')).toEqual(['10.244.4.1']);
    expect(values(await dig(pod, '-x', '10.244.4.1'), 'PTR')).toEqual([`web-0.web.staging.svc.${ZONE}.`]);
    expect((await dig(pod, `web-1.web.staging.svc.${ZONE}`, 'A')).status).toBe('NXDOMAIN');
  });

  it('names only the addresses it serves on as the zone\'s NS (the node has others)', async () => {
    const ns = await dig(pod, `ns.dns.${ZONE}`, 'A');
    expect(values(ns, 'A')).toEqual([DNS]);
    expect(values(await dig(pod, `ns.dns.${ZONE}`, 'AAAA'), 'AAAA')).toEqual([DNS6]);
    const apex = await dig(pod, ZONE, 'NS', '+additional');
    expect(values(apex, 'NS')).toEqual([`ns.dns.${ZONE}.`]);
    const glue = /ADDITIONAL SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(apex.raw)?.[1] ?? '';
    expect(glue.split('\n').filter((l) => /\sIN\s+(A|AAAA)\s/.test(l)).map((l) => l.split(/\s+/)[4]).sort()).toEqual([DNS, DNS6]);
  });

  it('answers headless services per ready endpoint, by hostname or dashed address', async () => {
    expect(values(await dig(pod, `db.prod.svc.${ZONE}`, 'A'), 'A')).toEqual(['10.244.1.5', '10.244.1.6', '10.244.1.8']);
    expect(values(await dig(pod, `db-1.db.prod.svc.${ZONE}`, 'A'), 'A')).toEqual(['10.244.1.6']);
    expect(values(await dig(pod, `10-244-1-8.db.prod.svc.${ZONE}`, 'A'), 'A')).toEqual(['10.244.1.8']);
    expect((await dig(pod, `db-2.db.prod.svc.${ZONE}`, 'A')).status).toBe('NXDOMAIN'); // not ready
    expect((await dig(pod, `empty.prod.svc.${ZONE}`, 'A')).status).toBe('NXDOMAIN'); // no ready endpoint
    expect(values(await dig(pod, `pub.prod.svc.${ZONE}`, 'A'), 'A')).toEqual(['10.244.3.1']); // publishNotReadyAddresses
  });

  it('gives NXDOMAIN and NODATA with the zone SOA in the authority section', async () => {
    const nx = await dig(pod, `nope.prod.svc.${ZONE}`, 'A');
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.flags).toContain('aa');
    expect(nx.authority.map((r) => [r[0], r[3]])).toEqual([[`${ZONE}.`, 'SOA']]);
    const nodata = await dig(pod, `v4only.prod.svc.${ZONE}`, 'AAAA');
    expect(nodata.status).toBe('NOERROR');
    expect(nodata.answers).toEqual([]);
    expect(nodata.authority.map((r) => r[3])).toEqual(['SOA']);
    const ent = await dig(pod, `prod.svc.${ZONE}`, 'A');
    expect([ent.status, ent.answers.length, ent.authority.map((r) => r[3])]).toEqual(['NOERROR', 0, ['SOA']]);
  });

  it('answers a search-path miss from the zone without asking the upstream', async () => {
    const name = `web.prod.svc.${ZONE}.prod.svc.${ZONE}`;
    const d = await dig(pod, name, 'A');
    expect(d.status).toBe('NXDOMAIN');
    expect(dnsmasq.stdout + dnsmasq.stderr).not.toContain(name);
  });

  it('serves dns-version and pod records', async () => {
    expect(values(await dig(pod, `dns-version.${ZONE}`, 'TXT'), 'TXT')).toEqual(['"1.1.0"']);
    expect(values(await dig(pod, `10-244-0-7.prod.pod.${ZONE}`, 'A'), 'A')).toEqual(['10.244.0.7']);
    expect(values(await dig(pod, `fd00-244--7.prod.pod.${ZONE}`, 'AAAA'), 'AAAA')).toEqual(['fd00:244::7']);
  });

  it('forwards other names to the upstream, and chases an ExternalName\'s CNAME there', async () => {
    expect(values(await dig(pod, 'www.example.test', 'A'), 'A')).toEqual(['192.0.2.1']);
    expect(values(await dig(pod, '+tcp', 'www.example.test', 'AAAA'), 'AAAA')).toEqual(['2001:db8::1']);
    const ext = await dig(pod, `ext.prod.svc.${ZONE}`, 'A');
    expect(values(ext, 'CNAME')).toEqual(['www.example.test.']);
    expect(values(ext, 'A')).toEqual(['192.0.2.1']);
  });

  it('counts down the TTLs of an ExternalName\'s target chased from the cache', async () => {
    const ttl = async () => Number((await dig(pod, `ext.prod.svc.${ZONE}`, 'A')).answers.find((a) => a[3] === 'A')?.[1]);
    const first = await ttl();
    expect(first).toBeGreaterThan(0);
    // TTLs count in whole seconds: poll until one has passed in the cache, for at most 3 s.
    let later = first;
    for (const t0 = Date.now(); later === first && Date.now() - t0 < 3000; ) later = await ttl();
    expect(later).toBeLessThan(first);
  });

  it('retries over TCP when the upstream truncates, and gives the client the whole answer', async () => {
    const d = await dig(pod, '+tcp', 'big.example.test', 'TXT');
    expect(d.status).toBe('NOERROR');
    expect(d.flags).not.toContain('tc');
    expect(d.answers.filter((a) => a[3] === 'TXT')).toHaveLength(1);
    expect(d.answers[0].slice(4)).toHaveLength(8);
    const udp = await dig(pod, '+ignore', 'big.example.test', 'TXT');
    expect(udp.flags).toContain('tc');
  });

  it('answers from the cache: the upstream sees a forwarded name once', async () => {
    const name = 'cached.example.test';
    for (let i = 0; i < 3; i++) expect(values(await dig(pod, name, 'A'), 'A')).toEqual(['192.0.2.1']);
    const asked = (dnsmasq.stdout + dnsmasq.stderr).split('\n').filter((l) => l.includes(`query[A] ${name}`));
    expect(asked).toHaveLength(1);
  });

  it('truncates a 100-endpoint headless answer over UDP and completes it over TCP', async () => {
    const udp = await dig(pod, '+ignore', '+bufsize=1232', `big.prod.svc.${ZONE}`, 'A');
    expect(udp.flags).toContain('tc');
    const tcp = await dig(pod, '+tcp', `big.prod.svc.${ZONE}`, 'A');
    expect(tcp.flags).not.toContain('tc');
    expect(values(tcp, 'A')).toHaveLength(100);
    const plain = await dig(pod, '+ignore', '+noedns', `big.prod.svc.${ZONE}`, 'A');
    expect(plain.flags).toContain('tc');
    const auto = await dig(pod, `big.prod.svc.${ZONE}`, 'A'); // dig retries over TCP by itself
    expect(values(auto, 'A')).toHaveLength(100);
  });

  it('answers a headless service too large even for TCP with as many addresses as fit, as CoreDNS does', async () => {
    const tcp = await dig(pod, '+tcp', '+ignore', `huge.prod.svc.${ZONE}`, 'A');
    expect(tcp.status).toBe('NOERROR');
    expect(tcp.flags).toContain('tc');
    expect(values(tcp, 'A').length).toBeGreaterThan(4000);
    expect(values(tcp, 'A').every((a) => /^10\.1\.\d+\.\d+$/.test(a))).toBe(true);
  });

  it('refuses zone transfers and rejects other opcodes', async () => {
    expect((await dig(pod, '+tcp', ZONE, 'AXFR')).raw).toMatch(/Transfer failed|REFUSED/);
    expect((await dig(pod, '+opcode=2', `web.prod.svc.${ZONE}`, 'A')).status).toBe('NOTIMP');
  });

  it('shows a manifest edit in answers within a second', async () => {
    const extra = serviceObjects({ namespace: 'prod', name: 'late', clusterIPs: ['10.96.0.55'], ports: [{ name: 'http', port: 80 }] });
    expect((await dig(pod, `late.prod.svc.${ZONE}`, 'A')).status).toBe('NXDOMAIN');
    writeFileSync(join(dir, 'late.yaml'), toYaml(extra));
    const t0 = Date.now();
    let seen: string[] = [];
    while (Date.now() - t0 < 1000) {
      seen = values(await dig(pod, `late.prod.svc.${ZONE}`, 'A'), 'A');
      if (seen.length) break;
    }
    expect(seen).toEqual(['10.96.0.55']);
    rmSync(join(dir, 'late.yaml'));
    const t1 = Date.now();
    let status = '';
    while (Date.now() - t1 < 1000) {
      status = (await dig(pod, `late.prod.svc.${ZONE}`, 'A')).status;
      if (status === 'NXDOMAIN') break;
    }
    expect(status).toBe('NXDOMAIN');
  });

  it('serves /health, /ready and CoreDNS metrics', async () => {
    const get = async (url: string) => {
      const script = `fetch(${JSON.stringify(url)}).then(async r => { process.stdout.write(r.status + '\\n' + await r.text()) })`;
      return (await pod.exec('node', ['-e', script])).stdout;
    };
    expect(await get(`http://${DNS}:8080/health`)).toMatch(/^200\n/);
    expect(await get(`http://${DNS}:8181/ready`)).toMatch(/^200\n/);
    const metrics = await get(`http://${DNS}:9153/metrics`);
    expect(metrics).toMatch(/coredns_dns_requests_total\{server="dns:\/\/10\.0\.0\.10:53",zone="cluster\.local\.",view="",proto="udp",family="1",type="A"\} \d+/);
    expect(metrics).toMatch(/coredns_dns_requests_total\{server="dns:\/\/\[fd00::10\]:53",zone="cluster\.local\.",view="",proto="tcp",family="2",type="AAAA"\} \d+/);
    expect(metrics).toMatch(/coredns_dns_responses_total\{[^}]*rcode="NXDOMAIN"[^}]*\} \d+/);
    expect(metrics).toMatch(/coredns_dns_request_duration_seconds_bucket/);
    expect(metrics).toMatch(/coredns_cache_hits_total\{[^}]*type="success"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/coredns_proxy_request_duration_seconds_count\{proxy_name="forward",to="10\.0\.1\.53:53",rcode="NOERROR"\} [1-9]/);
  });

  it('fails over from a dead upstream, and answers SERVFAIL in about 2 s when none answers', async () => {
    // A second server whose first upstream does not exist.
    const second = node.spawn('node', [
      BIN, 'dns', '--manifests', dir, ...PODS, '--listen', `${DNS2}:53`, '--upstream', '10.0.1.99:53', '--upstream', `${UPSTREAM}:53`,
      '--health-listen', '', '--ready-listen', '', '--metrics-listen', '',
    ], { label: 'dns2' });
    await second.waitForOutput(/dns serving/);
    for (let i = 0; i < 4; i++) {
      const d = await dig(pod, `@${DNS2}`, `n${i}.example.test`, 'A');
      expect(values(d, 'A')).toEqual(['192.0.2.1']);
    }
    await dnsmasq.stop();
    const t0 = Date.now();
    const d = await dig(pod, `@${DNS2}`, '+time=6', 'gone.example.test', 'A');
    expect(d.status).toBe('SERVFAIL');
    expect(Date.now() - t0).toBeLessThan(4000);
    // Cluster names do not depend on the upstreams.
    expect(values(await dig(pod, `@${DNS2}`, `web.prod.svc.${ZONE}`, 'A'), 'A')).toEqual(['10.96.0.10']);
    await second.stop();
    expect(server.running).toBe(true);
  });
});
