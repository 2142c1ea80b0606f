// The service proxy with real packets: ClusterIP services reached from a client outside the node
// (routed through it, as from another node) and from pods on the node's bridge, TCP and UDP,
// IPv4 and IPv6; affinity, masquerade, hairpin, no endpoints, and endpoints going away.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Process } from './harness/netns.js';
import { CLIENT, ProxyEnv, expectClientIPAffinity, serviceYaml, tally, writeClusterIPServices } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b', 'pod-c'];

describe('proxy: ClusterIP', () => {
  let env: ProxyEnv;
  const all = () => env.pods.flatMap((p) => [{ ip: p.ip4 }, { ip: p.ip6 }]);

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    writeClusterIPServices(env);
    await env.startProxy({ pods: PODS });
  });

  afterAll(async () => {
    await env?.destroy();
  });

  const cases = [
    { proto: 'tcp', vip: '10.96.0.10', port: 80 },
    { proto: 'udp', vip: '10.96.0.10', port: 53 },
    { proto: 'tcp', vip: 'fd00:96::10', port: 80 },
    { proto: 'udp', vip: 'fd00:96::10', port: 53 },
  ] as const;
  for (const c of cases) {
    it(`${c.proto.toUpperCase()} to ${c.vip} reaches every backend`, async () => {
      const t = tally(await env.connect(env.client, c.proto, c.vip, c.port, 45));
      expect(Object.keys(t).sort()).toEqual(PODS);
      for (const p of PODS) expect(t[p]).toBeGreaterThan(3);
    });
  }

  it('traffic from outside the cluster CIDR is masqueraded; a pod keeps its own source', async () => {
    for (const line of await env.connect(env.client, 'tcp', '10.96.0.10', 80, 6)) expect(line.split(' ')[1]).toBe('10.244.0.1');
    for (const line of await env.connect(env.client, 'tcp', 'fd00:96::10', 80, 6)) expect(line.split(' ')[1]).toBe('fd00:244::1');
    const podA = env.pods[0];
    const fromPod = await env.connect(podA.ns, 'tcp', '10.96.0.10', 80, 30);
    const others = fromPod.filter((l) => !l.startsWith('pod-a'));
    expect(others.length).toBeGreaterThan(0);
    for (const line of others) expect(line.split(' ')[1]).toBe(podA.ip4);
  });

  it('hairpin: a pod reaches itself through its service (masqueraded)', async () => {
    const podB = env.pods[1];
    for (const [vip, gw] of [['10.96.0.10', '10.244.0.1'], ['fd00:96::10', 'fd00:244::1']]) {
      const self = (await env.connect(podB.ns, 'tcp', vip, 80, 40)).filter((l) => l.startsWith('pod-b'));
      expect(self.length).toBeGreaterThan(0);
      for (const line of self) expect(line.split(' ')[1]).toBe(gw);
    }
  });

  it('session affinity ClientIP: every connection of a client sticks to one backend', async () => {
    await expectClientIPAffinity(env, PODS);
  });

  it('a service without endpoints refuses at once (REJECT, not a timeout)', async () => {
    // The REJECT answers the first SYN. Over veth the ICMP error can arrive while connect() still
    // holds the client's socket lock, and the client's kernel then keeps it as a soft error until
    // the SYN is retransmitted (1 s, TcpExtLockDroppedIcmps); a dropped SYN would take the whole
    // 20 s timeout instead.
    for (const vip of ['10.96.0.12', 'fd00:96::12']) {
      const lines = await env.connect(env.client, 'tcp', vip, 80, 3, 20_000);
      expect(lines).toEqual(['ERR ECONNREFUSED', 'ERR ECONNREFUSED', 'ERR ECONNREFUSED']);
    }
  });

  it('a removed endpoint gets no new connections; an emptied service refuses', async () => {
    env.write('shrink.yaml', serviceYaml({ name: 'shrink', clusterIPs: ['10.96.0.13', 'fd00:96::13'], endpoints: all().filter((e) => e.ip !== env.pods[2].ip4 && e.ip !== env.pods[2].ip6) }));
    for (const vip of ['10.96.0.13', 'fd00:96::13']) {
      const t = await env.eventually(`pod-c gone from ${vip}`, async () => tally(await env.connect(env.client, 'tcp', vip, 80, 30)), (t) => !t['pod-c']);
      expect(Object.keys(t).sort()).toEqual(['pod-a', 'pod-b']);
    }
    env.write('shrink.yaml', serviceYaml({ name: 'shrink', clusterIPs: ['10.96.0.13', 'fd00:96::13'], endpoints: [] }));
    await env.eventually('shrink refuses', () => env.connect(env.client, 'tcp', '10.96.0.13', 80, 1), (l) => l[0] === 'ERR ECONNREFUSED');
  });

  it('a UDP stream moves on when its endpoint is removed (stale conntrack entries cleared)', async () => {
    for (const vip of ['10.96.0.14', 'fd00:96::14']) {
      const stream: Process = env.client.spawn('node', [CLIENT, 'udp-stream', vip, '53', '100'], { label: `udp stream ${vip}` });
      await stream.waitForOutput(/pod-\w/);
      const first = /(pod-\w)/.exec(stream.stdout)![1];
      const keep = all().filter((e) => !env.pods.find((p) => p.name === first && (p.ip4 === e.ip || p.ip6 === e.ip)));
      env.write('stream.yaml', serviceYaml({ name: 'stream', clusterIPs: ['10.96.0.14', 'fd00:96::14'], endpoints: keep }));
      // The backend still runs and answers: only the cleared flow makes the stream move.
      const mark = stream.stdout.length;
      await env.eventually(`stream to ${vip} leaves ${first}`, async () => stream.stdout.slice(mark).trim().split('\n').slice(-3), (last) => last.length === 3 && last.every((l) => /^pod-\w/.test(l) && !l.startsWith(first)));
      await stream.stop();
      env.write('stream.yaml', serviceYaml({ name: 'stream', clusterIPs: ['10.96.0.14', 'fd00:96::14'], endpoints: all() }));
      await env.eventually('stream service whole again', async () => tally(await env.connect(env.client, 'udp', vip, 53, 30)), (t) => Object.keys(t).length === 3);
    }
  });
});
