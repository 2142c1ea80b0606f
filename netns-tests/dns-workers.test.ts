// `--workers N`: the main thread and N-1 worker threads, each with its own SO_REUSEPORT socket,
// the workers answering from the shared answer table. Proven from a pod with many source ports
// at once (the kernel spreads clients by their ports): every thread's answers are right, follow
// a catalog change and a Corefile reload at once, refuse who the ACL refuses, and the metrics
// are the sum over the threads.
//
//   pod (10.0.0.2, 10.0.0.3) ──veth── node (10.0.0.10) ──veth── upstream (10.0.1.53)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Topology, type Namespace, type Process } from './harness/netns.js';
import { metricSum } from './harness/probes.js';
import { fixtureServices, serviceObjects, toYaml, type ServiceSpec } from '../bench/dns/fixtures.js';

const BIN = resolve('dist/cmd/kube-dataplane.js');
const CLIENT = resolve('netns-tests/dns-client.mjs');
const NODE = '10.0.0.10';
const RESOLVER = '10.0.1.53';
const SOCKETS = 40;

interface Reply {
  socket: number;
  name: string;
  type: string;
  rcode: string;
  answers: string[];
  ttls: number[];
}

/** Every question from SOCKETS sockets of `from`; the replies, and how many were sent. */
async function askMany(pod: Namespace, from: string, questions: string[]): Promise<{ sent: number; replies: Reply[] }> {
  const r = await pod.exec('node', [CLIENT, NODE, '53', from, String(SOCKETS), ...questions], { timeoutMs: 30_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { sent: number; replies: Reply[] };
}

/** The sum of a metric's samples whose labels match `labels` (a substring), from /metrics. */
describe('dns --workers', () => {
  let topo: Topology;
  let node: Namespace;
  let pod: Namespace;
  let dir: string;
  let upstream: Process | undefined;
  const specs: ServiceSpec[] = fixtureServices();
  const writeServices = (list: ServiceSpec[]) => writeFileSync(join(dir, 'services.yaml'), toYaml(list.flatMap(serviceObjects)));

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first`);
    dir = mkdtempSync(join(tmpdir(), 'kdp-workers-'));
    writeServices(specs);
    topo = await Topology.create();
    node = await topo.namespace('node');
    pod = await topo.namespace('pod');
    const up = await topo.namespace('up');
    await topo.veth({ ns: node, ifname: 'vpod', addresses: [`${NODE}/24`] }, { ns: pod, ifname: 'eth0', addresses: ['10.0.0.2/24', '10.0.0.3/24'] });
    await topo.veth({ ns: node, ifname: 'vup', addresses: ['10.0.1.1/24'] }, { ns: up, ifname: 'eth0', addresses: [`${RESOLVER}/24`] });
    upstream = up.spawn('dnsmasq', [
      '--no-daemon', '--no-resolv', '--no-hosts', '--conf-file=/dev/null', `--listen-address=${RESOLVER}`, '--bind-interfaces', '--port=53',
      `--pid-file=${join(dir, 'dnsmasq.pid')}`, '--address=/example.test/192.0.2.1', '--local-ttl=300', // cacheable, so published
    ], { label: 'dnsmasq' });
    await upstream.waitForOutput(/started/);
  });

  afterAll(async () => {
    await topo?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const QUESTIONS = [
    'web.prod.svc.cluster.local/A', 'web.prod.svc.cluster.local/AAAA', 'db.prod.svc.cluster.local/A', '_http._tcp.web.prod.svc.cluster.local/SRV',
    'nope.prod.svc.cluster.local/A', 'web.prod.svc.cluster.local.prod.svc.cluster.local/A', 'www.example.test/A',
  ];
  /** What each question must get (rcode, sorted data). */
  const expected = (webIP = '10.96.0.10'): Record<string, string> => ({
    'web.prod.svc.cluster.local A': `NOERROR ${webIP}`,
    'web.prod.svc.cluster.local AAAA': 'NOERROR fd00:96::10',
    'db.prod.svc.cluster.local A': 'NOERROR 10.244.1.5,10.244.1.6,10.244.1.8',
    '_http._tcp.web.prod.svc.cluster.local SRV': 'NOERROR {"priority":0,"weight":100,"port":80,"target":"web.prod.svc.cluster.local"}',
    'nope.prod.svc.cluster.local A': 'NXDOMAIN ',
    'web.prod.svc.cluster.local.prod.svc.cluster.local A': 'NXDOMAIN ',
    'www.example.test A': 'NOERROR 192.0.2.1',
  });
  const seen = (r: Reply) => `${r.rcode} ${[...r.answers].sort().join(',')}`;

  it('answers right from every thread, follows a catalog change on every thread at once, and sums the metrics', async () => {
    const server = node.spawn('node', [BIN, 'dns', '--manifests', dir, '--listen', `${NODE}:53`, '--upstream', RESOLVER, '--cluster-cidr', '10.0.0.2/32', '--workers', '3'], { label: 'dns workers' });
    try {
      await server.waitForOutput(/dns serving/);
      expect(server.stderr + server.stdout).toMatch(/workers=3/);
      let sent = 0;
      const workerCounts = async () => {
        const text = (await node.exec('curl', ['-fsS', 'http://127.0.0.1:9153/metrics'])).stdout;
        return { text, workers: [1, 2].map((w) => ({ table: metricSum(text, 'kube_dataplane_dns_worker_queries_total', { worker: String(w), answered: 'table' }), main: metricSum(text, 'kube_dataplane_dns_worker_queries_total', { worker: String(w), answered: 'main' }) })) };
      };
      // Twice. In the first round every question reaches a worker before its first answer is
      // published, so the workers hand them to the main thread, which publishes the answers; in
      // the second the workers answer every one from the table.
      const rounds = [];
      for (let round = 0; round < 2; round++) {
        const r = await askMany(pod, '10.0.0.2', QUESTIONS);
        sent += r.sent;
        expect(r.replies.length).toBe(r.sent);
        const want = expected();
        for (const reply of r.replies) expect([reply.name, reply.type, seen(reply)]).toEqual([reply.name, reply.type, want[`${reply.name} ${reply.type}`]]);
        rounds.push(await workerCounts());
      }
      const [first, second] = rounds;
      for (const w of [0, 1]) {
        const r1 = first.workers[w];
        const r2 = second.workers[w];
        // Each worker got clients of its own (the kernel spread the 40 source ports) ...
        expect(r1.table + r1.main, `worker ${w + 1}`).toBeGreaterThan(0);
        // ... and answered all of the second round from the table.
        expect([r2.main - r1.main, r2.table - r1.table > 0], `worker ${w + 1}`).toEqual([0, true]);
      }
      // The main thread got a share too: what the workers did not receive.
      expect(second.workers.reduce((n, w) => n + w.table + w.main, 0)).toBeLessThan(sent);
      // One server, as CoreDNS reports it: every reply of every thread counted once.
      expect(metricSum(second.text, 'coredns_dns_requests_total')).toBe(sent);
      expect(metricSum(second.text, 'coredns_dns_responses_total', { rcode: 'NXDOMAIN' })).toBe((sent / QUESTIONS.length) * 2);

      // A changed service: every socket (so every thread) gets the new address, and none the
      // old one after that.
      writeServices(specs.map((s) => (s.namespace === 'prod' && s.name === 'web' ? { ...s, clusterIPs: ['10.96.0.77', 'fd00:96::10'] } : s)));
      const deadline = Date.now() + 10_000;
      let fresh = false;
      while (!fresh && Date.now() < deadline) {
        const r = await askMany(pod, '10.0.0.2', ['web.prod.svc.cluster.local/A']);
        fresh = r.replies.length === SOCKETS && r.replies.every((x) => x.answers.join() === '10.96.0.77');
      }
      expect(fresh).toBe(true);
      const after = await askMany(pod, '10.0.0.2', QUESTIONS);
      const want = expected('10.96.0.77');
      for (const reply of after.replies) expect(seen(reply)).toBe(want[`${reply.name} ${reply.type}`]);

      // A source outside --cluster-cidr is refused on every thread; TCP is the main thread's.
      const refused = await askMany(pod, '10.0.0.3', ['web.prod.svc.cluster.local/A']);
      expect(refused.replies.map((x) => x.rcode)).toEqual(Array(SOCKETS).fill('REFUSED'));
      const tcp = await pod.exec('dig', ['+tcp', '+short', '+time=3', '+tries=1', `@${NODE}`, 'web.prod.svc.cluster.local', 'A']);
      expect(tcp.stdout.trim()).toBe('10.96.0.77');
      expect(server.running).toBe(true);
      expect(server.stderr + server.stdout).not.toMatch(/worker (failed|exited)|query failed/);
    } finally {
      writeServices(specs);
      await server.stop();
    }
  });

  it('applies a reloaded Corefile on every thread at once', async () => {
    const corefile = join(dir, 'Corefile');
    const write = (ttl: number) => writeFileSync(corefile, [
      '.:53 {', `  bind ${NODE}`, '  kubernetes cluster.local in-addr.arpa ip6.arpa {', `    ttl ${ttl}`, '    fallthrough in-addr.arpa ip6.arpa', '  }',
      `  forward . ${RESOLVER}`, '  cache 30', '  loadbalance', '  reload 2s 1s', '}', '',
    ].join('\n'));
    write(5);
    const server = node.spawn('node', [BIN, 'dns', '--manifests', dir, '--corefile', corefile, '--cluster-cidr', '10.0.0.2/32', '--workers', '2'], { label: 'dns workers corefile' });
    try {
      await server.waitForOutput(/dns serving/);
      for (let round = 0; round < 2; round++) {
        const r = await askMany(pod, '10.0.0.2', ['web.prod.svc.cluster.local/A', 'db.prod.svc.cluster.local/A']);
        expect(r.replies.length).toBe(r.sent);
        for (const x of r.replies) expect(x.ttls.every((t) => t === 5)).toBe(true);
        // loadbalance on the worker too: the headless service's addresses in changing orders.
        const orders = new Set(r.replies.filter((x) => x.name.startsWith('db.')).map((x) => x.answers.join()));
        expect(orders.size).toBeGreaterThan(1);
      }
      write(9);
      await server.waitForOutput(/Corefile reloaded/, 15_000);
      const r = await askMany(pod, '10.0.0.2', ['web.prod.svc.cluster.local/A', 'db.prod.svc.cluster.local/A']);
      expect(r.replies.length).toBe(r.sent);
      for (const x of r.replies) expect([x.name, x.ttls.every((t) => t === 9)]).toEqual([x.name, true]);
      expect(readFileSync(corefile, 'utf8')).toMatch(/ttl 9/);
    } finally {
      await server.stop();
    }
  });
});
