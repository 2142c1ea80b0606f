// The service proxy with real packets: a client outside the node reaches a ClusterIP service
// (routed through the node, as a pod on another node would be) and lands on every backend.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyEnv, serviceYaml, tally } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b', 'pod-c'];

describe('proxy: ClusterIP', () => {
  let env: ProxyEnv;

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    env.write('web.yaml', serviceYaml({
      name: 'web',
      clusterIPs: ['10.96.0.10', 'fd00:96::10'],
      endpoints: env.pods.flatMap((p) => [{ ip: p.ip4 }, { ip: p.ip6 }]),
    }));
    await env.startProxy({ pods: PODS });
  });

  afterAll(async () => {
    await env?.destroy();
  });

  it('TCP over IPv4 reaches every backend', async () => {
    const lines = await env.connect(env.client, 'tcp', '10.96.0.10', 80, 60);
    const t = tally(lines);
    expect(Object.keys(t).sort()).toEqual(PODS);
    for (const p of PODS) expect(t[p]).toBeGreaterThan(5);
  });
});
