// What counts as cluster-local traffic (iptables and nftables modes), with real packets: kube-proxy's
// --detect-local-mode. Traffic to a cluster IP from outside the "local" set is masqueraded (so
// replies come back through this node); traffic from inside it keeps its source. Each mode is
// proven with --cluster-cidr set to a range the pods are NOT in, so only the mode under test can
// make them local. And more than one cluster CIDR per family is refused, as kube-proxy does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, NODE, ProxyEnv, serviceYaml } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b'];
const ELSEWHERE = '10.99.0.0/16,fd00:99::/48';

describe('proxy: --detect-local-mode', () => {
  let env: ProxyEnv;

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    env.write('node.yaml', JSON.stringify({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE }, spec: { podCIDRs: ['10.244.0.0/24', 'fd00:244::/64'] } }));
    env.write('web.yaml', serviceYaml({ name: 'web', clusterIPs: ['10.96.0.10', 'fd00:96::10'], endpoints: [{ ip: env.pods[1].ip4 }, { ip: env.pods[1].ip6 }] }));
  });

  afterAll(async () => {
    await env?.destroy();
  });

  /** The source pod-b sees for a connection from pod-a, and for one from the outside client. */
  async function sources(): Promise<{ pod: string[]; client: string[] }> {
    // A fresh link's IPv6 address may still be tentative (DAD) on the first try: retry errors
    // only, never a source seen.
    const seen = async (from: typeof env.client, vip: string) => {
      const lines = await env.eventually(`a connection to ${vip}`, () => env.connect(from, 'tcp', vip, 80, 1), (l) => !l[0].startsWith('ERR'));
      return lines.map((l) => l.split(' ')[1]);
    };
    return {
      pod: [...(await seen(env.pods[0].ns, '10.96.0.10')), ...(await seen(env.pods[0].ns, 'fd00:96::10'))],
      client: [...(await seen(env.client, '10.96.0.10')), ...(await seen(env.client, 'fd00:96::10'))],
    };
  }

  async function withProxy(flags: string[], clusterCIDRs: string, fn: () => Promise<void>): Promise<void> {
    await env.startProxy({ pods: PODS, flags, clusterCIDRs });
    try {
      await fn();
    } finally {
      await env.proxy?.stop();
    }
  }

  const local = () => [env.pods[0].ip4, env.pods[0].ip6];
  const masqueraded = ['10.244.0.1', 'fd00:244::1'];

  for (const proxyMode of ['iptables', 'nftables'] as const) {
    const mode = ['--proxy-mode', proxyMode];
    describe(proxyMode, () => {
    it('ClusterCIDR (the default): pods in --cluster-cidr keep their source, others are masqueraded', async () => {
      await withProxy([...mode], '10.244.0.0/16,fd00:244::/48', async () => {
        expect(await sources()).toEqual({ pod: local(), client: masqueraded });
      });
      // …and with the pods outside --cluster-cidr they are masqueraded too: the CIDR decides.
      await withProxy([...mode], ELSEWHERE, async () => {
        expect((await sources()).pod).toEqual(masqueraded);
      });
    });

    it('NodeCIDR: the Node object\'s spec.podCIDRs decide', async () => {
      await withProxy([...mode, '--detect-local-mode', 'NodeCIDR'], ELSEWHERE, async () => {
        expect(await sources()).toEqual({ pod: local(), client: masqueraded });
      });
    });

    it('BridgeInterface: traffic arriving from --pod-bridge-interface is local', async () => {
      await withProxy([...mode, '--detect-local-mode', 'BridgeInterface', '--pod-bridge-interface', 'cbr0'], ELSEWHERE, async () => {
        expect(await sources()).toEqual({ pod: local(), client: masqueraded });
      });
    });

    it('InterfaceNamePrefix: traffic arriving from an interface named --pod-interface-name-prefix… is local', async () => {
      await withProxy([...mode, '--detect-local-mode', 'InterfaceNamePrefix', '--pod-interface-name-prefix', 'cbr'], ELSEWHERE, async () => {
        expect(await sources()).toEqual({ pod: local(), client: masqueraded });
      });
    });
    });
  }

  /** Runs the proxy binary in the node namespace expecting it to refuse its flags at once. */
  async function refused(...flags: string[]) {
    const r = await env.node.exec('node', [BIN, 'proxy', '--manifests', env.dir, '--node-name', NODE, '--healthz-bind-address', '', '--metrics-bind-address', '', ...flags], { allowFailure: true, timeoutMs: 20_000 });
    return { code: r.code, stderr: r.stderr };
  }

  it('two cluster CIDRs of one family: exit 2 naming the flag (kube-proxy takes one per family)', async () => {
    const r = await refused('--cluster-cidr', '10.244.0.0/16,10.245.0.0/16');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--cluster-cidr: .*10\.244\.0\.0\/16.*10\.245\.0\.0\/16.*one CIDR per IP family/);
  });

  it('a mode without its interface flag, or an unknown mode: exit 2', async () => {
    expect(await refused('--detect-local-mode', 'BridgeInterface')).toMatchObject({ code: 2, stderr: expect.stringMatching(/--pod-bridge-interface/) });
    expect(await refused('--detect-local-mode', 'InterfaceNamePrefix')).toMatchObject({ code: 2, stderr: expect.stringMatching(/--pod-interface-name-prefix/) });
    expect(await refused('--detect-local-mode', 'Elsewhere')).toMatchObject({ code: 2, stderr: expect.stringMatching(/--detect-local-mode/) });
  });
});
