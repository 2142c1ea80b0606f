// Topology with real packets (iptables mode), as kube-proxy's CategorizeEndpoints decides it:
// hints only, node hints when every ready endpoint has one, and no locality without hints.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NODE, ProxyEnv, serviceYaml, tally } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b', 'pod-c'];
type Hints = { forZones?: { name: string }[]; forNodes?: { name: string }[] };

/** serviceYaml, IPv4 only, with each pod's endpoint on `nodes[i]` and carrying `hints[i]`. */
function withHints(env: ProxyEnv, name: string, vip: string, nodes: string[], hints: (Hints | undefined)[], spec: Record<string, unknown> = {}): string {
  const yaml = serviceYaml({ name, clusterIPs: [vip], endpoints: env.pods.map((p, i) => ({ ip: p.ip4, node: nodes[i] })), spec });
  return yaml.split('\n---\n').map((doc) => {
    const o = JSON.parse(doc);
    if (o.kind === 'EndpointSlice') o.endpoints.forEach((e: Record<string, unknown>, i: number) => {
      if (hints[i]) e.hints = hints[i];
      e.zone = i === 2 ? 'z2' : 'z1';
    });
    return JSON.stringify(o);
  }).join('\n---\n');
}

describe('proxy (iptables): topology', () => {
  let env: ProxyEnv;
  const reached = async (vip: string) => Object.keys(tally(await env.connect(env.pods[0].ns, 'tcp', vip, 80, 40))).sort();

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    env.write('node.yaml', JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { 'topology.kubernetes.io/zone': 'z1' } } }));
    const z = (n: string) => ({ name: n });
    // pod-a on this node; zone hints z1, z1, z2; a node hint on pod-a only.
    env.write('partial-node-hints.yaml', withHints(env, 'partial', '10.96.0.20', [NODE, 'node-b', 'node-c'], [
      { forZones: [z('z1')], forNodes: [z(NODE)] }, { forZones: [z('z1')] }, { forZones: [z('z2')] },
    ]));
    // Node hints on every endpoint, one for this node.
    env.write('node-hints.yaml', withHints(env, 'samenode', '10.96.0.21', [NODE, 'node-b', 'node-c'], [
      { forZones: [z('z1')], forNodes: [z(NODE)] }, { forZones: [z('z1')], forNodes: [z('node-b')] }, { forZones: [z('z2')], forNodes: [z('node-c')] },
    ]));
    // PreferClose, no hints (the controller has not written them): no locality.
    env.write('prefer-close.yaml', withHints(env, 'close', '10.96.0.22', [NODE, 'node-b', 'node-c'], [undefined, undefined, undefined], { trafficDistribution: 'PreferClose' }));
    await env.startProxy({ pods: PODS });
  });

  afterAll(async () => {
    await env?.destroy();
  });

  it('node hints on only some endpoints are ignored: the zone hints decide (pod-a, pod-b)', async () => {
    expect(await reached('10.96.0.20')).toEqual(['pod-a', 'pod-b']);
  });

  it('node hints on every endpoint, one for this node: only that endpoint', async () => {
    expect(await reached('10.96.0.21')).toEqual(['pod-a']);
  });

  it('PreferClose without hints: every endpoint, the local one not preferred', async () => {
    expect(await reached('10.96.0.22')).toEqual(PODS);
  });
});
