// NodePorts on 127.0.0.1 (iptables mode), as kube-proxy's iptables mode serves them by default
// (--iptables-localhost-nodeports, with net.ipv4.conf.all.route_localnet=1): a process on the
// node reaching 127.0.0.1:<nodePort> is DNATed to an endpoint and masqueraded. With the flag
// false, loopback is left out of the node-port match. IPv6 ::1 never works (no route_localnet).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyEnv, serviceYaml, tally } from './proxy-env.js';

const PODS = ['pod-a', 'pod-b'];

describe('proxy (iptables): --iptables-localhost-nodeports', () => {
  let env: ProxyEnv;
  const routeLocalnet = async () => (await env.node.exec('sysctl', ['-n', 'net.ipv4.conf.all.route_localnet'])).stdout.trim();

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    env.write('np.yaml', serviceYaml({
      name: 'np', clusterIPs: ['10.96.1.1', 'fd00:96::1:1'], spec: { type: 'NodePort' },
      ports: [{ name: 'tcp', port: 80, targetPort: 8080, protocol: 'TCP', nodePort: 30080 }],
      endpoints: env.pods.flatMap((p) => [{ ip: p.ip4 }, { ip: p.ip6 }]),
    }));
  });

  afterAll(async () => {
    await env?.destroy();
  });

  it('default (true): 127.0.0.1:30080 from the node reaches every endpoint, masqueraded; route_localnet is set', async () => {
    expect(await routeLocalnet()).toBe('0');
    await env.startProxy({ pods: PODS });
    try {
      expect(await routeLocalnet()).toBe('1');
      const lines = await env.connect(env.node, 'tcp', '127.0.0.1', 30080, 30);
      expect(Object.keys(tally(lines)).sort()).toEqual(PODS);
      for (const l of lines) expect(l.split(' ')[1]).toBe('10.244.0.1');
      // ::1 is never a node port, as with kube-proxy: nothing listens there, so it is refused.
      expect(await env.connect(env.node, 'tcp', '::1', 30080, 1)).toEqual(['ERR ECONNREFUSED']);
    } finally {
      await env.proxy?.stop();
    }
  });

  it('--iptables-localhost-nodeports=false: 127.0.0.1 is not a node port', async () => {
    await env.startProxy({ pods: PODS, flags: ['--iptables-localhost-nodeports=false'] });
    try {
      expect(await env.connect(env.node, 'tcp', '127.0.0.1', 30080, 1)).toEqual(['ERR ECONNREFUSED']);
      // The node's own address still is.
      expect(Object.keys(tally(await env.connect(env.node, 'tcp', '192.168.50.1', 30080, 20))).sort()).toEqual(PODS);
    } finally {
      await env.proxy?.stop();
    }
  });

  it('where route_localnet cannot be set (read-only /proc/sys): starts anyway, warns, no localhost node ports', async () => {
    // Its own mount namespace (inside the node's network namespace) with /proc/sys read-only,
    // as an unprivileged container has it.
    const wrap = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', 'mount -o bind,ro /proc/sys /proc/sys && exec "$@"', 'sh'];
    await env.node.exec('sysctl', ['-w', 'net.ipv4.conf.all.route_localnet=0']);
    await env.startProxy({ pods: PODS, wrap });
    try {
      expect(env.proxy!.stderr).toMatch(/node ports do not answer on 127\.0\.0\.1: route_localnet cannot be set/);
      expect(await routeLocalnet()).toBe('0');
      expect(await env.connect(env.node, 'tcp', '127.0.0.1', 30080, 1)).toEqual(['ERR ECONNREFUSED']);
      expect(Object.keys(tally(await env.connect(env.node, 'tcp', '192.168.50.1', 30080, 20))).sort()).toEqual(PODS);
    } finally {
      await env.proxy?.stop();
    }
  });
});
