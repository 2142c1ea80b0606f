// `kube-dataplane dns --corefile`: the Corefile kubeadm installs, unchanged, and a customised one
// with a stub domain, proven with real dig from a pod; and a bad Corefile refused with its file
// and line. The upstreams are dnsmasq in a namespace of their own: the node's resolver, and a
// corporate zone's own server that also answers the public test name differently, so an answer
// says which one was asked. A DNS-over-TLS upstream (dot-upstream.mjs) listens on the corporate
// address's port 853.
//
//   pod (10.0.0.2) ──veth── node (10.0.0.10) ──veth── upstream (10.0.1.53 resolver, 10.0.1.54 corp)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Topology, type Namespace, type Process } from './harness/netns.js';
import { fixtureServices, serviceObjects, toYaml } from '../bench/dns/fixtures.js';

const BIN = resolve('dist/cmd/kube-dataplane.js');
const KUBEADM = resolve('dns/corefile/fixtures/kubeadm.Corefile');
const DOT_UPSTREAM = resolve('netns-tests/dot-upstream.mjs');
const DOH_UPSTREAM = resolve('netns-tests/doh-upstream.mjs');
const NODE = '10.0.0.10';
const RESOLVER = '10.0.1.53';
const CORP = '10.0.1.54';

async function dig(ns: Namespace, ...args: string[]): Promise<{ status: string; answers: string[][] }> {
  const r = await ns.exec('dig', ['+time=3', '+tries=1', '+nocookie', ...args], { allowFailure: true, timeoutMs: 20_000 });
  const status = /status: (\w+)/.exec(r.stdout)?.[1] ?? `no reply (${r.code})`;
  const m = /;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(r.stdout);
  return { status, answers: m ? m[1].split('\n').filter(Boolean).map((l) => l.split(/\s+/)) : [] };
}
async function digRaw(ns: Namespace, ...args: string[]): Promise<string> {
  return (await ns.exec('dig', ['+time=3', '+tries=1', '+nocookie', '+nocmd', '+nostats', ...args], { allowFailure: true, timeoutMs: 20_000 })).stdout;
}
const values = (d: { answers: string[][] }, type: string) => d.answers.filter((a) => a[3] === type).map((a) => a.slice(4).join(' ')).sort();

