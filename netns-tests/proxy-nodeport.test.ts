// NodePort, externalTrafficPolicy Local with its health-check node port, load-balancer IPs with
// source ranges and external IPs, reached from a client namespace outside the node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_IP4, CLIENT_IP6, NODE_IP4, NODE_IP6, ProxyEnv, tally, writeExternalServices } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b', 'pod-c'];

describe('proxy: NodePort, Local policy, load balancers', () => {
  let env: ProxyEnv;

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    writeExternalServices(env);
    await env.startProxy({ pods: PODS });
  });

  afterAll(async () => {
    await env?.destroy();
  });

  for (const [proto, nodeIP] of [['tcp', NODE_IP4], ['udp', NODE_IP4], ['tcp', NODE_IP6], ['udp', NODE_IP6]] as const) {
    it(`NodePort ${proto.toUpperCase()} on ${nodeIP} reaches every endpoint, masqueraded`, async () => {
      const lines = await env.connect(env.client, proto, nodeIP, 30080, 40);
      const t = tally(lines);
      expect(Object.keys(t).sort()).toEqual(PODS);
      const gw = nodeIP.includes(':') ? 'fd00:244::1' : '10.244.0.1';
      for (const l of lines) expect(l.split(' ')[1]).toBe(gw);
    });
  }

  it('externalTrafficPolicy Local: only local endpoints, with the client\'s own source address', async () => {
    for (const [dst, client] of [[NODE_IP4, CLIENT_IP4], [NODE_IP6, CLIENT_IP6]]) {
      for (const proto of ['tcp', 'udp'] as const) {
        const lines = await env.connect(env.client, proto, dst, 30081, 30);
        expect(Object.keys(tally(lines)).sort()).toEqual(['pod-a', 'pod-b']);
        for (const l of lines) expect(l.split(' ')[1]).toBe(client);
      }
    }
    // The load-balancer IP follows the same policy.
    const viaLB = await env.connect(env.client, 'tcp', '198.51.100.9', 80, 20);
    expect(Object.keys(tally(viaLB)).sort()).toEqual(['pod-a', 'pod-b']);
    for (const l of viaLB) expect(l.split(' ')[1]).toBe(CLIENT_IP4);
  });

  it('the health-check node port says how many local endpoints there are', async () => {
    const ok = await env.http(`http://${NODE_IP4}:32100/`, env.client);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toEqual({ service: { namespace: 'test', name: 'local' }, localEndpoints: 2, serviceProxyHealthy: true });
    const none = await env.http(`http://[${NODE_IP6}]:32101/`, env.client);
    expect(none.status).toBe(503);
    expect(JSON.parse(none.body)).toEqual({ service: { namespace: 'test', name: 'remote' }, localEndpoints: 0, serviceProxyHealthy: true });
  });

  it('Local policy without local endpoints drops traffic from outside', async () => {
    expect(await env.connect(env.client, 'tcp', NODE_IP4, 30082, 2, 1500)).toEqual(['ERR ETIMEDOUT', 'ERR ETIMEDOUT']);
    // …while a pod on the node (cluster traffic) still reaches the remote endpoint.
    const fromPod = tally(await env.connect(env.pods[0].ns, 'tcp', '10.96.1.3', 80, 10));
    expect(Object.keys(fromPod)).toEqual(['pod-c']);
  });

  it('loadBalancerSourceRanges: an allowed client gets through, another is dropped', async () => {
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '198.51.100.10', 80, 20))).sort()).toEqual(PODS);
    expect(await env.connect(env.client, 'tcp', '198.51.100.11', 80, 2, 1500)).toEqual(['ERR ETIMEDOUT', 'ERR ETIMEDOUT']);
  });

  it('an external IP reaches the endpoints', async () => {
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '198.51.100.20', 80, 30))).sort()).toEqual(PODS);
  });
});
