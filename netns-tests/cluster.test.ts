// Three nodes in two zones, each running the DaemonSet's proxy and dns containers from the
// shipped manifests against one API server over the underlay; pods wired by the bridge CNI
// plugin and our IPAM. Real packets between namespaces and real `dig` prove what only a cluster
// shows: cross-node service traffic, per-node eTP=Local and its health-check port, the
// internal traffic policy and topology hints, node-local DNS, an agent restart that disturbs
// nothing, a node joining and a node leaving (netns-tests/harness/cluster.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run, type Namespace } from './harness/netns.js';
import { Cluster, OUTSIDE4, UPSTREAM_ADDRESS, UPSTREAM_NAME } from './harness/cluster.js';
import { ECHO_PORT, POD_PORT, type ServiceSpec } from './harness/cluster-objects.js';
import { CLIENT, connect, eventually, httpGet, metric, whoAnswers } from './harness/probes.js';

const WEB: ServiceSpec = { name: 'web', clusterIPs: ['10.96.1.10', 'fd00:96::1:10'] };
const LB: ServiceSpec = { name: 'lb', clusterIPs: ['10.96.1.30'], type: 'LoadBalancer', nodePort: 30081, healthCheckNodePort: 30181, externalTrafficPolicy: 'Local' };
const NODAL: ServiceSpec = { name: 'nodal', clusterIPs: ['10.96.1.60'], trafficDistribution: 'PreferSameNode' };

/** The root namespace's link names: nothing of a cluster may appear there. */
async function rootLinks(): Promise<string[]> {
  const out = (await run('ip', ['-br', 'link'])).stdout;
  return out.split('\n').map((l) => l.split(/\s+/)[0].split('@')[0]).filter(Boolean).sort();
}

