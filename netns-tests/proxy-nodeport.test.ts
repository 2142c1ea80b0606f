// NodePort, externalTrafficPolicy Local with its health-check node port, load-balancer IPs with
// source ranges and external IPs, reached from a client namespace outside the node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_IP4, CLIENT_IP6, NODE_IP4, NODE_IP6, ProxyEnv, tally, writeExternalServices } from './proxy-env.js';
import { externalTrafficCases } from './proxy-cases.js';

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

  externalTrafficCases(() => env, PODS);

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
