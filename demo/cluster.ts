// `make demo ARGS=--cluster`: three nodes in two zones, each running the DaemonSet's proxy and
// dns containers from the shipped manifests against one API server over an underlay bridge
// (netns-tests/harness/cluster.ts). Pods on different nodes reach each other's services, a node
// port masquerades, eTP=Local health differs per node, topology hints keep traffic in its zone,
// each pod asks its own node's DNS, a connection outlives its node's agent restart, and a node
// being deleted says so on /healthz. Each check
// prints what it ran and what came back, and says ✓ or ✗; everything is deleted at the end.
import { Cluster, OUTSIDE4, type Pod } from '../netns-tests/harness/cluster.js';
import { ECHO_PORT, type ServiceSpec } from '../netns-tests/harness/cluster-objects.js';
import { CLIENT, eventually, metric } from '../netns-tests/harness/probes.js';
import type { Namespace } from '../netns-tests/harness/netns.js';

let failed = 0;

function title(text: string, lines: string[] = []): void {
  process.stdout.write(`\n\x1b[1m== ${text}\x1b[0m\n`);
  for (const l of lines) process.stdout.write(`  ${l}\n`);
}

function verdict(ok: boolean, what: string): void {
  if (ok) process.stdout.write(`  \x1b[32m✓ ${what}\x1b[0m\n`);
  else {
    failed++;
    process.stdout.write(`  \x1b[31m✗ not working: ${what}\x1b[0m\n`);
  }
}

/** Runs `cmd` in `ns` until `ok` holds (nodes apply a change on their own sync) or 15 s pass,
 *  prints the command and its last output, and says whether `ok` held. */
async function check(ns: Namespace, where: string, cmd: string, args: string[], ok: (out: string) => boolean, what: string): Promise<void> {
  const shown = [cmd === process.execPath ? 'node' : cmd, ...args.map((a) => (a === CLIENT ? 'proxy-client.mjs' : a))].join(' ');
  process.stdout.write(`[${where}]$ ${shown}\n`);
  const out = await eventually(async () => {
    const r = await ns.exec(cmd, args, { allowFailure: true, timeoutMs: 30_000 });
    return (r.stdout + r.stderr).trim();
  }, ok);
  const lines = out.split('\n');
  process.stdout.write(lines.slice(0, 8).map((l) => `  ${l}`).join('\n') + (lines.length > 8 ? `\n  … (${lines.length} lines)` : '') + '\n');
  verdict(ok(out), what);
}

const connections = (host: string, port: number, n: number) => [CLIENT, 'tcp', host, String(port), String(n)];
const answeredBy = (out: string) => new Set(out.split('\n').map((l) => l.split(' ')[0]));
const onlyBy = (...pods: string[]) => (out: string) => {
  const who = answeredBy(out);
  return who.size === pods.length && pods.every((p) => who.has(p));
};