describe('dns --corefile', () => {
  let topo: Topology;
  let node: Namespace;
  let pod: Namespace;
  let up: Namespace;
  let dir: string;
  const upstreams: Process[] = [];

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first`);
    dir = mkdtempSync(join(tmpdir(), 'kdp-corefile-'));
    writeFileSync(join(dir, 'services.yaml'), toYaml(fixtureServices().flatMap(serviceObjects)));
    // The pod namespace's own Pod object (for `pods verified` and autopath).
    const clientPod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'client', namespace: 'prod' }, spec: {}, status: { podIP: '10.0.0.2', podIPs: [{ ip: '10.0.0.2' }] } };
    writeFileSync(join(dir, 'pods.yaml'), toYaml([clientPod]));
    topo = await Topology.create();
    node = await topo.namespace('node');
    pod = await topo.namespace('pod');
    up = await topo.namespace('up');
    // Made from the node's side: made from the pod's, the node's end can keep NO-CARRIER in its
    // flags, and a wildcard listener (Node's interface list) skips an interface not running.
    await topo.veth({ ns: node, ifname: 'vpod', addresses: [`${NODE}/24`] }, { ns: pod, ifname: 'eth0', addresses: ['10.0.0.2/24'] });
    await topo.veth({ ns: node, ifname: 'vup', addresses: ['10.0.1.1/24'] }, { ns: up, ifname: 'eth0', addresses: [`${RESOLVER}/24`, `${CORP}/24`] });
    // The node's own resolver: what kubeadm's `forward . /etc/resolv.conf` reads.
    node.writeResolvConf(`nameserver ${RESOLVER}\n`);
    for (const [addr, answers] of [
      [RESOLVER, ['--address=/example.test/192.0.2.1', '--address=/corp.example/203.0.113.66', '--ptr-record=200.2.0.192.in-addr.arpa,printer.example.test']],
      [CORP, ['--address=/corp.example/198.51.100.7', '--address=/example.test/192.0.2.99']],
    ] as const) {
      const p = up.spawn('dnsmasq', [
        '--no-daemon', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--log-queries', '--log-facility=-',
        `--listen-address=${addr}`, '--bind-interfaces', '--port=53', `--pid-file=${join(dir, `dnsmasq-${addr}.pid`)}`, ...answers,
      ], { label: `dnsmasq ${addr}` });
      upstreams.push(p);
      await p.waitForOutput(/started/);
    }
  });

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const serve = (corefile: string, label: string) =>
    node.spawn('node', [BIN, 'dns', '--manifests', dir, '--cluster-cidr', '10.0.0.0/24', '--corefile', corefile], { label });

  it('serves the Corefile kubeadm installs, unchanged: cluster names with its TTL, the rest through resolv.conf, health, ready and metrics', async () => {
    const server = serve(KUBEADM, 'dns kubeadm');
    try {
      await server.waitForOutput(/dns serving/);
      const web = await dig(pod, `@${NODE}`, 'web.prod.svc.cluster.local', 'A');
      expect(values(web, 'A')).toEqual(['10.96.0.10']);
      expect(web.answers[0][1]).toBe('30'); // kubernetes { ttl 30 }
      expect(values(await dig(pod, `@${NODE}`, '10-244-0-7.prod.pod.cluster.local', 'A'), 'A')).toEqual(['10.244.0.7']); // pods insecure
      expect(values(await dig(pod, `@${NODE}`, '-x', '10.96.0.10'), 'PTR')).toEqual(['web.prod.svc.cluster.local.']);
      expect(values(await dig(pod, `@${NODE}`, 'www.example.test', 'A'), 'A')).toEqual(['192.0.2.1']);
      // loadbalance: a headless service's addresses come in changing orders, all of them each time.
      const orders = new Set<string>();
      for (let i = 0; i < 12; i++) {
        const d = await dig(pod, `@${NODE}`, 'db.prod.svc.cluster.local', 'A');
        expect(values(d, 'A')).toEqual(['10.244.1.5', '10.244.1.6', '10.244.1.8']);
        orders.add(d.answers.map((r) => r[4]).join());
      }
      expect(orders.size).toBeGreaterThan(1);
      // A reverse name of none of ours falls through to the resolver (fallthrough in-addr.arpa).
      expect(values(await dig(pod, `@${NODE}`, '-x', '192.0.2.200'), 'PTR')).toEqual(['printer.example.test.']);
      // health :8080, ready :8181 and prometheus :9153 on every address of the node.
      for (const [port, path, body] of [[8080, '/health', /OK/], [8181, '/ready', /OK/], [9153, '/metrics', /coredns_dns_requests_total/]] as const) {
        const r = await node.exec('curl', ['-fsS', `http://${NODE}:${port}${path}`], { allowFailure: true });
        expect([path, r.code, body.test(r.stdout)]).toEqual([path, 0, true]);
      }
      // What it accepts without an effect yet is said, with the file and line.
      // Every plugin of it is served: none is ignored; loop probed and found no loop.
      expect(server.stderr + server.stdout).not.toMatch(/ignored|not implemented/);
      expect(server.running).toBe(true);
    } finally {
      await server.stop(8_000); // the lame duck (5 s) delays the stop
    }
  });

  it('serves a stub domain from its own block and everything else from the root block', async () => {
    const corefile = join(dir, 'Corefile.stub');
    writeFileSync(corefile, [
      'corp.example:53 {',
      `  bind ${NODE}`,
      `  forward . ${CORP}`,
      '}',
      '.:53 {',
      `  bind ${NODE}`,
      '  errors',
      '  log',
      '  rewrite name db.corp.internal web.prod.svc.cluster.local answer auto',
      '  rewrite name regex ^(.*)\\.svc\\.example\\.org\\.$ {1}.svc.cluster.local answer auto',
      '  rewrite name suffix .legacy.test .example.test',
      `  hosts ${join(dir, 'hosts')} {`,
      '    10.1.2.3 printer.lan',
      '    fallthrough',
      '  }',
      '  kubernetes cluster.local in-addr.arpa ip6.arpa {',
      '    fallthrough in-addr.arpa ip6.arpa',
      '  }',
      `  forward . ${RESOLVER} {`,
      '    policy sequential',
      '    except blocked.example.test',
      '  }',
      '  cache 30',
      '}',
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'hosts'), '10.1.2.4 scanner.lan scanner\n');
    const server = serve(corefile, 'dns stub');
    try {
      await server.waitForOutput(/dns serving/);
      expect(values(await dig(pod, `@${NODE}`, 'intranet.corp.example', 'A'), 'A')).toEqual(['198.51.100.7']);
      expect(values(await dig(pod, `@${NODE}`, 'www.example.test', 'A'), 'A')).toEqual(['192.0.2.1']);
      expect(values(await dig(pod, `@${NODE}`, 'web.prod.svc.cluster.local', 'A'), 'A')).toEqual(['10.96.0.10']);
      // log: CoreDNS's common log format, with the pod as the client.
      expect(server.stdout).toMatch(/\[INFO\] 10\.0\.0\.2:\d+ - \d+ "A IN www\.example\.test\. udp \d+ false 1232" NOERROR qr,aa,rd,ra \d+ [\d.]+s/); // dnsmasq's own answer: aa
      // rewrite: the rewritten name answers, under the client's own name with answer auto.
      const exact = await digRaw(pod, `@${NODE}`, 'db.corp.internal', 'A');
      expect(exact).toMatch(/^db\.corp\.internal\.\s+\d+\s+IN\s+A\s+10\.96\.0\.10$/m);
      expect(exact).toMatch(/;db\.corp\.internal\.\s+IN\s+A/); // the question as asked
      expect(await digRaw(pod, `@${NODE}`, 'web.prod.svc.example.org', 'A')).toMatch(/^web\.prod\.svc\.example\.org\.\s+\d+\s+IN\s+A\s+10\.96\.0\.10$/m);
      // Without answer auto the answer keeps the rewritten name (the question is still restored).
      const plain = await digRaw(pod, `@${NODE}`, 'www.legacy.test', 'A');
      expect([/;www\.legacy\.test\.\s+IN\s+A/.test(plain), /^www\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1$/m.test(plain)]).toEqual([true, true]);
      // The query log has the client's names, before the rewrite.
      expect(server.stdout).toMatch(/"A IN db\.corp\.internal\. udp/);
      // hosts, before the cluster zone: inline lines and its file, PTRs, and the rest falls through.
      expect(values(await dig(pod, `@${NODE}`, 'printer.lan', 'A'), 'A')).toEqual(['10.1.2.3']);
      expect(values(await dig(pod, `@${NODE}`, 'scanner.lan', 'A'), 'A')).toEqual(['10.1.2.4']);
      expect(values(await dig(pod, `@${NODE}`, '-x', '10.1.2.4'), 'PTR')).toEqual(['scanner.', 'scanner.lan.']);
      // `except`: not forwarded, and no plugin is left (SERVFAIL, as CoreDNS).
      expect((await dig(pod, `@${NODE}`, 'www.blocked.example.test', 'A')).status).toBe('SERVFAIL');
      expect(upstreams[0].stdout + upstreams[0].stderr).not.toContain('blocked.example.test');
      // Pods are disabled unless the Corefile says otherwise (CoreDNS's default).
      expect((await dig(pod, `@${NODE}`, '10-244-0-7.prod.pod.cluster.local', 'A')).status).toBe('NXDOMAIN');
    } finally {
      await server.stop();
    }
  });

  it('forwards zones over DNS over TLS (tls://) and DNS over HTTPS (https://), the upstream\'s certificate checked against the CA and name given', async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=dot.test',
      '-addext', 'subjectAltName=DNS:dot.test', '-keyout', join(dir, 'dot-key.pem'), '-out', join(dir, 'dot-cert.pem')], { stdio: 'ignore' });
    const dot = up.spawn('node', [DOT_UPSTREAM, CORP, '853', join(dir, 'dot-cert.pem'), join(dir, 'dot-key.pem'), '198.51.100.53'], { label: 'dot upstream' });
    const doh = up.spawn('node', [DOH_UPSTREAM, CORP, '443', join(dir, 'dot-cert.pem'), join(dir, 'dot-key.pem'), '198.51.100.80'], { label: 'doh upstream' });
    const corefile = join(dir, 'Corefile.dot');
    writeFileSync(corefile, [
      'secure.example:53 {',
      `  bind ${NODE}`,
      `  forward . tls://${CORP}%dot.test {`,
      `    tls ${join(dir, 'dot-cert.pem')}`,
      '  }',
      '}',
      'https.example:53 {',
      `  bind ${NODE}`,
      `  forward . https://${CORP}%dot.test {`,
      `    tls ${join(dir, 'dot-cert.pem')}`,
      '  }',
      '}',
      'wrong-name.example:53 {',
      `  bind ${NODE}`,
      `  forward . tls://${CORP}%someone-else.test {`,
      `    tls ${join(dir, 'dot-cert.pem')}`,
      '  }',
      '}',
      '.:53 {',
      `  bind ${NODE}`,
      `  forward . ${RESOLVER}`,
      '}',
    ].join('\n') + '\n');
    const server = serve(corefile, 'dns dot');
    try {
      await dot.waitForOutput(/listening/);
      await doh.waitForOutput(/listening/);
      await server.waitForOutput(/dns serving/);
      expect(values(await dig(pod, `@${NODE}`, 'www.secure.example', 'A'), 'A')).toEqual(['198.51.100.53']);
      expect(dot.stdout).toMatch(/asked www\.secure\.example A/);
      // A certificate for another name is no answer, however the upstream replies.
      expect((await dig(pod, `@${NODE}`, 'www.wrong-name.example', 'A')).status).toBe('SERVFAIL');
      expect(dot.stdout).not.toMatch(/wrong-name/);
      expect(values(await dig(pod, `@${NODE}`, 'www.example.test', 'A'), 'A')).toEqual(['192.0.2.1']);
      // DNS over HTTPS: a POST to /dns-query with ID 0, as RFC 8484 asks.
      expect(values(await dig(pod, `@${NODE}`, 'www.https.example', 'A'), 'A')).toEqual(['198.51.100.80']);
      expect(doh.stdout).toMatch(/asked www\.https\.example A id=0/);
    } finally {
      await server.stop();
      await dot.stop();
      await doh.stop();
    }
  });

  it('asks several forward plugins in their order; next hands a failure on to the next one, failover to the next upstream', async () => {
    const corefile = join(dir, 'Corefile.forwards');
    writeFileSync(corefile, [
      '.:53 {',
      `  bind ${NODE}`,
      `  forward corp.example ${CORP}`,
      `  forward . ${CORP} {`,
      '    next NXDOMAIN REFUSED SERVFAIL',
      '  }',
      `  forward . ${RESOLVER}`,
      '}',
    ].join('\n') + '\n');
    let server = serve(corefile, 'dns forwards');
    try {
      await server.waitForOutput(/dns serving/);
      expect(values(await dig(pod, `@${NODE}`, 'intranet.corp.example', 'A'), 'A')).toEqual(['198.51.100.7']); // the corp route
      expect(values(await dig(pod, `@${NODE}`, 'www.example.test', 'A'), 'A')).toEqual(['192.0.2.99']); // the second: corp answers it
      // The corp server knows no such PTR: its failure goes on to the third forward.
      const corpAlone = await dig(node, `@${CORP}`, '-x', '192.0.2.200');
      expect(corpAlone.status).not.toBe('NOERROR');
      expect(values(await dig(pod, `@${NODE}`, '-x', '192.0.2.200'), 'PTR')).toEqual(['printer.example.test.']);
    } finally {
      await server.stop();
    }
    writeFileSync(corefile, [
      '.:53 {',
      `  bind ${NODE}`,
      `  forward . ${CORP} ${RESOLVER} {`,
      '    policy sequential',
      '    failover NXDOMAIN REFUSED SERVFAIL',
      '  }',
      '}',
    ].join('\n') + '\n');
    server = serve(corefile, 'dns failover');
    try {
      await server.waitForOutput(/dns serving/);
      expect(values(await dig(pod, `@${NODE}`, 'www.example.test', 'A'), 'A')).toEqual(['192.0.2.99']); // sequential: corp first
      expect(values(await dig(pod, `@${NODE}`, '-x', '192.0.2.200'), 'PTR')).toEqual(['printer.example.test.']); // failed over
    } finally {
      await server.stop();
    }
  });

  it('applies acl by source and type on every thread: the pod filtered for AAAA, its TXT dropped and the rest refused, the node answered', async () => {
    const corefile = join(dir, 'Corefile.acl');
    writeFileSync(corefile, [
      '.:53 {',
      `  bind ${NODE}`,
      '  acl {',
      '    filter type AAAA net 10.0.0.0/24',
      '    allow net 10.0.0.10',
      '    drop type TXT net 10.0.0.2',
      '    block net 10.0.0.2',
      '  }',
      '  kubernetes cluster.local',
      `  forward . ${RESOLVER}`,
      '}',
    ].join('\n') + '\n');
    const server = serve(corefile, 'dns acl');
    try {
      await server.waitForOutput(/dns serving/);
      // The node first, a few times: an answer it got must not reach the pod from a worker's
      // table. A cluster name, because the zone's answers are what workers are handed (the test
      // resolver's answers have TTL 0: never cached, so never published either way).
      for (let i = 0; i < 8; i++) expect(values(await dig(node, `@${NODE}`, 'web.prod.svc.cluster.local', 'A'), 'A')).toEqual(['10.96.0.10']);
      // dig asks from a new source port each time, so the kernel spreads them over the threads.
      for (let i = 0; i < 6; i++) {
        const refused = await dig(pod, `@${NODE}`, 'web.prod.svc.cluster.local', 'A');
        expect([refused.status, refused.answers]).toEqual(['REFUSED', []]);
        const filtered = await dig(pod, `@${NODE}`, 'web.prod.svc.cluster.local', 'AAAA');
        expect([filtered.status, filtered.answers]).toEqual(['NOERROR', []]);
      }
      // drop: no reply at all (dig waits its 1 s and gives up), on whichever thread it arrives.
      for (let i = 0; i < 3; i++) expect((await dig(pod, '+time=1', `@${NODE}`, 'web.prod.svc.cluster.local', 'TXT')).status).toBe('no reply (9)');
    } finally {
      await server.stop();
    }
  });

  it('reloads an edited Corefile while dig asks without pause, failing no query; a broken edit keeps the running one', async () => {
    const corefile = join(dir, 'Corefile.reload');
    const root = (ttl: number) => ['.:53 {', `  bind ${NODE}`, '  kubernetes cluster.local {', `    ttl ${ttl}`, '  }', `  forward . ${RESOLVER}`, '  reload 2s 1s', '}', ''];
    writeFileSync(corefile, root(30).join('\n'));
    const server = serve(corefile, 'dns reload');
    try {
      await server.waitForOutput(/dns serving/);
      expect(values(await dig(pod, `@${NODE}`, 'intranet.corp.example', 'A'), 'A')).toEqual(['203.0.113.66']); // the resolver's
      // The edit: another TTL, and a stub domain for corp.example.
      writeFileSync(corefile, [`corp.example:53 {`, `  bind ${NODE}`, `  forward . ${CORP}`, '}', ...root(7)].join('\n'));
      const statuses = new Set<string>();
      let ttl = '30';
      for (let i = 0; i < 600 && ttl === '30'; i++) {
        const d = await dig(pod, `@${NODE}`, 'web.prod.svc.cluster.local', 'A');
        statuses.add(d.status);
        ttl = d.answers[0]?.[1] ?? `none (${d.status})`;
      }
      expect([...statuses]).toEqual(['NOERROR']);
      expect(ttl).toBe('7');
      expect(values(await dig(pod, `@${NODE}`, 'intranet.corp.example', 'A'), 'A')).toEqual(['198.51.100.7']); // the stub's
      expect(server.stderr + server.stdout).toMatch(/Corefile reloaded/);
      // A broken edit: said with its line, and the running configuration keeps answering.
      writeFileSync(corefile, root(9).join('\n').replace('  reload 2s 1s', '  reload 2s 1s\n  dnstap /tmp/dnstap.sock full'));
      await server.waitForOutput(/Corefile not reloaded.*Corefile\.reload:8: plugin dnstap is not implemented/, 15_000);
      const after = await dig(pod, `@${NODE}`, 'web.prod.svc.cluster.local', 'A');
      expect([after.status, after.answers[0]?.[1]]).toEqual(['NOERROR', '7']);
    } finally {
      await server.stop();
    }
  });

  it('walks a pod\'s search path itself with autopath: one round trip and a CNAME to the name that exists', async () => {
    const corefile = join(dir, 'Corefile.autopath');
    writeFileSync(corefile, [
      '.:53 {', `  bind ${NODE}`, '  log',
      '  kubernetes cluster.local in-addr.arpa ip6.arpa {', '    pods verified', '    fallthrough in-addr.arpa ip6.arpa', '  }',
      '  autopath @kubernetes', `  forward . ${RESOLVER}`, '  cache 30', '}', '',
    ].join('\n'));
    pod.writeResolvConf(`nameserver ${NODE}\nsearch prod.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
    const server = serve(corefile, 'dns autopath');
    try {
      await server.waitForOutput(/dns serving/);
      const external = await digRaw(pod, 'www.example.test.prod.svc.cluster.local', 'A');
      expect(external).toMatch(/^www\.example\.test\.prod\.svc\.cluster\.local\.\s+\d+\s+IN\s+CNAME\s+www\.example\.test\.$/m);
      expect(external).toMatch(/^www\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1$/m);
      const sibling = await digRaw(pod, 'web.staging.prod.svc.cluster.local', 'A');
      expect(sibling).toMatch(/IN\s+CNAME\s+web\.staging\.svc\.cluster\.local\.$/m);
      expect(sibling).toMatch(/^web\.staging\.svc\.cluster\.local\.\s+\d+\s+IN\s+A\s+10\.96\.1\.10$/m);
      // A name that exists as asked is answered as usual.
      expect(values(await dig(pod, 'web.prod.svc.cluster.local', 'A'), 'A')).toEqual(['10.96.0.10']);
      // With its search path and ndots:5, the pod's resolver asks once for an external name.
      const before = server.stdout.split('\n').filter((l) => l.includes('"A IN ')).length;
      expect(await digRaw(pod, '+search', 'www.example.test', 'A')).toMatch(/IN\s+A\s+192\.0\.2\.1$/m);
      expect(server.stdout.split('\n').filter((l) => l.includes('"A IN ')).length - before).toBe(1);
      // A walk's reply is kept a few seconds, but not past a catalog change.
      expect(await digRaw(pod, 'alpha.staging.prod.svc.cluster.local', 'A')).not.toMatch(/alpha\.staging\.svc/);
      writeFileSync(join(dir, 'extra.yaml'), toYaml(serviceObjects({ namespace: 'staging', name: 'alpha', clusterIPs: ['10.96.1.77'], ports: [{ name: 'http', port: 80 }] })));
      let walked = '';
      for (let i = 0; i < 40 && !/10\.96\.1\.77/.test(walked); i++) walked = await digRaw(pod, 'alpha.staging.prod.svc.cluster.local', 'A');
      expect(walked).toMatch(/IN\s+CNAME\s+alpha\.staging\.svc\.cluster\.local\.$/m);
      expect(walked).toMatch(/IN\s+A\s+10\.96\.1\.77$/m);
      rmSync(join(dir, 'extra.yaml'));
      // Asked by an address that is no pod's (the node itself): no walk, NXDOMAIN from the zone.
      expect((await dig(node, `@${NODE}`, 'www.example.test.prod.svc.cluster.local', 'A')).status).toBe('NXDOMAIN');
    } finally {
      await server.stop();
      pod.writeResolvConf(`nameserver ${NODE}\n`);
    }
  });

  it('names endpoints by their pods, hides empty services and other namespaces, as the kubernetes options say', async () => {
    writeFileSync(join(dir, 'named.yaml'), toYaml(serviceObjects({
      namespace: 'prod', name: 'api', clusterIPs: ['10.96.0.30'], ports: [{ name: 'http', port: 80 }], endpoints: [{ ip: '10.244.3.7', pod: 'api-5d8c-abcde' }],
    })));
    const corefile = join(dir, 'Corefile.options');
    writeFileSync(corefile, ['.:53 {', `  bind ${NODE}`, '  kubernetes cluster.local {', '    endpoint_pod_names', '    ignore empty_service', '    namespaces prod', '  }', '}', ''].join('\n'));
    const server = serve(corefile, 'dns options');
    try {
      await server.waitForOutput(/dns serving/);
      expect(values(await dig(pod, `@${NODE}`, 'api-5d8c-abcde.api.prod.svc.cluster.local', 'A'), 'A')).toEqual(['10.244.3.7']);
      expect(values(await dig(pod, `@${NODE}`, 'api.prod.svc.cluster.local', 'A'), 'A')).toEqual(['10.96.0.30']);
      expect((await dig(pod, `@${NODE}`, 'web.prod.svc.cluster.local', 'A')).status).toBe('NXDOMAIN'); // no endpoint: ignored
      expect((await dig(pod, `@${NODE}`, 'web.staging.svc.cluster.local', 'A')).status).toBe('NXDOMAIN'); // not a listed namespace
    } finally {
      await server.stop();
      rmSync(join(dir, 'named.yaml'));
    }
  });

  it('serves an expired answer while its upstream is gone (cache serve_stale), with TTL 0', async () => {
    const SHORT = '10.0.1.55';
    await up.ip('addr', 'add', `${SHORT}/24`, 'dev', 'eth0');
    const upstream = up.spawn('dnsmasq', [
      '--no-daemon', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--log-queries', '--log-facility=-', `--listen-address=${SHORT}`,
      '--bind-interfaces', '--port=53', `--pid-file=${join(dir, 'dnsmasq-short.pid')}`, '--address=/stale.test/192.0.2.50', '--local-ttl=2',
    ], { label: 'dnsmasq short' });
    await upstream.waitForOutput(/started/);
    const corefile = join(dir, 'Corefile.stale');
    writeFileSync(corefile, ['.:53 {', `  bind ${NODE}`, `  forward . ${SHORT}`, '  cache 30 {', '    serve_stale 1h', '  }', '}', ''].join('\n'));
    const server = serve(corefile, 'dns stale');
    try {
      await server.waitForOutput(/dns serving/);
      const first = await dig(pod, `@${NODE}`, 'a.stale.test', 'A');
      expect([values(first, 'A'), first.answers[0]?.[1]]).toEqual([['192.0.2.50'], '2']);
      await upstream.stop();
      // Once its 2 s are over the answer is stale: still served, with TTL 0, while nothing answers upstream.
      let d = first;
      for (let i = 0; i < 200 && d.answers[0]?.[1] !== '0'; i++) d = await dig(pod, `@${NODE}`, 'a.stale.test', 'A');
      expect([d.status, values(d, 'A'), d.answers[0]?.[1]]).toEqual(['NOERROR', ['192.0.2.50'], '0']);
    } finally {
      await server.stop();
    }
  });

  it('stops with an error when its forwarding loops back to itself (loop)', async () => {
    const corefile = join(dir, 'Corefile.loop');
    // The node's own address as the upstream: every forwarded question comes back.
    writeFileSync(corefile, `.:53 {\n  bind ${NODE}\n  forward . ${NODE}\n  loop\n}\n`);
    const server = serve(corefile, 'dns loop');
    expect(await server.exited).toBe(1);
    expect(server.stderr + server.stdout).toMatch(/forwarding loop detected.*zone=\. arrivals=3 upstreams=10\.0\.0\.10:53/);
  });

  it('refuses a Corefile with a plugin it does not implement, naming the file, line and plugin', async () => {
    const corefile = join(dir, 'Corefile.bad');
    writeFileSync(corefile, readFileSync(KUBEADM, 'utf8').replace('    loop\n', '    loop\n    dnstap /tmp/dnstap.sock full\n'));
    const server = serve(corefile, 'dns bad');
    expect(await server.exited).toBe(2);
    expect(server.stderr).toContain(`${corefile}:21: plugin dnstap is not implemented`);
  });
});