describe('a cluster of three nodes in namespaces (iptables mode, the ConfigMap default)', () => {
  let c: Cluster;
  let linksBefore: string[];
  const ip = (pod: string) => c.pod(pod).ip4;
  const from = (pod: string) => c.pod(pod).ns;
  const same = (a: Set<string>, b: string[]) => expect([...a].sort()).toEqual([...b].sort());
  const health = (node: string) => httpGet(c.outside, `http://${c.node(node).ip4}:30181/`);
  const sameSet = (a: Set<string>, b: string[]) => a.size === b.length && b.every((x) => a.has(x));
  /** Polls until `n` connections from `pod` to host:port are answered by exactly `want` (each
   *  node programs a change on its own sync), then asserts that last answer. */
  const served = async (pod: string | Namespace, host: string, port: number, want: string[], n = 12) => {
    const ns = typeof pod === 'string' ? from(pod) : pod;
    same(await eventually(() => whoAnswers(ns, host, port, n), (s) => sameSet(s, want)), want);
  };
  /** Connections to a VIP this node's rules do not know yet are unroutable (ENETUNREACH: the
   *  node has no route for service addresses); a known one that must not answer times out. */
  const dropped = async (pod: string, host: string, port: number) => {
    const answers = await eventually(() => connect(from(pod), host, port, 1, 1_000), (a) => a[0] !== 'ERR ENETUNREACH');
    expect(answers).toEqual(['ERR ETIMEDOUT']);
  };

  beforeAll(async () => {
    linksBefore = await rootLinks();
    c = await Cluster.start();
    // Pods: a* on node-1 (zone-a), b* on node-2 (zone-a), c* on node-3 (zone-b).
    const plan: [string, string][] = [['node-1', 'a1'], ['node-1', 'a2'], ['node-2', 'b1'], ['node-2', 'b2'], ['node-3', 'c1'], ['node-3', 'c2']];
    await Promise.all(plan.map(([node, pod]) => c.addPod(node, pod)));
    await c.addService(WEB, [c.pod('b1'), c.pod('c1')]);
  });

  afterAll(async () => {
    await c?.destroy();
    expect(await rootLinks()).toEqual(linksBefore);
  });

  it('pods got addresses from their own node\'s spec.podCIDRs through the IPAM plugin', () => {
    for (const [pod, net] of [['a1', '10.244.1.'], ['b1', '10.244.2.'], ['c2', '10.244.3.']] as const) {
      expect(ip(pod)).toContain(net);
    }
    expect(c.pod('b2').ip6).toMatch(/^fd00:244:0:2::/);
  });

  it('a pod on node-1 reaches a ClusterIP whose endpoints are on node-2 and node-3, over both families', async () => {
    await served('a1', '10.96.1.10', 80, ['b1', 'c1'], 16);
    await served('a1', 'fd00:96::1:10', 80, ['b1', 'c1'], 16);
    // Pod to pod across nodes is routed, not NATed: the backend sees the client pod's address.
    const [answer] = await connect(from('a1'), ip('b1'), POD_PORT);
    expect(answer).toBe(`b1 ${ip('a1')}`);
  });

  it('a pod reaching itself through its service comes back hairpinned, from its node\'s bridge address', async () => {
    await c.addService({ name: 'hairpin', clusterIPs: ['10.96.1.15'] }, [c.pod('c1')]);
    const answers = await eventually(() => connect(from('c1'), '10.96.1.15', 80, 2), (a) => a.every((l) => l.startsWith('c1 ')));
    expect(answers).toEqual(['c1 10.244.3.1', 'c1 10.244.3.1']);
  });

  it('a NodePort (eTP=Cluster) on any node reaches a pod on another node, the source masqueraded to that node', async () => {
    const spec: ServiceSpec = { name: 'np', clusterIPs: ['10.96.1.20'], type: 'NodePort', nodePort: 30080 };
    await c.addService(spec, [c.pod('b1')]);
    for (const node of ['node-1', 'node-3']) {
      const nodeIP = c.node(node).ip4;
      const answers = await eventually(() => connect(c.outside, nodeIP, 30080, 3), (a) => a.every((l) => l.startsWith('b1 ')));
      expect(answers, `via ${node}`).toEqual(Array(3).fill(`b1 ${nodeIP}`));
    }
  });

  it('eTP=Local answers only on nodes with a local endpoint, keeps the client source, and the health-check port says 200/503 with the count', async () => {
    await c.addService(LB, [c.pod('b1'), c.pod('b2'), c.pod('c1')]);
    const h2 = await eventually(() => health('node-2'), (r) => r.status === 200);
    expect(h2.status).toBe(200);
    expect(JSON.parse(h2.body)).toMatchObject({ service: { namespace: 'default', name: 'lb' }, localEndpoints: 2 });
    const h3 = await eventually(() => health('node-3'), (r) => r.status === 200);
    expect(h3.status).toBe(200);
    expect(JSON.parse(h3.body).localEndpoints).toBe(1);
    const h1 = await eventually(() => health('node-1'), (r) => r.status === 503);
    expect(h1.status).toBe(503);
    expect(JSON.parse(h1.body).localEndpoints).toBe(0);

    await served(c.outside, c.node('node-2').ip4, 30081, ['b1', 'b2']);
    expect(await connect(c.outside, c.node('node-3').ip4, 30081, 2)).toEqual([`c1 ${OUTSIDE4}`, `c1 ${OUTSIDE4}`]);
    // node-1 has none: dropped, not sent to another node (once node-1 knows the endpoints: with
    // none at all, the node port rejects at once).
    const viaNode1 = () => connect(c.outside, c.node('node-1').ip4, 30081, 1, 1_000);
    expect(await eventually(viaNode1, (a) => a[0] !== 'ERR ECONNREFUSED')).toEqual(['ERR ETIMEDOUT']);
    // Unless the client is a pod of node-1: pods follow the Cluster policy (kube-proxy's short-cut).
    await served('a1', c.node('node-1').ip4, 30081, ['b1', 'b2', 'c1'], 16);
  });

  it('eTP=Local while a node\'s endpoints terminate: its health check drains it (503) and its node port still serves them', async () => {
    await c.addService(LB, [c.pod('b1'), c.pod('b2'), c.pod('c1')]);
    await c.setEndpoints(LB, [c.pod('b1'), c.pod('b2'), c.pod('c1')], { terminating: [c.pod('b1'), c.pod('b2')] });
    const h2 = await eventually(() => health('node-2'), (r) => r.status === 503);
    expect(h2.status).toBe(503);
    expect(JSON.parse(h2.body).localEndpoints).toBe(0);
    expect((await health('node-3')).status).toBe(200);
    // Serving-terminating endpoints still take node-2's external traffic (nothing else is local),
    // while cluster traffic goes to the ready one.
    await served(c.outside, c.node('node-2').ip4, 30081, ['b1', 'b2']);
    await served('a1', '10.96.1.30', 80, ['c1']);
  });

  it('internalTrafficPolicy Local: a pod reaches only endpoints on its own node; none there → dropped', async () => {
    const spec: ServiceSpec = { name: 'itp', clusterIPs: ['10.96.1.40'], internalTrafficPolicy: 'Local' };
    await c.addService(spec, [c.pod('a2'), c.pod('b1')]);
    await served('a1', '10.96.1.40', 80, ['a2']);
    await served('b2', '10.96.1.40', 80, ['b1']);
    await dropped('c2', '10.96.1.40', 80);
  });

  it('trafficDistribution PreferSameZone: each zone keeps its traffic (hints.forZones)', async () => {
    const spec: ServiceSpec = { name: 'zonal', clusterIPs: ['10.96.1.50'], trafficDistribution: 'PreferSameZone' };
    await c.addService(spec, [c.pod('b1'), c.pod('c1')]);
    // node-1 is in zone-a with no endpoint of its own: zone-a's endpoint on node-2, never zone-b's.
    await served('a1', '10.96.1.50', 80, ['b1']);
    await served('b2', '10.96.1.50', 80, ['b1']);
    await served('c2', '10.96.1.50', 80, ['c1']);
  });

  it('trafficDistribution PreferSameNode: each node keeps its traffic (hints.forNodes)', async () => {
    await c.addService(NODAL, [c.pod('a2'), c.pod('b1'), c.pod('c1')]);
    await served('a1', '10.96.1.60', 80, ['a2']);
    await served('b2', '10.96.1.60', 80, ['b1']);
    await served('c2', '10.96.1.60', 80, ['c1']);
    // node-1's own endpoint goes: its traffic falls back to its zone's (the zone hints), not all.
    await c.setEndpoints(NODAL, [c.pod('b1'), c.pod('c1')]);
    await served('a1', '10.96.1.60', 80, ['b1']);
  });

  it('every pod resolves names through its own node\'s DNS (kube-dns VIP, internalTrafficPolicy Local)', async () => {
    const requests = () => Promise.all([...c.nodes.values()].map((n) => metric(n.ns, 'http://127.0.0.1:9153/metrics', 'coredns_dns_requests_total')));
    for (const pod of ['a1', 'b2', 'c2']) {
      const p = c.pod(pod);
      expect((await p.ns.exec('cat', ['/etc/resolv.conf'])).stdout).toContain(`nameserver ${c.clusterDNS}`);
      const before = await requests();
      for (let i = 0; i < 3; i++) {
        const answer = await p.ns.exec('dig', ['+short', '+tries=1', '+search', 'web']);
        expect(answer.stdout.trim()).toBe('10.96.1.10');
      }
      const after = await requests();
      const delta = after.map((v, i) => v - before[i]);
      const own = [...c.nodes.keys()].indexOf(p.node.name);
      expect(delta, `queries counted per node for ${pod} on ${p.node.name}`).toEqual(delta.map((_, i) => (i === own ? 3 : 0)));
    }
    // Each node's DNS knows it is a kube-dns endpoint (by its node IP): its NS name is the VIP.
    expect((await from('b2').exec('dig', ['+short', `ns.dns.${c.domain}`])).stdout.trim()).toBe(c.clusterDNS);
    // Names outside the cluster: forwarded by the pod's node to the node's resolver.
    expect((await from('c2').exec('dig', ['+short', UPSTREAM_NAME])).stdout.trim()).toBe(UPSTREAM_ADDRESS);
    // The node-IP listener is no open resolver: a client outside the cluster is refused.
    const outside = await c.outside.exec('dig', ['+tries=1', '+time=2', `@${c.node('node-1').ip4}`, 'web.default.svc.cluster.local'], { allowFailure: true });
    expect(outside.stdout).toContain('status: REFUSED');
  });

  it('restarting node-1\'s agent keeps an established flow through the VIP and new connections everywhere', async () => {
    await served('a1', '10.96.1.10', 80, ['b1', 'c1']);
    const stream = from('a1').spawn(process.execPath, [CLIENT, 'tcp-stream', '10.96.1.10', String(ECHO_PORT), '50'], { label: 'stream' });
    const lines = () => stream.stdout.split('\n').filter(Boolean);
    await eventually(async () => lines().length, (n) => n >= 3, 5_000);
    const flowedBefore = lines().length;
    expect(flowedBefore).toBeGreaterThanOrEqual(3);
    const pidBefore = c.node('node-1').containers.get('proxy')!.child.pid;

    // New connections while node-1's agent goes down and comes back: from the other nodes, and
    // from node-1 itself (its rules stay in the kernel while no agent runs, as kube-proxy's do).
    let during: string[] = [];
    let restarting = true;
    const load = (async () => {
      while (restarting) {
        const rounds = await Promise.all(['a2', 'b2', 'c2'].map((p) => connect(from(p), '10.96.1.10', 80, 3)));
        during = during.concat(...rounds);
      }
    })();
    await c.restartAgent(c.node('node-1'));
    restarting = false;
    await load;

    expect(during.length).toBeGreaterThan(0);
    expect(during.filter((l) => l.startsWith('ERR'))).toEqual([]);
    const flowedAfter = await eventually(async () => lines().length, (n) => n > flowedBefore + 5, 5_000);
    expect(flowedAfter).toBeGreaterThan(flowedBefore + 5);
    expect(stream.stdout).not.toContain('ERR');
    expect(stream.running).toBe(true);
    // It was a new process, and node-1's pods are served by it.
    expect(c.node('node-1').containers.get('proxy')!.child.pid).not.toBe(pidBefore);
    await served('a1', '10.96.1.10', 80, ['b1', 'c1']);
    await stream.stop(500);
  });

  it('node-2\'s dns container restarted alone: its pods\' lookups fail meanwhile, its rules keep serving', async () => {
    const node2 = c.node('node-2');
    const proxy = node2.containers.get('proxy');
    const lookup = async () => (await c.pod('b2').ns.exec('dig', ['+short', '+tries=1', '+time=1', '+search', 'web'], { allowFailure: true })).stdout.trim();
    expect(await eventually(lookup, (a) => a === '10.96.1.10')).toBe('10.96.1.10');
    await node2.containers.get('dns')!.stop();
    expect(await lookup()).not.toBe('10.96.1.10');
    // Other nodes' pods still resolve; node-2's pods still reach services.
    expect((await c.pod('a1').ns.exec('dig', ['+short', '+search', 'web'])).stdout.trim()).toBe('10.96.1.10');
    await served('b2', '10.96.1.10', 80, ['b1', 'c1']);
    await c.startContainer(node2, 'dns');
    expect(await eventually(lookup, (a) => a === '10.96.1.10')).toBe('10.96.1.10');
    expect(node2.containers.get('proxy')).toBe(proxy);
  });

  it('the API server gone for a while: every node keeps serving, and catches up once it is back', async () => {
    for (const pod of ['a1', 'b2', 'c2']) await served(pod, '10.96.1.10', 80, ['b1', 'c1'], 8);
    await c.api.send({ op: 'down' });
    try {
      await servedWhileDown();
    } finally {
      await c.api.send({ op: 'up' });
    }
    await c.addService({ name: 'after', clusterIPs: ['10.96.1.80'] }, [c.pod('a2')]);
    for (const pod of ['a1', 'b2', 'c2']) await served(pod, '10.96.1.80', 80, ['a2'], 4);
  });

  async function servedWhileDown(): Promise<void> {
    // Until every proxy's watches have been cut and have failed a retry against the downed server.
    const failedTwice = async () => {
      for (const n of c.nodes.values()) {
        for (const kind of ['Service', 'EndpointSlice', 'Node']) {
          const errors = await metric(n.ns, 'http://127.0.0.1:10249/metrics', 'kubedataplane_watch_restarts_total', { kind, reason: 'error' });
          if (errors < 2) return false;
        }
      }
      return true;
    };
    expect(await eventually(failedTwice, (x) => x, 15_000)).toBe(true);
    for (const pod of ['a1', 'b2', 'c2']) same(await whoAnswers(from(pod), '10.96.1.10', 80, 8), ['b1', 'c1']);
    for (const n of c.nodes.values()) for (const [name, p] of n.containers) expect(p.running, `${n.name}/${name}`).toBe(true);
  }

  it('a node added at run time: pods wait for its pod CIDRs, then get addresses from them and serve', async () => {
    // Registered and running its agent, but no spec.podCIDRs yet: the IPAM plugin's STATUS says
    // the node is not ready for pods.
    const node = await c.addNode({ name: 'node-4', zone: 'zone-b' }, { podCIDRs: false });
    expect(await c.ipamStatus(node)).toMatchObject({ code: 1, out: { code: 50 } });
    await c.assignPodCIDRs(node);
    expect((await c.ipamStatus(node)).code).toBe(0);
    expect(node.podCIDRs).toEqual(['10.244.4.0/24', 'fd00:244:0:4::/64']);
    const d1 = await c.addPod('node-4', 'd1');
    expect(d1.ip4).toMatch(/^10\.244\.4\./);
    expect(d1.ip6).toMatch(/^fd00:244:0:4::/);
    // Reachable from another node, directly and through a service; and it reaches services.
    expect(await eventually(() => connect(from('a1'), d1.ip4, POD_PORT), (a) => a[0]?.startsWith('d1'))).toEqual([`d1 ${ip('a1')}`]);
    await c.addService({ name: 'fresh', clusterIPs: ['10.96.1.70'] }, [d1]);
    await served('b2', '10.96.1.70', 80, ['d1'], 4);
    await served(d1.ns, '10.96.1.10', 80, ['b1', 'c1']);
    expect((await d1.ns.exec('dig', ['+short', '+search', 'fresh'])).stdout.trim()).toBe('10.96.1.70');
  });

  it('a node the cluster autoscaler is removing (ToBeDeletedByClusterAutoscaler) drains on /healthz until the taint goes', async () => {
    const node3 = c.node('node-3');
    const healthz = () => httpGet(c.outside, `http://${node3.ip4}:10256/healthz`);
    await c.setTaints(node3, [{ key: 'ToBeDeletedByClusterAutoscaler', value: '1764748800', effect: 'NoSchedule' }]);
    expect((await eventually(healthz, (r) => r.status === 503)).status).toBe(503);
    await c.setTaints(node3, []);
    const back = await eventually(healthz, (r) => r.status === 200);
    expect(back.status).toBe(200);
    expect(JSON.parse(back.body).nodeEligible).toBe(true);
  });

  // node-4 joined in the case before this one.
  it('a node being deleted says so on /healthz (503, nodeEligible false) while /livez stays 200; the others stay 200', async () => {
    const node4 = c.node('node-4');
    const healthz = (ip: string, path = '/healthz') => httpGet(c.outside, `http://${ip}:10256${path}`);
    expect((await healthz(node4.ip4)).status).toBe(200);
    await c.markNodeDeleting(node4);
    const h = await eventually(() => healthz(node4.ip4), (r) => r.status === 503);
    expect(h.status).toBe(503);
    expect(JSON.parse(h.body).nodeEligible).toBe(false);
    expect((await healthz(node4.ip4, '/livez')).status).toBe(200);
    for (const n of ['node-1', 'node-2', 'node-3']) expect((await healthz(c.node(n).ip4)).status, n).toBe(200);
    await c.deleteNode(node4);
    expect(c.nodes.has('node-4')).toBe(false);
    await served('a1', '10.96.1.10', 80, ['b1', 'c1']);
  });
});