export async function main(): Promise<number> {
  const c = await Cluster.start({ say: title });
  try {
    title('pods, wired by the bridge CNI plugin with kube-dataplane-ipam (podCIDRsFrom: node)');
    const pods: Pod[] = await Promise.all([
      c.addPod('node-1', 'a1'), c.addPod('node-2', 'b1'), c.addPod('node-3', 'c1'), c.addPod('node-3', 'c2'),
    ]);
    for (const p of pods) process.stdout.write(`  ${p.name} on ${p.node.name} (${p.node.zone}): ${p.ip4}, ${p.ip6}\n`);
    const [a1, b1, c1, c2] = pods;

    const web: ServiceSpec = { name: 'web', clusterIPs: ['10.96.1.10', 'fd00:96::1:10'] };
    await c.addService(web, [b1, c1]);
    title('a ClusterIP service web (10.96.1.10, fd00:96::1:10) with endpoints b1 (node-2) and c1 (node-3)');
    await check(a1.ns, 'a1', 'dig', ['+short', '+search', 'web'], (o) => o === '10.96.1.10', 'a1 resolves web through the kube-dns VIP (its node\'s DNS)');
    await check(a1.ns, 'a1', process.execPath, connections('10.96.1.10', 80, 12), onlyBy('b1', 'c1'), 'from node-1, both endpoints on the other nodes answer');
    await check(a1.ns, 'a1', process.execPath, connections('fd00:96::1:10', 80, 12), onlyBy('b1', 'c1'), 'the same over IPv6');

    title('a NodePort (eTP=Cluster, 30080) with its one endpoint b1 on node-2, from outside the cluster');
    await c.addService({ name: 'np', clusterIPs: ['10.96.1.20'], type: 'NodePort', nodePort: 30080 }, [b1]);
    const n1 = c.node('node-1').ip4;
    await check(c.outside, 'outside', process.execPath, connections(n1, 30080, 3), (o) => o.split('\n').every((l) => l === `b1 ${n1}`), `via node-1: b1 answers and sees node-1's address (${n1}) as the source`);

    title('eTP=Local (LoadBalancer, node port 30081, health check 30181), endpoints b1 (node-2) and c1 (node-3)');
    await c.addService({ name: 'lb', clusterIPs: ['10.96.1.30'], type: 'LoadBalancer', nodePort: 30081, healthCheckNodePort: 30181, externalTrafficPolicy: 'Local' }, [b1, c1]);
    for (const [node, status] of [['node-1', 503], ['node-2', 200], ['node-3', 200]] as const) {
      const ip = c.node(node).ip4;
      await check(c.outside, 'outside', 'curl', ['-s', '-w', ' %{http_code}', `http://${ip}:30181/`], (o) => o.endsWith(` ${status}`), `${node}'s health-check port says ${status}`);
    }
    const n3 = c.node('node-3').ip4;
    await check(c.outside, 'outside', process.execPath, connections(n3, 30081, 2), (o) => o.split('\n').every((l) => l === `c1 ${OUTSIDE4}`), 'via node-3: its own endpoint c1 answers, seeing the client\'s own address');

    title('trafficDistribution: PreferSameZone (node-1, node-2 in zone-a; node-3 in zone-b), endpoints b1 and c1');
    await c.addService({ name: 'zonal', clusterIPs: ['10.96.1.50'], trafficDistribution: 'PreferSameZone' }, [b1, c1]);
    await check(a1.ns, 'a1', process.execPath, connections('10.96.1.50', 80, 12), onlyBy('b1'), 'a1 (zone-a) reaches only zone-a\'s b1');
    await check(c2.ns, 'c2', process.execPath, connections('10.96.1.50', 80, 12), onlyBy('c1'), 'c2 (zone-b) reaches only zone-b\'s c1');

    title('each node answers its own pods\' DNS: queries counted by each node\'s dns container');
    const requests = () => Promise.all([...c.nodes.values()].map((n) => metric(n.ns, 'http://127.0.0.1:9153/metrics', 'coredns_dns_requests_total')));
    for (const pod of [a1, c2]) {
      const before = await requests();
      await pod.ns.exec('dig', ['+short', '+tries=1', 'web.default.svc.cluster.local']);
      const counted = (await requests()).map((v, i) => v - before[i]);
      const names = [...c.nodes.keys()];
      process.stdout.write(`[${pod.name}]$ dig +short web.default.svc.cluster.local\n`);
      process.stdout.write(`  coredns_dns_requests_total: ${names.map((n, i) => `${n} +${counted[i]}`).join(', ')}\n`);
      verdict(counted.every((d, i) => d === (names[i] === pod.node.name ? 1 : 0)), `${pod.name}'s query went to ${pod.node.name} only`);
    }

    title('node-1\'s agent restarted (both containers) while a1 holds a connection through web\'s cluster IP');
    const stream = a1.ns.spawn(process.execPath, [CLIENT, 'tcp-stream', '10.96.1.10', String(ECHO_PORT), '100'], { label: 'stream' });
    const echoed = () => stream.stdout.split('\n').filter(Boolean).length;
    await eventually(async () => echoed(), (n) => n >= 3, 5_000);
    const before = echoed();
    await c.restartAgent(c.node('node-1'));
    const after = await eventually(async () => echoed(), (n) => n >= before + 5, 5_000);
    process.stdout.write(`[a1]$ node proxy-client.mjs tcp-stream 10.96.1.10 ${ECHO_PORT} 100\n  ${before} lines echoed before the restart, ${after} after; last: ${stream.stdout.trim().split('\n').pop()}\n`);
    verdict(after >= before + 5 && !stream.stdout.includes('ERR'), 'the connection kept flowing through the restart');
    await stream.stop(500);
    await check(a1.ns, 'a1', process.execPath, connections('10.96.1.10', 80, 12), onlyBy('b1', 'c1'), 'and new connections from node-1 reach both endpoints again');

    title('node-3 is being deleted (deletionTimestamp set on its Node): /healthz drains it');
    await c.markNodeDeleting(c.node('node-3'));
    await check(c.outside, 'outside', 'curl', ['-s', '-w', ' %{http_code}', `http://${n3}:10256/healthz`], (o) => o.endsWith(' 503') && o.includes('"nodeEligible":false'), 'node-3\'s /healthz says 503, nodeEligible false');
    await check(c.outside, 'outside', 'curl', ['-s', '-w', ' %{http_code}', `http://${n1}:10256/healthz`], (o) => o.endsWith(' 200'), 'node-1\'s /healthz still says 200');

    title(failed === 0 ? 'everything shown works' : `${failed} check(s) not working (see above)`);
    return failed === 0 ? 0 : 1;
  } finally {
    await c.destroy();
  }
}
