// NodePort, externalTrafficPolicy Local with its health-check node port, load-balancer IPs with
// source ranges and external IPs, reached from a client namespace outside the node.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_IP4, CLIENT_IP6, NODE, NODE_IP4, NODE_IP6, ProxyEnv, serviceYaml, tally } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b', 'pod-c'];
const ports = (np: number) => [
  { name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: np },
  { name: 'udp', port: 53, targetPort: 5353, protocol: 'UDP', nodePort: np },
];

describe('proxy: NodePort, Local policy, load balancers', () => {
  let env: ProxyEnv;
  // pod-c is "on another node" as far as the catalog knows; the packets still reach it here.
  const eps = () => env.pods.flatMap((p) => [{ ip: p.ip4, node: p.name === 'pod-c' ? 'node-b' : NODE }, { ip: p.ip6, node: p.name === 'pod-c' ? 'node-b' : NODE }]);

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    env.write('node.yaml', JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE }, status: { addresses: [{ type: 'InternalIP', address: NODE_IP4 }, { type: 'InternalIP', address: NODE_IP6 }] } }));
    env.write('np.yaml', serviceYaml({ name: 'np', clusterIPs: ['10.96.1.1', 'fd00:96::1:1'], ports: ports(30080), endpoints: eps(), spec: { type: 'NodePort' } }));
    const withStatus = (yaml: string, ip: string) => yaml.replace(/^(\{"apiVersion":"v1","kind":"Service".*)$/m, (line) => JSON.stringify({ ...JSON.parse(line), status: { loadBalancer: { ingress: [{ ip }] } } }));
    env.write('local.yaml', withStatus(serviceYaml({
      name: 'local', clusterIPs: ['10.96.1.2', 'fd00:96::1:2'], ports: ports(30081), endpoints: eps(),
      spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32100 },
    }), '198.51.100.9'));
    env.write('remote.yaml', serviceYaml({
      name: 'remote', clusterIPs: ['10.96.1.3', 'fd00:96::1:3'], ports: ports(30082), endpoints: eps().filter((e) => e.node === 'node-b'),
      spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', healthCheckNodePort: 32101 },
    }));
    env.write('fw.yaml', withStatus(serviceYaml({
      name: 'fw', clusterIPs: ['10.96.1.4'], ports: ports(30083), endpoints: eps(),
      spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['192.168.50.0/24'] },
    }), '198.51.100.10'));
    env.write('fw-deny.yaml', withStatus(serviceYaml({
      name: 'fw-deny', clusterIPs: ['10.96.1.5'], ports: ports(30084), endpoints: eps(),
      spec: { type: 'LoadBalancer', loadBalancerSourceRanges: ['203.0.113.0/24'] },
    }), '198.51.100.11'));
    env.write('ext.yaml', serviceYaml({ name: 'ext', clusterIPs: ['10.96.1.6'], endpoints: eps(), spec: { externalIPs: ['198.51.100.20'] } }));
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
