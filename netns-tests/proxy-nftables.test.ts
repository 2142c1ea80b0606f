// The nftables proxy mode with real packets: the node namespace first runs the iptables mode (so
// the switch is proven to leave no iptables rules behind), then `--proxy-mode nftables`. ClusterIP
// TCP/UDP both families, masquerade, hairpin, affinity, no endpoints, endpoint removal, partial
// syncs (watched with `nft monitor`), NodePort both families, eTP Local, source ranges, external
// IPs, and --cleanup.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Process } from './harness/netns.js';
import { NftMonitor } from './harness/nft-monitor.js';
import { BIN, CLIENT, CLIENT_IP4, CLIENT_IP6, NODE_IP4, NODE_IP6, ProxyEnv, expectClientIPAffinity, serviceYaml, tally, writeClusterIPServices, writeExternalServices } from './proxy-env.js';
import { externalTrafficCases } from './proxy-cases.js';

const PODS = ['pod-a', 'pod-b', 'pod-c'];

describe('proxy: nftables mode', () => {
  let env: ProxyEnv;
  let iptablesBefore = '';
  const all = () => env.pods.flatMap((p) => [{ ip: p.ip4 }, { ip: p.ip6 }]);
  const iptablesSave = async () => {
    let out = '';
    for (const tool of ['iptables-nft-save', 'ip6tables-nft-save']) out += (await env.node.exec(tool, [])).stdout;
    return out;
  };
  const tables = async () => (await env.node.exec('nft', ['list', 'tables'])).stdout;

  beforeAll(async () => {
    env = await ProxyEnv.create({ pods: PODS });
    writeClusterIPServices(env);
    writeExternalServices(env);
    env.write('drain.yaml', serviceYaml({ name: 'drain', clusterIPs: ['10.96.0.18'], endpoints: all(), ports: [{ name: 'echo', port: 9090, targetPort: 9090, protocol: 'TCP' }] }));
    // The iptables mode first, stopped as a crashed or replaced proxy would be: its rules stay.
    const first = await env.startProxy({ pods: PODS });
    iptablesBefore = await iptablesSave();
    await first.stop();
    await env.startProxy({ pods: PODS, flags: ['--proxy-mode', 'nftables'] });
  });

  afterAll(async () => {
    await env?.destroy();
  });

  it('replaces the iptables mode: its rules are gone, our tables are there', async () => {
    expect(iptablesBefore).toMatch(/KUBE-SERVICES/);
    expect(await iptablesSave()).not.toMatch(/KUBE-/);
    const t = await tables();
    expect(t).toContain('table ip kube-dataplane');
    expect(t).toContain('table ip6 kube-dataplane');
    expect(env.proxy!.stderr).toMatch(/proxy started mode=nftables/);
  });

  for (const [proto, vip, port] of [['tcp', '10.96.0.10', 80], ['udp', '10.96.0.10', 53], ['tcp', 'fd00:96::10', 80], ['udp', 'fd00:96::10', 53]] as const) {
    it(`${proto.toUpperCase()} to ${vip} reaches every backend`, async () => {
      const t = tally(await env.connect(env.client, proto, vip, port, 45));
      expect(Object.keys(t).sort()).toEqual(PODS);
      for (const p of PODS) expect(t[p]).toBeGreaterThan(3);
    });
  }

  it('traffic from outside the cluster CIDR is masqueraded; a pod keeps its own source; hairpin is masqueraded', async () => {
    for (const line of await env.connect(env.client, 'tcp', '10.96.0.10', 80, 6)) expect(line.split(' ')[1]).toBe('10.244.0.1');
    for (const line of await env.connect(env.client, 'tcp', 'fd00:96::10', 80, 6)) expect(line.split(' ')[1]).toBe('fd00:244::1');
    const podA = env.pods[0];
    for (const [vip, own, gw] of [['10.96.0.10', podA.ip4, '10.244.0.1'], ['fd00:96::10', podA.ip6, 'fd00:244::1']]) {
      const lines = await env.connect(podA.ns, 'tcp', vip, 80, 40);
      const others = lines.filter((l) => !l.startsWith('pod-a'));
      const self = lines.filter((l) => l.startsWith('pod-a'));
      expect(others.length).toBeGreaterThan(0);
      expect(self.length).toBeGreaterThan(0);
      for (const line of others) expect(line.split(' ')[1]).toBe(own);
      for (const line of self) expect(line.split(' ')[1]).toBe(gw);
    }
  });

  it('session affinity ClientIP: every connection of a client sticks to one backend', async () => {
    await expectClientIPAffinity(env, PODS);
  });

  it('a service without endpoints refuses at once', async () => {
    for (const vip of ['10.96.0.12', 'fd00:96::12']) {
      expect(await env.connect(env.client, 'tcp', vip, 80, 3, 20_000)).toEqual(['ERR ECONNREFUSED', 'ERR ECONNREFUSED', 'ERR ECONNREFUSED']);
    }
  });

  it('an endpoint removal is a partial sync touching only that service; other flows go on', async () => {
    const echo: Process = env.client.spawn('node', [CLIENT, 'tcp-stream', '10.96.0.18', '9090', '100'], { label: 'echo stream' });
    await echo.waitForOutput(/pod-\w \d+\n/);
    const monitor = await NftMonitor.start(env.node, ['ruleset']);
    env.write('shrink.yaml', serviceYaml({ name: 'shrink', clusterIPs: ['10.96.0.13', 'fd00:96::13'], endpoints: all().filter((e) => e.ip !== env.pods[2].ip4 && e.ip !== env.pods[2].ip6) }));
    for (const vip of ['10.96.0.13', 'fd00:96::13']) {
      const t = await env.eventually(`pod-c gone from ${vip}`, async () => tally(await env.connect(env.client, 'tcp', vip, 80, 30)), (t) => !t['pod-c']);
      expect(Object.keys(t).sort()).toEqual(['pod-a', 'pod-b']);
    }
    await monitor.settle();
    await monitor.stop();
    const events = monitor.events();
    // Elements of test/shrink's addresses only: its verdict (to the smaller count) and its slots.
    expect(events).toMatch(/10\.96\.0\.13 \. tcp \. 80/);
    expect(events).toMatch(/fd00:96::13 \. tcp \. 80/);
    expect(events).not.toMatch(/10\.96\.0\.1[0128]\b|fd00:96::1[0128]\b/);
    // The one chain it may add is the shared one of the new endpoint count (every service had 3).
    expect(events).not.toMatch(/delete table|flush table|delete rule|delete chain/);
    expect([...new Set((events.match(/add (?:chain|rule) ip6? kube-dataplane \S+/g) ?? []).map((l) => l.split(' ').pop()))]).toEqual(['cluster-2']);
    expect(env.proxy!.stderr).toMatch(/rules synced sync=partial/);
    // The echo connection to another service kept going through the change.
    const mark = echo.stdout.length;
    await env.eventually('echo stream still flowing', async () => echo.stdout.slice(mark), (s) => (s.match(/^pod-\w \d+$/gm) ?? []).length >= 2, 5000);
    expect(echo.stdout).not.toMatch(/ERR/);
    await echo.stop();
    env.write('shrink.yaml', serviceYaml({ name: 'shrink', clusterIPs: ['10.96.0.13', 'fd00:96::13'], endpoints: [] }));
    await env.eventually('shrink refuses', () => env.connect(env.client, 'tcp', '10.96.0.13', 80, 1), (l) => l[0] === 'ERR ECONNREFUSED');
  });

  externalTrafficCases(() => env, PODS);

  it('Local policy without local endpoints drops traffic from outside; pods still reach the remote endpoint', async () => {
    expect(await env.connect(env.client, 'tcp', NODE_IP4, 30082, 2, 1500)).toEqual(['ERR ETIMEDOUT', 'ERR ETIMEDOUT']);
    expect(await env.connect(env.client, 'tcp', NODE_IP6, 30082, 1, 1500)).toEqual(['ERR ETIMEDOUT']);
    expect(Object.keys(tally(await env.connect(env.pods[0].ns, 'tcp', '10.96.1.3', 80, 10)))).toEqual(['pod-c']);
  });

  it('loadBalancerSourceRanges: an allowed client gets through, another is dropped; external IPs work', async () => {
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '198.51.100.10', 80, 20))).sort()).toEqual(PODS);
    expect(await env.connect(env.client, 'tcp', '198.51.100.11', 80, 2, 1500)).toEqual(['ERR ETIMEDOUT', 'ERR ETIMEDOUT']);
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '198.51.100.20', 80, 30))).sort()).toEqual(PODS);
  });

  it('a ServiceCIDR object (no --service-cidr given) drops its addresses no service has; deleted, they are routed again', async () => {
    // The upstream router owns an address in the new range of each family and answers it (a
    // TCP reset, no listener): what a client sees while nothing drops it.
    const unallocated = ['10.100.0.9', 'fd00:100::9'];
    for (const ip of unallocated) await env.upstream.exec('ip', ['addr', 'add', `${ip}/${ip.includes(':') ? 128 : 32}`, 'dev', 'lo']);
    await env.upstream.exec('ip', ['route', 'replace', '192.168.50.0/24', 'via', '192.168.60.1']);
    await env.upstream.exec('ip', ['-6', 'route', 'replace', 'fd00:50::/64', 'via', 'fd00:60::1']);
    const answers = (ip: string) => env.connect(env.client, 'tcp', ip, 80, 1, 1000);
    for (const ip of unallocated) expect(await answers(ip), `${ip} before`).toEqual(['ERR ECONNREFUSED']);
    env.write('servicecidr.yaml', 'apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: { name: extra }\nspec: { cidrs: [10.100.0.0/24, "fd00:100::/112"] }\n');
    for (const ip of unallocated) await env.eventually(`${ip} dropped`, () => answers(ip), (r) => r[0] === 'ERR ETIMEDOUT');
    expect((await env.node.exec('nft', ['list', 'set', 'ip', 'kube-dataplane', 'service-cidrs'])).stdout).toContain('10.100.0.0/24');
    // A service with an address in the range is served: the drop sits after DNAT.
    env.write('in-range.yaml', serviceYaml({ name: 'in-range', clusterIPs: ['10.100.0.10'], endpoints: all() }));
    await env.eventually('10.100.0.10 served', async () => Object.keys(tally(await env.connect(env.client, 'tcp', '10.100.0.10', 80, 6, 1000))).sort(), (r) => r.join() === PODS.join());
    rmSync(join(env.dir, 'servicecidr.yaml'));
    rmSync(join(env.dir, 'in-range.yaml'));
    for (const ip of unallocated) await env.eventually(`${ip} routed again`, () => answers(ip), (r) => r[0] === 'ERR ECONNREFUSED');
  });

  it('the iptables mode started over it removes our tables and serves through its rules', async () => {
    await env.proxy!.stop(); // stopped as a replaced proxy would be: its tables stay
    expect(await tables()).toContain('table ip kube-dataplane');
    await env.startProxy({ pods: PODS });
    expect(await tables()).not.toContain('kube-dataplane');
    expect(await iptablesSave()).toMatch(/KUBE-SERVICES/);
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '10.96.0.10', 80, 30))).sort()).toEqual(PODS);
    await env.proxy!.stop();
    await env.startProxy({ pods: PODS, flags: ['--proxy-mode', 'nftables'] });
    expect(await iptablesSave()).not.toMatch(/KUBE-/);
  });

  it('a restart over the existing table keeps serving; --cleanup removes the tables', async () => {
    await env.proxy!.stop();
    await env.startProxy({ pods: PODS, flags: ['--proxy-mode', 'nftables'] });
    expect(Object.keys(tally(await env.connect(env.client, 'tcp', '10.96.0.10', 80, 30))).sort()).toEqual(PODS);
    await env.proxy!.stop();
    const r = await env.node.exec('node', [BIN, 'proxy', '--cleanup', '--manifests', env.dir]);
    expect(r.code).toBe(0);
    expect(await tables()).not.toContain('kube-dataplane');
  });
});