describe('two nodes with the ConfigMap set to proxy-mode: nftables', () => {
  let c: Cluster;

  beforeAll(async () => {
    c = await Cluster.start({ nodes: [{ name: 'node-1', zone: 'zone-a' }, { name: 'node-2', zone: 'zone-b' }], config: { 'proxy-mode': 'nftables' } });
    await Promise.all([c.addPod('node-1', 'a1'), c.addPod('node-1', 'a2'), c.addPod('node-2', 'b1')]);
    await c.addService({ ...WEB, type: 'NodePort', nodePort: 30090 }, [c.pod('b1')]);
  });

  afterAll(async () => {
    await c?.destroy();
  });

  it('the agents program nftables, not iptables', async () => {
    const node = c.node('node-1').ns;
    expect((await node.exec('nft', ['list', 'tables'])).stdout).toContain('table ip kube-dataplane');
    expect((await node.exec('iptables-save', ['-t', 'nat'])).stdout).not.toContain('KUBE-SERVICES');
  });

  it('a pod reaches a ClusterIP on the other node, and a NodePort masquerades to the node', async () => {
    const answers = await eventually(() => connect(c.pod('a1').ns, '10.96.1.10', 80, 4), (a) => a.every((l) => l.startsWith('b1 ')));
    expect(answers).toEqual(Array(4).fill(`b1 ${c.pod('a1').ip4}`));
    const nodeIP = c.node('node-1').ip4;
    const viaNode = await eventually(() => connect(c.outside, nodeIP, 30090, 2), (a) => a.every((l) => l.startsWith('b1 ')));
    expect(viaNode).toEqual([`b1 ${nodeIP}`, `b1 ${nodeIP}`]);
    expect((await c.pod('a1').ns.exec('dig', ['+short', '+search', 'web'])).stdout.trim()).toBe('10.96.1.10');
  });

  it('eTP=Local: only node-2 has an endpoint, its health check says so, node-1 drops; zones keep their traffic', async () => {
    await c.addService(LB, [c.pod('b1')]);
    const health = (node: string) => httpGet(c.outside, `http://${c.node(node).ip4}:30181/`);
    const h2 = await eventually(() => health('node-2'), (r) => r.status === 200);
    expect(JSON.parse(h2.body).localEndpoints).toBe(1);
    expect((await eventually(() => health('node-1'), (r) => r.status === 503)).status).toBe(503);
    expect(await eventually(() => connect(c.outside, c.node('node-2').ip4, 30081, 2), (a) => a[0]?.startsWith('b1'))).toEqual([`b1 ${OUTSIDE4}`, `b1 ${OUTSIDE4}`]);
    // Until node-1 has the endpoints too (with none at all, the node port rejects at once).
    const viaNode1 = () => connect(c.outside, c.node('node-1').ip4, 30081, 1, 1_000);
    expect(await eventually(viaNode1, (a) => a[0] !== 'ERR ECONNREFUSED')).toEqual(['ERR ETIMEDOUT']);

    await c.addService({ name: 'zonal', clusterIPs: ['10.96.1.50'], trafficDistribution: 'PreferSameZone' }, [c.pod('a2'), c.pod('b1')]);
    const who = await eventually(() => whoAnswers(c.pod('a1').ns, '10.96.1.50', 80, 12), (s) => s.size === 1 && s.has('a2'));
    expect([...who]).toEqual(['a2']);
  });
});
